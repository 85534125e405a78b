//! The streams protocol on a worker: PUBLISH into stream queues, the
//! scheduler's output into per-subscriber DELIVER datagrams, credit,
//! (un)subscriptions, heartbeats, expiry, and the handoff of work to the
//! worker that owns a stream.
//!
//! A published message is copied once into its stream's queue (ms-streams'
//! bounded pool). At the end of every loop turn the scheduler picks up to
//! the turn's budget of (subscriber, message) pairs, in class order with
//! deficit round robin inside a class and never past a subscriber's
//! credit; each subscriber gets at most one DELIVER being filled in an mbuf
//! from the worker's pool, sent when full or when the turn ends. See
//! docs/streams.md for why payloads are copied rather than chained, and
//! docs/flow-control.md for the policies.

use crate::counters::{Counter, LocalCounters, TOP_N};
use crate::mailbox::{Handoff, MbufPtr, RangeOp, RangeWork};
use crate::mbuf;
use crate::worker::{Batch, Egress, Worker};
use ms_dpdk_sys as sys;
use ms_netstack::host::{ServiceDatagram, UDP_PAYLOAD_OFFSET};
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_streams::{Full, Limits, Out, Outcome, Peer, Refusal, Streams, Tally, Tunables};
use ms_wire::control::{self, Ack, Backpressure, Control, ErrorCode, ErrorEntry, RangeRequest, RANGE_IDS_MAX};
use ms_wire::deliver::DeliverState;
use ms_wire::publish::Publish;
use ms_wire::shard::owner;
use ms_wire::{Frame, WireError, DATAGRAM_MAX, VERSION};

/// Subscriber slots the expiry sweep looks at per loop turn.
const EXPIRE_PER_TURN: u32 = 16;

/// Streams one PUBLISH datagram can name: one per message at most.
const BLOCKED_MAX: usize = (DATAGRAM_MAX - ms_wire::HEADER_LEN) / ms_wire::publish::ENTRY_HEADER_LEN;

/// Stream slots the degraded-pool sweep looks at per loop turn.
const RELIEVE_PER_TURN: u32 = 64;

/// Wall-clock nanoseconds from the TSC, without a syscall per burst.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_tsc: u64,
    base_ns: u64,
    /// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u64,
}

impl Clock {
    /// Anchors the TSC (`tsc`, ticking at `tsc_hz`) to CLOCK_REALTIME now.
    pub fn now(tsc: u64, tsc_hz: u64) -> Clock {
        let base_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let ns_per_tick_q32 = ((1_000_000_000u128 << 32) / u128::from(tsc_hz.max(1))) as u64;
        Clock { base_tsc: tsc, base_ns, ns_per_tick_q32 }
    }

