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
    /// Payload bytes per message: 16 (the publisher's counters, which
    /// ms-sub checks) up to the protocol's largest payload.
    #[arg(long, default_value_t = 64, value_parser = payload_bytes)]
    payload: usize,
    /// Priority class, 0 to 3.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    class: u8,
    /// UDP sockets (source ports) to spread shards over.
    #[arg(long, default_value_t = 8)]
    sockets: usize,
}

/// `--payload`, refused on its own (not as "payload or class").
fn payload_bytes(s: &str) -> Result<usize, String> {
    let max = ms_wire::PAYLOAD_MAX;
    let min = cli::PAYLOAD_COUNTERS_LEN;
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a byte count; expected {min} to {max}"))?;
    if n < min {
        return Err(format!("{n} bytes is too small: every payload starts with ms-pub's two 8-byte counters"));
    }
    if n > max {
        return Err(format!("{n} bytes is above the largest payload the protocol carries ({max})"));
    }
    Ok(n)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut p = Publisher::new(a.at.target, a.at.bind, a.sockets).context("open publisher sockets")?;
    let (first, n) = (*a.at.streams.start(), (a.at.streams.end() - a.at.streams.start()).saturating_add(1));
    let mut payload = vec![0u8; a.payload];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(args: &[&str]) -> String {
        let argv = ["ms-pub", "--target", "198.18.0.1:9000"].iter().chain(args);
        Args::try_parse_from(argv).expect_err("refused").to_string()
    }

    #[test]
    fn payload_and_class_errors_name_their_option() {
        let too_big = (ms_wire::PAYLOAD_MAX + 1).to_string();
        let e = refused(&["--payload", &too_big]);
        assert!(e.contains("--payload") && e.contains("largest payload") && !e.contains("class"), "{e}");
        let e = refused(&["--class", "4"]);
        assert!(e.contains("--class") && e.contains("0..=3") && !e.contains("payload"), "{e}");
    }
}
