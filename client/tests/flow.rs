//! Flow control against a fake appliance on a loopback UDP socket: CREDIT
//! grants (automatic, manual, re-sent with heartbeats), ERROR SlowConsumer
//! while a request waits, and BACKPRESSURE read by the publisher.

use ms_client::{ClientError, Publisher, Subscriber};
use ms_wire::control::{self, Ack, Backpressure, Control, Credit, ErrorCode, ErrorEntry};
use ms_wire::deliver::{DeliverState, DeliveryMeta};
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

const NO_HEARTBEATS: Duration = Duration::from_secs(3600);
/// How long to wait to conclude that nothing more comes.
const QUIET: Duration = Duration::from_millis(150);

/// What the fake appliance received.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Heartbeat,
    Credit(Vec<Credit>),
    Other(FrameType),
}

struct Fake {
    sock: UdpSocket,
}

impl Fake {
    fn new() -> Fake {
        Fake { sock: UdpSocket::bind("127.0.0.1:0").unwrap() }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn subscriber(&self, heartbeat_every: Duration) -> Subscriber {
        let s = Subscriber::new(self.addr(), "127.0.0.1:0".parse().unwrap(), heartbeat_every).unwrap();
        // The fake answers the address DELIVERs go to.
        self.sock.connect(s.local_addr().unwrap()).unwrap();
        s
    }

    /// The next datagram within `wait`, with its source.
    fn recv_raw(&self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; DATAGRAM_MAX + 64];
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        Some((buf[..n].to_vec(), from))
    }

    fn recv(&self, wait: Duration) -> Option<Got> {
        let (b, _) = self.recv_raw(wait)?;
        let Ok(Frame::Control(c)) = ms_wire::parse(&b) else { panic!("not a control frame: {b:?}") };
        Some(match c {
            Control::Heartbeat => Got::Heartbeat,
            Control::Credit(cs) => Got::Credit(cs.collect()),
            _ => Got::Other(ms_wire::Header::parse(&b).unwrap().frame_type),
        })
    }

    /// Everything until `QUIET` passes with nothing.
    fn recv_all(&self) -> Vec<Got> {
        std::iter::from_fn(|| self.recv(QUIET)).collect()
    }

    /// One DELIVER with `(stream, seq, position, payload length)` messages.
    fn deliver(&self, msgs: &[(u64, u64, u64, usize)]) {
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut st = DeliverState::start(&mut buf);
        for &(stream, seq, position, len) in msgs {
            assert!(st.fits(len, DATAGRAM_MAX));
            let meta = DeliveryMeta { stream, seq, position, timestamp_ns: 1, class: 1, flags: 0 };
            st.push_with(&mut buf, &meta, len, |p| p.fill(0xab));
        }
        self.sock.send(&buf[..usize::from(st.len)]).unwrap();
    }

    fn send_error(&self, to: Option<SocketAddr>, e: ErrorEntry) {
        let mut buf = [0u8; 64];
        let len = control::emit_errors(&mut buf, &[e]).unwrap();
        match to {
            Some(a) => self.sock.send_to(&buf[..len], a).unwrap(),
            None => self.sock.send(&buf[..len]).unwrap(),
        };
    }
}

/// Receives until `n` messages arrived (or a second passed).
fn take(s: &mut Subscriber, n: usize) -> Vec<ms_client::Delivery> {
    let end = Instant::now() + Duration::from_secs(1);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < end {
        if let Some(d) = s.recv(Duration::from_millis(50)).unwrap() {
            got.push(d);
        }
    }
    assert_eq!(got.len(), n, "messages received");
    got
}

fn credit(stream: u64, position: u64) -> Credit {
    Credit { stream, position }
}

