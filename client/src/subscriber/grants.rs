//! Per-stream grants: what was granted, what waits to be sent, and which
//! grants heartbeats re-send (docs/flow-control.md).

use super::outbox::{Outbox, CREDITS_PER_DATAGRAM};
use crate::CreditRule;
use ms_wire::control::Credit;
use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;

/// Most CREDIT datagrams a heartbeat re-sends for grants that changed
/// recently, and as many again for grants a stream may be waiting on.
const HEARTBEAT_CREDIT_DATAGRAMS: usize = 4;

/// Flow-control state of one stream.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// End position of the last message consumed.
    last_position: Option<u64>,
    /// The latest grant (sent or queued).
    grant: Option<u64>,
    /// Heartbeat epoch in which `grant` last changed.
    changed: u64,
    /// Epoch whose `recent` list holds this stream.
    listed: Option<u64>,
    /// In `pending`, waiting to be sent.
    queued: bool,
    /// The largest grant before `grant`: a delivery ending past it shows
    /// that the appliance holds `grant` (it never sends past its grant),
    /// unless the subscription's initial credit, which the subscriber does
    /// not know, is larger still (a window below the appliance's
    /// `flow.initial_credit_bytes`, early in the subscription).
    floor: Option<u64>,
    /// No delivery has shown yet that the appliance holds `grant`: the
    /// stream may be waiting on it, so heartbeats keep re-sending it.
    waiting: bool,
    /// In the `waiting` list.
    in_waiting: bool,
}

/// Every stream's grants.
#[derive(Debug, Default)]
pub(super) struct Grants {
    flows: HashMap<u64, Flow>,
    /// Streams whose grant waits to be sent (each once while `queued`).
    pending: Vec<u64>,
    /// Heartbeats sent so far: grants changed in this epoch or the one
    /// before are re-sent with the next heartbeat.
    epoch: u64,
    /// Streams whose grant changed in this epoch, and in the one before.
    recent: Vec<u64>,
    recent_before: Vec<u64>,
    /// Streams that may be waiting on their latest grant (`Flow::waiting`;
    /// entries no longer waiting are dropped as heartbeats meet them), in
    /// the order heartbeats re-send them: each re-sent one goes to the back.
    waiting: VecDeque<u64>,
    /// CREDIT entries being put together (reused).
    batch: Vec<Credit>,
}

impl Grants {
    /// End position of the last message of `stream` consumed.
    pub fn last_position(&self, stream: u64) -> Option<u64> {
        self.flows.get(&stream).and_then(|f| f.last_position)
    }

    /// The latest grant for `stream`.
    pub fn last_grant(&self, stream: u64) -> Option<u64> {
        self.flows.get(&stream).and_then(|f| f.grant)
    }

    /// Grants waiting to be sent.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A delivery of `stream` ending at `position` arrived: past the
    /// previous grant, it shows that the appliance has the latest one.
    pub fn delivered(&mut self, stream: u64, position: u64) {
        if let Some(f) = self.flows.get_mut(&stream) {
            if f.waiting && f.floor.is_some_and(|floor| position > floor) {
                f.waiting = false;
            }
        }
    }

    /// The message of `stream` ending at `position` was consumed: queues
    /// the grant `rule` makes due, if any (`None`: manual mode).
    pub fn consumed(&mut self, stream: u64, position: u64, rule: Option<CreditRule>) {
        let f = self.flows.entry(stream).or_default();
        f.last_position = Some(position);
        let Some(want) = rule.and_then(|r| r.next_grant(position, f.grant)) else { return };
        let f = self.set(stream, want);
        if !f.queued {
            f.queued = true;
            self.pending.push(stream);
        }
    }

    /// Manual grants, sent at once (not queued): recorded as the streams'
    /// latest, which heartbeats re-send.
    pub fn manual(&mut self, grants: &[(u64, u64)], out: &mut Outbox) -> u64 {
        self.batch.clear();
        for &(stream, position) in grants {
            self.set(stream, position).queued = false;
            self.batch.push(Credit { stream, position });
        }
        out.credits(&self.batch)
    }

