//! Runs of this program as subprocesses: the loss-free rate sweep, the
//! testpmd ceiling and the whole suite.

use crate::{mib, Args};
use anyhow::Context;
use serde_json::{json, Value};

/// One run of this program as a subprocess with `extra` flags, parsed.
pub(crate) fn run_child(a: &Args, rate: u64, extra: &[&str]) -> anyhow::Result<Value> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--json", "--rate", &rate.to_string(), "--seconds", &a.seconds().to_string()])
        .args(["--streams", &a.streams().to_string(), "--subscribers", &a.subscribers().to_string()])
        .args(["--payload", &a.payload.to_string(), "--batch", &a.batch.to_string(), "--zipf", &a.zipf.to_string()])
        .args(extra)
        .stderr(std::process::Stdio::null());
    if a.realtime_priority > 0 {
        cmd.args(["--realtime-priority", &a.realtime_priority.to_string()]);
    }
    if let Some(b) = a.rx_burst.filter(|_| !extra.contains(&"--rx-burst")) {
        cmd.args(["--rx-burst", &b.to_string()]);
    }
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("ms-bench {extra:?} at {rate} msg/s printed {line:?}"))
}

fn run_once(a: &Args, rate: u64) -> anyhow::Result<Value> {
    run_child(a, rate, &[])
}

fn sustained(r: &Value) -> bool {
    r["subscribed"] == true && r["lost"] == 0 && r["generator_dropped_packets"] == 0
}

