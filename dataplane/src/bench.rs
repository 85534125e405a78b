//! The in-process traffic generator of `ms-bench`: it sits on one end of a
//! crossed pair of ring ports, the real dataplane worker on the other, so
//! no kernel is in the path. Open loop: message `i` of a phase is scheduled
//! at `t0 + i / rate` and carries that TSC value; the generator's receive
//! side records latency from it into an HdrHistogram.
//!
//! Its subscribers grant credit like a real client: per (subscriber,
//! stream) it keeps the grant the appliance has been sent, and when a
//! DELIVER's `position` comes within half a window of it, grants
//! `position + CREDIT_WINDOW` in one CREDIT datagram per subscriber per
//! receive burst. Everything the load touches (grant table, Zipf table,
//! histogram, frame arrays, samples) is allocated before it starts.
//!
//! Besides a plain run ([`Generator::run`]) it drives two scenarios: an
//! overload with sampling of RSS and the memory gauges and a recovery probe
//! ([`Generator::overload`]), and a million-stream subscribe / load /
//! unsubscribe cycle with RSS at each step ([`Generator::million`]).

use crate::counters::{Counter, COUNTERS_LEN};
use crate::dpdk::mbuf::{self, Mempool};
use crate::dpdk::port;
use hdrhistogram::Histogram;
use ms_dpdk_sys as sys;
use ms_netstack::host::{Host, HostConfig, UdpEndpoint, UDP_PAYLOAD_OFFSET};
use ms_netstack::{ethernet, ipv4, udp, Ipv4Addr, MacAddr};
use ms_proto::ProtoCounter;
use ms_wire::control::{self, Credit, RangeRequest, CREDIT_ENTRY_LEN, RANGE_IDS_MAX};
use ms_wire::publish::PublishBuilder;
use ms_wire::{Frame, FrameType, DATAGRAM_MAX, HEADER_LEN};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Credit each subscriber grants past the last message it received, per
/// stream. It must cover what a stream carries while a grant travels: a
/// CREDIT waits behind whatever PUBLISHes fill the worker's RX ring (up to
/// 4096 datagrams, 65k messages), so at 8M msg/s of 64 B on one stream the
/// bandwidth-delay product is up to 4 MiB. With 1 MiB the one-stream
/// sweep lost messages from 6M msg/s on (credit ran out, the stream queue
/// hit its limit and drop-oldest applied); half of 16 MiB is twice the
/// worst case.
pub const CREDIT_WINDOW: u64 = 16 << 20;

/// The credit a new subscription starts with: the generated config sets
/// `flow.initial_credit_bytes` to it (the appliance's default), and the
/// generator starts every (subscriber, stream) grant from it.
pub const INITIAL_CREDIT: u32 = 65_536;

/// CREDIT entries that fit one datagram.
const CREDITS_PER_DATAGRAM: usize = (DATAGRAM_MAX - HEADER_LEN) / CREDIT_ENTRY_LEN;

/// Marks a grant that waits in its subscriber's next CREDIT datagram.
const PENDING: u64 = 1 << 63;

/// Wire class of messages when classes are not mixed: 1, "normal".
const NORMAL_CLASS: u8 = 1;

/// Which wire class messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classes {
    /// Every message is wire class 1 (normal), as before classes existed.
    Normal,
    /// Stream `s` carries wire class `s % 4`: a quarter of the streams
    /// (and of round-robin traffic) each for bulk, normal, latency and
    /// control.
    Mixed,
}

impl Classes {
    #[inline]
    fn of(self, stream: u64) -> u8 {
        match self {
            Classes::Normal => NORMAL_CLASS,
            Classes::Mixed => (stream % 4) as u8,
        }
    }
}

/// What to offer.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Messages per second offered.
    pub rate: u64,
    /// Seconds of load.
    pub seconds: f64,
    /// Streams, published round-robin.
    pub streams: u64,
    /// Subscribers, each on every stream (fan-out).
    pub subscribers: u16,
    /// Payload bytes (>= 16).
    pub payload: usize,
    /// Messages per PUBLISH datagram.
    pub batch: usize,
    /// Zipf exponent of stream popularity; 0 = uniform round-robin.
    pub zipf: f64,
    /// Wire classes of the messages.
    pub classes: Classes,
}

/// Draws stream ids with Zipf(s) popularity over `n` streams: the CDF is
/// computed once (before the load starts), each draw is a binary search.
pub struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    /// The distribution over streams `0..n` with exponent `s`.
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf, state: 0x9e37_79b9_7f4a_7c15 }
    }

    /// The next stream id (xorshift-driven, deterministic).
    pub fn draw(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|c| *c < u) as u64
    }
}

