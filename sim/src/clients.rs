//! Sans-IO client models: time and datagrams in, datagrams out. The world
//! drives them through [`SimClient`], as it drives the client library's
//! own state machines (`crate::library`).

use crate::Rng;
use ms_proto::Now;
use ms_wire::control::{self, Control, Credit, RangeRequest};
use ms_wire::publish::PublishBuilder;
use ms_wire::{Frame, FrameType};
use std::collections::{BTreeMap, VecDeque};

/// CREDIT entries per datagram.
const CREDITS_PER_DATAGRAM: usize = 91;

/// A client as the simulator drives it.
pub trait SimClient {
    /// A datagram from the appliance arrived.
    fn on_datagram(&mut self, now: Now, bytes: &[u8]);
    /// The next datagram to send, written into `buf`; its length.
    fn poll_transmit(&mut self, now: Now, buf: &mut [u8]) -> Option<usize>;
    /// Time passed: timers fire here.
    fn on_tick(&mut self, now: Now);
    /// What the subscriber handed its application since the last call, in
    /// the order it did.
    fn poll_handed(&mut self) -> Option<Handing> {
        None
    }
    /// True when nothing the client asked for is unanswered (a subscriber:
    /// every part of its SUBSCRIBE acknowledged).
    fn is_settled(&self) -> bool {
        true
    }
    /// A subscriber that hands over every copy of a message that arrives,
    /// as it arrives, and counts what is out of order (the library's):
    /// its counts. `None` for one that drops duplicates (the model).
    fn counts(&self) -> Option<SeqCounts> {
        None
    }
}

/// What a subscriber's application saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handing {
    /// A message.
    Message(Handed),
    /// The subscriber started the sequence state of streams
    /// `first..=last` again (its SUBSCRIBE was answered, or made again):
    /// what it knew of their sequence numbers is forgotten.
    Restart {
        /// First stream.
        first: u64,
        /// Last stream.
        last: u64,
    },
}

/// A library subscriber's totals (`ms_client::SubscriberStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqCounts {
    /// Messages received (and handed over).
    pub received: u64,
    /// Messages at or below a sequence number already seen.
    pub out_of_order: u64,
    /// The sum of forward jumps in sequence numbers.
    pub lost: u64,
}

/// A message a subscriber handed to its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handed {
    /// Stream id.
    pub stream: u64,
    /// The stream's sequence number.
    pub seq: u64,
    /// The stream's position at its end.
    pub position: u64,
}

/// Who published a message: carried in its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    /// Publisher index.
    pub publisher: u16,
    /// Stream id.
    pub stream: u64,
    /// The publisher's own count of its messages of this stream.
    pub seq: u64,
}

const ID_LEN: usize = 2 + 8 + 8;

/// A payload naming `id`, followed by `pad` filler bytes derived from it
/// (so a corrupted or truncated payload is recognised).
pub fn payload(id: Id, pad: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(ID_LEN + pad);
    p.extend_from_slice(&id.publisher.to_le_bytes());
    p.extend_from_slice(&id.stream.to_le_bytes());
    p.extend_from_slice(&id.seq.to_le_bytes());
    p.extend((0..pad).map(|i| filler(id, i)));
    p
}

fn filler(id: Id, i: usize) -> u8 {
    (id.seq as u8).wrapping_add(i as u8) ^ (id.publisher as u8)
}

/// The identity a [`payload`] carries, if it is one intact.
pub fn parse_payload(p: &[u8]) -> Option<Id> {
    let head = p.get(..ID_LEN)?;
    let id = Id {
        publisher: u16::from_le_bytes(head[0..2].try_into().ok()?),
        stream: u64::from_le_bytes(head[2..10].try_into().ok()?),
        seq: u64::from_le_bytes(head[10..18].try_into().ok()?),
    };
    // Both ends of the filler: a shifted, truncated or overwritten payload
    // shows there, for a fraction of the cost of every byte.
    let pad = &p[ID_LEN..];
    let ends = (0..pad.len().min(8)).chain(pad.len().saturating_sub(8)..pad.len());
    ends.into_iter().all(|i| pad[i] == filler(id, i)).then_some(id)
}

/// Publishes numbered messages on a few streams, one datagram per
/// interval (the world stops ticking it to stop it).
pub struct Publisher {
    id: u16,
    streams: Vec<u64>,
    next: Vec<u64>,
    every_ms: u64,
    next_ms: u64,
    rng: Rng,
    out: VecDeque<(u64, Vec<Vec<u8>>, Vec<u8>)>,
    /// Messages refused by BACKPRESSURE.
    pub refused: u64,
}

impl Publisher {
    /// Publisher `id` on `streams`, one datagram every `every_ms`.
    pub fn new(id: u16, streams: Vec<u64>, every_ms: u64, rng: Rng) -> Publisher {
        let next = vec![0; streams.len()];
        Publisher { id, streams, next, every_ms, next_ms: 0, rng, out: VecDeque::new(), refused: 0 }
    }

    /// One datagram of 1..=4 messages of one stream (so of one shard).
    fn queue_datagram(&mut self) {
        let i = self.rng.below(self.streams.len() as u64) as usize;
        let stream = self.streams[i];
        let n = self.rng.range(1, 4);
        let mut msgs = Vec::new();
        let mut classes = Vec::new();
        for _ in 0..n {
            let id = Id { publisher: self.id, stream, seq: self.next[i] };
            self.next[i] += 1;
            let pad = if self.rng.chance(0.05) { self.rng.range(300, 1200) } else { self.rng.below(120) };
            msgs.push(payload(id, pad as usize));
            classes.push(self.rng.below(4) as u8);
        }
        self.out.push_back((stream, msgs, classes));
    }
}

