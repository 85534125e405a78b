//! The subscriber's protocol state machine, without sockets or clocks
//! (quinn-proto style): datagrams and the time go in, datagrams to send,
//! deliveries, answers and the next deadline come out.

use super::grants::Grants;
use super::outbox::{Outbox, CREDITS_PER_DATAGRAM};
use super::request::{answers, Parts, Request, RequestKind, RequestOutcome, ATTEMPTS, BUSY_PAUSE};
use super::types::{check_sequence, Delivery, StreamState, SubscriberStats};
use crate::ranges::Ranges;
use crate::{ClientError, CreditRule};
use ms_wire::control::{Ack, Control, ErrorCode, ErrorEntry, RangeRequest};
use ms_wire::{Frame, FrameType};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The credit window a new subscriber grants with: the appliance's
/// default `flow.initial_credit_bytes`.
pub const DEFAULT_CREDIT_WINDOW: u64 = 65_536;

/// Most SlowConsumer notices kept (the rest are only counted).
const NOTICES_MAX: usize = 1024;

/// The share of the kernel's receive buffer (as `SO_RCVBUF` reports it)
/// that credit may promise in payload bytes. The kernel charges each
/// datagram its buffer's true size (about 2.3 KiB for a full 1,472-byte
/// datagram, about 1 KiB for a small one) and reports twice the size asked
/// for, so a quarter of the reported size leaves room for DELIVERs
/// carrying one small message each at the rates that fill it.
const RCVBUF_CREDIT_DIVISOR: u64 = 4;

/// Everything a subscriber knows and decides, with no I/O.
///
/// Time is a [`Duration`] since any start the caller picks, passed to every
/// call that needs it; nothing here reads a clock. The caller feeds every
/// datagram from the appliance to [`SubscriberState::handle_datagram`],
/// sends what [`SubscriberState::poll_transmit`] yields (in order), calls
/// [`SubscriberState::handle_timeout`] once [`SubscriberState::poll_timeout`]
/// has passed, takes messages from [`SubscriberState::poll_delivery`] and
/// request outcomes from [`SubscriberState::poll_answer`]. Wire output
/// depends only on the inputs and the times given (the hash maps are only
/// looked up, never iterated to produce output).
#[derive(Debug)]
pub struct SubscriberState {
    next_request: u32,
    heartbeat_every: Duration,
    /// Heartbeat interval asked for; the one used is at most a third of
    /// the lifetime the appliance reports.
    heartbeat_asked: Duration,
    last_heartbeat: Duration,
    streams: HashMap<u64, StreamState>,
    backlog: VecDeque<Delivery>,
    stats: SubscriberStats,
    credit_window: Option<u64>,
    grants: Grants,
    notices: Vec<u64>,
    /// The appliance instance the subscriptions were made with.
    instance: Option<u64>,
    /// Streams subscribed, to make again and to know how many
    /// subscriptions the appliance should hold.
    ranges: Ranges,
    /// Answers to the last HEARTBEAT: subscriptions held per core.
    held: HashMap<u16, u32>,
    /// A HEARTBEAT went out whose answers `held` collects, when
    /// `expected` subscriptions were made.
    heartbeat_out: bool,
    expected: u64,
    /// Heartbeats in a row whose answers counted fewer subscriptions than
    /// were made (one may just have lost an answer).
    short: u32,
    /// SUBSCRIBEs made again by a resubscribe, whose answers are not
    /// waited for: request id -> the ranges it carried.
    resent: HashMap<u32, Vec<(u64, u64)>>,
    /// Bytes of receive buffer the credit may fill.
    rcvbuf_bytes: usize,
    request: Option<Request>,
    answer: Option<(u32, RequestOutcome)>,
    out: Outbox,
}