#[test]
fn automatic_grants_are_batched_and_follow_half_the_window() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    assert_eq!(s.credit_window(), Some(ms_client::DEFAULT_CREDIT_WINDOW));
    s.set_credit_window(Some(6_000));
    // A window of several largest messages, so only the half-window rule
    // decides (positions step 600 bytes; the payloads stay small). One
    // datagram: streams 7 and 8 interleaved, positions 600..=6,000. Grants:
    // 6,600 at the first message (none yet), then 9,600 once a message ends
    // at 3,600 (9,600 - 6,600 >= 3,000); the rest are within half a window
    // of that. One CREDIT for the whole datagram.
    let msgs: Vec<_> = (0..10u64).flat_map(|i| [(7, i, 600 * (i + 1), 30), (8, i, 600 * (i + 1), 30)]).collect();
    fake.deliver(&msgs);
    let got = take(&mut s, 20);
    assert_eq!(got.last().map(|d| (d.stream, d.position)), Some((8, 6_000)));
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(7, 9_600), credit(8, 9_600)])]);
    assert_eq!(s.last_position(7), Some(6_000));
    assert_eq!(s.last_grant(8), Some(9_600));

    // One message per datagram: a CREDIT only when the grant moves by half
    // a window (at 12,600 and 15,600), not one per message.
    for i in 10..20u64 {
        fake.deliver(&[(7, i, 600 * (i + 1), 30)]);
    }
    take(&mut s, 10);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(7, 12_600)]), Got::Credit(vec![credit(7, 15_600)])]);
    let st = s.stats();
    assert_eq!((st.received, st.lost, st.credits_sent), (30, 0, 3));

    // Many streams: one CREDIT per DELIVER, with a grant for each stream.
    for first in [100u64, 200] {
        fake.deliver(&(first..first + 30).map(|stream| (stream, 0, 200, 10)).collect::<Vec<_>>());
    }
    take(&mut s, 60);
    let want = |first: u64| Got::Credit((first..first + 30).map(|stream| credit(stream, 6_200)).collect());
    assert_eq!(fake.recv_all(), [want(100), want(200)]);
    assert_eq!(s.stats().credits_sent, 5);
}

#[test]
fn grants_are_resent_with_the_next_two_heartbeats() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(Some(20_000));
    // Grants 21,000 (at 1,000) and 32,000 (at 12,000): one CREDIT.
    fake.deliver(&[(5, 0, 1_000, 50), (5, 1, 12_000, 550)]);
    take(&mut s, 2);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(5, 32_000)])]);
    // A message past the previous grant (21,000) shows that the appliance
    // holds 32,000 (and grants nothing: 41,600 is within half a window).
    fake.deliver(&[(5, 2, 21_600, 480)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), []);
    // Changed in this heartbeat period: re-sent with this heartbeat and the
    // next, then no more (it is no longer recent, and a delivery followed).
    for round in 0..3 {
        s.heartbeat().unwrap();
        let want: &[Got] =
            if round < 2 { &[Got::Heartbeat, Got::Credit(vec![credit(5, 32_000)])] } else { &[Got::Heartbeat] };
        assert_eq!(fake.recv_all(), want, "heartbeat {round}");
    }
    // A manual grant is re-sent the same way.
    s.grant(6, 4242).unwrap();
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(6, 4242)])]);
    s.heartbeat().unwrap();
    assert_eq!(fake.recv_all(), [Got::Heartbeat, Got::Credit(vec![credit(6, 4242)])]);
    assert_eq!(s.stats().credits_sent, 5);

    // Heartbeats from recv carry the re-sends too.
    fake.deliver(&[(5, 3, 34_000, 620)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(5, 54_000)])]);
    s.set_heartbeat_every(Duration::from_millis(40));
    assert_eq!(s.recv(Duration::from_millis(100)).unwrap(), None);
    let got = fake.recv_all();
    assert_eq!(got.first(), Some(&Got::Heartbeat), "{got:?}");
    assert_eq!(got.get(1), Some(&Got::Credit(vec![credit(6, 4242), credit(5, 54_000)])), "{got:?}");
}