/// What happened.
#[derive(Debug)]
pub struct Outcome {
    /// Messages offered (scheduled; those the generator could not send
    /// are in `gen_dropped_messages`).
    pub sent: u64,
    /// PUBLISH datagrams sent.
    pub sent_packets: u64,
    /// Datagrams the generator could not send (its TX ring was full).
    pub gen_dropped_packets: u64,
    /// Messages in those datagrams.
    pub gen_dropped_messages: u64,
    /// Messages received by all subscribers.
    pub received: u64,
    /// DELIVER datagrams received.
    pub received_packets: u64,
    /// Seconds the load ran.
    pub seconds: f64,
    /// Latency, ns, scheduled send to receipt.
    pub latency_ns: Histogram<u64>,
    /// Subscriptions acknowledged before the load started.
    pub subscribed: bool,
    /// CREDIT entries the subscribers sent.
    pub credit_entries: u64,
    /// CREDIT datagrams sent.
    pub credit_datagrams: u64,
}

/// The generator's side of the link.
pub struct Generator {
    /// Its port.
    pub port: u16,
    /// Its buffers.
    pub pool: Arc<Mempool>,
    /// Its MAC.
    pub mac: MacAddr,
    /// The dataplane port's MAC.
    pub dut_mac: MacAddr,
    /// TSC ticks per second.
    pub tsc_hz: u64,
}

const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DUT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVICE_PORT: u16 = 9000;
const PUB_PORT_BASE: u16 = 40_000;
const SUB_PORT_BASE: u16 = 41_000;
const BURST: usize = 32;
/// Receive bursts drained per loop turn before sending again: receiving
/// comes first, so a generator that cannot keep up shows as its own TX
/// drops, not as DELIVERs the worker could not hand over.
const RX_ROUNDS: usize = 8;

fn rdtsc() -> u64 {
    // SAFETY: rte_rdtsc only reads the time-stamp counter.
    unsafe { sys::rte_rdtsc() }
}

/// The process's resident set (VmRSS), in bytes; 0 if unreadable. Reads
/// into a stack buffer: it runs on the generator's lcore during the load.
pub fn rss_bytes() -> u64 {
    let mut buf = [0u8; 8192];
    let Ok(mut f) = std::fs::File::open("/proc/self/status") else { return 0 };
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let text = std::str::from_utf8(&buf[..len]).unwrap_or("");
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The credit the generator's subscribers have granted, per (subscriber,
/// stream), and the grants waiting to be sent. Allocated, and written
/// (so resident), before the load starts: 8 bytes per pair.
struct Grants {
    streams: u64,
    subscribers: usize,
    /// Highest grant the appliance was sent; [`PENDING`] while a larger
    /// one waits in `pending`.
    granted: Vec<u64>,
    /// Per subscriber, up to [`CREDITS_PER_DATAGRAM`] grants for its next
    /// CREDIT datagram.
    pending: Vec<Credit>,
    pending_len: Vec<usize>,
    entries_sent: u64,
    datagrams_sent: u64,
}

impl Grants {
    fn new(subscribers: usize, streams: u64) -> Grants {
        Grants {
            streams,
            subscribers,
            granted: vec![u64::from(INITIAL_CREDIT); subscribers * streams as usize],
            pending: vec![Credit { stream: 0, position: 0 }; subscribers * CREDITS_PER_DATAGRAM],
            pending_len: vec![0; subscribers],
            entries_sent: 0,
            datagrams_sent: 0,
        }
    }

    /// Subscriber `sub` received stream `stream`'s message ending at
    /// `position`: grants a window past it once less than half a window of
    /// credit is left. A grant that finds its subscriber's datagram full is
    /// asked for again by the stream's next message: with at least half a
    /// window left (the first time, nearly all of the initial 64 KiB),
    /// hundreds or more of that stream's messages can still come before its
    /// credit runs out, and each asks again.
    #[inline]
    fn on_delivery(&mut self, sub: usize, stream: u64, position: u64) {
        if sub >= self.subscribers || stream >= self.streams {
            return;
        }
        let i = sub * self.streams as usize + stream as usize;
        let g = self.granted[i];
        if g & PENDING != 0 || g.saturating_sub(position) >= CREDIT_WINDOW / 2 {
            return;
        }
        let n = self.pending_len[sub];
        if n == CREDITS_PER_DATAGRAM {
            return;
        }
        self.pending[sub * CREDITS_PER_DATAGRAM + n] = Credit { stream, position: position + CREDIT_WINDOW };
        self.pending_len[sub] = n + 1;
        self.granted[i] = g | PENDING;
    }

    /// Every subscriber's streams `first..=last` are back at the initial
    /// credit; grants waiting to be sent for them are dropped.
    fn reset(&mut self, first: u64, last: u64) {
        let last = last.min(self.streams.saturating_sub(1));
        for sub in 0..self.subscribers {
            let row = sub * self.streams as usize;
            for i in first..=last {
                self.granted[row + i as usize] = u64::from(INITIAL_CREDIT);
            }
            let at = sub * CREDITS_PER_DATAGRAM;
            let mut kept = 0;
            for k in 0..self.pending_len[sub] {
                let c = self.pending[at + k];
                if !(first..=last).contains(&c.stream) {
                    self.pending[at + kept] = c;
                    kept += 1;
                }
            }
            self.pending_len[sub] = kept;
        }
    }

    /// The grants of subscriber `sub` were sent: they are now in force.
    fn sent(&mut self, sub: usize) {
        let n = self.pending_len[sub];
        for c in &self.pending[sub * CREDITS_PER_DATAGRAM..sub * CREDITS_PER_DATAGRAM + n] {
            self.granted[sub * self.streams as usize + c.stream as usize] = c.position;
        }
        self.pending_len[sub] = 0;
        self.entries_sent += n as u64;
        self.datagrams_sent += 1;
    }
}

/// Acknowledgements awaited for the requests of one [`Session::ranges`].
#[derive(Debug, Default)]
struct Acks {
    /// Request id of `parts[0]`.
    base: u32,
    /// Parts acknowledged, per request.
    parts: Vec<u16>,
    /// Requests not yet acknowledged in full.
    open: usize,
    /// The appliance refused one of them (ERROR).
    refused: bool,
}

impl Acks {
    fn ack(&mut self, request: u32, parts: u16) {
        let Some(n) = request.checked_sub(self.base).and_then(|i| self.parts.get_mut(i as usize)) else { return };
        *n += 1;
        if *n == parts.max(1) {
            self.open = self.open.saturating_sub(1);
        }
    }

    fn refuse(&mut self, request: u32) {
        if request.checked_sub(self.base).is_some_and(|i| (i as usize) < self.parts.len()) {
            self.refused = true;
        }
    }
}

/// One phase of open-loop load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Messages per second offered.
    pub rate: u64,
    /// Messages scheduled.
    pub offered: u64,
    /// Messages in datagrams the ring took.
    pub sent: u64,
    /// PUBLISH datagrams the ring took.
    pub sent_packets: u64,
    /// Datagrams the generator could not send (TX ring full, or no mbuf).
    pub gen_dropped_packets: u64,
    /// Messages in them.
    pub gen_dropped_messages: u64,
    /// Messages the subscribers received during the phase.
    pub received: u64,
    /// Seconds it lasted.
    pub seconds: f64,
}

