//! Recovery against a fake appliance on loopback: an appliance restart
//! (a new instance) and expired subscriptions are noticed from the
//! heartbeat answers and the subscriptions made again; the heartbeat
//! follows the lifetime the appliance reports; a range refused by one core
//! says what the others applied; socket errors while the appliance is away
//! are outlived; `ms-sub` survives SIGSTOP/SIGCONT and refuses bad
//! durations without panicking.

use ms_client::{ClientError, Publisher, Subscriber};
use ms_wire::control::{self, Ack, Control, ErrorCode, ErrorEntry, RangeRequest};
use ms_wire::deliver::{DeliverState, DeliveryMeta};
use ms_wire::{Frame, DATAGRAM_MAX};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const INSTANCE_A: u64 = 0xaaaa;
const INSTANCE_B: u64 = 0xbbbb;

struct Fake {
    sock: UdpSocket,
}

/// What the fake received.
#[derive(Debug)]
enum Got {
    Subscribe(RangeRequest),
    Heartbeat,
    Other,
}

impl Fake {
    fn new() -> Fake {
        Fake { sock: UdpSocket::bind("127.0.0.1:0").unwrap() }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn recv(&self, wait: Duration) -> Option<(Got, SocketAddr)> {
        let mut buf = [0u8; DATAGRAM_MAX + 64];
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        let got = match ms_wire::parse(&buf[..n]) {
            Ok(Frame::Control(Control::Subscribe(mut r))) => Got::Subscribe(r.next().unwrap()),
            Ok(Frame::Control(Control::Heartbeat)) => Got::Heartbeat,
            _ => Got::Other,
        };
        Some((got, from))
    }

    /// The next SUBSCRIBE within `wait`, skipping anything else.
    fn next_subscribe(&self, wait: Duration) -> Option<(RangeRequest, SocketAddr)> {
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some((Got::Subscribe(r), from)) = self.recv(left) {
                return Some((r, from));
            }
        }
        None
    }

    fn next_heartbeat(&self, wait: Duration) -> Option<SocketAddr> {
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Some((Got::Heartbeat, from)) = self.recv(left) {
                return Some(from);
            }
        }
        None
    }

    fn ack(&self, to: SocketAddr, request: u32, part: u16, parts: u16, streams: u32, instance: u64) {
        let a = Ack { request, part, parts, streams, lifetime_ms: 3_000, instance };
        let mut buf = [0u8; 64];
        let len = control::emit_acks(&mut buf, &[a]).unwrap();
        self.sock.send_to(&buf[..len], to).unwrap();
    }

    fn error(&self, to: SocketAddr, e: ErrorEntry) {
        let mut buf = [0u8; 64];
        let len = control::emit_errors(&mut buf, &[e]).unwrap();
        self.sock.send_to(&buf[..len], to).unwrap();
    }

    fn deliver(&self, to: SocketAddr, stream: u64, seq: u64) {
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut st = DeliverState::start(&mut buf);
        let meta = DeliveryMeta { stream, seq, position: 8 * (seq + 1), timestamp_ns: 1, class: 1, flags: 0 };
        st.push_with(&mut buf, &meta, 8, |p| p.fill(1));
        self.sock.send_to(&buf[..usize::from(st.len)], to).unwrap();
    }
}

/// A subscriber to streams 10..=14 of the fake (instance A), with
/// heartbeats every `every`; the fake thread is handed back.
fn subscribed(every: Duration) -> (Subscriber, Fake) {
    let fake = Fake::new();
    let mut s = Subscriber::new(fake.addr(), "127.0.0.1:0".parse().unwrap(), every).unwrap();
    let replier = thread::spawn(move || {
        let (r, from) = fake.next_subscribe(Duration::from_secs(2)).expect("a SUBSCRIBE");
        fake.ack(from, r.request, 0, 1, 5, INSTANCE_A);
        fake
    });
    assert_eq!(s.subscribe(10, 14, Duration::from_millis(500)).unwrap(), 5);
    let fake = replier.join().unwrap();
    assert_eq!(s.instance(), Some(INSTANCE_A));
    (s, fake)
}

/// Runs `s.recv` in short slices for `d`.
fn pump(s: &mut Subscriber, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        s.recv(Duration::from_millis(10)).unwrap();
    }
}

