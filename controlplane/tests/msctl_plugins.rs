//! `msctl plugins keygen | sign | verify`, offline, on a plugin folder
//! holding the pass-through example (built by `make plugins`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn msctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .args(["--socket", "/nonexistent/msctl.sock"])
        .args(args)
        .output()
        .expect("msctl runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (_, out, err) = msctl(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
}

/// `dir/pass-1.0.0/` with a manifest and the pass example's module.
fn plugin_folder(dir: &Path) -> PathBuf {
    let wasm = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm32-unknown-unknown/plugin/ms_plugin_pass.wasm");
    let module =
        std::fs::read(wasm).unwrap_or_else(|e| panic!("{wasm}: {e}: build the example plugins first (make plugins)"));
    let folder = dir.join("pass-1.0.0");
    std::fs::create_dir(&folder).unwrap();
    let manifest = "name: pass\nversion: 1.0.0\nabi: \"^1\"\ndescription: Passes every message.\n";
    std::fs::write(folder.join("manifest.yaml"), manifest).unwrap();
    std::fs::write(folder.join("plugin.wasm"), module).unwrap();
    folder
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path());
    let prefix = dir.path().join("ops");
    let keys = json(&["plugins", "keygen", s(&prefix)]);
    assert_eq!(keys["ok"], true, "{keys}");
    let (public, secret) = (dir.path().join("ops.key"), dir.path().join("ops.secret"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let (code, _, err) = msctl(&["plugins", "keygen", s(&prefix)]);
    assert_eq!(code, Some(1));
    assert!(err.contains("never overwritten"), "{err}");

    // Unsigned: refused, unless allowed.
    let (code, _, err) = msctl(&["plugins", "verify", s(&folder), "--trust", s(&public)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sign"), "{err}");
    assert_eq!(json(&["plugins", "verify", s(&folder), "--allow-unsigned"])["plugin"]["signed_by"], Value::Null);

    let signed = json(&["plugins", "sign", s(&folder), "--key", s(&secret)]);
    assert_eq!(signed["plugin"]["key_id"], keys["plugin"]["key_id"], "{signed}");
    let ok = json(&["plugins", "verify", s(&folder), "--trust", s(&public)]);
    assert_eq!(ok["plugin"]["name"], "pass", "{ok}");
    assert_eq!(ok["plugin"]["signed_by"]["key_id"], keys["plugin"]["key_id"]);
    let (code, out, _) = msctl(&["plugins", "verify", s(&folder), "--trust", s(&public)]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("pass 1.0.0: ok, signed by "), "{out}");

    // Another key does not vouch for it; a changed module breaks it.
    let other = dir.path().join("other");
    json(&["plugins", "keygen", s(&other)]);
    let (code, _, err) = msctl(&["plugins", "verify", s(&folder), "--trust", s(&dir.path().join("other.key"))]);
    assert_eq!(code, Some(1), "{err}");
    let mut module = std::fs::read(folder.join("plugin.wasm")).unwrap();
    let last = module.len() - 1;
    module[last] ^= 1;
    std::fs::write(folder.join("plugin.wasm"), module).unwrap();
    let (code, _, err) = msctl(&["plugins", "verify", s(&folder), "--trust", s(&public)]);
    assert_eq!(code, Some(1), "a changed module: {err}");
}

#[test]
fn a_plugin_that_fails_its_checks_is_not_signed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = plugin_folder(dir.path());
    json(&["plugins", "keygen", s(&dir.path().join("k"))]);
    std::fs::write(folder.join("manifest.yaml"), "name: pass\nversion: 1.0.0\nabi: \"^2\"\ndescription: x\n").unwrap();
    let (code, _, err) = msctl(&["plugins", "sign", s(&folder), "--key", s(&dir.path().join("k.secret"))]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not signed") && err.contains("abi"), "{err}");
    assert!(!folder.join("signature").exists());
    let (code, _, err) = msctl(&["plugins", "sign", s(&folder), "--key", s(&dir.path().join("k.key"))]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a secret key file"), "{err}");
}
