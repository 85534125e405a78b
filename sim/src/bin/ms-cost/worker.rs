//! The appliance's worker: its engine and port, the measured loop with one
//! `#[inline(never)]` function per stage, and the subscribers' setup.

use crate::frames::{self, Frames, SUB_PORT_BASE};
use crate::wire::Wire;
use crate::Args;
use ms_netstack::host::{Verdict, UDP_PAYLOAD_OFFSET};
use ms_proto::{Addr, Disposition, Engine, EngineConfig, From, Now, ProtoCounter as C};
use ms_streams::Limits;
use ms_wire::control::{self, Control, Credit, RangeRequest};
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};

/// A worker's share of the default `memory.budget_bytes` with one worker.
const QUEUE_BYTES: u64 = 256 << 20;
/// `streams.subscription_lifetime_ms`'s default.
const LIFETIME_MS: u64 = 10_000;
/// Credit every subscription is granted before the load: never reached.
const GRANT: u64 = u64::MAX >> 1;
/// The clock, fixed: no neighbour or subscriber ages during a run.
const START: Now = Now { ms: 1_000, ns: 1_700_000_000_000_000_000 };

/// The bounds ms-bench's config gives its one worker.
fn limits(a: &Args) -> Limits {
    let streams = a.streams.clamp(1024, 1 << 24) as u32;
    let subscribers = u32::from(a.subscribers).max(64);
    let subscriptions = (u64::from(streams) * u64::from(a.subscribers)).min(1 << 26) as u32;
    Limits { streams, subscribers, subscriptions, lifetime_ms: LIFETIME_MS, queue_bytes: QUEUE_BYTES }
}

/// One worker of the appliance.
pub struct Worker {
    engine: Engine<usize>,
    pub io: Wire,
    /// The engine's counters, summed as the dataplane absorbs them.
    totals: [u64; C::ALL.len()],
    now: Now,
}

impl Worker {
    /// A worker configured like ms-bench's, with default tunables.
    pub fn new(a: &Args) -> Worker {
        let cfg = EngineConfig { limits: limits(a), workers: 1, me: 0, instance: 0xc057, service_port: 9000 };
        Worker { engine: Engine::new(cfg), io: Wire::new(a.verify, START.ms), totals: [0; C::ALL.len()], now: START }
    }

    /// Counter `c` since the last [`Worker::reset`].
    pub fn total(&self, c: C) -> u64 {
        self.totals[c as usize]
    }

    /// Zeroes the counters and the transmit tally.
    pub fn reset(&mut self) {
        self.totals = [0; C::ALL.len()];
        self.io.tally = Default::default();
    }
}

/// Stage: what the dataplane's `begin_turn` does (a slice of expiry).
#[inline(never)]
fn begin_turn(w: &mut Worker) {
    w.engine.expire(w.now, LIFETIME_MS);
}

/// Stage: the port's host takes a frame (Ethernet; IPv4 and its header
/// checksum; UDP and its checksum over the whole datagram).
#[inline(never)]
fn rx_parse(w: &mut Worker, frame: &mut [u8]) -> Verdict {
    w.io.host.process(frame, w.now.ms)
}

/// Stage: the engine takes a datagram (PUBLISH parse, stream lookup, copy
/// into the stream's queue).
#[inline(never)]
fn publish_into_engine(w: &mut Worker, from: From, payload: &[u8]) -> Disposition {
    w.engine.on_datagram(&mut w.io, w.now, from, payload)
}

/// Stage: the end of the turn (scheduler, DELIVERs built and sent; the
/// sends' own stages are in `wire`).
#[inline(never)]
fn end_turn(w: &mut Worker) {
    w.engine.end_turn(&mut w.io, w.now);
}

/// Stage: the engine's counts, taken once per turn as the dataplane does.
#[inline(never)]
fn absorb_counts(w: &mut Worker) {
    let totals = &mut w.totals;
    w.engine.counts().take(|t| {
        for c in C::ALL {
            if !c.is_gauge() {
                totals[*c as usize] += t.values[*c as usize];
            }
        }
    });
}

/// One received frame, handled as the worker does; false unless it was a
/// datagram the engine is done with.
#[inline]
fn receive(w: &mut Worker, frame: &mut [u8]) -> bool {
    let Verdict::Service(d) = rx_parse(w, frame) else {
        return false;
    };
    let from = From { addr: Addr { ip: d.src_ip, port: d.src_port, via: 0 }, mac: d.src_mac.0 };
    let payload = &frame[d.payload_offset..d.payload_offset + d.payload_len];
    publish_into_engine(w, from, payload) == Disposition::Done
}