#[test]
fn a_lost_grant_is_resent_until_a_delivery_follows_it() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(Some(20_000));
    // Streams 5 and 7 are granted 21,000 (at 1,000), then 32,000 (at
    // 12,000). The appliance got 21,000, but every copy of 32,000 is lost
    // (the fake ignores the CREDITs).
    fake.deliver(&[(5, 0, 1_000, 50), (7, 0, 1_000, 50), (5, 1, 12_000, 550), (7, 1, 12_000, 550)]);
    take(&mut s, 4);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(5, 32_000), credit(7, 32_000)])]);
    // Stream 5 receives what the appliance sent under 21,000 (after the
    // grant of 32,000: it was on its way), and nothing more: 20,000 +
    // 20,000 is within half a window of 32,000, so the subscriber grants
    // nothing by itself. Stream 7 receives a message past 21,000: the
    // appliance holds 32,000.
    fake.deliver(&[(5, 2, 20_000, 400), (7, 2, 21_600, 480)]);
    take(&mut s, 2);
    assert_eq!(fake.recv_all(), []);
    // Both are recent for two heartbeats; then only stream 5's grant is
    // re-sent, with every heartbeat.
    for round in 0..8 {
        s.heartbeat().unwrap();
        let resent = if round < 2 { vec![credit(5, 32_000), credit(7, 32_000)] } else { vec![credit(5, 32_000)] };
        assert_eq!(fake.recv_all(), [Got::Heartbeat, Got::Credit(resent)], "heartbeat {round}");
    }
    assert_eq!(s.stats().credits_sent, 9);
    // Once a message past 21,000 arrives, stream 5 is not waiting any more.
    fake.deliver(&[(5, 3, 21_800, 90)]);
    take(&mut s, 1);
    s.heartbeat().unwrap();
    assert_eq!(fake.recv_all(), [Got::Heartbeat]);
    assert_eq!(s.last_grant(5), Some(32_000));

    // A first grant has no earlier one to be past: it waits for the next
    // grant (here a manual one, whose previous grant is 24,000).
    s.grant(9, 24_000).unwrap();
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(9, 24_000)])]);
    fake.deliver(&[(9, 0, 2_000, 100)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), [], "2,000 + 20,000 is below 24,000");
    for round in 0..4 {
        s.heartbeat().unwrap();
        assert_eq!(fake.recv_all(), [Got::Heartbeat, Got::Credit(vec![credit(9, 24_000)])], "heartbeat {round}");
    }
    s.grant(9, 60_000).unwrap();
    fake.deliver(&[(9, 1, 26_000, 1200)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(9, 60_000)])]);
    for round in 0..3 {
        s.heartbeat().unwrap();
        let want: &[Got] =
            if round < 2 { &[Got::Heartbeat, Got::Credit(vec![credit(9, 60_000)])] } else { &[Got::Heartbeat] };
        assert_eq!(fake.recv_all(), want, "heartbeat {round}");
    }
}

#[test]
fn waiting_grants_take_turns_over_the_heartbeats() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(None);
    // 500 grants nothing follows, more than 4 CREDITs (364 grants) hold.
    let grants: Vec<(u64, u64)> = (1000..1500).map(|stream| (stream, 777)).collect();
    s.grant_many(&grants).unwrap();
    assert_eq!(fake.recv_all().len(), 6);
    // A heartbeat; the streams whose grants came with it, in order.
    let mut resent = || {
        s.heartbeat().unwrap();
        let got = fake.recv_all();
        assert_eq!(got.first(), Some(&Got::Heartbeat));
        assert!(got.len() <= 5, "at most 4 CREDITs: {}", got.len() - 1);
        let mut streams = Vec::new();
        for g in &got[1..] {
            let Got::Credit(cs) = g else { panic!("{g:?}") };
            streams.extend(cs.iter().map(|c| c.stream));
        }
        streams
    };
    // Recent for two heartbeats (the first 364 of them each time).
    for _ in 0..2 {
        assert_eq!(resent(), (1000..1364).collect::<Vec<_>>());
    }
    // Then every heartbeat re-sends 364, taking turns: all 500 within two
    // heartbeats, and the turn goes on.
    assert_eq!(resent(), (1000..1364).collect::<Vec<_>>());
    assert_eq!(resent(), (1364..1500).chain(1000..1228).collect::<Vec<_>>());
    assert_eq!(resent(), (1228..1500).chain(1000..1092).collect::<Vec<_>>());
}

