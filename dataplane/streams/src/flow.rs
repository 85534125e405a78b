//! Publishing into stream queues: stream-queue limits, the slow-subscriber
//! policies, credit, and the memory-budget degradation steps.
//!
//! Degradation, from the pool's fill (the fuller of message slots and
//! chunks) against the tunables' thresholds:
//!
//! | level | from                        | effect                                        |
//! |-------|-----------------------------|-----------------------------------------------|
//! | 0     |                             | normal service                                |
//! | 1     | `shrink_grants_at_percent`  | every stream's queue limit is halved (and     |
//! |       |                             | halved again at each further level; applied   |
//! |       |                             | on arrival and by [`Streams::relieve`])       |
//! | 2     | `shed_bulk_at_percent`      | new bulk messages are dropped                 |
//! | 3     | `drop_newest_at_percent`    | new normal and bulk messages are dropped      |
//! | full  | no free slot or chunk       | every new message is dropped                  |
//!
//! Messages dropped by a degradation step still take a sequence number, so
//! subscribers see the gap; a message refused under `block` does not (the
//! publisher was told and may send it again).

use crate::tunables::{class_of, Policy, BEST_EFFORT_CLASS, CLASSES};

/// Bytes a queued message's descriptor counts against its stream's queue
/// limit, on top of its payload: empty messages are bounded too.
pub const MSG_CHARGE_BYTES: u32 = std::mem::size_of::<crate::pool::Msg>() as u32;

/// What a message of `len` payload bytes counts against its stream's limit.
pub(crate) const fn charge(len: u32) -> u32 {
    len + MSG_CHARGE_BYTES
}
use crate::sched::{Out, Src};
use crate::{Peer, Stream, Streams, Subscription, NIL};
use ms_wire::deliver::DeliveryMeta;

/// Why a queued message was not sent to one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The stream's queue was full and the policy is drop-oldest.
    DropOldest = 0,
    /// The policy is conflate: the subscription skipped to the newest.
    Conflated = 1,
    /// The policy is disconnect: the subscription was removed.
    Disconnected = 2,
    /// The subscriber unsubscribed with messages still queued for it.
    Unsubscribed = 3,
    /// The subscriber expired with messages still queued for it.
    Expired = 4,
}

/// Every [`DropReason`], by index, with its counter name.
pub const DROP_REASONS: [(DropReason, &str); 5] = [
    (DropReason::DropOldest, "drop_oldest"),
    (DropReason::Conflated, "conflated"),
    (DropReason::Disconnected, "disconnected"),
    (DropReason::Unsubscribed, "unsubscribed"),
    (DropReason::Expired, "expired"),
];

/// Why a published message was not queued at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Policy `block` and the stream's queue is full: tell the publisher.
    Backpressure = 0,
    /// Degradation level 2 or more and the message is bulk.
    ShedBulk = 1,
    /// Degradation level 3 and the message is normal or bulk.
    ShedBestEffort = 2,
    /// The pool has no room for it.
    PoolFull = 3,
}

/// Every [`Refusal`], by index, with its counter name.
pub const REFUSALS: [(Refusal, &str); 4] = [
    (Refusal::Backpressure, "backpressure"),
    (Refusal::ShedBulk, "shed_bulk"),
    (Refusal::ShedBestEffort, "shed_best_effort"),
    (Refusal::PoolFull, "pool_full"),
];

/// What happened to a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for `fanout` subscriptions with sequence number `seq`.
    Queued {
        /// Sequence number.
        seq: u64,
        /// Subscriptions it is queued for.
        fanout: u32,
    },
    /// The stream has no subscriber on this worker.
    NoSubscriber,
    /// Not queued.
    Refused(Refusal),
}

/// Slots of the "most affected" sketch.
pub use ms_limits::AFFECTED_MAX;

/// Counts since the last [`Streams::take_tally`], and a space-saving
/// sketch of the (stream, subscriber) pairs that lost the most messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages queued.
    pub queued: u64,
    /// Deliveries queued (sum of fan-out).
    pub fanout: u64,
    /// Deliveries handed to the sender.
    pub sent: u64,
    /// Deliveries dropped, by [`DropReason`].
    pub dropped: [u64; 5],
    /// Messages refused, by [`Refusal`].
    pub refused: [u64; 4],
    /// (stream, subscriber, messages lost); subscriber port 0 means every
    /// subscriber of the stream (a refused message).
    pub affected: [(u64, Peer, u64); AFFECTED_MAX],
}

impl Tally {
    pub(crate) fn drop(&mut self, reason: DropReason, stream: u64, peer: Peer, n: u32) {
        self.dropped[reason as usize] += u64::from(n);
        self.note(stream, peer, u64::from(n));
    }

