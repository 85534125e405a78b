//! The in-process traffic generator of `ms-bench`: it sits on one end of a
//! crossed pair of ring ports, the real dataplane worker on the other, so
//! no kernel is in the path. Open loop: message `i` is scheduled at
//! `t0 + i / rate` and carries that TSC value; the generator's receive side
//! records latency from it into an HdrHistogram.

use crate::mbuf::{self, Mempool};
use crate::port;
use hdrhistogram::Histogram;
use ms_dpdk_sys as sys;
use ms_netstack::host::{Host, HostConfig, UdpEndpoint, UDP_PAYLOAD_OFFSET};
use ms_netstack::{ethernet, ipv4, udp, Ipv4Addr, MacAddr};
use ms_wire::control::{self, RangeRequest, RANGE_IDS_MAX};
use ms_wire::publish::PublishBuilder;
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// Messages sent.
    pub sent: u64,
    /// PUBLISH datagrams sent.
    pub sent_packets: u64,
    /// Datagrams the generator could not send (its TX ring was full).
    pub gen_dropped_packets: u64,
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

fn rdtsc() -> u64 {
    // SAFETY: rte_rdtsc only reads the time-stamp counter.
    unsafe { sys::rte_rdtsc() }
}

impl Generator {
    fn host(&self) -> Host {
        Host::new(HostConfig { mac: self.mac, ip: GEN_IP, prefix_len: 24, service_port: 0, arp: Default::default() })
    }