/// Sums of the workers' blocks in the stats segment, read while the
/// dataplane runs; the degradation level is the highest of any worker.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    /// Every counter and gauge, summed over workers.
    pub v: [u64; COUNTERS_LEN],
    /// Highest degradation level of any worker.
    pub level: u64,
}

impl Totals {
    /// One counter or gauge.
    pub fn get(&self, c: impl Into<crate::counters::Metric>) -> u64 {
        self.v[crate::counters::slot(c)]
    }
}

/// One sample of the process and the memory gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Milliseconds since the phase started.
    pub t_ms: u64,
    /// VmRSS.
    pub rss_bytes: u64,
    /// Gauges, summed over workers (level: the highest).
    pub pool_used_bytes: u64,
    /// Pool bytes.
    pub pool_bytes: u64,
    /// Degradation level.
    pub degradation_level: u64,
    /// Messages queued.
    pub queued_messages: u64,
}

/// Reads the stats segment the dataplane in this process writes.
pub struct Monitor {
    seg: ms_stats::Segment,
    buf: Vec<u64>,
}

impl Monitor {
    /// Maps the segment at `path` (the dataplane must have created it).
    pub fn open(path: &Path) -> anyhow::Result<Monitor> {
        let seg = ms_stats::Segment::open(path)?;
        let buf = vec![0; seg.slots()];
        Ok(Monitor { seg, buf })
    }

    /// Current totals; `None` if a worker's block stayed mid-update.
    pub fn read(&mut self) -> Option<Totals> {
        let mut t = Totals { v: [0; COUNTERS_LEN], level: 0 };
        for block in 0..self.seg.lcores() {
            self.seg.read(block, &mut self.buf, std::time::Duration::from_millis(50))?;
            for (s, v) in t.v.iter_mut().zip(&self.buf) {
                *s += v;
            }
            t.level = t.level.max(self.buf[crate::counters::slot(ProtoCounter::DegradationLevel)]);
        }
        Some(t)
    }

    fn sample(&mut self, t_ms: u64) -> Option<Sample> {
        let t = self.read()?;
        Some(Sample {
            t_ms,
            rss_bytes: rss_bytes(),
            pool_used_bytes: t.get(ProtoCounter::PoolUsedBytes),
            pool_bytes: t.get(ProtoCounter::PoolBytes),
            degradation_level: t.level,
            queued_messages: t.get(ProtoCounter::QueuedMessages),
        })
    }
}

/// How the overload scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct OverloadSpec {
    /// The sustainable rate S, msg/s (measured by the caller).
    pub sustainable: u64,
    /// Offered load as a multiple of the sustainable rate.
    pub factor: f64,
    /// Seconds of overload.
    pub seconds: f64,
    /// Longest wait for normal service after the load stops.
    pub recovery_limit_s: f64,
}

