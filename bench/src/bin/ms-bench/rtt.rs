//! Closed-loop round trips: one message in flight through the appliance
//! and back.

use crate::{config, with_dataplane, Args};
use serde_json::json;

pub(crate) fn rtt(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let n = a.rtt.unwrap_or(1_000_000);
    anyhow::ensure!(n >= 1, "--rtt must be at least 1 round trip");
    let (load, limit) = (a.load(), a.seconds());
    let (r, _reports) = with_dataplane(&cfg, move |g, stop| g.round_trips(load, n, limit, stop))?;
    anyhow::ensure!(r.subscribed, "the dataplane did not acknowledge the subscription");
    let q = |p: f64| r.rtt_ns.value_at_quantile(p);
    let out = json!({
        "round_trips": r.round_trips, "timeouts": r.timeouts, "seconds": r.seconds, "payload": load.payload,
        "realtime_priority": a.realtime_priority,
        "rtt_ns": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": r.rtt_ns.max(), "mean": r.rtt_ns.mean() },
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
