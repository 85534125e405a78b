//! Per-worker stream state: which streams exist, who subscribes to them,
//! and each stream's next sequence number.
//!
//! Everything is allocated once, in [`Streams::new`], with the bounds of
//! [`Limits`]; nothing allocates afterwards. A full table refuses with a
//! typed error that the dataplane turns into an ERROR frame and a counter.
//!
//! Layout (bytes per stream, see docs/streams.md): a 48-byte control block
//! in a slab plus 8 bytes of index (two 4-byte buckets per stream at most
//! half full) = 56 bytes. Subscriptions are 56-byte nodes, linked both into
//! their stream's list (fan-out) and their subscriber's list (expiry),
//! carrying the delivery cursor, the credit and the scheduler links: an idle
//! stream with one subscriber costs 112 bytes.
//!
//! Published messages are queued once per stream in a bounded [`pool`]
//! and sent to each subscription by a deficit-round-robin scheduler with
//! strict priority classes ([`sched`]); flow control, stream-queue limits,
//! slow-subscriber policies and memory-budget degradation are in [`flow`].
//!
//! Streams exist while they have subscribers: the first subscription
//! creates one (sequence 0), the last one leaving frees it. Messages for a
//! stream nobody subscribes to cost a lookup and are counted, nothing more.

#![warn(missing_docs)]

mod flow;
pub mod index;
mod pool;
mod run;
mod sched;
pub mod tunables;

pub use flow::{
    DropReason, Notice, Outcome, Refusal, Tally, AFFECTED_MAX, DROP_REASONS, MSG_CHARGE_BYTES, NOTICES_MAX, REFUSALS,
};
pub use pool::{CHUNK_BYTES, SLOT_BYTES};
pub use run::RunMsg;
pub use sched::{Out, Served};

pub use tunables::{class_of, Policies, Policy, PolicyRange, Tunables, CLASSES, CLASS_NAMES};

use index::Index;

const NIL: u32 = u32::MAX;

/// Bounds, fixed at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams this worker may hold.
    pub streams: u32,
    /// Distinct subscriber addresses.
    pub subscribers: u32,
    /// (stream, subscriber) pairs.
    pub subscriptions: u32,
    /// A subscriber not heard from for this long expires.
    pub lifetime_ms: u64,
    /// Bytes of queued messages this worker may hold (its share of the
    /// global memory budget), allocated up front as a pool.
    pub queue_bytes: u64,
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// No free stream block.
    Streams,
    /// No free subscriber record.
    Subscribers,
    /// No free subscription node.
    Subscriptions,
}

/// A subscription's credit and progress (see [`Streams::subscription`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Messages ending at or before this stream position may be sent.
    pub grant: u64,
    /// End position of the next message to send, if one is queued.
    pub next_end: Option<u64>,
    /// In the scheduler's active lists.
    pub scheduled: bool,
}

/// Table entries a subscription request needs (see [`Streams::add_need`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Room {
    /// New streams.
    pub streams: u32,
    /// New (stream, subscriber) pairs.
    pub subscriptions: u32,
}

/// A subscriber's address: IPv4 and UDP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Peer {
    /// IPv4 address as a big-endian u32.
    pub ip: u32,
    /// UDP port.
    pub port: u16,
}

impl Peer {
    fn key(self) -> u64 {
        u64::from(self.ip) << 16 | u64::from(self.port)
    }
}

/// A stream's control block (48 bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Stream {
    id: u64,
    next_seq: u64,
    /// Bytes of payload accepted into the stream since it was created.
    tail_pos: u64,
    /// First subscription node, or NIL.
    head: u32,
    subscribers: u32,
    /// Oldest and newest queued message, or NIL.
    q_head: u32,
    q_tail: u32,
    /// Bytes queued (held for at least one subscription): payloads plus
    /// [`MSG_CHARGE_BYTES`] per message.
    queued_bytes: u32,
    /// Free-list link when unused.
    next_free: u32,
}

const _: () = assert!(std::mem::size_of::<Stream>() == 48);

const FREE_STREAM: Stream = Stream {
    id: 0,
    next_seq: 0,
    tail_pos: 0,
    head: NIL,
    subscribers: 0,
    q_head: NIL,
    q_tail: NIL,
    queued_bytes: 0,
    next_free: NIL,
};