/// What the overload scenario saw.
#[derive(Debug)]
pub struct OverloadOutcome {
    /// Subscriptions acknowledged.
    pub subscribed: bool,
    /// The overload phase.
    pub overload: Phase,
    /// Samples every 100 ms during the overload phase.
    pub samples: Vec<Sample>,
    /// Samples every 10 ms from the end of the load until service
    /// resumed (`t_ms` since the end of the load).
    pub recovery_samples: Vec<Sample>,
    /// VmRSS when the overload started.
    pub rss_load_start: u64,
    /// VmRSS after the run settled.
    pub rss_after: u64,
    /// Counters when the overload phase started.
    pub at_start: Option<Totals>,
    /// Counters when the overload phase ended.
    pub at_stop: Option<Totals>,
    /// Time from the end of the load until a probe reached every
    /// subscriber and nothing was queued; `None` if not within the limit.
    pub recovery_ms: Option<u64>,
    /// Probe messages sent after the load.
    pub probes_sent: u64,
    /// Counters stopped changing and nothing was queued before the end.
    pub settled: bool,
    /// Messages received by all subscribers, over the whole run.
    pub received: u64,
    /// Messages the generator scheduled over the whole run, probes
    /// included.
    pub offered_total: u64,
    /// Messages the ring took over the whole run.
    pub sent_total: u64,
    /// Datagrams the generator could not send over the whole run.
    pub gen_dropped_packets_total: u64,
    /// Messages in them.
    pub gen_dropped_messages_total: u64,
    /// CREDIT entries sent.
    pub credit_entries: u64,
}

/// What the million-stream scenario saw.
#[derive(Debug)]
pub struct MillionOutcome {
    /// VmRSS with the dataplane ready (tables and pool allocated), before
    /// any subscription.
    pub rss_before: u64,
    /// VmRSS once every stream was subscribed.
    pub rss_subscribed: u64,
    /// VmRSS after the load.
    pub rss_loaded: u64,
    /// VmRSS after every subscription was removed.
    pub rss_unsubscribed: u64,
    /// VmRSS after subscribing and unsubscribing every stream once more.
    pub rss_second_round: u64,
    /// Seconds to subscribe (all ACKs in).
    pub subscribe_seconds: f64,
    /// Subscriptions acknowledged.
    pub subscribed: bool,
    /// Unsubscriptions (and the second round) acknowledged and the gauges
    /// back to zero streams and nothing queued each time.
    pub freed: bool,
    /// Gauge streams_active after subscribing.
    pub streams_active: u64,
    /// The load phase.
    pub load: Phase,
    /// CREDIT entries sent.
    pub credit_entries: u64,
}

/// A generator run: the host, every buffer and table, allocated before
/// the load.
struct Session<'g> {
    g: &'g Generator,
    /// Set when the run must end early (the dataplane failed to start).
    stop: &'g AtomicBool,
    host: Host,
    load: Load,
    grants: Grants,
    hist: Histogram<u64>,
    zipf: Option<Zipf>,
    payload: Vec<u8>,
    frames: Vec<*mut sys::rte_mbuf>,
    rx: [*mut sys::rte_mbuf; BURST],
    /// The ring refused the last datagram offered.
    ring_full: bool,
    next_heartbeat: u64,
    received: u64,
    received_packets: u64,
    /// Stream whose deliveries are probes, and which subscribers got one.
    probe_stream: Option<u64>,
    probe_seen: Vec<bool>,
    acks: Acks,
    offered: u64,
    sent: u64,
    dropped_packets: u64,
    dropped_messages: u64,
}

