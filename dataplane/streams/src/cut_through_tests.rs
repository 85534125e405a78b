//! Cut-through publishing ([`Streams::publish_through`]): when it sends at
//! once, when it must queue instead, and that a refused send loses and
//! repeats nothing.

use super::*;

fn peer(n: u16) -> Peer {
    Peer { ip: 0xc612_0000 + u32::from(n), port: 40_000 + n }
}

fn table() -> Streams {
    Streams::new(Limits { streams: 16, subscribers: 8, subscriptions: 64, lifetime_ms: 1000, queue_bytes: 1 << 20 })
}

/// Credit large enough never to stall.
const OPEN: u64 = u64::MAX / 2;

/// (subscriber, stream, seq, payload) of every message handed over.
type Sent = Vec<(Peer, u64, u64, Vec<u8>)>;

/// Publishes through; `refuse_at` makes the n-th hand-over of this call fail.
fn publish(t: &mut Streams, id: u64, payload: &[u8], refuse_at: Option<usize>, sent: &mut Sent) -> Outcome {
    let mut calls = 0;
    let mut got = Vec::new();
    let outcome = t.publish_through(id, 1, 7, payload, |sub, o| {
        calls += 1;
        if Some(calls) == refuse_at {
            return false;
        }
        got.push(copied(sub, o));
        true
    });
    sent.extend(got.into_iter().map(|(sub, stream, seq, buf)| (t.peer(sub), stream, seq, buf)));
    outcome
}

/// What a hand-over gave subscriber slot `sub`: (slot, stream, seq, payload).
fn copied(sub: u32, o: &Out<'_>) -> (u32, u64, u64, Vec<u8>) {
    let mut buf = vec![0; o.len];
    o.copy_payload(&mut buf);
    (sub, o.meta.stream, o.meta.seq, buf)
}

fn serve(t: &mut Streams, sent: &mut Sent) -> Served {
    let mut got = Vec::new();
    let served = t.serve(1024, |sub, o| {
        got.push(copied(sub, o));
        true
    });
    sent.extend(got.into_iter().map(|(sub, stream, seq, buf)| (t.peer(sub), stream, seq, buf)));
    served
}

fn subscribe(t: &mut Streams, who: u16, id: u64, credit: u64) {
    t.subscribe(peer(who), id, 0).unwrap();
    t.credit(peer(who), id, credit);
}

#[test]
fn caught_up_subscribers_with_credit_get_the_message_without_the_pool() {
    let mut t = table();
    for who in 0..3 {
        subscribe(&mut t, who, 5, OPEN);
    }
    let mut sent = Sent::new();
    assert_eq!(publish(&mut t, 5, b"hello", None, &mut sent), Outcome::Queued { seq: 0, fanout: 3 });
    let mut who: Vec<_> = sent.iter().map(|s| s.0).collect();
    who.sort_by_key(|p| p.port);
    assert_eq!(who, [peer(0), peer(1), peer(2)]);
    assert!(sent.iter().all(|s| s.1 == 5 && s.2 == 0 && s.3 == b"hello"));
    assert_eq!(t.gauges().pool_used_bytes, 0, "nothing stored");
    assert_eq!(serve(&mut t, &mut sent).messages, 0, "nothing left for the scheduler");
    let tally = t.take_tally();
    assert_eq!((tally.queued, tally.fanout, tally.sent), (1, 3, 3), "counted as queued and sent");
    assert_eq!(t.position(5), Some(5));
}

#[test]
fn one_subscriber_without_credit_makes_the_message_wait_in_the_queue() {
    let mut t = table();
    subscribe(&mut t, 0, 5, OPEN);
    t.subscribe(peer(1), 5, 0).unwrap();
    t.credit(peer(1), 5, 0); // no credit beyond the initial grant
    let big = vec![9u8; 1400];
    let mut sent = Sent::new();
    // Within the initial grant: through. Then past it for peer 1: queued.
    let mut n = 0;
    while sent.iter().filter(|s| s.0 == peer(1)).count() == n {
        publish(&mut t, 5, &big, None, &mut sent);
        n += 1;
        assert!(n < 1000, "the initial grant never ran out");
    }
    let before = sent.len();
    publish(&mut t, 5, &big, None, &mut sent);
    assert_eq!(sent.len(), before, "not cut through: peer 1 has no credit");
    assert!(t.gauges().pool_used_bytes > 0, "stored instead");
    serve(&mut t, &mut sent);
    assert_eq!(sent.last().map(|s| s.0), Some(peer(0)), "peer 0 gets it from the queue");
}

