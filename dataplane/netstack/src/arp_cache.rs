//! A bounded, set-associative ARP cache with expiry and request pacing.
//!
//! `N` entries in buckets of [`WAYS`]; a lookup touches one bucket, so it
//! costs the same with 1 or `N` peers. When a bucket is full the expired or
//! least recently refreshed entry is replaced: the cache never grows and
//! never fails to learn. Time is the caller's (`now_ms`).

use crate::{Ipv4Addr, MacAddr};

/// Entries per bucket.
pub const WAYS: usize = 4;

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: Ipv4Addr,
    /// Last answer, kept while a refresh is in flight.
    mac: Option<MacAddr>,
    learned_ms: u64,
    /// When the last request for `ip` went out, if one is outstanding.
    requested_ms: Option<u64>,
    used: bool,
}

const EMPTY: Entry = Entry { ip: Ipv4Addr::UNSPECIFIED, mac: None, learned_ms: 0, requested_ms: None, used: false };

/// How many request intervals an expired entry stays usable while it is
/// being refreshed, so an active peer loses nothing when its entry expires.
pub const STALE_GRACE_INTERVALS: u64 = 3;

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh entry.
    Hit(MacAddr),
    /// An expired entry still inside its grace time: use the MAC and send a
    /// request now to refresh it.
    HitRefresh(MacAddr),
    /// No usable entry and a request is due now: the caller sends one.
    SendRequest,
    /// A request is already in flight; wait for its answer.
    Waiting,
}

/// Timers of the cache, set from the config at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a learned entry stays fresh.
    pub entry_ttl_ms: u64,
    /// Minimum gap between two requests for the same address.
    pub request_interval_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { entry_ttl_ms: 300_000, request_interval_ms: 1_000 }
    }
}

/// The cache. `N` must be a nonzero multiple of [`WAYS`] with `N / WAYS` a
/// power of two.
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
        Self::bucket(ip).find(|&i| self.entries[i].used && self.entries[i].ip == ip)
    }

    fn age(e: &Entry, now_ms: u64) -> u64 {
        now_ms.saturating_sub(e.learned_ms)
    }

    fn is_fresh(&self, e: &Entry, now_ms: u64) -> bool {
        e.mac.is_some() && Self::age(e, now_ms) < self.timers.entry_ttl_ms
    }

    /// Expired but inside the grace time: still usable while refreshing.
    fn is_usable(&self, e: &Entry, now_ms: u64) -> bool {
        let grace = STALE_GRACE_INTERVALS * self.timers.request_interval_ms;
        e.mac.is_some() && Self::age(e, now_ms) < self.timers.entry_ttl_ms.saturating_add(grace)
    }

    fn request_due(&self, e: &Entry, now_ms: u64) -> bool {
        e.requested_ms.is_none_or(|t| now_ms.saturating_sub(t) >= self.timers.request_interval_ms)
    }

    /// Slot for a new entry: empty, else unusable, else least recently
    /// learned or requested.
    fn victim(&self, ip: Ipv4Addr, now_ms: u64) -> usize {
        let range = Self::bucket(ip);
        let start = range.start;
        range
            .min_by_key(|&i| {
                let e = &self.entries[i];
                let recent = e.learned_ms.max(e.requested_ms.unwrap_or(0));
                match () {
                    _ if !e.used => (0, 0),
                    _ if !self.is_usable(e, now_ms) && self.request_due(e, now_ms) => (1, recent),
                    _ => (2, recent),
                }
            })
            .unwrap_or(start)
    }

    /// Looks `ip` up. A miss or an expired entry records that a request is
    /// due (at most one per `request_interval_ms` per address), so callers
    /// never flood the link.
    pub fn lookup(&mut self, ip: Ipv4Addr, now_ms: u64) -> Lookup {
        let i = match self.find(ip) {
            Some(i) => i,
            None => {
                let i = self.victim(ip, now_ms);
                self.entries[i] = Entry { ip, requested_ms: Some(now_ms), used: true, ..EMPTY };
                return Lookup::SendRequest;
            }
        };
        let e = self.entries[i];
        let due = self.request_due(&e, now_ms);
        match e.mac {
            Some(mac) if self.is_fresh(&e, now_ms) => Lookup::Hit(mac),
            Some(mac) if self.is_usable(&e, now_ms) && due => {
                self.entries[i].requested_ms = Some(now_ms);
                Lookup::HitRefresh(mac)
            }
            Some(mac) if self.is_usable(&e, now_ms) => Lookup::Hit(mac),
            _ if due => {
                self.entries[i] = Entry { ip, requested_ms: Some(now_ms), used: true, ..EMPTY };
                Lookup::SendRequest
            }
            _ => Lookup::Waiting,
        }
    }

    /// True when a request for `ip` is outstanding.
    pub fn is_pending(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some_and(|i| self.entries[i].requested_ms.is_some())
    }

    /// True when `ip` has an entry in any state.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some()
    }

    /// Stores `ip -> mac`: refreshes an existing entry, or creates one when
    /// `create` (the RFC 826 merge rule: only packets aimed at us create).
    /// Returns whether the cache now holds it.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, create: bool) -> bool {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || mac.is_multicast() || mac == MacAddr::ZERO {
            return false;
        }
        let i = match (self.find(ip), create) {
            (Some(i), _) => i,
            (None, true) => self.victim(ip, now_ms),
            (None, false) => return false,
        };
        self.entries[i] = Entry { ip, mac: Some(mac), learned_ms: now_ms, requested_ms: None, used: true };
        true
    }

    /// Number of fresh entries (for counters; O(N)).
    pub fn resolved_len(&self, now_ms: u64) -> usize {
        self.entries.iter().filter(|e| e.used && self.is_fresh(e, now_ms)).count()
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
    fn expired_entries_stay_usable_while_refreshing() {
        let mut c = ArpCache::<16>::new(T);
        c.learn(ip(1), MAC, 0, true);
        assert_eq!(c.lookup(ip(1), 999), Lookup::Hit(MAC));
        assert_eq!(c.lookup(ip(1), 1000), Lookup::HitRefresh(MAC), "expired: use it and refresh");
        assert_eq!(c.lookup(ip(1), 1050), Lookup::Hit(MAC), "refresh in flight");
        assert_eq!(c.lookup(ip(1), 1100), Lookup::HitRefresh(MAC), "next interval: ask again");
        assert!(c.learn(ip(1), MAC, 1120, false), "the answer refreshes it");
        assert_eq!(c.lookup(ip(1), 1200), Lookup::Hit(MAC));
        assert_eq!(c.resolved_len(1200), 1);
    }

    #[test]
    fn unanswered_refresh_gives_up_after_the_grace_time() {
        let mut c = ArpCache::<16>::new(T);
        c.learn(ip(1), MAC, 0, true);
        let end = T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms;
        assert_eq!(c.lookup(ip(1), end - 1), Lookup::HitRefresh(MAC));
        assert_eq!(c.lookup(ip(1), end + 100), Lookup::SendRequest, "no MAC is used past the grace time");
        assert_eq!(c.lookup(ip(1), end + 150), Lookup::Waiting);
        assert_eq!(c.resolved_len(end), 0);
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
            } else if let Lookup::Hit(got) | Lookup::HitRefresh(got) = c.lookup(peer, now) {
                let (want, at) = model[&peer];
                assert_eq!(got, want);
                assert!(now - at < T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms);
            }
        }
    }
}
