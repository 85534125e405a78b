//! Scheduler, credit, policy and budget tests, driven without I/O.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn peer(n: u16) -> Peer {
    Peer { ip: 0xc612_0000 + u32::from(n), port: 40_000 + n }
}

fn table(queue_bytes: u64, tun: Tunables) -> Streams {
    let mut t =
        Streams::new(Limits { streams: 64, subscribers: 16, subscriptions: 256, lifetime_ms: 1000, queue_bytes });
    t.set_tunables(tun);
    t
}

/// Credit large enough never to stall.
const OPEN: u64 = u64::MAX / 2;

/// What a subscriber received: (stream, seq, len), in order.
type Got = BTreeMap<Peer, Vec<(u64, u64, usize)>>;

fn serve_all(t: &mut Streams, budget: u32, got: &mut Got) -> Served {
    let mut sends = Vec::new();
    let s = t.serve(budget, |sub, o| {
        let mut buf = vec![0; o.len];
        o.copy_payload(&mut buf);
        assert!(buf.iter().all(|b| *b == (o.meta.seq as u8)), "payload belongs to its message");
        sends.push((sub, o.meta.stream, o.meta.seq, o.len));
        true
    });
    for (sub, stream, seq, len) in sends {
        got.entry(t.peer(sub)).or_default().push((stream, seq, len));
    }
    s
}

/// Publishes a message whose bytes are its (future) sequence number.
fn pub_msg(t: &mut Streams, id: u64, class: u8, len: usize) -> Outcome {
    let next = t.stream_slot(id).map_or(0, |s| t.streams[s as usize].next_seq);
    t.publish(id, class, 0, &vec![next as u8; len])
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    s * s / (x.len() as f64 * x.iter().map(|v| v * v).sum::<f64>())
}

#[test]
fn backlogged_streams_share_bytes_fairly_whatever_their_message_sizes() {
    let tun = Tunables { stream_queue_bytes_max: 1 << 20, ..Tunables::default() };
    let mut t = table(64 << 20, tun);
    let sizes = [16usize, 64, 100, 256, 512, 900, 1200, 1400];
    for (i, _) in sizes.iter().enumerate() {
        t.subscribe(peer(i as u16), i as u64, 0).unwrap();
        t.credit(peer(i as u16), i as u64, OPEN);
    }
    let mut got = Got::new();
    for _ in 0..400 {
        for (i, len) in sizes.iter().enumerate() {
            while t.queued_bytes(i as u64) < 8 * 1400 {
                assert!(matches!(pub_msg(&mut t, i as u64, 1, *len), Outcome::Queued { .. }));
            }
        }
        serve_all(&mut t, 64, &mut got);
    }
    let bytes: Vec<f64> = (0..sizes.len()).map(|i| got[&peer(i as u16)].iter().map(|m| m.2 as f64).sum()).collect();
    let j = jain(&bytes);
    assert!(j >= 0.99, "Jain's index {j} over bytes {bytes:?}");
}

#[test]
fn classes_are_served_strictly_in_order() {
    let tun = Tunables { starvation_guard: 1024, ..Tunables::default() };
    let mut t = table(1 << 20, tun);
    for (i, class) in [3u8, 2, 1, 0].iter().enumerate() {
        t.subscribe(peer(1), i as u64, 0).unwrap();
        for _ in 0..5 {
            pub_msg(&mut t, i as u64, *class, 100);
        }
    }
    let mut got = Got::new();
    serve_all(&mut t, 100, &mut got);
    let streams: Vec<u64> = got[&peer(1)].iter().map(|m| m.0).collect();
    assert_eq!(streams, [[0u64; 5], [1; 5], [2; 5], [3; 5]].concat(), "wire class 3 (control) first, 0 (bulk) last");
}

