//! msctl's offline plugin commands: make a key pair, sign a plugin folder,
//! check one as the control plane will (manifest, module, signature).
//! Each is one action function returning JSON, shared by the text and the
//! `--json` output.

use anyhow::{bail, Context};
use ms_plugin_registry::{self as registry, PublicKey, SecretKey, Signer, Trust};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The two files `keygen` writes for `prefix`.
pub fn key_files(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut p = prefix.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    (with(".key"), with(".secret"))
}

/// Writes a new key pair: `<prefix>.key` (public, the key a verifier
/// trusts) and `<prefix>.secret` (mode 0600, for `sign`). Existing
/// files are never overwritten.
pub fn keygen(prefix: &Path) -> anyhow::Result<Value> {
    let (public_file, secret_file) = key_files(prefix);
    for f in [&public_file, &secret_file] {
        if f.exists() {
            bail!("{} exists: choose another prefix (a key is never overwritten)", f.display());
        }
    }
    let (secret, public) = registry::keygen().context("generating a key")?;
    write_new(&secret_file, &secret.to_text(), 0o600)?;
    write_new(&public_file, &public.to_text(), 0o644)?;
    Ok(json!({
        "key_id": public.id().to_string(),
        "public": public_file.display().to_string(),
        "secret": secret_file.display().to_string(),
    }))
}

fn write_new(file: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(file)
        .with_context(|| format!("create {}", file.display()))?;
    writeln!(f, "{text}").with_context(|| format!("write {}", file.display()))
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("read {}", file.display()))
}

fn read_text(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))
}

/// Signs the plugin in `folder` with the secret key in `secret_file`,
/// writing `folder/signature`. The plugin is checked first: a manifest or
/// module the control plane would refuse is not signed.
pub fn sign(folder: &Path, secret_file: &Path) -> anyhow::Result<Value> {
    let secret = SecretKey::parse(read_text(secret_file)?.trim()).with_context(|| {
        format!("{}: not a secret key file (msctl plugins keygen makes one)", secret_file.display())
    })?;
    let manifest = read(&folder.join(registry::MANIFEST_FILE))?;
    let module = read(&folder.join(registry::MODULE_FILE))?;
    let origin = folder.join(registry::MANIFEST_FILE).display().to_string();
    let unsigned = Trust { keys: Vec::new(), allow_unsigned: true };
    let full = folder.canonicalize().with_context(|| format!("{}", folder.display()))?;
    let name = full.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    registry::check_plugin(&name, &origin, &manifest, &module, None, &unsigned)
        .with_context(|| format!("{} is not signed", folder.display()))?;
    let signature = registry::sign(&manifest, &module, &secret);
    let file = folder.join(registry::SIGNATURE_FILE);
    std::fs::write(&file, &signature).with_context(|| format!("write {}", file.display()))?;
    Ok(json!({ "signature": file.display().to_string(), "key_id": secret.public_key().id().to_string() }))
}

/// Checks the plugin in `folder` as the control plane will, trusting the
/// public keys in `trusted` (and unsigned plugins when `allow_unsigned`).
pub fn verify(folder: &Path, trusted: &[PathBuf], allow_unsigned: bool) -> anyhow::Result<Value> {
    let mut keys = Vec::new();
    for f in trusted {
        let key = PublicKey::parse(read_text(f)?.trim())
            .with_context(|| format!("{}: not a public key file (msctl plugins keygen makes one)", f.display()))?;
        keys.push(key);
    }
    let p = registry::load_plugin(folder, &Trust { keys, allow_unsigned })?;
    let signer = match p.signer {
        Signer::Key(id) => json!({ "key_id": id.to_string() }),
        Signer::Unsigned => Value::Null,
    };
    let sha256: String = p.module_sha256.iter().map(|b| format!("{b:02x}")).collect();
    Ok(json!({
        "name": p.name(),
        "version": p.version().to_string(),
        "description": p.manifest.description,
        "signed_by": signer,
        "module_bytes": p.module.len,
        "module_sha256": sha256,
        "memory_min_bytes": p.module.memory_min_bytes,
        "imports": p.module.imports,
        "counters": p.manifest.counters,
    }))
}
