//! [`SubscriberState`] driven with a fake clock and hand-built appliance
//! datagrams: no sockets.

use super::*;
use crate::CreditRule;
use ms_wire::control::{self, Ack, Control, Credit, ErrorCode, ErrorEntry, RangeRequest};
use ms_wire::deliver::{DeliverState, DeliveryMeta};
use ms_wire::Frame;

const INSTANCE_A: u64 = 0xa;
const INSTANCE_B: u64 = 0xb;
/// Large enough that the receive buffer never bounds the window.
const RCVBUF: usize = 1 << 30;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A datagram the state wants sent.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Heartbeat,
    Credit(Vec<Credit>),
    Subscribe(Vec<RangeRequest>),
    Unsubscribe(Vec<RangeRequest>),
}

/// Everything queued to send, in order.
fn sent(s: &mut SubscriberState) -> Vec<Out> {
    let mut buf = [0u8; DATAGRAM_MAX];
    std::iter::from_fn(|| {
        let n = s.poll_transmit(&mut buf)?;
        Some(match ms_wire::parse(&buf[..n]) {
            Ok(Frame::Control(Control::Heartbeat)) => Out::Heartbeat,
            Ok(Frame::Control(Control::Credit(c))) => Out::Credit(c.collect()),
            Ok(Frame::Control(Control::Subscribe(r))) => Out::Subscribe(r.collect()),
            Ok(Frame::Control(Control::Unsubscribe(r))) => Out::Unsubscribe(r.collect()),
            other => panic!("unexpected datagram {other:?}"),
        })
    })
    .collect()
}

/// A DELIVER with `(stream, seq, position, payload length)` messages.
fn deliver(msgs: &[(u64, u64, u64, usize)]) -> Vec<u8> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut st = DeliverState::start(&mut buf);
    for &(stream, seq, position, len) in msgs {
        assert!(st.fits(len, DATAGRAM_MAX));
        let meta = DeliveryMeta { stream, seq, position, timestamp_ns: 1, class: 1, flags: 0 };
        st.push_with(&mut buf, &meta, len, |p| p.fill(0xab));
    }
    buf.truncate(usize::from(st.len));
    buf
}

fn ack(request: u32, part: u16, parts: u16, streams: u32, lifetime_ms: u32, instance: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let a = Ack { request, part, parts, streams, lifetime_ms, instance };
    let len = control::emit_acks(&mut buf, &[a]).expect("fits");
    buf.truncate(len);
    buf
}

fn error(e: ErrorEntry) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let len = control::emit_errors(&mut buf, &[e]).expect("fits");
    buf.truncate(len);
    buf
}

/// A state subscribed to `first..=last` (one part, acknowledged) at time 0.
fn subscribed(first: u64, last: u64, heartbeat_every: Duration) -> SubscriberState {
    let mut s = SubscriberState::new(ms(0), heartbeat_every, RCVBUF);
    let id = s.subscribe(ms(0), first, last, ms(50)).unwrap();
    let [Out::Subscribe(r)] = &sent(&mut s)[..] else { panic!("one SUBSCRIBE") };
    assert_eq!((r[0].request, r[0].first, r[0].last), (id, first, last));
    s.handle_datagram(ms(1), &ack(id, 0, 1, (last - first + 1) as u32, 60_000, INSTANCE_A));
    assert_eq!(s.poll_answer(), Some((id, RequestOutcome::Applied((last - first + 1) as u32))));
    s
}

#[test]
fn credit_follows_consumption_and_never_passes_the_window() {
    let mut s = subscribed(7, 8, ms(3_600_000));
    // A window of several largest messages, so only the half-window rule
    // decides; positions step 600 bytes (the payloads stay small).
    s.set_credit_window(Some(6_000));
    let msgs: Vec<_> = (0..10u64).flat_map(|i| [(7, i, 600 * (i + 1), 30), (8, i, 600 * (i + 1), 30)]).collect();
    s.handle_datagram(ms(2), &deliver(&msgs));
    assert_eq!(sent(&mut s), [], "nothing granted before anything is consumed");
    let mut grants = Vec::new();
    while let Some(d) = s.poll_delivery() {
        let g = s.last_grant(d.stream).expect("granted once consumed");
        assert!(g <= d.position + 6_000, "a grant never passes the window: {g} at {}", d.position);
        assert!(g > d.position, "the stream can move on");
        for o in sent(&mut s) {
            let Out::Credit(c) = o else { panic!("only CREDITs") };
            grants.extend(c);
        }
    }
    // 6,600 at the first message, 9,600 once one ends at 3,600 (half a
    // window on): the latest of each stream, in one datagram once all were
    // read.
    assert_eq!(grants, [Credit { stream: 7, position: 9_600 }, Credit { stream: 8, position: 9_600 }]);
    assert_eq!(s.stats().credits_sent, 1);
    assert_eq!((s.last_position(7), s.stats().received, s.stats().lost), (Some(6_000), 20, 0));
    // Manual mode grants nothing by itself.
    s.set_credit_window(None);
    s.handle_datagram(ms(3), &deliver(&[(7, 10, 1000, 30)]));
    assert!(s.poll_delivery().is_some());
    assert_eq!(sent(&mut s), []);
}

