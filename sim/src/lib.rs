//! A deterministic simulator of the appliance: N worker engines
//! (`ms-proto`), publishers and subscribers, a fake clock and a network
//! that drops, duplicates, reorders and delays datagrams, all driven from
//! one seed. Properties are checked after every step (see [`props`]); a
//! failure names its seed, its step and the last events before it.
//!
//! Everything random comes from [`Rng`] seeded by the scenario's seed, and
//! nothing iterates a hash map, so a seed replays exactly:
//!
//! ```text
//! MS_SIM_SEED=1234 cargo test -p ms-sim --release replay -- --nocapture
//! ```
//!
//! (without `MS_SIM_SEED` the `replay` test runs seed 1). `many_seeds`
//! runs a fixed set of short scenarios in `cargo test`;
//! `catches_a_planted_bug` proves the properties catch a broken component.
//!
//! Layout: [`scenario`] (what a seed means), [`net`] (the lossy network),
//! [`clients`] (sans-IO publisher and subscriber models behind
//! [`clients::SimClient`]), [`library`] (the client library's state
//! machines behind the same trait, and which client is which), [`world`] (the workers and the step loop; their
//! `Io` is the private `io` module),
//! [`props`] (the properties), `report` (trace, failure, summary).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod clients;
mod io;
pub mod library;
pub mod net;
pub mod props;
mod report;
pub mod scenario;
pub mod world;

pub use scenario::{Mutation, Scenario};
pub use world::{run, Failure, Summary};

/// SplitMix64: small, fast, and good enough to pick simulation events.
/// Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits: the steering function's SplitMix64 mix
    /// (which adds the increment itself) of a counter stepping by it.
    pub fn next_u64(&mut self) -> u64 {
        let z = ms_wire::shard::mix(self.0);
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z
    }

    /// Uniform in `0..n` (0 when `n` is 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// An independent generator, for a component that draws its own numbers.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}
