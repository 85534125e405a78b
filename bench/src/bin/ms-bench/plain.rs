//! One run at one offered rate.

use crate::{config, nonzero, total, with_dataplane, Args};
use ms_dataplane::counters::{slot, Counter};
use serde_json::{json, Value};

/// P50 and P99 (bucket upper bounds) of the worker's busy-turn latency, read
/// from the stats segment the run left behind: time from receiving a burst
/// to handing its DELIVERs to the driver. `busy_s` is the sum of those
/// turns: the time the worker spent on packets, so `busy_s / seconds` says
/// whether the worker or the generator was the limit of a saturated run.
fn appliance_latency(path: &std::path::Path) -> Value {
    let Ok(seg) = ms_stats::Segment::open(path) else { return Value::Null };
    let dir = seg.directory();
    let mut v = vec![0u64; seg.slots()];
    if seg.read(0, &mut v, std::time::Duration::from_millis(100)).is_none() {
        return Value::Null;
    }
    let buckets: Vec<(u64, u64)> = dir
        .iter()
        .zip(&v)
        .filter_map(|(s, n)| match s.kind {
            ms_stats::Kind::Bucket { le } => Some((le, *n)),
            _ => None,
        })
        .collect();
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    let busy_ns = dir.iter().zip(&v).find(|(s, _)| s.name == "burst_latency_ns_sum").map(|(_, n)| *n);
    let quantile = |q: f64| {
        let mut seen = 0;
        buckets
            .iter()
            .find(|(_, n)| {
                seen += n;
                seen as f64 >= q * total as f64
            })
            .map(|b| b.0)
    };
    json!({ "p50_le": quantile(0.5), "p99_le": quantile(0.99), "turns": total, "busy_s": busy_ns.map(|n| n as f64 / 1e9) })
}

pub(crate) fn plain(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.run(load, stop))?;
    let t = total(&reports);
    let appliance = appliance_latency(&cfg.telemetry.stats_path);
    let q = |p: f64| outcome.latency_ns.value_at_quantile(p);
    let expected = outcome.sent * u64::from(load.subscribers);
    let out = json!({
        "rate_offered": load.rate, "seconds": outcome.seconds, "streams": load.streams, "subscribers": load.subscribers,
        "payload": load.payload, "batch": load.batch, "subscribed": outcome.subscribed,
        "sent": outcome.sent, "sent_packets": outcome.sent_packets,
        "generator_dropped_packets": outcome.gen_dropped_packets,
        "generator_dropped_messages": outcome.gen_dropped_messages,
        "received": outcome.received, "lost": expected.saturating_sub(outcome.received),
        "achieved_msgs_per_s": outcome.received as f64 / outcome.seconds / f64::from(load.subscribers),
        "dut_rx_pps": t[slot(Counter::RxPackets)] as f64 / outcome.seconds,
        "latency_ns": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": outcome.latency_ns.max() },
        "appliance_busy_turn_ns": appliance,
        "credit_entries": outcome.credit_entries, "credit_datagrams": outcome.credit_datagrams,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(&reports),
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