#[test]
fn the_credit_window_is_bounded_by_the_receive_buffer() {
    // A quarter of 8 MiB over 4 streams: 512 KiB each.
    let mut s = SubscriberState::new(ms(0), ms(1000), 8 << 20);
    s.set_credit_window(Some(1 << 30));
    s.subscribe(ms(0), 1, 4, ms(50)).unwrap();
    assert_eq!(s.effective_window(), Some(512 << 10));
    assert_eq!(s.credit_rule().map(CreditRule::window), Some(512 << 10));
}

#[test]
fn heartbeats_fall_due_on_the_fake_clock_and_resend_recent_grants() {
    let mut s = subscribed(7, 7, ms(100));
    assert_eq!(s.poll_timeout(), Some(ms(100)));
    s.handle_timeout(ms(99));
    assert_eq!(sent(&mut s), []);
    s.grant(&[(7, 5000)]);
    assert_eq!(sent(&mut s), [Out::Credit(vec![Credit { stream: 7, position: 5000 }])]);
    s.handle_timeout(ms(100));
    let resent = Out::Credit(vec![Credit { stream: 7, position: 5000 }]);
    assert_eq!(sent(&mut s), [Out::Heartbeat, resent]);
    assert_eq!(s.poll_timeout(), Some(ms(200)));
    // The lifetime in an ACK shortens the interval to a third of it.
    s.handle_datagram(ms(120), &ack(0, 0, 1, 1, 150, INSTANCE_A));
    assert_eq!((s.heartbeat_every(), s.poll_timeout()), (ms(50), Some(ms(150))));
    s.handle_timeout(ms(150));
    let [Out::Heartbeat, Out::Credit(_)] = &sent(&mut s)[..] else { panic!("a heartbeat, the grant once more") };
    s.handle_datagram(ms(151), &ack(0, 0, 1, 1, 150, INSTANCE_A));
    s.handle_timeout(ms(200));
    // A grant the appliance may not hold is still re-sent (no delivery
    // past the previous grant yet).
    let [Out::Heartbeat, Out::Credit(_)] = &sent(&mut s)[..] else { panic!("the grant may still be waited on") };
    s.handle_datagram(ms(201), &ack(0, 0, 1, 1, 150, INSTANCE_A));
    // A later grant, then a delivery past the earlier one: the appliance
    // holds the later one. Re-sent with the next two heartbeats, then no more.
    s.grant(&[(7, 6000)]);
    sent(&mut s);
    s.handle_datagram(ms(210), &deliver(&[(7, 0, 5100, 100)]));
    for t in [250, 300] {
        s.handle_timeout(ms(t));
        assert_eq!(sent(&mut s), [Out::Heartbeat, Out::Credit(vec![Credit { stream: 7, position: 6000 }])]);
        s.handle_datagram(ms(t + 1), &ack(0, 0, 1, 1, 150, INSTANCE_A));
    }
    s.handle_timeout(ms(350));
    assert_eq!(sent(&mut s), [Out::Heartbeat], "held: no longer re-sent");
    assert_eq!(s.stats().resubscribes, 0, "every heartbeat was answered in full");
}