    /// A frame from `src_port` to the dataplane's service port carrying what
    /// `build` writes into the UDP payload area.
    fn frame(
        &self,
        host: &Host,
        src_port: u16,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Option<*mut sys::rte_mbuf> {
        let m = self.pool.alloc()?;
        // SAFETY: a fresh single-segment mbuf; 1514 bytes fit its data room.
        let ok = unsafe { mbuf::set_len(m, UDP_PAYLOAD_OFFSET + DATAGRAM_MAX) };
        // SAFETY: sized above, owned here.
        let data = unsafe { mbuf::data_mut(m) };
        let len = ok.then(|| build(&mut data[UDP_PAYLOAD_OFFSET..])).flatten();
        let to = UdpEndpoint { mac: self.dut_mac, ip: DUT_IP, port: SERVICE_PORT };
        // SAFETY: m is ours; on failure it goes back to its pool.
        match len.and_then(|l| host.emit_udp(data, to, src_port, l)) {
            Some(n) if unsafe { mbuf::set_len(m, n) } => Some(m),
            _ => {
                mbuf::free_bulk(&mut [m]);
                None
            }
        }
    }

    fn send(&self, frames: &mut Vec<*mut sys::rte_mbuf>) -> (u64, u64) {
        let sent = port::tx_burst(self.port, 0, frames);
        let dropped = frames.len() - sent;
        mbuf::free_bulk(&mut frames[sent..]);
        frames.clear();
        (sent as u64, dropped as u64)
    }

    /// Subscribes every subscriber to every stream; true when all ACKs came.
    fn subscribe(&self, host: &Host, load: &Load) -> bool {
        let mut wanted = 0;
        let mut frames = Vec::new();
        for s in 0..load.subscribers {
            let mut first = 0;
            while first < load.streams {
                let last = (first + RANGE_IDS_MAX - 1).min(load.streams - 1);
                let req = RangeRequest { request: wanted + 1, first, last };
                if let Some(m) =
                    self.frame(host, SUB_PORT_BASE + s, |b| control::emit_ranges(b, FrameType::Subscribe, &[req]))
                {
                    frames.push(m);
                    wanted += 1;
                }
                first = last + 1;
                if frames.len() == BURST {
                    self.send(&mut frames);
                }
            }
        }
        self.send(&mut frames);
        let deadline = rdtsc() + 5 * self.tsc_hz;
        let mut acks = 0;
        let mut rx = [std::ptr::null_mut(); BURST];
        while acks < wanted && rdtsc() < deadline {
            let n = port::rx_burst(self.port, 0, &mut rx);
            for &m in &rx[..n] {
                // SAFETY: received, owned here until freed below.
                let data = unsafe { mbuf::data_mut(m) };
                if let Some(Ok(Frame::Control(control::Control::Ack(a)))) = udp_payload(data).map(ms_wire::parse) {
                    acks += a.count() as u32;
                }
            }
            mbuf::free_bulk(&mut rx[..n]);
        }
        acks == wanted
    }

    /// Runs the load; `done` is set when it is over.
    pub fn run(&self, load: Load, done: &AtomicBool) -> Outcome {
        let host = self.host();
        let subscribed = self.subscribe(&host, &load);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        let total = (load.rate as f64 * load.seconds) as u64;
        let tick = self.tsc_hz as f64 / load.rate.max(1) as f64;
        let t0 = rdtsc();
        let (mut i, mut sent_pkts, mut dropped, mut received, mut rx_pkts) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut frames: Vec<*mut sys::rte_mbuf> = Vec::with_capacity(BURST);
        let mut payload = vec![0u8; load.payload.max(16)];
        let mut rx = [std::ptr::null_mut(); BURST];
        let mut zipf = (load.zipf > 0.0).then(|| Zipf::new(load.streams, load.zipf));
        let end = t0 + (load.seconds * self.tsc_hz as f64) as u64 + self.tsc_hz / 5;
        loop {
            let now = rdtsc();
            // Send every datagram whose last message is due.
            while i + load.batch as u64 <= total
                && t0 + ((i + load.batch as u64 - 1) as f64 * tick) as u64 <= now
                && frames.len() < BURST
            {
                let src = PUB_PORT_BASE + (ms_wire::shard::shard(i % load.streams) % 16) as u16;
                let first = i;
                let built = self.frame(&host, src, |b| {
                    let mut w = PublishBuilder::new(b)?;
                    for k in 0..load.batch as u64 {
                        let sched = t0 + ((first + k) as f64 * tick) as u64;
                        payload[..8].copy_from_slice(&sched.to_le_bytes());
                        payload[8..16].copy_from_slice(&(first + k).to_le_bytes());
                        let stream = zipf.as_mut().map_or((first + k) % load.streams, |z| z.draw());
                        w.push(stream, 1, &payload).then_some(())?;
                    }
                    Some(w.len())
                });
                i += load.batch as u64;
                if let Some(m) = built {
                    frames.push(m);
                } else {
                    dropped += 1;
                }
            }
            let (s, d) = self.send(&mut frames);
            sent_pkts += s;
            dropped += d;
            let n = port::rx_burst(self.port, 0, &mut rx);
            let now = rdtsc();
            for &m in &rx[..n] {
                // SAFETY: received, owned here until freed below.
                let data = unsafe { mbuf::data_mut(m) };
                if let Some(Ok(Frame::Deliver(dl))) = udp_payload(data).map(ms_wire::parse) {
                    rx_pkts += 1;
                    for x in dl.deliveries() {
                        let sched = x.payload.get(..8).map_or(now, |b| u64::from_le_bytes(b.try_into().expect("8")));
                        let ns = (now.saturating_sub(sched) as u128 * 1_000_000_000 / u128::from(self.tsc_hz)) as u64;
                        hist.saturating_record(ns.max(1));
                        received += 1;
                    }
                }
            }
            mbuf::free_bulk(&mut rx[..n]);
            let expected = (i / load.batch as u64) * load.batch as u64 * u64::from(load.subscribers);
            if now > end || (i >= total && received >= expected) {
                break;
            }
        }
        done.store(true, Ordering::Relaxed);
        Outcome {
            sent: i.min(total),
            sent_packets: sent_pkts,
            gen_dropped_packets: dropped,
            received,
            received_packets: rx_pkts,
            seconds: (rdtsc() - t0) as f64 / self.tsc_hz as f64,
            latency_ns: hist,
            subscribed,
        }
    }
}

/// The UDP payload of an Ethernet/IPv4/UDP frame, if it is one.
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let (start, len) = {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        let dg = udp::Packet::new_checked(ip.payload()).ok()?;
        (ethernet::HEADER_LEN + ip.header_len() + udp::HEADER_LEN, dg.payload().len())
    };
    frame.get(start..start + len)
}
