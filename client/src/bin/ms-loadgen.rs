//! `ms-loadgen`: open-loop load through a MemoryStreamer appliance.
//!
//! Message `i` is *scheduled* at `t0 + i / rate` and carries that time;
//! latency is measured from the scheduled time, not the actual send time,
//! so a stall anywhere (here, the kernel, the appliance) shows up in the
//! tail instead of silently slowing the sender (coordinated omission).
//! Every subscriber subscribes to every stream, so each message is
//! expected `--subscribers` times, except the messages the appliance
//! refused with BACKPRESSURE (streams under the `block` policy whose queue
//! was full), which the publisher counts and does not resend.

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use ms_client::{cli, Publisher, Subscriber};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Open-loop publishers and subscribers against one appliance.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Appliance address (its IPv4 and service port).
    #[arg(long, default_value = "198.18.0.1:9000")]
    target: SocketAddr,
    /// Local IPv4 to bind publishers and subscribers to.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Streams 0..N, published round-robin.
    #[arg(long, default_value_t = 10_000)]
    streams: u64,
    /// Subscribers, each subscribed to every stream.
    #[arg(long, default_value_t = 3)]
    subscribers: usize,
    /// Offered load, messages per second.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Payload bytes (at least 16: scheduled time and message index).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Publisher flush interval in microseconds (batching window).
    #[arg(long, default_value_t = 500)]
    flush_us: u64,
    /// Publisher UDP sockets (source ports; RSS spreads them).
    #[arg(long, default_value_t = 8)]
    sockets: usize,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Exit with status 1 if any message was lost.
    #[arg(long)]
    fail_on_loss: bool,
}

/// How often the publisher reads BACKPRESSURE frames.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// One receiver's tallies, shared with the progress line.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    gaps: AtomicU64,
    out_of_order: AtomicU64,
    /// Subscriptions the appliance removed (ERROR SlowConsumer).
    slow_consumer: AtomicU64,
}

/// What the publisher did.
struct Sent {
    /// Messages published.
    messages: u64,
    /// Messages the appliance refused (BACKPRESSURE).
    refused: u64,
    /// BACKPRESSURE frames read.
    backpressure_frames: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.payload >= 16 && a.payload <= ms_wire::PAYLOAD_MAX,
        "--payload must be 16..={}",
        ms_wire::PAYLOAD_MAX
    );
    anyhow::ensure!(
        a.rate > 0 && a.streams > 0 && a.subscribers > 0,
        "--rate, --streams and --subscribers must be positive"
    );
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let mut tallies = Vec::new();
    for k in 0..a.subscribers {
        let mut s = Subscriber::new(a.target, SocketAddr::new(a.bind, 0), Duration::from_millis(500))
            .with_context(|| format!("subscriber {k}: open socket"))?;
        for (first, last) in cli::chunks(0..=a.streams - 1) {
            s.subscribe(first, last, Duration::from_millis(500))
                .with_context(|| format!("subscriber {k}: subscribe {first}..={last}"))?;
        }
        let tally = Arc::new(Tally::default());
        tallies.push(Arc::clone(&tally));
        let stop = Arc::clone(&stop);
        receivers.push(thread::spawn(move || receive(s, t0, &tally, &stop)));
    }
    let (mut p, sent) = publish(&a, t0, &tallies)?;
    // Drain: wait until everything expected arrived, at most 3 s; read the
    // last BACKPRESSURE frames meanwhile.
    let expected = |p: &Publisher| sent.saturating_sub(p.refused()) * a.subscribers as u64;
    let drain_end = Instant::now() + Duration::from_secs(3);
    p.poll_backpressure().context("read backpressure")?;
    while total(&tallies, |t| &t.received) < expected(&p) && Instant::now() < drain_end {
        thread::sleep(Duration::from_millis(20));
        p.poll_backpressure().context("read backpressure")?;
    }
    let expected = expected(&p);
    let sent = Sent { messages: sent, refused: p.refused(), backpressure_frames: p.backpressure_frames() };
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    for r in receivers {
        hist.add(r.join().expect("receiver thread")).expect("same bounds");
    }
    report(&a, &sent, expected, &tallies, &hist, t0);
    let lost = expected.saturating_sub(total(&tallies, |t| &t.received));
    if a.fail_on_loss && lost > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn total(tallies: &[Arc<Tally>], f: impl Fn(&Tally) -> &AtomicU64) -> u64 {
    tallies.iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
}

/// Publishes on schedule; returns the publisher (to read the last
/// BACKPRESSURE frames) and the number of messages sent.
fn publish(a: &Args, t0: Instant, tallies: &[Arc<Tally>]) -> anyhow::Result<(Publisher, u64)> {
    let mut p = Publisher::new(a.target, SocketAddr::new(a.bind, 0), a.sockets).context("open publisher")?;
    let total_msgs = (a.rate as f64 * a.duration) as u64;
    let ns_per_msg = 1_000_000_000 / a.rate.max(1);
    let start = Instant::now();
    let base = start.duration_since(t0).as_nanos() as u64;
    let flush_every = Duration::from_micros(a.flush_us.max(1));
    let mut payload = vec![0u8; a.payload];
    let (mut i, mut last_flush, mut last_progress, mut last_poll) =
        (0u64, Instant::now(), Instant::now(), Instant::now());
    while i < total_msgs {
        let now_ns = t0.elapsed().as_nanos() as u64;
        while i < total_msgs && base + i * ns_per_msg <= now_ns {
            payload[..8].copy_from_slice(&(base + i * ns_per_msg).to_le_bytes());
            payload[8..16].copy_from_slice(&i.to_le_bytes());
            p.publish(i % a.streams, 1, &payload)?;
            i += 1;
        }
        if last_flush.elapsed() >= flush_every {
            p.flush()?;
            last_flush = Instant::now();
        }
        if last_poll.elapsed() >= POLL_EVERY {
            p.poll_backpressure().context("read backpressure")?;
            last_poll = Instant::now();
        }
        if !a.quiet && last_progress.elapsed() >= Duration::from_secs(1) {
            progress(a, start, i, tallies);
            last_progress = Instant::now();
        }
        let next = t0 + Duration::from_nanos(base + i * ns_per_msg);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait.min(flush_every));
        }
    }
    p.flush()?;
    if !a.quiet {
        progress(a, start, i, tallies);
        eprintln!();
    }
    Ok((p, i))
}

