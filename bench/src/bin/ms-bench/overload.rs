//! The overload scenario: calibration, the run, its JSON and its summary.

use crate::sweep::run_child;
use crate::{config, mib, nonzero, total, with_dataplane, Args};
use ms_bench::{OverloadOutcome, OverloadSpec, Phase, Sample};
use ms_dataplane::app::WorkerReport;
use ms_dataplane::counters::{slot, Counter, Metric};
use ms_proto::ProtoCounter;
use serde_json::{json, Value};

/// The overload scenario's memory: a 4 MiB budget (38,836 message slots
/// of up to 64 B) against 1000 streams that may each queue 16 KiB (256
/// messages; 128 once the pool is half full): the streams' limits add up
/// to several times the pool, so the pool, not the streams, runs out.
/// Small, because normal service resumes only once the worker has worked
/// through what waits in its RX ring (up to 4096 datagrams) and sent what
/// is queued: in the debug build of the overload test, about 230 ms for
/// the ring and 130 ms for a 4 MiB pool (8 MiB took it 480 ms in all).
pub(crate) const OVERLOAD_BUDGET_BYTES: u64 = 4 << 20;
pub(crate) const OVERLOAD_STREAM_QUEUE_BYTES: u32 = 16 << 10;

/// The overload's RX burst. With the default 32 a worker takes in at most
/// 32 datagrams (512 messages) per loop turn and its scheduler sends up to
/// 4096 per turn: it never accepts more than it can send, so an overload
/// stays in the RX ring and is lost there, before the appliance counts it
/// (`--overload --rx-burst 32` shows it). With 256, a saturated worker
/// takes in up to 4096 messages (8192 deliveries at fan-out 2) per turn,
/// more than it sends: the excess reaches the queues, the memory budget
/// and its degradation steps, which is what this scenario is about.
pub(crate) const OVERLOAD_RX_BURST: u16 = 256;

/// Counters of `messages_published = ...` (right-hand side).
const PUBLISHED_PARTS: [Metric; 6] = [
    Metric::Proto(ProtoCounter::MessagesNoSubscriber),
    Metric::Proto(ProtoCounter::MessagesQueued),
    Metric::Proto(ProtoCounter::RefusedBackpressure),
    Metric::Proto(ProtoCounter::ShedBulk),
    Metric::Proto(ProtoCounter::ShedBestEffort),
    Metric::Proto(ProtoCounter::RefusedPoolFull),
];

/// Counters of `deliveries_queued = ... + deliveries still queued`.
const DELIVERY_PARTS: [Metric; 7] = [
    Metric::Worker(Counter::DeliverMessages),
    Metric::Worker(Counter::DeliverMessagesDropped),
    Metric::Proto(ProtoCounter::DroppedOldest),
    Metric::Proto(ProtoCounter::DroppedConflated),
    Metric::Proto(ProtoCounter::DroppedDisconnected),
    Metric::Proto(ProtoCounter::DroppedUnsubscribed),
    Metric::Proto(ProtoCounter::DroppedExpired),
];

/// Drops with a reason: refused or shed on arrival, or dropped from a queue.
const DROP_REASONS: [Metric; 9] = [
    Metric::Proto(ProtoCounter::RefusedBackpressure),
    Metric::Proto(ProtoCounter::ShedBulk),
    Metric::Proto(ProtoCounter::ShedBestEffort),
    Metric::Proto(ProtoCounter::RefusedPoolFull),
    Metric::Proto(ProtoCounter::DroppedOldest),
    Metric::Proto(ProtoCounter::DroppedConflated),
    Metric::Proto(ProtoCounter::DroppedDisconnected),
    Metric::Proto(ProtoCounter::DroppedUnsubscribed),
    Metric::Proto(ProtoCounter::DroppedExpired),
];