#[test]
fn the_heartbeat_follows_the_lifetime_in_the_ack() {
    let (s, _fake) = subscribed(Duration::from_secs(10));
    assert_eq!(s.heartbeat_every(), Duration::from_secs(1), "a third of the 3 s lifetime");
}

/// Regression: after a dataplane restart a subscriber received nothing and
/// reported nothing lost. A new instance in ERROR UnknownSubscriber (the
/// answer to its HEARTBEAT) makes it subscribe again by itself.
#[test]
fn a_new_instance_makes_every_subscription_again() {
    let (mut s, fake) = subscribed(Duration::from_millis(50));
    fake.deliver(s.local_addr().unwrap(), 10, 0);
    fake.deliver(s.local_addr().unwrap(), 10, 1);
    pump(&mut s, Duration::from_millis(20));
    assert_eq!(s.stream(10).map(|st| st.received), Some(2));
    pump(&mut s, Duration::from_millis(60));
    let to = fake.next_heartbeat(Duration::from_secs(1)).expect("a HEARTBEAT");
    fake.error(to, ErrorEntry::whole(0, ErrorCode::UnknownSubscriber, INSTANCE_B));
    pump(&mut s, Duration::from_millis(20));
    let (r, from) = fake.next_subscribe(Duration::from_secs(1)).expect("subscribed again");
    assert_eq!((r.first, r.last), (10, 14));
    assert_eq!(s.stats().restarts, 1);
    assert_eq!(s.instance(), Some(INSTANCE_B));
    // The new instance's stream starts at 0: not counted out of order.
    fake.ack(from, r.request, 0, 1, 5, INSTANCE_B);
    fake.deliver(from, 10, 0);
    pump(&mut s, Duration::from_millis(30));
    let st = s.stats();
    assert_eq!((st.received, st.out_of_order, st.lost), (3, 0, 0));
}

/// Lets `s` run until it sends a HEARTBEAT, and answers it: the
/// subscriber holds `held` subscriptions on the fake's one core.
fn answer_heartbeat(s: &mut Subscriber, fake: &Fake, held: u32) {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        pump(s, Duration::from_millis(5));
        if let Some(to) = fake.next_heartbeat(Duration::from_millis(5)) {
            fake.ack(to, 0, 0, 1, held, INSTANCE_A);
            return;
        }
    }
    panic!("no HEARTBEAT");
}

#[test]
fn fewer_subscriptions_held_than_made_makes_them_again() {
    let (mut s, fake) = subscribed(Duration::from_millis(50));
    // Every heartbeat answered in full: nothing is made again.
    for _ in 0..3 {
        answer_heartbeat(&mut s, &fake, 5);
    }
    assert_eq!(s.stats().resubscribes, 0);
    // One short answer alone (it may have lost a part): nothing yet.
    answer_heartbeat(&mut s, &fake, 3);
    answer_heartbeat(&mut s, &fake, 5);
    assert_eq!(s.stats().resubscribes, 0);
    // Two of the five expired, two heartbeats in a row: made again.
    answer_heartbeat(&mut s, &fake, 3);
    answer_heartbeat(&mut s, &fake, 3);
    pump(&mut s, Duration::from_millis(80));
    let (r, to) = fake.next_subscribe(Duration::from_secs(1)).expect("subscribed again");
    assert_eq!((r.first, r.last), (10, 14));
    assert_eq!((s.stats().resubscribes, s.stats().restarts), (1, 0));
    // Refused (the table filled meanwhile): the range is dropped, not
    // asked for again at every heartbeat.
    fake.error(to, ErrorEntry::whole(r.request, ErrorCode::StreamTableFull, 10));
    pump(&mut s, Duration::from_millis(30));
    assert_eq!((s.stats().resubscribe_refused, s.subscribed_streams()), (1, 0));
    for _ in 0..3 {
        answer_heartbeat(&mut s, &fake, 0);
    }
    assert_eq!(s.stats().resubscribes, 1, "nothing left to make again");
}

