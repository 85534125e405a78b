//! A bounded, set-associative ARP cache with expiry and request pacing.
//!
//! `N` entries in buckets of [`WAYS`]; a lookup touches one bucket, so it
//! costs the same with 1 or `N` peers. When a bucket is full the expired or
//! least recently refreshed entry is replaced: the cache never grows and
//! never fails to learn. Time is the caller's (`now_ms`).

use crate::{Ipv4Addr, MacAddr};

/// Entries per bucket.
pub const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Empty,
    /// A request went out at `stamp_ms`; no answer yet.
    Pending,
    /// Answer learned at `stamp_ms`.
    Resolved,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: Ipv4Addr,
    mac: MacAddr,
    state: State,
    stamp_ms: u64,
}

const EMPTY: Entry = Entry { ip: Ipv4Addr::UNSPECIFIED, mac: MacAddr::ZERO, state: State::Empty, stamp_ms: 0 };

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh entry.
    Hit(MacAddr),
    /// No fresh entry and a request is due now: the caller sends one.
    SendRequest,
    /// A request is already in flight; wait for its answer.
    Waiting,
}

/// Timers of the cache, set from the config at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a learned entry stays valid.
    pub entry_ttl_ms: u64,
    /// Minimum gap between two requests for the same address.
    pub request_interval_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { entry_ttl_ms: 300_000, request_interval_ms: 1_000 }
    }
}

/// The cache. `N` must be a nonzero multiple of [`WAYS`] and a power of two.
#[derive(Debug)]
pub struct ArpCache<const N: usize> {
    entries: [Entry; N],
    timers: Timers,
}

impl<const N: usize> ArpCache<N> {
    const BUCKETS: usize = {
        assert!(N >= WAYS && N % WAYS == 0 && (N / WAYS).is_power_of_two());
        N / WAYS
    };

    /// An empty cache.
    pub const fn new(timers: Timers) -> Self {
        ArpCache { entries: [EMPTY; N], timers }
    }

    fn bucket(ip: Ipv4Addr) -> core::ops::Range<usize> {
        // Fibonacci hashing: peers on one subnet differ in the low bits.
        let h = u32::from(ip).wrapping_mul(0x9e37_79b1) >> 16;
        let b = (h as usize) & (Self::BUCKETS - 1);
        b * WAYS..(b + 1) * WAYS
    }

    fn find(&self, ip: Ipv4Addr) -> Option<usize> {
        Self::bucket(ip).find(|&i| self.entries[i].state != State::Empty && self.entries[i].ip == ip)
    }

    fn is_fresh(&self, e: &Entry, now_ms: u64) -> bool {
        e.state == State::Resolved && now_ms.saturating_sub(e.stamp_ms) < self.timers.entry_ttl_ms
    }

    /// Slot for a new entry: empty, else expired, else the oldest.
    fn victim(&self, ip: Ipv4Addr, now_ms: u64) -> usize {
        let range = Self::bucket(ip);
        let start = range.start;
        range
            .min_by_key(|&i| {
                let e = &self.entries[i];
                match e.state {
                    State::Empty => (0, 0),
                    _ if !self.is_fresh(e, now_ms) && e.state == State::Resolved => (1, e.stamp_ms),
                    _ => (2, e.stamp_ms),
                }
            })
            .unwrap_or(start)
    }

    /// Looks `ip` up. On a miss, records that a request is due (at most one
    /// per `request_interval_ms` per address) so callers never flood.
    pub fn lookup(&mut self, ip: Ipv4Addr, now_ms: u64) -> Lookup {
        match self.find(ip) {
            Some(i) if self.is_fresh(&self.entries[i], now_ms) => Lookup::Hit(self.entries[i].mac),
            Some(i)
                if self.entries[i].state == State::Pending
                    && now_ms.saturating_sub(self.entries[i].stamp_ms) < self.timers.request_interval_ms =>
            {
                Lookup::Waiting
            }
            found => {
                let i = found.unwrap_or_else(|| self.victim(ip, now_ms));
                self.entries[i] = Entry { ip, mac: MacAddr::ZERO, state: State::Pending, stamp_ms: now_ms };
                Lookup::SendRequest
            }
        }
    }

