//! (Un)subscriptions of ranges, done in bounded slices per loop turn.
//!
//! A range may cover up to 65,536 ids and every worker walks all of them to
//! find the ones it owns (the shard is a hash of the id). Walking them in
//! one go would stall the worker's loop for that long, so each worker keeps
//! its shares in a bounded queue of jobs and walks at most
//! [`RANGE_IDS_PER_TURN`] ids per loop turn over all of them.
//!
//! A SUBSCRIBE share is all or nothing: it is first checked against the
//! free tables (a pass over its ids), then applied (a second pass). Jobs run
//! one at a time in arrival order and nothing else adds subscriptions, so
//! the room checked in the first pass is still free in the second.

use crate::counts::ProtoCounter as C;
use crate::engine::{full_code, peer_of, Engine};
use crate::{Io, Now, RangeOp, RangeWork};
use ms_streams::Room;
use ms_wire::control::{self, ErrorCode, ErrorEntry};
use ms_wire::shard::owner;
use std::collections::VecDeque;

/// Range shares a worker holds in progress; more are refused with ERROR
/// Busy (the client retries).
pub const RANGE_JOBS_MAX: usize = 64;

/// Stream ids all range work of one worker walks per loop turn.
pub const RANGE_IDS_PER_TURN: u32 = 8192;

const _: () = assert!(RANGE_IDS_PER_TURN as u64 <= ms_wire::control::RANGE_IDS_MAX);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Counting what a SUBSCRIBE needs.
    Check(Room),
    /// Changing the tables.
    Apply,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    work: RangeWork,
    /// Next id to walk.
    next: u64,
    pass: Pass,
    /// Subscriptions added or removed so far.
    changed: u32,
}

/// A worker's range shares in progress.
pub(crate) struct Jobs {
    queue: VecDeque<Job>,
    /// Ids still to walk this turn.
    budget: u32,
}

impl Jobs {
    pub(crate) fn new() -> Jobs {
        Jobs { queue: VecDeque::with_capacity(RANGE_JOBS_MAX), budget: RANGE_IDS_PER_TURN }
    }

    pub(crate) fn new_turn(&mut self) {
        self.budget = RANGE_IDS_PER_TURN;
    }

    /// Some range work is queued.
    pub(crate) fn pending(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// What walking a slice of a job came to.
enum Step {
    /// Budget used up; the job goes on next turn.
    Paused,
    /// The job is finished (answered).
    Done,
}

impl<B> Engine<B> {
    /// Queues this worker's share of a range and walks what this turn's
    /// budget allows.
    pub(crate) fn start_range<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, work: RangeWork) {
        if self.jobs.queue.len() == RANGE_JOBS_MAX {
            self.counts.add(C::RangeBusy, 1);
            let part = self.part_of(&work);
            let e = ErrorEntry { request: work.request, code: ErrorCode::Busy, part, parts: work.parts, detail: 0 };
            self.reply_error(io, work.from.addr, e);
            return;
        }
        // The request's source MAC is the subscriber's when it is on-link:
        // DELIVERs from this worker then need no ARP round trip.
        io.learn(work.from, now);
        let pass = match work.op {
            RangeOp::Subscribe => Pass::Check(Room::default()),
            RangeOp::Unsubscribe => Pass::Apply,
        };
        self.jobs.queue.push_back(Job { work, next: work.first, pass, changed: 0 });
        self.run_jobs(io, now);
    }

    /// Walks queued jobs, oldest first, within this turn's id budget.
    pub(crate) fn run_jobs<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now) {
        while let Some(mut job) = self.jobs.queue.front().copied() {
            let step = self.step(io, now, &mut job);
            match step {
                Step::Paused => {
                    self.jobs.queue[0] = job;
                    return;
                }
                Step::Done => {
                    self.jobs.queue.pop_front();
                }
            }
        }
    }

    /// This worker's part number in the answer to `work`.
    fn part_of(&self, work: &RangeWork) -> u16 {
        if work.parts == 1 {
            0
        } else {
            self.cfg.me as u16
        }
    }

    /// Walks one job's ids until the budget runs out or the job ends.
    fn step<I: Io<Buf = B>>(&mut self, io: &mut I, now: Now, job: &mut Job) -> Step {
        let w = job.work;
        let peer = peer_of(w.from.addr);
        let (single, me, workers) = (w.parts == 1, self.cfg.me, self.cfg.workers);
        while job.next <= w.last {
            if self.jobs.budget == 0 {
                if job.pass == Pass::Apply {
                    // DELIVERs for what is subscribed so far go out between slices.
                    self.note_addr(&w);
                }
                return Step::Paused;
            }
            self.jobs.budget -= 1;
            let id = job.next;
            job.next = job.next.saturating_add(1);
            // A single stream is all this worker's (it owns it); of a
            // range, only the ids it owns.
            if !(single || owner(id, workers) == me) {
                if id == w.last {
                    break;
                }
                continue;
            }
            if let Err(e) = self.walk_one(job, peer, id, now) {
                self.counts.add(C::SubscribeRefused, 1);
                let entry = ErrorEntry {
                    request: w.request,
                    code: full_code(e),
                    part: self.part_of(&w),
                    parts: w.parts,
                    detail: id,
                };
                self.reply_error(io, w.from.addr, entry);
                return Step::Done;
            }
            if id == w.last {
                break; // u64::MAX as last: next cannot go past it
            }
        }
        if let Pass::Check(_) = job.pass {
            // Everything fits: apply from the start.
            job.pass = Pass::Apply;
            job.next = w.first;
            return self.step(io, now, job);
        }
        self.finish(io, job);
        Step::Done
    }

    /// Checks or applies one id of a job.
    fn walk_one(&mut self, job: &mut Job, peer: ms_streams::Peer, id: u64, now: Now) -> Result<(), ms_streams::Full> {
        match (job.pass, job.work.op) {
            (Pass::Check(mut need), _) => {
                let r = self.streams.add_need(peer, id, &mut need);
                job.pass = Pass::Check(need);
                r
            }
            (Pass::Apply, RangeOp::Subscribe) => {
                let new = self.streams.subscribe_with_credit(peer, id, now.ms, job.work.initial_credit)?;
                job.changed += u32::from(new);
                Ok(())
            }
            (Pass::Apply, RangeOp::Unsubscribe) => {
                job.changed += u32::from(self.streams.unsubscribe(peer, id));
                Ok(())
            }
        }
    }

    /// Notes where the subscriber's DELIVERs go (the link it asked on).
    fn note_addr(&mut self, w: &RangeWork) {
        if let Some(slot) = self.streams.subscriber(peer_of(w.from.addr)) {
            self.fan.set_addr(slot, w.from.addr);
        }
    }

    /// Notes where the subscriber is served and acknowledges the share.
    fn finish<I: Io<Buf = B>>(&mut self, io: &mut I, job: &Job) {
        let w = job.work;
        self.note_addr(&w);
        let counter = if w.op == RangeOp::Subscribe { C::Subscriptions } else { C::Unsubscriptions };
        self.counts.add(counter, u64::from(job.changed));
        let ack = self.ack(w.request, self.part_of(&w), w.parts, job.changed);
        self.reply(io, w.from.addr, |b| control::emit_acks(b, &[ack]));
    }
}