    pub(crate) fn refuse(&mut self, r: Refusal, stream: u64) {
        self.refused[r as usize] += 1;
        self.note(stream, Peer { ip: 0, port: 0 }, 1);
    }

    /// Space-saving: a tracked pair counts up, an untracked one replaces the
    /// smallest entry (O(AFFECTED_MAX), only on the drop path).
    fn note(&mut self, stream: u64, peer: Peer, n: u64) {
        if let Some(e) = self.affected.iter_mut().find(|e| e.2 > 0 && e.0 == stream && e.1 == peer) {
            e.2 += n;
        } else if let Some(min) = self.affected.iter_mut().min_by_key(|e| e.2) {
            *min = (stream, peer, min.2 + n);
        }
    }

    /// Nothing was counted since the last take (the sketch aside).
    pub fn is_quiet(&self) -> bool {
        self.queued == 0
            && self.fanout == 0
            && self.sent == 0
            && self.dropped.iter().all(|d| *d == 0)
            && self.refused.iter().all(|r| *r == 0)
    }

    /// Deliveries dropped for every reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// Most disconnect notices kept between two [`Streams::take_notices`].
pub const NOTICES_MAX: usize = 64;

/// A subscription removed by the disconnect policy: tell the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// Who.
    pub peer: Peer,
    /// Which stream.
    pub stream: u64,
    /// The subscriber's slot when it was removed (it may be free now).
    pub slot: u32,
}

#[derive(Debug)]
pub(crate) struct Notices {
    items: [Notice; NOTICES_MAX],
    len: usize,
    /// Notices that did not fit (the subscriber still sees the gap).
    lost: u64,
}

impl Default for Notices {
    fn default() -> Self {
        Notices { items: [Notice { peer: Peer { ip: 0, port: 0 }, stream: 0, slot: 0 }; NOTICES_MAX], len: 0, lost: 0 }
    }
}

impl Streams {
    /// The degradation level now in force (see the module docs).
    pub fn level(&self) -> u8 {
        let fill = self.pool.fill_percent();
        let t = &self.tun;
        match fill {
            f if f >= u32::from(t.drop_newest_at_percent) => 3,
            f if f >= u32::from(t.shed_bulk_at_percent) => 2,
            f if f >= u32::from(t.shrink_grants_at_percent) => 1,
            _ => 0,
        }
    }

    /// The queue limit of every stream at degradation `level`: halved at
    /// each step, never below one full-size message.
    pub(crate) fn stream_limit(&self, level: u8) -> u32 {
        match level {
            0 => self.tun.stream_queue_bytes_max,
            l => (self.tun.stream_queue_bytes_max >> l).max(charge(ms_wire::PAYLOAD_MAX as u32)),
        }
    }

    /// Queues a message for every subscriber of stream `id` on this worker.
    pub fn publish(&mut self, id: u64, class: u8, timestamp_ns: u64, payload: &[u8]) -> Outcome {
        match self.admit(id, class, payload.len()) {
            Ok(st) => self.store(st, class, timestamp_ns, payload),
            Err(refused) => refused,
        }
    }