#[test]
fn a_refused_range_is_undone_and_empty_ranges_are_refused_locally() {
    let fake = Fake::new();
    let mut s = Subscriber::new(fake.addr(), "127.0.0.1:0".parse().unwrap(), Duration::from_secs(60)).unwrap();
    assert!(matches!(s.subscribe(5, 4, Duration::from_millis(100)), Err(ClientError::EmptyRange { .. })));
    assert!(matches!(s.unsubscribe(5, 4, Duration::from_millis(100)), Err(ClientError::EmptyRange { .. })));
    let replier = thread::spawn(move || {
        let (r, from) = fake.next_subscribe(Duration::from_secs(2)).expect("a SUBSCRIBE");
        let e = ErrorEntry { request: r.request, code: ErrorCode::StreamTableFull, part: 1, parts: 2, detail: 1500 };
        fake.error(from, e);
        fake.ack(from, r.request, 0, 2, 480, INSTANCE_A);
        // The part that was applied is undone.
        let mut buf = [0u8; DATAGRAM_MAX];
        fake.sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, from) = fake.sock.recv_from(&mut buf).expect("an UNSUBSCRIBE");
        let Ok(Frame::Control(Control::Unsubscribe(mut u))) = ms_wire::parse(&buf[..n]) else {
            panic!("not an UNSUBSCRIBE")
        };
        let u = u.next().unwrap();
        fake.ack(from, u.request, 0, 2, 480, INSTANCE_A);
        fake.ack(from, u.request, 1, 2, 0, INSTANCE_A);
        (u.first, u.last)
    });
    let r = s.subscribe(1000, 1999, Duration::from_millis(500));
    assert!(matches!(r, Err(ClientError::Refused { applied: 480, .. })), "{r:?}");
    assert_eq!(replier.join().unwrap(), (1000, 1999));
    assert_eq!(s.subscribed_streams(), 0);
}

#[test]
fn a_range_refused_by_one_core_says_what_the_others_applied() {
    let fake = Fake::new();
    let mut s = Subscriber::new(fake.addr(), "127.0.0.1:0".parse().unwrap(), Duration::from_secs(60)).unwrap();
    let replier = thread::spawn(move || {
        let (r, from) = fake.next_subscribe(Duration::from_secs(2)).expect("a SUBSCRIBE");
        // Parts may arrive in any order: the refusal first.
        let e = ErrorEntry { request: r.request, code: ErrorCode::StreamTableFull, part: 1, parts: 2, detail: 1500 };
        fake.error(from, e);
        fake.ack(from, r.request, 0, 2, 480, INSTANCE_A);
    });
    let r = s.subscribe(1000, 1999, Duration::from_millis(500));
    replier.join().unwrap();
    match r {
        Err(ClientError::Refused { code: ErrorCode::StreamTableFull, detail: 1500, applied: 480, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn socket_errors_while_the_appliance_is_away_are_outlived() {
    let (mut s, fake) = subscribed(Duration::from_millis(20));
    drop(fake); // nothing listens: ICMP port unreachable answers what we send
    pump(&mut s, Duration::from_millis(200));
    assert!(s.stats().socket_errors > 0, "{:?}", s.stats());

    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = gone.local_addr().unwrap();
    drop(gone);
    let mut p = Publisher::new(target, "127.0.0.1:0".parse().unwrap(), 1).unwrap();
    for i in 0..20u64 {
        p.publish(1, 1, &i.to_le_bytes()).unwrap();
        p.flush().unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    let (unsent, errors) = p.unsent();
    assert!(errors > 0 && unsent == errors, "unsent {unsent}, errors {errors}");
}

fn ms_sub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ms-sub"))
}

#[test]
fn ms_sub_refuses_durations_it_cannot_wait() {
    for bad in ["nan", "1e20", "-1", "soon"] {
        let out = ms_sub().arg(format!("--duration={bad}")).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("not a duration") || err.contains("too long"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{bad}: {err}");
    }
}

/// Regression: `ms-sub` exited with "Interrupted system call" after
/// SIGSTOP/SIGCONT (Ctrl-Z, `fg`).
#[test]
fn ms_sub_survives_stop_and_continue() {
    let fake = Fake::new();
    let child = ms_sub()
        .args(["--target", &fake.addr().to_string(), "--bind", "127.0.0.1:0", "--streams", "5", "--duration", "1.5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (r, from) = fake.next_subscribe(Duration::from_secs(5)).expect("a SUBSCRIBE");
    fake.ack(from, r.request, 0, 1, 1, INSTANCE_A);
    thread::sleep(Duration::from_millis(200));
    let pid = child.id().to_string();
    for (sig, pause) in [("-STOP", 300), ("-CONT", 100), ("-STOP", 100), ("-CONT", 0)] {
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
        thread::sleep(Duration::from_millis(pause));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ms-sub failed: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"received\""), "{err}");
    drop(fake);
}
