//! The engine driven by a fake I/O: no DPDK, no sockets, no clock.

use super::*;
use ms_streams::Limits;
use ms_wire::control::{self, Control, ErrorCode, RangeRequest};
use ms_wire::publish::PublishBuilder;
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};

/// Buffers are indices into `bufs`; sent datagrams are copied out.
#[derive(Default)]
pub(crate) struct FakeIo {
    bufs: Vec<[u8; DATAGRAM_MAX]>,
    free: Vec<usize>,
    pub sent: Vec<(Addr, Vec<u8>, u32)>,
    pub mail: Vec<(u32, Mail)>,
    pub broadcasts: Vec<Mail>,
    pub learned: Vec<From>,
    pub mailbox_full: bool,
}

impl FakeIo {
    pub(crate) fn with_buffers(n: usize) -> FakeIo {
        FakeIo { bufs: vec![[0; DATAGRAM_MAX]; n], free: (0..n).rev().collect(), ..FakeIo::default() }
    }
}

impl Io for FakeIo {
    type Buf = usize;
    fn alloc(&mut self) -> Option<usize> {
        self.free.pop()
    }
    fn payload(&mut self, buf: &usize) -> &mut [u8] {
        &mut self.bufs[*buf]
    }
    fn send(&mut self, to: Addr, buf: usize, len: usize, messages: u32) -> bool {
        self.sent.push((to, self.bufs[buf][..len].to_vec(), messages));
        self.free.push(buf);
        true
    }
    fn free(&mut self, buf: usize) {
        self.free.push(buf);
    }
    fn post(&mut self, worker: u32, mail: Mail) -> bool {
        if self.mailbox_full {
            return false;
        }
        self.mail.push((worker, mail));
        true
    }
    fn broadcast(&mut self, mail: Mail) {
        self.broadcasts.push(mail);
    }
    fn learn(&mut self, from: From, _now: Now) {
        self.learned.push(from);
    }
}

const LIMITS: Limits =
    Limits { streams: 1 << 17, subscribers: 64, subscriptions: 1 << 17, lifetime_ms: 10_000, queue_bytes: 4 << 20 };

fn engine(workers: u32, me: u32) -> Engine<usize> {
    Engine::new(EngineConfig { limits: LIMITS, workers, me, instance: 7, service_port: 9000 })
}

fn sub_from(port: u16) -> From {
    From { addr: Addr { ip: Ipv4Addr::new(198, 18, 0, 2), port, via: 0 }, mac: [2, 0, 0, 0, 0, 2] }
}

fn range(t: FrameType, first: u64, last: u64) -> Vec<u8> {
    let mut b = vec![0; DATAGRAM_MAX];
    let r = RangeRequest { request: 1, first, last, initial_credit: 0 };
    let n = control::emit_ranges(&mut b, t, &[r]).expect("fits");
    b.truncate(n);
    b
}

fn publish(stream: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0; DATAGRAM_MAX];
    let mut p = PublishBuilder::new(&mut b).expect("room for the header");
    assert!(p.push(stream, 0, payload));
    let n = p.len();
    b.truncate(n);
    b
}

fn acks(io: &FakeIo) -> Vec<control::Ack> {
    let mut out = vec![];
    for (_, bytes, _) in &io.sent {
        if let Ok(Frame::Control(Control::Ack(a))) = ms_wire::parse(bytes) {
            out.extend(a);
        }
    }
    out
}

fn errors(io: &FakeIo) -> Vec<control::ErrorEntry> {
    let mut out = vec![];
    for (_, bytes, _) in &io.sent {
        if let Ok(Frame::Control(Control::Error(e))) = ms_wire::parse(bytes) {
            out.extend(e);
        }
    }
    out
}

const NOW: Now = Now { ms: 1_000, ns: 1_000_000_000 };

