//! The streams a subscriber made subscriptions to, as merged inclusive
//! ranges with their count kept current, and how to pack them into as few
//! SUBSCRIBE datagrams as the protocol allows.

use ms_wire::control::{RANGE_ENTRY_LEN, RANGE_IDS_MAX};
use ms_wire::{DATAGRAM_MAX, HEADER_LEN};
use std::collections::BTreeMap;

/// SUBSCRIBE entries that fit one datagram.
const ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / RANGE_ENTRY_LEN;

/// Merged, disjoint, inclusive ranges of stream ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges {
    /// first -> last; no two touch or overlap.
    map: BTreeMap<u64, u64>,
    /// Stream ids covered (saturating).
    count: u64,
}

impl Ranges {
    /// Adds `first..=last` (`first <= last`).
    pub fn add(&mut self, mut first: u64, mut last: u64) {
        debug_assert!(first <= last);
        // Every range that overlaps or touches the new one merges into it.
        let touching: Vec<(u64, u64)> = self
            .map
            .range(..=last.saturating_add(1))
            .filter(|(_, &b)| b.saturating_add(1) >= first)
            .map(|(&a, &b)| (a, b))
            .collect();
        for (a, b) in touching {
            self.map.remove(&a);
            first = first.min(a);
            last = last.max(b);
        }
        self.map.insert(first, last);
        self.recount();
    }

    /// Removes `first..=last` (`first <= last`).
    pub fn remove(&mut self, first: u64, last: u64) {
        debug_assert!(first <= last);
        let overlapping: Vec<(u64, u64)> =
            self.map.range(..=last).filter(|(_, &b)| b >= first).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in overlapping {
            self.map.remove(&a);
            if a < first {
                self.map.insert(a, first - 1);
            }
            if b > last {
                self.map.insert(last + 1, b);
            }
        }
        self.recount();
    }

    fn recount(&mut self) {
        self.count = self.map.iter().map(|(a, b)| (b - a).saturating_add(1)).fold(0, u64::saturating_add);
    }

    /// Stream ids covered.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The parts of `first..=last` not covered, in order.
    pub fn uncovered(&self, first: u64, last: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = Some(first);
        for (&a, &b) in self.map.range(..=last).filter(|(_, &b)| b >= first) {
            if let Some(n) = next.filter(|&n| n < a) {
                out.push((n, a - 1));
            }
            next = b.checked_add(1);
        }
        if let Some(n) = next.filter(|&n| n <= last) {
            out.push((n, last));
        }
        out
    }

    /// The ranges cut and grouped into SUBSCRIBE datagrams: each group is
    /// at most the entries one datagram holds and covers at most
    /// [`RANGE_IDS_MAX`] ids together, as the appliance requires.
    pub fn packed(&self) -> Vec<Vec<(u64, u64)>> {
        let mut groups: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut ids_in_last = 0u64;
        let cut = self.map.iter().flat_map(|(&a, &b)| crate::cli::chunks(a..=b));
        for (a, b) in cut {
            let ids = b - a + 1;
            match groups.last_mut() {
                Some(g) if g.len() < ENTRIES_MAX && ids_in_last + ids <= RANGE_IDS_MAX => {
                    g.push((a, b));
                    ids_in_last += ids;
                }
                _ => {
                    groups.push(vec![(a, b)]);
                    ids_in_last = ids;
                }
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Model test: random adds and removes over a small universe agree with
    /// a set of ids, and stay merged.
    #[test]
    fn agrees_with_a_set_of_ids() {
        let mut r = Ranges::default();
        let mut model = BTreeSet::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let a = seed % 200;
            let b = (a + (seed >> 20) % 30).min(199);
            if (seed >> 40) % 3 == 0 {
                r.remove(a, b);
                (a..=b).for_each(|i| {
                    model.remove(&i);
                });
            } else {
                r.add(a, b);
                model.extend(a..=b);
            }
            assert_eq!(r.count(), model.len() as u64);
            let ids: BTreeSet<u64> = r.map.iter().flat_map(|(&a, &b)| a..=b).collect();
            assert_eq!(ids, model);
            let pairs: Vec<_> = r.map.iter().collect();
            assert!(pairs.windows(2).all(|w| w[0].1 + 1 < *w[1].0), "merged: {pairs:?}");
            let free: BTreeSet<u64> = r.uncovered(a, b).into_iter().flat_map(|(x, y)| x..=y).collect();
            assert_eq!(free, (a..=b).filter(|i| !model.contains(i)).collect());
        }
    }

    #[test]
    fn edges_of_the_id_space() {
        let mut r = Ranges::default();
        r.add(u64::MAX - 1, u64::MAX);
        r.add(0, 0);
        assert_eq!(r.count(), 3);
        assert_eq!(r.uncovered(0, u64::MAX), [(1, u64::MAX - 2)]);
        r.remove(u64::MAX, u64::MAX);
        assert_eq!(r.count(), 2);
        r.add(0, u64::MAX);
        assert_eq!(r.count(), u64::MAX, "saturates");
    }

    #[test]
    fn packing_respects_the_protocol_limits() {
        let mut r = Ranges::default();
        for i in 0..200u64 {
            r.add(i * 10, i * 10 + 2); // 200 ranges of 3 ids
        }
        r.add(1_000_000, 1_000_000 + 150_000); // cut into 3
        let groups = r.packed();
        let total: u64 = groups.iter().flatten().map(|(a, b)| b - a + 1).sum();
        assert_eq!(total, r.count());
        for g in &groups {
            assert!(g.len() <= ENTRIES_MAX);
            assert!(g.iter().map(|(a, b)| b - a + 1).sum::<u64>() <= RANGE_IDS_MAX);
        }
        assert!(groups.len() <= 8, "200 small ranges share datagrams: {}", groups.len());
    }
}