#[test]
fn a_backlog_keeps_the_stream_in_order() {
    let mut t = table();
    t.subscribe(peer(0), 5, 0).unwrap();
    let grant = t.subscription(peer(0), 5).unwrap().grant;
    let mut sent = Sent::new();
    // Fill past the initial grant so a message waits.
    let big = vec![1u8; 1400];
    while t.gauges().queued_messages == 0 {
        publish(&mut t, 5, &big, None, &mut sent);
    }
    t.credit(peer(0), 5, grant + (1 << 20));
    // The queue is not empty: this one must go after it, not ahead.
    publish(&mut t, 5, b"last", None, &mut sent);
    serve(&mut t, &mut sent);
    let seqs: Vec<u64> = sent.iter().map(|s| s.2).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, none missing: {seqs:?}");
    assert_eq!(sent.last().map(|s| s.3.as_slice()), Some(&b"last"[..]));
}

#[test]
fn nothing_waiting_in_the_scheduler_is_overtaken() {
    let mut t = table();
    subscribe(&mut t, 0, 1, OPEN);
    subscribe(&mut t, 0, 2, OPEN);
    // Stream 1's message waits for the scheduler (queued, not through).
    assert!(matches!(t.publish(1, 1, 0, b"first"), Outcome::Queued { .. }));
    let mut sent = Sent::new();
    publish(&mut t, 2, b"second", None, &mut sent);
    assert!(sent.is_empty(), "stream 2 waits its turn behind stream 1");
    serve(&mut t, &mut sent);
    let order: Vec<u64> = sent.iter().map(|s| s.1).collect();
    assert_eq!(order, [1, 2]);
}

#[test]
fn a_refused_hand_over_stores_the_message_for_the_rest_only() {
    for refuse_at in 1..=3 {
        let mut t = table();
        for who in 0..3 {
            subscribe(&mut t, who, 5, OPEN);
        }
        let mut sent = Sent::new();
        publish(&mut t, 5, b"once", Some(refuse_at), &mut sent);
        assert_eq!(sent.len(), refuse_at - 1, "handed over before the refusal");
        assert!(t.gauges().queued_messages == 1, "stored for the others");
        serve(&mut t, &mut sent);
        let mut who: Vec<_> = sent.iter().map(|s| s.0).collect();
        who.sort_by_key(|p| p.port);
        assert_eq!(who, [peer(0), peer(1), peer(2)], "each exactly once (refused at {refuse_at})");
        assert_eq!(t.gauges().queued_messages, 0, "freed once everyone has it");
        let tally = t.take_tally();
        assert_eq!((tally.queued, tally.fanout, tally.sent), (1, 3, 3));
    }
}

#[test]
fn switched_off_every_message_is_queued() {
    let mut t = table();
    t.set_tunables(Tunables { cut_through: false, ..Tunables::default() });
    subscribe(&mut t, 0, 5, OPEN);
    let mut sent = Sent::new();
    publish(&mut t, 5, b"queued", None, &mut sent);
    assert!(sent.is_empty() && t.gauges().queued_messages == 1, "scheduler.cut_through: false");
    serve(&mut t, &mut sent);
    assert_eq!(sent.len(), 1);
}

#[test]
fn no_cut_through_when_the_pool_could_not_take_the_message() {
    // Ten 64-byte chunks, one of them taken by a stored message: a 600-byte
    // message would not fit if a hand-over failed half-way, so it is not
    // handed to anyone, and the pool refuses it as before.
    let limits =
        Limits { streams: 4, subscribers: 4, subscriptions: 8, lifetime_ms: 1000, queue_bytes: 10 * SLOT_BYTES };
    let mut t = Streams::new(limits);
    subscribe(&mut t, 0, 1, OPEN);
    t.subscribe(peer(1), 2, 0).unwrap();
    assert!(matches!(t.publish(2, 1, 0, b"kept"), Outcome::Queued { .. }));
    subscribe(&mut t, 1, 2, 0); // still queued: nobody served it
    let mut sent = Sent::new();
    assert_eq!(publish(&mut t, 1, &[5u8; 600], None, &mut sent), Outcome::Refused(Refusal::PoolFull));
    assert!(sent.is_empty());
    assert!(matches!(publish(&mut t, 1, &[5u8; 64], None, &mut sent), Outcome::Queued { .. }));
}