#[test]
fn subscribe_then_publish_delivers_at_the_end_of_the_turn() {
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(8));
    let sub = sub_from(40_000);
    assert_eq!(e.on_datagram(&mut io, NOW, sub, &range(FrameType::Subscribe, 5, 5)), Disposition::Done);
    let a = acks(&io);
    assert_eq!((a.len(), a[0].streams, a[0].instance), (1, 1, 7));
    assert_eq!(io.learned, vec![sub], "a SUBSCRIBE's source MAC is offered to the neighbour table");
    let publisher = sub_from(41_000);
    e.on_datagram(&mut io, NOW, publisher, &publish(5, b"hello"));
    assert_eq!(io.sent.len(), 1, "nothing sent before the turn ends");
    e.end_turn(&mut io, NOW);
    let (to, bytes, messages) = io.sent.last().expect("a DELIVER");
    assert_eq!((*to, *messages), (sub.addr, 1));
    assert!(matches!(ms_wire::parse(bytes), Ok(Frame::Deliver(_))));
    assert_eq!(e.counts().get(ProtoCounter::MessagesPublished), 1);
    assert_eq!(io.free.len(), 8, "every buffer came back");
}

#[test]
fn a_publish_for_another_workers_shard_is_handed_over() {
    let (mut e, mut io) = (engine(4, 0), FakeIo::with_buffers(4));
    let stream = (0..).find(|&s| ms_wire::shard::owner(s, 4) == 3).expect("some stream");
    let d = e.on_datagram(&mut io, NOW, sub_from(1), &publish(stream, b"x"));
    assert_eq!(d, Disposition::HandOff { worker: 3 });
    assert!(io.sent.is_empty());
}

#[test]
fn garbage_is_counted_and_our_bad_frames_are_answered() {
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(4));
    e.on_datagram(&mut io, NOW, sub_from(1), b"not ours at all");
    assert!(io.sent.is_empty());
    assert_eq!(e.counts().get(ProtoCounter::ProtoBadMagic), 1);
    let mut bad = range(FrameType::Subscribe, 1, 1);
    bad.truncate(bad.len() - 1);
    e.on_datagram(&mut io, NOW, sub_from(1), &bad);
    assert_eq!(errors(&io)[0].code, ErrorCode::Malformed);
}

#[test]
fn a_heartbeat_from_a_stranger_says_unknown_subscriber_and_asks_the_others() {
    let (mut e, mut io) = (engine(2, 0), FakeIo::with_buffers(4));
    let mut b = vec![0; 64];
    let n = control::emit_heartbeat(&mut b).expect("fits");
    e.on_datagram(&mut io, NOW, sub_from(2), &b[..n]);
    assert_eq!(errors(&io)[0].code, ErrorCode::UnknownSubscriber);
    assert_eq!(io.broadcasts, vec![Mail::Heartbeat(sub_from(2).addr)]);
}

#[test]
fn a_large_range_is_walked_in_slices_and_answered_once() {
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(4));
    let last = 3 * u64::from(RANGE_IDS_PER_TURN);
    e.on_datagram(&mut io, NOW, sub_from(3), &range(FrameType::Subscribe, 1, last));
    assert!(acks(&io).is_empty(), "not done within one turn's budget");
    let mut turns = 0;
    while acks(&io).is_empty() {
        e.end_turn(&mut io, NOW);
        turns += 1;
        assert!(turns < 10, "range never finished");
    }
    // Check pass plus apply pass: two walks over the ids.
    assert!(turns >= 5, "took {turns} turns");
    assert_eq!(acks(&io)[0].streams as u64, last);
    assert_eq!(e.streams().gauges().subscriptions as u64, last);
}

#[test]
fn a_subscribe_that_does_not_fit_changes_nothing() {
    let limits = Limits { streams: 16, subscriptions: 16, ..LIMITS };
    let mut e: Engine<usize> = Engine::new(EngineConfig { limits, workers: 1, me: 0, instance: 7, service_port: 9000 });
    let mut io = FakeIo::with_buffers(4);
    e.on_datagram(&mut io, NOW, sub_from(4), &range(FrameType::Subscribe, 1, 40));
    assert_eq!(errors(&io)[0].code, ErrorCode::StreamTableFull);
    assert_eq!(e.streams().gauges().subscriptions, 0);
}