fn phase_json(p: &Phase) -> Value {
    json!({
        "rate": p.rate, "seconds": p.seconds, "offered": p.offered, "sent": p.sent, "received": p.received,
        "generator_dropped_packets": p.gen_dropped_packets, "generator_dropped_messages": p.gen_dropped_messages,
    })
}

fn overload_json(
    a: &Args,
    o: &OverloadOutcome,
    sustainable: u64,
    calibration: Option<&Value>,
    reports: &[WorkerReport],
) -> Value {
    let t = total(reports);
    let c = |x: Metric| t[slot(x)];
    let mut counters = serde_json::Map::new();
    for x in [Metric::Proto(ProtoCounter::MessagesPublished), Metric::Proto(ProtoCounter::DeliveriesQueued)]
        .iter()
        .chain(&PUBLISHED_PARTS)
        .chain(&DELIVERY_PARTS)
    {
        counters.insert(x.name().into(), c(*x).into());
    }
    counters.insert(ProtoCounter::QueuedMessages.name().into(), c(ProtoCounter::QueuedMessages.into()).into());
    let published_rhs: u64 = PUBLISHED_PARTS.iter().map(|x| c(*x)).sum();
    let delivered_rhs: u64 = DELIVERY_PARTS.iter().map(|x| c(*x)).sum();
    let still_queued = i128::from(c(ProtoCounter::DeliveriesQueued.into())) - i128::from(delivered_rhs);
    // What happened during the overload phase alone (the calibration
    // before it overloads too).
    let during = match (o.at_start, o.at_stop) {
        (Some(s), Some(e)) => {
            let m: serde_json::Map<String, Value> =
                [Metric::Proto(ProtoCounter::MessagesPublished), Metric::Proto(ProtoCounter::MessagesQueued)]
                    .iter()
                    .chain(&DROP_REASONS)
                    .chain(&[Metric::Worker(Counter::DeliverMessages), Metric::Worker(Counter::DeliverMessagesDropped)])
                    .map(|x| (x.name().to_string(), e.get(*x).saturating_sub(s.get(*x)).into()))
                    .collect();
            Value::Object(m)
        }
        _ => Value::Null,
    };
    let max = |f: fn(&Sample) -> u64| o.samples.iter().map(f).max().unwrap_or(0);
    // First time (ms into the overload) each degradation level was seen.
    let first_at: Vec<Value> = (0..=3u64)
        .map(|l| o.samples.iter().find(|s| s.degradation_level >= l).map_or(Value::Null, |s| s.t_ms.into()))
        .collect();
    let rows = |v: &[Sample]| -> Vec<Value> {
        v.iter()
            .map(|s| json!([s.t_ms, s.rss_bytes, s.pool_used_bytes, s.degradation_level, s.queued_messages]))
            .collect()
    };
    let fields = ["t_ms", "rss_bytes", "pool_used_bytes", "degradation_level", "queued_messages"];
    // Which steps the overload reached: the halved queue limits show only
    // in the level gauge; shedding and a full pool in their counters (a
    // step between two samples still counts).
    let delta = |x: ProtoCounter| match (o.at_start, o.at_stop) {
        (Some(s), Some(e)) => e.get(x).saturating_sub(s.get(x)),
        _ => 0,
    };
    let steps = json!({
        "1_queue_limits_halved": max(|s| s.degradation_level) >= 1,
        "2_bulk_shed": delta(ProtoCounter::ShedBulk),
        "3_best_effort_shed": delta(ProtoCounter::ShedBestEffort),
        "full_refused": delta(ProtoCounter::RefusedPoolFull),
    });
    json!({
        "scenario": "overload",
        "streams": a.streams(), "subscribers": a.subscribers(), "payload": a.payload, "batch": a.batch,
        "classes": "stream s carries wire class s % 4",
        "memory": { "budget_bytes": OVERLOAD_BUDGET_BYTES, "stream_queue_bytes_max": OVERLOAD_STREAM_QUEUE_BYTES },
        "policy": "drop-oldest",
        "subscribed": o.subscribed,
        "rx_burst": a.rx_burst(),
        "calibrated": calibration.is_some(),
        "calibration": calibration.map(|c| json!({
            "rate_offered": c["rate_offered"], "seconds": c["seconds"], "rx_burst": 32, "offered": c["sent"],
            "generator_dropped_messages": c["generator_dropped_messages"], "received": c["received"],
            "delivered_msgs_per_s": c["achieved_msgs_per_s"],
        })),
        "sustainable_msgs_per_s": sustainable,
        "offered_msgs_per_s": o.overload.rate,
        "overload": phase_json(&o.overload),
        "offered": o.offered_total, "sent": o.sent_total, "received": o.received,
        "generator_dropped_packets": o.gen_dropped_packets_total,
        "generator_dropped_messages": o.gen_dropped_messages_total,
        "rss_bytes": {
            "load_start": o.rss_load_start,
            "max_during_load": max(|s| s.rss_bytes).max(o.rss_load_start),
            "after": o.rss_after,
        },
        "pool_bytes": max(|s| s.pool_bytes),
        "pool_used_bytes_max": max(|s| s.pool_used_bytes),
        "queued_messages_max": max(|s| s.queued_messages),
        "degradation_level_max": max(|s| s.degradation_level),
        "degradation_first_ms": first_at,
        "samples": o.samples.len(),
        "degradation_steps": steps,
        "timeline": { "fields": fields, "every_ms": 100, "rows": rows(&o.samples) },
        "recovery_timeline": { "fields": fields, "every_ms": 10, "rows": rows(&o.recovery_samples) },
        "during_overload": during,
        "counters": counters,
        "identities": {
            "messages_published": c(ProtoCounter::MessagesPublished.into()),
            "messages_accounted": published_rhs,
            "published_holds": c(ProtoCounter::MessagesPublished.into()) == published_rhs,
            "deliveries_queued": c(ProtoCounter::DeliveriesQueued.into()),
            "deliveries_accounted": delivered_rhs,
            "deliveries_still_queued": i64::try_from(still_queued).unwrap_or(i64::MAX),
        },
        "recovery_ms": o.recovery_ms,
        "probes_sent": o.probes_sent,
        "settled": o.settled,
        "credit_entries": o.credit_entries,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(reports),
    })
}