/// A subscriber record.
#[derive(Debug, Clone, Copy)]
struct Subscriber {
    peer: Peer,
    last_seen_ms: u64,
    head: u32,
    subscriptions: u32,
    next_free: u32,
    used: bool,
}

/// A (stream, subscriber) pair (56 bytes), in two doubly linked lists,
/// with its delivery cursor, credit and scheduler state.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    /// Credit: messages ending at or before this stream position may be sent.
    grant: u64,
    stream: u32,
    subscriber: u32,
    s_prev: u32,
    s_next: u32,
    u_prev: u32,
    u_next: u32,
    /// Next message to send, or NIL when caught up with the stream.
    cursor: u32,
    /// Links in the active list of class `act_class`.
    act_prev: u32,
    act_next: u32,
    /// Deficit round robin: bytes this subscription may still send in
    /// the current round.
    deficit: u32,
    /// Active-list class, or [`INACTIVE`].
    act_class: u8,
    /// A policy skipped this subscription past messages it had no credit
    /// for, and nothing was sent to it since: its next message may go past
    /// the grant. A subscriber grants as it receives, so one whose grant
    /// was on its way while the policy skipped would otherwise be left
    /// behind the gap for good.
    owed: bool,
    /// A message went past the grant and no grant has come since: a
    /// subscriber that stopped reading gets no more than that one.
    owed_used: bool,
}

impl Node {
    /// Whether `msg_end` may be sent now: within the grant, or the message
    /// owed after a skip.
    #[inline]
    fn may_send(&self, msg_end: u64) -> bool {
        msg_end <= self.grant || (self.owed && !self.owed_used)
    }
}

const _: () = assert!(std::mem::size_of::<Node>() == 56);

/// `Node::act_class` of a subscription in no active list.
const INACTIVE: u8 = u8::MAX;

const FREE_NODE: Node = Node {
    grant: 0,
    stream: NIL,
    subscriber: NIL,
    s_prev: NIL,
    s_next: NIL,
    u_prev: NIL,
    u_next: NIL,
    cursor: NIL,
    act_prev: NIL,
    act_next: NIL,
    deficit: 0,
    act_class: INACTIVE,
    owed: false,
    owed_used: false,
};

/// Gauges of a worker's stream state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Streams with at least one subscriber.
    pub streams: u32,
    /// Subscriber addresses.
    pub subscribers: u32,
    /// (stream, subscriber) pairs.
    pub subscriptions: u32,
    /// Messages queued (each stored once, whatever its fan-out).
    pub queued_messages: u32,
    /// Bytes of the message pool in use.
    pub pool_used_bytes: u64,
    /// Memory degradation step now in force, 0..=3 (see [`flow`]).
    pub level: u8,
}

/// One worker's streams, subscribers, subscriptions and queued messages.
#[derive(Debug)]
pub struct Streams {
    limits: Limits,
    tun: Tunables,
    streams: Vec<Stream>,
    stream_index: Index,
    stream_free: u32,
    subs: Vec<Subscriber>,
    sub_index: Index,
    sub_free: u32,
    nodes: Vec<Node>,
    node_free: u32,
    gauges: Gauges,
    sweep_cursor: u32,
    relieve_cursor: u32,
    pool: pool::Pool,
    sched: sched::Sched,
    tally: flow::Tally,
    notices: flow::Notices,
}

impl Streams {
    /// Allocates every table for `limits`, with default tunables.
    pub fn new(limits: Limits) -> Streams {
        let free_chain = |n: u32, i: u32| if i + 1 < n { i + 1 } else { NIL };
        let streams =
            (0..limits.streams).map(|i| Stream { next_free: free_chain(limits.streams, i), ..FREE_STREAM }).collect();
        let subs = (0..limits.subscribers)
            .map(|i| Subscriber {
                peer: Peer { ip: 0, port: 0 },
                last_seen_ms: 0,
                head: NIL,
                subscriptions: 0,
                next_free: free_chain(limits.subscribers, i),
                used: false,
            })
            .collect();
        let nodes = (0..limits.subscriptions)
            .map(|i| Node { s_next: free_chain(limits.subscriptions, i), ..FREE_NODE })
            .collect();
        let head = |n: u32| if n > 0 { 0 } else { NIL };
        Streams {
            limits,
            tun: Tunables::default(),
            streams,
            stream_index: Index::with_capacity(limits.streams as usize),
            stream_free: head(limits.streams),
            subs,
            sub_index: Index::with_capacity(limits.subscribers as usize),
            sub_free: head(limits.subscribers),
            nodes,
            node_free: head(limits.subscriptions),
            gauges: Gauges::default(),
            sweep_cursor: 0,
            relieve_cursor: 0,
            pool: pool::Pool::with_budget(limits.queue_bytes),
            sched: sched::Sched::default(),
            tally: flow::Tally::default(),
            notices: flow::Notices::default(),
        }
    }

