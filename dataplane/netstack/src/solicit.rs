//! Which addresses the appliance asked for, and when: the ARP request pacer
//! and the proof that a reply was asked for, shared by every worker of a
//! port.
//!
//! A request goes out on one core and its answer may arrive on another (RSS
//! does not spread ARP), so "did we ask?" cannot be a per-core question.
//! This table is the one place that knows. It is separate from the
//! neighbour table on purpose: evicting or recycling a neighbour entry
//! never forgets that a request went out, so pacing holds whatever the
//! neighbour table does.
//!
//! Buckets of [`WAYS`] lock-free slots, each one `AtomicU64` packing the
//! address, the time of the request (31 bits of milliseconds, compared
//! modulo 2^31: ages up to about 12 days, and a time slightly before the
//! request counts as age 0) and whether it has been
//! answered. Writers claim slots with compare-and-swap, so two cores never
//! both send a request for one address in one interval, and two replies
//! never both count as the answer. Sized at startup; nothing allocates
//! afterwards.

use crate::Ipv4Addr;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// Slots per bucket.
pub const WAYS: usize = 4;

const MS_BITS: u32 = 31;
const MS_MASK: u64 = (1 << MS_BITS) - 1;
const ANSWERED: u64 = 1 << MS_BITS;

/// Mixes all 32 bits of an address (murmur3's finalizer, a bijection), so
/// consecutive addresses on one subnet spread over the whole table.
pub fn mix(ip: Ipv4Addr) -> u32 {
    let mut h = u32::from(ip);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn pack(ip: Ipv4Addr, now_ms: u64, answered: bool) -> u64 {
    (u64::from(u32::from(ip)) << 32) | (now_ms & MS_MASK) | if answered { ANSWERED } else { 0 }
}

fn slot_ip(v: u64) -> u32 {
    (v >> 32) as u32
}

/// Milliseconds since the request recorded in `v`. A record newer than
/// `now_ms` (callers read the clock at different points of a loop turn, so
/// one may pass a time just before another's request) is of age 0, not of
/// age 2^31 minus a little: that read as "long ago" and sent a second
/// request at once.
fn age(v: u64, now_ms: u64) -> u64 {
    let d = (now_ms.wrapping_sub(v)) & MS_MASK;
    if d > MS_MASK / 2 {
        0
    } else {
        d
    }
}

/// The shared record of outstanding ARP requests for one port.
#[derive(Debug)]
pub struct Solicitations {
    slots: Box<[AtomicU64]>,
    buckets_mask: usize,
}

impl Solicitations {
    /// A table for about `neighbors` addresses being asked for at once
    /// (at least 4 buckets; load stays at or below one half).
    pub fn new(neighbors: usize) -> Self {
        let buckets = (neighbors / 2).max(4).next_power_of_two();
        let slots: Vec<AtomicU64> = (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect();
        Solicitations { slots: slots.into_boxed_slice(), buckets_mask: buckets - 1 }
    }

    fn bucket(&self, ip: Ipv4Addr) -> &[AtomicU64] {
        let b = mix(ip) as usize & self.buckets_mask;
        &self.slots[b * WAYS..(b + 1) * WAYS]
    }

    /// Records a request for `ip` at `now_ms` if none went out in the last
    /// `interval_ms`; true means the caller sends it now. False when one
    /// went out recently, or when every slot of the bucket holds a request
    /// younger than the interval (the caller asks again later: pacing is
    /// never given up to make room).
    pub fn try_ask(&self, ip: Ipv4Addr, now_ms: u64, interval_ms: u64) -> bool {
        let want = u32::from(ip);
        let bucket = self.bucket(ip);
        let mut free: Option<(usize, u64)> = None;
        for (i, s) in bucket.iter().enumerate() {
            let v = s.load(Ordering::Acquire);
            if v != 0 && slot_ip(v) == want {
                return age(v, now_ms) >= interval_ms && self.claim(s, v, ip, now_ms);
            }
            let reusable = v == 0 || age(v, now_ms) >= interval_ms;
            if reusable && free.is_none_or(|(_, old)| v == 0 || age(v, now_ms) > age(old, now_ms)) {
                free = Some((i, v));
            }
        }
        free.is_some_and(|(i, v)| Self::claim_free(bucket, i, v, ip, now_ms))
    }

    /// Claims free slot `i` (last seen holding `v`) of `bucket` for `ip`.
    /// Another core may have claimed another free slot for `ip` at the
    /// same moment: the record in the lowest slot stands and a later one is
    /// withdrawn (its core does not send), so one request goes out and one
    /// answer counts.
    fn claim_free(bucket: &[AtomicU64], i: usize, v: u64, ip: Ipv4Addr, now_ms: u64) -> bool {
        let mine = pack(ip, now_ms, false);
        if bucket[i].compare_exchange(v, mine, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return false;
        }
        let want = u32::from(ip);
        let earlier = bucket[..i].iter().any(|s| {
            let o = s.load(Ordering::Acquire);
            o != 0 && slot_ip(o) == want
        });
        if earlier {
            let _ = bucket[i].compare_exchange(mine, v, Ordering::AcqRel, Ordering::Relaxed);
        }
        !earlier
    }

    fn claim(&self, s: &AtomicU64, seen: u64, ip: Ipv4Addr, now_ms: u64) -> bool {
        s.compare_exchange(seen, pack(ip, now_ms, false), Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Takes the answer to an outstanding request for `ip`: true exactly
    /// once per request, and only within `window_ms` of it. A second reply
    /// to the same request (a forger racing the real host) gets false.
    pub fn take_answer(&self, ip: Ipv4Addr, now_ms: u64, window_ms: u64) -> bool {
        let want = u32::from(ip);
        self.bucket(ip).iter().any(|s| {
            let v = s.load(Ordering::Acquire);
            v != 0
                && slot_ip(v) == want
                && v & ANSWERED == 0
                && age(v, now_ms) <= window_ms
                && s.compare_exchange(v, v | ANSWERED, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        })
    }

    /// Undoes [`Solicitations::take_answer`] for `ip` when the answer
    /// could not be stored (the neighbour table had no room), so the next
    /// reply to the same request still counts.
    pub fn give_back(&self, ip: Ipv4Addr) {
        let want = u32::from(ip);
        for s in self.bucket(ip) {
            let v = s.load(Ordering::Acquire);
            if v != 0 && slot_ip(v) == want && v & ANSWERED != 0 {
                let _ = s.compare_exchange(v, v & !ANSWERED, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
    }

    /// True while a request for `ip` younger than `window_ms` waits for
    /// its answer.
    pub fn is_outstanding(&self, ip: Ipv4Addr, now_ms: u64, window_ms: u64) -> bool {
        let want = u32::from(ip);
        self.bucket(ip).iter().any(|s| {
            let v = s.load(Ordering::Acquire);
            v != 0 && slot_ip(v) == want && v & ANSWERED == 0 && age(v, now_ms) <= window_ms
        })
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 + n)
    }

    #[test]
    fn one_request_per_interval_per_address() {
        let s = Solicitations::new(16);
        assert!(s.try_ask(ip(1), 0, 100));
        assert!(!s.try_ask(ip(1), 50, 100));
        assert!(!s.try_ask(ip(1), 99, 100));
        assert!(s.try_ask(ip(1), 100, 100));
        assert!(s.try_ask(ip(2), 100, 100), "other addresses are paced on their own");
    }

    /// Regression (a flaky golden test): the sweep at the end of a loop
    /// turn uses the time read when the turn began, which can be a
    /// millisecond before a request made during the turn; that read as a
    /// request 24 days old and sent a second one at once.
    #[test]
    fn a_time_just_before_the_request_is_not_long_after_it() {
        let s = Solicitations::new(16);
        assert!(s.try_ask(ip(1), 1_000, 60_000));
        assert!(!s.try_ask(ip(1), 999, 60_000), "one request per interval");
        assert!(!s.try_ask(ip(1), 0, 60_000));
        assert!(s.is_outstanding(ip(1), 999, 60_000));
        assert!(s.try_ask(ip(1), 61_000, 60_000));
    }

    #[test]
    fn an_answer_is_taken_once_and_only_when_asked() {
        let s = Solicitations::new(16);
        assert!(!s.take_answer(ip(1), 0, 100), "never asked");
        assert!(s.try_ask(ip(1), 0, 100));
        assert!(s.is_outstanding(ip(1), 10, 100));
        assert!(s.take_answer(ip(1), 10, 100));
        assert!(!s.take_answer(ip(1), 11, 100), "a second reply is not an answer");
        assert!(!s.is_outstanding(ip(1), 12, 100));
        assert!(!s.try_ask(ip(1), 20, 100), "answered or not, pacing holds");
        assert!(s.try_ask(ip(1), 200, 100));
        assert!(!s.take_answer(ip(1), 400, 100), "too late: outside the window");
    }

    /// Regression (review): two cores asking for one address at once
    /// could claim two free slots, so two requests went out and two
    /// replies counted as answers. The interleaving, replayed: core A
    /// scanned and found slot 2 free; meanwhile core B claimed slot 0.
    #[test]
    fn cores_racing_for_one_address_send_one_request() {
        let target = ip(7);
        let bucket: Vec<AtomicU64> = (0..WAYS).map(|_| AtomicU64::new(0)).collect();
        bucket[0].store(pack(target, 10, false), Ordering::Relaxed); // B's claim
        assert!(!Solicitations::claim_free(&bucket, 2, 0, target, 10), "A withdraws");
        assert_eq!(bucket[2].load(Ordering::Relaxed), 0, "and leaves the slot as it was");
        // B, claiming the lower slot while A holds a higher one, keeps it.
        bucket[0].store(0, Ordering::Relaxed);
        bucket[3].store(pack(target, 10, false), Ordering::Relaxed);
        assert!(Solicitations::claim_free(&bucket, 1, 0, target, 10));
    }

    #[test]
    fn an_answer_that_could_not_be_stored_is_given_back() {
        let s = Solicitations::new(16);
        assert!(s.try_ask(ip(1), 0, 100));
        assert!(s.take_answer(ip(1), 10, 100));
        s.give_back(ip(1));
        assert!(s.take_answer(ip(1), 11, 100), "the next reply still counts");
        assert!(!s.take_answer(ip(1), 12, 100));
    }

    #[test]
    fn a_full_bucket_delays_instead_of_forgetting() {
        let s = Solicitations::new(1); // 4 buckets of 4
        let mut asked = Vec::new();
        for n in 0..64 {
            if s.try_ask(ip(n), 0, 100) {
                asked.push(n);
            }
        }
        assert!(asked.len() <= s.capacity());
        // None of those asked may be asked again inside the interval,
        // whatever came after them.
        for &n in &asked {
            assert!(!s.try_ask(ip(n), 99, 100), "{n} lost its pacing");
        }
        // After the interval every address gets a turn again.
        assert!(s.try_ask(ip(63), 100, 100) || asked.contains(&63));
    }

    #[test]
    fn consecutive_addresses_spread_over_buckets() {
        let buckets = 1024u32;
        let mut load = std::vec![0u32; buckets as usize];
        for n in 0..4096 {
            load[(mix(ip(n)) & (buckets - 1)) as usize] += 1;
        }
        let max = *load.iter().max().unwrap();
        assert!(max <= 14, "4 per bucket on average, worst {max}");
    }
}
