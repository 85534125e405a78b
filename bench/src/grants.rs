//! The generator's subscribers: subscriptions ([`Session::ranges`]),
//! receiving DELIVERs ([`Session::poll`]) and granting credit like a real
//! client, with the client library's rule.

use crate::generator::{rdtsc, Session, BURST, SUB_PORT_BASE};
use ms_dataplane::dpdk::{mbuf, port};
use ms_netstack::{ethernet, ipv4, udp};
use ms_wire::control::{self, Credit, RangeRequest, CREDIT_ENTRY_LEN, RANGE_IDS_MAX};
use ms_wire::{Frame, FrameType, DATAGRAM_MAX, HEADER_LEN};

/// Credit each subscriber grants past the last message it received, per
/// stream. It must cover what a stream carries while a grant travels: a
/// CREDIT waits behind whatever PUBLISHes fill the worker's RX ring (up to
/// 4096 datagrams, 65k messages), so at 8M msg/s of 64 B on one stream the
/// bandwidth-delay product is up to 4 MiB. With 1 MiB the one-stream
/// sweep lost messages from 6M msg/s on (credit ran out, the stream queue
/// hit its limit and drop-oldest applied); half of 16 MiB is twice the
/// worst case.
pub const CREDIT_WINDOW: u64 = 16 << 20;

/// The client library's automatic credit rule with [`CREDIT_WINDOW`]:
/// the generator's subscribers grant exactly as an `ms-client` subscriber
/// would.
const RULE: ms_client::CreditRule = ms_client::CreditRule::new(CREDIT_WINDOW).expect("non-zero window");

/// The credit a new subscription starts with: the generated config sets
/// `flow.initial_credit_bytes` to it (the appliance's default), and the
/// generator starts every (subscriber, stream) grant from it.
pub const INITIAL_CREDIT: u32 = 65_536;

/// CREDIT entries that fit one datagram.
const CREDITS_PER_DATAGRAM: usize = (DATAGRAM_MAX - HEADER_LEN) / CREDIT_ENTRY_LEN;

/// Marks a grant that waits in its subscriber's next CREDIT datagram.
const PENDING: u64 = 1 << 63;

/// Receive bursts drained per loop turn before sending again: receiving
/// comes first, so a generator that cannot keep up shows as its own TX
/// drops, not as DELIVERs the worker could not hand over.
const RX_ROUNDS: usize = 8;

/// The credit the generator's subscribers have granted, per (subscriber,
/// stream), and the grants waiting to be sent. Allocated, and written
/// (so resident), before the load starts: 8 bytes per pair.
pub(crate) struct Grants {
    streams: u64,
    subscribers: usize,
    /// Highest grant the appliance was sent; [`PENDING`] while a larger
    /// one waits in `pending`.
    granted: Vec<u64>,
    /// Per subscriber, up to [`CREDITS_PER_DATAGRAM`] grants for its next
    /// CREDIT datagram.
    pending: Vec<Credit>,
    pending_len: Vec<usize>,
    /// CREDIT entries sent.
    pub(crate) entries_sent: u64,
    /// CREDIT datagrams sent.
    pub(crate) datagrams_sent: u64,
}

impl Grants {
    /// Every pair at the initial credit, nothing pending.
    pub(crate) fn new(subscribers: usize, streams: u64) -> Grants {
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
    /// `position`: grants a window past it once half a window of credit or
    /// less is left ([`RULE`]). A grant that finds its subscriber's datagram full is
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
        if g & PENDING != 0 {
            return;
        }
        // The client's rule grants at half a window left or less (this
        // generator's own copy granted at less): one message earlier at
        // exactly half a window, no difference in what flows.
        let Some(want) = RULE.next_grant(position, Some(g)) else { return };
        let n = self.pending_len[sub];
        if n == CREDITS_PER_DATAGRAM {
            return;
        }
        self.pending[sub * CREDITS_PER_DATAGRAM + n] = Credit { stream, position: want };
        self.pending_len[sub] = n + 1;
        self.granted[i] = g | PENDING;
    }

    /// Every subscriber's streams `first..=last` are back at the initial
    /// credit; grants waiting to be sent for them are dropped.
    pub(crate) fn reset(&mut self, first: u64, last: u64) {
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
pub(crate) struct Acks {
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
    /// Nothing awaited; the first request gets id 1.
    pub(crate) fn new() -> Acks {
        Acks { base: 1, ..Acks::default() }
    }

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

impl Session<'_> {
    /// Sends SUBSCRIBE (or UNSUBSCRIBE) for streams `first..=last` from
    /// every subscriber, [`RANGE_IDS_MAX`] ids per request; true when every
    /// part of every request was acknowledged (a range is answered once per
    /// worker that owns part of it) within 60 s, enough for a million
    /// streams in a debug build. DELIVERs that arrive meanwhile are
    /// counted as usual.
    pub(crate) fn ranges(&mut self, t: FrameType, first: u64, last: u64) -> bool {
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
    pub(crate) fn ping(&mut self, unused_stream: u64) -> bool {
        self.ranges(FrameType::Unsubscribe, unused_stream, unused_stream)
    }

    /// Receives up to [`RX_ROUNDS`] bursts, records latency, counts, and
    /// sends the grants they made due (one CREDIT per subscriber per
    /// burst); heartbeats once a second so subscriptions outlive long runs.
    pub(crate) fn poll(&mut self) -> usize {
        let mut total = 0;
        for _ in 0..RX_ROUNDS {
            let n = port::rx_burst(self.g.port, 0, &mut self.rx);
            if n == 0 {
                break;
            }
            total += n;
            let now = rdtsc();
            // A float multiply, not a 128-bit division per message: the
            // generator's CPU is the harness's other bottleneck.
            let ns_per_tick = 1e9 / self.g.tsc_hz as f64;
            for &m in self.rx[..n].iter().take(PREFETCH_AHEAD) {
                // SAFETY: received, owned here until freed below.
                unsafe { mbuf::prefetch_data(m, PREFETCH_LINES) };
            }
            for k in 0..n {
                if let Some(&ahead) = self.rx[..n].get(k + PREFETCH_AHEAD) {
                    // SAFETY: as above. The DELIVERs were written by the
                    // worker's CPU: their first read waits for it.
                    unsafe { mbuf::prefetch_data(ahead, PREFETCH_LINES) };
                }
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
                    let ns = (now.saturating_sub(sched) as f64 * ns_per_tick) as u64;
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
    pub(crate) fn flush_grants(&mut self) {
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

/// Received packets whose data is prefetched ahead of parsing.
const PREFETCH_AHEAD: usize = 2;

/// Cache lines prefetched per received packet (the headers and the first
/// DELIVER entries; the hardware prefetcher follows from there).
const PREFETCH_LINES: usize = 4;
