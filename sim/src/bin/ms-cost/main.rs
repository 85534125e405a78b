//! `ms-cost`: where a published message's instructions go, without DPDK.
//!
//! One worker's engine and its port's host, driven as the dataplane's loop
//! drives them: per turn `Engine::expire`, then for each frame of a burst
//! `Host::process` (Ethernet/IPv4/UDP parse, checksums verified) and
//! `Engine::on_datagram`, then `Engine::end_turn`, whose sends get their
//! Ethernet/IPv4/UDP headers (software UDP checksum) from `Host::emit_udp`
//! and are "transmitted" by recycling the buffer. The PUBLISH frames are
//! built beforehand as ms-bench's generator builds them; the subscribers
//! subscribe and grant ample credit before the clock starts, so nothing
//! stalls, and every message must be delivered to every subscriber.
//!
//! Each stage is its own `#[inline(never)]` function (`worker`, `wire`),
//! so callgrind's inclusive counts per function split the cost;
//! `ms-cost report` turns profiles into instructions per message
//! (ci/cycle-budget.sh runs it all). Without valgrind a run prints the
//! time per message on one core:
//!
//! ```text
//! ms-cost [--datagrams N] [--batch N] [--payload B] [--streams N]
//!         [--subscribers N] [--burst N] [--frames N] [--verify]
//! ms-cost report [--top N] LABEL=CALLGRIND_OUT...
//! ```

mod frames;
mod profile;
mod wire;
mod worker;

use ms_proto::ProtoCounter as C;
use ms_wire::publish::PublishBuilder;
use ms_wire::DATAGRAM_MAX;
use std::process::ExitCode;
use std::time::Instant;
use wire::TxTally;
use worker::Worker;

/// Counts heap allocations of threads that ask: the measured loop must
/// make none, as on a worker (the dataplane's binaries install the same).
#[global_allocator]
static GLOBAL: ms_alloc_count::CountingAlloc = ms_alloc_count::CountingAlloc;

/// The largest rx burst a worker takes (`workers.rx_burst`'s bound).
const BURST_MAX: usize = 512;

/// Frames prebuilt at least (an RX ring's worth), unless fewer are sent.
const FRAMES_MIN: usize = 4096;

const USAGE: &str = "usage: ms-cost [--datagrams N] [--batch N] [--payload BYTES] [--streams N] \
[--subscribers N] [--burst N] [--frames N] [--verify] [--no-grant]\n       ms-cost report [--top N] LABEL=CALLGRIND_OUT...";

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Args {
    /// PUBLISH datagrams received.
    pub datagrams: u64,
    /// Messages per datagram.
    pub batch: usize,
    /// Payload bytes per message.
    pub payload: usize,
    /// Streams, published round robin.
    pub streams: u64,
    /// Subscribers, each on every stream.
    pub subscribers: u16,
    /// Frames per rx burst, one loop turn each.
    pub burst: usize,
    /// Distinct PUBLISH frames prebuilt, sent round robin.
    frames: Option<usize>,
    /// Check every DELIVER frame as a subscriber would (costs
    /// instructions inside the measured loop).
    pub verify: bool,
    /// Subscribers keep the initial credit only, so messages stay queued
    /// and the run must fail (the harness's check of itself).
    pub no_grant: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            datagrams: 20_000,
            batch: 16,
            payload: 64,
            streams: 1,
            subscribers: 1,
            burst: 32,
            frames: None,
            verify: false,
            no_grant: false,
        }
    }
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    while let Some(flag) = it.next() {
        if flag == "--verify" || flag == "--no-grant" {
            (a.verify, a.no_grant) = (a.verify || flag == "--verify", a.no_grant || flag == "--no-grant");
            continue;
        }
        let set: fn(&mut Args, u64) = match flag.as_str() {
            "--datagrams" => |a, n| a.datagrams = n,
            "--batch" => |a, n| a.batch = n as usize,
            "--payload" => |a, n| a.payload = n as usize,
            "--streams" => |a, n| a.streams = n,
            "--subscribers" => |a, n| a.subscribers = u16::try_from(n).unwrap_or(0),
            "--burst" => |a, n| a.burst = n as usize,
            "--frames" => |a, n| a.frames = Some(n as usize),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        set(&mut a, value.parse().map_err(|e| format!("{flag} {value}: {e}"))?);
    }
    let publish_max = (DATAGRAM_MAX - ms_wire::HEADER_LEN) / PublishBuilder::entry_len(0);
    let ok = a.datagrams > 0
        && (1..=publish_max).contains(&a.batch)
        && a.payload <= ms_wire::PAYLOAD_MAX
        && (1..=1 << 24).contains(&a.streams)
        && a.subscribers >= 1
        && (1..=BURST_MAX).contains(&a.burst)
        && a.frames != Some(0);
    ok.then_some(a).ok_or_else(|| format!("an argument is out of range\n{USAGE}"))
}

impl Args {
    /// Messages published.
    pub fn messages(&self) -> u64 {
        self.datagrams * self.batch as u64
    }

    /// Messages every subscriber together must receive.
    pub fn deliveries(&self) -> u64 {
        self.messages() * u64::from(self.subscribers)
    }

    /// Enough frames that round robin reaches every stream, at least a
    /// ring's worth, never more than are sent.
    pub fn frames(&self) -> usize {
        let cover = self.streams.div_ceil(self.batch as u64) as usize;
        self.frames.unwrap_or(cover.max(FRAMES_MIN)).min(self.datagrams as usize)
    }
}

