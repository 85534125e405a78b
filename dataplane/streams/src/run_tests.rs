//! [`Streams::publish_run_through`] against its definition: publishing the
//! same messages one by one with [`Streams::publish_through`]. Two tables
//! take the same operations (runs, credit, scheduler turns, refused
//! hand-overs, a pool small enough to degrade, each stream policy); what
//! they hand over, count and hold must be the same at every step.

use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Messages (class, payload length) of stream `stream`, arriving
    /// together; the `refuse`-th hand-over of the step fails.
    Run { stream: u64, msgs: Vec<(u8, usize)>, refuse: Option<usize> },
    /// Subscriber `who` grants up to `ahead` bytes past the stream's position.
    Credit { who: u16, stream: u64, ahead: u64 },
    /// A scheduler turn.
    Serve { budget: u32, refuse: Option<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..3u64, prop::collection::vec((0..4u8, 0..300usize), 1..20), prop::option::of(1..12usize))
            .prop_map(|(stream, msgs, refuse)| Op::Run { stream, msgs, refuse }),
        3 => (0..3u16, 1..3u64, 0..20_000u64).prop_map(|(who, stream, ahead)| Op::Credit { who, stream, ahead }),
        3 => (1..256u32, prop::option::of(1..40usize)).prop_map(|(budget, refuse)| Op::Serve { budget, refuse }),
    ]
}

fn peer(n: u16) -> Peer {
    Peer { ip: 0xc612_0100 + u32::from(n), port: 41_000 + n }
}

/// (subscriber slot, stream, seq, position, class, payload) of every hand-over.
type Log = Vec<(u32, u64, u64, u64, u8, Vec<u8>)>;

/// An `emit` that logs, and refuses its `refuse`-th call.
fn logger<'l>(log: &'l mut Log, calls: &'l mut usize, refuse: Option<usize>) -> impl FnMut(u32, &Out<'_>) -> bool + 'l {
    move |sub, o| {
        *calls += 1;
        if Some(*calls) == refuse {
            return false;
        }
        let mut buf = vec![0; o.len];
        o.copy_payload(&mut buf);
        log.push((sub, o.meta.stream, o.meta.seq, o.meta.position, o.meta.class, buf));
        true
    }
}

fn table(policy: Policy) -> Streams {
    let mut t =
        Streams::new(Limits { streams: 8, subscribers: 4, subscriptions: 16, lifetime_ms: 1000, queue_bytes: 32768 });
    let mut tun = *t.tunables();
    tun.default_policy = policy;
    tun.stream_queue_bytes_max = 3000;
    // Credit only from the grants below, so runs do run short of it.
    tun.initial_credit_bytes = 0;
    t.set_tunables(tun);
    for who in 0..3 {
        for stream in 1..3 {
            t.subscribe(peer(who), stream, 0).unwrap();
            t.credit(peer(who), stream, 600 * u64::from(who + 1));
        }
    }
    t
}

/// Applies `op`; `by_run` publishes runs as the engine does (the run
/// first, what it leaves one by one), otherwise every message one by one.
fn apply(t: &mut Streams, op: &Op, by_run: bool, payloads: &[u8], log: &mut Log) -> Vec<Outcome> {
    let mut calls = 0;
    let mut outcomes = Vec::new();
    match op {
        Op::Run { stream, msgs, refuse } => {
            let run: Vec<RunMsg<'_>> =
                msgs.iter().map(|&(class, len)| RunMsg { class, payload: &payloads[..len] }).collect();
            let taken =
                if by_run { t.publish_run_through(*stream, 5, &run, logger(log, &mut calls, *refuse)) } else { 0 };
            for m in &run[taken..] {
                outcomes.push(t.publish_through(*stream, m.class, 5, m.payload, logger(log, &mut calls, *refuse)));
            }
        }
        Op::Credit { who, stream, ahead } => {
            let at = t.position(*stream).unwrap_or(0);
            t.credit(peer(*who), *stream, at + ahead);
        }
        Op::Serve { budget, refuse } => {
            t.serve(*budget, logger(log, &mut calls, *refuse));
        }
    }
    outcomes
}

proptest! {
    #[test]
    fn a_run_does_what_its_messages_one_by_one_do(
        ops in prop::collection::vec(op(), 1..60),
        policy in prop_oneof![Just(Policy::DropOldest), Just(Policy::Conflate), Just(Policy::Block), Just(Policy::Disconnect)],
    ) {
        let payloads: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let (mut a, mut b) = (table(policy), table(policy));
        for (i, op) in ops.iter().enumerate() {
            let (mut log_a, mut log_b) = (Log::new(), Log::new());
            let out_a = apply(&mut a, op, true, &payloads, &mut log_a);
            let out_b = apply(&mut b, op, false, &payloads, &mut log_b);
            prop_assert_eq!(&log_a, &log_b, "hand-overs differ at step {} ({:?})", i, op);
            // The run's own messages report nothing; those left to
            // publish_through report as they would have.
            prop_assert!(out_b.ends_with(&out_a), "outcomes differ at step {}: {:?} vs {:?}", i, out_a, out_b);
            prop_assert_eq!(a.take_tally(), b.take_tally(), "tallies differ at step {}", i);
            prop_assert_eq!(a.gauges(), b.gauges(), "gauges differ at step {}", i);
            for stream in 1..3 {
                prop_assert_eq!(a.position(stream), b.position(stream));
                prop_assert_eq!(a.queued_bytes(stream), b.queued_bytes(stream));
            }
        }
    }
}

#[test]
fn a_run_within_every_grant_is_taken_whole_and_one_past_a_grant_is_not() {
    let mut t = table(Policy::DropOldest);
    let payload = [7u8; 100];
    let run = [RunMsg { class: 1, payload: &payload }; 6];
    let (mut log, mut calls) = (Log::new(), 0);
    // Every subscriber grants at least 600 bytes: six messages of 100 fit.
    assert_eq!(t.publish_run_through(1, 5, &run, logger(&mut log, &mut calls, None)), 6);
    assert_eq!(log.len(), 18, "six messages to three subscribers");
    let seqs: Vec<u64> = log.iter().filter(|l| l.0 == log[0].0).map(|l| l.2).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    assert_eq!(t.position(1), Some(600));
    assert_eq!(t.gauges().pool_used_bytes, 0, "nothing stored");
    // The first subscriber's grant ends at 600: one more is past it.
    assert_eq!(t.publish_run_through(1, 5, &run[..2], logger(&mut log, &mut calls, None)), 0);
    assert_eq!(log.len(), 18, "nothing handed over");
}