impl<'g> Session<'g> {
    /// `extra_streams` more stream ids past `load.streams` get grants too
    /// (the overload's probe stream).
    fn new(g: &'g Generator, load: Load, extra_streams: u64, stop: &'g AtomicBool) -> Session<'g> {
        let host =
            Host::new(HostConfig { mac: g.mac, ip: GEN_IP, prefix_len: 24, service_port: 0, arp: Default::default() });
        let subs = usize::from(load.subscribers);
        Session {
            g,
            stop,
            host,
            load,
            grants: Grants::new(subs, load.streams + extra_streams),
            hist: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
            zipf: (load.zipf > 0.0).then(|| Zipf::new(load.streams, load.zipf)),
            payload: vec![0u8; load.payload.max(16)],
            frames: Vec::with_capacity(BURST),
            rx: [std::ptr::null_mut(); BURST],
            ring_full: false,
            next_heartbeat: 0,
            received: 0,
            received_packets: 0,
            probe_stream: None,
            probe_seen: vec![false; subs],
            acks: Acks { base: 1, ..Acks::default() },
            offered: 0,
            sent: 0,
            dropped_packets: 0,
            dropped_messages: 0,
        }
    }

    /// A frame from `src_port` to the dataplane's service port.
    fn frame(&self, src_port: u16, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> Option<*mut sys::rte_mbuf> {
        build_frame(self.g, &self.host, src_port, build)
    }

    /// Sends the queued frames; returns how many the ring took. The rest
    /// are freed.
    fn send(&mut self) -> usize {
        let sent = port::tx_burst(self.g.port, 0, &mut self.frames);
        mbuf::free_bulk(&mut self.frames[sent..]);
        self.ring_full = sent < self.frames.len();
        self.frames.clear();
        sent
    }

    /// Sends one control frame now; true if the ring took it.
    fn send_one(&mut self, src_port: u16, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let Some(m) = self.frame(src_port, build) else { return false };
        let mut one = [m];
        if port::tx_burst(self.g.port, 0, &mut one) == 1 {
            true
        } else {
            mbuf::free_bulk(&mut one);
            false
        }
    }

    /// Sends SUBSCRIBE (or UNSUBSCRIBE) for streams `first..=last` from
    /// every subscriber, [`RANGE_IDS_MAX`] ids per request; true when every
    /// part of every request was acknowledged (a range is answered once per
    /// worker that owns part of it) within 60 s, enough for a million
    /// streams in a debug build. DELIVERs that arrive meanwhile are
    /// counted as usual.
    fn ranges(&mut self, t: FrameType, first: u64, last: u64) -> bool {
        let per_sub = (last - first) / RANGE_IDS_MAX + 1;
        let requests = (per_sub * u64::from(self.load.subscribers)) as usize;
        self.acks = Acks {
            base: self.acks.base + self.acks.parts.len() as u32,
            parts: vec![0; requests],
            open: 0,
            refused: false,
        };
        if t == FrameType::Subscribe {
            // A stream created anew starts again at position 0 with the
            // initial credit. (For one that still exists this undercounts
            // the credit, which only makes the next grant come sooner.)
            self.grants.reset(first, last);
        }
        let mut request = self.acks.base;
        for s in 0..self.load.subscribers {
            let mut lo = first;
            while lo <= last {
                let hi = (lo + RANGE_IDS_MAX - 1).min(last);
                let req = RangeRequest { request, first: lo, last: hi, initial_credit: 0 };
                request += 1;
                self.acks.open += 1;
                if let Some(m) = self.frame(SUB_PORT_BASE + s, |b| control::emit_ranges(b, t, &[req])) {
                    self.frames.push(m);
                }
                lo = hi + 1;
                if self.frames.len() == BURST {
                    self.send();
                }
            }
        }
        self.send();
        self.drain_until(60.0, |s| s.acks.open == 0 || s.acks.refused) && !self.acks.refused
    }

    /// Waits until the worker answers (an UNSUBSCRIBE of a stream nobody
    /// has is acknowledged): its tables are built and its loop runs.
    fn ping(&mut self, unused_stream: u64) -> bool {
        self.ranges(FrameType::Unsubscribe, unused_stream, unused_stream)
    }

    /// Receives up to [`RX_ROUNDS`] bursts, records latency, counts, and
    /// sends the grants they made due (one CREDIT per subscriber per
    /// burst); heartbeats once a second so subscriptions outlive long runs.
    fn poll(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..RX_ROUNDS {
            let n = port::rx_burst(self.g.port, 0, &mut self.rx);
            if n == 0 {
                break;
            }
            total += n;
            let now = rdtsc();
            for k in 0..n {
                let m = self.rx[k];
                // SAFETY: received, owned here until freed below.
                let data = unsafe { mbuf::data_mut(m) };
                let Some((dst_port, payload)) = udp_parts(data) else { continue };
                let dl = match ms_wire::parse(payload) {
                    Ok(Frame::Deliver(dl)) => dl,
                    Ok(Frame::Control(control::Control::Ack(acks))) => {
                        acks.for_each(|a| self.acks.ack(a.request, a.parts));
                        continue;
                    }
                    Ok(Frame::Control(control::Control::Error(errors))) => {
                        errors.for_each(|e| self.acks.refuse(e.request));
                        continue;
                    }
                    _ => continue,
                };
                let sub = usize::from(dst_port.wrapping_sub(SUB_PORT_BASE));
                self.received_packets += 1;
                for x in dl.deliveries() {
                    let sched = x.payload.get(..8).and_then(|b| b.try_into().ok()).map_or(now, u64::from_le_bytes);
                    let ns = (now.saturating_sub(sched) as u128 * 1_000_000_000 / u128::from(self.g.tsc_hz)) as u64;
                    self.hist.saturating_record(ns.max(1));
                    self.received += 1;
                    self.grants.on_delivery(sub, x.stream, x.position);
                    if Some(x.stream) == self.probe_stream {
                        if let Some(seen) = self.probe_seen.get_mut(sub) {
                            *seen = true;
                        }
                    }
                }
            }
            mbuf::free_bulk(&mut self.rx[..n]);
            self.flush_grants();
        }
        let now = rdtsc();
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.g.tsc_hz;
            for s in 0..self.load.subscribers {
                self.send_one(SUB_PORT_BASE + s, control::emit_heartbeat);
            }
        }
        total
    }

    /// Sends each subscriber's due grants in one CREDIT datagram; those
    /// the ring refuses stay due and go with the next burst's.
    fn flush_grants(&mut self) {
        for sub in 0..self.grants.subscribers {
            let n = self.grants.pending_len[sub];
            if n == 0 {
                continue;
            }
            let at = sub * CREDITS_PER_DATAGRAM;
            let entries = &self.grants.pending[at..at + n];
            let Some(m) = self.frame(SUB_PORT_BASE + sub as u16, |b| control::emit_credits(b, entries)) else {
                continue;
            };
            let mut one = [m];
            if port::tx_burst(self.g.port, 0, &mut one) == 1 {
                self.grants.sent(sub);
            } else {
                mbuf::free_bulk(&mut one);
            }
        }
    }

    /// Offers `rate` msg/s for `seconds`, open loop; calls `tick` with the
    /// TSC at every loop turn (sampling). Datagrams due while the ring is
    /// full are counted as dropped without being built, so a saturated
    /// generator keeps its CPU for receiving.
    fn offer(&mut self, rate: u64, seconds: f64, mut tick: impl FnMut(u64)) -> Phase {
        let batch = self.load.batch as u64;
        let total = (rate as f64 * seconds) as u64;
        let tsc_per_msg = self.g.tsc_hz as f64 / rate.max(1) as f64;
        let (received0, sent0, dp0, dm0) = (self.received, self.sent, self.dropped_packets, self.dropped_messages);
        let mut sent_packets = 0;
        let t0 = rdtsc();
        let mut i = 0u64;
        while i + batch <= total && !self.stop.load(Ordering::Relaxed) {
            let now = rdtsc();
            while i + batch <= total
                && t0 + ((i + batch - 1) as f64 * tsc_per_msg) as u64 <= now
                && self.frames.len() < BURST
            {
                let first = i;
                i += batch;
                if self.ring_full && !self.frames.is_empty() {
                    self.dropped_packets += 1;
                    self.dropped_messages += batch;
                    continue;
                }
                let Session { g, host, load, payload, zipf, .. } = self;
                let src = PUB_PORT_BASE + (ms_wire::shard::shard(first % load.streams) % 16) as u16;
                let built = build_frame(g, host, src, |b| {
                    let mut w = PublishBuilder::new(b)?;
                    for k in 0..batch {
                        let sched = t0 + ((first + k) as f64 * tsc_per_msg) as u64;
                        payload[..8].copy_from_slice(&sched.to_le_bytes());
                        payload[8..16].copy_from_slice(&(first + k).to_le_bytes());
                        let stream = zipf.as_mut().map_or((first + k) % load.streams, |z| z.draw());
                        w.push(stream, load.classes.of(stream), payload).then_some(())?;
                    }
                    Some(w.len())
                });
                match built {
                    Some(m) => self.frames.push(m),
                    None => {
                        self.dropped_packets += 1;
                        self.dropped_messages += batch;
                    }
                }
            }
            let queued = self.frames.len() as u64;
            let took = self.send() as u64;
            sent_packets += took;
            self.sent += took * batch;
            self.dropped_packets += queued - took;
            self.dropped_messages += (queued - took) * batch;
            self.poll();
            tick(rdtsc());
        }
        self.offered += i;
        Phase {
            rate,
            offered: i,
            sent: self.sent - sent0,
            sent_packets,
            gen_dropped_packets: self.dropped_packets - dp0,
            gen_dropped_messages: self.dropped_messages - dm0,
            received: self.received - received0,
            seconds: (rdtsc() - t0) as f64 / self.g.tsc_hz as f64,
        }
    }

    /// Receives (and grants) until `done` says so or `limit_s` passes;
    /// true if `done` did.
    fn drain_until(&mut self, limit_s: f64, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = rdtsc() + (limit_s * self.g.tsc_hz as f64) as u64;
        loop {
            self.poll();
            if done(self) {
                return true;
            }
            if rdtsc() >= deadline || self.stop.load(Ordering::Relaxed) {
                return false;
            }
        }
    }

    /// Receives until nothing is queued in the appliance and neither its
    /// counters nor what the subscribers received changed for 150 ms
    /// (bounded by `limit_s`); true if that happened.
    fn settle(&mut self, mon: &mut Monitor, limit_s: f64) -> bool {
        let every = self.g.tsc_hz / 20;
        let mut next = rdtsc();
        let mut last = None;
        let mut stable = 0;
        self.drain_until(limit_s, |s| {
            let now = rdtsc();
            if now < next {
                return false;
            }
            next = now + every;
            let Some(t) = mon.read() else { return false };
            let key = (
                s.received,
                t.get(Counter::DeliverMessages),
                t.get(ProtoCounter::DeliveriesQueued),
                t.get(ProtoCounter::MessagesPublished),
                t.get(ProtoCounter::CreditsReceived),
            );
            if t.get(ProtoCounter::QueuedMessages) == 0 && last == Some(key) {
                stable += 1;
            } else {
                stable = 0;
            }
            last = Some(key);
            stable >= 3
        })
    }
}

