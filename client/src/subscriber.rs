//! Subscriber: subscriptions with acknowledgement, heartbeats, per-stream
//! gap and order checking, and flow control (CREDIT grants).

use crate::ranges::Ranges;
use crate::ClientError;
use ms_wire::control::{self, Control, Credit, ErrorCode, ErrorEntry, RangeRequest, CREDIT_ENTRY_LEN};
use ms_wire::{Frame, FrameType, DATAGRAM_MAX, HEADER_LEN};
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Attempts per request before giving up.
const ATTEMPTS: u32 = 5;

/// The credit window a new [`Subscriber`] grants with: the appliance's
/// default `flow.initial_credit_bytes`.
pub const DEFAULT_CREDIT_WINDOW: u64 = 65_536;

/// CREDIT entries that fit one datagram (91).
const CREDITS_PER_DATAGRAM: usize = (DATAGRAM_MAX - HEADER_LEN) / CREDIT_ENTRY_LEN;

/// Most CREDIT datagrams a heartbeat re-sends for grants that changed
/// recently, and as many again for grants a stream may be waiting on.
const HEARTBEAT_CREDIT_DATAGRAMS: usize = 4;

/// Most SlowConsumer notices kept (the rest are only counted).
const NOTICES_MAX: usize = 1024;

/// The receive buffer a subscriber asks the kernel for. Linux grants at
/// most `net.core.rmem_max` (as root, `SO_RCVBUFFORCE` goes past it).
pub const RCVBUF_WANT_BYTES: usize = 32 << 20;

/// The share of the kernel's receive buffer (as `SO_RCVBUF` reports it)
/// that credit may promise in payload bytes. The kernel charges each
/// datagram its buffer's true size (about 2.3 KiB for a full 1,472-byte
/// datagram, about 1 KiB for a small one) and reports twice the size asked
/// for, so a quarter of the reported size leaves room for DELIVERs
/// carrying one small message each at the rates that fill it.
const RCVBUF_CREDIT_DIVISOR: u64 = 4;

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
    /// ERROR `SlowConsumer` notices: subscriptions the appliance removed
    /// because this subscriber fell behind (see
    /// [`Subscriber::slow_consumer_notices`]).
    pub slow_consumer: u64,
    /// CREDIT datagrams sent (automatic, manual and heartbeat re-sends).
    pub credits_sent: u64,
    /// Times the appliance was seen to have restarted (a new instance in
    /// an ACK or ERROR `UnknownSubscriber`): every subscription was made
    /// again and every stream's sequence numbers started again, so the
    /// messages published meanwhile are not in `lost`.
    pub restarts: u64,
    /// Times the subscriptions were made again because heartbeat answers
    /// showed fewer than were made (expired, or the appliance restarted).
    pub resubscribes: u64,
    /// SUBSCRIBEs made again that the appliance refused (a table full):
    /// their streams are no longer counted as subscribed.
    pub resubscribe_refused: u64,
    /// Socket calls that failed with a transient error (the appliance or
    /// the route to it was away, or a signal interrupted the call); the
    /// subscriber went on.
    pub socket_errors: u64,
}

/// Flow-control state of one stream.
#[derive(Debug, Clone, Copy, Default)]
struct Flow {
    /// End position of the last message `recv` returned.
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

/// A subscriber on one UDP socket (its address is the subscription's).
///
/// Flow control (docs/protocol.md, "Flow control"): by default the
/// subscriber grants credit by itself as [`Subscriber::recv`] hands
/// messages over, a window of [`DEFAULT_CREDIT_WINDOW`] bytes past the last
/// message returned of each stream (see [`Subscriber::set_credit_window`]),
/// and re-sends recent grants, and grants not yet followed by a delivery,
/// with its heartbeats so a lost CREDIT cannot stall a stream (see
/// [`Subscriber::heartbeat`]).
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
    credit_window: Option<u64>,
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
    notices: Vec<u64>,
    /// Heartbeat interval asked for; the one used is at most a third of
    /// the lifetime the appliance reports.
    heartbeat_asked: Duration,
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
    /// SUBSCRIBEs sent by [`Subscriber::resubscribe`] whose answers are
    /// not waited for: request id -> the ranges it carried.
    resent: HashMap<u32, Vec<(u64, u64)>>,
    /// Bytes the kernel gave the receive buffer (`SO_RCVBUF`).
    rcvbuf_bytes: usize,
}

