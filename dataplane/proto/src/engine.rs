//! The engine: one worker's streams, and what each frame does to them.
//!
//! A published message is copied once into its stream's queue (ms-streams'
//! bounded pool). At the end of every loop turn the scheduler picks up to
//! the turn's budget of (subscriber, message) pairs, in class order with
//! deficit round robin inside a class and never past a subscriber's
//! credit; each subscriber gets at most one DELIVER being filled, sent when
//! full or when the turn ends.

use crate::counts::{Counts, ProtoCounter as C, TOP_N};
use crate::fanout::Fanout;
use crate::ranges::Jobs;
use crate::{Addr, Disposition, From, Io, Mail, Now, RangeOp, RangeWork};
use ms_streams::{Full, Limits, Outcome, Peer, Refusal, RunMsg, Streams, Tally, Tunables};
use ms_wire::control::{self, Ack, Backpressure, Control, ErrorCode, ErrorEntry, RangeRequest, RANGE_IDS_MAX};
use ms_wire::publish::Publish;
use ms_wire::shard::owner;
use ms_wire::{Frame, WireError, VERSION};

/// Subscriber slots the expiry sweep looks at per loop turn.
const EXPIRE_PER_TURN: u32 = 16;

/// Streams one PUBLISH datagram can name: one per message at most.
const BLOCKED_MAX: usize = ms_limits::PUBLISH_MESSAGES_MAX;

/// Messages of one stream cut through together (a longer run is split).
const RUN_MAX: usize = 32;

/// BACKPRESSURE entries one datagram carries.
const BACKPRESSURE_FIT: usize = ms_limits::BACKPRESSURE_ENTRIES_MAX;

/// Stream slots the degraded-pool sweep looks at per loop turn.
const RELIEVE_PER_TURN: u32 = 64;

/// Who this engine is among the workers, fixed at startup.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Table and pool bounds.
    pub limits: Limits,
    /// Workers of the appliance (>= 1).
    pub workers: u32,
    /// This worker's index.
    pub me: u32,
    /// The appliance instance, sent in every ACK.
    pub instance: u64,
    /// The UDP port the service answers from: never answered, so two
    /// appliances cannot bounce a datagram between them forever.
    pub service_port: u16,
}

/// One worker's streams protocol state. `B` is the caller's buffer handle.
pub struct Engine<B> {
    pub(crate) streams: Streams,
    pub(crate) fan: Fanout<B>,
    pub(crate) jobs: Jobs,
    /// Streams of the current PUBLISH datagram refused under `block`, with
    /// how many of their messages were refused.
    blocked: [Backpressure; BLOCKED_MAX],
    blocked_len: usize,
    /// Messages the scheduler may send this turn (adaptive).
    tx_budget: u32,
    pub(crate) cfg: EngineConfig,
    pub(crate) counts: Counts,
    published_gauges: Option<(ms_streams::Gauges, u32)>,
    affected_published: [(u64, Peer, u64); ms_streams::AFFECTED_MAX],
    /// Space-saving sketch of the busiest streams: (stream, count, error).
    top: [(u64, u64, u64); TOP_N],
    top_changed: bool,
}

pub(crate) fn peer_of(a: Addr) -> Peer {
    Peer { ip: u32::from(a.ip), port: a.port }
}

pub(crate) fn full_code(f: Full) -> ErrorCode {
    match f {
        Full::Streams => ErrorCode::StreamTableFull,
        Full::Subscribers => ErrorCode::SubscribersFull,
        Full::Subscriptions => ErrorCode::SubscriptionsFull,
    }
}

impl<B> Engine<B> {
    /// Allocates the tables and the message pool (startup only, on the
    /// worker's own core so the memory is local to it).
    pub fn new(cfg: EngineConfig) -> Engine<B> {
        let cfg = EngineConfig { workers: cfg.workers.max(1), ..cfg };
        Engine {
            streams: Streams::new(cfg.limits),
            fan: Fanout::new(cfg.limits.subscribers as usize),
            jobs: Jobs::new(),
            blocked: [Backpressure { stream: 0, refused: 0 }; BLOCKED_MAX],
            blocked_len: 0,
            tx_budget: Tunables::default().tx_budget_min,
            cfg,
            counts: Counts::default(),
            published_gauges: None,
            affected_published: [(0, Peer::default(), 0); ms_streams::AFFECTED_MAX],
            top: [(u64::MAX, 0, 0); TOP_N],
            top_changed: false,
        }
    }

