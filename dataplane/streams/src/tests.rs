use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const LIMITS: Limits =
    Limits { streams: 16, subscribers: 8, subscriptions: 32, lifetime_ms: 1000, queue_bytes: 1 << 16 };

fn peer(n: u16) -> Peer {
    Peer { ip: 0xc612_0000 + u32::from(n), port: 40_000 + n }
}

fn subscribers(t: &Streams, id: u64) -> BTreeSet<Peer> {
    let mut out = BTreeSet::new();
    t.subscribers_of(id, |s| {
        out.insert(t.peer(s));
    });
    out
}

/// The sequence number a publish got, if it was queued.
fn seq(o: Outcome) -> Option<u64> {
    match o {
        Outcome::Queued { seq, .. } => Some(seq),
        _ => None,
    }
}

fn publish(t: &mut Streams, id: u64) -> Option<u64> {
    seq(t.publish(id, 2, 0, b"m"))
}

impl PartialOrd for Peer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Peer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

#[test]
fn subscribe_publish_unsubscribe() {
    let mut t = Streams::new(LIMITS);
    assert_eq!(t.publish(7, 2, 0, b"m"), Outcome::NoSubscriber, "no subscriber, no stream, no sequence");
    assert_eq!(t.subscribe(peer(1), 7, 0), Ok(true));
    assert_eq!(t.subscribe(peer(1), 7, 0), Ok(false), "idempotent");
    assert_eq!(t.subscribe(peer(2), 7, 0), Ok(true));
    assert_eq!(publish(&mut t, 7), Some(0));
    assert_eq!(publish(&mut t, 7), Some(1));
    assert_eq!(subscribers(&t, 7), [peer(1), peer(2)].into());
    assert!(t.unsubscribe(peer(1), 7));
    assert!(!t.unsubscribe(peer(1), 7));
    assert_eq!(subscribers(&t, 7), [peer(2)].into());
    assert_eq!(publish(&mut t, 7), Some(2), "sequence continues while the stream lives");
    assert!(t.unsubscribe(peer(2), 7));
    let g = t.gauges();
    assert_eq!(
        (g.streams, g.subscribers, g.subscriptions, g.queued_messages, g.pool_used_bytes),
        (0, 0, 0, 0, 0),
        "last subscriber gone: everything freed"
    );
    assert_eq!(t.subscribe(peer(1), 7, 0), Ok(true));
    assert_eq!(publish(&mut t, 7), Some(0), "a new stream starts at 0");
}

#[test]
fn full_tables_refuse_without_changing_anything() {
    let mut t =
        Streams::new(Limits { streams: 2, subscribers: 2, subscriptions: 3, lifetime_ms: 1000, queue_bytes: 1 << 16 });
    t.subscribe(peer(1), 1, 0).unwrap();
    t.subscribe(peer(1), 2, 0).unwrap();
    let before = t.gauges();
    assert_eq!(t.subscribe(peer(2), 3, 0), Err(Full::Streams));
    assert_eq!(t.gauges(), before, "the new subscriber was not kept");
    t.subscribe(peer(2), 1, 0).unwrap();
    assert_eq!(t.subscribe(peer(3), 1, 0), Err(Full::Subscriptions));
    let mut u =
        Streams::new(Limits { streams: 4, subscribers: 1, subscriptions: 4, lifetime_ms: 1000, queue_bytes: 1 << 16 });
    u.subscribe(peer(1), 1, 0).unwrap();
    assert_eq!(u.subscribe(peer(2), 1, 0), Err(Full::Subscribers));
}

#[test]
fn expiry_frees_everything_and_heartbeats_keep_it() {
    let mut t = Streams::new(LIMITS);
    for s in 0..5 {
        t.subscribe(peer(1), s, 0).unwrap();
        t.subscribe(peer(2), s, 0).unwrap();
    }
    assert_eq!(t.heartbeat(peer(2), 900), Some(5));
    let mut gone = Vec::new();
    assert_eq!(t.expire(1000, 100, |_, p| gone.push(p)), 1);
    assert_eq!(gone, [peer(1)]);
    assert_eq!(t.gauges(), Gauges { streams: 5, subscribers: 1, subscriptions: 5, ..Gauges::default() });
    assert_eq!(t.expire(1899, 100, |_, _| {}), 0);
    assert_eq!(t.expire(1900, 100, |_, _| {}), 1);
    assert_eq!(t.gauges(), Gauges::default());
}

