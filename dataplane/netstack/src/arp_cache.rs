//! The neighbour table of one port on one core: address -> MAC, with
//! expiry, static entries, the rules for who may change an entry, and a
//! bounded queue of packets per unresolved neighbour.
//!
//! Open addressing with linear probing over `2 * neighbors_max` slots
//! (rounded up to a power of two), so the table is at most half full and a
//! lookup for a resolved neighbour reads one slot in the common case. The
//! hash mixes all 32 bits of the address ([`crate::solicit::mix`]):
//! consecutive subscriber addresses spread over the whole table instead of
//! crowding a few buckets. At `neighbors_max` live entries a new one
//! replaces an old one chosen by a clock hand (unusable entries first,
//! else the least recently learned); static entries and entries holding
//! packets are never replaced. Deletion shifts the probe run back, so no
//! tombstones accumulate. Everything is allocated in [`ArpCache::new`].
//!
//! Request pacing is not here: it lives in [`crate::solicit`], shared by
//! the cores and independent of which entries this table keeps.

use crate::solicit::mix;
use crate::{Ipv4Addr, MacAddr};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

/// How many request intervals an expired entry stays usable while it is
/// being refreshed, so an active peer loses nothing when its entry expires.
pub const STALE_GRACE_INTERVALS: u64 = 3;

/// Largest per-neighbour queue of waiting packets.
pub use ms_limits::ARP_QUEUE_MAX as QUEUE_MAX;

/// Timers of the table, set from the config at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a learned entry stays fresh.
    pub entry_ttl_ms: u64,
    /// Minimum gap between two requests for the same address.
    pub request_interval_ms: u64,
    /// Requests sent for an unresolved neighbour before its waiting
    /// packets are dropped.
    pub request_retries: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { entry_ttl_ms: 300_000, request_interval_ms: 1_000, request_retries: 3 }
    }
}

/// Sizes of the table, set from the config at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Neighbours the table holds.
    pub neighbors_max: usize,
    /// Packets held per unresolved neighbour (1..=[`QUEUE_MAX`]).
    pub queue_max: usize,
    /// Unresolved neighbours that may hold packets at once; with
    /// `queue_max` this bounds the packets held in all.
    pub unresolved_max: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes { neighbors_max: 4096, queue_max: 4, unresolved_max: 64 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// Asked for, no MAC yet (or the MAC is past its grace time).
    Incomplete,
    /// Learned; expires.
    Dynamic,
    /// From the config; never changes, never expires.
    Static,
}

const NO_HOLD: u16 = u16::MAX;

/// 24 bytes: a lookup reads one slot.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// 0 = empty slot (0.0.0.0 is never a neighbour).
    ip: u32,
    mac: MacAddr,
    kind: Kind,
    /// Index of this neighbour's hold record, or `NO_HOLD`.
    hold: u16,
    learned_ms: u64,
}

const EMPTY: Entry = Entry { ip: 0, mac: MacAddr::ZERO, kind: Kind::Incomplete, hold: NO_HOLD, learned_ms: 0 };

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh (or static) entry.
    Hit(MacAddr),
    /// An expired entry still inside its grace time: use the MAC and ask
    /// again (paced by the caller).
    HitRefresh(MacAddr),
    /// No usable MAC: ask (paced by the caller) and hold the packet.
    Unresolved,
    /// The table is full of entries that may not be replaced.
    Full,
}

/// How much a claim `ip is at mac` is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The answer to a request we made: replaces any MAC but a static one.
    Solicited,
    /// Anything else (a request for us, a datagram's source MAC, an
    /// unsolicited reply): fills an empty or unresolved entry, refreshes an
    /// entry with the same MAC, and never changes a usable MAC. `create`
    /// allows a new entry.
    Unverified {
        /// May add an address the table does not hold.
        create: bool,
    },
    /// An unverified claim the config lets replace a usable MAC
    /// (`arp.accept_unsolicited`, for failover by gratuitous ARP); static
    /// entries still win.
    Override {
        /// May add an address the table does not hold.
        create: bool,
    },
}

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Stored: new, filled, changed or refreshed.
    Stored,
    /// Refused: the claim names another MAC than a usable or static entry.
    Conflict,
    /// Not stored: the table does not know the address and the claim may
    /// not add it, or the address or MAC can never be a neighbour's.
    Ignored,
}