    /// Nanoseconds since the Unix epoch at TSC value `tsc`.
    pub fn ns(&self, tsc: u64) -> u64 {
        let ticks = u128::from(tsc.saturating_sub(self.base_tsc));
        self.base_ns + ((ticks * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }
}

/// A DELIVER datagram being filled for one subscriber.
#[derive(Debug, Clone, Copy)]
struct Pending {
    m: *mut sys::rte_mbuf,
    st: DeliverState,
    messages: u32,
}

const NO_PENDING: Pending = Pending { m: std::ptr::null_mut(), st: DeliverState { len: 0, count: 0 }, messages: 0 };

/// Per-subscriber DELIVER datagrams being filled, and where they go.
struct Fanout {
    pending: Vec<Pending>,
    dirty: Vec<u32>,
    /// Address and port index of each subscriber slot, noted when it
    /// subscribes, so a DELIVER goes out without a table lookup.
    sub_addr: Vec<(Ipv4Addr, u16, u16)>,
}

/// One worker's streams state and fan-out buffers.
pub struct PubSub {
    streams: Streams,
    fan: Fanout,
    /// Streams of the current PUBLISH datagram refused under `block`, with
    /// how many of their messages were refused.
    blocked: [Backpressure; BLOCKED_MAX],
    blocked_len: usize,
    /// Messages the scheduler may send this turn (adaptive).
    tx_budget: u32,
    /// Generation of the live tunables last taken.
    tunables_seen: u64,
    /// The most-affected sketch last published.
    affected_published: [(u64, Peer, u64); ms_streams::AFFECTED_MAX],
    workers: u32,
    me: u32,
    /// The appliance instance, sent in every ACK.
    instance: u64,
    clock: Clock,
    published_gauges: Option<(ms_streams::Gauges, u32)>,
    /// Space-saving sketch of the busiest streams: (stream, count, error).
    top: [(u64, u64, u64); TOP_N],
    top_changed: bool,
}

// SAFETY: the raw mbuf pointers in `pending` are owned by the worker that
// owns this PubSub and are only touched on its lcore; a PubSub is built on
// the worker's lcore, and a Worker only moves between threads before that.
unsafe impl Send for PubSub {}

fn peer_of(ip: Ipv4Addr, port: u16) -> Peer {
    Peer { ip: u32::from(ip), port }
}

fn full_code(f: Full) -> ErrorCode {
    match f {
        Full::Streams => ErrorCode::StreamTableFull,
        Full::Subscribers => ErrorCode::SubscribersFull,
        Full::Subscriptions => ErrorCode::SubscriptionsFull,
    }
}

/// The UDP payload area of a frame built for sending.
///
/// # Safety
/// `m` must be a live single-segment mbuf owned by the caller with at least
/// `UDP_PAYLOAD_OFFSET + DATAGRAM_MAX` bytes of data length.
unsafe fn payload_area<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
    // SAFETY: forwarded from the caller's contract.
    let frame = unsafe { mbuf::data_mut(m) };
    &mut frame[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + DATAGRAM_MAX]
}

impl Fanout {
    /// Appends one scheduled message to subscriber `sub`'s DELIVER; false
    /// when no mbuf is free (the message stays queued for the next turn).
    fn append(
        &mut self,
        w: &mut Worker,
        sub: u32,
        out: &Out<'_>,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) -> bool {
        let i = sub as usize;
        if !self.pending[i].m.is_null() && !self.pending[i].st.fits(out.len, DATAGRAM_MAX) {
            self.flush_one(w, sub, now_ms, batch, c);
        }
        if self.pending[i].m.is_null() {
            if self.dirty.len() == self.dirty.capacity() {
                self.flush_all(w, now_ms, batch, c);
            }
            let Some(m) = w.pool.alloc() else {
                c.add(Counter::DeliverNoBuffer, 1);
                return false;
            };
            // SAFETY: a fresh single-segment mbuf; 1514 bytes fit the
            // default data room (2048).
            if !unsafe { mbuf::set_len(m, UDP_PAYLOAD_OFFSET + DATAGRAM_MAX) } {
                batch.release(m);
                c.add(Counter::DeliverNoBuffer, 1);
                return false;
            }
            // SAFETY: just sized above; owned by this worker.
            let st = DeliverState::start(unsafe { payload_area(m) });
            self.pending[i] = Pending { m, st, messages: 0 };
            self.dirty.push(sub);
        }
        let p = &mut self.pending[i];
        // SAFETY: p.m is the pending mbuf sized in the branch above.
        p.st.push_with(unsafe { payload_area(p.m) }, &out.meta, out.len, |dst| out.copy_payload(dst));
        p.messages += 1;
        true
    }

    /// Sends subscriber `sub`'s pending DELIVER, if any.
    fn flush_one(&mut self, w: &mut Worker, sub: u32, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        let p = std::mem::replace(&mut self.pending[sub as usize], NO_PENDING);
        if p.m.is_null() {
            return;
        }
        let (ip, port, q) = self.sub_addr[sub as usize];
        match w.egress(usize::from(q), p.m, ip, port, usize::from(p.st.len), now_ms, batch, c) {
            // Counted as delivered or dropped once the driver takes it or not.
            Egress::Sent => batch.tag_last_deliver(p.messages),
            Egress::Held => w.tag_last_held(p.messages),
            Egress::Unresolved | Egress::Dropped => c.add(Counter::DeliverMessagesDropped, u64::from(p.messages)),
        }
    }

