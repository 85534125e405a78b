//! The simulator in `cargo test`: many short seeded scenarios, one replayed
//! seed, and proof that a planted bug is caught.

use ms_sim::{run, Mutation, Scenario};

/// Scenarios `many_seeds` runs (seeds 1..=SEEDS) unless `MS_SIM_SEEDS`
/// says how many: about 30 s in a debug build on a busy two-core machine.
const SEEDS: u64 = 400;

fn seeds() -> u64 {
    std::env::var("MS_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(SEEDS)
}

#[test]
fn many_seeds() {
    let (mut delivered, mut handed, mut out_of_order, mut stalled, mut with_stalls) = (0, 0, 0, 0, 0);
    for seed in 1..=seeds() {
        match run(&Scenario::from_seed(seed), false) {
            Ok(s) => {
                delivered += s.delivered;
                handed += s.handed;
                out_of_order += s.out_of_order;
                stalled += s.stalled.len();
                with_stalls += u64::from(!s.stalled.is_empty());
            }
            Err(f) => panic!("{f}"),
        }
    }
    eprintln!(
        "{} seeds: {delivered} messages delivered, {handed} handed over \
         ({out_of_order} out of order by the library's subscribers); {with_stalls} ended with {stalled} \
         subscriptions stalled",
        seeds()
    );
}

/// `MS_SIM_SEED=1234 cargo test -p ms-sim --release replay -- --nocapture`
/// runs seed 1234 and prints every event (seed 1 without the variable).
#[test]
fn replay() {
    let seed = std::env::var("MS_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let sc = Scenario::from_seed(seed);
    println!("{}", sc.describe());
    match run(&sc, true) {
        Ok(s) => println!("seed {seed}: every property held: {s:#?}"),
        Err(f) => panic!("{f}"),
    }
}

/// The first failure of `mutation` within `seeds` seeds.
fn first_failure(mutation: Mutation, seeds: u64) -> Option<ms_sim::Failure> {
    (1..=seeds).find_map(|seed| run(&Scenario { mutation, ..Scenario::from_seed(seed) }, false).err())
}

#[test]
fn catches_a_planted_bug() {
    let dup = first_failure(Mutation::DuplicateDeliver(200), 20).expect("a DELIVER sent twice is caught");
    assert!(dup.what.contains("duplicate"), "{dup}");
    let pos = first_failure(Mutation::CorruptPosition(200), 20).expect("a corrupted position is caught");
    eprintln!("caught as expected:\n{dup}\n{pos}");
}

/// The first failure of `mutation` within `seeds` seeds whose clients are
/// all the library's.
fn first_library_failure(mutation: Mutation, seeds: u64) -> Option<ms_sim::Failure> {
    (1..=seeds).find_map(|seed| {
        let sc = Scenario::from_seed(seed);
        let real = vec![true; sc.real.len()];
        run(&Scenario { mutation, real, ..sc }, false).err()
    })
}

#[test]
fn catches_a_planted_client_bug() {
    let grant = first_library_failure(Mutation::GrantPastWindow(100), 20).expect("a grant past the window is caught");
    assert!(grant.what.contains("past its window"), "{grant}");
    let skip = first_library_failure(Mutation::SkipDelivery(100), 20).expect("a message not handed over is caught");
    assert!(skip.what.contains("arrived"), "{skip}");
    eprintln!("caught as expected:\n{grant}\n{skip}");
}

/// Liveness under `drop-oldest` and `conflate`: a subscriber that consumed
/// everything it was sent must not be left with messages queued past its
/// grant for good. Fails today (see sim/README.md, "Findings"): a
/// subscription whose CREDIT arrives after the policy dropped the messages
/// of its window grants `last consumed + window` forever, below every
/// message still queued. Run with `--ignored` once that is fixed.
#[test]
#[ignore = "finding: drop-oldest/conflate can leave a subscription stalled below its queued messages"]
fn no_subscription_stalls() {
    for seed in 1..=seeds() {
        let s = run(&Scenario::from_seed(seed), false).unwrap_or_else(|f| panic!("{f}"));
        assert!(s.stalled.is_empty(), "seed {seed}: stalled {:#?}", s.stalled);
    }
}
