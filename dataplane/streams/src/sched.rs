//! The scheduler: which subscription sends next.
//!
//! Subscriptions that have a message to send and the credit for it are
//! *active*, linked (intrusively, through their nodes) into the list of the
//! class of their next message. Classes are served strictly in order, with
//! a starvation guard; inside a class, deficit round robin by bytes
//! (Shreedhar & Varghese): each visit adds a quantum to the subscription's
//! deficit and sends while the next message fits in it. Every step is O(1)
//! per message and allocates nothing.

use crate::pool::Pool;
use crate::tunables::{class_of, CLASSES};
use crate::{DropReason, Node, Streams, INACTIVE, NIL};
use ms_wire::deliver::DeliveryMeta;

/// Active lists, one per class.
#[derive(Debug)]
pub(crate) struct Sched {
    head: [u32; CLASSES],
    tail: [u32; CLASSES],
    /// The head of this class already got its quantum for the current visit
    /// (a visit may span loop turns when the turn's budget runs out).
    visiting: [bool; CLASSES],
    /// Consecutive picks of a class while a lower class waited.
    streak: u32,
    /// Where the starvation guard looks first next time.
    guard_next: usize,
    active: u32,
}

impl Default for Sched {
    fn default() -> Self {
        Sched {
            head: [NIL; CLASSES],
            tail: [NIL; CLASSES],
            visiting: [false; CLASSES],
            streak: 0,
            guard_next: 1,
            active: 0,
        }
    }
}

impl Sched {
    /// Appends subscription `n` to the active list of `class`.
    pub fn push_tail(&mut self, nodes: &mut [Node], n: u32, class: usize) {
        debug_assert_eq!(nodes[n as usize].act_class, INACTIVE);
        let node = &mut nodes[n as usize];
        node.act_class = class as u8;
        node.act_prev = self.tail[class];
        node.act_next = NIL;
        match self.tail[class] {
            NIL => self.head[class] = n,
            t => nodes[t as usize].act_next = n,
        }
        self.tail[class] = n;
        self.active += 1;
    }

    /// Takes subscription `n` out of its active list (if in one) and resets
    /// its deficit, as DRR does for a queue that empties.
    pub fn deactivate(&mut self, nodes: &mut [Node], n: u32) {
        let node = nodes[n as usize];
        if node.act_class == INACTIVE {
            return;
        }
        let c = usize::from(node.act_class);
        if self.head[c] == n {
            self.visiting[c] = false;
        }
        match node.act_prev {
            NIL => self.head[c] = node.act_next,
            p => nodes[p as usize].act_next = node.act_next,
        }
        match node.act_next {
            NIL => self.tail[c] = node.act_prev,
            x => nodes[x as usize].act_prev = node.act_prev,
        }
        let node = &mut nodes[n as usize];
        (node.act_class, node.act_prev, node.act_next, node.deficit) = (INACTIVE, NIL, NIL, 0);
        self.active -= 1;
    }

    /// Ends the visit of class `c`'s head: it goes to the tail, keeping its
    /// deficit for its next turn.
    fn rotate(&mut self, nodes: &mut [Node], c: usize) {
        let n = self.head[c];
        let deficit = nodes[n as usize].deficit;
        self.deactivate(nodes, n);
        self.push_tail(nodes, n, c);
        nodes[n as usize].deficit = deficit;
    }

    /// The class to serve next: the first non-empty one, except that after
    /// `guard` consecutive picks while a lower class waits, a lower class
    /// (in rotation) gets one visit.
    fn pick(&mut self, guard: u32) -> Option<usize> {
        let top = (0..CLASSES).find(|&c| self.head[c] != NIL)?;
        if !(top + 1..CLASSES).any(|c| self.head[c] != NIL) {
            self.streak = 0;
            return Some(top);
        }
        if self.visiting[top] {
            return Some(top); // finish the visit already started
        }
        self.streak += 1;
        if self.streak <= guard {
            return Some(top);
        }
        self.streak = 0;
        let lower = CLASSES - top - 1;
        let start = self.guard_next.clamp(top + 1, CLASSES - 1);
        let c = (0..lower).map(|i| top + 1 + (start - top - 1 + i) % lower).find(|&c| self.head[c] != NIL)?;
        self.guard_next = if c + 1 < CLASSES { c + 1 } else { 1 };
        Some(c)
    }

    /// Subscriptions in an active list.
    pub fn active(&self) -> u32 {
        self.active
    }
}

/// One message to send to one subscriber, borrowed from the pool.
#[derive(Debug)]
pub struct Out<'a> {
    /// Its DELIVER entry header: stream, sequence number, end position,
    /// arrival time, class and flags.
    pub meta: DeliveryMeta,
    /// Payload length.
    pub len: usize,
    pub(crate) src: Src<'a>,
}

/// Where a message's payload is: stored in the pool, or still in the
/// PUBLISH it arrived in (cut-through, see [`Streams::publish_through`]).
#[derive(Debug)]
pub(crate) enum Src<'a> {
    Pool(&'a Pool, u32),
    Arrived(&'a [u8]),
}

impl Out<'_> {
    /// Copies the payload into `out`, which must be exactly `len` long.
    #[inline]
    pub fn copy_payload(&self, out: &mut [u8]) {
        match self.src {
            Src::Pool(pool, msg) => pool.copy_payload(msg, out),
            Src::Arrived(payload) => out.copy_from_slice(payload),
        }
    }
}

