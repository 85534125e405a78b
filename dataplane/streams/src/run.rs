//! Cut-through for a run of consecutive messages of one stream.
//!
//! A publisher usually batches a stream, so one PUBLISH carries a run of
//! messages for the same stream. Everything [`Streams::publish_through`]
//! checks before it hands a message to its subscribers (the stream's slot,
//! the degradation level, the queue limit, the scheduler, the pool's room,
//! each subscription's credit) either cannot change while the run is cut
//! through, or changes monotonically (credit is a position, and the run's
//! last message ends furthest), so it is checked once for the whole run.
//! The messages then go out exactly as one `publish_through` call each
//! would send them: in order, message by message, to every subscription
//! in the stream's order, with the same sequence numbers and positions.

use crate::flow::charge;
use crate::sched::{Out, Src};
use crate::{Streams, NIL};
use ms_wire::deliver::DeliveryMeta;

/// One message of a run for [`Streams::publish_run_through`].
#[derive(Debug, Clone, Copy)]
pub struct RunMsg<'a> {
    /// Priority class.
    pub class: u8,
    /// Payload (at most [`ms_wire::PAYLOAD_MAX`] bytes).
    pub payload: &'a [u8],
}

impl Streams {
    /// Cut-through for `run`, consecutive messages of stream `id` that
    /// arrived at `timestamp_ns`: when nothing could make any of them take
    /// another way, each is handed to `emit` for every subscription, as
    /// [`Streams::publish_through`] would, with the checks made once.
    /// Returns how many of the run's messages were taken, from the front
    /// (0 when the run cannot be cut through as a whole, e.g. under
    /// degradation, with a backlog, or short of credit); the caller
    /// publishes the rest one by one. If `emit` refuses (no buffer), the
    /// refused message is stored for the subscriptions it did not reach and
    /// counted as taken; the messages after it are left to the caller,
    /// which then finds the stream's queue non-empty and queues them.
    pub fn publish_run_through(
        &mut self,
        id: u64,
        timestamp_ns: u64,
        run: &[RunMsg<'_>],
        mut emit: impl FnMut(u32, &Out<'_>) -> bool,
    ) -> usize {
        let Some(st) = self.run_may_cut_through(id, run) else { return 0 };
        let stream = self.streams[st as usize];
        let (mut seq, mut end_pos) = (stream.next_seq, stream.tail_pos);
        for (i, m) in run.iter().enumerate() {
            end_pos += m.payload.len() as u64;
            let meta = DeliveryMeta { stream: id, seq, position: end_pos, timestamp_ns, class: m.class, flags: 0 };
            let out = Out { meta, len: m.payload.len(), src: Src::Arrived(m.payload) };
            let mut n = stream.head;
            while n != NIL {
                let node = self.nodes[n as usize];
                if !emit(node.subscriber, &out) {
                    self.note_run(st, i as u64, end_pos - m.payload.len() as u64);
                    self.store_rest(st, n, m.class, timestamp_ns, m.payload);
                    return i + 1;
                }
                self.note_sent(n, end_pos);
                n = node.s_next;
            }
            seq += 1;
        }
        self.note_run(st, run.len() as u64, end_pos);
        run.len()
    }

    /// The stream slot when the whole run may be cut through: the checks
    /// of `admit` and `may_cut_through`, for the run's largest message and
    /// its last position.
    fn run_may_cut_through(&self, id: u64, run: &[RunMsg<'_>]) -> Option<u32> {
        if !self.tun.cut_through || self.sched.active() != 0 {
            return None;
        }
        let st = self.stream_slot(id)?;
        let stream = &self.streams[st as usize];
        // Levels from 2 shed by class; level 1 only shrinks the limit.
        let level = self.level();
        if stream.q_head != NIL || level >= 2 {
            return None;
        }
        let (longest, total) = run.iter().fold((0, 0), |(l, t), m| (m.payload.len().max(l), t + m.payload.len()));
        if stream.queued_bytes + charge(longest as u32) > self.stream_limit(level) || !self.pool.has_room(longest) {
            return None;
        }
        // Strictly within every grant: the one message owed past a grant
        // is left to `publish_through`, which knows when it is used.
        let end_pos = stream.tail_pos + total as u64;
        let mut n = stream.head;
        while n != NIL {
            let node = &self.nodes[n as usize];
            if end_pos > node.grant {
                return None;
            }
            n = node.s_next;
        }
        Some(st)
    }

    /// `taken` messages of stream slot `st`, ending at `end_pos`, were
    /// handed to every subscription.
    fn note_run(&mut self, st: u32, taken: u64, end_pos: u64) {
        let stream = &mut self.streams[st as usize];
        stream.next_seq += taken;
        stream.tail_pos = end_pos;
        self.tally.queued += taken;
        self.tally.fanout += u64::from(stream.subscribers) * taken;
    }
}
