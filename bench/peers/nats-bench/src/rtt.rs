//! Closed-loop round trip: one connection subscribes to a subject and publishes to it (NATS echoes a
//! connection's own messages by default); with one message in flight, each round trip is
//! client → kernel loopback → server → kernel loopback → the same client. No request/reply, so no
//! inbox subject and no reply routing enter the path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::report::{self, Events, Report, Usage};
use crate::Args;

const SUBJECT: &str = "ms.peer.rtt";

/// A round trip slower than this is a failure, not a sample.
const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(5);

/// Runs `--warmup` uncounted then `--round-trips` counted round trips.
pub async fn run(args: &Args, time_limit: Duration) -> Result<Report> {
    let hard_deadline = Instant::now() + time_limit;
    let events = Arc::new(Events::default());
    let client = report::connect(&args.url, args.subscription_capacity, &events).await?;
    let mut sub = client.subscribe(SUBJECT).await.context("subscribing")?;
    client.flush().await.context("flushing the SUB")?;
    let template = vec![0u8; args.payload];
    let mut hist = report::new_histogram()?;
    let total = args.warmup.saturating_add(args.round_trips);
    let mut usage = Usage::now();
    let mut start = Instant::now();
    for i in 0..total {
        if i == args.warmup {
            usage = Usage::now();
            start = Instant::now();
        }
        if Instant::now() >= hard_deadline {
            bail!("time limit reached after {i} of {total} round trips");
        }
        let sent = report::now_ns();
        client.publish(SUBJECT, report::stamped_payload(&template, sent)).await.context("publishing")?;
        let msg = tokio::time::timeout(ROUND_TRIP_LIMIT, sub.next())
            .await
            .with_context(|| format!("round trip {i} took longer than {ROUND_TRIP_LIMIT:?}"))?
            .context("the subscription closed")?;
        let rtt = report::now_ns().saturating_sub(sent);
        if report::stamp_of(&msg.payload) != Some(sent) {
            bail!("round trip {i} received a message it did not send");
        }
        if i >= args.warmup {
            report::record(&mut hist, rtt);
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
    let mut out = Map::new();
    out.insert("peer".into(), "nats".into());
    out.insert("scenario".into(), "rtt".into());
    out.insert("payload".into(), args.payload.into());
    out.insert("round_trips".into(), args.round_trips.into());
    out.insert("warmup".into(), args.warmup.into());
    out.insert("elapsed_s".into(), elapsed.into());
    out.insert("round_trips_per_s".into(), (args.round_trips as f64 / elapsed).into());
    report::add_percentiles(&mut out, "rtt", &hist);
    Usage::now().add_since(&usage, &mut out);
    events.add_to(&mut out);
    let human = format!(
        "nats rtt: {} round trips ({:.0}/s), P50 {:.1} us P99 {:.1} us P99.9 {:.1} us max {:.1} us ({} B payload)",
        args.round_trips,
        args.round_trips as f64 / elapsed,
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.value_at_quantile(0.999) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        args.payload,
    );
    Ok(Report { json: Value::Object(out), human })
}
