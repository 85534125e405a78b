//! The plugin directory: one folder per plugin version, each read and
//! checked on its own, so a broken one is listed with its reason and the
//! others stay usable.

use crate::manifest::{Manifest, ManifestError, MANIFEST_BYTES_MAX};
use crate::module::{validate_module, ModuleError, ModuleInfo, MODULE_BYTES_MAX};
use crate::signing::{SignatureError, Signer, Trust, SIGNATURE_BYTES_MAX};
use semver::{Version, VersionReq};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The manifest's file name in a plugin folder.
pub const MANIFEST_FILE: &str = "manifest.yaml";
/// The module's file name in a plugin folder.
pub const MODULE_FILE: &str = "plugin.wasm";
/// The detached signature's file name in a plugin folder.
pub const SIGNATURE_FILE: &str = "signature";

/// A plugin version that passed every check: usable in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// Its folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// What validation learned about its module.
    pub module: ModuleInfo,
    /// SHA-256 of the module that was checked (see [`Plugin::read_module`]).
    pub module_sha256: [u8; 32],
    /// Who signed it.
    pub signer: Signer,
}

/// A folder that was refused, and why.
#[derive(Debug, thiserror::Error)]
pub struct Refused {
    /// The folder.
    pub dir: PathBuf,
    /// Why.
    pub error: PluginError,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An error that names its file (folder included) needs no prefix.
        match &self.error {
            PluginError::Manifest(_)
            | PluginError::Io { .. }
            | PluginError::TooLarge { .. }
            | PluginError::SignatureNotText { .. }
            | PluginError::Changed { .. } => write!(f, "{}", self.error),
            _ => write!(f, "{}: {}", self.dir.display(), self.error),
        }
    }
}

/// What a plugin directory holds.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The usable plugins, by name then version.
    pub plugins: Vec<Plugin>,
    /// The folders refused, by folder name.
    pub refused: Vec<Refused>,
}

/// What [`check_plugin`] accepted: the parts of a [`Plugin`] that come
/// from its files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The manifest.
    pub manifest: Manifest,
    /// What validation learned about the module.
    pub module: ModuleInfo,
    /// Who signed it.
    pub signer: Signer,
}

/// The plugin directory cannot be listed at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot list the plugin directory {}: {source}; check the path and its permissions", dir.display())]
pub struct DiscoverError {
    /// The directory.
    pub dir: PathBuf,
    /// The I/O error.
    pub source: io::Error,
}

/// Why one plugin folder is refused.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}; check that it exists and is readable", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file is larger than its kind ever is.
    #[error("{} is over {max} bytes, which no {what} is; is it the right file?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The signature file is not text.
    #[error("{} is not text; a signature file is one line of hex: sign the plugin again", path.display())]
    SignatureNotText {
        /// The file.
        path: PathBuf,
    },
    /// The signature is missing, malformed, untrusted or wrong.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The folder's name is not the manifest's `<name>-<version>`.
    #[error(
        "the folder is named {folder:?} but its manifest is {expected:?}; a plugin folder is named \
         <name>-<version>: rename the folder, or fix the manifest's name and version"
    )]
    FolderName {
        /// The folder's name.
        folder: String,
        /// What the manifest makes it.
        expected: String,
    },
    /// The module is refused.
    #[error("{MODULE_FILE}: {0}")]
    Module(#[from] ModuleError),
    /// The manifest asks for less memory than the module starts with.
    #[error(
        "limits.memory_bytes is {asked} but the module's memory starts at {needed} bytes: raise \
         limits.memory_bytes to at least {needed}, or build the module with a smaller initial memory"
    )]
    MemoryBelowModule {
        /// The manifest's request.
        asked: u64,
        /// The module's initial memory.
        needed: u64,
    },
    /// The module changed since it was checked.
    #[error(
        "{} changed since it was checked; discover the plugins again before using it",
        path.display()
    )]
    Changed {
        /// The module file.
        path: PathBuf,
    },
}

/// Reads every plugin folder of `dir`. Entries that are not folders, and
/// folders whose name starts with `.` (an upload in progress, an editor's
/// files), are skipped; every other folder ends up in the catalog's
/// plugins or its refused list.
pub fn discover(dir: &Path, trust: &Trust) -> Result<Catalog, DiscoverError> {
    let listing = std::fs::read_dir(dir).map_err(|source| DiscoverError { dir: dir.to_path_buf(), source })?;
    let mut folders = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| DiscoverError { dir: dir.to_path_buf(), source })?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        // Follows symbolic links, so a folder linked in is read too.
        if !hidden && entry.path().is_dir() {
            folders.push(entry.path());
        }
    }
    folders.sort();
    let mut catalog = Catalog::default();
    for folder in folders {
        match load_plugin(&folder, trust) {
            Ok(p) => catalog.plugins.push(p),
            Err(error) => catalog.refused.push(Refused { dir: folder, error }),
        }
    }
    catalog
        .plugins
        .sort_by(|a, b| (&a.manifest.name, &a.manifest.version).cmp(&(&b.manifest.name, &b.manifest.version)));
    Ok(catalog)
}