    fn flush_all(&mut self, w: &mut Worker, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        while let Some(sub) = self.dirty.pop() {
            self.flush_one(w, sub, now_ms, batch, c);
        }
    }
}

impl PubSub {
    /// Allocates the tables and the message pool (startup only).
    pub fn new(limits: Limits, workers: u32, me: u32, clock: Clock, instance: u64) -> PubSub {
        let subs = limits.subscribers as usize;
        PubSub {
            streams: Streams::new(limits),
            fan: Fanout {
                pending: vec![NO_PENDING; subs],
                dirty: Vec::with_capacity(subs),
                sub_addr: vec![(Ipv4Addr::UNSPECIFIED, 0, 0); subs],
            },
            blocked: [Backpressure { stream: 0, refused: 0 }; BLOCKED_MAX],
            blocked_len: 0,
            tx_budget: Tunables::default().tx_budget_min,
            tunables_seen: u64::MAX,
            affected_published: [(0, Peer::default(), 0); ms_streams::AFFECTED_MAX],
            workers: workers.max(1),
            me,
            instance,
            clock,
            published_gauges: None,
            top: [(u64::MAX, 0, 0); TOP_N],
            top_changed: false,
        }
    }

    /// Handles a datagram to the service port that arrived on queue `q`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_datagram(
        &mut self,
        w: &mut Worker,
        q: usize,
        m: *mut sys::rte_mbuf,
        d: &ServiceDatagram,
        tsc: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let now_ms = tsc / w.tsc_per_ms;
        let (ip, port) = (d.src_ip, d.src_port);
        // SAFETY: m is owned by this worker until it is released or handed
        // over below, after the last use of the slice.
        let frame = unsafe { mbuf::data_mut(m) };
        let payload = &frame[d.payload_offset..d.payload_offset + d.payload_len];
        match ms_wire::parse(payload) {
            Ok(Frame::Publish(p)) => {
                let Some(first) = p.messages().next() else {
                    batch.release(m);
                    return;
                };
                let to = owner(first.stream, self.workers);
                if to == self.me {
                    self.publish(w, q, ip, port, p, tsc, batch, c);
                    batch.release(m);
                    return;
                }
                let item = Handoff::Publish {
                    mbuf: MbufPtr(m),
                    port: q,
                    offset: d.payload_offset as u16,
                    len: d.payload_len as u16,
                    ip,
                    udp_port: port,
                };
                match w.mail.post(to as usize, item) {
                    Ok(()) => c.add(Counter::HandoffPublish, 1),
                    Err(_) => {
                        c.add(Counter::HandoffFull, 1);
                        batch.release(m);
                    }
                }
            }
            Ok(Frame::Control(ctrl)) => {
                let mac = ms_netstack::ethernet::Frame::new_unchecked(&*frame).src();
                self.control(w, q, ip, port, mac, ctrl, now_ms, batch, c);
                batch.release(m);
            }
            Ok(Frame::Deliver(_)) => {
                c.add(Counter::ProtoUnexpected, 1);
                batch.release(m);
            }
            Err(e) => {
                batch.release(m);
                self.refuse(w, q, ip, port, e, now_ms, batch, c);
            }
        }
    }