#[test]
fn the_starvation_guard_gives_lower_classes_a_turn() {
    for (guard, want_bulk) in [(4u32, true), (1024, false)] {
        let tun = Tunables { starvation_guard: guard, quantum_bytes: 100, ..Tunables::default() };
        let mut t = table(1 << 20, tun);
        t.subscribe(peer(1), 1, 0).unwrap(); // control (wire class 3)
        t.subscribe(peer(2), 2, 0).unwrap(); // bulk (wire class 0)
        t.credit(peer(1), 1, OPEN);
        t.credit(peer(2), 2, OPEN);
        let mut got = Got::new();
        for _ in 0..200 {
            for (id, class) in [(1u64, 3u8), (2, 0)] {
                while t.queued_bytes(id) < 800 {
                    pub_msg(&mut t, id, class, 100);
                }
            }
            serve_all(&mut t, 4, &mut got);
        }
        let bulk = got.get(&peer(2)).map_or(0, |v| v.len());
        let control = got[&peer(1)].len();
        if want_bulk {
            // One visit in guard + 1 goes to the waiting class.
            assert!(bulk * (guard as usize + 1) >= control / 2, "bulk {bulk} vs control {control}");
        } else {
            assert_eq!(bulk, 0, "no guard within this window: strict priority");
        }
    }
}

#[test]
fn credit_bounds_what_is_sent_and_grants_only_grow() {
    let tun = Tunables { initial_credit_bytes: 300, ..Tunables::default() };
    let mut t = table(1 << 20, tun);
    t.subscribe(peer(1), 9, 0).unwrap();
    for _ in 0..10 {
        pub_msg(&mut t, 9, 2, 100);
    }
    let mut got = Got::new();
    serve_all(&mut t, 100, &mut got);
    assert_eq!(got[&peer(1)].len(), 3, "300 bytes of initial credit = 3 messages");
    assert!(t.credit(peer(1), 9, 500));
    assert!(t.credit(peer(1), 9, 400), "an old grant arriving late is harmless");
    serve_all(&mut t, 100, &mut got);
    assert_eq!(got[&peer(1)].len(), 5);
    assert!(!t.credit(peer(2), 9, 10_000), "no such subscription");
    assert!(t.credit(peer(1), 9, 1000));
    serve_all(&mut t, 100, &mut got);
    let seqs: Vec<u64> = got[&peer(1)].iter().map(|m| m.1).collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "in order, nothing lost");
}

/// One slow subscriber (initial credit only) and one fast one on the same
/// stream, under `policy`; returns what each got and the tally.
fn slow_and_fast(policy: Policy) -> (Vec<u64>, Vec<u64>, Tally, Vec<Outcome>, Streams) {
    let mut tun = Tunables { initial_credit_bytes: 200, stream_queue_bytes_max: 1000, ..Tunables::default() };
    tun.default_policy = policy;
    let mut t = table(1 << 20, tun);
    t.subscribe(peer(1), 5, 0).unwrap(); // slow
    t.subscribe(peer(2), 5, 0).unwrap(); // fast
    t.credit(peer(2), 5, OPEN);
    let mut got = Got::new();
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        outcomes.push(pub_msg(&mut t, 5, 2, 100));
        assert!(t.queued_bytes(5) <= 1000 + 140, "the limit holds, but for what the fast one takes this turn");
        serve_all(&mut t, 8, &mut got);
    }
    let seqs = |p| got.get(&peer(p)).map_or(vec![], |v| v.iter().map(|m| m.1).collect());
    let (slow, fast) = (seqs(1), seqs(2));
    (slow, fast, t.take_tally(), outcomes, t)
}

fn accounting_holds(t: &Streams, tally: &Tally) {
    assert_eq!(tally.fanout, tally.sent + tally.dropped_total() + t.pending_deliveries(), "{tally:?}");
}

#[test]
fn drop_oldest_skips_for_the_slow_subscriber_only() {
    let (slow, fast, tally, _, mut t) = slow_and_fast(Policy::DropOldest);
    assert_eq!(fast, (0..50).collect::<Vec<_>>(), "the fast subscriber loses nothing");
    // The initial credit's 2 messages, then the one owed after the first
    // skip (a subscriber grants as it receives: without it, one whose grant
    // was on its way would wait behind the gap for good); no more, since it
    // granted nothing since.
    assert_eq!(slow, [0, 1, 3], "initial credit: 2 messages, then one past the gap");
    t.credit(peer(1), 5, OPEN);
    let mut got = Got::new();
    serve_all(&mut t, 100, &mut got);
    let after: Vec<u64> = got[&peer(1)].iter().map(|m| m.1).collect();
    assert_eq!(after, (43..50).collect::<Vec<_>>(), "the newest queue-full (7 x 140 B), a gap before it");
    assert_eq!(tally.dropped[DropReason::DropOldest as usize], 40, "50 - 2 - 1 owed - 7 newest");
    let all = t.take_tally().merge(tally);
    accounting_holds(&t, &all);
    assert!(tally.affected.iter().any(|a| a.0 == 5 && a.1 == peer(1) && a.2 == 40), "names who lost what");
}