impl Subscriber {
    /// Binds `bind` and talks to the appliance at `target`. Heartbeats go
    /// out every `heartbeat_every` from [`Subscriber::recv`].
    pub fn new(target: SocketAddr, bind: SocketAddr, heartbeat_every: Duration) -> Result<Subscriber, ClientError> {
        let sock = UdpSocket::bind(bind)?;
        sock.connect(target)?;
        let rcvbuf_bytes = grow_rcvbuf(&sock, RCVBUF_WANT_BYTES);
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
            credit_window: Some(DEFAULT_CREDIT_WINDOW),
            flows: HashMap::new(),
            pending: Vec::new(),
            epoch: 0,
            recent: Vec::new(),
            recent_before: Vec::new(),
            waiting: VecDeque::new(),
            notices: Vec::new(),
            heartbeat_asked: heartbeat_every,
            instance: None,
            ranges: Ranges::default(),
            held: HashMap::new(),
            heartbeat_out: false,
            expected: 0,
            short: 0,
            resent: HashMap::new(),
            rcvbuf_bytes,
        })
    }

    /// The appliance instance the subscriptions were made with (from its
    /// ACKs), if any answered yet.
    pub fn instance(&self) -> Option<u64> {
        self.instance
    }

    /// The heartbeat interval in use: the one asked for, at most a third of
    /// the subscription lifetime the appliance reports in its ACKs.
    pub fn heartbeat_every(&self) -> Duration {
        self.heartbeat_every
    }

    /// Bytes the kernel gave this subscriber's receive buffer.
    pub fn rcvbuf_bytes(&self) -> usize {
        self.rcvbuf_bytes
    }

    /// Streams subscribed (as made; the appliance may hold fewer).
    pub fn subscribed_streams(&self) -> u64 {
        self.ranges.count()
    }

    /// The credit window each stream is granted with: the window set (see
    /// [`Subscriber::set_credit_window`]), but no more than this stream's
    /// share of what the receive buffer holds, so that credit never
    /// promises more than the subscriber can hold while it is not reading
    /// (what does not fit is lost in the kernel). Never below one largest
    /// message, or a stream could not move at all: with more streams than
    /// the buffer holds largest messages, a paused subscriber can still
    /// overflow it. `None` in manual mode.
    pub fn effective_window(&self) -> Option<u64> {
        let w = self.credit_window?;
        let hold = self.rcvbuf_bytes as u64 / RCVBUF_CREDIT_DIVISOR;
        let share = hold / self.subscribed_streams().max(1);
        Some(w.min(share.max(ms_wire::PAYLOAD_MAX as u64)))
    }

    /// Sets automatic flow control. With `Some(w)` (the default is
    /// `Some(`[`DEFAULT_CREDIT_WINDOW`]`)`), once [`Subscriber::recv`] has
    /// returned a message of stream S ending at position P, the subscriber
    /// grants S up to `P + w` whenever that is at least `w / 2` beyond its
    /// last grant for S (or S has none yet). Grants are batched into CREDIT
    /// datagrams, sent before `recv` returns with nothing more buffered or
    /// waits for the network. `None` (or `Some(0)`) is manual: the
    /// subscriber grants nothing by itself, beyond the appliance's initial
    /// credit a stream only moves on [`Subscriber::grant`].
    pub fn set_credit_window(&mut self, window: Option<u64>) {
        self.credit_window = window.filter(|w| *w > 0);
    }

    /// The automatic credit window (`None` = manual).
    pub fn credit_window(&self) -> Option<u64> {
        self.credit_window
    }

    /// Grants `stream` credit up to `position` now (one CREDIT datagram)
    /// and records it as the stream's latest grant, which the following
    /// heartbeats re-send like automatic ones. Grants are absolute and the
    /// appliance keeps the largest it has seen: a grant below an earlier
    /// one changes nothing there.
    pub fn grant(&mut self, stream: u64, position: u64) -> Result<(), ClientError> {
        self.grant_many(&[(stream, position)])
    }

    /// Like [`Subscriber::grant`] for several `(stream, position)` grants,
    /// batched into as few CREDIT datagrams as they fit.
    pub fn grant_many(&mut self, grants: &[(u64, u64)]) -> Result<(), ClientError> {
        for &(stream, position) in grants {
            self.set_grant(stream, position);
            if let Some(f) = self.flows.get_mut(&stream) {
                f.queued = false;
            }
        }
        let credits: Vec<Credit> = grants.iter().map(|&(stream, position)| Credit { stream, position }).collect();
        self.send_credits(&credits)
    }

    /// End position of the last message of `stream` that
    /// [`Subscriber::recv`] returned.
    pub fn last_position(&self, stream: u64) -> Option<u64> {
        self.flows.get(&stream).and_then(|f| f.last_position)
    }

    /// The latest grant for `stream` (automatic or manual; the appliance
    /// may still hold an earlier, larger one).
    pub fn last_grant(&self, stream: u64) -> Option<u64> {
        self.flows.get(&stream).and_then(|f| f.grant)
    }

    /// Streams whose subscription the appliance removed with an ERROR
    /// `SlowConsumer` (this subscriber fell behind under the `disconnect`
    /// policy), in arrival order. At most 1024 are kept;
    /// [`SubscriberStats::slow_consumer`] counts them all.
    pub fn slow_consumer_notices(&self) -> &[u64] {
        &self.notices
    }

    /// The local address (the one the appliance delivers to).
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.sock.local_addr()?)
    }

    /// Subscribes to `first..=last`; returns the number of streams the
    /// appliance added, once every core has acknowledged. Each core
    /// applies its share all or nothing: when one refuses (a table is
    /// full), the error says how many streams the other cores added
    /// ([`ClientError::Refused`]`::applied`), and those stay subscribed.
    pub fn subscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        if first > last {
            return Err(ClientError::EmptyRange { first, last });
        }
        // Counted before asking, so the initial credit asked for is this
        // stream's share of the receive buffer with the new ones in.
        let before = self.ranges.clone();
        self.ranges.add(first, last);
        let r = self.request(FrameType::Subscribe, first, last, timeout);
        if r.is_err() {
            self.ranges = before;
        }
        if let Err(ClientError::Refused { applied, .. }) = &r {
            if *applied > 0 {
                self.roll_back(first, last, timeout);
            }
        }
        r
    }

    /// Undoes what the cores that accepted their share of a refused range
    /// subscribed: the streams of `first..=last` not subscribed before.
    /// Best effort (a lost UNSUBSCRIBE leaves them to expire).
    fn roll_back(&mut self, first: u64, last: u64, timeout: Duration) {
        for (a, b) in self.ranges.uncovered(first, last) {
            let _ = self.request(FrameType::Unsubscribe, a, b, timeout);
        }
    }

    /// Unsubscribes from `first..=last`; returns the number removed.
    pub fn unsubscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        if first > last {
            return Err(ClientError::EmptyRange { first, last });
        }
        self.ranges.remove(first, last);
        self.request(FrameType::Unsubscribe, first, last, timeout)
    }

    /// The SUBSCRIBE or UNSUBSCRIBE entry for a new request.
    fn range_request(&mut self, t: FrameType, first: u64, last: u64) -> RangeRequest {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        let initial_credit = match (t, self.effective_window()) {
            (FrameType::Subscribe, Some(w)) => u32::try_from(w).unwrap_or(u32::MAX),
            // Manual mode: the appliance's default, as the application expects.
            _ => 0,
        };
        RangeRequest { request, first, last, initial_credit }
    }

    fn request(&mut self, t: FrameType, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        let entry = self.range_request(t, first, last);
        let request = entry.request;
        let mut out = [0u8; 64];
        let len = control::emit_ranges(&mut out, t, &[entry]).expect("fits");
        // Answers per part, kept across retries: a lost ACK makes us
        // resend, and the appliance then reports 0 for that part.
        let mut parts = Parts::default();
        for _ in 0..ATTEMPTS {
            if let Err(e) = self.sock.send(&out[..len]) {
                self.transient(e)?; // lost: the deadline below resends it
            }
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                match self.read_one(deadline - Instant::now(), Some(request))? {
                    Some(Answer::Ack(a)) => parts.ack(a),
                    // Busy: an internal queue was full; resend after a pause.
                    Some(Answer::Error(e)) if e.code == ErrorCode::Busy => {
                        std::thread::sleep(Duration::from_millis(20));
                        break;
                    }
                    Some(Answer::Error(e)) if e.parts <= 1 || e.request != request => {
                        return Err(ClientError::Refused { request, code: e.code, detail: e.detail, applied: 0 });
                    }
                    Some(Answer::Error(e)) => parts.refuse(e),
                    None => {}
                }
                if let Some(done) = parts.done(request) {
                    self.applied(t, first, last);
                    return done;
                }
            }
        }
        Err(ClientError::Timeout { target: self.target, attempts: ATTEMPTS })
    }

    /// Forgets what the stream states of `first..=last` knew once a
    /// request on them was answered.
    fn applied(&mut self, t: FrameType, first: u64, last: u64) {
        let range = first..=last;
        if t == FrameType::Subscribe {
            // A stream may be new in the appliance: its sequence numbers
            // and positions start again.
            self.streams.retain(|s, _| !range.contains(s));
            // (Kept where queued or listed for re-sending.)
            for (_, f) in self.flows.iter_mut().filter(|(s, _)| range.contains(s)) {
                *f = Flow { listed: f.listed, queued: f.queued, in_waiting: f.in_waiting, ..Flow::default() };
            }
        } else {
            // Nothing left to grant: stop re-sending.
            for (_, f) in self.flows.iter_mut().filter(|(s, _)| range.contains(s)) {
                f.grant = None;
            }
        }
    }

    /// Takes the instance and lifetime an answer carried. A new instance
    /// means the appliance restarted and holds none of our subscriptions:
    /// every stream starts again, and they are all made again now.
    fn note_instance(&mut self, instance: u64, lifetime_ms: Option<u32>) -> Result<(), ClientError> {
        if let Some(ms) = lifetime_ms.filter(|&ms| ms > 0) {
            let third = Duration::from_millis(u64::from(ms) / 3).max(Duration::from_millis(1));
            self.heartbeat_every = self.heartbeat_asked.min(third);
        }
        match self.instance.replace(instance) {
            Some(old) if old != instance => {
                self.stats.restarts += 1;
                self.resubscribe()
            }
            _ => Ok(()),
        }
    }

    /// Makes every subscription again, packed into as few SUBSCRIBEs as
    /// fit, without waiting for the ACKs (the heartbeats after the next one
    /// show whether they took; a refusal drops the ranges it names), and
    /// starts every stream's sequence and credit state again: the appliance
    /// may have made them anew.
    fn resubscribe(&mut self) -> Result<(), ClientError> {
        self.stats.resubscribes += 1;
        // Answers to the heartbeat before this are stale now.
        self.heartbeat_out = false;
        self.short = 0;
        self.held.clear();
        self.resent.clear();
        let mut out = [0u8; DATAGRAM_MAX];
        for group in self.ranges.packed() {
            let entries: Vec<RangeRequest> = group
                .iter()
                .map(|&(first, last)| {
                    self.applied(FrameType::Subscribe, first, last);
                    self.range_request(FrameType::Subscribe, first, last)
                })
                .collect();
            for e in &entries {
                self.resent.insert(e.request, vec![(e.first, e.last)]);
            }
            let len = control::emit_ranges(&mut out, FrameType::Subscribe, &entries).expect("packed to fit");
            if let Err(e) = self.sock.send(&out[..len]) {
                self.transient(e)?;
            }
        }
        Ok(())
    }

    /// An ERROR answering a SUBSCRIBE sent by [`Subscriber::resubscribe`]:
    /// a full table drops what it asked for (it would be refused again at
    /// every heartbeat); Busy waits for the next heartbeat's check.
    fn resubscribe_refused(&mut self, e: &ErrorEntry) -> bool {
        let Some(ranges) = self.resent.get(&e.request) else { return false };
        if e.code != ErrorCode::Busy {
            for (a, b) in ranges.clone() {
                self.ranges.remove(a, b);
            }
            self.stats.resubscribe_refused += 1;
            self.resent.remove(&e.request);
        }
        true
    }

    /// Counts a transient socket error and carries on; returns any other.
    fn transient(&mut self, e: std::io::Error) -> Result<(), ClientError> {
        if crate::is_transient(&e) {
            self.stats.socket_errors += 1;
            Ok(())
        } else {
            Err(e.into())
        }
    }

    /// Sends a HEARTBEAT now, then CREDITs re-sending the latest grant of
    /// every stream whose grant changed since the previous heartbeat or the
    /// one before (at most 4 datagrams, 364 grants; the oldest changes
    /// first), so a lost grant delays a stream by one heartbeat period
    /// instead of stalling it.
    ///
    /// Every copy of a grant may still be lost, and then the stream stops
    /// at an earlier grant, possibly below where the subscriber would grant
    /// again. So a latest grant is also re-sent with every later heartbeat
    /// until a delivery ending past the stream's previous grant arrives
    /// (only a stream's first grant waits for a later one instead), which
    /// shows that the appliance holds it: at most 4 more datagrams, the
    /// streams taking turns over the heartbeats when there are more.
    /// Deliveries that the appliance sent under the earlier grant do not
    /// count, so streams that keep receiving are not re-sent this way.
    ///
    /// Before sending, it checks the answers to the previous HEARTBEAT
    /// (docs/protocol.md, "HEARTBEAT"): when the cores together hold fewer
    /// subscriptions than were made (they expired, or the appliance
    /// restarted, or the answers were lost), it makes them all again
    /// ([`SubscriberStats::resubscribes`]), without waiting for the ACKs.
    pub fn heartbeat(&mut self) -> Result<(), ClientError> {
        let held: u64 = self.held.values().map(|&n| u64::from(n)).sum();
        self.short = if self.heartbeat_out && held < self.expected { self.short + 1 } else { 0 };
        // Two short heartbeats in a row: one alone may have lost an answer.
        if self.short >= 2 {
            self.resubscribe()?;
        }
        self.held.clear();
        self.heartbeat_out = true;
        self.expected = self.ranges.count();
        let mut out = [0u8; 8];
        let len = control::emit_heartbeat(&mut out).expect("fits");
        if let Err(e) = self.sock.send(&out[..len]) {
            self.transient(e)?;
        }
        self.last_heartbeat = Instant::now();
        let e = self.epoch;
        let limit = HEARTBEAT_CREDIT_DATAGRAMS * CREDITS_PER_DATAGRAM;
        let mut credits = Vec::new();
        let lists = [(&self.recent_before, e.wrapping_sub(1)), (&self.recent, e)];
        'lists: for (list, epoch) in lists {
            for s in list {
                if credits.len() >= limit {
                    break 'lists;
                }
                match self.flows.get_mut(s) {
                    Some(f) if f.changed == epoch => {
                        if let Some(position) = f.grant {
                            f.queued = false;
                            credits.push(Credit { stream: *s, position });
                        }
                    }
                    _ => {}
                }
            }
        }
        // Then grants the streams may be waiting on, taking turns: each
        // entry is looked at once at most, a re-sent one goes to the back.
        let recent = credits.len();
        for _ in 0..self.waiting.len() {
            if credits.len() - recent >= limit {
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
                        credits.push(Credit { stream: s, position });
                    }
                }
                _ => f.in_waiting = false,
            }
        }
        // The epoch ends whether or not the re-send gets out.
        self.epoch = e.wrapping_add(1);
        std::mem::swap(&mut self.recent, &mut self.recent_before);
        self.recent.clear();
        self.send_credits(&credits)
    }

    /// Sets the heartbeat interval asked for (tests stop heartbeats with a
    /// long one to let subscriptions expire); the one used stays at most a
    /// third of the lifetime the appliance reports.
    pub fn set_heartbeat_every(&mut self, every: Duration) {
        self.heartbeat_asked = every;
        self.heartbeat_every = every;
    }

    /// The next message, waiting up to `timeout`. Sends a heartbeat when
    /// one is due, and the grants automatic flow control queued (see
    /// [`Subscriber::set_credit_window`]).
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Delivery>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.last_heartbeat.elapsed() >= self.heartbeat_every {
                // Answers to the last HEARTBEAT may still wait unread in the
                // socket (the application was busy): the check wants two
                // short heartbeats in a row, and answers read late count
                // for the next one, so no read-ahead is needed here (one
                // held every message back for tens of milliseconds).
                self.heartbeat()?;
            }
            if let Some(d) = self.backlog.pop_front() {
                self.consumed(d.stream, d.position);
                if self.backlog.is_empty() || self.pending.len() >= CREDITS_PER_DATAGRAM {
                    // A failed send keeps the grants queued: the next call
                    // retries before it waits, and reports the error then.
                    let _ = self.flush_credits();
                }
                return Ok(Some(d));
            }
            self.flush_credits()?;
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
            // Nothing in time, a signal (the process was stopped and
            // continued), or an ICMP error from when the appliance was away.
            Err(e) => {
                if !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                    self.transient(e)?;
                }
                return Ok(None);
            }
        };
        match ms_wire::parse(&self.buf[..n]) {
            Ok(Frame::Deliver(d)) => {
                self.stats.datagrams += 1;
                for x in d.deliveries() {
                    let st = self.streams.entry(x.stream).or_default();
                    check_sequence(st, x.seq, &mut self.stats);
                    if let Some(f) = self.flows.get_mut(&x.stream) {
                        // Past the previous grant: the appliance has this one.
                        if f.waiting && f.floor.is_some_and(|floor| x.position > floor) {
                            f.waiting = false;
                        }
                    }
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
                let mut answer = None;
                // Copied out: noting an instance may send on the socket.
                let acks: Vec<_> = acks.collect();
                for a in acks {
                    self.note_instance(a.instance, Some(a.lifetime_ms))?;
                    if a.request == 0 && self.heartbeat_out {
                        self.held.insert(a.part, a.streams);
                    } else if answer.is_none() && Some(a.request) == request {
                        answer = Some(Answer::Ack(a));
                    }
                }
                Ok(answer)
            }
            Ok(Frame::Control(Control::Error(errs))) => {
                let mut answer = None;
                let errs: Vec<_> = errs.collect();
                for e in errs {
                    if self.resubscribe_refused(&e) {
                        continue;
                    }
                    if e.code == ErrorCode::UnknownSubscriber {
                        // The core that received our HEARTBEAT holds none of
                        // our subscriptions (the other cores' ACKs say the rest).
                        self.note_instance(e.detail, None)?;
                    } else if e.code == ErrorCode::SlowConsumer {
                        slow_consumer(&mut self.stats, &mut self.notices, &mut self.flows, e.detail);
                        // Removed on purpose: not one to make again.
                        self.ranges.remove(e.detail, e.detail);
                    } else if answer.is_none() && answers(&e, request) {
                        answer = Some(Answer::Error(e));
                    }
                }
                Ok(answer)
            }
            _ => {
                self.stats.malformed += 1;
                Ok(None)
            }
        }
    }

    /// Records that `recv` returned a message of `stream` ending at
    /// `position`, and queues a grant when one is due.
    fn consumed(&mut self, stream: u64, position: u64) {
        let window = self.effective_window();
        let f = self.flows.entry(stream).or_default();
        f.last_position = Some(position);
        let Some(w) = window else { return };
        let want = position.saturating_add(w);
        let due = match f.grant {
            None => true,
            Some(g) => want > g && want - g >= (w / 2).max(1),
        };
        if due {
            self.set_grant(stream, want);
            let f = self.flows.get_mut(&stream).expect("inserted above");
            if !f.queued {
                f.queued = true;
                self.pending.push(stream);
            }
        }
    }

    /// Records `position` as the latest grant of `stream`, changed in this
    /// heartbeat epoch and not yet followed by a delivery.
    fn set_grant(&mut self, stream: u64, position: u64) {
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
    }

    /// Sends the queued grants, as many per datagram as fit. On error the
    /// grants not sent stay queued.
    fn flush_credits(&mut self) -> Result<(), ClientError> {
        let mut batch = Vec::with_capacity(CREDITS_PER_DATAGRAM.min(self.pending.len()));
        let mut done = 0;
        while done < self.pending.len() {
            batch.clear();
            let mut end = done;
            while end < self.pending.len() && batch.len() < CREDITS_PER_DATAGRAM {
                let s = self.pending[end];
                end += 1;
                if let Some(Flow { queued: true, grant: Some(position), .. }) = self.flows.get(&s) {
                    batch.push(Credit { stream: s, position: *position });
                }
            }
            if let Err(e) = self.send_credits(&batch) {
                self.pending.drain(..done);
                return Err(e);
            }
            for s in &self.pending[done..end] {
                if let Some(f) = self.flows.get_mut(s) {
                    f.queued = false;
                }
            }
            done = end;
        }
        self.pending.clear();
        Ok(())
    }

    /// Sends `credits` in as few CREDIT datagrams as they fit.
    fn send_credits(&mut self, credits: &[Credit]) -> Result<(), ClientError> {
        let mut out = [0u8; DATAGRAM_MAX];
        for chunk in credits.chunks(CREDITS_PER_DATAGRAM) {
            let len = control::emit_credits(&mut out, chunk).expect("a chunk fits a datagram");
            match self.sock.send(&out[..len]) {
                Ok(_) => self.stats.credits_sent += 1,
                // Lost like a dropped datagram: heartbeats re-send grants.
                Err(e) => self.transient(e)?,
            }
        }
        Ok(())
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

/// The appliance removed our subscription to `stream` (ERROR SlowConsumer).
fn slow_consumer(stats: &mut SubscriberStats, notices: &mut Vec<u64>, flows: &mut HashMap<u64, Flow>, stream: u64) {
    stats.slow_consumer += 1;
    if notices.len() < NOTICES_MAX {
        notices.push(stream);
    }
    // Grants for it are ignored now: stop re-sending them.
    if let Some(f) = flows.get_mut(&stream) {
        f.grant = None;
    }
}

enum Answer {
    Ack(ms_wire::control::Ack),
    Error(ErrorEntry),
}

/// The answers to one request, one per part (core) once the first answer
/// says how many parts there are.
#[derive(Default)]
struct Parts(Vec<Option<Result<u32, ErrorEntry>>>);

impl Parts {
    fn slot(&mut self, part: u16, parts: u16) -> Option<&mut Option<Result<u32, ErrorEntry>>> {
        if self.0.is_empty() {
            self.0 = vec![None; usize::from(parts.max(1))];
        }
        self.0.get_mut(usize::from(part))
    }

    fn ack(&mut self, a: ms_wire::control::Ack) {
        if let Some(p) = self.slot(a.part, a.parts) {
            // A resent request is answered again, with 0 changed where the
            // first answer was lost: keep the larger count.
            let before = p.and_then(Result::ok).unwrap_or(0);
            *p = Some(Ok(before.max(a.streams)));
        }
    }

    fn refuse(&mut self, e: ErrorEntry) {
        if let Some(p) = self.slot(e.part, e.parts) {
            *p = Some(Err(e));
        }
    }

    /// Once every part answered: the streams changed, or the first
    /// refusal with what the other parts applied.
    fn done(&self, request: u32) -> Option<Result<u32, ClientError>> {
        if self.0.is_empty() || self.0.iter().any(Option::is_none) {
            return None;
        }
        let applied = self.0.iter().filter_map(|p| p.and_then(Result::ok)).sum();
        Some(match self.0.iter().find_map(|p| p.and_then(Result::err)) {
            Some(e) => Err(ClientError::Refused { request, code: e.code, detail: e.detail, applied }),
            None => Ok(applied),
        })
    }
}

/// Asks the kernel for a receive buffer of `want` bytes (past
/// `net.core.rmem_max` when the process may) and returns what it gave.
fn grow_rcvbuf(sock: &UdpSocket, want: usize) -> usize {
    let fd = sock.as_raw_fd();
    let want = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: fd is a live socket owned by `sock`; the option value is a
        // c_int on the stack and `size` is its size.
        let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&raw const want).cast(), size) };
        if rc == 0 {
            break; // SO_RCVBUFFORCE needs CAP_NET_ADMIN; else the capped one
        }
    }
    let mut got: libc::c_int = 0;
    let mut len = size;
    // SAFETY: as above; `got` and `len` are valid for writes of their size.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&raw mut got).cast(), &mut len) };
    if rc == 0 {
        usize::try_from(got).unwrap_or(0)
    } else {
        0
    }
}

