//! `ms-sub`: subscribe to streams and report what arrived, with gap and
//! order checks per stream.

use anyhow::Context;
use clap::Parser;
use ms_client::{cli, Subscriber};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Subscribes to `--streams`, receives for `--duration` seconds (or until
/// `--count` messages), prints totals as JSON.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    at: cli::Endpoint,
    /// Seconds to receive (a decimal number), or `inf` to receive until
    /// --count messages arrived or the process is stopped.
    #[arg(long, default_value = "10", value_parser = |s: &str| cli::parse_seconds(s).map(RunFor))]
    duration: RunFor,
    /// Stop after this many messages (0 = no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Print each message (stream, seq, payload length).
    #[arg(long)]
    verbose: bool,
    /// Flow control: grant each stream this many bytes past the last
    /// message received. 0 = grant nothing: only the appliance's initial
    /// credit is ever received (a stalled consumer).
    #[arg(long, value_name = "BYTES", default_value_t = ms_client::DEFAULT_CREDIT_WINDOW)]
    credit_window: u64,
    /// Flow control: grant each stream at most this many bytes per second
    /// past the initial credit, from its first message on (a slow
    /// consumer); overrides --credit-window. 0 = no limit.
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 0)]
    credit_rate: u64,
    /// The appliance's `flow.initial_credit_bytes`, which --credit-rate
    /// grants past.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    initial_credit: u64,
}

/// How long to receive (`None`: no limit).
#[derive(Debug, Clone, Copy)]
struct RunFor(Option<Duration>);

/// How often --credit-rate grants.
const RATE_TICK: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut s = Subscriber::new(a.at.target, a.at.bind, Duration::from_secs(1)).context("open subscriber socket")?;
    s.set_credit_window((a.credit_rate == 0).then_some(a.credit_window));
    let mut added = 0;
    for (first, last) in cli::chunks(a.at.streams.clone()) {
        added += s
            .subscribe(first, last, Duration::from_millis(500))
            .with_context(|| format!("subscribe {first}..={last}"))?;
    }
    eprintln!(
        "ms-sub: subscribed to {added} streams from {}; receive buffer {} bytes, credit window {} bytes per stream",
        s.local_addr()?,
        s.rcvbuf_bytes(),
        s.effective_window().map_or_else(|| "manual".to_string(), |w| w.to_string())
    );
    let end = a.duration.0.and_then(|d| Instant::now().checked_add(d));
    let mut n = 0;
    let mut counters = cli::PayloadCounters::default();
    let mut restarts = 0;
    // --credit-rate: each stream's start position and when it was seen.
    let mut starts: HashMap<u64, (u64, Instant)> = HashMap::new();
    let mut last_tick = Instant::now();
    let mut notices = 0;
    while end.is_none_or(|end| Instant::now() < end) && (a.count == 0 || n < a.count) {
        if let Some(d) = s.recv(Duration::from_millis(100))? {
            n += 1;
            counters.saw(d.stream, &d.payload);
            if a.verbose {
                println!("stream {} seq {} len {}", d.stream, d.seq, d.payload.len());
            }
            if a.credit_rate > 0 {
                let start = d.position.saturating_sub(d.payload.len() as u64);
                starts.entry(d.stream).or_insert((start, Instant::now()));
            }
        }
        if a.credit_rate > 0 && last_tick.elapsed() >= RATE_TICK {
            last_tick = Instant::now();
            let grants: Vec<(u64, u64)> = starts
                .iter()
                .map(|(&stream, &(start, seen))| {
                    let more = (a.credit_rate as f64 * seen.elapsed().as_secs_f64()) as u64;
                    (stream, start.saturating_add(a.initial_credit).saturating_add(more))
                })
                .collect();
            s.grant_many(&grants).context("grant credit")?;
        }
        for stream in &s.slow_consumer_notices()[notices..] {
            eprintln!("ms-sub: the appliance removed the subscription to stream {stream}: slow consumer");
        }
        notices = s.slow_consumer_notices().len();
        if s.stats().restarts > restarts {
            restarts = s.stats().restarts;
            eprintln!(
                "ms-sub: the appliance restarted (instance {:016x}); subscribed again, sequence numbers start again",
                s.instance().unwrap_or(0)
            );
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
            "credits_sent": st.credits_sent, "slow_consumer": st.slow_consumer,
            "slow_consumer_streams": s.slow_consumer_notices(),
            "restarts": st.restarts, "resubscribes": st.resubscribes, "socket_errors": st.socket_errors,
            "missed": counters.missed(),
        })
    );
    Ok(())
}