impl Generator {
    /// Runs the load; `done` is set when it is over.
    pub fn run(&self, load: Load, done: &AtomicBool) -> Outcome {
        let mut s = Session::new(self, load, 0, done);
        let subscribed = s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        let phase = s.offer(load.rate, load.seconds, |_| {});
        // Wait for what is still on its way, at most 200 ms.
        let expected = (phase.offered - phase.gen_dropped_messages) * u64::from(load.subscribers);
        s.drain_until(0.2, |s| s.received >= expected);
        done.store(true, Ordering::Relaxed);
        Outcome {
            sent: phase.offered,
            sent_packets: phase.sent_packets,
            gen_dropped_packets: phase.gen_dropped_packets,
            gen_dropped_messages: phase.gen_dropped_messages,
            received: s.received,
            received_packets: s.received_packets,
            seconds: phase.seconds,
            latency_ns: s.hist,
            subscribed,
            credit_entries: s.grants.entries_sent,
            credit_datagrams: s.grants.datagrams_sent,
        }
    }

    /// The overload scenario: offer `factor` times the sustainable rate, sampling RSS and the memory gauges
    /// every 100 ms, then probe until normal service resumes, and wait
    /// until the counters settle. Stream `load.streams` is the probe
    /// stream; the load itself never publishes to it. `done` is set at the
    /// end. Errors only if the stats segment cannot be read.
    pub fn overload(
        &self,
        load: Load,
        spec: OverloadSpec,
        stats: &Path,
        done: &AtomicBool,
    ) -> anyhow::Result<OverloadOutcome> {
        let result = self.overload_inner(load, spec, stats, done);
        done.store(true, Ordering::Relaxed);
        result
    }