/// Doubling, then bisection: the highest offered rate with no loss.
pub(crate) fn sweep(a: &Args) -> anyhow::Result<Value> {
    let (mut good, mut bad) = (0u64, 0u64);
    let mut rate = 100_000u64;
    for _ in 0..10 {
        eprint!("\r[bench] {:<46} trying {:>10} msg/s   ", label(a), rate);
        if sustained(&run_once(a, rate)?) {
            good = rate;
            rate *= 2;
        } else {
            bad = rate;
            break;
        }
    }
    if bad > 0 {
        for _ in 0..3 {
            let mid = (good + bad) / 2;
            eprint!("\r[bench] {:<46} trying {:>10} msg/s   ", label(a), mid);
            if sustained(&run_once(a, mid)?) {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    let mut at = serde_json::Map::new();
    for pct in [10u64, 50, 80] {
        let r = run_once(a, (good * pct / 100).max(1000))?;
        at.insert(
            format!("at_{pct}pct"),
            json!({
                "rate": good * pct / 100, "latency_ns": r["latency_ns"],
                "appliance_busy_turn_ns": r["appliance_busy_turn_ns"], "lost": r["lost"],
            }),
        );
    }
    let best = run_once(a, good.max(1000))?;
    eprintln!();
    Ok(json!({
        "scenario": label(a), "max_sustained_msgs_per_s": good, "pps_at_max": best["dut_rx_pps"],
        "credit_entries_at_max": best["credit_entries"], "latency": at,
    }))
}

fn label(a: &Args) -> String {
    let skew = if a.zipf > 0.0 { format!(" zipf {}", a.zipf) } else { String::new() };
    format!("{} streams{skew}, 1:{}, {} B, {}/datagram", a.streams(), a.subscribers(), a.payload, a.batch)
}

/// testpmd io-forward on a ring port, one forwarding core (lcore 1, the
/// worker's CPU): the raw I/O ceiling of this port type on this core.
fn ceiling() -> anyhow::Result<f64> {
    let child = std::process::Command::new("dpdk-testpmd")
        .args([
            "-l",
            "0,1",
            "--no-pci",
            "--in-memory",
            "--log-level",
            "1",
            "--file-prefix",
            &format!("msb-tp-{}", std::process::id()),
        ])
        .args(["--vdev=net_ring0", "--", "--forward-mode=io", "--tx-first", "--stats-period=1", "--nb-cores=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("run dpdk-testpmd (package dpdk-dev)")?;
    std::thread::sleep(std::time::Duration::from_secs(6));
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let out = child.wait_with_output()?;
    let mut pps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .collect();
    pps.sort_by(|a, b| a.total_cmp(b));
    pps.get(pps.len() / 2).copied().context("testpmd printed no Rx-pps")
}

/// Every scenario of the issue (see docs/PERFORMANCE.md).
pub(crate) fn suite(a: &Args) -> anyhow::Result<()> {
    let base = Args {
        rate: None,
        seconds: a.seconds,
        streams: Some(1),
        subscribers: Some(1),
        payload: 64,
        batch: 16,
        zipf: 0.0,
        json: true,
        sweep: true,
        suite: false,
        overload: false,
        million: false,
        rx_burst: None,
        rtt: None,
        realtime_priority: a.realtime_priority,
    };
    let scenarios = [
        Args { ..base },
        Args { batch: 1, ..base },
        Args { streams: Some(10_000), ..base },
        Args { streams: Some(1_000_000), ..base },
        Args { streams: Some(1_000_000), zipf: 1.0, ..base },
        Args { subscribers: Some(8), ..base },
        Args { payload: 32, ..base },
        // 16 x 256 B do not fit one datagram: as many as fit (5).
        Args {
            payload: 256,
            batch: (ms_wire::DATAGRAM_MAX - ms_wire::HEADER_LEN) / (ms_wire::publish::ENTRY_HEADER_LEN + 256),
            ..base
        },
    ];
    let ceiling_pps = ceiling()?;
    eprintln!("[bench] testpmd io-forward ceiling on net_ring, one core: {ceiling_pps:.0} pps");
    let mut rows = Vec::new();
    for s in &scenarios {
        rows.push(sweep(s)?);
    }
    eprintln!("[bench] a million streams: subscribe, load, unsubscribe");
    let million_args = Args { million: true, sweep: false, streams: Some(1_000_000), seconds: Some(2.0), ..base };
    let million = run_child(&million_args, 1_000_000, &["--million"])?;
    let summary = json!({ "ceiling_testpmd_ring_pps": ceiling_pps, "scenarios": rows, "million": million });
    if a.json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "\n{:<46} {:>12} {:>11} {:>9} {:>10} {:>10} {:>10} {:>14}",
        "scenario", "max msg/s", "pps", "% ceiling", "p99@10%", "p99@50%", "p99@80%", "in-DUT p99@50%"
    );
    for r in &rows {
        let pps = r["pps_at_max"].as_f64().unwrap_or(0.0);
        let p99 = |k: &str| format!("{:.1} us", r["latency"][k]["latency_ns"]["p99"].as_f64().unwrap_or(0.0) / 1000.0);
        let dut = r["latency"]["at_50pct"]["appliance_busy_turn_ns"]["p99_le"]
            .as_f64()
            .map_or("-".to_string(), |v| format!("<{:.1} us", v / 1000.0));
        println!(
            "{:<46} {:>12} {:>11.0} {:>8.3}% {:>10} {:>10} {:>10} {:>14}",
            r["scenario"].as_str().unwrap_or(""),
            r["max_sustained_msgs_per_s"],
            pps,
            100.0 * pps / ceiling_pps,
            p99("at_10pct"),
            p99("at_50pct"),
            p99("at_80pct"),
            dut
        );
    }
    let rss = &million["rss_bytes"];
    println!(
        "\n1M streams: {:.1} B of stream table per idle stream; RSS {} before subscribing, {} subscribed, {} after \
         the load, {} unsubscribed, {} after a second round; lost {}",
        million["stream_table_bytes_per_idle_stream"].as_f64().unwrap_or(0.0),
        mib(&rss["before_subscribing"]),
        mib(&rss["after_subscribing"]),
        mib(&rss["after_load"]),
        mib(&rss["after_unsubscribing"]),
        mib(&rss["after_a_second_round"]),
        million["load"]["lost"]
    );
    Ok(())
}