    /// Publishes like [`Streams::publish`], but when nothing waits in the
    /// scheduler, nothing of the stream is queued and every subscription
    /// has the credit for the message, hands it to `emit(subscriber_slot,
    /// message)` for each subscription at once instead of storing it
    /// (cut-through): one copy, from the PUBLISH into the DELIVERs, and
    /// nothing for the scheduler to do. Sending now is what the scheduler
    /// would do anyway when nobody else waits, so order and fairness are
    /// the same. If `emit` refuses (no buffer), the message is stored for
    /// the subscriptions it did not reach, as [`Streams::publish`] would,
    /// so nothing is lost; the pool's room for that is checked first.
    /// Counted as queued and sent, like a message that went through the
    /// queue.
    pub fn publish_through(
        &mut self,
        id: u64,
        class: u8,
        timestamp_ns: u64,
        payload: &[u8],
        mut emit: impl FnMut(u32, &Out<'_>) -> bool,
    ) -> Outcome {
        let st = match self.admit(id, class, payload.len()) {
            Ok(st) => st,
            Err(refused) => return refused,
        };
        let stream = self.streams[st as usize];
        let end_pos = stream.tail_pos + payload.len() as u64;
        if !self.tun.cut_through || !self.may_cut_through(&stream, end_pos, payload.len()) {
            return self.store(st, class, timestamp_ns, payload);
        }
        let meta = DeliveryMeta { stream: id, seq: stream.next_seq, position: end_pos, timestamp_ns, class, flags: 0 };
        let out = Out { meta, len: payload.len(), src: Src::Arrived(payload) };
        let mut n = stream.head;
        while n != NIL {
            let node = self.nodes[n as usize];
            if !emit(node.subscriber, &out) {
                return self.store_rest(st, n, class, timestamp_ns, payload);
            }
            self.note_sent(n, end_pos);
            n = node.s_next;
        }
        let stream = &mut self.streams[st as usize];
        stream.next_seq += 1;
        stream.tail_pos = end_pos;
        self.tally.queued += 1;
        self.tally.fanout += u64::from(stream.subscribers);
        Outcome::Queued { seq: meta.seq, fanout: stream.subscribers }
    }

    /// Cut-through is allowed: nobody waits in the scheduler (no one is
    /// overtaken), the stream has no backlog (its order holds; every
    /// subscription is caught up), the pool could store the message should
    /// a buffer run out half-way, and every subscription may send it.
    fn may_cut_through(&self, stream: &Stream, end_pos: u64, len: usize) -> bool {
        if self.sched.active() != 0 || stream.q_head != NIL || !self.pool.has_room(len) {
            return false;
        }
        let mut n = stream.head;
        while n != NIL {
            let node = &self.nodes[n as usize];
            if !node.may_send(end_pos) {
                return false;
            }
            n = node.s_next;
        }
        true
    }

    /// `emit` refused at subscription `refused_at` during a cut-through:
    /// stores the message and takes it off the subscriptions before
    /// `refused_at`, which were handed it already.
    pub(crate) fn store_rest(
        &mut self,
        st: u32,
        refused_at: u32,
        class: u8,
        timestamp_ns: u64,
        payload: &[u8],
    ) -> Outcome {
        let outcome = self.store(st, class, timestamp_ns, payload);
        // `may_cut_through` checked the pool's room: nothing was refused.
        debug_assert!(matches!(outcome, Outcome::Queued { .. }));
        let mut n = self.streams[st as usize].head;
        while n != refused_at && n != NIL {
            self.sched.deactivate(&mut self.nodes, n);
            self.advance(n);
            n = self.nodes[n as usize].s_next;
        }
        outcome
    }

    /// The stream slot of a message for stream `id` that is to be taken,
    /// after the stream's queue limit and the degradation steps; `Err`
    /// with the outcome of one that is not.
    fn admit(&mut self, id: u64, class: u8, len: usize) -> Result<u32, Outcome> {
        let Some(st) = self.stream_slot(id) else { return Err(Outcome::NoSubscriber) };
        let cost = charge(len as u32);
        let mut level = self.level();
        let limit = self.stream_limit(level);
        if self.streams[st as usize].queued_bytes + cost > limit {
            // The stream's own backlog goes first, before anything is shed.
            if !self.make_room(st, limit.saturating_sub(cost)) {
                self.tally.refuse(Refusal::Backpressure, id);
                return Err(Outcome::Refused(Refusal::Backpressure));
            }
            if self.stream_slot(id) != Some(st) {
                return Err(Outcome::NoSubscriber); // the disconnect policy removed every subscriber
            }
            level = self.level(); // making room may have freed enough to change it
        }
        let c = class_of(class);
        if level >= 2 && c == CLASSES - 1 {
            return Err(self.refuse(st, Refusal::ShedBulk));
        }
        if level >= 3 && c >= BEST_EFFORT_CLASS {
            return Err(self.refuse(st, Refusal::ShedBestEffort));
        }
        Ok(st)
    }

    /// Stores an admitted message in the pool and queues it.
    fn store(&mut self, st: u32, class: u8, timestamp_ns: u64, payload: &[u8]) -> Outcome {
        let Some(m) = self.pool.alloc(payload) else { return self.refuse(st, Refusal::PoolFull) };
        self.link(st, m, class, timestamp_ns)
    }

    /// While the pool is degraded, applies the shrunken queue limit to up
    /// to `budget` streams (a bounded slice per loop turn; successive calls
    /// sweep the table), so backlogs of subscribers that stopped granting
    /// give memory back even when nothing is published to their streams.
    /// Returns the streams looked at.
    pub fn relieve(&mut self, budget: u32) -> u32 {
        let level = self.level();
        let cap = self.streams.len() as u32;
        if level == 0 || cap == 0 {
            return 0;
        }
        let limit = self.stream_limit(level);
        for _ in 0..budget.min(cap) {
            let st = self.relieve_cursor;
            self.relieve_cursor = (st + 1) % cap;
            let s = &self.streams[st as usize];
            if s.head != NIL && s.queued_bytes > limit {
                self.make_room(st, limit);
            }
        }
        budget.min(cap)
    }

    /// A refusal that takes a sequence number, so subscribers see the gap.
    fn refuse(&mut self, st: u32, r: Refusal) -> Outcome {
        let stream = &mut self.streams[st as usize];
        stream.next_seq += 1;
        self.tally.refuse(r, stream.id);
        Outcome::Refused(r)
    }

    /// Appends stored message `m` to stream `st` and points every caught-up
    /// subscription at it.
    fn link(&mut self, st: u32, m: u32, class: u8, timestamp_ns: u64) -> Outcome {
        let stream = &mut self.streams[st as usize];
        let len = self.pool.get(m).len;
        let seq = stream.next_seq;
        stream.next_seq += 1;
        stream.tail_pos += u64::from(len);
        stream.queued_bytes += charge(u32::from(len));
        let fanout = stream.subscribers;
        let msg = self.pool.get_mut(m);
        (msg.seq, msg.end_pos, msg.timestamp_ns, msg.class, msg.refs) =
            (seq, stream.tail_pos, timestamp_ns, class, fanout);
        match stream.q_tail {
            NIL => stream.q_head = m,
            t => self.pool.get_mut(t).next = m,
        }
        stream.q_tail = m;
        let mut n = stream.head;
        while n != NIL {
            if self.nodes[n as usize].cursor == NIL {
                self.nodes[n as usize].cursor = m;
                self.activate(n);
            }
            n = self.nodes[n as usize].s_next;
        }
        self.tally.queued += 1;
        self.tally.fanout += u64::from(fanout);
        Outcome::Queued { seq, fanout }
    }

    /// Applies the stream's policy to the subscriptions that are behind:
    /// those still to take one of the oldest messages that must go for at
    /// most `target` bytes to stay queued, without the credit for the
    /// message they are at. A subscription with credit for what it holds
    /// is never behind: it is sent its messages at the end of this turn, so
    /// the queue may stay over its limit until then (the pool still bounds
    /// it). One pass over the queue and one over the subscriptions. False
    /// under `block` when someone is behind (nothing changed).
    fn make_room(&mut self, st: u32, target: u32) -> bool {
        // Nobody without credit: nothing to drop, and no walk of the queue
        // (which would cost every message arriving at a stream kept over
        // its limit by subscribers that have credit, until they are
        // served, a walk as long as the excess: quadratic in the burst).
        if !self.any_behind(st) {
            return true;
        }
        let id = self.streams[st as usize].id;
        let policy = self.tun.policy_of(id);
        let cut = self.cut_seq(st, target);
        let mut n = self.streams[st as usize].head;
        while n != NIL {
            // Read before the policy may unlink `n` (if the stream goes with
            // it, `n` was its last subscription and `next` is NIL).
            let next = self.nodes[n as usize].s_next;
            let node = self.nodes[n as usize];
            if node.cursor != NIL {
                let at = self.pool.get(node.cursor);
                // The message owed after a skip does not count: a
                // subscription without credit is behind all the same.
                if at.seq < cut && at.end_pos > node.grant {
                    if policy == Policy::Block {
                        return false;
                    }
                    self.apply_policy(n, policy, id, cut);
                }
            }
            n = next;
        }
        true
    }

    /// Some subscription of stream `st` is at a message it has no credit for.
    fn any_behind(&self, st: u32) -> bool {
        let mut n = self.streams[st as usize].head;
        while n != NIL {
            let node = &self.nodes[n as usize];
            if node.cursor != NIL && self.pool.get(node.cursor).end_pos > node.grant {
                return true;
            }
            n = node.s_next;
        }
        false
    }

    /// The sequence number from which stream `st`'s newest messages fit in
    /// `target` bytes: older ones must go.
    fn cut_seq(&self, st: u32, target: u32) -> u64 {
        let stream = &self.streams[st as usize];
        let (mut m, mut queued) = (stream.q_head, stream.queued_bytes);
        while m != NIL && queued > target {
            queued -= charge(u32::from(self.pool.get(m).len));
            m = self.pool.get(m).next;
        }
        if m == NIL {
            stream.next_seq
        } else {
            self.pool.get(m).seq
        }
    }

    /// Applies `policy` to subscription `n`, which is behind on messages
    /// before sequence `cut`.
    fn apply_policy(&mut self, n: u32, policy: Policy, id: u64, cut: u64) {
        let slot = self.nodes[n as usize].subscriber;
        let peer = self.subs[slot as usize].peer;
        match policy {
            Policy::DropOldest => {
                let mut dropped = 0;
                while self.nodes[n as usize].cursor != NIL && self.pool.get(self.nodes[n as usize].cursor).seq < cut {
                    self.advance(n);
                    dropped += 1;
                }
                self.tally.drop(DropReason::DropOldest, id, peer, dropped);
                self.owe_one(n);
                if self.nodes[n as usize].cursor == NIL {
                    self.sched.deactivate(&mut self.nodes, n);
                } else {
                    self.activate(n);
                }
            }
            Policy::Conflate => {
                self.sched.deactivate(&mut self.nodes, n);
                self.release_pending(n, DropReason::Conflated);
                self.owe_one(n);
            }
            Policy::Disconnect => {
                self.notice(Notice { peer, stream: id, slot });
                self.remove_node(n, DropReason::Disconnected);
            }
            Policy::Block => unreachable!("block never makes room"),
        }
    }

    /// After a skip: the subscription's next message may go past its grant
    /// (one message, until it grants again), so its subscriber, which grants
    /// as it receives, is not left behind the gap (docs/flow-control.md).
    fn owe_one(&mut self, n: u32) {
        self.nodes[n as usize].owed = true;
    }

    fn notice(&mut self, notice: Notice) {
        let q = &mut self.notices;
        if q.len < NOTICES_MAX {
            q.items[q.len] = notice;
            q.len += 1;
        } else {
            q.lost += 1;
        }
    }

    /// True when disconnect notices wait for [`Streams::take_notices`].
    #[inline]
    pub fn has_notices(&self) -> bool {
        self.notices.len > 0 || self.notices.lost > 0
    }

    /// Hands out (and forgets) the disconnect notices; returns how many
    /// did not fit since the last call.
    pub fn take_notices(&mut self, mut f: impl FnMut(Notice)) -> u64 {
        let q = &mut self.notices;
        q.items[..q.len].iter().for_each(|n| f(*n));
        q.len = 0;
        std::mem::take(&mut q.lost)
    }

    /// The counts since the last [`Streams::take_tally`], without resetting.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Hands out (and resets) the counts since the last call; the
    /// most-affected sketch is kept (it is cumulative).
    pub fn take_tally(&mut self) -> Tally {
        let affected = self.tally.affected;
        let t = std::mem::take(&mut self.tally);
        self.tally.affected = affected;
        t
    }

    /// Raises `peer`'s credit on stream `id` to `position` (grants only
    /// grow: a lost, repeated or reordered grant is harmless). Returns
    /// whether the subscription exists.
    pub fn credit(&mut self, peer: Peer, id: u64, position: u64) -> bool {
        let (Some(st), Some(sub)) = (self.stream_slot(id), self.subscriber_slot(peer)) else {
            return false;
        };
        let Some(n) = self.node_of(st, sub) else { return false };
        let node = &mut self.nodes[n as usize];
        if position > node.grant {
            node.grant = position;
            node.owed_used = false;
            self.activate(n);
        }
        true
    }

    /// What `peer`'s subscription to stream `id` holds, for diagnostics
    /// (tests, the simulator, a stuck subscriber).
    pub fn subscription(&self, peer: Peer, id: u64) -> Option<Subscription> {
        let (st, sub) = (self.stream_slot(id)?, self.subscriber_slot(peer)?);
        let node = self.nodes[self.node_of(st, sub)? as usize];
        let next_end = (node.cursor != crate::NIL).then(|| self.pool.get(node.cursor).end_pos);
        Some(Subscription { grant: node.grant, next_end, scheduled: node.act_class != crate::INACTIVE })
    }

    /// Stream `id`'s position: payload bytes it accepted since it was
    /// created.
    pub fn position(&self, id: u64) -> Option<u64> {
        self.stream_slot(id).map(|s| self.streams[s as usize].tail_pos)
    }

    /// Payload bytes queued for stream `id` (for tests and the CLI).
    pub fn queued_bytes(&self, id: u64) -> u32 {
        self.stream_slot(id).map_or(0, |s| self.streams[s as usize].queued_bytes)
    }

    /// Deliveries still queued: the sum of every queued message's
    /// remaining subscriptions (walks the queues; tests and shutdown only).
    pub fn pending_deliveries(&self) -> u64 {
        self.streams
            .iter()
            .filter(|s| s.q_head != NIL)
            .map(|s| {
                let (mut m, mut sum) = (s.q_head, 0u64);
                while m != NIL {
                    sum += u64::from(self.pool.get(m).refs);
                    m = self.pool.get(m).next;
                }
                sum
            })
            .sum()
    }
}
