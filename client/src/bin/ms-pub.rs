//! `ms-pub`: publish messages to a MemoryStreamer appliance.

use anyhow::Context;
use clap::Parser;
use ms_client::{cli, Publisher};
use std::time::{Duration, Instant};

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
    /// Payload bytes per message.
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
    let mut payload = vec![0u8; a.payload.max(8)];
    let start = Instant::now();
    for i in 0..a.count {
        if let Some(offset) = i.saturating_mul(1_000_000_000).checked_div(a.rate) {
            let due = start + Duration::from_nanos(offset);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                p.flush()?;
                std::thread::sleep(wait);
            }
        }
        payload[..8].copy_from_slice(&i.to_le_bytes());
        p.publish(first.wrapping_add(i % n), a.class, &payload).context("publish")?;
    }
    p.flush()?;
    let (messages, datagrams) = p.counts();
    println!(
        "{}",
        serde_json::json!({ "messages": messages, "datagrams": datagrams, "seconds": start.elapsed().as_secs_f64() })
    );
    Ok(())
}
