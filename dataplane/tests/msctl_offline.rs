//! `msctl` without a control plane: `config validate` checks a file here
//! (like `nginx -t`), `--json` answers in JSON even on errors, and a bad
//! log level is refused before anything is asked of the daemon.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn msctl(args: &[&str]) -> (Option<i32>, String, String) {
    let bin = common::binary().with_file_name("msctl");
    assert!(bin.exists(), "{} not built: run `cargo build --workspace`", bin.display());
    // A socket nobody listens on: nothing here may need the daemon.
    let out = Command::new(bin).args(["--socket", "/nonexistent/msctl.sock"]).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = "eal: { main_lcore: 0 }\nports:\n  - { name: p0, device: net_null0, ipv4: \"198.18.0.1/24\" }\nworkers:\n  lcores: [1]\n";

#[test]
fn config_validate_works_offline_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.yaml", GOOD);
    let (code, out, err) = msctl(&["config", "validate", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("good.yaml: ok"), "{out}");
    let (code, out, _) = msctl(&["--json", "config", "validate", good.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["ok"], true, "{out}");

    let bad = write(dir.path(), "bad.yaml", &GOOD.replace("lcores: [1]", "lcores: [1]\n  rx_burst: 7"));
    let (code, out, err) = msctl(&["config", "validate", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("bad.yaml:6:13: workers.rx_burst: wrote 7; expected 8 to 512"), "{err}");
    let (code, out, _) = msctl(&["--json", "config", "validate", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], false);
    let e = &v["errors"][0];
    assert_eq!((e["line"].as_u64(), e["column"].as_u64()), (Some(6), Some(13)), "{v}");
    assert_eq!(e["file"], bad.to_str().unwrap());
    assert!(e["message"].as_str().unwrap().starts_with("workers.rx_burst: wrote 7"), "{v}");
}

#[test]
fn config_validate_checks_this_hosts_cpus_unless_told_otherwise() {
    let online = std::fs::read_to_string(ms_dataplane::config::host::CPUS_ONLINE_PATH).unwrap();
    let online = ms_dataplane::config::host::parse_cpu_list(&online).unwrap();
    let cpu = (0..).find(|c| !online.contains(c)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = write(dir.path(), "other.yaml", &GOOD.replace("lcores: [1]", &format!("lcores: [{cpu}]")));
    let (code, _, err) = msctl(&["config", "validate", other.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("other.yaml:5:11: workers.lcores[0]: lcore {cpu} runs on CPU {cpu}")), "{err}");
    let (code, out, err) = msctl(&["config", "validate", "--for-other-host", other.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn json_errors_and_bad_log_levels() {
    let (code, out, _) = msctl(&["--json", "status"]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("is ms-controlplane running?"), "{v}");
    for bad in ["", "loud"] {
        let (code, _, err) = msctl(&["log-level", bad]);
        assert_eq!(code, Some(1), "{bad:?}: {err}");
        assert!(err.contains("expected one of error, warn, info, debug, trace, off"), "{bad:?}: {err}");
        assert!(!err.contains("ms-controlplane running"), "refused before asking the daemon: {err}");
    }
}
