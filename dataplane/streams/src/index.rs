//! An open-addressing index from u64 keys to u32 slots of a slab: linear
//! probing, at most half full, backward-shift deletion (no tombstones, so
//! probe lengths do not grow with churn). Buckets hold only `slot + 1`
//! (4 bytes); the key is read from the slab through `key_of`, which the
//! batched lookup prefetches.

use ms_wire::shard::mix;

const EMPTY: u32 = 0;

/// The index. Capacity is fixed at construction.
#[derive(Debug)]
pub struct Index {
    buckets: Vec<u32>,
    mask: usize,
    len: usize,
}

impl Index {
    /// An index for up to `max` keys (2 * max buckets, rounded up to a
    /// power of two).
    pub fn with_capacity(max: usize) -> Index {
        let n = (max.max(1) * 2).next_power_of_two();
        let mut buckets = vec![EMPTY; n];
        // Measured: +8 MB of RSS at a million streams otherwise.
        crate::resident(&mut buckets);
        Index { buckets, mask: n - 1, len: 0 }
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the buckets take.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<u32>()
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        mix(key) as usize & self.mask
    }

    /// Hints the CPU to fetch `key`'s home bucket.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        prefetch(&self.buckets[self.home(key)]);
    }

    /// The slot holding `key`.
    #[inline]
    pub fn find(&self, key: u64, key_of: impl Fn(u32) -> u64) -> Option<u32> {
        self.position(key, &key_of).map(|i| self.buckets[i] - 1)
    }

    /// The bucket holding `key`. The probe visits each bucket at most once:
    /// `insert` keeps the index at most half full, so an empty bucket ends
    /// every probe long before that bound, which only makes termination
    /// independent of the load factor.
    #[inline]
    fn position(&self, key: u64, key_of: impl Fn(u32) -> u64) -> Option<usize> {
        let mut i = self.home(key);
        for _ in 0..self.buckets.len() {
            match self.buckets[i] {
                EMPTY => return None,
                b if key_of(b - 1) == key => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    /// Looks up a batch: prefetches every home bucket first, so the
    /// memory latency of the lookups overlaps.
    pub fn find_batch(&self, keys: &[u64], out: &mut [Option<u32>], key_of: impl Fn(u32) -> u64) {
        for &k in keys {
            self.prefetch(k);
        }
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = self.find(*k, &key_of);
        }
    }

    /// Stores `key -> slot`. The caller guarantees `key` is absent and that
    /// no more than the constructed capacity is stored.
    pub fn insert(&mut self, key: u64, slot: u32, key_of: impl Fn(u32) -> u64) {
        debug_assert!(self.find(key, &key_of).is_none());
        assert!(self.len < self.buckets.len() / 2, "index over capacity");
        let mut i = self.home(key);
        while self.buckets[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.buckets[i] = slot + 1;
        self.len += 1;
    }

    /// Removes `key`; returns its slot.
    pub fn remove(&mut self, key: u64, key_of: impl Fn(u32) -> u64) -> Option<u32> {
        let mut i = self.position(key, &key_of)?;
        let slot = self.buckets[i] - 1;
        self.buckets[i] = EMPTY;
        self.len -= 1;
        // Shift later members of the cluster back over the hole when their
        // home is not between the hole and their position. At most one lap,
        // like `position`; at half load an empty bucket ends it far sooner.
        let mut j = (i + 1) & self.mask;
        for _ in 1..self.buckets.len() {
            if self.buckets[j] == EMPTY {
                break;
            }
            let h = self.home(key_of(self.buckets[j] - 1));
            let dist_j = j.wrapping_sub(h) & self.mask;
            let dist_hole = j.wrapping_sub(i) & self.mask;
            if dist_j >= dist_hole {
                self.buckets[i] = self.buckets[j];
                self.buckets[j] = EMPTY;
                i = j;
            }
            j = (j + 1) & self.mask;
        }
        Some(slot)
    }
}

#[inline]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; any address is allowed, and this one is a
    // valid reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Model test: the index agrees with a HashMap under random inserts
    /// and removals, with keys chosen to collide often.
    fn run(ops: Vec<(bool, u64)>) {
        let cap = 64;
        let mut idx = Index::with_capacity(cap);
        let mut keys = vec![0u64; cap];
        let mut free: Vec<u32> = (0..cap as u32).rev().collect();
        let mut model: HashMap<u64, u32> = HashMap::new();
        for (insert, key) in ops {
            let key_of = |s: u32| keys[s as usize];
            if insert && !model.contains_key(&key) {
                let Some(slot) = free.pop() else { continue };
                keys[slot as usize] = key;
                idx.insert(key, slot, |s| keys[s as usize]);
                model.insert(key, slot);
            } else if !insert {
                assert_eq!(idx.remove(key, key_of), model.remove(&key));
                if let Some(s) = model.get(&key) {
                    free.push(*s);
                }
            }
            for (k, s) in &model {
                assert_eq!(idx.find(*k, |s| keys[s as usize]), Some(*s));
            }
            assert_eq!(idx.len(), model.len());
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0..80u64), 0..400)) {
            run(ops);
        }
    }

    /// Filled to its capacity, the index still answers "absent" for a key
    /// it does not hold; and even with every bucket taken (which `insert`
    /// never allows) probes end after one lap instead of spinning.
    #[test]
    fn probes_for_missing_keys_terminate_when_full() {
        let cap = 8;
        let keys: Vec<u64> = (0..cap as u64).map(|k| k * 31).collect();
        let mut idx = Index::with_capacity(cap);
        for (s, k) in keys.iter().enumerate() {
            idx.insert(*k, s as u32, |s| keys[s as usize]);
        }
        assert_eq!(idx.len(), cap);
        assert_eq!(idx.find(1, |s| keys[s as usize]), None);
        assert_eq!(idx.remove(1, |s| keys[s as usize]), None);

        let all: Vec<u64> = (0..idx.buckets.len() as u64).map(|k| k * 31).collect();
        for (i, b) in idx.buckets.iter_mut().enumerate() {
            *b = i as u32 + 1;
        }
        assert_eq!(idx.find(1, |s| all[s as usize]), None);
        assert_eq!(idx.remove(1, |s| all[s as usize]), None);
        assert_eq!(idx.find(all[3], |s| all[s as usize]), Some(3));
    }

    #[test]
    fn removed_slots_are_returned_to_the_caller() {
        let mut keys = [0u64; 4];
        let mut idx = Index::with_capacity(4);
        keys[0] = 7;
        idx.insert(7, 0, |s| keys[s as usize]);
        assert_eq!(idx.remove(7, |s| keys[s as usize]), Some(0));
        assert_eq!(idx.find(7, |s| keys[s as usize]), None);
        assert!(idx.is_empty());
    }

    #[test]
    fn batch_matches_single_lookups() {
        let keys: Vec<u64> = (0..100).map(|i| i * 7919).collect();
        let mut idx = Index::with_capacity(100);
        for (s, k) in keys.iter().enumerate() {
            idx.insert(*k, s as u32, |s| keys[s as usize]);
        }
        let probe: Vec<u64> = (0..120).map(|i| i * 7919).collect();
        let mut out = vec![None; probe.len()];
        idx.find_batch(&probe, &mut out, |s| keys[s as usize]);
        for (k, o) in probe.iter().zip(&out) {
            assert_eq!(*o, idx.find(*k, |s| keys[s as usize]));
        }
    }
}