/// True when ERROR `e` answers the pending `request`: it names it, or it
/// has no request id (0) and its code refuses a whole datagram or request
/// (the appliance answers a datagram it could not parse with
/// UnsupportedVersion, UnknownType or Malformed and request 0). Notices
/// (SlowConsumer), MixedShards (which answers a PUBLISH) and codes this
/// version does not know never answer a request.
fn answers(e: &ErrorEntry, request: Option<u32>) -> bool {
    let Some(request) = request else { return false };
    if e.request == request {
        return true;
    }
    e.request == 0
        && matches!(
            e.code,
            ErrorCode::UnsupportedVersion
                | ErrorCode::Malformed
                | ErrorCode::UnknownType
                | ErrorCode::RangeTooLarge
                | ErrorCode::StreamTableFull
                | ErrorCode::SubscribersFull
                | ErrorCode::SubscriptionsFull
                | ErrorCode::Busy
        )
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

    #[test]
    fn which_errors_answer_a_request() {
        let e = |request, code| ErrorEntry::whole(request, code, 0);
        assert!(answers(&e(7, ErrorCode::SubscriptionsFull), Some(7)));
        assert!(answers(&e(7, ErrorCode::Busy), Some(7)));
        assert!(!answers(&e(8, ErrorCode::Busy), Some(7)), "another request's");
        assert!(answers(&e(0, ErrorCode::Malformed), Some(7)));
        assert!(answers(&e(0, ErrorCode::UnsupportedVersion), Some(7)));
        assert!(answers(&e(0, ErrorCode::UnknownType), Some(7)));
        assert!(!answers(&e(0, ErrorCode::SlowConsumer), Some(7)), "a notice");
        assert!(!answers(&e(0, ErrorCode::MixedShards), Some(7)), "answers a PUBLISH");
        assert!(!answers(&e(0, ErrorCode::Unknown(99)), Some(7)));
        assert!(!answers(&e(0, ErrorCode::Malformed), None), "no request pending");
    }
}
