//! The host against hand-written modules (each fault, each ABI breach) and
//! the example plugins built for wasm32 (`make plugins`).

use ms_plugin_abi::{record, Verdict};
use ms_plugin_host::{
    engine, load, precompile, sha256, Decision, EngineSettings, Fault, Instance, Limits, LoadError, Ticker,
};
use std::time::{Duration, Instant};

/// A module that speaks the ABI, with `on_batch`'s body given (it gets the
/// count in local 0 and must leave an i32), plus extra functions.
fn module(on_batch: &str, extra: &str) -> Vec<u8> {
    let (imports, exports) = (ms_plugin_abi::wat::IMPORTS, ms_plugin_abi::wat::EXPORTS_BUT_ON_BATCH);
    let text = format!(
        r#"(module {imports} (memory (export "memory") 6) {exports}
  (func (export "ms_on_batch") (param i32) (result i32) {on_batch})
  {extra})"#
    );
    wat::parse_str(text).expect("the test module is valid")
}

struct Host {
    engine: wasmtime::Engine,
    _ticker: Ticker,
}

fn host() -> Host {
    let engine = engine(&EngineSettings::default()).expect("the engine builds");
    let _ticker = Ticker::start(&engine, Duration::from_millis(1)).expect("the epoch thread starts");
    Host { engine, _ticker }
}

impl Host {
    fn start(&self, wasm: &[u8], limits: Limits) -> Result<Instance, LoadError> {
        let artifact = precompile(&self.engine, wasm)?;
        let module = load(&self.engine, &artifact, &sha256(&artifact))?;
        Instance::start(&self.engine, &module, limits, b"", 0)
    }
}

/// Fills the batch with `n` messages: stream 100 + i, payload 8 x i.
fn fill(p: &mut Instance, n: usize) {
    let mut w = p.batch();
    for i in 0..n {
        assert!(w.push(100 + i as u64, 1, 5, &[i as u8; 8]));
    }
}

fn decision(p: &Instance, i: usize) -> Decision<'_> {
    p.decisions().expect("decided").nth(i).expect("in the batch")
}

fn verdict(p: &Instance, i: usize) -> Verdict {
    decision(p, i).verdict
}

fn all_pass(p: &Instance) -> bool {
    p.decisions().expect("decided").all(|d| d.verdict == Verdict::Pass)
}

#[test]
fn a_module_that_passes_everything() {
    let h = host();
    let mut p = h.start(&module("i32.const 0", ""), Limits::default()).unwrap();
    fill(&mut p, 3);
    p.run(1).unwrap();
    assert!(all_pass(&p));
    assert_eq!(decision(&p, 2).stream, 102);
    assert_eq!(decision(&p, 2).payload, &[2; 8]);
}

/// Drops the first message and routes the second to stream 7 (records
/// start at the buffer, 1024; the second at 1024 + len(room_for(8))).
#[test]
fn verdicts_commit_when_the_call_returns() {
    let second = 1024 + record::len(record::room_for(8));
    let body = format!(
        "(i32.store8 (i32.const {v1}) (i32.const 1))
         (i64.store (i32.const {r2}) (i64.const 7))
         (i32.store8 (i32.const {v2}) (i32.const 2))
         i32.const 0",
        v1 = 1024 + record::VERDICT,
        r2 = second + record::ROUTE.start,
        v2 = second + record::VERDICT,
    );
    let h = host();
    let mut p = h.start(&module(&body, ""), Limits::default()).unwrap();
    fill(&mut p, 3);
    p.run(1).unwrap();
    assert_eq!(verdict(&p, 0), Verdict::Drop);
    assert_eq!((verdict(&p, 1), decision(&p, 1).stream), (Verdict::Route, 7));
    assert_eq!(verdict(&p, 2), Verdict::Pass);
}

