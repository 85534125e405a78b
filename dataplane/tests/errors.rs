//! The binary refuses bad input with a clear message and a nonzero exit,
//! never a panic; and it stops cleanly on SIGINT.

mod common;

use common::{require_root, Dataplane};
use std::process::Command;
use std::time::Duration;

fn config(device: &str, extra: &str) -> String {
    format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 256{extra} }}
ports:
  - name: p0
    device: "{device}"
    ipv4: "198.18.0.1/24"
workers: {{ lcores: [1] }}
mempool: {{ mbufs: 4095, cache: 64 }}
"#
    )
}

fn assert_clean_failure(done: &common::Finished, want: &[&str]) {
    assert_eq!(done.status.code(), Some(1), "exit code; stderr:\n{}", done.stderr);
    assert!(!done.stderr.contains("panicked"), "panicked:\n{}", done.stderr);
    for w in want {
        assert!(done.stderr.contains(w), "want {w:?} in:\n{}", done.stderr);
    }
}

#[test]
fn bad_config_is_refused_with_file_line_column() {
    let bad = config("net_null0", "").replace("lcores: [1]", "lcores: [1], burst: 4");
    let done = Dataplane::run_to_exit(&bad, Duration::from_secs(10));
    assert_clean_failure(&done, &["dataplane.yaml:7:", "unknown field `burst`", "expected one of lcores, rx_burst"]);
}

#[test]
fn bad_value_is_refused_with_what_was_expected() {
    let bad = config("net_null0", "").replace("198.18.0.1/24", "198.18.0.300/24");
    let done = Dataplane::run_to_exit(&bad, Duration::from_secs(10));
    assert_clean_failure(&done, &["dataplane.yaml:6:11:", "expected address/length"]);
}

#[test]
fn missing_config_says_so() {
    let out = Command::new(common::binary()).args(["--config", "/nonexistent/ms.yaml"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/nonexistent/ms.yaml: cannot read config: No such file"), "{err}");
}

#[test]
fn check_flag_validates_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/memorystreamer.yaml");
    let out = Command::new(common::binary()).args(["--config", example, "--check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_vdev_driver_fails_clearly() {
    require_root();
    let _g = common::exclusive();
    let done = Dataplane::run_to_exit(&config("net_bogus0,speed=fast", ""), Duration::from_secs(30));
    assert_clean_failure(&done, &["port p0: cannot create virtual device \"net_bogus0\"", "Check the driver name"]);
}

#[test]
fn checksum_offload_on_a_driver_without_it_is_refused() {
    require_root();
    let _g = common::exclusive();
    let cfg = config("net_null0", "")
        .replace("ipv4: \"198.18.0.1/24\"", "ipv4: \"198.18.0.1/24\"\n    udp_checksum: offload");
    let done = Dataplane::run_to_exit(&cfg, Duration::from_secs(30));
    assert_clean_failure(
        &done,
        &["port p0: ports[].udp_checksum is offload, but driver net_null", "udp_checksum: software"],
    );
}

#[test]
fn bad_vdev_arguments_fail_clearly() {
    require_root();
    let _g = common::exclusive();
    let done = Dataplane::run_to_exit(&config("net_pcap0,rx_pcap=/nonexistent/in.pcap", ""), Duration::from_secs(30));
    assert_clean_failure(
        &done,
        &["port p0: cannot create virtual device \"net_pcap0\"", "rx_pcap=/nonexistent/in.pcap"],
    );
}

#[test]
fn eal_init_failure_names_the_fix() {
    require_root();
    let _g = common::exclusive();
    let done =
        Dataplane::run_to_exit(&config("net_null0", ", extra_args: [\"--no-such-eal-flag\"]"), Duration::from_secs(30));
    assert_clean_failure(&done, &["DPDK EAL init failed", "eal.extra_args"]);
}

#[test]
fn sigint_stops_workers_ports_and_eal_cleanly() {
    require_root();
    let _g = common::exclusive();
    let mut dp = Dataplane::spawn(&config("net_null0", ""));
    dp.wait_ready(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    let done = dp.stop_with("INT");
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    assert!(done.stderr.contains("\"stopping\""), "{}", done.stderr);
    // net_null delivers zero-filled frames as fast as it is polled: each is
    // dropped with a reason, none crash the worker.
    let rx = done.total("rx_packets");
    assert!(rx > 0);
    let c = done.counters()["total"].clone();
    let drops: u64 =
        c.as_object().unwrap().iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v.as_u64().unwrap()).sum();
    assert_eq!(drops, rx, "{c:#}");
}

/// The first CPU this machine does not have online.
fn offline_cpu() -> u32 {
    let online = std::fs::read_to_string(ms_dataplane::config::host::CPUS_ONLINE_PATH)
        .expect("read /sys/devices/system/cpu/online");
    let online = ms_dataplane::config::host::parse_cpu_list(&online).expect("parse the online CPU list");
    (0..).find(|c| !online.contains(c)).unwrap_or(u32::MAX)
}

#[test]
fn check_refuses_lcores_this_machine_does_not_have() {
    let cpu = offline_cpu();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.yaml");
    std::fs::write(&path, config("net_null0", "").replace("lcores: [1]", &format!("lcores: [{cpu}]"))).unwrap();
    let out = Command::new(common::binary()).arg("--config").arg(&path).arg("--check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "other.yaml:7:20: workers.lcores[0]: lcore {cpu} runs on CPU {cpu}, which this machine does not have online"
    );
    assert!(err.contains(&want), "want {want:?} in {err}");
    // The same file validated for another machine passes.
    let out = Command::new(common::binary())
        .arg("--config")
        .arg(&path)
        .args(["--check", "--for-other-host"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
