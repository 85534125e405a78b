//! The control plane's plugin registry: what plugins are installed, which
//! of them may run, and in which order a chain runs them.
//!
//! A plugin directory holds one folder per plugin version,
//! `<dir>/<name>-<version>/`, with
//!
//! - `manifest.yaml`: name, version, the ABI it needs, ordering
//!   dependencies, counter names and resource requests ([`Manifest`]);
//! - `plugin.wasm`: the core WebAssembly module ([`validate_module`]);
//! - `signature` (optional): a detached ed25519 signature over both
//!   ([`sign`], [`verify`]).
//!
//! [`discover`] reads every folder into a [`Catalog`] (a broken folder is
//! listed with its reason and does not stop the others); [`resolve`] turns
//! a chain request into the plugins to run, in order. Everything here is a
//! pure function of its inputs: a refusal changes nothing. Precompiling is
//! left to the caller (`ms_plugin_host::precompile`), so this crate does
//! not build wasmtime.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod discover;
mod hex;
mod manifest;
mod module;
mod resolve;
mod signing;
mod yaml;

pub use discover::{
    check_plugin, discover, load_plugin, Catalog, Checked, DiscoverError, Plugin, PluginError, Refused, MANIFEST_FILE,
    MODULE_FILE, SIGNATURE_FILE,
};
pub use manifest::{After, Limits, Manifest, ManifestError, MANIFEST_BYTES_MAX};
pub use module::{features, validate_module, AbiSignature, ModuleError, ModuleInfo, MODULE_BYTES_MAX};
pub use resolve::{resolve, Request, ResolveError};
pub use signing::{
    keygen, sign, signed_digest, verify, KeyError, KeyId, PublicKey, SecretKey, SignatureError, Signer, Trust,
    SIGNATURE_BYTES_MAX,
};

/// The semver crate the manifest's versions and requirements come from, so
/// callers build [`Request`]s with the same types.
pub use semver;

#[cfg(test)]
mod tests;