/// What one [`Streams::serve`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    /// Messages handed to `emit`.
    pub messages: u32,
    /// Their payload bytes.
    pub bytes: u64,
    /// `emit` refused a message (no buffer): try again next turn.
    pub stalled: bool,
    /// Subscriptions still have something to send.
    pub more: bool,
}

impl Streams {
    /// Puts subscription `n` in the active list of its next message's class
    /// if it has a message and the credit for it.
    pub(crate) fn activate(&mut self, n: u32) {
        let node = &self.nodes[n as usize];
        if node.act_class != INACTIVE || node.cursor == NIL {
            return;
        }
        let msg = self.pool.get(node.cursor);
        if node.may_send(msg.end_pos) {
            let c = class_of(msg.class);
            self.sched.push_tail(&mut self.nodes, n, c);
        }
    }

    /// Sends up to `budget` messages in scheduler order, calling
    /// `emit(subscriber_slot, message)` for each; `emit` returns false when
    /// it cannot take the message now (it stays queued).
    pub fn serve(&mut self, budget: u32, mut emit: impl FnMut(u32, &Out<'_>) -> bool) -> Served {
        let mut served = Served::default();
        // Two fields, not the whole (1.6 KB) tunables, on every turn.
        let (guard, quantum) = (self.tun.starvation_guard, self.tun.quantum_bytes);
        // Visits count against the budget too: with a quantum smaller than
        // the messages, a visit may only add to a deficit and rotate.
        let mut visits = 0u32;
        while served.messages < budget && visits < budget {
            visits += 1;
            let Some(c) = self.sched.pick(guard) else { break };
            let n = self.sched.head[c];
            if !self.sched.visiting[c] {
                self.sched.visiting[c] = true;
                let node = &mut self.nodes[n as usize];
                node.deficit = node.deficit.saturating_add(quantum);
            }
            if !self.visit(n, c, budget, &mut served, &mut emit) {
                served.stalled = true;
                break;
            }
        }
        served.more = self.sched.active() > 0;
        served
    }

    /// Sends from subscription `n` (head of class `c`) while its deficit,
    /// credit and the turn's budget allow. False when `emit` refused.
    fn visit(
        &mut self,
        n: u32,
        c: usize,
        budget: u32,
        served: &mut Served,
        emit: &mut impl FnMut(u32, &Out<'_>) -> bool,
    ) -> bool {
        while served.messages < budget {
            let node = self.nodes[n as usize];
            if node.cursor == NIL {
                self.sched.deactivate(&mut self.nodes, n);
                return true;
            }
            let msg = *self.pool.get(node.cursor);
            if !node.may_send(msg.end_pos) || class_of(msg.class) != c {
                // Out of credit, or the next message belongs in another class.
                self.sched.deactivate(&mut self.nodes, n);
                self.activate(n);
                return true;
            }
            if u32::from(msg.len) > node.deficit {
                self.sched.rotate(&mut self.nodes, c);
                return true;
            }
            let meta = DeliveryMeta {
                stream: self.streams[node.stream as usize].id,
                seq: msg.seq,
                position: msg.end_pos,
                timestamp_ns: msg.timestamp_ns,
                class: msg.class,
                flags: msg.flags,
            };
            let out = Out { meta, len: usize::from(msg.len), src: Src::Pool(&self.pool, node.cursor) };
            if !emit(node.subscriber, &out) {
                return false;
            }
            self.nodes[n as usize].deficit -= u32::from(msg.len);
            self.note_sent(n, msg.end_pos);
            served.messages += 1;
            served.bytes += u64::from(msg.len);
            self.advance(n);
        }
        true
    }

    /// Subscription `n` was handed the message ending at `end_pos`.
    #[inline]
    pub(crate) fn note_sent(&mut self, n: u32, end_pos: u64) {
        let sent = &mut self.nodes[n as usize];
        // Past the gap now: the subscriber grants from here.
        sent.owed = false;
        sent.owed_used |= end_pos > sent.grant;
        self.tally.sent += 1;
    }

    /// Subscription `n` is done with its cursor message (sent or skipped).
    pub(crate) fn advance(&mut self, n: u32) {
        let m = self.nodes[n as usize].cursor;
        let msg = self.pool.get_mut(m);
        msg.refs -= 1;
        self.nodes[n as usize].cursor = msg.next;
        self.trim(self.nodes[n as usize].stream);
    }

    /// Frees the stream's oldest messages that nobody needs any more.
    pub(crate) fn trim(&mut self, st: u32) {
        let stream = &mut self.streams[st as usize];
        while stream.q_head != NIL && self.pool.get(stream.q_head).refs == 0 {
            let m = stream.q_head;
            let msg = *self.pool.get(m);
            stream.q_head = msg.next;
            stream.queued_bytes -= crate::flow::charge(u32::from(msg.len));
            self.pool.free(m);
        }
        if stream.q_head == NIL {
            stream.q_tail = NIL;
        }
    }

    /// Drops, as `reason`, everything subscription `n` has still to send.
    pub(crate) fn release_pending(&mut self, n: u32, reason: DropReason) {
        let node = self.nodes[n as usize];
        let mut m = node.cursor;
        let mut dropped = 0u32;
        while m != NIL {
            let msg = self.pool.get_mut(m);
            msg.refs -= 1;
            m = msg.next;
            dropped += 1;
        }
        self.nodes[n as usize].cursor = NIL;
        if dropped > 0 {
            let (id, peer) = (self.streams[node.stream as usize].id, self.subs[node.subscriber as usize].peer);
            self.tally.drop(reason, id, peer, dropped);
        }
        self.trim(node.stream);
    }
}
