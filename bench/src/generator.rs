//! The load: what to offer ([`Load`]), the generator's side of the link
//! ([`Generator`]), and a run's state ([`Session`]) with its open-loop
//! sender. Receiving and granting are in [`crate::grants`].

use crate::grants::{Acks, Grants};
use hdrhistogram::Histogram;
use ms_dataplane::dpdk::mbuf::{self, Mempool};
use ms_dataplane::dpdk::port;
use ms_dpdk_sys as sys;
use ms_netstack::host::{Host, HostConfig, UdpEndpoint, UDP_PAYLOAD_OFFSET};
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_wire::publish::PublishBuilder;
use ms_wire::DATAGRAM_MAX;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Wire class of messages when classes are not mixed: 1, "normal".
pub(crate) const NORMAL_CLASS: u8 = 1;

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
    /// What goes in the UDP checksum of the generator's datagrams.
    pub udp_checksum: ms_netstack::host::TxChecksum,
}

const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const DUT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVICE_PORT: u16 = 9000;
pub(crate) const PUB_PORT_BASE: u16 = 40_000;
pub(crate) const SUB_PORT_BASE: u16 = 41_000;
pub(crate) const BURST: usize = 32;

/// The TSC now.
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: rte_rdtsc only reads the time-stamp counter.
    unsafe { sys::rte_rdtsc() }
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

/// A generator run: the host, every buffer and table, allocated before
/// the load.
pub(crate) struct Session<'g> {
    pub(crate) g: &'g Generator,
    /// Set when the run must end early (the dataplane failed to start).
    pub(crate) stop: &'g AtomicBool,
    pub(crate) host: Host,
    pub(crate) load: Load,
    pub(crate) grants: Grants,
    pub(crate) hist: Histogram<u64>,
    pub(crate) zipf: Option<Zipf>,
    pub(crate) payload: Vec<u8>,
    pub(crate) frames: Vec<*mut sys::rte_mbuf>,
    pub(crate) rx: [*mut sys::rte_mbuf; BURST],
    /// The ring refused the last datagram offered.
    pub(crate) ring_full: bool,
    pub(crate) next_heartbeat: u64,
    pub(crate) received: u64,
    pub(crate) received_packets: u64,
    /// Stream whose deliveries are probes, and which subscribers got one.
    pub(crate) probe_stream: Option<u64>,
    pub(crate) probe_seen: Vec<bool>,
    pub(crate) acks: Acks,
    pub(crate) offered: u64,
    pub(crate) sent: u64,
    pub(crate) dropped_packets: u64,
    pub(crate) dropped_messages: u64,
}

impl<'g> Session<'g> {
    /// `extra_streams` more stream ids past `load.streams` get grants too
    /// (the overload's probe stream).
    pub(crate) fn new(g: &'g Generator, load: Load, extra_streams: u64, stop: &'g AtomicBool) -> Session<'g> {
        let host = Host::new(HostConfig {
            mac: g.mac,
            ip: GEN_IP,
            prefix_len: 24,
            service_port: 0,
            arp: Default::default(),
            udp_checksum: Default::default(),
        });
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
            acks: Acks::new(),
            offered: 0,
            sent: 0,
            dropped_packets: 0,
            dropped_messages: 0,
        }
    }

    /// A frame from `src_port` to the dataplane's service port.
    pub(crate) fn frame(
        &self,
        src_port: u16,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<*mut sys::rte_mbuf> {
        build_frame(self.g, &self.host, src_port, build)
    }

    /// Sends the queued frames; returns how many the ring took. The rest
    /// are freed.
    pub(crate) fn send(&mut self) -> usize {
        let sent = port::tx_burst(self.g.port, 0, &mut self.frames);
        mbuf::free_bulk(&mut self.frames[sent..]);
        self.ring_full = sent < self.frames.len();
        self.frames.clear();
        sent
    }

    /// Sends one control frame now; true if the ring took it.
    pub(crate) fn send_one(&mut self, src_port: u16, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let Some(m) = self.frame(src_port, build) else { return false };
        let mut one = [m];
        if port::tx_burst(self.g.port, 0, &mut one) == 1 {
            true
        } else {
            mbuf::free_bulk(&mut one);
            false
        }
    }

    /// Offers `rate` msg/s for `seconds`, open loop; calls `tick` with the
    /// TSC at every loop turn (sampling). Datagrams due while the ring is
    /// full are counted as dropped without being built, so a saturated
    /// generator keeps its CPU for receiving.
    pub(crate) fn offer(&mut self, rate: u64, seconds: f64, mut tick: impl FnMut(u64)) -> Phase {
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
    pub(crate) fn drain_until(&mut self, limit_s: f64, mut done: impl FnMut(&mut Self) -> bool) -> bool {
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
}

/// A frame from `src_port` to the dataplane's service port carrying what
/// `build` writes into the UDP payload area; `None` when no mbuf is free
/// or `build` fails.
pub(crate) fn build_frame(
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
