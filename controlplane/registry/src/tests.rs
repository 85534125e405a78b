//! Tests: small modules written in WAT, plugin folders in temporary
//! directories, catalogs built by hand for resolution.

mod discover;
mod examples;
mod manifest;
mod module;
mod resolve;
mod signing;

/// The ABI's exports with the right signatures.
fn abi_exports() -> String {
    let on_batch = r#"(func (export "ms_on_batch") (param i32) (result i32) i32.const 0)"#;
    format!("{}{on_batch}", ms_plugin_abi::wat::EXPORTS_BUT_ON_BATCH)
}

/// The four host imports with the right signatures.
const ABI_IMPORTS: &str = ms_plugin_abi::wat::IMPORTS;

/// The text of a valid plugin module: every import, one exported memory
/// of six pages, every ABI export.
fn valid_wat() -> String {
    format!("(module {ABI_IMPORTS} (memory (export \"memory\") 6) {})", abi_exports())
}

/// `wat` as a binary module.
fn wasm(wat: &str) -> Vec<u8> {
    match wat::parse_str(wat) {
        Ok(bytes) => bytes,
        Err(e) => panic!("test module does not assemble: {e}\n{wat}"),
    }
}

/// A good manifest for `name` `version`.
fn manifest_text(name: &str, version: &str) -> String {
    format!(
        "name: {name}\nversion: {version}\nabi: \"^1\"\ndescription: Keeps messages whose payload holds given bytes.\n\
         counters: [kept, dropped]\nlimits: {{ memory_bytes: 1048576, deadline_ms: 5, fuel: 1000000 }}\n"
    )
}