/// What a run measured.
struct Run {
    seconds: f64,
    refused: u64,
    allocs: u64,
    tally: TxTally,
}

fn measure(w: &mut Worker, frames: &mut frames::Frames, a: &Args) -> Run {
    w.reset();
    ms_alloc_count::count_this_thread(true);
    let allocs = ms_alloc_count::worker_allocations();
    let t0 = Instant::now();
    let refused = worker::run_turns(w, frames, a.datagrams, a.burst);
    let seconds = t0.elapsed().as_secs_f64();
    let allocs = ms_alloc_count::worker_allocations() - allocs;
    ms_alloc_count::count_this_thread(false);
    Run { seconds, refused, allocs, tally: w.io.tally }
}

/// Every message published and delivered to every subscriber, nothing
/// else sent, nothing allocated.
fn check(w: &Worker, a: &Args, r: &Run) -> Result<(), String> {
    let t = &r.tally;
    let published = w.total(C::MessagesPublished);
    let problems = [
        (r.refused != 0, format!("{} frames not handled", r.refused)),
        (r.allocs != 0, format!("{} heap allocations in the measured loop", r.allocs)),
        (published != a.messages(), format!("{published} of {} messages published", a.messages())),
        (t.delivered != a.deliveries(), format!("{} of {} deliveries made", t.delivered, a.deliveries())),
        (t.dropped + t.replies != 0, format!("{} deliveries dropped, {} control replies", t.dropped, t.replies)),
        (a.verify && (t.bad != 0 || t.verified != t.delivered), format!("{} bad DELIVERs", t.bad)),
    ];
    match problems.into_iter().find(|p| p.0) {
        Some((_, what)) => Err(what),
        None => Ok(()),
    }
}

fn print_run(a: &Args, frames: usize, r: &Run) {
    let verified = if a.verify { ", every DELIVER verified" } else { "" };
    println!(
        "ms-cost: {} datagrams x {} messages x {} B, {} stream(s), {} subscriber(s), bursts of {}, {frames} distinct frames{verified}",
        a.datagrams, a.batch, a.payload, a.streams, a.subscribers, a.burst
    );
    println!(
        "counts: datagrams={} messages={} deliveries={} delivers={}",
        a.datagrams,
        a.messages(),
        r.tally.delivered,
        r.tally.delivers
    );
    let ns = r.seconds * 1e9;
    println!(
        "time: {:.1} ms, {:.1} ns/message, {:.2} M messages/s, {:.1} ns/delivery on one core",
        r.seconds * 1e3,
        ns / a.messages() as f64,
        a.messages() as f64 / r.seconds / 1e6,
        ns / a.deliveries() as f64
    );
}

fn run(args: impl Iterator<Item = String>) -> Result<(), String> {
    let a = parse_args(args)?;
    let mut frames = frames::publishes(&a)?;
    let mut w = Worker::new(&a);
    worker::subscribe_all(&mut w, &a)?;
    let r = measure(&mut w, &mut frames, &a);
    print_run(&a, frames.len(), &r);
    check(&w, &a, &r)
}

/// `report [--top N] LABEL=FILE...`: the stage table of every profile and
/// the top functions of the first. A profile's run is read from its
/// command line.
fn report(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let mut top = 15;
    let mut scenarios = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--top" {
            top = args.next().and_then(|v| v.parse().ok()).ok_or("--top needs a number")?;
            continue;
        }
        let (label, path) = arg.split_once('=').ok_or_else(|| format!("{arg}: not LABEL=FILE\n{USAGE}"))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let profile = profile::parse(&text);
        let run = parse_args(profile.cmd.split_whitespace().skip(1).map(String::from))
            .map_err(|e| format!("{path}: its command line: {e}"))?;
        let (messages, deliveries) = (run.messages(), run.deliveries());
        scenarios.push(profile::Scenario { label: label.to_string(), profile, messages, deliveries });
    }
    let first = scenarios.first().ok_or_else(|| format!("no profile\n{USAGE}"))?;
    println!("{}\n", profile::stage_table(&scenarios)?);
    println!("{}", profile::top_table(first, top));
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let result = if args.peek().is_some_and(|a| a == "report") { report(args.skip(1)) } else { run(args) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ms-cost: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(args: &[&str]) -> Result<(), String> {
        run(["--datagrams", "100", "--verify"].iter().chain(args).map(|s| s.to_string()))
    }

    #[test]
    fn every_scenario_delivers_every_message_to_every_subscriber() {
        // Past RANGE_IDS_MAX streams the subscriptions take several ranges.
        for extra in [&[][..], &["--batch", "1"], &["--streams", "70000"], &["--subscribers", "8", "--burst", "7"]] {
            run_with(extra).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        }
    }

    #[test]
    fn a_run_that_leaves_messages_undelivered_fails() {
        // 1,600 messages of 64 B: past the initial credit, and nobody grants.
        let e = run_with(&["--no-grant"]).expect_err("messages left queued");
        assert!(e.contains("deliveries made"), "{e}");
    }

    #[test]
    fn arguments_are_checked() {
        assert!(parse_args(["--bogus"].iter().map(|s| s.to_string())).is_err());
        assert!(parse_args(["--batch", "0"].iter().map(|s| s.to_string())).is_err());
        assert!(parse_args(["--streams"].iter().map(|s| s.to_string())).is_err());
        let a = parse_args(["--streams", "8", "--datagrams", "3"].iter().map(|s| s.to_string())).expect("valid");
        assert_eq!((a.streams, a.messages(), a.frames()), (8, 48, 3));
    }
}