#[test]
fn conflate_keeps_only_the_latest_for_the_slow_subscriber() {
    let (slow, fast, tally, _, mut t) = slow_and_fast(Policy::Conflate);
    assert_eq!(fast, (0..50).collect::<Vec<_>>());
    assert_eq!(slow, [0, 1, 9], "initial credit, then the one owed after the skip");
    t.credit(peer(1), 5, OPEN);
    let mut got = Got::new();
    serve_all(&mut t, 100, &mut got);
    let after: Vec<u64> = got[&peer(1)].iter().map(|m| m.1).collect();
    assert!(after.len() <= 7 && after.last() == Some(&49), "skipped to the newest: {after:?}");
    assert!(tally.dropped[DropReason::Conflated as usize] > 0);
}

#[test]
fn disconnect_removes_the_slow_subscriber_and_says_so() {
    let (slow, fast, tally, _, mut t) = slow_and_fast(Policy::Disconnect);
    assert_eq!(fast, (0..50).collect::<Vec<_>>());
    assert_eq!(slow, [0, 1]);
    assert!(!t.credit(peer(1), 5, OPEN), "subscription gone");
    let mut notices = Vec::new();
    assert_eq!(t.take_notices(|n| notices.push(n)), 0);
    assert_eq!(notices, [Notice { peer: peer(1), stream: 5, slot: 0 }]);
    assert_eq!(tally.dropped[DropReason::Disconnected as usize], 7, "messages 2..=8, still queued for it");
    assert_eq!(t.gauges().subscriptions, 1);
}

#[test]
fn block_refuses_new_messages_and_drops_nothing_queued() {
    let (slow, fast, tally, outcomes, mut t) = slow_and_fast(Policy::Block);
    let refused = outcomes.iter().filter(|o| **o == Outcome::Refused(Refusal::Backpressure)).count();
    assert!(refused > 0);
    assert_eq!(tally.refused[Refusal::Backpressure as usize], refused as u64);
    let queued = 50 - refused as u64;
    assert_eq!(fast, (0..queued).collect::<Vec<_>>(), "contiguous: a refused message takes no sequence number");
    assert_eq!(slow, [0, 1]);
    assert_eq!(tally.dropped_total(), 0);
    t.credit(peer(1), 5, OPEN);
    let mut got = Got::new();
    serve_all(&mut t, 100, &mut got);
    assert_eq!(got[&peer(1)].len() as u64, queued - 2, "the slow one gets every queued message");
}

#[test]
fn the_budget_degrades_in_steps_and_is_never_exceeded() {
    let tun = Tunables { stream_queue_bytes_max: 1 << 20, ..Tunables::default() };
    let mut t = table(100 * SLOT_BYTES, tun);
    t.subscribe(peer(1), 1, 0).unwrap(); // never grants beyond the initial credit
    let mut levels = Vec::new();
    let mut refusals = BTreeMap::new();
    for i in 0..300u32 {
        let class = (i % 4) as u8;
        if let Outcome::Refused(r) = pub_msg(&mut t, 1, class, 64) {
            *refusals.entry(r as u8).or_insert(0) += 1;
        }
        levels.push(t.level());
        assert!(t.gauges().pool_used_bytes <= t.pool_bytes());
    }
    assert_eq!(levels.iter().max(), Some(&3));
    assert!(levels.windows(2).all(|w| w[0] <= w[1]), "fill only grows here");
    assert!(refusals[&(Refusal::ShedBulk as u8)] > 0);
    assert!(refusals[&(Refusal::ShedBestEffort as u8)] > 0);
    assert!(refusals[&(Refusal::PoolFull as u8)] > 0, "control and latency fill the rest");
    assert_eq!(t.gauges().queued_messages, 100);
    t.unsubscribe(peer(1), 1);
    assert_eq!((t.gauges().queued_messages, t.gauges().pool_used_bytes, t.level()), (0, 0, 0));
}