    /// True when a request for `ip` is outstanding.
    pub fn is_pending(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some_and(|i| self.entries[i].state == State::Pending)
    }

    /// True when `ip` has an entry in any state.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some()
    }

    /// Stores `ip -> mac`: refreshes an existing entry, or creates one when
    /// `create` (the RFC 826 merge rule: only requests aimed at us create).
    /// Returns whether the cache now holds it.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, create: bool) -> bool {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || mac.is_multicast() {
            return false;
        }
        let i = match (self.find(ip), create) {
            (Some(i), _) => i,
            (None, true) => self.victim(ip, now_ms),
            (None, false) => return false,
        };
        self.entries[i] = Entry { ip, mac, state: State::Resolved, stamp_ms: now_ms };
        true
    }

    /// Number of fresh entries (for counters; O(N)).
    pub fn resolved_len(&self, now_ms: u64) -> usize {
        self.entries.iter().filter(|e| self.is_fresh(e, now_ms)).count()
    }

    /// Capacity.
    pub const fn capacity(&self) -> usize {
        N
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const T: Timers = Timers { entry_ttl_ms: 1000, request_interval_ms: 100 };
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 + n)
    }

    #[test]
    fn miss_requests_once_per_interval_then_hits() {
        let mut c = ArpCache::<16>::new(T);
        assert_eq!(c.lookup(ip(1), 0), Lookup::SendRequest);
        assert_eq!(c.lookup(ip(1), 50), Lookup::Waiting);
        assert_eq!(c.lookup(ip(1), 100), Lookup::SendRequest);
        assert!(c.is_pending(ip(1)));
        assert!(c.learn(ip(1), MAC, 120, false), "a pending entry accepts its answer");
        assert_eq!(c.lookup(ip(1), 130), Lookup::Hit(MAC));
    }

    #[test]
    fn entries_expire() {
        let mut c = ArpCache::<16>::new(T);
        c.learn(ip(1), MAC, 0, true);
        assert_eq!(c.lookup(ip(1), 999), Lookup::Hit(MAC));
        assert_eq!(c.lookup(ip(1), 1000), Lookup::SendRequest);
        assert_eq!(c.resolved_len(1000), 0);
    }

    #[test]
    fn learn_without_create_only_refreshes() {
        let mut c = ArpCache::<16>::new(T);
        assert!(!c.learn(ip(1), MAC, 0, false));
        assert!(!c.contains(ip(1)));
        assert!(!c.learn(Ipv4Addr::UNSPECIFIED, MAC, 0, true));
        assert!(!c.learn(ip(2), MacAddr::BROADCAST, 0, true));
    }

    #[test]
    fn bounded_under_many_peers() {
        let mut c = ArpCache::<16>::new(T);
        for n in 0..10_000 {
            c.learn(ip(n), MAC, u64::from(n), true);
        }
        assert!(c.resolved_len(10_000) <= 16);
        // The most recent peer is always there.
        assert_eq!(c.lookup(ip(9_999), 10_000), Lookup::Hit(MAC));
    }

    /// Model test: the cache never returns a MAC that the reference did not
    /// hold fresh at that time (it may forget, never invent).
    #[test]
    fn never_invents_against_a_hashmap_model() {
        let mut c = ArpCache::<32>::new(T);
        let mut model: HashMap<Ipv4Addr, (MacAddr, u64)> = HashMap::new();
        let mut seed = 0x1234_5678u32;
        for now in 0..20_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let peer = ip(seed % 64);
            let mac = MacAddr([2, 0, 0, 0, (seed >> 8) as u8, (seed >> 16) as u8 & 0xfe]);
            if seed % 3 == 0 {
                if c.learn(peer, mac, now, true) {
                    model.insert(peer, (mac, now));
                }
            } else if let Lookup::Hit(got) = c.lookup(peer, now) {
                let (want, at) = model[&peer];
                assert_eq!(got, want);
                assert!(now - at < T.entry_ttl_ms);
            }
        }
    }
}
