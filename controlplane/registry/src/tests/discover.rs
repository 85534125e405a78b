use super::{manifest_text, valid_wat, wasm};
use crate::{discover, keygen, sign, Catalog, PluginError, SecretKey, Signer, Trust, MANIFEST_FILE, MODULE_FILE};
use std::path::Path;

/// Writes a plugin folder `dir/folder` with these files; signed by
/// `secret` when given.
fn write(dir: &Path, folder: &str, manifest: &str, module: &[u8], secret: Option<&SecretKey>) {
    let d = dir.join(folder);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(MANIFEST_FILE), manifest).unwrap();
    std::fs::write(d.join(MODULE_FILE), module).unwrap();
    if let Some(s) = secret {
        std::fs::write(d.join("signature"), sign(manifest.as_bytes(), module, s)).unwrap();
    }
}

/// The refusal reason of `folder`, as the operator reads it.
fn reason(c: &Catalog, folder: &str) -> String {
    match c.refused.iter().find(|r| r.dir.file_name().is_some_and(|f| f == folder)) {
        Some(r) => r.to_string(),
        None => panic!("{folder} was not refused; refused: {:?}", c.refused),
    }
}

#[test]
fn one_good_folder_is_kept_and_each_broken_one_refused_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (secret, public) = keygen().unwrap();
    let good = wasm(&valid_wat());
    let m = manifest_text("filter", "1.2.0");
    let sign_with = Some(&secret);
    write(dir, "filter-1.2.0", &m, &good, sign_with);
    write(dir, "bad-yaml-1.0.0", "name: [bad-yaml\n", &good, sign_with);
    write(dir, "unknown-1.0.0", &format!("{}colour: blue\n", manifest_text("unknown", "1.0.0")), &good, sign_with);
    write(dir, "renamed-1.0.0", &manifest_text("other", "1.0.0"), &good, sign_with);
    write(dir, "semver-1.0", &manifest_text("semver", "1.0"), &good, sign_with);
    write(dir, "abi-1.0.0", &manifest_text("abi", "1.0.0").replace("\"^1\"", "\"^2\""), &good, sign_with);
    let no_start = wasm(&valid_wat().replace("(func (export \"ms_start\") (result i32) i32.const 0)", ""));
    write(dir, "module-1.0.0", &manifest_text("module", "1.0.0"), &no_start, sign_with);
    write(dir, "unsigned-1.0.0", &manifest_text("unsigned", "1.0.0"), &good, None);
    std::fs::create_dir(dir.join("empty-1.0.0")).unwrap();
    std::fs::write(dir.join("README"), "not a plugin").unwrap();
    std::fs::create_dir(dir.join(".incoming")).unwrap();

    let c = discover(dir, &Trust { keys: vec![public], allow_unsigned: false }).unwrap();
    assert_eq!(c.plugins.len(), 1, "{:?}", c.refused);
    let p = &c.plugins[0];
    assert_eq!((p.name(), p.version().to_string().as_str(), p.signer), ("filter", "1.2.0", Signer::Key(public.id())));
    assert_eq!(p.manifest.counters, ["kept", "dropped"]);
    assert_eq!(p.read_module().unwrap(), good);
    assert_eq!(c.refused.len(), 8, "hidden folders and files are skipped: {:?}", c.refused);

    let e = reason(&c, "bad-yaml-1.0.0");
    assert!(e.contains("bad-yaml-1.0.0/manifest.yaml:") && e.contains(":1:"), "{e}");
    let e = reason(&c, "unknown-1.0.0");
    assert!(e.contains("manifest.yaml:7:1: unknown key `colour`"), "{e}");
    let e = reason(&c, "renamed-1.0.0");
    assert!(e.contains("named \"renamed-1.0.0\" but its manifest is \"other-1.0.0\""), "{e}");
    let e = reason(&c, "semver-1.0");
    assert!(e.contains("manifest.yaml:2:10: ") && e.contains("not a semantic version"), "{e}");
    let e = reason(&c, "abi-1.0.0");
    assert!(e.contains("manifest.yaml:3:6: ") && e.contains("does not accept ABI 1"), "{e}");
    let e = reason(&c, "module-1.0.0");
    assert!(e.contains("plugin.wasm: the module does not export ms_start"), "{e}");
    let e = reason(&c, "unsigned-1.0.0");
    assert!(e.contains("not signed"), "{e}");
    let e = reason(&c, "empty-1.0.0");
    assert!(e.contains("cannot read") && e.contains("manifest.yaml"), "{e}");
}

#[test]
fn unsigned_plugins_load_when_allowed_and_a_tampered_one_never_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (secret, public) = keygen().unwrap();
    let good = wasm(&valid_wat());
    write(dir, "open-1.0.0", &manifest_text("open", "1.0.0"), &good, None);
    write(dir, "signed-1.0.0", &manifest_text("signed", "1.0.0"), &good, Some(&secret));
    std::fs::write(
        dir.join("signed-1.0.0").join(MODULE_FILE),
        wasm(&valid_wat().replace("\"memory\") 6)", "\"memory\") 7)")),
    )
    .unwrap();
    let c = discover(dir, &Trust { keys: vec![public], allow_unsigned: true }).unwrap();
    assert_eq!(c.plugins.iter().map(|p| (p.name(), p.signer)).collect::<Vec<_>>(), [("open", Signer::Unsigned)]);
    assert!(reason(&c, "signed-1.0.0").contains("changed after signing"), "{}", reason(&c, "signed-1.0.0"));
}

#[test]
fn cross_file_checks_and_a_module_changed_after_discovery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let lax = Trust { keys: vec![], allow_unsigned: true };
    // The manifest asks for 1 MiB (16 pages); the module starts at 17.
    let small = manifest_text("small", "1.0.0");
    let big_memory = wasm(&valid_wat().replace("(memory (export \"memory\") 6)", "(memory (export \"memory\") 17)"));
    write(dir, "small-1.0.0", &small, &big_memory, None);
    write(dir, "ok-1.0.0", &manifest_text("ok", "1.0.0"), &wasm(&valid_wat()), None);
    let c = discover(dir, &lax).unwrap();
    let e = reason(&c, "small-1.0.0");
    assert!(e.contains("limits.memory_bytes is 1048576 but the module's memory starts at 1114112 bytes"), "{e}");
    std::fs::write(dir.join("ok-1.0.0").join(MODULE_FILE), b"changed").unwrap();
    let e = c.plugins[0].read_module().unwrap_err();
    assert!(matches!(e, PluginError::Changed { .. }) && e.to_string().contains("discover the plugins again"), "{e}");
}

#[test]
fn an_oversize_module_is_refused_before_it_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let big = vec![0u8; crate::MODULE_BYTES_MAX + 1];
    write(tmp.path(), "big-1.0.0", &manifest_text("big", "1.0.0"), &big, None);
    let c = discover(tmp.path(), &Trust { keys: vec![], allow_unsigned: true }).unwrap();
    let e = reason(&c, "big-1.0.0");
    assert!(e.contains("plugin.wasm is over 8388608 bytes"), "{e}");
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let e = discover(&tmp.path().join("nope"), &Trust::default()).unwrap_err().to_string();
    assert!(e.contains("cannot list the plugin directory") && e.contains("nope"), "{e}");
}