#[test]
fn the_stream_queue_limit_halves_under_pressure() {
    // 40 messages of 64 B (plus the descriptor each counts) per stream;
    // no credit, so nothing is sent and both subscriptions are behind.
    let charge = 64 + MSG_CHARGE_BYTES;
    let tun = Tunables {
        stream_queue_bytes_max: charge * 40,
        initial_credit_bytes: 0,
        shed_bulk_at_percent: 90,
        drop_newest_at_percent: 95,
        ..Tunables::default()
    };
    let mut t = table(80 * SLOT_BYTES, tun);
    t.subscribe(peer(1), 1, 0).unwrap();
    t.subscribe(peer(1), 2, 0).unwrap();
    for _ in 0..40 {
        pub_msg(&mut t, 1, 3, 64); // 50% of the pool, control: never shed
    }
    assert_eq!(t.level(), 1);
    for _ in 0..30 {
        pub_msg(&mut t, 2, 3, 64);
    }
    assert_eq!(t.queued_bytes(2), charge * 20, "half of 40 messages' worth");
    assert_eq!(t.queued_bytes(1), charge * 40, "untouched until relieved");
    assert_eq!(t.level(), 1, "60 of 80 slots");
    t.relieve(64);
    assert_eq!(t.queued_bytes(1), charge * 20, "the sweep applies the halved limit to idle streams too");
}

impl Tally {
    fn merge(mut self, o: Tally) -> Tally {
        self.queued += o.queued;
        self.fanout += o.fanout;
        self.sent += o.sent;
        for i in 0..self.dropped.len() {
            self.dropped[i] += o.dropped[i];
        }
        for i in 0..self.refused.len() {
            self.refused[i] += o.refused[i];
        }
        self
    }
}

