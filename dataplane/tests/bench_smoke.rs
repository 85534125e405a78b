//! `ms-bench` keeps working: a short run at a low rate through the ring
//! pair delivers every message, in DPDK, with no allocation on the worker.
//! (Throughput and latency are benchmark results, not test assertions.)

mod common;

use std::process::Command;

#[test]
fn bench_delivers_everything_at_a_low_rate() {
    common::require_root();
    let _guard = common::exclusive();
    let out = Command::new(env!("CARGO_BIN_EXE_ms-bench"))
        .args([
            "--rate",
            "20000",
            "--seconds",
            "0.5",
            "--streams",
            "100",
            "--subscribers",
            "2",
            "--batch",
            "4",
            "--json",
        ])
        .output()
        .expect("run ms-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ms-bench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(r["subscribed"], true, "{r:#}");
    assert_eq!(r["sent"], 10_000, "{r:#}");
    assert_eq!(r["received"], 20_000, "every message reached both subscribers: {r:#}");
    assert_eq!(r["lost"], 0, "{r:#}");
    assert_eq!(r["worker_heap_allocations"], 0, "{r:#}");
    assert!(r["latency_ns"]["p50"].as_u64().unwrap() > 0, "{r:#}");
}
