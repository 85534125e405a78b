//! The simulator in `cargo test`: many short seeded scenarios, one replayed
//! seed, and proof that a planted bug is caught.

use ms_sim::{run, Mutation, Scenario};

/// Scenarios `many_seeds` runs (seeds 1..=SEEDS).
const SEEDS: u64 = 300;

#[test]
fn many_seeds() {
    let (mut delivered, mut stranded, mut with_stranded) = (0, 0, 0);
    for seed in 1..=SEEDS {
        match run(&Scenario::from_seed(seed), false) {
            Ok(s) => {
                delivered += s.delivered;
                stranded += s.stranded;
                with_stranded += u64::from(s.stranded > 0);
            }
            Err(f) => panic!("{f}"),
        }
    }
    eprintln!("{SEEDS} seeds: {delivered} messages delivered; {with_stranded} ended with {stranded} deliveries stranded");
}

/// `MS_SIM_SEED=1234 cargo test -p ms-sim --release replay -- --nocapture`
/// runs seed 1234 and prints every event (seed 1 without the variable).
#[test]
fn replay() {
    let seed = std::env::var("MS_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let sc = Scenario::from_seed(seed);
    println!("{}", sc.describe());
    match run(&sc, true) {
        Ok(s) => println!("seed {seed}: every property held: {s:?}"),
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
