//! The client library's own sans-IO state machines
//! (`ms_client::SubscriberState`, `ms_client::PublisherState`) behind
//! [`SimClient`], and the choice, per client, between them and the
//! simulator's models. The fake clock's milliseconds are the library's
//! time (a `Duration` since the run began); nothing here touches a socket.

use crate::clients::{payload, Handed, Handing, Id, Publisher, SeqCounts, SimClient, Subscriber};
use crate::{Mutation, Rng, Scenario};
use ms_client::{PublisherState, RequestOutcome, SubscriberState};
use ms_proto::Now;
use std::collections::VecDeque;
use std::time::Duration;

fn at(now: Now) -> Duration {
    Duration::from_millis(now.ms)
}

/// The world's clients (publishers first, then subscribers) as `sc.real`
/// says, each with its credit window (0 for a publisher).
pub(crate) fn clients(sc: &Scenario, rng: &mut Rng, now: Now) -> Vec<(Box<dyn SimClient>, u64)> {
    let mut out: Vec<(Box<dyn SimClient>, u64)> = Vec::new();
    for p in 0..sc.publishers {
        // Each stream once: a message's (publisher, stream, number) names it.
        let mut streams: Vec<u64> = (0..rng.range(1, 4)).map(|_| rng.below(sc.streams)).collect();
        streams.sort_unstable();
        streams.dedup();
        let (id, every_ms, r) = (p as u16, rng.range(1, 5), rng.fork());
        let c: Box<dyn SimClient> = if sc.real[p] {
            Box::new(LibPublisher::new(id, streams, every_ms, r))
        } else {
            Box::new(Publisher::new(id, streams, every_ms, r))
        };
        out.push((c, 0));
    }
    for s in 0..sc.subscribers {
        let first = rng.below(sc.streams);
        let last = first + rng.below((sc.streams - first).min(16));
        let window = rng.range(sc.window.0, sc.window.1);
        let rcvbuf = rng.range(sc.rcvbuf.0, sc.rcvbuf.1) as usize;
        let c: Box<dyn SimClient> = if sc.real[sc.publishers + s] {
            let t = LibTimers { retry_ms: sc.retry_ms, heartbeat_ms: sc.heartbeat_ms };
            Box::new(LibSubscriber::new(now, (first, last), window, rcvbuf, t, sc.mutation))
        } else {
            Box::new(Subscriber::new(first, last, s as u32 + 1, window, sc.retry_ms, sc.heartbeat_ms))
        };
        out.push((c, window));
    }
    out
}

/// `ms_client::PublisherState` (one socket), publishing numbered messages
/// as the model does: a burst every interval, flushed at once.
pub struct LibPublisher {
    st: PublisherState,
    id: u16,
    streams: Vec<u64>,
    next: Vec<u64>,
    every_ms: u64,
    next_ms: u64,
    rng: Rng,
    /// Messages refused by BACKPRESSURE.
    pub refused: u64,
}

impl LibPublisher {
    /// Publisher `id` on `streams`, a burst every `every_ms`.
    pub fn new(id: u16, streams: Vec<u64>, every_ms: u64, rng: Rng) -> LibPublisher {
        let next = vec![0; streams.len()];
        LibPublisher { st: PublisherState::new(1), id, streams, next, every_ms, next_ms: 0, rng, refused: 0 }
    }
}

impl SimClient for LibPublisher {
    fn on_datagram(&mut self, _now: Now, bytes: &[u8]) {
        self.refused += self.st.handle_datagram(bytes);
    }

    fn poll_transmit(&mut self, _now: Now, buf: &mut [u8]) -> Option<usize> {
        self.st.poll_transmit(buf).map(|t| t.len)
    }

    fn on_tick(&mut self, now: Now) {
        if now.ms < self.next_ms {
            return;
        }
        self.next_ms = now.ms + self.every_ms;
        // Several streams at once: the library batches them per shard, so
        // a PUBLISH may carry more than one stream.
        for _ in 0..self.rng.range(1, 16) {
            let i = self.rng.below(self.streams.len() as u64) as usize;
            let id = Id { publisher: self.id, stream: self.streams[i], seq: self.next[i] };
            self.next[i] += 1;
            let pad = if self.rng.chance(0.05) { self.rng.range(300, 1200) } else { self.rng.below(120) };
            let class = self.rng.below(4) as u8;
            let ok = self.st.publish(id.stream, class, &payload(id, pad as usize));
            assert!(ok.is_ok(), "the simulator publishes only valid messages: {ok:?}");
        }
        self.st.flush();
    }
}