impl SubscriberState {
    /// A subscriber with no subscriptions at time `now`, heartbeating every
    /// `heartbeat_every` (the first one due then), whose socket's receive
    /// buffer holds `rcvbuf_bytes` (it bounds the credit window, see
    /// [`SubscriberState::effective_window`]).
    pub fn new(now: Duration, heartbeat_every: Duration, rcvbuf_bytes: usize) -> SubscriberState {
        SubscriberState {
            next_request: 1,
            heartbeat_every,
            heartbeat_asked: heartbeat_every,
            last_heartbeat: now,
            streams: HashMap::new(),
            backlog: VecDeque::new(),
            stats: SubscriberStats::default(),
            credit_window: Some(DEFAULT_CREDIT_WINDOW),
            grants: Grants::default(),
            notices: Vec::new(),
            instance: None,
            ranges: Ranges::default(),
            held: HashMap::new(),
            heartbeat_out: false,
            expected: 0,
            short: 0,
            resent: HashMap::new(),
            rcvbuf_bytes,
            request: None,
            answer: None,
            out: Outbox::default(),
        }
    }

    /// The appliance instance the subscriptions were made with.
    pub fn instance(&self) -> Option<u64> {
        self.instance
    }

    /// The heartbeat interval in use.
    pub fn heartbeat_every(&self) -> Duration {
        self.heartbeat_every
    }

    /// Sets the heartbeat interval asked for; the one used stays at most a
    /// third of the lifetime the appliance reports.
    pub fn set_heartbeat_every(&mut self, every: Duration) {
        self.heartbeat_asked = every;
        self.heartbeat_every = every;
    }

    /// Receive buffer bytes given at construction.
    pub fn rcvbuf_bytes(&self) -> usize {
        self.rcvbuf_bytes
    }

    /// Streams subscribed (as made; the appliance may hold fewer).
    pub fn subscribed_streams(&self) -> u64 {
        self.ranges.count()
    }

    /// The parts of `first..=last` not subscribed.
    pub fn uncovered(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        self.ranges.uncovered(first, last)
    }

    /// The credit window in use: the one set, at most this stream's share
    /// of a quarter of the receive buffer, at least one largest message.
    /// `None` in manual mode. See [`crate::Subscriber::effective_window`].
    pub fn effective_window(&self) -> Option<u64> {
        let w = self.credit_window?;
        let hold = self.rcvbuf_bytes as u64 / RCVBUF_CREDIT_DIVISOR;
        let share = hold / self.subscribed_streams().max(1);
        Some(w.min(share.max(ms_wire::PAYLOAD_MAX as u64)))
    }

    /// The credit rule automatic grants follow now (`None`: manual).
    pub fn credit_rule(&self) -> Option<CreditRule> {
        self.effective_window().and_then(CreditRule::new)
    }

    /// Sets automatic flow control (`None` or `Some(0)`: manual).
    pub fn set_credit_window(&mut self, window: Option<u64>) {
        self.credit_window = window.filter(|w| *w > 0);
    }

    /// The automatic credit window (`None` = manual).
    pub fn credit_window(&self) -> Option<u64> {
        self.credit_window
    }

    /// Grants `(stream, position)` pairs now, in as few CREDIT datagrams
    /// as they fit, recording each as its stream's latest grant.
    pub fn grant(&mut self, grants: &[(u64, u64)]) {
        self.stats.credits_sent += self.grants.manual(grants, &mut self.out);
    }

    /// End position of the last message of `stream` consumed.
    pub fn last_position(&self, stream: u64) -> Option<u64> {
        self.grants.last_position(stream)
    }

    /// The latest grant for `stream`.
    pub fn last_grant(&self, stream: u64) -> Option<u64> {
        self.grants.last_grant(stream)
    }

    /// Streams the appliance dropped as a slow consumer (the first 1024).
    pub fn slow_consumer_notices(&self) -> &[u64] {
        &self.notices
    }

    /// Totals so far.
    pub fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// Per-stream state so far.
    pub fn stream(&self, id: u64) -> Option<StreamState> {
        self.streams.get(&id).copied()
    }

