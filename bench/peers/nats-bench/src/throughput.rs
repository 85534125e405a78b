//! Throughput and fan-out: one publisher connection publishes stamped messages as fast as the
//! client lets it for `--seconds`; each subscriber has its own connection and counts what arrives.
//!
//! Latency here is closed-loop-ish: the publisher is not paced, it runs until the client's send
//! channel and the TCP socket push back, so the percentiles mostly measure the queues a saturated
//! path builds (socket buffers, the server's per-client pending buffer, the subscription channel),
//! not the latency at a given offered rate. ms-bench's open-loop latencies at 10/50/80% of the
//! sustained rate are not comparable with them; the rtt scenario is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Map, Value};

use crate::report::{self, Events, Report, Usage};
use crate::Args;

const SUBJECT: &str = "ms.peer.throughput";

/// How long a subscriber waits for another message once publishing is over before it counts the
/// rest as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// Bound on the final flush of the publisher's connection.
const FLUSH_LIMIT: Duration = Duration::from_secs(30);

/// What the publisher tells the subscribers.
#[derive(Debug, Default)]
struct Control {
    published: AtomicU64,
    done: AtomicBool,
}

impl Control {
    /// True once publishing is over and `received` covers everything published.
    fn complete(&self, received: u64) -> bool {
        self.done.load(Ordering::Acquire) && received >= self.published.load(Ordering::Relaxed)
    }
}

/// One subscriber's result.
struct Received {
    count: u64,
    last: Option<Instant>,
    hist: Histogram<u64>,
}

/// Runs the throughput (or fan-out) scenario with `subscribers` subscribers.
pub async fn run(args: &Args, subscribers: usize, time_limit: Duration) -> Result<Report> {
    let hard_deadline = Instant::now() + time_limit;
    let events = Arc::new(Events::default());
    let control = Arc::new(Control::default());
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let client = report::connect(&args.url, args.subscription_capacity, &events).await?;
        let sub = client.subscribe(SUBJECT).await.context("subscribing")?;
        // The PING/PONG of a flush proves the server has processed the SUB before we publish.
        client.flush().await.context("flushing a subscriber's SUB")?;
        let hist = report::new_histogram()?;
        tasks.push(tokio::spawn(receive(client, sub, Arc::clone(&control), hist, hard_deadline)));
    }
    let publisher = report::connect(&args.url, args.subscription_capacity, &events).await?;
    let usage = Usage::now();
    let start = Instant::now();
    let published = publish(&publisher, args, hard_deadline).await?;
    let publish_time = start.elapsed();
    control.published.store(published, Ordering::Relaxed);
    control.done.store(true, Ordering::Release);
    let mut results = Vec::with_capacity(subscribers);
    for task in tasks {
        results.push(task.await.context("a subscriber task failed")??);
    }
    let out = summarise(args, subscribers, published, publish_time, start, &results)?;
    finish(out, &usage, &events, args)
}

/// Publishes stamped messages until `--seconds` pass or `--max-messages` are out; returns how many.
async fn publish(client: &async_nats::Client, args: &Args, hard_deadline: Instant) -> Result<u64> {
    let template = vec![0u8; args.payload];
    let stop_ns = report::now_ns().saturating_add(Duration::from_secs_f64(args.seconds).as_nanos() as u64);
    let mut published = 0u64;
    while published < args.max_messages {
        let now = report::now_ns();
        if now >= stop_ns {
            break;
        }
        client.publish(SUBJECT, report::stamped_payload(&template, now)).await.context("publishing")?;
        published += 1;
    }
    let flush_limit = FLUSH_LIMIT.min(hard_deadline.saturating_duration_since(Instant::now()));
    tokio::time::timeout(flush_limit, client.flush())
        .await
        .context("the publisher's final flush timed out")?
        .context("the publisher's final flush failed")?;
    Ok(published)
}

/// Counts and times messages until all published ones arrived, the stream goes quiet after
/// publishing ended, or the hard deadline passes.
async fn receive(
    _client: async_nats::Client,
    mut sub: async_nats::Subscriber,
    control: Arc<Control>,
    mut hist: Histogram<u64>,
    hard_deadline: Instant,
) -> Result<Received> {
    let mut count = 0u64;
    let mut last = None;
    while !control.complete(count) && Instant::now() < hard_deadline {
        match tokio::time::timeout(DRAIN_IDLE, sub.next()).await {
            Ok(Some(msg)) => {
                let now = report::now_ns();
                count += 1;
                last = Some(Instant::now());
                if let Some(stamp) = report::stamp_of(&msg.payload) {
                    report::record(&mut hist, now.saturating_sub(stamp));
                }
            }
            Ok(None) => bail!("the subscription closed after {count} messages"),
            Err(_) if control.done.load(Ordering::Acquire) => break,
            Err(_) => {}
        }
    }
    Ok(Received { count, last, hist })
}

/// Rates over the window from the first publish to the last delivery.
fn summarise(
    args: &Args,
    subscribers: usize,
    published: u64,
    publish_time: Duration,
    start: Instant,
    results: &[Received],
) -> Result<Map<String, Value>> {
    let deliveries: u64 = results.iter().map(|r| r.count).sum();
    let min_received = results.iter().map(|r| r.count).min().unwrap_or(0);
    let last = results.iter().filter_map(|r| r.last).max().unwrap_or(start);
    let window = last.saturating_duration_since(start).as_secs_f64().max(f64::MIN_POSITIVE);
    let mut hist = report::new_histogram()?;
    for r in results {
        hist.add(&r.hist).context("merging latency histograms")?;
    }
    let expected = published.saturating_mul(subscribers as u64);
    let mut out = Map::new();
    out.insert("peer".into(), "nats".into());
    out.insert("scenario".into(), if subscribers == 1 { "throughput" } else { "fanout" }.into());
    out.insert("subscribers".into(), subscribers.into());
    out.insert("payload".into(), args.payload.into());
    out.insert("published".into(), published.into());
    out.insert("publish_s".into(), publish_time.as_secs_f64().into());
    out.insert("published_per_s".into(), (published as f64 / publish_time.as_secs_f64().max(1e-9)).into());
    out.insert("received".into(), deliveries.into());
    out.insert("received_min_per_subscriber".into(), min_received.into());
    out.insert("lost".into(), expected.saturating_sub(deliveries).into());
    out.insert("window_s".into(), window.into());
    out.insert("msgs_per_s_received".into(), (deliveries as f64 / subscribers as f64 / window).into());
    out.insert("deliveries_per_s".into(), (deliveries as f64 / window).into());
    report::add_percentiles(&mut out, "latency", &hist);
    Ok(out)
}

fn finish(mut out: Map<String, Value>, usage: &Usage, events: &Events, args: &Args) -> Result<Report> {
    Usage::now().add_since(usage, &mut out);
    events.add_to(&mut out);
    let get = |k: &str| out.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let human = format!(
        "nats {} x{}: published {} ({:.0}/s), received {} ({:.0} msg/s per subscriber, {:.0} deliveries/s), \
         lost {}; latency P50 {:.1} us P99 {:.1} us P99.9 {:.1} us max {:.1} us ({} B payload, saturated)",
        out.get("scenario").and_then(Value::as_str).unwrap_or("?"),
        get("subscribers"),
        get("published"),
        get("published_per_s"),
        get("received"),
        get("msgs_per_s_received"),
        get("deliveries_per_s"),
        get("lost"),
        get("latency_p50_us"),
        get("latency_p99_us"),
        get("latency_p999_us"),
        get("latency_max_us"),
        args.payload,
    );
    Ok(Report { json: Value::Object(out), human })
}