#[test]
fn expiry_work_is_bounded_per_call() {
    let mut t = Streams::new(LIMITS);
    for n in 0..8 {
        t.subscribe(peer(n), 1, 0).unwrap();
    }
    let mut total = 0;
    for _ in 0..4 {
        let n = t.expire(5000, 2, |_, _| {});
        assert!(n <= 2);
        total += n;
    }
    assert_eq!(total, 8);
}

#[test]
fn stream_bytes_per_stream() {
    let t = Streams::new(Limits { streams: 1 << 20, subscribers: 1, subscriptions: 1, lifetime_ms: 1, queue_bytes: 0 });
    assert_eq!(t.stream_bytes() / (1 << 20), 56, "48 B block + 8 B of index per stream");
    assert_eq!(std::mem::size_of::<Node>(), 56, "one subscription: 112 B for an idle stream with one subscriber");
}

#[derive(Debug, Clone)]
enum Op {
    Sub(u16, u64),
    Unsub(u16, u64),
    Publish(u64),
    Heartbeat(u16),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u16, 0..20u64).prop_map(|(p, s)| Op::Sub(p, s)),
        (0..6u16, 0..20u64).prop_map(|(p, s)| Op::Unsub(p, s)),
        (0..20u64).prop_map(Op::Publish),
        (0..6u16).prop_map(Op::Heartbeat),
        (0..400u64).prop_map(Op::Tick),
    ]
}

/// The simple reference: a map of subscriptions, per-peer last-seen times,
/// per-stream sequence numbers.
#[derive(Default)]
struct Model {
    subs: BTreeMap<u64, BTreeSet<Peer>>,
    seen: BTreeMap<Peer, u64>,
    seq: BTreeMap<u64, u64>,
}

impl Model {
    fn drop_empty(&mut self, s: u64) {
        if self.subs.get(&s).is_some_and(|p| p.is_empty()) {
            self.subs.remove(&s);
            self.seq.remove(&s);
        }
    }

