//! Subscriber: subscriptions with acknowledgement, heartbeats, and
//! per-stream gap and order checking.

use crate::ClientError;
use ms_wire::control::{self, Control, ErrorCode, RangeRequest};
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Attempts per request before giving up.
const ATTEMPTS: u32 = 5;

/// One received message, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stream id.
    pub stream: u64,
    /// The stream's sequence number.
    pub seq: u64,
    /// The stream's byte position at the end of this message (the sum of
    /// the payload lengths of the stream's messages up to and including
    /// this one); grant credit from it (docs/protocol.md, "Flow control").
    pub position: u64,
    /// When the appliance received it (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Priority class.
    pub class: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// What the subscriber saw of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// The sequence number expected next (after the first message seen).
    pub next_seq: Option<u64>,
    /// Messages received.
    pub received: u64,
    /// Messages missed: the sum of forward jumps in sequence numbers (from
    /// the first message seen after subscribing).
    pub lost: u64,
    /// Messages at or below a sequence number already seen.
    pub out_of_order: u64,
}

/// Totals over all streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Messages received.
    pub received: u64,
    /// Messages missed (sequence gaps).
    pub lost: u64,
    /// Messages out of order or duplicated.
    pub out_of_order: u64,
    /// DELIVER datagrams received.
    pub datagrams: u64,
    /// Datagrams that were not valid DELIVER/ACK/ERROR frames.
    pub malformed: u64,
}

/// A subscriber on one UDP socket (its address is the subscription's).
pub struct Subscriber {
    sock: UdpSocket,
    target: SocketAddr,
    next_request: u32,
    heartbeat_every: Duration,
    last_heartbeat: Instant,
    streams: HashMap<u64, StreamState>,
    backlog: VecDeque<Delivery>,
    stats: SubscriberStats,
    buf: Vec<u8>,
}

impl Subscriber {
    /// Binds `bind` and talks to the appliance at `target`. Heartbeats go
    /// out every `heartbeat_every` from [`Subscriber::recv`].
    pub fn new(target: SocketAddr, bind: SocketAddr, heartbeat_every: Duration) -> Result<Subscriber, ClientError> {
        let sock = UdpSocket::bind(bind)?;
        sock.connect(target)?;
        Ok(Subscriber {
            sock,
            target,
            next_request: 1,
            heartbeat_every,
            last_heartbeat: Instant::now(),
            streams: HashMap::new(),
            backlog: VecDeque::new(),
            stats: SubscriberStats::default(),
            buf: vec![0; DATAGRAM_MAX + 64],
        })
    }