/// A packet waiting for its neighbour: the caller's opaque handle and a
/// tag it gets back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parked {
    /// The caller's buffer (for the dataplane, an mbuf pointer).
    pub handle: usize,
    /// Whatever the caller needs back (the dataplane: messages inside).
    pub tag: u32,
}

const NO_PARKED: Parked = Parked { handle: 0, tag: 0 };

/// Why a packet could not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefused {
    /// This neighbour already holds `queue_max` packets.
    QueueFull,
    /// `unresolved_max` neighbours already hold packets.
    TableFull,
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    ip: Ipv4Addr,
    since_ms: u64,
    len: u16,
    /// Position in `active`.
    pos: u16,
    ready: bool,
}

/// The hold records, their packets and the lists over them.
#[derive(Debug)]
struct Holds {
    recs: Box<[Hold]>,
    items: Box<[Parked]>,
    queue_max: usize,
    free: Vec<u16>,
    /// Records in use, for the timeout sweep.
    active: Vec<u16>,
    /// Records whose neighbour resolved, for the caller to send.
    ready: Vec<u16>,
    sweep: usize,
}

/// The table. See the module docs.
#[derive(Debug)]
pub struct ArpCache {
    slots: Box<[Entry]>,
    mask: usize,
    len: usize,
    max: usize,
    hand: usize,
    timers: Timers,
    holds: Holds,
}

/// What [`ArpCache::sweep`] asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepEvent {
    /// Ask again for this neighbour (subject to pacing).
    Ask(Ipv4Addr),
    /// The neighbour did not answer in time: drop this packet.
    Drop(Parked),
}

impl ArpCache {
    /// An empty table; all memory is allocated here.
    pub fn new(timers: Timers, sizes: Sizes) -> Self {
        let max = sizes.neighbors_max.max(1);
        let n = (2 * max).next_power_of_two();
        let recs = sizes.unresolved_max.clamp(1, usize::from(NO_HOLD));
        let queue_max = sizes.queue_max.clamp(1, QUEUE_MAX);
        let idle = Hold { ip: Ipv4Addr::UNSPECIFIED, since_ms: 0, len: 0, pos: 0, ready: false };
        let holds = Holds {
            recs: vec![idle; recs].into_boxed_slice(),
            items: vec![NO_PARKED; recs * queue_max].into_boxed_slice(),
            queue_max,
            free: (0..recs as u16).rev().collect(),
            active: Vec::with_capacity(recs),
            ready: Vec::with_capacity(recs),
            sweep: 0,
        };
        ArpCache { slots: vec![EMPTY; n].into_boxed_slice(), mask: n - 1, len: 0, max, hand: 0, timers, holds }
    }

    fn home(&self, ip: u32) -> usize {
        mix(Ipv4Addr::from(ip)) as usize & self.mask
    }

