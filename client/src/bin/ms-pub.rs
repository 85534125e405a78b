//! `ms-pub`: publish messages to a MemoryStreamer appliance.

use anyhow::Context;
use clap::Parser;
use ms_client::{cli, Publisher};
use std::time::{Duration, Instant};

/// How often the publisher reads BACKPRESSURE frames.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Publishes `--count` messages round-robin over `--streams` at `--rate`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    at: cli::Endpoint,
    /// Messages to publish.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Payload bytes per message (at least 16: the publisher's counters,
    /// see docs/protocol.md's note on ms-pub payloads).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Priority class, 0..=3.
    #[arg(long, default_value_t = 1)]
    class: u8,
    /// UDP sockets (source ports) to spread shards over.
    #[arg(long, default_value_t = 8)]
    sockets: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut p = Publisher::new(a.at.target, a.at.bind, a.sockets).context("open publisher sockets")?;
    let (first, n) = (*a.at.streams.start(), (a.at.streams.end() - a.at.streams.start()).saturating_add(1));
    let mut payload = vec![0u8; a.payload.max(cli::PAYLOAD_COUNTERS_LEN)];
    let start = Instant::now();
    let mut last_poll = start;
    for i in 0..a.count {
        if let Some(offset) = i.saturating_mul(1_000_000_000).checked_div(a.rate) {
            let due = start + Duration::from_nanos(offset);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                p.flush()?;
                std::thread::sleep(wait);
            }
        }
        cli::write_counters(&mut payload, i, i / n);
        p.publish(first.wrapping_add(i % n), a.class, &payload).context("publish")?;
        if last_poll.elapsed() >= POLL_EVERY {
            p.poll_backpressure().context("read backpressure")?;
            last_poll = Instant::now();
        }
    }
    p.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    // The appliance answers the last datagrams right away, if at all.
    std::thread::sleep(Duration::from_millis(20));
    p.poll_backpressure().context("read backpressure")?;
    let (messages, datagrams) = p.counts();
    let mut summary = serde_json::json!({ "messages": messages, "datagrams": datagrams, "seconds": seconds });
    let (unsent, send_errors) = p.unsent();
    if send_errors > 0 {
        // The appliance or the route to it was away (e.g. restarting).
        summary["unsent"] = unsent.into();
        summary["send_errors"] = send_errors.into();
    }
    if p.backpressure_frames() > 0 {
        // Messages of streams under the `block` policy that the appliance
        // refused because a subscriber is behind (they are not in the stream).
        summary["refused"] = p.refused().into();
        summary["backpressure_frames"] = p.backpressure_frames().into();
    }
    println!("{summary}");
    Ok(())
}