#[derive(Debug, Clone)]
enum Op {
    Sub(u16, u64),
    Unsub(u16, u64),
    Publish(u64, u8, u16),
    Credit(u16, u64, u16),
    Serve(u8),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u16, 0..6u64).prop_map(|(p, s)| Op::Sub(p, s)),
        (0..4u16, 0..6u64).prop_map(|(p, s)| Op::Unsub(p, s)),
        (0..6u64, 0..5u8, 0..300u16).prop_map(|(s, c, l)| Op::Publish(s, c, l)),
        (0..4u16, 0..6u64, 0..2000u16).prop_map(|(p, s, d)| Op::Credit(p, s, d)),
        (0..40u8).prop_map(Op::Serve),
        (0..600u64).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Under any sequence of operations and every policy: each subscriber
    /// receives a stream's messages in order without duplicates, never
    /// past its grant but for one message after a skip (a gap in sequence
    /// numbers) per grant it sent; the pool never exceeds its budget; every queued
    /// delivery is sent, dropped with a reason or still queued; and when
    /// everyone leaves, the pool is empty.
    #[test]
    fn invariants_hold(ops in proptest::collection::vec(op(), 1..200), policy in 0..4u8) {
        let policy = [Policy::Block, Policy::DropOldest, Policy::Conflate, Policy::Disconnect][policy as usize];
        let tun = Tunables { initial_credit_bytes: 500, stream_queue_bytes_max: 1500, quantum_bytes: 300, starvation_guard: 3, default_policy: policy, ..Tunables::default() };
        let mut t = table(60 * SLOT_BYTES, tun);
        let mut last: BTreeMap<(Peer, u64), u64> = BTreeMap::new();
        let mut grant: BTreeMap<(Peer, u64), u64> = BTreeMap::new();
        // Subscriptions sent a message past their grant since their last grant.
        let mut owed_used: std::collections::BTreeSet<(Peer, u64)> = Default::default();
        let (mut now, mut tally) = (0, Tally::default());
        for o in ops {
            match o {
                Op::Sub(p, s) => {
                    if t.subscribe(peer(p), s, now) == Ok(true) {
                        last.remove(&(peer(p), s));
                        owed_used.remove(&(peer(p), s));
                        grant.insert((peer(p), s), t.position(s).unwrap() + 500);
                    }
                }
                Op::Unsub(p, s) => { t.unsubscribe(peer(p), s); }
                Op::Publish(s, c, l) => { pub_msg(&mut t, s, c, usize::from(l)); }
                Op::Credit(p, s, d) => {
                    if let Some(g) = grant.get_mut(&(peer(p), s)) {
                        *g += u64::from(d);
                        t.credit(peer(p), s, *g);
                        if d > 0 {
                            owed_used.remove(&(peer(p), s));
                        }
                    }
                }
                Op::Serve(n) => {
                    let mut sent = Vec::new();
                    t.serve(u32::from(n), |sub, o| { sent.push((sub, o.meta.stream, o.meta.seq, o.meta.position)); true });
                    for (sub, s, q, pos) in sent {
                        let p = t.peer(sub);
                        let prev = last.insert((p, s), q);
                        if let Some(prev) = prev { prop_assert!(q > prev, "in order, no duplicate"); }
                        if let Some(g) = grant.get(&(p, s)) {
                            if pos > *g {
                                let after_gap = prev.is_none_or(|prev| q > prev + 1);
                                prop_assert!(after_gap && owed_used.insert((p, s)), "past the grant only once after a skip");
                            }
                        }
                    }
                }
                Op::Tick(d) => { now += d; t.expire(now, u32::MAX, |_, _| {}); }
            }
            prop_assert!(t.gauges().pool_used_bytes <= t.pool_bytes());
            tally = tally.merge(t.take_tally());
            prop_assert_eq!(tally.fanout, tally.sent + tally.dropped_total() + t.pending_deliveries());
        }
        t.expire(now + 10_000, u32::MAX, |_, _| {});
        prop_assert_eq!(t.gauges().pool_used_bytes, 0);
        prop_assert_eq!(t.gauges().streams, 0);
    }
}

#[test]
fn subscribers_with_credit_are_never_behind_even_when_a_burst_exceeds_the_limit() {
    for policy in [Policy::Block, Policy::DropOldest, Policy::Conflate, Policy::Disconnect] {
        let tun = Tunables { stream_queue_bytes_max: 1000, default_policy: policy, ..Tunables::default() };
        let mut t = table(1 << 20, tun);
        t.subscribe(peer(1), 5, 0).unwrap();
        t.subscribe(peer(2), 5, 0).unwrap();
        // One loop turn's intake: 30 messages before the scheduler runs.
        for _ in 0..30 {
            assert!(matches!(pub_msg(&mut t, 5, 1, 100), Outcome::Queued { .. }), "{policy:?}");
        }
        let mut got = Got::new();
        serve_all(&mut t, 100, &mut got);
        for p in [1, 2] {
            let seqs: Vec<u64> = got[&peer(p)].iter().map(|m| m.1).collect();
            assert_eq!(seqs, (0..30).collect::<Vec<_>>(), "{policy:?}: nothing dropped for a subscriber with credit");
        }
        assert_eq!(t.take_tally().dropped_total(), 0);
    }
}

#[test]
fn empty_messages_count_against_the_stream_limit() {
    let tun = Tunables { stream_queue_bytes_max: 1000, initial_credit_bytes: 0, ..Tunables::default() };
    let mut t = table(1 << 20, tun);
    t.subscribe(peer(1), 5, 0).unwrap();
    pub_msg(&mut t, 5, 1, 1); // past the (zero) credit: the subscriber is behind
    for _ in 0..1000 {
        pub_msg(&mut t, 5, 1, 0);
    }
    assert!(t.queued_bytes(5) <= 1000, "descriptors are charged: {}", t.queued_bytes(5));
    assert!(t.gauges().queued_messages <= 1000 / MSG_CHARGE_BYTES);
    assert!(t.take_tally().dropped[DropReason::DropOldest as usize] > 900);
}