    fn peer_has_subs(&self, p: Peer) -> bool {
        self.subs.values().any(|set| set.contains(&p))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Model test against a BTreeMap reference, including capacity limits
    /// (the model mirrors what a refusal leaves unchanged) and expiry.
    #[test]
    fn agrees_with_a_simple_model(ops in proptest::collection::vec(op(), 1..300)) {
        let mut t = Streams::new(LIMITS);
        let mut m = Model::default();
        let mut now = 0;
        for o in ops {
            match o {
                Op::Sub(p, s) => {
                    let r = t.subscribe(peer(p), s, now);
                    if r.is_ok() {
                        let new = m.subs.entry(s).or_default().insert(peer(p));
                        prop_assert_eq!(r, Ok(new));
                        m.seq.entry(s).or_insert(0);
                        m.seen.insert(peer(p), now);
                    }
                }
                Op::Unsub(p, s) => {
                    let had = m.subs.get_mut(&s).is_some_and(|set| set.remove(&peer(p)));
                    prop_assert_eq!(t.unsubscribe(peer(p), s), had);
                    m.drop_empty(s);
                }
                Op::Publish(s) => {
                    let want = m.seq.get_mut(&s).map(|q| { *q += 1; *q - 1 });
                    prop_assert_eq!(publish(&mut t, s), want);
                }
                Op::Heartbeat(p) => {
                    let has = m.peer_has_subs(peer(p));
                    prop_assert_eq!(t.heartbeat(peer(p), now).is_some(), has);
                    if has { m.seen.insert(peer(p), now); }
                }
                Op::Tick(d) => {
                    now += d;
                    t.expire(now, u32::MAX, |_, _| {});
                    let dead: Vec<Peer> = m.seen.iter().filter(|(p, at)| m.peer_has_subs(**p) && now - **at >= LIMITS.lifetime_ms).map(|(p, _)| *p).collect();
                    for p in dead {
                        let streams: Vec<u64> = m.subs.keys().copied().collect();
                        for s in streams {
                            m.subs.get_mut(&s).unwrap().remove(&p);
                            m.drop_empty(s);
                        }
                    }
                }
            }
            for (s, peers) in &m.subs {
                prop_assert_eq!(&subscribers(&t, *s), peers);
            }
            let g = t.gauges();
            prop_assert_eq!(g.streams as usize, m.subs.len());
            prop_assert_eq!(g.subscriptions as usize, m.subs.values().map(|p| p.len()).sum::<usize>());
        }
    }
}

/// Regression: a range SUBSCRIBE that overflowed the stream table was
/// answered with an error but left the streams before the overflow
/// subscribed. A refused set changes nothing, whichever table is full.
#[test]
fn subscribe_many_is_all_or_nothing() {
    let mut t = Streams::new(LIMITS);
    t.subscribe(peer(1), 100, 0).unwrap();
    let before = t.gauges();
    // 16 streams fit; 100 already exists, so 0..=15 needs 16 new ones: too many.
    assert_eq!(t.subscribe_many(peer(2), (0..=15).chain([100]), 5, 0), Err((Full::Streams, 15)));
    assert_eq!(t.gauges(), before, "nothing changed");
    assert_eq!(t.subscriber(peer(2)), None, "no subscriber left behind");
    assert_eq!(t.heartbeat(peer(1), 5), Some(1));
    // Subscriptions: peer 1 may take 31 more; 15 new streams + 100 (existing, new node) fits.
    assert_eq!(t.subscribe_many(peer(1), (0..15).chain([100]), 5, 0), Ok(15), "100 was already subscribed");
    assert_eq!(t.gauges().subscriptions, 16);
    // Subscriptions full: 8 peers x up to 32 nodes in total.
    for p in 2..4 {
        assert_eq!(t.subscribe_many(peer(p), 0..8, 5, 0), Ok(8));
    }
    let before = t.gauges();
    assert_eq!(t.subscribe_many(peer(4), 0..15, 5, 0), Err((Full::Subscriptions, 0)));
    assert_eq!(t.gauges(), before);
    // Subscribers full.
    let mut t = Streams::new(LIMITS);
    for p in 0..8 {
        t.subscribe(peer(p), 1, 0).unwrap();
    }
    assert_eq!(t.subscribe_many(peer(9), 1..=1, 0, 0), Err((Full::Subscribers, 1)));
    assert_eq!(t.subscribe_many(peer(3), 1..=2, 0, 0), Ok(1), "a known peer needs no new slot");
}

/// A subscriber that asks for less initial credit than the default gets
/// that much; 0 or more than the default gets the default.
#[test]
fn asked_initial_credit_is_capped_by_the_default() {
    let mut t = Streams::new(LIMITS);
    let default = t.tunables().initial_credit_bytes;
    t.subscribe_with_credit(peer(1), 7, 0, 10).unwrap();
    t.subscribe_with_credit(peer(2), 7, 0, 0).unwrap();
    t.subscribe_with_credit(peer(3), 7, 0, default + 1).unwrap();
    for _ in 0..3 {
        t.publish(7, 2, 0, &[0; 8]);
    }
    let mut sent = BTreeMap::<Peer, u32>::new();
    t.serve(100, |sub, _| {
        *sent.entry(t_peer(sub)).or_default() += 1;
        true
    });
    fn t_peer(sub: u32) -> Peer {
        peer(sub as u16 + 1)
    }
    // Slots are handed out in order: peer n has slot n - 1.
    assert_eq!(sent.get(&peer(1)), Some(&1), "10 bytes of credit: one 8-byte message");
    assert_eq!(sent.get(&peer(2)), Some(&3));
    assert_eq!(sent.get(&peer(3)), Some(&3));
}