fn progress(a: &Args, start: Instant, sent: u64, tallies: &[Arc<Tally>]) {
    let secs = start.elapsed().as_secs_f64();
    let got = total(tallies, |t| &t.received);
    let gaps = total(tallies, |t| &t.gaps);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[loadgen] {secs:5.1}s/{:.0}s  published {sent:>9} ({:>7.0}/s)  delivered {got:>10}/{:<10} gaps {gaps}   ",
        a.duration,
        sent as f64 / secs.max(1e-9),
        sent * a.subscribers as u64
    );
    let _ = err.flush();
}

/// Receives until stopped; returns the latency histogram (µs).
fn receive(mut s: Subscriber, t0: Instant, tally: &Tally, stop: &AtomicBool) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut gaps, mut ooo) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        match s.recv(Duration::from_millis(50)) {
            Ok(Some(d)) => {
                if d.payload.len() >= 8 {
                    let sched = u64::from_le_bytes(d.payload[..8].try_into().expect("8 bytes"));
                    let now = t0.elapsed().as_nanos() as u64;
                    hist.saturating_record((now.saturating_sub(sched) / 1000).max(1));
                }
                tally.received.fetch_add(1, Ordering::Relaxed);
                let st = s.stats();
                if st.lost != gaps || st.out_of_order != ooo {
                    (gaps, ooo) = (st.lost, st.out_of_order);
                    tally.gaps.store(gaps, Ordering::Relaxed);
                    tally.out_of_order.store(ooo, Ordering::Relaxed);
                }
                tally.slow_consumer.store(st.slow_consumer, Ordering::Relaxed);
            }
            Ok(None) => tally.slow_consumer.store(s.stats().slow_consumer, Ordering::Relaxed),
            Err(e) => {
                eprintln!("[loadgen] receiver error: {e}");
                break;
            }
        }
    }
    hist
}

fn report(a: &Args, s: &Sent, expected: u64, tallies: &[Arc<Tally>], hist: &Histogram<u64>, t0: Instant) {
    let sent = s.messages;
    let slow = total(tallies, |t| &t.slow_consumer);
    let delivered = total(tallies, |t| &t.received);
    let lost = expected.saturating_sub(delivered);
    let gaps = total(tallies, |t| &t.gaps);
    let ooo = total(tallies, |t| &t.out_of_order);
    let q = |p: f64| hist.value_at_quantile(p);
    let mut summary = serde_json::json!({
        "streams": a.streams, "subscribers": a.subscribers, "offered_rate": a.rate, "duration_s": a.duration,
        "published": sent, "expected": expected, "delivered": delivered, "lost": lost,
        "sequence_gaps": gaps, "out_of_order": ooo,
        "published_per_s": sent as f64 / a.duration, "delivered_per_s": delivered as f64 / a.duration,
        "latency_us": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": hist.max() },
        "elapsed_s": t0.elapsed().as_secs_f64(),
    });
    // Only when flow control acted, so the usual output stays as it was.
    if s.backpressure_frames > 0 {
        summary["refused"] = s.refused.into();
        summary["backpressure_frames"] = s.backpressure_frames.into();
    }
    if slow > 0 {
        summary["slow_consumer"] = slow.into();
    }
    if a.json {
        println!("{summary}");
        return;
    }
    println!(
        "\n  MemoryStreamer load: {} streams, {} subscribers, {} msg/s offered for {} s, {} B payloads",
        a.streams, a.subscribers, a.rate, a.duration, a.payload
    );
    println!("  {:<28}{:>14}", "published", sent);
    if s.backpressure_frames > 0 {
        println!("  {:<28}{:>14}", "refused (backpressure)", s.refused);
    }
    println!("  {:<28}{:>14}", "expected deliveries", expected);
    println!("  {:<28}{:>14}", "delivered", delivered);
    println!("  {:<28}{:>14}", "lost", lost);
    println!("  {:<28}{:>14}", "sequence gaps seen", gaps);
    println!("  {:<28}{:>14}", "out of order", ooo);
    if slow > 0 {
        println!("  {:<28}{:>14}", "slow-consumer removals", slow);
    }
    println!("  {:<28}{:>14.0}", "published msg/s", sent as f64 / a.duration);
    println!("  {:<28}{:>14.0}", "delivered msg/s", delivered as f64 / a.duration);
    println!("  {:<28}{:>14}", "latency p50 (us)", q(0.5));
    println!("  {:<28}{:>14}", "latency p99 (us)", q(0.99));
    println!("  {:<28}{:>14}", "latency p99.9 (us)", q(0.999));
    println!("  {:<28}{:>14}", "latency max (us)", hist.max());
}