#[test]
fn range_jobs_are_bounded_and_the_excess_is_told_busy() {
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(4));
    let big = range(FrameType::Subscribe, 1, u64::from(RANGE_IDS_PER_TURN) * 2);
    for _ in 0..RANGE_JOBS_MAX + 1 {
        e.on_datagram(&mut io, NOW, sub_from(5), &big);
    }
    assert_eq!(errors(&io).iter().filter(|x| x.code == ErrorCode::Busy).count(), 1);
    assert_eq!(e.counts().get(ProtoCounter::RangeBusy), 1);
}

#[test]
fn credit_for_another_workers_stream_is_posted_there() {
    let (mut e, mut io) = (engine(2, 0), FakeIo::with_buffers(4));
    let stream = (0..).find(|&s| ms_wire::shard::owner(s, 2) == 1).expect("some stream");
    let mut b = vec![0; 64];
    let n = control::emit_credits(&mut b, &[control::Credit { stream, position: 99 }]).expect("fits");
    e.on_datagram(&mut io, NOW, sub_from(6), &b[..n]);
    assert_eq!(io.mail, vec![(1, Mail::Credit { addr: sub_from(6).addr, stream, position: 99 })]);
    assert_eq!(e.counts().get(ProtoCounter::HandoffCredit), 1);
}

#[test]
fn no_answer_ever_goes_to_a_service_port() {
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(4));
    e.on_datagram(&mut io, NOW, sub_from(9000), &range(FrameType::Subscribe, 1, 1));
    assert!(io.sent.is_empty());
}

/// (stream, seq, first payload byte) of every message DELIVERed to `to`.
fn delivered_to(io: &FakeIo, to: Addr) -> Vec<(u64, u64, u8)> {
    let mut out = vec![];
    for (addr, bytes, _) in io.sent.iter().filter(|s| s.0 == to) {
        if let Ok(Frame::Deliver(d)) = ms_wire::parse(bytes) {
            out.extend(d.deliveries().map(|x| (x.stream, x.seq, x.payload[0])));
        }
        assert_eq!(*addr, to);
    }
    out
}

#[test]
fn runs_of_one_stream_arrive_whole_in_order_even_when_buffers_run_out_mid_run() {
    // One buffer: the second subscriber's DELIVER cannot start while the
    // first one's is pending, so hand-overs are refused in the middle of
    // runs and the rest of each run waits in the queue.
    let (mut e, mut io) = (engine(1, 0), FakeIo::with_buffers(1));
    let (a, b) = (sub_from(40_001), sub_from(40_002));
    for who in [a, b] {
        e.on_datagram(&mut io, NOW, who, &range(FrameType::Subscribe, 5, 6));
    }
    let streams = [5u64, 5, 5, 6, 6, 5, 5, 5, 5, 6];
    let mut d = vec![0; DATAGRAM_MAX];
    let mut p = PublishBuilder::new(&mut d).expect("room for the header");
    for (i, s) in streams.iter().enumerate() {
        assert!(p.push(*s, 0, &[i as u8; 100]));
    }
    let n = p.len();
    e.on_datagram(&mut io, NOW, sub_from(41_000), &d[..n]);
    for _ in 0..20 {
        e.end_turn(&mut io, NOW);
    }
    assert!(e.counts().get(ProtoCounter::DeliverNoBuffer) > 0, "the test ran buffers out");
    // What each subscriber must get: per stream, seq 0.. in publishing order.
    let mut want: Vec<(u64, u64, u8)> = vec![];
    let mut next = std::collections::HashMap::new();
    for (i, s) in streams.iter().enumerate() {
        let seq = next.entry(*s).or_insert(0u64);
        want.push((*s, *seq, i as u8));
        *seq += 1;
    }
    for who in [a, b] {
        let mut got = delivered_to(&io, who.addr);
        for s in [5, 6] {
            let of = |v: &[(u64, u64, u8)]| v.iter().filter(|m| m.0 == s).copied().collect::<Vec<_>>();
            assert_eq!(of(&got), of(&want), "stream {s} to {:?}: every message once, in order", who.addr);
        }
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
    assert_eq!(io.free.len(), 1, "the buffer came back");
}