#[test]
fn a_new_instance_in_an_ack_makes_every_subscription_again() {
    let mut s = subscribed(10, 14, ms(100));
    s.handle_datagram(ms(2), &deliver(&[(10, 4, 30, 30)]));
    assert_eq!(s.poll_delivery().map(|d| d.seq), Some(4));
    assert_eq!(s.stream(10).and_then(|st| st.next_seq), Some(5));
    sent(&mut s);
    s.handle_timeout(ms(100));
    let resent = Out::Credit(vec![Credit { stream: 10, position: 30 + DEFAULT_CREDIT_WINDOW }]);
    assert_eq!(sent(&mut s), [Out::Heartbeat, resent], "the grant made at consumption, again");
    // The heartbeat's answer comes from a restarted appliance.
    s.handle_datagram(ms(101), &ack(0, 0, 1, 0, 60_000, INSTANCE_B));
    let out = sent(&mut s);
    let [Out::Subscribe(r)] = &out[..] else { panic!("subscribed again at once: {out:?}") };
    assert_eq!((r.len(), r[0].first, r[0].last), (1, 10, 14));
    assert!(r[0].request > 1, "a new request id");
    assert_eq!((s.stats().restarts, s.stats().resubscribes, s.instance()), (1, 1, Some(INSTANCE_B)));
    assert_eq!(s.stream(10), None, "sequence numbers start again");
    assert_eq!(s.last_grant(10), None, "so do grants");
    // The same instance again changes nothing.
    s.handle_datagram(ms(102), &ack(0, 0, 1, 5, 60_000, INSTANCE_B));
    assert_eq!(sent(&mut s), []);
}

#[test]
fn a_lost_subscribe_is_sent_again_at_its_timeout_then_given_up() {
    let mut s = SubscriberState::new(ms(0), ms(30), RCVBUF);
    let id = s.subscribe(ms(0), 1, 3, ms(50)).unwrap();
    let first = sent(&mut s);
    assert!(matches!(&first[..], [Out::Subscribe(r)] if r[0].request == id));
    assert_eq!(s.poll_timeout(), Some(ms(50)), "heartbeats wait while a request does");
    s.handle_timeout(ms(49));
    assert_eq!(sent(&mut s), []);
    for attempt in 1..5u64 {
        s.handle_timeout(ms(50 * attempt));
        assert_eq!(sent(&mut s), first, "the same request again");
        assert_eq!(s.poll_timeout(), Some(ms(50 * (attempt + 1))));
    }
    s.handle_timeout(ms(250));
    assert_eq!(sent(&mut s), []);
    assert_eq!(s.poll_answer(), Some((id, RequestOutcome::TimedOut { attempts: 5 })));
    assert_eq!(s.subscribed_streams(), 0, "a failed subscribe changes nothing");
    assert_eq!(s.poll_timeout(), Some(ms(30)), "heartbeats are due again");
}

#[test]
fn an_answer_after_a_resend_completes_and_busy_pauses() {
    let mut s = SubscriberState::new(ms(0), ms(1000), RCVBUF);
    let id = s.subscribe(ms(0), 100, 199, ms(50)).unwrap();
    sent(&mut s);
    s.handle_timeout(ms(50));
    assert_eq!(sent(&mut s).len(), 1);
    // Two parts: one busy, sent again 20 ms later; both then acknowledge.
    let busy = ErrorEntry { request: id, code: ErrorCode::Busy, part: 1, parts: 2, detail: 0 };
    s.handle_datagram(ms(60), &error(busy));
    assert_eq!(s.poll_timeout(), Some(ms(80)));
    s.handle_timeout(ms(80));
    assert_eq!(sent(&mut s).len(), 1);
    s.handle_datagram(ms(81), &ack(id, 0, 2, 40, 60_000, INSTANCE_A));
    assert_eq!(s.poll_answer(), None, "one part of two");
    s.handle_datagram(ms(82), &ack(id, 1, 2, 60, 60_000, INSTANCE_A));
    assert_eq!(s.poll_answer(), Some((id, RequestOutcome::Applied(100))));
    assert_eq!(s.subscribed_streams(), 100);
    // Unsubscribing half: counted out at once, whatever the answer.
    let un = s.unsubscribe(ms(90), 150, 199, ms(50)).unwrap();
    assert!(matches!(&sent(&mut s)[..], [Out::Unsubscribe(r)] if r[0].request == un && r[0].first == 150));
    assert_eq!(s.subscribed_streams(), 50);
}

#[test]
fn slow_consumer_notices_stop_the_grants_and_the_subscription() {
    let mut s = subscribed(7, 8, ms(100));
    s.grant(&[(7, 1000)]);
    sent(&mut s);
    s.handle_datagram(ms(5), &error(ErrorEntry::whole(0, ErrorCode::SlowConsumer, 7)));
    assert_eq!((s.slow_consumer_notices(), s.subscribed_streams()), (&[7][..], 1));
    assert_eq!(s.last_grant(7), None);
    s.handle_timeout(ms(100));
    assert_eq!(sent(&mut s), [Out::Heartbeat], "its grant is not re-sent");
}