    /// Every stream seen, with its state.
    pub fn streams(&self) -> impl Iterator<Item = (u64, StreamState)> + '_ {
        self.streams.iter().map(|(k, v)| (*k, *v))
    }

    /// Counts a transient socket error the caller outlived.
    pub fn socket_error(&mut self) {
        self.stats.socket_errors += 1;
    }

    /// The caller could not send `datagram` (taken from
    /// [`SubscriberState::poll_transmit`]): it is lost, and not counted
    /// as sent.
    pub fn transmit_failed(&mut self, datagram: &[u8]) {
        if ms_wire::Header::parse(datagram).is_ok_and(|h| h.frame_type == FrameType::Credit) {
            self.stats.credits_sent = self.stats.credits_sent.saturating_sub(1);
        }
    }

    /// The next datagram to send, moved into `buf` (which must hold
    /// [`ms_wire::DATAGRAM_MAX`] bytes); its length.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.out.pop_into(buf)
    }

    /// When [`SubscriberState::handle_timeout`] has something to do: the
    /// request's next send while one waits (heartbeats wait for it, as
    /// they always did in the blocking client), else the next heartbeat.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.request {
            Some(r) => Some(r.deadline),
            None => self.last_heartbeat.checked_add(self.heartbeat_every),
        }
    }

    /// Does what is due at `now`: sends the waiting request again (or
    /// gives it up after 5 sends), or sends a heartbeat.
    pub fn handle_timeout(&mut self, now: Duration) {
        if let Some(r) = &mut self.request {
            if now < r.deadline {
                return;
            }
            if r.attempts >= ATTEMPTS {
                let attempts = r.attempts;
                self.finish(RequestOutcome::TimedOut { attempts });
                return;
            }
            r.attempts += 1;
            r.deadline = now.saturating_add(r.timeout);
            let (t, entry) = (frame_type(r.kind), r.entry);
            self.out.ranges(t, &[entry]);
        } else if self.poll_timeout().is_some_and(|due| now >= due) {
            self.heartbeat(now);
        }
    }

    /// The next message received, counted as consumed: automatic flow
    /// control queues the grant it makes due, and the grants queued go out
    /// (see [`SubscriberState::flush_credits`]) once no message is left or
    /// a CREDIT datagram's worth waits.
    pub fn poll_delivery(&mut self) -> Option<Delivery> {
        let d = self.backlog.pop_front()?;
        let rule = self.credit_rule();
        self.grants.consumed(d.stream, d.position, rule);
        if self.backlog.is_empty() || self.grants.pending() >= CREDITS_PER_DATAGRAM {
            self.flush_credits();
        }
        Some(d)
    }

    /// Messages received and not yet taken.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Queues the automatic grants waiting to be sent.
    pub fn flush_credits(&mut self) {
        self.stats.credits_sent += self.grants.flush(&mut self.out);
    }

    /// Subscribes to `first..=last`: counts the range as subscribed (so
    /// the initial credit asked for is each stream's share with it) and
    /// sends a SUBSCRIBE; returns its request id. A failed request puts
    /// the subscriptions back as they were.
    pub fn subscribe(&mut self, now: Duration, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        if first > last {
            return Err(ClientError::EmptyRange { first, last });
        }
        let before = self.ranges.clone();
        self.ranges.add(first, last);
        let id = self.request(now, RequestKind::Subscribe, first, last, timeout);
        if let Some(r) = &mut self.request {
            r.undo = Some(before);
        }
        Ok(id)
    }

    /// Unsubscribes from `first..=last` (no longer counted as subscribed,
    /// whatever the answer); returns the request id.
    pub fn unsubscribe(&mut self, now: Duration, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        if first > last {
            return Err(ClientError::EmptyRange { first, last });
        }
        self.ranges.remove(first, last);
        Ok(self.request(now, RequestKind::Unsubscribe, first, last, timeout))
    }

    /// Sends a request for `first..=last` (`first <= last`) without
    /// counting it in or out of the subscriptions (to undo part of a
    /// refused range); returns its id. Each send waits `timeout` for the
    /// answers. One request waits at a time: a new one replaces it.
    pub fn request(&mut self, now: Duration, kind: RequestKind, first: u64, last: u64, timeout: Duration) -> u32 {
        let entry = self.range_request(kind, first, last);
        self.out.ranges(frame_type(kind), &[entry]);
        let deadline = now.saturating_add(timeout);
        let parts = Parts::default();
        self.request = Some(Request { kind, entry, timeout, attempts: 1, deadline, parts, undo: None });
        self.answer = None;
        entry.request
    }

    /// The request id and outcome of the request that ended.
    pub fn poll_answer(&mut self) -> Option<(u32, RequestOutcome)> {
        self.answer.take()
    }

    /// Gives up the waiting request (its send failed): as if refused.
    pub fn abandon_request(&mut self) {
        if let Some(undo) = self.request.take().and_then(|r| r.undo) {
            self.ranges = undo;
        }
    }

    /// The SUBSCRIBE or UNSUBSCRIBE entry for a new request.
    fn range_request(&mut self, kind: RequestKind, first: u64, last: u64) -> RangeRequest {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        let initial_credit = match (kind, self.effective_window()) {
            (RequestKind::Subscribe, Some(w)) => u32::try_from(w).unwrap_or(u32::MAX),
            // Manual mode: the appliance's default, as the application expects.
            _ => 0,
        };
        RangeRequest { request, first, last, initial_credit }
    }

    /// The waiting request ended with `answer`.
    fn finish(&mut self, answer: RequestOutcome) {
        let Some(r) = self.request.take() else { return };
        match answer {
            RequestOutcome::Applied(_) => self.applied(r.kind, r.entry.first, r.entry.last),
            _ => {
                if let Some(undo) = r.undo {
                    self.ranges = undo;
                }
            }
        }
        self.answer = Some((r.entry.request, answer));
    }

    /// Takes one datagram from the appliance received at `now`: DELIVER
    /// messages go to the backlog (after the sequence checks), ACKs and
    /// ERRORs answer the waiting request, carry heartbeat answers, the
    /// appliance's instance and lifetime, and slow-consumer notices.
    /// Anything else is counted as malformed.
    pub fn handle_datagram(&mut self, now: Duration, datagram: &[u8]) {
        match ms_wire::parse(datagram) {
            Ok(Frame::Deliver(d)) => {
                self.stats.datagrams += 1;
                for x in d.deliveries() {
                    let st = self.streams.entry(x.stream).or_default();
                    check_sequence(st, x.seq, &mut self.stats);
                    self.grants.delivered(x.stream, x.position);
                    self.backlog.push_back(Delivery {
                        stream: x.stream,
                        seq: x.seq,
                        position: x.position,
                        timestamp_ns: x.timestamp_ns,
                        class: x.class,
                        payload: x.payload.to_vec(),
                    });
                }
            }
            Ok(Frame::Control(Control::Ack(acks))) => {
                let waiting = self.request.as_ref().map(|r| r.entry.request);
                let mut answer = None;
                for a in acks {
                    self.note_instance(a.instance, Some(a.lifetime_ms));
                    if a.request == 0 && self.heartbeat_out {
                        self.held.insert(a.part, a.streams);
                    } else if answer.is_none() && Some(a.request) == waiting {
                        answer = Some(a);
                    }
                }
                if let Some(a) = answer {
                    self.acked(a);
                }
            }
            Ok(Frame::Control(Control::Error(errs))) => {
                let mut answer = None;
                for e in errs {
                    if self.resubscribe_refused(&e) {
                        continue;
                    }
                    if e.code == ErrorCode::UnknownSubscriber {
                        // The core that received our HEARTBEAT holds none of
                        // our subscriptions (the other cores' ACKs say the rest).
                        self.note_instance(e.detail, None);
                    } else if e.code == ErrorCode::SlowConsumer {
                        self.slow_consumer(e.detail);
                    } else if answer.is_none() && answers(&e, self.request.as_ref().map(|r| r.entry.request)) {
                        answer = Some(e);
                    }
                }
                if let Some(e) = answer {
                    self.refused(now, e);
                }
            }
            _ => self.stats.malformed += 1,
        }
    }

    /// An ACK of the waiting request.
    fn acked(&mut self, a: Ack) {
        let Some(r) = &mut self.request else { return };
        r.parts.ack(a);
        if let Some(done) = r.parts.done() {
            self.finish(done);
        }
    }

    /// An ERROR answering the waiting request.
    fn refused(&mut self, now: Duration, e: ErrorEntry) {
        let Some(r) = &mut self.request else { return };
        if e.code == ErrorCode::Busy {
            // An internal queue was full: send again after a pause.
            r.deadline = now.saturating_add(BUSY_PAUSE);
        } else if e.parts <= 1 || e.request != r.entry.request {
            self.finish(RequestOutcome::Refused { code: e.code, detail: e.detail, applied: 0 });
        } else {
            r.parts.refuse(e);
            if let Some(done) = r.parts.done() {
                self.finish(done);
            }
        }
    }

    /// The appliance removed our subscription to `stream` (ERROR
    /// SlowConsumer): counted, noted, its grants no longer re-sent, and
    /// not one to make again.
    fn slow_consumer(&mut self, stream: u64) {
        self.stats.slow_consumer += 1;
        if self.notices.len() < NOTICES_MAX {
            self.notices.push(stream);
        }
        self.grants.stop_one(stream);
        self.ranges.remove(stream, stream);
    }

    /// Takes the instance and lifetime an answer carried. A new instance
    /// means the appliance restarted and holds none of our subscriptions:
    /// every stream starts again, and they are all made again now.
    fn note_instance(&mut self, instance: u64, lifetime_ms: Option<u32>) {
        if let Some(ms) = lifetime_ms.filter(|&ms| ms > 0) {
            let third = Duration::from_millis(u64::from(ms) / 3).max(Duration::from_millis(1));
            self.heartbeat_every = self.heartbeat_asked.min(third);
        }
        match self.instance.replace(instance) {
            Some(old) if old != instance => {
                self.stats.restarts += 1;
                self.resubscribe();
            }
            _ => {}
        }
    }

    /// Makes every subscription again, packed into as few SUBSCRIBEs as
    /// fit, without waiting for the ACKs (the heartbeats after the next one
    /// show whether they took; a refusal drops the ranges it names), and
    /// starts every stream's sequence and credit state again: the appliance
    /// may have made them anew.
    fn resubscribe(&mut self) {
        self.stats.resubscribes += 1;
        // Answers to the heartbeat before this are stale now.
        self.heartbeat_out = false;
        self.short = 0;
        self.held.clear();
        self.resent.clear();
        for group in self.ranges.packed() {
            let entries: Vec<RangeRequest> = group
                .iter()
                .map(|&(first, last)| {
                    self.applied(RequestKind::Subscribe, first, last);
                    self.range_request(RequestKind::Subscribe, first, last)
                })
                .collect();
            for e in &entries {
                self.resent.insert(e.request, vec![(e.first, e.last)]);
            }
            self.out.ranges(FrameType::Subscribe, &entries);
        }
    }

    /// An ERROR answering a SUBSCRIBE sent by a resubscribe: a full table
    /// drops what it asked for (it would be refused again at every
    /// heartbeat); Busy waits for the next heartbeat's check.
    fn resubscribe_refused(&mut self, e: &ErrorEntry) -> bool {
        let Some(ranges) = self.resent.get(&e.request) else { return false };
        if e.code != ErrorCode::Busy {
            for &(a, b) in ranges {
                self.ranges.remove(a, b);
            }
            self.stats.resubscribe_refused += 1;
            self.resent.remove(&e.request);
        }
        true
    }

    /// Sends a HEARTBEAT at `now`, then CREDITs re-sending recent grants
    /// and grants streams may wait on (see [`crate::Subscriber::heartbeat`]).
    /// First, when the answers to the previous two HEARTBEATs counted fewer
    /// subscriptions than were made, makes them all again.
    pub fn heartbeat(&mut self, now: Duration) {
        let held: u64 = self.held.values().map(|&n| u64::from(n)).sum();
        self.short = if self.heartbeat_out && held < self.expected { self.short + 1 } else { 0 };
        // Two short heartbeats in a row: one alone may have lost an answer.
        if self.short >= 2 {
            self.resubscribe();
        }
        self.held.clear();
        self.heartbeat_out = true;
        self.expected = self.ranges.count();
        self.out.heartbeat();
        self.last_heartbeat = now;
        self.stats.credits_sent += self.grants.heartbeat(&mut self.out);
    }

    /// Forgets what the stream states of `first..=last` knew once a
    /// request on them was answered.
    fn applied(&mut self, kind: RequestKind, first: u64, last: u64) {
        let range = first..=last;
        if kind == RequestKind::Subscribe {
            // A stream may be new in the appliance: its sequence numbers
            // and positions start again.
            self.streams.retain(|s, _| !range.contains(s));
            self.grants.restart(range);
        } else {
            self.grants.stop(range);
        }
    }
}

/// Wire type of a request.
fn frame_type(kind: RequestKind) -> FrameType {
    match kind {
        RequestKind::Subscribe => FrameType::Subscribe,
        RequestKind::Unsubscribe => FrameType::Unsubscribe,
    }
}