    fn overload_inner(
        &self,
        load: Load,
        spec: OverloadSpec,
        stats: &Path,
        done: &AtomicBool,
    ) -> anyhow::Result<OverloadOutcome> {
        let probe = load.streams;
        let mut s = Session::new(self, load, 1, done);
        let subscribed = s.ranges(FrameType::Subscribe, 0, probe);
        let mut mon = Monitor::open(stats)?;
        let mut samples = Vec::with_capacity((spec.seconds * 10.0) as usize + 16);
        let rate = (spec.sustainable as f64 * spec.factor) as u64;
        let at_start = mon.read();
        let rss_load_start = rss_bytes();
        let every = self.tsc_hz / 10;
        let t0 = rdtsc();
        let mut next = t0;
        let overload = s.offer(rate, spec.seconds, |now| {
            if now >= next && samples.len() < samples.capacity() {
                next = now + every;
                let t_ms = (now - t0) * 1000 / self.tsc_hz;
                if let Some(x) = mon.sample(t_ms) {
                    samples.push(x);
                }
            }
        });
        let stop = rdtsc();
        let at_stop = mon.read();
        // Probes: one normal-class message every 10 ms on the probe stream
        // until one reached every subscriber and nothing is queued. Normal
        // class is what degradation level 3 sheds, so its delivery means
        // the pool is below that step and the higher classes' backlog is
        // gone.
        s.probe_stream = Some(probe);
        let probe_every = self.tsc_hz / 100;
        let mut next_probe = stop;
        let mut probes_sent = 0u64;
        let mut check_next = stop;
        let mut recovery_samples = Vec::with_capacity((spec.recovery_limit_s * 100.0) as usize + 16);
        let mut sample_next = stop;
        let recovered = s.drain_until(spec.recovery_limit_s, |s| {
            let now = rdtsc();
            if now >= sample_next && recovery_samples.len() < recovery_samples.capacity() {
                sample_next = now + self.tsc_hz / 100;
                if let Some(x) = mon.sample((now - stop) * 1000 / self.tsc_hz) {
                    recovery_samples.push(x);
                }
            }
            if !s.probe_seen.iter().all(|&b| b) && now >= next_probe {
                next_probe = now + probe_every;
                let mut payload = [0u8; 16];
                payload[..8].copy_from_slice(&now.to_le_bytes());
                payload[8..].copy_from_slice(&probes_sent.to_le_bytes());
                let src = PUB_PORT_BASE + (ms_wire::shard::shard(probe) % 16) as u16;
                let sent = s.send_one(src, |b| {
                    let mut w = PublishBuilder::new(b)?;
                    w.push(probe, NORMAL_CLASS, &payload).then_some(())?;
                    Some(w.len())
                });
                probes_sent += 1;
                s.offered += 1;
                if sent {
                    s.sent += 1;
                } else {
                    s.dropped_packets += 1;
                    s.dropped_messages += 1;
                }
            }
            if !s.probe_seen.iter().all(|&b| b) || now < check_next {
                return false;
            }
            check_next = now + self.tsc_hz / 1000;
            mon.read().is_some_and(|t| t.get(ProtoCounter::QueuedMessages) == 0)
        });
        let recovery_ms = recovered.then(|| (rdtsc() - stop) * 1000 / self.tsc_hz);
        let settled = s.settle(&mut mon, 10.0);
        Ok(OverloadOutcome {
            subscribed,
            overload,
            samples,
            recovery_samples,
            rss_load_start,
            rss_after: rss_bytes(),
            at_start,
            at_stop,
            recovery_ms,
            probes_sent,
            settled,
            received: s.received,
            offered_total: s.offered,
            sent_total: s.sent,
            gen_dropped_packets_total: s.dropped_packets,
            gen_dropped_messages_total: s.dropped_messages,
            credit_entries: s.grants.entries_sent,
        })
    }