#[test]
fn manual_mode_grants_only_on_request() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(None);
    fake.deliver(&(0..10u64).map(|i| (3, i, 64 * (i + 1), 64)).collect::<Vec<_>>());
    take(&mut s, 10);
    assert_eq!(s.recv(QUIET).unwrap(), None);
    assert_eq!(fake.recv_all(), []);
    assert_eq!(s.last_position(3), Some(640));
    assert_eq!(s.last_position(4), None);
    assert_eq!(s.stats().credits_sent, 0);
    s.grant(3, 640 + 5000).unwrap();
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(3, 5640)])]);
    assert_eq!(s.stats().credits_sent, 1);
    // More messages still grant nothing by themselves.
    fake.deliver(&[(3, 10, 704, 64)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), []);
    // Several grants in one CREDIT.
    s.grant_many(&[(3, 9000), (4, 100)]).unwrap();
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(3, 9000), credit(4, 100)])]);
}

/// Answers the first SUBSCRIBE with `before` ERRORs (request 0 when
/// `None`, else the request id plus the given offset) and then an ACK.
fn subscribe_against(before: Vec<(Option<u32>, ErrorCode, u64)>) -> (Subscriber, Result<u32, ClientError>) {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    let replier = thread::spawn(move || {
        let (b, from) = fake.recv_raw(Duration::from_secs(2)).expect("a SUBSCRIBE");
        let Ok(Frame::Control(Control::Subscribe(mut r))) = ms_wire::parse(&b) else { panic!("not a SUBSCRIBE") };
        let request = r.next().unwrap().request;
        for (offset, code, detail) in before {
            let id = offset.map_or(0, |o| request.wrapping_add(o));
            fake.send_error(Some(from), ErrorEntry::whole(id, code, detail));
        }
        let mut buf = [0u8; 64];
        let len = control::emit_acks(
            &mut buf,
            &[Ack { request, part: 0, parts: 1, streams: 5, lifetime_ms: 30_000, instance: 7 }],
        )
        .unwrap();
        fake.sock.send_to(&buf[..len], from).unwrap();
        fake
    });
    let r = s.subscribe(10, 14, Duration::from_millis(500));
    drop(replier.join().unwrap());
    (s, r)
}

#[test]
fn slow_consumer_notices_do_not_answer_requests() {
    // A SlowConsumer notice and an ERROR for another request arrive while
    // the SUBSCRIBE waits: neither answers it; the ACK does.
    let (s, r) = subscribe_against(vec![(None, ErrorCode::SlowConsumer, 42), (Some(100), ErrorCode::RangeTooLarge, 9)]);
    assert_eq!(r.unwrap(), 5);
    assert_eq!(s.slow_consumer_notices(), [42]);
    assert_eq!(s.stats().slow_consumer, 1);

    // An ERROR with request 0 that refuses a datagram still fails the
    // request (the appliance could not parse it).
    let (s, r) = subscribe_against(vec![(None, ErrorCode::SlowConsumer, 1), (None, ErrorCode::Malformed, 0)]);
    assert!(matches!(r, Err(ClientError::Refused { code: ErrorCode::Malformed, .. })), "{r:?}");
    assert_eq!(s.slow_consumer_notices(), [1]);
    // So does an ERROR naming the request.
    let (_, r) = subscribe_against(vec![(Some(0), ErrorCode::SubscriptionsFull, 12)]);
    assert!(matches!(r, Err(ClientError::Refused { code: ErrorCode::SubscriptionsFull, detail: 12, .. })), "{r:?}");
}

#[test]
fn slow_consumer_notices_while_receiving_stop_the_stream_grants() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(Some(1000));
    fake.deliver(&[(9, 0, 10, 10), (11, 0, 10, 10)]);
    take(&mut s, 2);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(9, 1010), credit(11, 1010)])]);
    let end = Instant::now() + Duration::from_secs(5);
    for (i, stream) in (9..10).chain(1000..2099).enumerate() {
        fake.send_error(None, ErrorEntry::whole(0, ErrorCode::SlowConsumer, stream));
        // Read as we go: the socket buffer holds only so many datagrams.
        while (i % 50 == 49 || i == 1099) && s.stats().slow_consumer <= i as u64 && Instant::now() < end {
            assert_eq!(s.recv(Duration::from_millis(5)).unwrap(), None, "only notices were sent");
        }
    }
    assert_eq!(s.stats().slow_consumer, 1100);
    assert_eq!(s.slow_consumer_notices().len(), 1024, "kept");
    assert_eq!(&s.slow_consumer_notices()[..3], [9, 1000, 1001]);
    assert_eq!(s.stats().malformed, 0);
    // Stream 9's subscription is gone: its grant is no longer re-sent.
    s.heartbeat().unwrap();
    assert_eq!(fake.recv_all(), [Got::Heartbeat, Got::Credit(vec![credit(11, 1010)])]);
}