    /// The tally since the caller last took it.
    pub fn counts(&mut self) -> &mut Counts {
        &mut self.counts
    }

    /// The stream tables (read-only: gauges, tests, the simulator).
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// Handles one datagram to the service port.
    pub fn on_datagram<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, from: From, payload: &[u8]) -> Disposition {
        match ms_wire::parse(payload) {
            Ok(Frame::Publish(p)) => {
                let Some(first) = p.messages().next() else {
                    return Disposition::Done;
                };
                let to = owner(first.stream, self.cfg.workers);
                if to != self.cfg.me {
                    return Disposition::HandOff { worker: to };
                }
                self.publish(io, now, from.addr, p);
            }
            Ok(Frame::Control(ctrl)) => self.control(io, now, from, ctrl),
            Ok(Frame::Deliver(_)) => self.counts.add(C::ProtoUnexpected, 1),
            Err(e) => self.refuse(io, from.addr, e),
        }
        Disposition::Done
    }

    /// Handles a PUBLISH another worker handed over (see
    /// [`Disposition::HandOff`]).
    pub fn on_handed_publish<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, from: Addr, payload: &[u8]) {
        if let Ok(Frame::Publish(p)) = ms_wire::parse(payload) {
            self.publish(io, now, from, p);
        }
    }

    /// Counts an unparsable datagram and answers it when it is ours.
    fn refuse<I: Io<Buf = B>>(&mut self, io: &mut I, to: Addr, e: WireError) {
        let (code, detail) = match e {
            WireError::BadMagic => {
                self.counts.add(C::ProtoBadMagic, 1);
                return;
            }
            WireError::UnsupportedVersion(_) => {
                self.counts.add(C::ProtoBadVersion, 1);
                (ErrorCode::UnsupportedVersion, u64::from(VERSION))
            }
            WireError::UnknownType(t) => {
                self.counts.add(C::ProtoUnknownType, 1);
                (ErrorCode::UnknownType, u64::from(t))
            }
            WireError::Truncated | WireError::Malformed => {
                self.counts.add(C::ProtoMalformed, 1);
                (ErrorCode::Malformed, 0)
            }
        };
        self.reply_error(io, to, ErrorEntry::whole(0, code, detail));
    }

    /// Hands each message to its subscribers' DELIVERs at once when
    /// nothing waits (cut-through), or else queues it in its stream for the
    /// scheduler at the end of the turn. Under `block`, once a stream refuses a message,
    /// its later messages in the datagram are refused too, so the publisher
    /// can resend exactly the last `refused` ones, in order.
    fn publish<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, from: Addr, p: Publish<'_>) {
        let mut mixed = None;
        self.blocked_len = 0;
        // Consecutive messages of one stream (the common case: a publisher
        // batches a stream) share one prefetch, one owner check, one count
        // of the busiest streams and, when nothing stands in the way, one
        // set of cut-through checks.
        // A lone message's lookup comes right after: nothing to overlap.
        if p.len() > 1 {
            let mut previous = None;
            for msg in p.messages() {
                if previous != Some(msg.stream) {
                    self.streams.prefetch(msg.stream);
                    previous = Some(msg.stream);
                }
            }
        }
        let (mut stream, mut run_len, mut mine, mut published) = (u64::MAX, 0u64, true, 0u64);
        let mut messages = p.messages().peekable();
        while let Some(msg) = messages.next() {
            if msg.stream != stream || run_len == 0 {
                if run_len > 0 {
                    self.count_top(stream, run_len);
                }
                (stream, run_len) = (msg.stream, 0);
                mine = self.owns(msg.stream);
            }
            // The datagram went to its first message's owner; messages
            // another core owns cannot be served here.
            if !mine {
                self.counts.add(C::MixedShards, 1);
                mixed.get_or_insert(msg.stream);
                continue;
            }
            let first = RunMsg { class: msg.class, payload: msg.payload };
            self.counts.class(msg.class, 1);
            if messages.peek().is_none_or(|next| next.stream != stream) {
                run_len += 1;
                published += 1;
                self.publish_one(io, now, stream, &first);
                continue;
            }
            // Two or more of one stream: gathered (up to RUN_MAX) and cut
            // through together.
            let mut run = [first; RUN_MAX];
            let mut held = 1;
            while held < RUN_MAX {
                let Some(m) = messages.next_if(|next| next.stream == stream) else { break };
                self.counts.class(m.class, 1);
                run[held] = RunMsg { class: m.class, payload: m.payload };
                held += 1;
            }
            run_len += held as u64;
            published += held as u64;
            self.publish_run(io, now, stream, &run[..held]);
        }
        if run_len > 0 {
            self.count_top(stream, run_len);
        }
        self.counts.add(C::MessagesPublished, published);
        if let Some(stream) = mixed {
            self.reply_error(io, from, ErrorEntry::whole(0, ErrorCode::MixedShards, stream));
        }
        if self.blocked_len > 0 {
            let entries = self.blocked;
            // What one datagram carries; the rest are still refused and counted.
            let n = self.blocked_len.min(BACKPRESSURE_FIT);
            self.reply(io, from, |b| control::emit_backpressure(b, &entries[..n]));
            self.counts.add(C::BackpressureSent, 1);
        }
    }

    /// Publishes two or more consecutive messages of `stream`: cut through
    /// as a run when nothing stands in the way, the rest one by one.
    fn publish_run<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, stream: u64, run: &[RunMsg<'_>]) {
        let taken = if self.is_blocked(stream) {
            0
        } else {
            let (fan, counts) = (&mut self.fan, &mut self.counts);
            self.streams.publish_run_through(stream, now.ns, run, |sub, out| fan.append(io, sub, out, counts))
        };
        for m in &run[taken..] {
            self.publish_one(io, now, stream, m);
        }
    }

    /// Publishes one message of `stream`.
    fn publish_one<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, stream: u64, m: &RunMsg<'_>) {
        if self.is_blocked(stream) {
            self.counts.add(C::RefusedBackpressure, 1);
            self.note_blocked(stream);
            return;
        }
        let (fan, counts) = (&mut self.fan, &mut self.counts);
        let emit = |sub, out: &ms_streams::Out<'_>| fan.append(io, sub, out, counts);
        match self.streams.publish_through(stream, m.class, now.ns, m.payload, emit) {
            Outcome::NoSubscriber => self.counts.add(C::MessagesNoSubscriber, 1),
            Outcome::Refused(Refusal::Backpressure) => self.note_blocked(stream),
            // Queued and shed messages are counted from the tally.
            Outcome::Queued { .. } | Outcome::Refused(_) => {}
        }
    }

    /// Whether `stream` was refused under `block` earlier in this datagram.
    #[inline(always)]
    fn is_blocked(&self, stream: u64) -> bool {
        self.blocked[..self.blocked_len].iter().any(|b| b.stream == stream)
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

    fn control<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, from: From, ctrl: Control<'_>) {
        // What cut-through filled goes out before anything changes a slot
        // (a freed one may be reused) or a grant (so every message leaves
        // under the grant it was sent under).
        self.fan.flush_all(io);
        match ctrl {
            Control::Subscribe(ranges) | Control::Unsubscribe(ranges) => {
                let op = if matches!(ctrl, Control::Subscribe(_)) { RangeOp::Subscribe } else { RangeOp::Unsubscribe };
                // Bound the work one datagram can cause on every core: the
                // ids of all its ranges together, not each range alone.
                let total = ranges.fold(0u64, |t, r| t.saturating_add(r.ids().unwrap_or(0)));
                if total > RANGE_IDS_MAX {
                    self.counts.add(C::RangeTooLarge, 1);
                    let first = ranges.clone().next().map_or(0, |r| r.request);
                    self.reply_error(io, from.addr, ErrorEntry::whole(first, ErrorCode::RangeTooLarge, total));
                    return;
                }
                for r in ranges {
                    self.route_range(io, now, op, from, r);
                }
            }
            Control::Heartbeat => {
                self.counts.add(C::Heartbeats, 1);
                match self.streams.heartbeat(peer_of(from.addr), now.ms) {
                    Some(held) => self.answer_heartbeat(io, from.addr, held),
                    None => {
                        let e = ErrorEntry::whole(0, ErrorCode::UnknownSubscriber, self.cfg.instance);
                        self.reply_error(io, from.addr, e);
                    }
                }
                io.broadcast(Mail::Heartbeat(from.addr));
            }
            Control::Credit(credits) => {
                for cr in credits {
                    self.route_credit(io, from.addr, cr.stream, cr.position);
                }
            }
            Control::Ack(_) | Control::Error(_) | Control::Backpressure(_) => self.counts.add(C::ProtoUnexpected, 1),
        }
    }

    /// Applies a grant here or hands it to the worker that owns the stream.
    fn route_credit<I: Io<Buf = B>>(&mut self, io: &mut I, addr: Addr, stream: u64, position: u64) {
        let to = owner(stream, self.cfg.workers);
        if to == self.cfg.me {
            self.credit(addr, stream, position);
        } else if io.post(to, Mail::Credit { addr, stream, position }) {
            self.counts.add(C::HandoffCredit, 1);
        }
        // A full mailbox loses the grant harmlessly: clients re-send a
        // grant until a delivery shows it arrived.
    }

    fn credit(&mut self, addr: Addr, stream: u64, position: u64) {
        self.counts.add(C::CreditsReceived, 1);
        if !self.streams.credit(peer_of(addr), stream, position) {
            self.counts.add(C::CreditsUnknown, 1);
        }
    }

    /// Starts a range here and/or hands it to the workers that own it.
    fn route_range<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, op: RangeOp, from: From, r: RangeRequest) {
        let ids = r.ids().unwrap_or(0);
        if ids == 0 || ids > RANGE_IDS_MAX {
            self.counts.add(C::RangeTooLarge, 1);
            self.reply_error(io, from.addr, ErrorEntry::whole(r.request, ErrorCode::RangeTooLarge, ids));
            return;
        }
        let workers = self.cfg.workers;
        let single = ids == 1;
        let parts = if single { 1 } else { workers as u16 };
        let work = RangeWork {
            op,
            from,
            request: r.request,
            first: r.first,
            last: r.last,
            parts,
            initial_credit: r.initial_credit,
        };
        let targets = if single { owner(r.first, workers)..owner(r.first, workers) + 1 } else { 0..workers };
        for t in targets {
            if t == self.cfg.me {
                self.start_range(io, now, work);
            } else if io.post(t, Mail::Range(work)) {
                self.counts.add(C::HandoffControl, 1);
            } else {
                let part = if single { 0 } else { t as u16 };
                let e = ErrorEntry { request: r.request, code: ErrorCode::Busy, part, parts, detail: 0 };
                self.reply_error(io, from.addr, e);
            }
        }
    }

    /// An ACK entry of this appliance instance.
    pub(crate) fn ack(&self, request: u32, part: u16, parts: u16, streams: u32) -> Ack {
        let lifetime_ms = u32::try_from(self.streams.limits().lifetime_ms).unwrap_or(u32::MAX);
        Ack { request, part, parts, streams, lifetime_ms, instance: self.cfg.instance }
    }

    /// Answers a HEARTBEAT from a subscriber holding `held` subscriptions
    /// on this worker: its part of the appliance-wide answer.
    fn answer_heartbeat<I: Io<Buf = B>>(&mut self, io: &mut I, to: Addr, held: u32) {
        let ack = self.ack(0, self.cfg.me as u16, self.cfg.workers as u16, held);
        self.reply(io, to, |b| control::emit_acks(b, &[ack]));
    }

    /// Work another worker's engine handed to this one.
    pub fn on_mail<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, mail: Mail) {
        self.fan.flush_all(io); // as for a control frame
        match mail {
            Mail::Range(work) => self.start_range(io, now, work),
            Mail::Heartbeat(addr) => {
                if let Some(held) = self.streams.heartbeat(peer_of(addr), now.ms) {
                    self.answer_heartbeat(io, addr, held);
                }
            }
            Mail::Credit { addr, stream, position } => self.credit(addr, stream, position),
        }
    }

    /// Takes new tunables (from the control plane).
    pub fn set_tunables(&mut self, t: Tunables) {
        self.streams.set_tunables(t);
    }

    /// The tunables in force.
    pub fn tunables(&self) -> &Tunables {
        self.streams.tunables()
    }

    /// Expires silent subscribers, a bounded slice of the table per turn.
    /// Runs between turns (before the turn's datagrams), when no DELIVER is
    /// pending, so a freed slot has nothing in flight.
    pub fn expire(&mut self, now: Now, lifetime_ms: u64) {
        assert!(self.fan.is_idle(), "expiry with DELIVERs pending");
        if self.streams.limits().lifetime_ms != lifetime_ms {
            self.streams.set_lifetime_ms(lifetime_ms);
        }
        let n = self.streams.expire(now.ms, EXPIRE_PER_TURN, |_, _| {});
        self.counts.add(C::SubscribersExpired, u64::from(n));
    }

    /// The end of a loop turn: continues range work, runs the scheduler for
    /// this turn's budget, sends the DELIVERs it filled, tells disconnected
    /// subscribers, and counts what happened.
    pub fn end_turn<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now) {
        if self.jobs.pending() {
            self.fan.flush_all(io); // range work may free and reuse slots
            self.run_jobs(io, now);
        }
        self.jobs.new_turn();
        self.serve(io);
        self.streams.relieve(RELIEVE_PER_TURN);
        if self.streams.has_notices() {
            self.tell_slow_consumers(io);
        }
        self.count_tally();
        self.publish_gauges();
    }

    fn serve<I: Io<Buf = B>>(&mut self, io: &mut I) {
        let t = self.streams.tunables();
        let (min, max) = (t.tx_budget_min.max(1), t.tx_budget_max.max(t.tx_budget_min.max(1)));
        // At least what this turn took in (one datagram may fan out to
        // hundreds of deliveries), so intake never outruns the sending
        // while the adaptive budget is still small.
        let intake = u32::try_from(self.streams.tally().fanout).unwrap_or(u32::MAX);
        let budget = self.tx_budget.max(intake.min(max));
        let (fan, counts) = (&mut self.fan, &mut self.counts);
        let served = self.streams.serve(budget, |sub, out| fan.append(io, sub, out, counts));
        self.tx_budget = if served.more && served.messages >= budget {
            budget.saturating_mul(2)
        } else if served.messages < budget / 4 {
            budget / 2
        } else {
            budget
        }
        .clamp(min, max);
        self.fan.flush_all(io);
    }

    /// Sends ERROR SlowConsumer to the subscribers the disconnect policy
    /// removed.
    fn tell_slow_consumers<I: Io<Buf = B>>(&mut self, io: &mut I) {
        let mut notices = [ms_streams::Notice { peer: Peer::default(), stream: 0, slot: 0 }; ms_streams::NOTICES_MAX];
        let mut n = 0;
        let lost = self.streams.take_notices(|x| {
            notices[n] = x;
            n += 1;
        });
        self.counts.add(C::NoticesLost, lost);
        for x in &notices[..n] {
            let peer = Addr { ip: x.peer.ip.into(), port: x.peer.port, via: 0 };
            // The link the subscriber was served on, unless its freed slot
            // was taken by someone else in the meantime.
            let served = self.fan.addr(x.slot);
            let to = if (served.ip, served.port) == (peer.ip, peer.port) { served } else { peer };
            self.reply_error(io, to, ErrorEntry::whole(0, ErrorCode::SlowConsumer, x.stream));
            self.counts.add(C::SlowConsumerNotices, 1);
        }
    }

    /// Turns the streams' tally into counts.
    fn count_tally(&mut self) {
        if self.streams.tally().is_quiet() {
            return; // an idle turn: nothing to copy or compare
        }
        let t: Tally = self.streams.take_tally();
        self.counts.add(C::MessagesQueued, t.queued);
        self.counts.add(C::DeliveriesQueued, t.fanout);
        let refused = [C::RefusedBackpressure, C::ShedBulk, C::ShedBestEffort, C::RefusedPoolFull];
        for (i, counter) in refused.into_iter().enumerate() {
            self.counts.add(counter, t.refused[i]);
        }
        let dropped =
            [C::DroppedOldest, C::DroppedConflated, C::DroppedDisconnected, C::DroppedUnsubscribed, C::DroppedExpired];
        for (i, counter) in dropped.into_iter().enumerate() {
            self.counts.add(counter, t.dropped[i]);
        }
        if t.affected != self.affected_published {
            self.affected_published = t.affected;
            let mut sorted = t.affected;
            sorted.sort_unstable_by_key(|e| core::cmp::Reverse(e.2));
            self.counts.affected = Some(sorted);
        }
    }

    /// Space-saving: a tracked stream counts up; an untracked one replaces
    /// the smallest entry and inherits its count (an overestimate by at
    /// most that count). O(TOP_N), no allocation.
    fn count_top(&mut self, stream: u64, n: u64) {
        self.top_changed = true;
        if let Some(e) = self.top.iter_mut().find(|e| e.0 == stream) {
            e.1 += n;
            return;
        }
        if let Some(min) = self.top.iter_mut().min_by_key(|e| e.1) {
            *min = (stream, min.1 + n, min.1);
        }
    }

    /// This worker owns `stream` (no division when it is the only one).
    #[inline]
    fn owns(&self, stream: u64) -> bool {
        self.cfg.workers == 1 || owner(stream, self.cfg.workers) == self.cfg.me
    }

    /// Sets the table gauges and the busiest streams when they changed.
    fn publish_gauges(&mut self) {
        if self.top_changed {
            self.top_changed = false;
            let mut sorted = self.top;
            sorted.sort_unstable_by_key(|e| core::cmp::Reverse(e.1));
            self.counts.top = Some(sorted);
        }
        let g = self.streams.gauges();
        if self.published_gauges == Some((g, self.tx_budget)) {
            return;
        }
        self.published_gauges = Some((g, self.tx_budget));
        let c = &mut self.counts;
        c.set(C::StreamsActive, u64::from(g.streams));
        c.set(C::SubscribersActive, u64::from(g.subscribers));
        c.set(C::SubscriptionsActive, u64::from(g.subscriptions));
        c.set(C::QueuedMessages, u64::from(g.queued_messages));
        c.set(C::PoolUsedBytes, g.pool_used_bytes);
        c.set(C::PoolBytes, self.streams.pool_bytes());
        c.set(C::DegradationLevel, u64::from(g.level));
        c.set(C::TxBudget, u64::from(self.tx_budget));
    }

    pub(crate) fn reply_error<I: Io<Buf = B>>(&mut self, io: &mut I, to: Addr, e: ErrorEntry) {
        self.reply(io, to, |b| control::emit_errors(b, &[e]));
    }

    /// Sends a small control datagram built by `build` to `to`.
    pub(crate) fn reply<I: Io<Buf = B>>(
        &mut self,
        io: &mut I,
        to: Addr,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) {
        if to.port == self.cfg.service_port {
            return; // never answer another appliance's service port
        }
        let Some(buf) = io.alloc() else {
            self.counts.add(C::ReplyNoBuffer, 1);
            return;
        };
        match build(io.payload(&buf)) {
            Some(len) => {
                if io.send(to, buf, len, 0) {
                    self.counts.add(C::ProtoReplies, 1);
                }
            }
            None => io.free(buf),
        }
    }
}
