//! `ms-bench` keeps working: a short run at a low rate through the ring
//! pair delivers every message, in DPDK, with no allocation on the worker;
//! and a stream that carries far more than the initial credit keeps
//! flowing because the generator's subscribers grant more.
//! (Throughput and latency are benchmark results, not test assertions.)

mod common;

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ms-bench")).args(args).arg("--json").output().expect("run ms-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ms-bench failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn bench_delivers_everything_at_a_low_rate() {
    common::require_root();
    let _guard = common::exclusive();
    let r = bench(&["--rate", "20000", "--seconds", "0.5", "--streams", "100", "--subscribers", "2", "--batch", "4"]);
    assert_eq!(r["subscribed"], true, "{r:#}");
    assert_eq!(r["sent"], 10_000, "{r:#}");
    assert_eq!(r["received"], 20_000, "every message reached both subscribers: {r:#}");
    assert_eq!(r["lost"], 0, "{r:#}");
    assert_eq!(r["worker_heap_allocations"], 0, "{r:#}");
    assert!(r["latency_ns"]["p50"].as_u64().unwrap() > 0, "{r:#}");
}

#[test]
fn subscribers_grant_credit_so_a_long_stream_keeps_flowing() {
    common::require_root();
    let _guard = common::exclusive();
    // 40,000 messages of 64 B on one stream: 2.5 MB, forty times the
    // initial credit (64 KiB), so without grants it would stall at 1024.
    let r = bench(&["--rate", "80000", "--seconds", "0.5", "--streams", "1", "--subscribers", "2"]);
    assert_eq!(r["subscribed"], true, "{r:#}");
    assert_eq!(r["sent"], 40_000, "{r:#}");
    assert_eq!(r["received"], 80_000, "every message reached both subscribers: {r:#}");
    assert!(r["credit_entries"].as_u64().unwrap() >= 2, "each subscriber granted credit: {r:#}");
    assert_eq!(r["dataplane"]["credits_unknown"], serde_json::Value::Null, "no grant missed its subscription: {r:#}");
    assert_eq!(r["worker_heap_allocations"], 0, "{r:#}");
}