/// Reads and checks one plugin folder.
pub fn load_plugin(folder: &Path, trust: &Trust) -> Result<Plugin, PluginError> {
    let manifest = read_capped(&folder.join(MANIFEST_FILE), MANIFEST_BYTES_MAX, "manifest")?;
    let module = read_capped(&folder.join(MODULE_FILE), MODULE_BYTES_MAX, "plugin module")?;
    let signature = read_signature(&folder.join(SIGNATURE_FILE))?;
    let name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let origin = folder.join(MANIFEST_FILE).display().to_string();
    let checked = check_plugin(&name, &origin, &manifest, &module, signature.as_deref(), trust)?;
    Ok(Plugin {
        dir: folder.to_path_buf(),
        manifest: checked.manifest,
        module: checked.module,
        module_sha256: Sha256::digest(&module).into(),
        signer: checked.signer,
    })
}

/// Checks a plugin from its files' contents: `folder` is its folder's
/// name, `origin` names the manifest in errors, `signature` is the
/// signature file's text (`None` when there is none). Pure: usable on an
/// upload before anything is written.
///
/// The signature is checked first, so that with a signing policy no
/// parser sees bytes that no trusted key vouched for.
pub fn check_plugin(
    folder: &str,
    origin: &str,
    manifest: &[u8],
    module: &[u8],
    signature: Option<&str>,
    trust: &Trust,
) -> Result<Checked, PluginError> {
    let signer = trust.check(manifest, module, signature)?;
    let manifest = Manifest::parse(manifest, origin)?;
    let expected = format!("{}-{}", manifest.name, manifest.version);
    if folder != expected {
        return Err(PluginError::FolderName { folder: folder.to_string(), expected });
    }
    let module = validate_module(module)?;
    if let Some(asked) = manifest.limits.memory_bytes.filter(|&m| m < module.memory_min_bytes) {
        return Err(PluginError::MemoryBelowModule { asked, needed: module.memory_min_bytes });
    }
    Ok(Checked { manifest, module, signer })
}

/// A file's bytes, refused past `max` (read no further than that).
fn read_capped(path: &Path, max: usize, what: &'static str) -> Result<Vec<u8>, PluginError> {
    let io = |source| PluginError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > max {
        return Err(PluginError::TooLarge { path: path.to_path_buf(), what, max });
    }
    Ok(bytes)
}

/// The signature file's text; `None` when the folder has none.
fn read_signature(path: &Path) -> Result<Option<String>, PluginError> {
    let bytes = match read_capped(path, SIGNATURE_BYTES_MAX, "signature file") {
        Ok(b) => b,
        Err(PluginError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| PluginError::SignatureNotText { path: path.to_path_buf() })
}

impl Plugin {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Its version.
    pub fn version(&self) -> &Version {
        &self.manifest.version
    }

    /// Reads its module again (to precompile it), refused when the file no
    /// longer holds the bytes that were checked.
    pub fn read_module(&self) -> Result<Vec<u8>, PluginError> {
        let path = self.dir.join(MODULE_FILE);
        let bytes = read_capped(&path, MODULE_BYTES_MAX, "plugin module")?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != self.module_sha256 {
            return Err(PluginError::Changed { path });
        }
        Ok(bytes)
    }
}

impl Catalog {
    /// The usable versions of `name`, lowest first.
    pub fn versions<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Plugin> + 'a {
        let name = name.to_string();
        self.plugins.iter().filter(move |p| p.manifest.name == name)
    }

    /// The highest usable version of `name` that `req` matches.
    pub fn best(&self, name: &str, req: &VersionReq) -> Option<&Plugin> {
        self.versions(name).filter(|p| req.matches(&p.manifest.version)).max_by(|a, b| a.version().cmp(b.version()))
    }

    /// The refused folders that look like versions of `name` (their folder
    /// name starts with `<name>-`), to explain why it is missing.
    pub fn refused_for<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Refused> + 'a {
        let prefix = format!("{name}-");
        self.refused.iter().filter(move |r| r.dir.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&prefix)))
    }
}