    /// The local address (the one the appliance delivers to).
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.sock.local_addr()?)
    }

    /// Subscribes to `first..=last`; returns the number of streams the
    /// appliance added, once every core has acknowledged.
    pub fn subscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        self.request(FrameType::Subscribe, first, last, timeout)
    }

    /// Unsubscribes from `first..=last`; returns the number removed.
    pub fn unsubscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        self.request(FrameType::Unsubscribe, first, last, timeout)
    }

    fn request(&mut self, t: FrameType, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        let mut out = [0u8; 64];
        let len = control::emit_ranges(&mut out, t, &[RangeRequest { request, first, last }]).expect("fits");
        // Parts seen and streams each changed, kept across retries: a lost
        // ACK makes us resend, and the appliance then reports 0 for that part.
        let mut parts: Vec<Option<u32>> = Vec::new();
        for _ in 0..ATTEMPTS {
            self.sock.send(&out[..len])?;
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                match self.read_one(deadline - Instant::now(), Some(request))? {
                    Some(Answer::Ack(a)) => {
                        if parts.is_empty() {
                            parts = vec![None; usize::from(a.parts.max(1))];
                        }
                        if let Some(p) = parts.get_mut(usize::from(a.part)) {
                            *p = Some(p.unwrap_or(0).max(a.streams));
                        }
                        if parts.iter().all(Option::is_some) {
                            if t == FrameType::Subscribe {
                                // A stream may be new in the appliance: its
                                // sequence numbers start again.
                                self.streams.retain(|s, _| !(first..=last).contains(s));
                            }
                            return Ok(parts.iter().map(|p| p.unwrap_or(0)).sum());
                        }
                    }
                    // Busy: an internal queue was full; resend after a pause.
                    Some(Answer::Error(e)) if e.code == ErrorCode::Busy => {
                        std::thread::sleep(Duration::from_millis(20));
                        break;
                    }
                    Some(Answer::Error(e)) => {
                        return Err(ClientError::Refused { request, code: e.code, detail: e.detail });
                    }
                    None => {}
                }
            }
        }
        Err(ClientError::Timeout { target: self.target, attempts: ATTEMPTS })
    }

    /// Sends a HEARTBEAT now.
    pub fn heartbeat(&mut self) -> Result<(), ClientError> {
        let mut out = [0u8; 8];
        let len = control::emit_heartbeat(&mut out).expect("fits");
        self.sock.send(&out[..len])?;
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// Stops sending heartbeats from [`Subscriber::recv`] (tests use it to
    /// let subscriptions expire).
    pub fn set_heartbeat_every(&mut self, every: Duration) {
        self.heartbeat_every = every;
    }

    /// The next message, waiting up to `timeout`. Sends a heartbeat when
    /// one is due.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Delivery>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.last_heartbeat.elapsed() >= self.heartbeat_every {
                self.heartbeat()?;
            }
            if let Some(d) = self.backlog.pop_front() {
                return Ok(Some(d));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).min(self.heartbeat_every);
            self.read_one(wait, None)?;
        }
    }

    /// Reads one datagram: deliveries go to the backlog (and the checks),
    /// an ACK or ERROR for `request` is returned.
    fn read_one(&mut self, wait: Duration, request: Option<u32>) -> Result<Option<Answer>, ClientError> {
        self.sock.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
        let n = match self.sock.recv(&mut self.buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match ms_wire::parse(&self.buf[..n]) {
            Ok(Frame::Deliver(d)) => {
                self.stats.datagrams += 1;
                for x in d.deliveries() {
                    let st = self.streams.entry(x.stream).or_default();
                    check_sequence(st, x.seq, &mut self.stats);
                    self.backlog.push_back(Delivery {
                        stream: x.stream,
                        seq: x.seq,
                        position: x.position,
                        timestamp_ns: x.timestamp_ns,
                        class: x.class,
                        payload: x.payload.to_vec(),
                    });
                }
                Ok(None)
            }
            Ok(Frame::Control(Control::Ack(acks))) => {
                Ok(acks.filter(|a| Some(a.request) == request).map(Answer::Ack).next())
            }
            Ok(Frame::Control(Control::Error(errs))) => {
                Ok(errs.filter(|e| Some(e.request) == request || e.request == 0).map(Answer::Error).next())
            }
            _ => {
                self.stats.malformed += 1;
                Ok(None)
            }
        }
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
}

enum Answer {
    Ack(ms_wire::control::Ack),
    Error(ms_wire::control::ErrorEntry),
}

/// Updates a stream's state with a received sequence number. A forward
/// jump counts the skipped numbers as lost; a number below the expected
/// one counts as out of order (a late message was first counted lost, so
/// it then appears in both: the appliance never reorders a stream, so any
/// of these means the network did).
fn check_sequence(st: &mut StreamState, seq: u64, totals: &mut SubscriberStats) {
    st.received += 1;
    totals.received += 1;
    match st.next_seq {
        Some(next) if seq < next => {
            st.out_of_order += 1;
            totals.out_of_order += 1;
        }
        Some(next) => {
            st.lost += seq - next;
            totals.lost += seq - next;
            st.next_seq = Some(seq.wrapping_add(1));
        }
        None => st.next_seq = Some(seq.wrapping_add(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_checks() {
        let mut st = StreamState::default();
        let mut t = SubscriberStats::default();
        for seq in [5, 6, 9, 8, 10] {
            check_sequence(&mut st, seq, &mut t);
        }
        assert_eq!(st, StreamState { next_seq: Some(11), received: 5, lost: 2, out_of_order: 1 });
        assert_eq!((t.received, t.lost, t.out_of_order), (5, 2, 1));
    }
}