    /// Counts an unparsable datagram and answers it when it is ours.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        e: WireError,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let (code, detail) = match e {
            WireError::BadMagic => {
                c.add(Counter::ProtoBadMagic, 1);
                return;
            }
            WireError::UnsupportedVersion(_) => {
                c.add(Counter::ProtoBadVersion, 1);
                (ErrorCode::UnsupportedVersion, u64::from(VERSION))
            }
            WireError::UnknownType(t) => {
                c.add(Counter::ProtoUnknownType, 1);
                (ErrorCode::UnknownType, u64::from(t))
            }
            WireError::Truncated | WireError::Malformed => {
                c.add(Counter::ProtoMalformed, 1);
                (ErrorCode::Malformed, 0)
            }
        };
        self.reply_error(w, q, ip, port, ErrorEntry::whole(0, code, detail), now_ms, batch, c);
    }

    /// Queues each message in its stream (the scheduler sends them at the
    /// end of the turn). Under `block`, once a stream refuses a message,
    /// its later messages in the datagram are refused too, so the publisher
    /// can resend exactly the last `refused` ones, in order.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        p: Publish<'_>,
        tsc: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let (now_ns, now_ms) = (self.clock.ns(tsc), tsc / w.tsc_per_ms);
        let mut refused = None;
        self.blocked_len = 0;
        for msg in p.messages() {
            self.streams.prefetch(msg.stream);
        }
        for msg in p.messages() {
            // The caller routed the datagram to its first message's owner;
            // messages another core owns cannot be served here.
            if owner(msg.stream, self.workers) != self.me {
                c.add(Counter::MixedShards, 1);
                refused.get_or_insert(msg.stream);
                continue;
            }
            c.add(Counter::MessagesPublished, 1);
            c.class(msg.class, 1);
            self.count_top(msg.stream);
            if self.blocked[..self.blocked_len].iter().any(|b| b.stream == msg.stream) {
                c.add(Counter::RefusedBackpressure, 1);
                self.note_blocked(msg.stream);
                continue;
            }
            match self.streams.publish(msg.stream, msg.class, now_ns, msg.payload) {
                Outcome::NoSubscriber => c.add(Counter::MessagesNoSubscriber, 1),
                Outcome::Refused(Refusal::Backpressure) => self.note_blocked(msg.stream),
                // Queued and shed messages are counted from the tally.
                Outcome::Queued { .. } | Outcome::Refused(_) => {}
            }
        }
        if let Some(stream) = refused {
            let e = ErrorEntry::whole(0, ErrorCode::MixedShards, stream);
            self.reply_error(w, q, ip, port, e, now_ms, batch, c);
        }
        if self.blocked_len > 0 {
            let entries = self.blocked;
            // What one datagram carries; the rest are still refused and counted.
            let fit = (DATAGRAM_MAX - ms_wire::HEADER_LEN) / control::BACKPRESSURE_ENTRY_LEN;
            let n = self.blocked_len.min(fit);
            self.reply(w, q, ip, port, |b| control::emit_backpressure(b, &entries[..n]), now_ms, batch, c);
            c.add(Counter::BackpressureSent, 1);
        }
    }

    fn note_blocked(&mut self, stream: u64) {
        let list = &mut self.blocked[..self.blocked_len];
        if let Some(b) = list.iter_mut().find(|b| b.stream == stream) {
            b.refused += 1;
        } else if self.blocked_len < BLOCKED_MAX {
            self.blocked[self.blocked_len] = Backpressure { stream, refused: 1 };
            self.blocked_len += 1;
        }
    }

    /// Runs the scheduler for this turn's budget, sends the DELIVERs it
    /// filled, tells disconnected subscribers, and counts what happened.
    pub(crate) fn serve(&mut self, w: &mut Worker, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        let (min, max) = (self.streams.tunables().tx_budget_min.max(1), self.streams.tunables().tx_budget_max);
        let max = max.max(min);
        // At least what this turn took in (one datagram may fan out to
        // hundreds of deliveries), so intake never outruns the sending
        // while the adaptive budget is still small.
        let intake = u32::try_from(self.streams.tally().fanout).unwrap_or(u32::MAX);
        let budget = self.tx_budget.max(intake.min(max));
        let fan = &mut self.fan;
        let served = self.streams.serve(budget, |sub, out| fan.append(w, sub, out, now_ms, batch, c));
        self.tx_budget = if served.more && served.messages >= budget {
            budget.saturating_mul(2)
        } else if served.messages < budget / 4 {
            budget / 2
        } else {
            budget
        }
        .clamp(min, max);
        self.flush_all(w, now_ms, batch, c);
        self.streams.relieve(RELIEVE_PER_TURN);
        if self.streams.has_notices() {
            self.tell_slow_consumers(w, now_ms, batch, c);
        }
        self.count_tally(c);
    }

    /// Sends ERROR SlowConsumer to the subscribers the disconnect policy
    /// removed.
    fn tell_slow_consumers(&mut self, w: &mut Worker, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        let mut notices = [ms_streams::Notice { peer: Peer::default(), stream: 0, slot: 0 }; ms_streams::NOTICES_MAX];
        let mut n = 0;
        c.add(
            Counter::NoticesLost,
            self.streams.take_notices(|x| {
                notices[n] = x;
                n += 1;
            }),
        );
        for x in &notices[..n] {
            let (ip, port) = (Ipv4Addr::from(x.peer.ip), x.peer.port);
            let e = ErrorEntry::whole(0, ErrorCode::SlowConsumer, x.stream);
            // The port the subscriber was served on, unless its freed slot
            // was taken by someone else in the meantime.
            let (sip, sport, q) = self.fan.sub_addr[x.slot as usize];
            let q = if (sip, sport) == (ip, port) { usize::from(q) } else { 0 };
            self.reply_error(w, q, ip, port, e, now_ms, batch, c);
            c.add(Counter::SlowConsumerNotices, 1);
        }
    }

    /// Turns the streams' tally into counters.
    fn count_tally(&mut self, c: &mut LocalCounters) {
        if self.streams.tally().is_quiet() {
            return; // an idle turn: nothing to copy or compare
        }
        let t: Tally = self.streams.take_tally();
        c.add(Counter::MessagesQueued, t.queued);
        c.add(Counter::DeliveriesQueued, t.fanout);
        let refused =
            [Counter::RefusedBackpressure, Counter::ShedBulk, Counter::ShedBestEffort, Counter::RefusedPoolFull];
        for (i, counter) in refused.into_iter().enumerate() {
            c.add(counter, t.refused[i]);
        }
        let dropped = [
            Counter::DroppedOldest,
            Counter::DroppedConflated,
            Counter::DroppedDisconnected,
            Counter::DroppedUnsubscribed,
            Counter::DroppedExpired,
        ];
        for (i, counter) in dropped.into_iter().enumerate() {
            c.add(counter, t.dropped[i]);
        }
        if t.affected != self.affected_published {
            self.affected_published = t.affected;
            let mut sorted = t.affected;
            sorted.sort_unstable_by_key(|e| std::cmp::Reverse(e.2));
            for (rank, (stream, peer, count)) in sorted.iter().enumerate() {
                c.affected(rank, *stream, u64::from(peer.ip) << 16 | u64::from(peer.port), *count);
            }
        }
    }

    /// Takes live tunables when the control plane changed them.
    pub(crate) fn refresh_tunables(&mut self, live: &crate::control::Live) {
        if let Some(t) = live.tunables_if_changed(&mut self.tunables_seen) {
            self.streams.set_tunables(t);
        }
    }

    /// The rx burst floor of the tunables in force.
    pub(crate) fn rx_burst_min(&self) -> usize {
        usize::from(self.streams.tunables().rx_burst_min)
    }

    /// Sends every pending DELIVER (end of turn, or before control work).
    pub(crate) fn flush_all(&mut self, w: &mut Worker, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        self.fan.flush_all(w, now_ms, batch, c);
    }
    #[allow(clippy::too_many_arguments)]
    fn control(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        mac: MacAddr,
        ctrl: Control<'_>,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        // Subscriber slots may be freed and reused below: nothing may stay
        // pending for them.
        self.flush_all(w, now_ms, batch, c);
        match ctrl {
            Control::Subscribe(ranges) | Control::Unsubscribe(ranges) => {
                let op = if matches!(ctrl, Control::Subscribe(_)) { RangeOp::Subscribe } else { RangeOp::Unsubscribe };
                // Bound the work one datagram can cause on every core: the
                // ids of all its ranges together, not each range alone.
                let total = ranges.fold(0u64, |t, r| t.saturating_add(r.ids().unwrap_or(0)));
                if total > RANGE_IDS_MAX {
                    c.add(Counter::RangeTooLarge, 1);
                    let first = ranges.clone().next().map_or(0, |r| r.request);
                    let e = ErrorEntry::whole(first, ErrorCode::RangeTooLarge, total);
                    self.reply_error(w, q, ip, port, e, now_ms, batch, c);
                    return;
                }
                for r in ranges {
                    self.route_range(w, q, op, ip, port, mac, r, now_ms, batch, c);
                }
            }
            Control::Heartbeat => {
                c.add(Counter::Heartbeats, 1);
                match self.streams.heartbeat(peer_of(ip, port), now_ms) {
                    Some(held) => self.answer_heartbeat(w, q, ip, port, held, now_ms, batch, c),
                    None => {
                        let e = ErrorEntry::whole(0, ErrorCode::UnknownSubscriber, self.instance);
                        self.reply_error(w, q, ip, port, e, now_ms, batch, c);
                    }
                }
                c.add(
                    Counter::HandoffFull,
                    w.mail.broadcast(self.me as usize, Handoff::Heartbeat { port: q, ip, udp_port: port }),
                );
            }
            Control::Credit(credits) => {
                for cr in credits {
                    self.route_credit(w, ip, port, cr.stream, cr.position, c);
                }
            }
            Control::Ack(_) | Control::Error(_) | Control::Backpressure(_) => c.add(Counter::ProtoUnexpected, 1),
        }
    }

    /// Applies a grant here or hands it to the worker that owns the stream.
    fn route_credit(&mut self, w: &Worker, ip: Ipv4Addr, port: u16, stream: u64, position: u64, c: &mut LocalCounters) {
        let to = owner(stream, self.workers);
        if to == self.me {
            self.credit(ip, port, stream, position, c);
        } else if w.mail.post(to as usize, Handoff::Credit { ip, udp_port: port, stream, position }).is_ok() {
            c.add(Counter::HandoffCredit, 1);
        } else {
            c.add(Counter::HandoffFull, 1); // harmless: clients re-send a grant until a delivery shows it arrived
        }
    }

    fn credit(&mut self, ip: Ipv4Addr, port: u16, stream: u64, position: u64, c: &mut LocalCounters) {
        c.add(Counter::CreditsReceived, 1);
        if !self.streams.credit(peer_of(ip, port), stream, position) {
            c.add(Counter::CreditsUnknown, 1);
        }
    }

    /// Applies a range here and/or hands it to the workers that own it.
    #[allow(clippy::too_many_arguments)]
    fn route_range(
        &mut self,
        w: &mut Worker,
        q: usize,
        op: RangeOp,
        ip: Ipv4Addr,
        port: u16,
        mac: MacAddr,
        r: RangeRequest,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let ids = r.ids().unwrap_or(0);
        if ids == 0 || ids > RANGE_IDS_MAX {
            c.add(Counter::RangeTooLarge, 1);
            let e = ErrorEntry::whole(r.request, ErrorCode::RangeTooLarge, ids);
            self.reply_error(w, q, ip, port, e, now_ms, batch, c);
            return;
        }
        let single = ids == 1;
        let parts = if single { 1 } else { self.workers as u16 };
        let work = RangeWork {
            op,
            port: q,
            ip,
            udp_port: port,
            mac,
            request: r.request,
            first: r.first,
            last: r.last,
            parts,
            initial_credit: r.initial_credit,
        };
        let targets =
            if single { owner(r.first, self.workers)..owner(r.first, self.workers) + 1 } else { 0..self.workers };
        for t in targets {
            if t == self.me {
                self.apply(w, work, now_ms, batch, c);
            } else if w.mail.post(t as usize, Handoff::Range(work)).is_ok() {
                c.add(Counter::HandoffControl, 1);
            } else {
                c.add(Counter::HandoffFull, 1);
                let part = if single { 0 } else { t as u16 };
                let e = ErrorEntry { request: r.request, code: ErrorCode::Busy, part, parts, detail: 0 };
                self.reply_error(w, q, ip, port, e, now_ms, batch, c);
            }
        }
    }

    /// Applies this worker's part of a range and answers it.
    fn apply(&mut self, w: &mut Worker, work: RangeWork, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        // The request's source MAC is the subscriber's when it is on-link:
        // DELIVERs from this worker then need no ARP round trip.
        w.learn_from_datagram(work.port, work.ip, work.mac, now_ms, batch, c);
        let peer = peer_of(work.ip, work.udp_port);
        let single = work.parts == 1;
        let (me, workers) = (self.me, self.workers);
        // This worker's share: all of a single stream (it owns it), the
        // ids it owns of a range.
        let mine = (work.first..=work.last).filter(move |&id| single || owner(id, workers) == me);
        let applied = match work.op {
            // All or nothing: a refused share changes nothing here.
            RangeOp::Subscribe => self.streams.subscribe_many(peer, mine, now_ms, work.initial_credit),
            RangeOp::Unsubscribe => Ok(mine.map(|id| u32::from(self.streams.unsubscribe(peer, id))).sum()),
        };
        if let Some(slot) = self.streams.subscriber(peer) {
            self.fan.sub_addr[slot as usize] = (work.ip, work.udp_port, work.port as u16);
        }
        let (q, ip, port) = (work.port, work.ip, work.udp_port);
        let part = if single { 0 } else { self.me as u16 };
        match applied {
            Ok(changed) => {
                let counter =
                    if work.op == RangeOp::Subscribe { Counter::Subscriptions } else { Counter::Unsubscriptions };
                c.add(counter, u64::from(changed));
                let ack = self.ack(work.request, part, work.parts, changed);
                self.reply(w, q, ip, port, |b| control::emit_acks(b, &[ack]), now_ms, batch, c);
            }
            Err((full, id)) => {
                c.add(Counter::SubscribeRefused, 1);
                let e =
                    ErrorEntry { request: work.request, code: full_code(full), part, parts: work.parts, detail: id };
                self.reply_error(w, q, ip, port, e, now_ms, batch, c);
            }
        }
    }

    /// An ACK entry of this appliance instance.
    fn ack(&self, request: u32, part: u16, parts: u16, streams: u32) -> Ack {
        let lifetime_ms = u32::try_from(self.streams.limits().lifetime_ms).unwrap_or(u32::MAX);
        Ack { request, part, parts, streams, lifetime_ms, instance: self.instance }
    }

    /// Answers a HEARTBEAT from a subscriber holding `held` subscriptions
    /// on this worker: its part of the appliance-wide answer.
    #[allow(clippy::too_many_arguments)]
    fn answer_heartbeat(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        held: u32,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let ack = self.ack(0, self.me as u16, self.workers as u16, held);
        self.reply(w, q, ip, port, |b| control::emit_acks(b, &[ack]), now_ms, batch, c);
    }

    /// Work another worker handed to this one.
    pub(crate) fn on_mail(
        &mut self,
        w: &mut Worker,
        item: Handoff,
        tsc: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let now_ms = tsc / w.tsc_per_ms;
        match item {
            Handoff::Publish { mbuf: MbufPtr(m), port, offset, len, ip, udp_port } => {
                // SAFETY: the sender gave up m with the item; we own it now.
                let frame = unsafe { mbuf::data_mut(m) };
                let payload = frame.get(usize::from(offset)..usize::from(offset) + usize::from(len)).unwrap_or(&[]);
                if let Ok(Frame::Publish(p)) = ms_wire::parse(payload) {
                    self.publish(w, port, ip, udp_port, p, tsc, batch, c);
                }
                batch.release(m);
            }
            Handoff::Range(work) => {
                self.flush_all(w, now_ms, batch, c);
                self.apply(w, work, now_ms, batch, c);
            }
            Handoff::Heartbeat { port, ip, udp_port } => {
                if let Some(held) = self.streams.heartbeat(peer_of(ip, udp_port), now_ms) {
                    self.answer_heartbeat(w, port, ip, udp_port, held, now_ms, batch, c);
                }
            }
            Handoff::Credit { ip, udp_port, stream, position } => self.credit(ip, udp_port, stream, position, c),
            Handoff::Neighbor { .. } => {}
        }
    }

    /// Expires silent subscribers, a bounded slice of the table per turn.
    /// Runs between bursts, when no DELIVER is pending, so a freed slot has
    /// nothing in flight.
    pub(crate) fn expire(&mut self, now_ms: u64, lifetime_ms: u64, c: &mut LocalCounters) {
        debug_assert!(self.fan.dirty.is_empty(), "expiry runs with DELIVERs pending");
        if self.streams.limits().lifetime_ms != lifetime_ms {
            self.streams.set_lifetime_ms(lifetime_ms);
        }
        let n = self.streams.expire(now_ms, EXPIRE_PER_TURN, |_, _| {});
        if n > 0 {
            c.add(Counter::SubscribersExpired, u64::from(n));
        }
    }

    /// Frees PUBLISH mbufs still in this worker's mailbox (at shutdown).
    pub(crate) fn drain_mail(w: &Worker, batch: &mut Batch) {
        while let Some(item) = w.mail.take(w.index) {
            if let Handoff::Publish { mbuf: MbufPtr(m), .. } = item {
                batch.release(m);
            }
        }
    }

    /// Publishes the table gauges (single writer: this worker).
    /// Space-saving: a tracked stream counts up; an untracked one replaces
    /// the smallest entry and inherits its count (an overestimate by at
    /// most that count). O(TOP_N), no allocation.
    fn count_top(&mut self, stream: u64) {
        self.top_changed = true;
        if let Some(e) = self.top.iter_mut().find(|e| e.0 == stream) {
            e.1 += 1;
            return;
        }
        if let Some(min) = self.top.iter_mut().min_by_key(|e| e.1) {
            *min = (stream, min.1 + 1, min.1);
        }
    }

    pub(crate) fn publish_gauges(&mut self, c: &mut LocalCounters) {
        if self.top_changed {
            self.top_changed = false;
            let mut sorted = self.top;
            sorted.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
            for (rank, (stream, count, error)) in sorted.iter().enumerate() {
                c.top(rank, *stream, *count, *error);
            }
        }
        let g = self.streams.gauges();
        if self.published_gauges == Some((g, self.tx_budget)) {
            return;
        }
        self.published_gauges = Some((g, self.tx_budget));
        c.set(Counter::StreamsActive, u64::from(g.streams));
        c.set(Counter::SubscribersActive, u64::from(g.subscribers));
        c.set(Counter::SubscriptionsActive, u64::from(g.subscriptions));
        c.set(Counter::QueuedMessages, u64::from(g.queued_messages));
        c.set(Counter::PoolUsedBytes, g.pool_used_bytes);
        c.set(Counter::PoolBytes, self.streams.pool_bytes());
        c.set(Counter::DegradationLevel, u64::from(g.level));
        c.set(Counter::TxBudget, u64::from(self.tx_budget));
    }

    #[allow(clippy::too_many_arguments)]
    fn reply_error(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        e: ErrorEntry,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        self.reply(w, q, ip, port, |b| control::emit_errors(b, &[e]), now_ms, batch, c);
    }

    /// Sends a small control datagram built by `build` to `ip:port`.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        w: &mut Worker,
        q: usize,
        ip: Ipv4Addr,
        port: u16,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        if port == w.service_port {
            return; // never answer another appliance's service port
        }
        let Some(m) = w.pool.alloc() else {
            c.add(Counter::EgressNoBuffer, 1);
            return;
        };
        // SAFETY: fresh single-segment mbuf; 1514 bytes fit its data room.
        let sized = unsafe { mbuf::set_len(m, UDP_PAYLOAD_OFFSET + DATAGRAM_MAX) };
        // SAFETY: sized above (checked), owned by this worker.
        let len = if sized { build(unsafe { payload_area(m) }) } else { None };
        match len {
            Some(len) => {
                if matches!(w.egress(q, m, ip, port, len, now_ms, batch, c), Egress::Sent | Egress::Held) {
                    c.add(Counter::ProtoReplies, 1);
                }
            }
            None => batch.release(m),
        }
    }
}
