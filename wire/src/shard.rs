//! Steering: which shard a stream belongs to, and which appliance core owns
//! a shard. NIC RSS hashes the IP/UDP headers only, so a client sends each
//! shard's messages from its own UDP source port; RSS then spreads shards
//! over cores, and the appliance uses the same function to know the owner
//! (a datagram that lands elsewhere is handed over between cores).

/// Number of shards. A power of two, and a multiple of any worker count
/// up to 64 divides it evenly enough (at most one shard of imbalance).
pub use ms_limits::SHARDS;

/// SplitMix64's finaliser: consecutive stream ids land on unrelated shards.
pub const fn mix(stream: u64) -> u64 {
    let mut z = stream.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream's shard, `0..SHARDS`.
pub const fn shard(stream: u64) -> u32 {
    (mix(stream) >> 54) as u32 & (SHARDS - 1)
}

/// The core (worker index) that owns `stream` among `workers` (>= 1).
pub const fn owner(stream: u64, workers: u32) -> u32 {
    shard(stream) % workers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_consecutive_ids() {
        let mut per_worker = [0u32; 4];
        for s in 0..10_000 {
            per_worker[owner(s, 4) as usize] += 1;
        }
        for n in per_worker {
            assert!((2_200..2_800).contains(&n), "{per_worker:?}");
        }
    }

    #[test]
    fn one_worker_owns_everything() {
        assert!((0..1000).all(|s| owner(s, 1) == 0));
    }
}