impl SimClient for Publisher {
    fn on_datagram(&mut self, _now: Now, bytes: &[u8]) {
        if let Ok(Frame::Control(Control::Backpressure(b))) = ms_wire::parse(bytes) {
            self.refused += b.map(|x| u64::from(x.refused)).sum::<u64>();
        }
    }

    fn poll_transmit(&mut self, _now: Now, buf: &mut [u8]) -> Option<usize> {
        let (stream, msgs, classes) = self.out.pop_front()?;
        let mut b = PublishBuilder::new(buf)?;
        for (m, c) in msgs.iter().zip(&classes) {
            // What does not fit one datagram is not sent (nor counted sent).
            if !b.push(stream, *c, m) {
                break;
            }
        }
        Some(b.len())
    }

    fn on_tick(&mut self, now: Now) {
        if now.ms >= self.next_ms {
            self.next_ms = now.ms + self.every_ms;
            for _ in 0..self.rng.range(1, 4) {
                self.queue_datagram();
            }
        }
    }
}

#[derive(Debug, Default)]
struct Flow {
    next_seq: Option<u64>,
    grant: Option<u64>,
}

/// Subscribes to one range until every part is acknowledged, hands each
/// delivered message once and in order (a message at or below a sequence
/// number already handed is a network duplicate or straggler, dropped),
/// grants credit as it consumes and heartbeats with its grants.
pub struct Subscriber {
    first: u64,
    last: u64,
    request: u32,
    parts: Option<u16>,
    acked: u64,
    retry_ms: u64,
    next_retry_ms: u64,
    heartbeat_ms: u64,
    next_heartbeat_ms: u64,
    window: u64,
    flows: BTreeMap<u64, Flow>,
    due: Vec<Credit>,
    out: VecDeque<Vec<u8>>,
    handed: VecDeque<Handed>,
    /// Deliveries dropped as duplicates or stragglers.
    pub stale: u64,
}

impl Subscriber {
    /// A subscriber of `first..=last` granting `window` bytes past what it consumed.
    pub fn new(first: u64, last: u64, request: u32, window: u64, retry_ms: u64, heartbeat_ms: u64) -> Subscriber {
        Subscriber {
            first,
            last,
            request,
            parts: None,
            acked: 0,
            retry_ms,
            next_retry_ms: 0,
            heartbeat_ms,
            next_heartbeat_ms: heartbeat_ms,
            window,
            flows: BTreeMap::new(),
            due: Vec::new(),
            out: VecDeque::new(),
            handed: VecDeque::new(),
            stale: 0,
        }
    }

    fn emit(&mut self, f: impl FnOnce(&mut [u8]) -> Option<usize>) {
        let mut b = vec![0; ms_wire::DATAGRAM_MAX];
        if let Some(n) = f(&mut b) {
            b.truncate(n);
            self.out.push_back(b);
        }
    }

    fn emit_credits(&mut self, credits: &[Credit]) {
        for chunk in credits.chunks(CREDITS_PER_DATAGRAM) {
            self.emit(|b| control::emit_credits(b, chunk));
        }
    }

    fn on_deliver(&mut self, d: ms_wire::deliver::Deliver<'_>) {
        for x in d.deliveries() {
            let f = self.flows.entry(x.stream).or_default();
            if f.next_seq.is_some_and(|n| x.seq < n) {
                self.stale += 1;
                continue;
            }
            f.next_seq = Some(x.seq + 1);
            self.handed.push_back(Handed { stream: x.stream, seq: x.seq, position: x.position });
            // The client library's rule: one rule for every client.
            let rule = ms_client::CreditRule::new(self.window);
            if let Some(want) = rule.and_then(|r| r.next_grant(x.position, f.grant)) {
                f.grant = Some(want);
                self.due.push(Credit { stream: x.stream, position: want });
            }
        }
    }
}

impl SimClient for Subscriber {
    fn on_datagram(&mut self, _now: Now, bytes: &[u8]) {
        match ms_wire::parse(bytes) {
            Ok(Frame::Deliver(d)) => self.on_deliver(d),
            Ok(Frame::Control(Control::Ack(acks))) => {
                for a in acks.filter(|a| a.request == self.request) {
                    self.parts = Some(a.parts);
                    self.acked |= 1 << a.part.min(63);
                }
            }
            // An ERROR (Busy, a full table) and a lost answer alike: the
            // retry timer asks again.
            _ => {}
        }
    }

    fn poll_transmit(&mut self, _now: Now, buf: &mut [u8]) -> Option<usize> {
        if !self.due.is_empty() {
            let due = std::mem::take(&mut self.due);
            self.emit_credits(&due);
        }
        let d = self.out.pop_front()?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Some(n)
    }

    fn on_tick(&mut self, now: Now) {
        if !self.is_settled() && now.ms >= self.next_retry_ms {
            self.next_retry_ms = now.ms + self.retry_ms;
            let r = RangeRequest { request: self.request, first: self.first, last: self.last, initial_credit: 0 };
            self.emit(|b| control::emit_ranges(b, FrameType::Subscribe, &[r]));
        }
        if now.ms >= self.next_heartbeat_ms {
            self.next_heartbeat_ms = now.ms + self.heartbeat_ms;
            self.emit(control::emit_heartbeat);
            // Lost grants cost a heartbeat interval, not a stalled stream.
            let all: Vec<Credit> = self
                .flows
                .iter()
                .filter_map(|(s, f)| f.grant.map(|position| Credit { stream: *s, position }))
                .collect();
            self.emit_credits(&all);
        }
    }

    fn poll_handed(&mut self) -> Option<Handing> {
        self.handed.pop_front().map(Handing::Message)
    }

    fn is_settled(&self) -> bool {
        self.parts.is_some_and(|p| self.acked.count_ones() == u32::from(p))
    }
}