/// A library subscriber's timers, from the scenario.
#[derive(Debug, Clone, Copy)]
pub struct LibTimers {
    /// How long each SUBSCRIBE send waits for its answers (ms).
    pub retry_ms: u64,
    /// Heartbeat interval (ms).
    pub heartbeat_ms: u64,
}

/// `ms_client::SubscriberState` with automatic credit, subscribed to one
/// range, and an application that takes every message at once. A
/// subscription the library gives up on (timed out or refused) is asked
/// for again, as an application would.
pub struct LibSubscriber {
    st: SubscriberState,
    range: (u64, u64),
    timeout: Duration,
    window: u64,
    applied: bool,
    resubscribes: u64,
    taken: u64,
    handed: VecDeque<Handing>,
    mutation: Mutation,
}

impl LibSubscriber {
    /// Subscribes to `range` at `now`, granting `window` bytes (at most the
    /// share of `rcvbuf` the library allows).
    pub fn new(
        now: Now,
        range: (u64, u64),
        window: u64,
        rcvbuf: usize,
        t: LibTimers,
        mutation: Mutation,
    ) -> LibSubscriber {
        let mut st = SubscriberState::new(at(now), Duration::from_millis(t.heartbeat_ms), rcvbuf);
        st.set_credit_window(Some(window));
        let timeout = Duration::from_millis(t.retry_ms);
        let mut s = LibSubscriber {
            st,
            range,
            timeout,
            window,
            applied: false,
            resubscribes: 0,
            taken: 0,
            handed: VecDeque::new(),
            mutation,
        };
        s.subscribe(now);
        s
    }

    fn subscribe(&mut self, now: Now) {
        let r = self.st.subscribe(at(now), self.range.0, self.range.1, self.timeout);
        debug_assert!(r.is_ok(), "first <= last by construction");
    }

    /// After every call into the state: the application takes every
    /// message, then the outcome of the request and any resubscription
    /// (neither comes with messages, so this is the library's order).
    fn after(&mut self, now: Now) {
        while let Some(d) = self.st.poll_delivery() {
            self.taken += 1;
            let nth = |n: u32| n > 0 && self.taken % u64::from(n) == 0;
            match self.mutation {
                Mutation::SkipDelivery(n) if nth(n) => continue,
                Mutation::GrantPastWindow(n) if nth(n) => {
                    self.st.grant(&[(d.stream, d.position + 2 * self.window)]);
                }
                _ => {}
            }
            let h = Handed { stream: d.stream, seq: d.seq, position: d.position };
            self.handed.push_back(Handing::Message(h));
        }
        let restart = Handing::Restart { first: self.range.0, last: self.range.1 };
        match self.st.poll_answer() {
            Some((_, RequestOutcome::Applied(_))) => {
                self.applied = true;
                self.handed.push_back(restart.clone());
            }
            Some(_) => self.subscribe(now),
            None => {}
        }
        let r = self.st.stats().resubscribes;
        if r != self.resubscribes {
            self.resubscribes = r;
            self.handed.push_back(restart);
        }
    }
}

impl SimClient for LibSubscriber {
    fn on_datagram(&mut self, now: Now, bytes: &[u8]) {
        self.st.handle_datagram(at(now), bytes);
        self.after(now);
    }

    fn poll_transmit(&mut self, _now: Now, buf: &mut [u8]) -> Option<usize> {
        self.st.poll_transmit(buf)
    }

    fn on_tick(&mut self, now: Now) {
        if self.st.poll_timeout().is_some_and(|t| at(now) >= t) {
            self.st.handle_timeout(at(now));
        }
        self.after(now);
    }

    fn poll_handed(&mut self) -> Option<Handing> {
        self.handed.pop_front()
    }

    fn is_settled(&self) -> bool {
        self.applied
    }

    fn counts(&self) -> Option<SeqCounts> {
        let s = self.st.stats();
        Some(SeqCounts { received: s.received, out_of_order: s.out_of_order, lost: s.lost })
    }
}