    /// Records `position` as the latest grant of `stream`, changed in this
    /// heartbeat epoch and not yet followed by a delivery.
    fn set(&mut self, stream: u64, position: u64) -> &mut Flow {
        let f = self.flows.entry(stream).or_default();
        f.floor = f.floor.max(f.grant);
        f.grant = Some(position);
        f.changed = self.epoch;
        f.waiting = true;
        if f.listed != Some(self.epoch) {
            f.listed = Some(self.epoch);
            self.recent.push(stream);
        }
        if !f.in_waiting {
            f.in_waiting = true;
            self.waiting.push_back(stream);
        }
        f
    }

    /// Queues the grants waiting to be sent, as many per datagram as fit;
    /// returns the CREDIT datagrams queued.
    pub fn flush(&mut self, out: &mut Outbox) -> u64 {
        let mut datagrams = 0;
        let mut done = 0;
        while done < self.pending.len() {
            self.batch.clear();
            let mut end = done;
            while end < self.pending.len() && self.batch.len() < CREDITS_PER_DATAGRAM {
                let s = self.pending[end];
                end += 1;
                if let Some(Flow { queued: true, grant: Some(position), .. }) = self.flows.get(&s) {
                    self.batch.push(Credit { stream: s, position: *position });
                }
            }
            datagrams += out.credits(&self.batch);
            for s in &self.pending[done..end] {
                if let Some(f) = self.flows.get_mut(s) {
                    f.queued = false;
                }
            }
            done = end;
        }
        self.pending.clear();
        datagrams
    }

    /// With a heartbeat: queues the latest grant of every stream whose
    /// grant changed in this epoch or the one before (oldest first, at most
    /// 4 datagrams), then those streams may still wait on (taking turns, 4
    /// datagrams more), and ends the epoch. Returns the datagrams queued.
    pub fn heartbeat(&mut self, out: &mut Outbox) -> u64 {
        let e = self.epoch;
        let limit = HEARTBEAT_CREDIT_DATAGRAMS * CREDITS_PER_DATAGRAM;
        self.batch.clear();
        let lists = [(&self.recent_before, e.wrapping_sub(1)), (&self.recent, e)];
        'lists: for (list, epoch) in lists {
            for s in list {
                if self.batch.len() >= limit {
                    break 'lists;
                }
                match self.flows.get_mut(s) {
                    Some(f) if f.changed == epoch => {
                        if let Some(position) = f.grant {
                            f.queued = false;
                            self.batch.push(Credit { stream: *s, position });
                        }
                    }
                    _ => {}
                }
            }
        }
        // Each entry is looked at once at most, a re-sent one goes to the back.
        let recent = self.batch.len();
        for _ in 0..self.waiting.len() {
            if self.batch.len() - recent >= limit {
                break;
            }
            let Some(s) = self.waiting.pop_front() else { break };
            let Some(f) = self.flows.get_mut(&s) else { continue };
            match f.grant {
                Some(position) if f.waiting => {
                    self.waiting.push_back(s);
                    // Changed in this epoch or the one before: the first
                    // pass re-sends it (unless it ran out of room).
                    if e.wrapping_sub(f.changed) > 1 {
                        f.queued = false;
                        self.batch.push(Credit { stream: s, position });
                    }
                }
                _ => f.in_waiting = false,
            }
        }
        // The epoch ends whether or not the re-send gets out.
        self.epoch = e.wrapping_add(1);
        std::mem::swap(&mut self.recent, &mut self.recent_before);
        self.recent.clear();
        out.credits(&self.batch)
    }

    /// The streams of `range` were subscribed (again): the appliance may
    /// have made them anew, so their positions and grants start again
    /// (kept where queued or listed for re-sending).
    pub fn restart(&mut self, range: RangeInclusive<u64>) {
        for (_, f) in self.flows.iter_mut().filter(|(s, _)| range.contains(s)) {
            *f = Flow { listed: f.listed, queued: f.queued, in_waiting: f.in_waiting, ..Flow::default() };
        }
    }

    /// The streams of `range` are no longer subscribed: nothing left to
    /// grant, so heartbeats stop re-sending their grants.
    pub fn stop(&mut self, range: RangeInclusive<u64>) {
        for (_, f) in self.flows.iter_mut().filter(|(s, _)| range.contains(s)) {
            f.grant = None;
        }
    }

    /// Like [`Grants::stop`] for one stream.
    pub fn stop_one(&mut self, stream: u64) {
        if let Some(f) = self.flows.get_mut(&stream) {
            f.grant = None;
        }
    }
}