/// Each fault: the call fails with its kind, within seconds, with no
/// decision and nothing emitted.
fn contained(body: &str, extra: &str, limits: Limits, expect: fn(&Fault) -> bool) {
    let h = host();
    let wasm = module(body, extra);
    let mut p = h.start(&wasm, limits).unwrap();
    fill(&mut p, 4);
    let t = Instant::now();
    let f = p.run(1).expect_err("the call faults");
    assert!(expect(&f), "unexpected fault {f:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "contained in {:?}", t.elapsed());
    assert!(p.decisions().is_none(), "a fault leaves no decision");
    assert_eq!(p.emitted().count(), 0, "a fault leaves no emit");
}

#[test]
fn a_trap_is_contained() {
    contained(
        "(drop (call $emit (i64.const 1) (i32.const 1) (i32.const 0) (i32.const 4))) unreachable",
        "",
        Limits::default(),
        |f| matches!(f, Fault::Trap(_)),
    );
}

#[test]
fn an_endless_loop_is_interrupted_at_its_deadline() {
    contained("(loop $l (br $l)) i32.const 0", "", Limits { deadline_ticks: 5, ..Limits::default() }, |f| {
        *f == Fault::Timeout
    });
}

#[test]
fn memory_growth_past_the_cap_is_stopped() {
    let body = "(block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l))) i32.const 0";
    contained(body, "", Limits { memory_bytes: 2 << 20, ..Limits::default() }, |f| *f == Fault::MemoryCap);
}

#[test]
fn a_stack_overflow_is_contained() {
    contained(
        "(call $deep (i32.const 0))",
        "(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))",
        Limits::default(),
        |f| *f == Fault::StackOverflow,
    );
}

#[test]
fn undefined_verdicts_and_overlong_rewrites_break_the_abi() {
    let bad_verdict = format!("(i32.store8 (i32.const {}) (i32.const 9)) i32.const 0", 1024 + record::VERDICT);
    contained(&bad_verdict, "", Limits::default(), |f| matches!(f, Fault::Abi(_)));
    let too_long = format!("(i32.store16 (i32.const {}) (i32.const 5000)) i32.const 0", 1024 + record::LEN.start);
    contained(&too_long, "", Limits::default(), |f| matches!(f, Fault::Abi(_)));
    contained("i32.const 3", "", Limits::default(), |f| matches!(f, Fault::Returned { code: 3, .. }));
}

#[test]
fn emits_are_capped_per_batch_and_published_only_on_return() {
    // 1,000 emits of 4 bytes from address 0: 64 taken, the rest refused.
    let body = "(local $i i32)
        (block $done (loop $l
          (br_if $done (i32.eq (local.get $i) (i32.const 1000)))
          (drop (call $emit (i64.const 9) (i32.const 1) (i32.const 0) (i32.const 4)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        i32.const 0";
    let h = host();
    let mut p = h.start(&module(body, ""), Limits::default()).unwrap();
    fill(&mut p, 1);
    p.run(1).unwrap();
    assert_eq!(p.emitted().count(), ms_plugin_abi::EMITS_PER_BATCH_MAX);
    assert_eq!(p.refusals().0, 1000 - ms_plugin_abi::EMITS_PER_BATCH_MAX as u64);
    assert!(p.emitted().all(|(e, bytes)| e.stream == 9 && bytes.len() == 4));
    p.run(2).unwrap();
    assert_eq!(p.emitted().count(), ms_plugin_abi::EMITS_PER_BATCH_MAX, "the cap is per batch");
}

#[test]
fn counters_logs_and_time_reach_the_host() {
    let body = "(call $counter_add (i32.const 2) (call $now))
        (call $counter_add (i32.const 99) (i64.const 1))
        (call $log (i32.const 1) (i32.const 0) (i32.const 5))
        i32.const 0";
    let extra = r#"(data (i32.const 0) "hello")"#;
    let h = host();
    let mut p = h.start(&module(body, extra), Limits::default()).unwrap();
    fill(&mut p, 1);
    p.run(42).unwrap();
    assert_eq!(p.counters()[2], 42);
    assert_eq!(p.refusals().2, 1, "an unknown counter id is counted");
    assert_eq!(p.logs().len(), 1);
    assert_eq!((p.logs()[0].level, &*p.logs()[0].text()), (1, "hello"));
}

/// A module with every export, answering `version`, with `pages` of memory.
fn abi_module(version: u32, pages: u32) -> Vec<u8> {
    let exports = ms_plugin_abi::wat::EXPORTS_BUT_ON_BATCH.replace(
        r#""ms_abi_version") (result i32) i32.const 1"#,
        &format!(r#""ms_abi_version") (result i32) i32.const {version}"#),
    );
    let text = format!(
        r#"(module (memory (export "memory") {pages}) {exports}
          (func (export "ms_on_batch") (param i32) (result i32) i32.const 0))"#
    );
    wat::parse_str(text).unwrap()
}

#[test]
fn modules_that_do_not_speak_the_abi_are_refused_at_start() {
    let h = host();
    assert!(h.start(&abi_module(1, 6), Limits::default()).is_ok());
    let e = h.start(&abi_module(2, 6), Limits::default()).err().expect("another ABI version");
    assert!(e.to_string().contains("ABI version 2"), "{e}");
    let e = h.start(&abi_module(1, 1), Limits::default()).err().expect("a buffer outside the memory");
    assert!(e.to_string().contains("outside the memory"), "{e}");
    let missing = wat::parse_str(
        r#"(module (memory (export "memory") 6) (func (export "ms_abi_version") (result i32) i32.const 1))"#,
    )
    .unwrap();
    let e = h.start(&missing, Limits::default()).err().expect("missing exports");
    assert!(e.to_string().contains("no export"), "{e}");
    let foreign = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#,
    )
    .unwrap();
    assert!(h.start(&foreign, Limits::default()).is_err(), "an import the host does not offer");
}

#[test]
fn a_corrupt_artifact_is_refused_before_it_is_loaded() {
    let h = host();
    let artifact = precompile(&h.engine, &module("i32.const 0", "")).unwrap();
    let announced = sha256(&artifact);
    let mut corrupt = artifact.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    let e = load(&h.engine, &corrupt, &announced).expect_err("refused");
    assert!(matches!(e, LoadError::HashMismatch { .. }), "{e}");
    assert!(load(&h.engine, &artifact, &announced).is_ok());
}

/// Where `make plugins` puts the example plugins.
fn example(name: &str) -> Vec<u8> {
    let dir = std::env::var("MS_PLUGIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/wasm32-unknown-unknown/plugin").into());
    let path = format!("{dir}/ms_plugin_{name}.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}: build the example plugins first (make plugins)"))
}

#[test]
fn the_pass_through_example_passes_everything() {
    let h = host();
    let mut p = h.start(&example("pass"), Limits::default()).unwrap();
    fill(&mut p, 32);
    p.run(1).unwrap();
    assert!(all_pass(&p));
}

#[test]
fn the_filter_example_keeps_what_matches() {
    let h = host();
    let artifact = precompile(&h.engine, &example("filter")).unwrap();
    let module = load(&h.engine, &artifact, &sha256(&artifact)).unwrap();
    let mut p = Instance::start(&h.engine, &module, Limits::default(), b"at=0\nequals=02", 0).unwrap();
    fill(&mut p, 4);
    p.run(1).unwrap();
    let verdicts: Vec<_> = (0..4).map(|i| verdict(&p, i)).collect();
    assert_eq!(verdicts, [Verdict::Drop, Verdict::Drop, Verdict::Pass, Verdict::Drop]);
    assert_eq!(p.counters()[0], 3, "the filter counts its drops");
    let e = Instance::start(&h.engine, &module, Limits::default(), b"equals=zz", 0).err().expect("a bad configuration");
    assert!(e.to_string().contains("ms_init returned error 1"), "{e}");
}

// ------------------------------------------------------------------ chains

use ms_plugin_host::{Chain, FailurePolicy, Health, Link, Supervisor};

fn instance(h: &Host, wasm: &[u8], config: &[u8]) -> Instance {
    let artifact = precompile(&h.engine, wasm).unwrap();
    let module = load(&h.engine, &artifact, &sha256(&artifact)).unwrap();
    Instance::start(&h.engine, &module, Limits::default(), config, 0).unwrap()
}

fn link(h: &Host, name: &str, wasm: &[u8], config: &[u8], policy: FailurePolicy) -> Link {
    Link::new(name, instance(h, wasm, config), Supervisor::new(policy))
}

/// Runs `chain` over messages 0..n (stream 100 + i, payload [i]) and
/// returns what came out.
fn through(chain: &mut Chain, now_ns: u64, n: u8) -> Vec<(u64, Vec<u8>)> {
    let payloads: Vec<[u8; 1]> = (0..n).map(|i| [i]).collect();
    let input = payloads.iter().enumerate().map(|(i, p)| (100 + i as u64, 1u8, &p[..]));
    let mut got = Vec::new();
    chain.run(now_ns, input, &mut |stream, _class, payload| got.push((stream, payload.to_vec())));
    got
}

const TRAP: &str = "unreachable";
const CLOSED: FailurePolicy = FailurePolicy::FailClosed { dead_letter: 99 };

#[test]
fn a_chain_runs_its_links_in_order() {
    let h = host();
    // The first link routes message 0 to stream 7 and drops message 3.
    let body = format!(
        "(i64.store (i32.const {r0}) (i64.const 7)) (i32.store8 (i32.const {v0}) (i32.const 2))
         (i32.store8 (i32.const {v3}) (i32.const 1)) i32.const 0",
        r0 = 1024 + record::ROUTE.start,
        v0 = 1024 + record::VERDICT,
        v3 = 1024 + 3 * record::len(record::room_for(1)) + record::VERDICT,
    );
    let first = link(&h, "router", &module(&body, ""), b"", CLOSED);
    // The filter keeps payloads starting with 00 or (by the second filter) nothing else.
    let second = link(&h, "filter", &example("filter"), b"equals=00", CLOSED);
    let mut chain = Chain::new(vec![first, second]);
    assert_eq!(through(&mut chain, 1, 5), [(7, vec![0])], "routed, then filtered under its new stream");
    let c = chain.links()[0].counts;
    assert_eq!((c.messages_in, c.messages_out, c.dropped, c.rerouted), (5, 4, 1, 1));
    assert_eq!(chain.links()[1].counts.dropped, 3);
}

#[test]
fn fail_open_lets_the_batch_through_the_faulted_link_unprocessed() {
    let h = host();
    let mut chain = Chain::new(vec![
        link(&h, "trap", &module(TRAP, ""), b"", FailurePolicy::FailOpen),
        link(&h, "filter", &example("filter"), b"equals=02", CLOSED),
    ]);
    assert_eq!(through(&mut chain, 1, 4), [(102, vec![2])], "the next link still runs");
    assert_eq!(through(&mut chain, 2, 4), [(102, vec![2])]);
    let c = chain.links()[0].counts;
    assert_eq!((c.batches, c.faults, c.bypassed), (1, 1, 8), "a faulted instance is not called again");
}

#[test]
fn fail_closed_sends_the_batch_to_the_dead_letter_stream() {
    let h = host();
    let mut chain = Chain::new(vec![
        link(&h, "trap", &module(TRAP, ""), b"", CLOSED),
        link(&h, "filter", &example("filter"), b"equals=02", CLOSED),
    ]);
    let out = through(&mut chain, 1, 3);
    assert_eq!(out, [(99, vec![0]), (99, vec![1]), (99, vec![2])], "every message, unfiltered, to stream 99");
    assert_eq!(chain.links()[1].counts.batches, 0, "the rest of the chain is skipped");
}

#[test]
fn reload_attaches_a_new_instance_after_the_backoff() {
    let h = host();
    let policy = FailurePolicy::Reload {
        dead_letter: 99,
        backoff_initial_ms: 10,
        backoff_max_ms: 1_000,
        breaker_faults: 3,
        breaker_window_ms: 10_000,
    };
    let mut chain = Chain::new(vec![link(&h, "trap", &module(TRAP, ""), b"", policy)]);
    assert_eq!(through(&mut chain, 0, 1), [(99, vec![0])]);
    let l = &mut chain.links_mut()[0];
    assert!(!l.reload_due(9));
    assert!(l.reload_due(10));
    let fresh = instance(&h, &example("pass"), b"");
    assert!(l.attach(fresh, false).is_some(), "the faulted instance comes back to be freed");
    assert_eq!(l.health(), Health::Running);
    assert_eq!(through(&mut chain, 20_000_000, 1), [(100, vec![0])]);
}

#[test]
fn emits_follow_the_batch_and_skip_the_rest_of_the_chain() {
    let h = host();
    let emit = "(drop (call $emit (i64.const 55) (i32.const 2) (i32.const 0) (i32.const 2))) i32.const 0";
    let mut chain = Chain::new(vec![
        link(&h, "emitter", &module(emit, r#"(data (i32.const 0) "hi")"#), b"", CLOSED),
        link(&h, "filter", &example("filter"), b"equals=01", CLOSED),
    ]);
    assert_eq!(through(&mut chain, 1, 2), [(55, b"hi".to_vec()), (101, vec![1])]);
}

#[test]
fn a_chain_takes_at_most_one_batch() {
    let h = host();
    let mut chain = Chain::new(vec![link(&h, "pass", &example("pass"), b"", CLOSED)]);
    let payload = [0u8; 4];
    let input = (0..300u64).map(|s| (s, 1u8, &payload[..]));
    let mut n = 0;
    assert_eq!(chain.run(1, input, &mut |_, _, _| n += 1), ms_plugin_abi::BATCH_MAX);
    assert_eq!(n, ms_plugin_abi::BATCH_MAX);
}

// ------------------------------------------------------ the PUBLISH stage

use ms_plugin_host::{Chains, RangeError};
use ms_wire::publish::{Publish, PublishBuilder};

fn publish(messages: &[(u64, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0; ms_wire::DATAGRAM_MAX];
    let mut b = PublishBuilder::new(&mut buf).unwrap();
    for (s, p) in messages {
        assert!(b.push(*s, 1, p));
    }
    let len = b.len();
    buf.truncate(len);
    buf
}

fn staged(chains: &mut Chains, datagram: &[u8]) -> Vec<Vec<(u64, Vec<u8>)>> {
    let p = Publish::new_checked(datagram).unwrap();
    let mut out = Vec::new();
    chains.apply(1, &p, &mut |d| {
        let p = Publish::new_checked(d).expect("the stage writes valid PUBLISH datagrams");
        out.push(p.messages().map(|m| (m.stream, m.payload.to_vec())).collect());
    });
    out
}

#[test]
fn the_stage_touches_only_the_messages_in_a_chains_range() {
    let h = host();
    let filter = link(&h, "filter", &example("filter"), b"equals=4b", CLOSED);
    let mut chains = Chains::new(vec![(10, 19, Chain::new(vec![filter]))]).unwrap();
    let d = publish(&[(1, b"a"), (10, b"K1"), (11, b"x"), (2, b"b"), (12, b"K2"), (20, b"c")]);
    assert!(chains.covers(&Publish::new_checked(&d).unwrap()));
    let out = staged(&mut chains, &d);
    let expect: Vec<(u64, Vec<u8>)> =
        vec![(1, b"a".to_vec()), (10, b"K1".to_vec()), (2, b"b".to_vec()), (12, b"K2".to_vec()), (20, b"c".to_vec())];
    assert_eq!(out, [expect], "order kept, one datagram");
    assert!(!chains.covers(&Publish::new_checked(&publish(&[(1, b"a"), (25, b"b")])).unwrap()));
}

#[test]
fn rewrites_that_outgrow_a_datagram_make_another() {
    // Every record grows to its full room (payload + 64 bytes).
    let body = format!(
        "(local $i i32) (local $at i32) (local.set $at (i32.const 1024))
         (block $done (loop $l
           (br_if $done (i32.eq (local.get $i) (local.get 0)))
           (i32.store16 (i32.add (local.get $at) (i32.const {len})) (i32.load16_u (i32.add (local.get $at) (i32.const {room}))))
           (local.set $at (i32.add (local.get $at) (i32.and (i32.add (i32.load16_u (i32.add (local.get $at) (i32.const {room}))) (i32.const {hdr_pad})) (i32.const -8))))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br $l)))
         i32.const 0",
        len = record::LEN.start,
        room = record::ROOM.start,
        hdr_pad = record::HEADER_LEN + 7,
    );
    let h = host();
    let grow = link(&h, "grow", &module(&body, ""), b"", CLOSED);
    let mut chains = Chains::new(vec![(0, u64::MAX, Chain::new(vec![grow]))]).unwrap();
    let big = [7u8; 300];
    let d = publish(&[(1, &big), (2, &big), (3, &big), (4, &big)]);
    let out = staged(&mut chains, &d);
    assert_eq!(out.len(), 2, "4 x 364 bytes do not fit one datagram");
    let all: Vec<_> = out.concat();
    assert_eq!(all.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(all.iter().all(|m| m.1.len() == 364 && m.1[..300] == big));
}

#[test]
fn overlapping_or_empty_ranges_are_refused() {
    let h = host();
    let a = Chain::new(vec![link(&h, "pass", &example("pass"), b"", CLOSED)]);
    let b = Chain::new(vec![link(&h, "pass", &example("pass"), b"", CLOSED)]);
    let e = Chains::new(vec![(0, 10, a), (10, 20, b)]).err().expect("overlap");
    assert_eq!(e, RangeError::Overlap(0, 10, 10, 20));
    let c = Chain::new(vec![link(&h, "pass", &example("pass"), b"", CLOSED)]);
    assert_eq!(Chains::new(vec![(5, 4, c)]).err(), Some(RangeError::Empty(5, 4)));
}

#[test]
fn the_c_example_drops_classes_below_its_minimum() {
    let h = host();
    let artifact = precompile(&h.engine, &example("c_class")).unwrap();
    let module = load(&h.engine, &artifact, &sha256(&artifact)).unwrap();
    let mut p = Instance::start(&h.engine, &module, Limits::default(), b"min_class=2", 0).unwrap();
    let mut w = p.batch();
    for class in 0..4u8 {
        assert!(w.push(u64::from(class), class, 0, b"m"));
    }
    p.run(1).unwrap();
    let verdicts: Vec<_> = p.decisions().unwrap().map(|d| d.verdict).collect();
    assert_eq!(verdicts, [Verdict::Drop, Verdict::Drop, Verdict::Pass, Verdict::Pass]);
    assert_eq!(p.counters()[0], 2);
    assert!(Instance::start(&h.engine, &module, Limits::default(), b"min_class=9", 0).is_err(), "a bad configuration");
}

/// The examples in the real host: what their native tests check, once
/// more through the ABI.
#[test]
fn the_version_example_hands_its_count_to_the_next_version() {
    let h = host();
    let mut v1 = instance(&h, &example("version"), b"version=1");
    fill(&mut v1, 5);
    v1.run(1).unwrap();
    assert!(v1.decisions().unwrap().all(|d| d.payload.last() == Some(&1)), "stamped with version 1");
    v1.drain(2).unwrap();
    let state = v1.snapshot(2).unwrap();
    v1.stop(2).unwrap();
    let mut v2 = instance(&h, &example("version"), b"version=2");
    v2.restore(&state, 3).unwrap();
    fill(&mut v2, 2);
    v2.run(4).unwrap();
    assert!(v2.decisions().unwrap().all(|d| d.payload.last() == Some(&2)));
    assert_eq!(v2.counters()[1], 7, "5 seen by version 1, 2 by version 2");
    assert!(v2.restore(&[0; 3], 5).is_err(), "a state of the wrong length is refused");
}

#[test]
fn the_stamp_and_route_examples_through_the_abi() {
    let h = host();
    let mut stamp = instance(&h, &example("stamp"), b"");
    fill(&mut stamp, 1);
    stamp.run(1).unwrap();
    let d = decision(&stamp, 0);
    assert_eq!(d.payload, [&[0u8; 8][..], &5u64.to_le_bytes()].concat(), "the arrival time appended");
    let mut route = instance(&h, &example("route"), b"base=1000\ncount=3");
    fill(&mut route, 4);
    route.run(1).unwrap();
    let streams: Vec<_> = route.decisions().unwrap().map(|d| (d.verdict, d.stream)).collect();
    assert_eq!(
        streams,
        [(Verdict::Route, 1000), (Verdict::Route, 1001), (Verdict::Route, 1002), (Verdict::Pass, 103)],
        "keyed by the first payload byte"
    );
}