/// Rate offered while calibrating: far above what either side can do, so
/// the generator sends as fast as the ring takes datagrams and the worker
/// is saturated.
const CALIBRATION_RATE: u64 = 100_000_000;

/// The sustainable rate S: a 2 s run of this program at
/// [`CALIBRATION_RATE`] with the appliance's default RX burst, where what
/// the worker takes in it also sends (the excess stays in the RX ring), so
/// the delivered rate is its capacity. Measured in a process of its own
/// because the RX burst is fixed at startup, and with the overload's
/// larger burst a saturated worker spends its time taking messages in and
/// delivers less (see `OVERLOAD_RX_BURST`).
fn calibrate(a: &Args) -> anyhow::Result<Value> {
    let cal = Args {
        seconds: Some(2.0),
        streams: Some(a.streams()),
        subscribers: Some(a.subscribers()),
        rx_burst: None,
        overload: false,
        ..*a
    };
    let r = run_child(&cal, CALIBRATION_RATE, &["--rx-burst", "32"])?;
    anyhow::ensure!(r["subscribed"] == true, "the calibration run could not subscribe: {r}");
    Ok(r)
}

pub(crate) fn overload(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let (sustainable, calibration) = match a.rate {
        Some(r) => (r, None),
        None => {
            eprintln!("[bench] overload: calibrating the sustainable rate (2 s at saturation, RX burst 32)");
            let c = calibrate(a)?;
            ((c["achieved_msgs_per_s"].as_f64().unwrap_or(0.0) as u64).max(1000), Some(c))
        }
    };
    let spec = OverloadSpec { sustainable, factor: 1.5, seconds: a.seconds(), recovery_limit_s: 10.0 };
    eprintln!(
        "[bench] overload: S = {sustainable} msg/s; offering {:.0} msg/s for {} s",
        1.5 * sustainable as f64,
        a.seconds()
    );
    let stats = cfg.telemetry.stats_path.clone();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.overload(load, spec, &stats, stop))?;
    let o = outcome?;
    let r = overload_json(a, &o, sustainable, calibration.as_ref(), &reports);
    if a.json {
        println!("{r}");
        return Ok(());
    }
    let rss = &r["rss_bytes"];
    let id = &r["identities"];
    println!(
        "overload: {} streams (wire class = stream % 4), {} subscribers, {} B, drop-oldest, memory budget {} \
         (stream queues {} each)",
        a.streams(),
        a.subscribers(),
        a.payload,
        mib(&OVERLOAD_BUDGET_BYTES.into()),
        OVERLOAD_STREAM_QUEUE_BYTES
    );
    match &calibration {
        Some(c) => println!(
            "sustainable rate S: {sustainable} msg/s delivered to every subscriber (calibrated: {:.1} s at \
             saturation with RX burst 32)",
            c["seconds"].as_f64().unwrap_or(0.0)
        ),
        None => println!("sustainable rate S: {sustainable} msg/s (given)"),
    }
    let p = &o.overload;
    println!(
        "offered 1.5 x S = {} msg/s for {:.1} s: {} offered, {} sent, {} lost at the generator's ring, {} received",
        p.rate, p.seconds, p.offered, p.sent, p.gen_dropped_messages, p.received
    );
    println!(
        "RSS: {} at load start, {} max during load, {} after",
        mib(&rss["load_start"]),
        mib(&rss["max_during_load"]),
        mib(&rss["after"])
    );
    let first: Vec<String> = (1..=3)
        .map(|l| match r["degradation_first_ms"][l].as_u64() {
            Some(ms) => format!("level {l} at {ms} ms"),
            None => format!("level {l} never sampled"),
        })
        .collect();
    println!(
        "pool: {} of {} max used, {} messages queued at most; sampled degradation level max {} ({})",
        mib(&r["pool_used_bytes_max"]),
        mib(&r["pool_bytes"]),
        r["queued_messages_max"],
        r["degradation_level_max"],
        first.join(", ")
    );
    let d = |k: &str| r["during_overload"][k].as_u64().unwrap_or(0);
    println!(
        "during the overload: {} published; shed on arrival: {} bulk (level 2), {} best effort (level 3), {} pool \
         full, {} refused (block); deliveries dropped: {} drop-oldest, {} conflated, {} disconnected; {} delivered",
        d("messages_published"),
        d("messages_shed_bulk"),
        d("messages_shed_best_effort"),
        d("messages_refused_pool_full"),
        d("messages_refused_backpressure"),
        d("deliveries_dropped_oldest"),
        d("deliveries_conflated"),
        d("deliveries_disconnected"),
        d("deliver_messages")
    );
    println!(
        "identities: published {} = {} accounted ({}); deliveries queued {} = {} accounted + {} still queued",
        id["messages_published"],
        id["messages_accounted"],
        if id["published_holds"] == true { "holds" } else { "DOES NOT HOLD" },
        id["deliveries_queued"],
        id["deliveries_accounted"],
        id["deliveries_still_queued"]
    );
    println!(
        "recovery: {} ms after the load stopped ({} probes); settled {}; generator received {} = deliver_messages {}; \
         worker heap allocations {}",
        o.recovery_ms.map_or("not within 10 s".into(), |v| v.to_string()),
        o.probes_sent,
        o.settled,
        o.received,
        r["counters"]["deliver_messages"],
        r["worker_heap_allocations"]
    );
    Ok(())
}