    /// Changes the subscriber lifetime (a live config change).
    pub fn set_lifetime_ms(&mut self, ms: u64) {
        self.limits.lifetime_ms = ms;
    }

    /// Takes new scheduling, flow-control and budget settings (a live
    /// config change; applies from the next message).
    pub fn set_tunables(&mut self, tun: Tunables) {
        self.tun = tun;
    }

    /// The settings in force.
    pub fn tunables(&self) -> &Tunables {
        &self.tun
    }

    /// The bounds this table was built with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Current gauges.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            queued_messages: self.pool.messages(),
            pool_used_bytes: self.pool.used_bytes(),
            level: self.level(),
            ..self.gauges
        }
    }

    /// Bytes allocated for streams (blocks + index), for docs and tests.
    pub fn stream_bytes(&self) -> usize {
        self.streams.len() * std::mem::size_of::<Stream>() + self.stream_index.bytes()
    }

    /// Bytes allocated for subscriptions (one node each).
    pub fn subscription_bytes(&self) -> usize {
        self.nodes.len() * std::mem::size_of::<Node>()
    }

    /// Bytes of the message pool (the worker's share of the budget).
    pub fn pool_bytes(&self) -> u64 {
        self.pool.bytes()
    }

    fn stream_slot(&self, id: u64) -> Option<u32> {
        let streams = &self.streams;
        self.stream_index.find(id, |s| streams[s as usize].id)
    }

    fn subscriber_slot(&self, peer: Peer) -> Option<u32> {
        let subs = &self.subs;
        self.sub_index.find(peer.key(), |s| subs[s as usize].peer.key())
    }

    /// The subscriber slot of `peer`, if it has any subscription here.
    pub fn subscriber(&self, peer: Peer) -> Option<u32> {
        self.subscriber_slot(peer)
    }

    /// The address of subscriber slot `slot`.
    pub fn peer(&self, slot: u32) -> Peer {
        self.subs[slot as usize].peer
    }

    /// Number of subscriber slots (for per-subscriber side tables).
    pub fn subscriber_capacity(&self) -> usize {
        self.subs.len()
    }

    fn find_or_add_subscriber(&mut self, peer: Peer, now_ms: u64) -> Result<u32, Full> {
        if let Some(s) = self.subscriber_slot(peer) {
            return Ok(s);
        }
        let slot = self.sub_free;
        if slot == NIL {
            return Err(Full::Subscribers);
        }
        let rec = &mut self.subs[slot as usize];
        self.sub_free = rec.next_free;
        *rec = Subscriber { peer, last_seen_ms: now_ms, head: NIL, subscriptions: 0, next_free: NIL, used: true };
        let subs = &self.subs;
        self.sub_index.insert(peer.key(), slot, |s| subs[s as usize].peer.key());
        self.gauges.subscribers += 1;
        Ok(slot)
    }

    fn free_subscriber(&mut self, slot: u32) {
        let peer = self.subs[slot as usize].peer;
        let subs = &self.subs;
        let indexed = self.sub_index.remove(peer.key(), |s| subs[s as usize].peer.key());
        // Kept in release: a slot freed while the index still maps a peer to
        // it (or to another slot) would hand one record to two peers. O(1),
        // once per subscriber that goes away.
        assert_eq!(indexed, Some(slot), "subscriber index and table disagree");
        let rec = &mut self.subs[slot as usize];
        rec.used = false;
        rec.next_free = self.sub_free;
        self.sub_free = slot;
        self.gauges.subscribers -= 1;
    }

    fn find_or_add_stream(&mut self, id: u64) -> Result<u32, Full> {
        if let Some(s) = self.stream_slot(id) {
            return Ok(s);
        }
        let slot = self.stream_free;
        if slot == NIL {
            return Err(Full::Streams);
        }
        let block = &mut self.streams[slot as usize];
        self.stream_free = block.next_free;
        *block = Stream { id, ..FREE_STREAM };
        let streams = &self.streams;
        self.stream_index.insert(id, slot, |s| streams[s as usize].id);
        self.gauges.streams += 1;
        Ok(slot)
    }

    fn free_stream(&mut self, slot: u32) {
        // Kept in release (O(1), once per stream that goes away): a freed
        // stream still holding messages would leak their pool slots, and a
        // slot the index still maps would be shared by two streams.
        assert_eq!(self.streams[slot as usize].q_head, NIL, "a freed stream holds no message");
        debug_assert_eq!(self.streams[slot as usize].queued_bytes, 0, "a freed stream counts no queued byte");
        let id = self.streams[slot as usize].id;
        let streams = &self.streams;
        let indexed = self.stream_index.remove(id, |s| streams[s as usize].id);
        assert_eq!(indexed, Some(slot), "stream index and table disagree");
        self.streams[slot as usize].next_free = self.stream_free;
        self.stream_free = slot;
        self.gauges.streams -= 1;
    }

    /// Subscribes `peer` to stream `id` and refreshes the peer. Returns
    /// whether the subscription is new. A new subscription receives the
    /// messages published from now on, with the initial credit of the
    /// tunables. On `Err` nothing changed.
    pub fn subscribe(&mut self, peer: Peer, id: u64, now_ms: u64) -> Result<bool, Full> {
        self.subscribe_with_credit(peer, id, now_ms, 0)
    }

    /// Like [`Streams::subscribe`], with the initial credit the subscriber
    /// asked for: at most the tunables' `initial_credit_bytes`, which 0
    /// stands for.
    pub fn subscribe_with_credit(&mut self, peer: Peer, id: u64, now_ms: u64, credit: u32) -> Result<bool, Full> {
        if self.node_free == NIL && !self.is_subscribed(peer, id) {
            return Err(Full::Subscriptions);
        }
        let had_sub = self.subscriber_slot(peer).is_some();
        let sub = self.find_or_add_subscriber(peer, now_ms)?;
        let stream = match self.find_or_add_stream(id) {
            Ok(s) => s,
            Err(e) => {
                if !had_sub {
                    self.free_subscriber(sub);
                }
                return Err(e);
            }
        };
        // A refusal above changed nothing, not even the peer's last-seen time.
        self.subs[sub as usize].last_seen_ms = now_ms;
        if self.node_of(stream, sub).is_some() {
            return Ok(false);
        }
        let n = self.node_free;
        self.node_free = self.nodes[n as usize].s_next;
        let (s_head, u_head) = (self.streams[stream as usize].head, self.subs[sub as usize].head);
        let initial = match credit {
            0 => self.tun.initial_credit_bytes,
            asked => asked.min(self.tun.initial_credit_bytes),
        };
        let grant = self.streams[stream as usize].tail_pos + u64::from(initial);
        self.nodes[n as usize] = Node { grant, stream, subscriber: sub, s_next: s_head, u_next: u_head, ..FREE_NODE };
        if s_head != NIL {
            self.nodes[s_head as usize].s_prev = n;
        }
        if u_head != NIL {
            self.nodes[u_head as usize].u_prev = n;
        }
        self.streams[stream as usize].head = n;
        self.streams[stream as usize].subscribers += 1;
        self.subs[sub as usize].head = n;
        self.subs[sub as usize].subscriptions += 1;
        self.gauges.subscriptions += 1;
        Ok(true)
    }

    /// Subscribes `peer` to every stream of `ids`, all or nothing: first
    /// counts the streams, subscriber and subscriptions the whole set needs,
    /// and when any table cannot take them, changes nothing and returns
    /// which table is full and the first id that did not fit. Returns how
    /// many subscriptions are new. `credit` as in
    /// [`Streams::subscribe_with_credit`]. `ids` is walked twice (bounded by the
    /// caller: at most a range's share of one core).
    pub fn subscribe_many<I>(&mut self, peer: Peer, ids: I, now_ms: u64, credit: u32) -> Result<u32, (Full, u64)>
    where
        I: Iterator<Item = u64> + Clone,
    {
        self.check_room(peer, ids.clone())?;
        let mut added = 0;
        for id in ids {
            match self.subscribe_with_credit(peer, id, now_ms, credit) {
                Ok(new) => added += u32::from(new),
                // Unreachable after check_room; reported rather than assumed.
                Err(full) => return Err((full, id)),
            }
        }
        Ok(added)
    }

    /// Whether subscribing `peer` to all of `ids` fits the free tables.
    fn check_room(&self, peer: Peer, ids: impl Iterator<Item = u64>) -> Result<(), (Full, u64)> {
        let mut need = Room::default();
        for id in ids {
            self.add_need(peer, id, &mut need).map_err(|full| (full, id))?;
        }
        Ok(())
    }

    /// Adds what subscribing `peer` to `id` takes to `need`, and fails when
    /// the total no longer fits the free tables. A caller that checks a
    /// large range in slices (across loop turns) passes the same `need`
    /// each time; nothing else may subscribe meanwhile.
    pub fn add_need(&self, peer: Peer, id: u64, need: &mut Room) -> Result<(), Full> {
        let sub = self.subscriber_slot(peer);
        let stream = self.stream_slot(id);
        if let (Some(st), Some(sb)) = (stream, sub) {
            if self.node_of(st, sb).is_some() {
                return Ok(());
            }
        }
        if sub.is_none() && self.sub_free == NIL {
            return Err(Full::Subscribers);
        }
        need.streams += u32::from(stream.is_none());
        need.subscriptions += 1;
        if need.streams > self.limits.streams - self.gauges.streams {
            return Err(Full::Streams);
        }
        if need.subscriptions > self.limits.subscriptions - self.gauges.subscriptions {
            return Err(Full::Subscriptions);
        }
        Ok(())
    }

    fn is_subscribed(&self, peer: Peer, id: u64) -> bool {
        match (self.stream_slot(id), self.subscriber_slot(peer)) {
            (Some(st), Some(sub)) => self.node_of(st, sub).is_some(),
            _ => false,
        }
    }

    /// The node linking `stream` and `sub`: walks the shorter list.
    fn node_of(&self, stream: u32, sub: u32) -> Option<u32> {
        let by_stream = self.streams[stream as usize].subscribers <= self.subs[sub as usize].subscriptions;
        let mut n = if by_stream { self.streams[stream as usize].head } else { self.subs[sub as usize].head };
        while n != NIL {
            let node = &self.nodes[n as usize];
            if node.stream == stream && node.subscriber == sub {
                return Some(n);
            }
            n = if by_stream { node.s_next } else { node.u_next };
        }
        None
    }

    /// Unlinks node `n` from both lists and frees it, dropping (as
    /// `reason`) what it had still to send; frees its stream and
    /// subscriber when they become empty.
    fn remove_node(&mut self, n: u32, reason: DropReason) {
        self.sched.deactivate(&mut self.nodes, n);
        self.release_pending(n, reason);
        let node = self.nodes[n as usize];
        if node.s_prev != NIL {
            self.nodes[node.s_prev as usize].s_next = node.s_next;
        } else {
            self.streams[node.stream as usize].head = node.s_next;
        }
        if node.s_next != NIL {
            self.nodes[node.s_next as usize].s_prev = node.s_prev;
        }
        if node.u_prev != NIL {
            self.nodes[node.u_prev as usize].u_next = node.u_next;
        } else {
            self.subs[node.subscriber as usize].head = node.u_next;
        }
        if node.u_next != NIL {
            self.nodes[node.u_next as usize].u_prev = node.u_prev;
        }
        self.nodes[n as usize] = Node { s_next: self.node_free, ..FREE_NODE };
        self.node_free = n;
        self.gauges.subscriptions -= 1;
        let st = &mut self.streams[node.stream as usize];
        st.subscribers -= 1;
        if st.subscribers == 0 {
            self.free_stream(node.stream);
        }
        let sub = &mut self.subs[node.subscriber as usize];
        sub.subscriptions -= 1;
        if sub.subscriptions == 0 {
            self.free_subscriber(node.subscriber);
        }
    }

    /// Removes `peer`'s subscription to `id`; returns whether it existed.
    /// Messages it had not been sent yet are dropped (counted).
    pub fn unsubscribe(&mut self, peer: Peer, id: u64) -> bool {
        let (Some(st), Some(sub)) = (self.stream_slot(id), self.subscriber_slot(peer)) else {
            return false;
        };
        match self.node_of(st, sub) {
            Some(n) => {
                self.remove_node(n, DropReason::Unsubscribed);
                true
            }
            None => false,
        }
    }

    /// Refreshes every subscription of `peer`; returns how many it has
    /// here, or `None` when it has none.
    pub fn heartbeat(&mut self, peer: Peer, now_ms: u64) -> Option<u32> {
        let s = self.subscriber_slot(peer)?;
        let rec = &mut self.subs[s as usize];
        rec.last_seen_ms = now_ms;
        Some(rec.subscriptions)
    }

    /// Hints the CPU to fetch the index bucket of stream `id`; call it for
    /// a whole datagram's messages before publishing them, so the lookups'
    /// cache misses overlap.
    #[inline]
    pub fn prefetch(&self, id: u64) {
        self.stream_index.prefetch(id);
    }

    /// Calls `f(subscriber_slot)` for every subscriber of stream `id`.
    pub fn subscribers_of(&self, id: u64, mut f: impl FnMut(u32)) {
        let Some(stream) = self.stream_slot(id) else { return };
        let mut n = self.streams[stream as usize].head;
        while n != NIL {
            let node = &self.nodes[n as usize];
            f(node.subscriber);
            n = node.s_next;
        }
    }

    /// Expires subscribers not heard from within the lifetime, looking at
    /// no more than `budget` subscriber slots and removing no more than
    /// [`EXPIRE_SUBSCRIPTIONS_MAX`] subscriptions per call (a bounded slice
    /// of work; successive calls sweep the whole table, and finish a
    /// subscriber with more subscriptions than that over several calls).
    /// Calls `on_expired` with each subscriber's slot and address once all
    /// of its state is freed, and returns how many expired.
    pub fn expire(&mut self, now_ms: u64, budget: u32, mut on_expired: impl FnMut(u32, Peer)) -> u32 {
        let cap = self.subs.len() as u32;
        let (mut expired, mut removals) = (0, EXPIRE_SUBSCRIPTIONS_MAX);
        for _ in 0..budget.min(cap) {
            let slot = self.sweep_cursor;
            let s = self.subs[slot as usize];
            if s.used && now_ms.saturating_sub(s.last_seen_ms) >= self.limits.lifetime_ms {
                removals -= self.remove_subscriptions(slot, removals);
                if self.subs[slot as usize].used {
                    break; // out of removals: this subscriber goes on next call
                }
                on_expired(slot, s.peer);
                expired += 1;
            }
            self.sweep_cursor = (slot + 1) % cap;
        }
        expired
    }

    /// Drops up to `max` subscriptions of subscriber `slot` (the last one
    /// frees the subscriber); returns how many.
    fn remove_subscriptions(&mut self, slot: u32, max: u32) -> u32 {
        let mut removed = 0;
        while removed < max && self.subs[slot as usize].used && self.subs[slot as usize].head != NIL {
            let n = self.subs[slot as usize].head;
            self.remove_node(n, DropReason::Expired);
            removed += 1;
        }
        removed
    }
}

/// Subscriptions one [`Streams::expire`] call removes at most.
pub const EXPIRE_SUBSCRIPTIONS_MAX: u32 = 1024;

/// Makes a freshly allocated table resident now. Zeroed allocations are
/// mapped lazily by the kernel, page by page on first write; touching one
/// element per page at startup means the process does not grow (or fault)
/// under load.
fn resident<T: Copy>(table: &mut [T]) {
    let per_page = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    for e in table.iter_mut().step_by(per_page) {
        // SAFETY: `e` is a valid, exclusive reference into the slice; the
        // volatile write of its own value keeps the store from being elided.
        unsafe { std::ptr::write_volatile(e, *e) };
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod cut_through_tests;

#[cfg(test)]
mod run_tests;
