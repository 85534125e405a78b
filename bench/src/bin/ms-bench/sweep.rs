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
    if a.udp_checksum != crate::LinkChecksum::Software {
        cmd.args(["--udp-checksum", "none"]);
    }
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
        udp_checksum: a.udp_checksum,
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
    let headline = crate::ceilings::frame_len(64, 16);
    let ceilings = json!({
        "16_per_datagram": crate::ceilings::all(headline, 64)?,
        "1_per_datagram": crate::ceilings::all(crate::ceilings::frame_len(64, 1), 64)?,
    });
    let mut rows = Vec::new();
    for s in &scenarios {
        rows.push(sweep(s)?);
    }
    eprintln!("[bench] closed loop: 1,000,000 round trips, one message in flight");
    let rtt_args = Args { sweep: false, batch: 1, rtt: Some(1_000_000), ..base };
    let rtt = run_child(&rtt_args, 1, &["--rtt", "1000000"])?;
    eprintln!("[bench] a million streams: subscribe, load, unsubscribe");
    let million_args = Args { million: true, sweep: false, streams: Some(1_000_000), seconds: Some(2.0), ..base };
    let million = run_child(&million_args, 1_000_000, &["--million"])?;
    let summary = json!({ "ceilings": ceilings, "scenarios": rows, "round_trips": rtt, "million": million });
    if a.json {
        println!("{summary}");
        return Ok(());
    }
    print_suite(&rows, &ceilings, &rtt);
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

/// The suite's tables: each scenario beside the ceilings of its frame size,
/// then the round trips beside the CPUs' noise.
fn print_suite(rows: &[Value], ceilings: &Value, rtt: &Value) {
    println!(
        "\n{:<46} {:>12} {:>10} {:>10} {:>10} {:>10} {:>14} {:>8} {:>8}",
        "scenario", "max msg/s", "pps", "p99@10%", "p99@50%", "p99@80%", "in-DUT p99@50%", "/csum", "/memcpy"
    );
    for r in rows {
        let pps = r["pps_at_max"].as_f64().unwrap_or(0.0);
        let msgs = r["max_sustained_msgs_per_s"].as_f64().unwrap_or(0.0);
        let c = if r["scenario"].as_str().unwrap_or("").ends_with(" 1/datagram") {
            &ceilings["1_per_datagram"]
        } else {
            &ceilings["16_per_datagram"]
        };
        let csum = c["testpmd_pps"]["csum"].as_f64().unwrap_or(f64::NAN);
        let memcpy = c["memcpy_msgs_per_s"].as_f64().unwrap_or(f64::NAN);
        let p99 = |k: &str| format!("{:.1} us", r["latency"][k]["latency_ns"]["p99"].as_f64().unwrap_or(0.0) / 1000.0);
        let dut = r["latency"]["at_50pct"]["appliance_busy_turn_ns"]["p99_le"]
            .as_f64()
            .map_or("-".to_string(), |v| format!("<{:.1} us", v / 1000.0));
        println!(
            "{:<46} {:>12} {:>10.0} {:>10} {:>10} {:>10} {:>14} {:>8.3} {:>8.3}",
            r["scenario"].as_str().unwrap_or(""),
            r["max_sustained_msgs_per_s"],
            pps,
            p99("at_10pct"),
            p99("at_50pct"),
            p99("at_80pct"),
            dut,
            pps / csum,
            msgs / memcpy
        );
    }
    for (name, c) in ceilings.as_object().into_iter().flatten() {
        let t = &c["testpmd_pps"];
        println!(
            "ceilings, {name} ({} B frames): testpmd io {:.0}, macswap {:.0}, 5tswap {:.0}, csum {:.0} pps; \
             memcpy floor {:.0} msg/s",
            c["frame_bytes"],
            t["io"].as_f64().unwrap_or(0.0),
            t["macswap"].as_f64().unwrap_or(0.0),
            t["5tswap"].as_f64().unwrap_or(0.0),
            t["csum"].as_f64().unwrap_or(0.0),
            c["memcpy_msgs_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    let us = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{:.2} us", n / 1000.0));
    let r = &rtt["rtt_ns"];
    println!(
        "\nround trip, one in flight, {} trips: p50 {}, p99 {}, p99.9 {}, max {}",
        rtt["round_trips"],
        us(&r["p50"]),
        us(&r["p99"]),
        us(&r["p999"]),
        us(&r["max"])
    );
    for n in ceilings["16_per_datagram"]["oslat"].as_array().into_iter().flatten() {
        println!(
            "noise, oslat on CPU {}: max {} us, {:.1} gaps > 10 us per second, >= {:.4}% of the time stalled; \
             open-loop floor from the gaps alone: p99 >= {} us, p99.9 >= {} us",
            n["cpu"],
            n["max_us"],
            n["gaps_over_10us_per_s"].as_f64().unwrap_or(0.0),
            100.0 * n["stalled_share_min"].as_f64().unwrap_or(0.0),
            n["open_loop_p99_floor_us"],
            n["open_loop_p999_floor_us"]
        );
    }
}