    /// The million-stream scenario: RSS with the dataplane ready, after
    /// subscribing every stream, after `load` (credit granted per stream),
    /// and after unsubscribing them all. `done` is set at the end.
    pub fn million(&self, load: Load, stats: &Path, done: &AtomicBool) -> anyhow::Result<MillionOutcome> {
        let result = self.million_inner(load, stats, done);
        done.store(true, Ordering::Relaxed);
        result
    }

    fn million_inner(&self, load: Load, stats: &Path, done: &AtomicBool) -> anyhow::Result<MillionOutcome> {
        let mut s = Session::new(self, load, 0, done);
        // A stream id past the table's: never subscribed.
        anyhow::ensure!(s.ping(load.streams + 1), "the dataplane did not answer");
        let mut mon = Monitor::open(stats)?;
        let rss_before = rss_bytes();
        let t = rdtsc();
        let subscribed = s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        let subscribe_seconds = (rdtsc() - t) as f64 / self.tsc_hz as f64;
        let streams_active = mon.read().map_or(0, |t| t.get(ProtoCounter::StreamsActive));
        let rss_subscribed = rss_bytes();
        let mut phase = s.offer(load.rate, load.seconds, |_| {});
        s.settle(&mut mon, 10.0);
        // What came in while settling belongs to the load too.
        phase.received = s.received;
        let rss_loaded = rss_bytes();
        let mut freed = s.ranges(FrameType::Unsubscribe, 0, load.streams - 1);
        let mut gone = |s: &mut Session<'_>| {
            s.drain_until(10.0, |_| {
                mon.read().is_some_and(|t| {
                    t.get(ProtoCounter::StreamsActive) == 0 && t.get(ProtoCounter::QueuedMessages) == 0
                })
            })
        };
        freed &= gone(&mut s);
        let rss_unsubscribed = rss_bytes();
        // A second round: whatever the first one made resident is reused,
        // so the process must not grow again.
        freed &= s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        freed &= s.ranges(FrameType::Unsubscribe, 0, load.streams - 1);
        freed &= gone(&mut s);
        Ok(MillionOutcome {
            rss_before,
            rss_subscribed,
            rss_loaded,
            rss_unsubscribed,
            rss_second_round: rss_bytes(),
            subscribe_seconds,
            subscribed,
            freed,
            streams_active,
            load: phase,
            credit_entries: s.grants.entries_sent,
        })
    }
}

/// A frame from `src_port` to the dataplane's service port carrying what
/// `build` writes into the UDP payload area; `None` when no mbuf is free
/// or `build` fails.
fn build_frame(
    g: &Generator,
    host: &Host,
    src_port: u16,
    build: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<*mut sys::rte_mbuf> {
    let m = g.pool.alloc()?;
    // SAFETY: a fresh single-segment mbuf; 1514 bytes fit its data room.
    let ok = unsafe { mbuf::set_len(m, UDP_PAYLOAD_OFFSET + DATAGRAM_MAX) };
    // SAFETY: sized above, owned here.
    let data = unsafe { mbuf::data_mut(m) };
    let len = ok.then(|| build(&mut data[UDP_PAYLOAD_OFFSET..])).flatten();
    let to = UdpEndpoint { mac: g.dut_mac, ip: DUT_IP, port: SERVICE_PORT };
    // SAFETY: m is ours; on failure it goes back to its pool.
    match len.and_then(|l| host.emit_udp(data, to, src_port, l)) {
        Some(n) if unsafe { mbuf::set_len(m, n) } => Some(m),
        _ => {
            mbuf::free_bulk(&mut [m]);
            None
        }
    }
}

/// The UDP destination port and payload of an Ethernet/IPv4/UDP frame,
/// if it is one.
fn udp_parts(frame: &[u8]) -> Option<(u16, &[u8])> {
    let (start, len, dst) = {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        let dg = udp::Packet::new_checked(ip.payload()).ok()?;
        (ethernet::HEADER_LEN + ip.header_len() + udp::HEADER_LEN, dg.payload().len(), dg.dst_port())
    };
    Some((dst, frame.get(start..start + len)?))
}