    /// The slot of `ip`. Every probe of the table visits each slot at most
    /// once: `insert` keeps at most `max` entries in `2 * max` slots or
    /// more, so an empty slot ends a probe long before that bound, which
    /// only makes termination independent of the load factor.
    fn find(&self, ip: Ipv4Addr) -> Option<usize> {
        let want = u32::from(ip);
        let mut i = self.home(want);
        for _ in 0..self.slots.len() {
            match self.slots[i].ip {
                0 => return None,
                x if x == want => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    fn is_fresh(&self, e: &Entry, now_ms: u64) -> bool {
        e.kind == Kind::Static
            || (e.kind == Kind::Dynamic && now_ms.saturating_sub(e.learned_ms) < self.timers.entry_ttl_ms)
    }

    /// Fresh, or expired but inside the grace time: still usable.
    fn is_usable(&self, e: &Entry, now_ms: u64) -> bool {
        let grace = STALE_GRACE_INTERVALS * self.timers.request_interval_ms;
        e.kind == Kind::Static
            || (e.kind == Kind::Dynamic
                && now_ms.saturating_sub(e.learned_ms) < self.timers.entry_ttl_ms.saturating_add(grace))
    }

    fn pinned(e: &Entry) -> bool {
        e.kind == Kind::Static || e.hold != NO_HOLD
    }

    /// Makes room and adds `ip` as an empty incomplete entry.
    fn insert(&mut self, ip: Ipv4Addr, now_ms: u64) -> Option<usize> {
        if self.len >= self.max && !self.evict_one(now_ms) {
            return None;
        }
        let want = u32::from(ip);
        let home = self.home(want);
        // One lap at most (see `find`).
        let i = (0..self.slots.len()).map(|k| (home + k) & self.mask).find(|&i| self.slots[i].ip == 0)?;
        self.slots[i] = Entry { ip: want, learned_ms: now_ms, ..EMPTY };
        self.len += 1;
        Some(i)
    }

    /// Removes one replaceable entry: the first unusable one the clock hand
    /// meets within a short scan, else the least recently learned of those
    /// it saw. False when every entry is static or holds packets.
    fn evict_one(&mut self, now_ms: u64) -> bool {
        const SCAN: usize = 64;
        let mut best: Option<(usize, u64)> = None;
        let mut seen = 0;
        for _ in 0..self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) & self.mask;
            let e = self.slots[i];
            if e.ip == 0 || Self::pinned(&e) {
                continue;
            }
            if !self.is_usable(&e, now_ms) {
                best = Some((i, 0));
                break;
            }
            if best.is_none_or(|(_, t)| e.learned_ms < t) {
                best = Some((i, e.learned_ms));
            }
            seen += 1;
            if seen == SCAN {
                break;
            }
        }
        best.map(|(i, _)| self.remove_at(i)).is_some()
    }

    /// Backward-shift deletion: later entries of the probe run move up so
    /// every lookup still finds them.
    fn remove_at(&mut self, i: usize) {
        let mut hole = i;
        let mut j = i;
        // One lap at most (see `find`); the slot being emptied is the last.
        for _ in 1..self.slots.len() {
            j = (j + 1) & self.mask;
            let e = self.slots[j];
            if e.ip == 0 {
                break;
            }
            let dist_home = j.wrapping_sub(self.home(e.ip)) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = e;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// Looks `ip` up for sending; adds it as unresolved when unknown.
    pub fn lookup(&mut self, ip: Ipv4Addr, now_ms: u64) -> Lookup {
        let i = match self.find(ip) {
            Some(i) => i,
            None => return if self.insert(ip, now_ms).is_some() { Lookup::Unresolved } else { Lookup::Full },
        };
        let e = &self.slots[i];
        if self.is_fresh(e, now_ms) {
            Lookup::Hit(e.mac)
        } else if self.is_usable(e, now_ms) {
            Lookup::HitRefresh(e.mac)
        } else {
            Lookup::Unresolved
        }
    }

    /// Applies a claim `ip is at mac` by the rules of [`Claim`].
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, claim: Claim) -> Learned {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || mac.is_multicast() || mac == MacAddr::ZERO {
            return Learned::Ignored;
        }
        let create = match claim {
            Claim::Solicited => true,
            Claim::Unverified { create } | Claim::Override { create } => create,
        };
        let i = match self.find(ip) {
            Some(i) => i,
            None if create => match self.insert(ip, now_ms) {
                Some(i) => i,
                None => return Learned::Ignored,
            },
            None => return Learned::Ignored,
        };
        let e = self.slots[i];
        let same = e.mac == mac;
        let conflict = match (e.kind, claim) {
            (Kind::Static, _) => !same,
            (_, Claim::Solicited | Claim::Override { .. }) => false,
            (_, Claim::Unverified { .. }) => !same && self.is_usable(&e, now_ms),
        };
        if conflict {
            return Learned::Conflict;
        }
        if e.kind != Kind::Static {
            self.slots[i] = Entry { mac, kind: Kind::Dynamic, learned_ms: now_ms, ..e };
            if e.hold != NO_HOLD {
                self.holds.mark_ready(e.hold);
            }
        }
        Learned::Stored
    }

    /// Adds a static entry (startup): never replaced, never expires.
    /// False when the table has no room or the pair is invalid.
    pub fn add_static(&mut self, ip: Ipv4Addr, mac: MacAddr) -> bool {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || mac.is_multicast() || mac == MacAddr::ZERO {
            return false;
        }
        let i = match self.find(ip) {
            Some(i) => i,
            None => match self.insert(ip, 0) {
                Some(i) => i,
                None => return false,
            },
        };
        self.slots[i] = Entry { ip: u32::from(ip), mac, kind: Kind::Static, hold: NO_HOLD, learned_ms: 0 };
        true
    }

    /// Holds `p` until `ip` resolves (call after [`ArpCache::lookup`]
    /// returned [`Lookup::Unresolved`] for it).
    pub fn hold(&mut self, ip: Ipv4Addr, p: Parked, now_ms: u64) -> Result<(), HoldRefused> {
        let i = match self.find(ip) {
            Some(i) => i,
            None => self.insert(ip, now_ms).ok_or(HoldRefused::TableFull)?,
        };
        let mut h = self.slots[i].hold;
        if h == NO_HOLD {
            h = self.holds.open(ip, now_ms).ok_or(HoldRefused::TableFull)?;
            self.slots[i].hold = h;
        }
        self.holds.push(h, p)
    }

    /// Re-tags the packet held last for `ip` (the caller learns the tag
    /// after it handed the packet over).
    pub fn retag_last(&mut self, ip: Ipv4Addr, tag: u32) {
        if let Some(h) = self.find(ip).map(|i| self.slots[i].hold).filter(|&h| h != NO_HOLD) {
            self.holds.retag_last(h, tag);
        }
    }

    /// True when a neighbour resolved while packets waited for it (one
    /// load: callers check it per packet).
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.holds.ready.is_empty()
    }

    /// The next neighbour that resolved while packets waited for it: its
    /// MAC, and its packets in the order they were held (written to `out`,
    /// which must have room for `queue_max`). Returns how many.
    pub fn take_ready(&mut self, out: &mut [Parked]) -> Option<(MacAddr, usize)> {
        let h = self.holds.ready.pop()?;
        let ip = self.holds.recs[usize::from(h)].ip;
        // Entries holding packets are pinned, so the entry is still here.
        let i = self.find(ip);
        debug_assert!(i.is_some(), "a pinned entry vanished");
        let mac = i.map_or(MacAddr::BROADCAST, |i| {
            self.slots[i].hold = NO_HOLD;
            self.slots[i].mac
        });
        Some((mac, self.holds.close(h, out)))
    }

    /// Looks at up to `budget` waiting neighbours: those that waited past
    /// `request_retries` intervals give up their packets (`Drop`), the
    /// others are asked for again (`Ask`, paced by the caller).
    pub fn sweep(&mut self, now_ms: u64, budget: usize, mut event: impl FnMut(SweepEvent)) {
        let give_up = self.timers.request_interval_ms.saturating_mul(u64::from(self.timers.request_retries.max(1)));
        for _ in 0..budget.min(self.holds.active.len()) {
            let k = self.holds.sweep % self.holds.active.len();
            self.holds.sweep = k + 1;
            let h = self.holds.active[k];
            let rec = self.holds.recs[usize::from(h)];
            if rec.ready {
                continue;
            }
            if now_ms.saturating_sub(rec.since_ms) < give_up {
                event(SweepEvent::Ask(rec.ip));
                continue;
            }
            if let Some(i) = self.find(rec.ip) {
                self.slots[i].hold = NO_HOLD;
            }
            let mut out = [NO_PARKED; QUEUE_MAX];
            let n = self.holds.close(h, &mut out);
            out[..n].iter().for_each(|&p| event(SweepEvent::Drop(p)));
            if self.holds.active.is_empty() {
                return;
            }
        }
    }

    /// Every held packet, for shutdown: the table forgets them.
    pub fn drain_held(&mut self, mut each: impl FnMut(Parked)) {
        while let Some(&h) = self.holds.active.last() {
            let ip = self.holds.recs[usize::from(h)].ip;
            if let Some(i) = self.find(ip) {
                self.slots[i].hold = NO_HOLD;
            }
            let mut out = [NO_PARKED; QUEUE_MAX];
            let n = self.holds.close(h, &mut out);
            out[..n].iter().for_each(|&p| each(p));
        }
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.holds.active.iter().map(|&h| usize::from(self.holds.recs[usize::from(h)].len)).sum()
    }

    /// True when `ip` has an entry in any state.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some()
    }

