//! `ms-sub`: subscribe to streams and report what arrived, with gap and
//! order checks per stream.

use anyhow::Context;
use clap::Parser;
use ms_client::{cli, Subscriber};
use std::time::{Duration, Instant};

/// Subscribes to `--streams`, receives for `--duration` seconds (or until
/// `--count` messages), prints totals as JSON.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    at: cli::Endpoint,
    /// Seconds to receive.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many messages (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Print each message (stream, seq, payload length).
    #[arg(long)]
    verbose: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut s = Subscriber::new(a.at.target, a.at.bind, Duration::from_secs(1)).context("open subscriber socket")?;
    let mut added = 0;
    for (first, last) in cli::chunks(a.at.streams.clone()) {
        added += s
            .subscribe(first, last, Duration::from_millis(500))
            .with_context(|| format!("subscribe {first}..={last}"))?;
    }
    eprintln!("ms-sub: subscribed to {added} streams from {}", s.local_addr()?);
    let end = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut n = 0;
    while Instant::now() < end && (a.count == 0 || n < a.count) {
        if let Some(d) = s.recv(Duration::from_millis(100))? {
            n += 1;
            if a.verbose {
                println!("stream {} seq {} len {}", d.stream, d.seq, d.payload.len());
            }
        }
    }
    for (first, last) in cli::chunks(a.at.streams) {
        let _ = s.unsubscribe(first, last, Duration::from_millis(300));
    }
    let st = s.stats();
    println!(
        "{}",
        serde_json::json!({
            "received": st.received, "lost": st.lost, "out_of_order": st.out_of_order,
            "datagrams": st.datagrams, "streams_seen": s.streams().count(),
        })
    );
    Ok(())
}
