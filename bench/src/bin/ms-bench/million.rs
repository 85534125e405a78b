//! The million-stream memory cycle.

use crate::{config, nonzero, with_dataplane, Args};
use ms_bench::MillionOutcome;
use ms_dataplane::app::WorkerReport;
use ms_dataplane::config::Config;
use serde_json::{json, Value};

fn million_json(a: &Args, m: &MillionOutcome, cfg: &Config, reports: &[WorkerReport]) -> Value {
    // The table the worker allocated, rebuilt here after the run (the
    // dataplane is gone) to read its size; no message pool.
    let limits = ms_streams::Limits { queue_bytes: 0, ..ms_dataplane::settings::stream_limits(cfg) };
    let table = ms_streams::Streams::new(limits);
    let table_bytes = table.stream_bytes() + table.subscription_bytes();
    drop(table);
    let subs = u64::from(a.subscribers());
    let expected = m.load.offered * subs;
    json!({
        "scenario": "million",
        "streams": a.streams(), "subscribers": a.subscribers(), "payload": a.payload, "batch": a.batch,
        "stream_table": {
            "max_per_worker": limits.streams, "subscriptions_max": limits.subscriptions, "bytes": table_bytes,
        },
        "stream_table_bytes_per_idle_stream": table_bytes as f64 / f64::from(limits.streams.max(1)),
        "rss_bytes": {
            "before_subscribing": m.rss_before,
            "after_subscribing": m.rss_subscribed,
            "after_load": m.rss_loaded,
            "after_unsubscribing": m.rss_unsubscribed,
            "after_a_second_round": m.rss_second_round,
        },
        "subscribed": m.subscribed,
        "subscribe_seconds": m.subscribe_seconds,
        "streams_active_after_subscribing": m.streams_active,
        "freed": m.freed,
        "load": {
            "rate": m.load.rate, "seconds": m.load.seconds, "offered": m.load.offered, "received": m.load.received,
            "lost": expected.saturating_sub(m.load.received),
            "generator_dropped_packets": m.load.gen_dropped_packets,
        },
        "credit_entries": m.credit_entries,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(reports),
    })
}

pub(crate) fn million(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let stats = cfg.telemetry.stats_path.clone();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.million(load, &stats, stop))?;
    let m = outcome?;
    let r = million_json(a, &m, &cfg, &reports);
    if a.json {
        println!("{r}");
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}