    /// The MAC `ip` resolves to now, without side effects (tests, tools).
    pub fn peek(&self, ip: Ipv4Addr, now_ms: u64) -> Option<MacAddr> {
        self.find(ip).map(|i| &self.slots[i]).filter(|e| self.is_usable(e, now_ms)).map(|e| e.mac)
    }

    /// Number of fresh entries (O(capacity); for counters and tests).
    pub fn resolved_len(&self, now_ms: u64) -> usize {
        self.slots.iter().filter(|e| e.ip != 0 && self.is_fresh(e, now_ms)).count()
    }

    /// Neighbours the table holds at most.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Longest probe a lookup of a present entry needs (tests).
    pub fn longest_probe(&self) -> usize {
        let mut worst = 0;
        for (i, e) in self.slots.iter().enumerate() {
            if e.ip != 0 {
                worst = worst.max((i.wrapping_sub(self.home(e.ip)) & self.mask) + 1);
            }
        }
        worst
    }

    /// The timers in force.
    pub fn timers(&self) -> Timers {
        self.timers
    }
}

impl Holds {
    fn open(&mut self, ip: Ipv4Addr, now_ms: u64) -> Option<u16> {
        let h = self.free.pop()?;
        self.recs[usize::from(h)] = Hold { ip, since_ms: now_ms, len: 0, pos: self.active.len() as u16, ready: false };
        self.active.push(h);
        Some(h)
    }