#[test]
fn subscribing_again_starts_the_grants_again() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    s.set_credit_window(Some(1000));
    fake.deliver(&[(10, 40, 5000, 100)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(10, 6000)])]);
    // The stream may be new in the appliance after this: positions start
    // from 0 again, so the old grant must not hold back new ones.
    let mut buf = [0u8; 64];
    let len = control::emit_acks(
        &mut buf,
        &[Ack { request: 1, part: 0, parts: 1, streams: 1, lifetime_ms: 30_000, instance: 7 }],
    )
    .unwrap();
    fake.sock.send(&buf[..len]).unwrap();
    assert_eq!(s.subscribe(10, 10, Duration::from_millis(500)).unwrap(), 1);
    assert_eq!(fake.recv(QUIET).map(|g| matches!(g, Got::Other(FrameType::Subscribe))), Some(true));
    assert_eq!((s.last_position(10), s.last_grant(10)), (None, None));
    fake.deliver(&[(10, 0, 20, 20)]);
    take(&mut s, 1);
    assert_eq!(fake.recv_all(), [Got::Credit(vec![credit(10, 1020)])]);
}

#[test]
fn publisher_counts_backpressure_without_blocking() {
    let fake = Fake::new();
    let mut p = Publisher::new(fake.addr(), "127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let t = Instant::now();
    assert_eq!(p.poll_backpressure().unwrap(), 0);
    assert!(t.elapsed() < Duration::from_millis(100), "poll_backpressure blocked");
    for i in 0..10u64 {
        p.publish(1, 1, &i.to_le_bytes()).unwrap();
    }
    p.flush().unwrap();
    let (_, from) = fake.recv_raw(Duration::from_secs(1)).expect("a PUBLISH");
    let mut buf = [0u8; 128];
    let len = control::emit_backpressure(
        &mut buf,
        &[Backpressure { stream: 1, refused: 3 }, Backpressure { stream: 2, refused: 2 }],
    )
    .unwrap();
    fake.sock.send_to(&buf[..len], from).unwrap();
    fake.send_error(Some(from), ErrorEntry::whole(0, ErrorCode::MixedShards, 2));
    fake.sock.send_to(b"not ours", from).unwrap();
    let len = control::emit_backpressure(&mut buf, &[Backpressure { stream: 1, refused: 1 }]).unwrap();
    fake.sock.send_to(&buf[..len], from).unwrap();

    let mut refused = 0;
    let end = Instant::now() + Duration::from_secs(1);
    while (p.backpressure_frames() < 2 || p.other_frames() < 2) && Instant::now() < end {
        refused += p.poll_backpressure().unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((refused, p.refused(), p.backpressure_frames(), p.other_frames()), (6, 6, 2, 2));
    assert_eq!(p.poll_backpressure().unwrap(), 0);
    // The sockets still send (and block) as before.
    p.publish(1, 1, b"again").unwrap();
    p.flush().unwrap();
    assert!(fake.recv_raw(Duration::from_secs(1)).is_some());
    assert_eq!(p.counts(), (11, 2));
}

/// Regression: `recv` with a timeout that ran out during its bookkeeping
/// answered "nothing" without reading the socket, and a test draining
/// 1,000 subscribers with 1 ms timeouts on a busy machine stopped early.
#[test]
fn a_timeout_that_has_run_out_still_reads_what_waits_in_the_socket() {
    let fake = Fake::new();
    let mut s = fake.subscriber(NO_HEARTBEATS);
    fake.deliver(&[(7, 0, 30, 30)]);
    thread::sleep(Duration::from_millis(50));
    let d = s.recv(Duration::ZERO).unwrap().expect("the waiting message");
    assert_eq!((d.stream, d.seq), (7, 0));
    assert!(s.recv(Duration::ZERO).unwrap().is_none(), "and then nothing");
}
