//! The simulator in `cargo test`: many short seeded scenarios, one replayed
//! seed, and proof that a planted bug is caught.

use ms_sim::{run, Mutation, Scenario};
use ms_streams::Policy;

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

/// Liveness without loss, under every policy but `disconnect`: with no
/// datagram lost, every subscriber is eventually sent everything queued for
/// it. Guards two stalls the simulator found: a client that waited for half
/// a window to be consumed when less than a message of credit was left
/// (`CreditRule`), and a subscription a policy skipped past its window while
/// its CREDIT was on its way (`ms-streams` now sends it one message past the
/// grant after a skip).
#[test]
fn no_subscription_stalls_without_loss() {
    for policy in [Policy::Block, Policy::DropOldest, Policy::Conflate] {
        for seed in 1..=12 {
            let mut sc = Scenario::from_seed(seed);
            sc.net.drop = 0.0;
            sc.net.duplicate = 0.0;
            sc.tx_fail = 0.0;
            sc.rx_ring = 1 << 20;
            sc.mailbox = 1 << 20;
            // Room to drain: the real worker drains 64 items a turn.
            sc.mail_per_turn = 64;
            sc.drain_steps = 6_000;
            sc.tunables.default_policy = policy;
            sc.tunables.set_policies(&[]).expect("no ranges fit");
            let s = run(&sc, false).unwrap_or_else(|f| panic!("{f}"));
            assert!(s.stalled.is_empty(), "{policy:?} seed {seed}: stalled {:#?}", s.stalled);
        }
    }
}

/// Liveness with loss: fails (see sim/README.md, "Findings"). When the
/// DELIVERs that end a subscriber's window are lost, the subscriber never
/// learns it and never grants past that window, while the appliance holds
/// the grant and waits: credit is absolute and the subscriber cannot tell
/// lost DELIVERs from a quiet stream. Fixing it needs a protocol change.
#[test]
#[ignore = "finding: a lost DELIVER at the end of a window stalls its stream (protocol change needed)"]
fn no_subscription_stalls() {
    for seed in 1..=seeds() {
        let s = run(&Scenario::from_seed(seed), false).unwrap_or_else(|f| panic!("{f}"));
        assert!(s.stalled.is_empty(), "seed {seed}: stalled {:#?}", s.stalled);
    }
}