    fn push(&mut self, h: u16, p: Parked) -> Result<(), HoldRefused> {
        let rec = &mut self.recs[usize::from(h)];
        if usize::from(rec.len) >= self.queue_max {
            return Err(HoldRefused::QueueFull);
        }
        self.items[usize::from(h) * self.queue_max + usize::from(rec.len)] = p;
        rec.len += 1;
        Ok(())
    }

    fn retag_last(&mut self, h: u16, tag: u32) {
        let len = usize::from(self.recs[usize::from(h)].len);
        if let Some(k) = len.checked_sub(1) {
            self.items[usize::from(h) * self.queue_max + k].tag = tag;
        }
    }

    fn mark_ready(&mut self, h: u16) {
        let rec = &mut self.recs[usize::from(h)];
        if !rec.ready {
            rec.ready = true;
            self.ready.push(h);
        }
    }

    /// Frees record `h`, copying its packets to `out`.
    fn close(&mut self, h: u16, out: &mut [Parked]) -> usize {
        let rec = self.recs[usize::from(h)];
        let n = usize::from(rec.len).min(out.len());
        let base = usize::from(h) * self.queue_max;
        out[..n].copy_from_slice(&self.items[base..base + n]);
        let pos = usize::from(rec.pos);
        self.active.swap_remove(pos);
        if let Some(&moved) = self.active.get(pos) {
            self.recs[usize::from(moved)].pos = pos as u16;
        }
        if rec.ready {
            self.ready.retain(|&r| r != h);
        }
        self.recs[usize::from(h)].len = 0;
        self.recs[usize::from(h)].ready = false;
        self.free.push(h);
        n
    }
}

#[cfg(test)]
mod tests;