/// The measured loop: `datagrams` frames, round robin over `frames`, in
/// bursts of `burst`, one loop turn per burst. Returns how many frames
/// were not handled (0 expected).
#[inline(never)]
pub fn run_turns(w: &mut Worker, frames: &mut Frames, datagrams: u64, burst: usize) -> u64 {
    let (mut next, mut left, mut refused) = (0, datagrams, 0);
    while left > 0 {
        begin_turn(w);
        let n = left.min(burst as u64);
        for _ in 0..n {
            if !receive(w, frames.get(next)) {
                refused += 1;
            }
            next = if next + 1 == frames.len() { 0 } else { next + 1 };
        }
        end_turn(w);
        absorb_counts(w);
        left -= n;
        w.now.ns += 1_000;
    }
    refused
}

/// Sends subscriber `sub`'s control datagram that `body` writes, then ends
/// turns until the engine answers; the answers.
fn control(w: &mut Worker, sub: u16, body: impl FnOnce(&mut [u8]) -> Option<usize>) -> Result<Vec<Vec<u8>>, String> {
    let mut frame = vec![0; UDP_PAYLOAD_OFFSET + DATAGRAM_MAX];
    let len =
        frames::build_frame(&frames::generator(), SUB_PORT_BASE + sub, &mut frame, body).ok_or("frame too big")?;
    w.io.replies = Some(Vec::new());
    if !receive(w, &mut frame[..len]) {
        return Err("a control frame was dropped".into());
    }
    for _ in 0..1000 {
        if w.io.replies.as_ref().is_some_and(|r| !r.is_empty()) {
            break;
        }
        end_turn(w);
        absorb_counts(w);
    }
    Ok(w.io.replies.take().unwrap_or_default())
}

/// Streams an answer acknowledges.
fn acked(answers: &[Vec<u8>]) -> u64 {
    let streams = |b: &Vec<u8>| match ms_wire::parse(b) {
        Ok(Frame::Control(Control::Ack(acks))) => acks.map(|x| u64::from(x.streams)).sum(),
        _ => 0,
    };
    answers.iter().map(streams).sum()
}

/// Every subscriber subscribes to every stream (a range per datagram at
/// most `RANGE_IDS_MAX` long) and grants ample credit on each.
pub fn subscribe_all(w: &mut Worker, a: &Args) -> Result<(), String> {
    let step = control::RANGE_IDS_MAX;
    for sub in 0..a.subscribers {
        for first in (0..a.streams).step_by(step as usize) {
            let last = (first + step).min(a.streams) - 1;
            let r = RangeRequest { request: 1, first, last, initial_credit: 0 };
            let answers = control(w, sub, |b| control::emit_ranges(b, FrameType::Subscribe, &[r]))?;
            if acked(&answers) != last - first + 1 {
                return Err(format!("subscriber {sub}: streams {first}..={last} not acknowledged"));
            }
        }
        if !a.no_grant {
            grant_all(w, a, sub)?;
        }
    }
    let subs = u64::from(w.engine.streams().gauges().subscriptions);
    if subs != a.streams * u64::from(a.subscribers) {
        return Err(format!("{subs} subscriptions after subscribing"));
    }
    Ok(())
}

/// Subscriber `sub` grants [`GRANT`] on every stream, a datagram of
/// CREDIT entries at a time.
fn grant_all(w: &mut Worker, a: &Args, sub: u16) -> Result<(), String> {
    let per = ((DATAGRAM_MAX - ms_wire::HEADER_LEN) / control::CREDIT_ENTRY_LEN) as u64;
    let gen = frames::generator();
    let mut frame = vec![0; UDP_PAYLOAD_OFFSET + DATAGRAM_MAX];
    let mut entries = Vec::with_capacity(per as usize);
    for first in (0..a.streams).step_by(per as usize) {
        entries.clear();
        entries.extend((first..(first + per).min(a.streams)).map(|stream| Credit { stream, position: GRANT }));
        let len = frames::build_frame(&gen, SUB_PORT_BASE + sub, &mut frame, |b| control::emit_credits(b, &entries))
            .ok_or("CREDIT frame too big")?;
        if !receive(w, &mut frame[..len]) {
            return Err("a CREDIT frame was dropped".into());
        }
    }
    end_turn(w);
    absorb_counts(w);
    match w.total(C::CreditsUnknown) {
        0 => Ok(()),
        n => Err(format!("{n} grants for unknown subscriptions")),
    }
}
