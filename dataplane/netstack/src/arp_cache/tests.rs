use super::*;
use std::collections::HashMap;

const T: Timers = Timers { entry_ttl_ms: 1000, request_interval_ms: 100, request_retries: 3 };
const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);
const OTHER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000 + n)
}

fn cache(neighbors_max: usize) -> ArpCache {
    ArpCache::new(T, Sizes { neighbors_max, queue_max: 3, unresolved_max: 8 })
}

fn parked(n: usize) -> Parked {
    Parked { handle: n, tag: n as u32 }
}

#[test]
fn miss_is_unresolved_until_learned() {
    let mut c = cache(16);
    assert_eq!(c.lookup(ip(1), 0), Lookup::Unresolved);
    assert_eq!(c.lookup(ip(1), 50), Lookup::Unresolved);
    assert_eq!(c.learn(ip(1), MAC, 60, Claim::Solicited), Learned::Stored);
    assert_eq!(c.lookup(ip(1), 70), Lookup::Hit(MAC));
}

#[test]
fn expired_entries_stay_usable_while_refreshing() {
    let mut c = cache(16);
    c.learn(ip(1), MAC, 0, Claim::Solicited);
    assert_eq!(c.lookup(ip(1), 999), Lookup::Hit(MAC));
    assert_eq!(c.lookup(ip(1), 1000), Lookup::HitRefresh(MAC), "expired: use it and refresh");
    let end = T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms;
    assert_eq!(c.lookup(ip(1), end - 1), Lookup::HitRefresh(MAC));
    assert_eq!(c.lookup(ip(1), end), Lookup::Unresolved, "no MAC is used past the grace time");
    assert_eq!(c.learn(ip(1), MAC, end + 1, Claim::Solicited), Learned::Stored);
    assert_eq!(c.lookup(ip(1), end + 2), Lookup::Hit(MAC));
    assert_eq!(c.resolved_len(end + 2), 1);
}

#[test]
fn unverified_claims_never_change_a_usable_mac() {
    let mut c = cache(16);
    let create = Claim::Unverified { create: true };
    assert_eq!(c.learn(ip(1), MAC, 0, Claim::Unverified { create: false }), Learned::Ignored);
    assert_eq!(c.learn(ip(1), MAC, 0, create), Learned::Stored, "a new neighbour");
    assert_eq!(c.learn(ip(1), OTHER, 10, create), Learned::Conflict, "fresh: refused");
    assert_eq!(c.learn(ip(1), OTHER, 1100, create), Learned::Conflict, "stale but in grace: refused");
    assert_eq!(c.learn(ip(1), MAC, 20, create), Learned::Stored, "same MAC refreshes");
    assert_eq!(c.peek(ip(1), 30), Some(MAC));
    assert_eq!(c.learn(ip(1), OTHER, 30, Claim::Override { create: false }), Learned::Stored, "config allows");
    assert_eq!(c.peek(ip(1), 31), Some(OTHER));
    assert_eq!(c.learn(ip(1), MAC, 40, Claim::Solicited), Learned::Stored, "an answer to our request wins");
    let dead = 40 + T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms;
    assert_eq!(c.learn(ip(1), OTHER, dead, create), Learned::Stored, "past its grace the entry is unresolved");
}

#[test]
fn static_entries_never_change_or_expire() {
    let mut c = cache(16);
    assert!(c.add_static(ip(1), MAC));
    for claim in [Claim::Solicited, Claim::Override { create: true }, Claim::Unverified { create: true }] {
        assert_eq!(c.learn(ip(1), OTHER, 5, claim), Learned::Conflict);
    }
    assert_eq!(c.learn(ip(1), MAC, 5, Claim::Solicited), Learned::Stored);
    assert_eq!(c.lookup(ip(1), u64::MAX / 2), Lookup::Hit(MAC), "never expires");
    for n in 100..10_000 {
        c.learn(ip(n), MAC, u64::from(n), Claim::Unverified { create: true });
    }
    assert_eq!(c.lookup(ip(1), 10_000), Lookup::Hit(MAC), "never evicted");
}

#[test]
fn invalid_pairs_are_ignored() {
    let mut c = cache(16);
    assert_eq!(c.learn(Ipv4Addr::UNSPECIFIED, MAC, 0, Claim::Solicited), Learned::Ignored);
    assert_eq!(c.learn(ip(2), MacAddr::BROADCAST, 0, Claim::Solicited), Learned::Ignored);
    assert_eq!(c.learn(ip(2), MacAddr::ZERO, 0, Claim::Solicited), Learned::Ignored);
    assert!(!c.add_static(ip(2), MacAddr::BROADCAST));
}

#[test]
fn bounded_under_many_peers() {
    let mut c = cache(16);
    for n in 1..10_000 {
        c.learn(ip(n), MAC, u64::from(n), Claim::Unverified { create: true });
    }
    assert!(c.resolved_len(10_000) <= 16);
    assert_eq!(c.lookup(ip(9_999), 10_000), Lookup::Hit(MAC), "the most recent peer is there");
}

/// Filled to capacity, a lookup of a missing address still ends; and even
/// with every slot taken (which `insert` never allows) probes stop after
/// one lap: not found, and no room to insert.
#[test]
fn probes_terminate_when_full() {
    let mut c = cache(4);
    for n in 1..=4 {
        assert_eq!(c.learn(ip(n), MAC, 0, Claim::Unverified { create: true }), Learned::Stored);
    }
    assert_eq!(c.find(ip(99)), None);
    let slots = c.slots.len();
    for (k, e) in c.slots.iter_mut().enumerate() {
        *e = Entry { ip: u32::from(ip(100 + k as u32)), ..EMPTY };
    }
    assert_eq!(c.find(ip(99)), None);
    assert_eq!(c.find(ip(100)), Some(0));
    c.len = 0;
    assert_eq!(c.insert(ip(99), 0), None, "no empty slot: refused");
    c.len = slots;
    c.remove_at(0);
    assert_eq!((c.len, c.find(ip(100))), (slots - 1, None), "the deletion's shift ends too");
    assert_eq!(c.slots.iter().filter(|e| e.ip == 0).count(), 1);
}

/// The case: thousands of consecutive subscriber addresses in a
/// table sized for them all stay resolved, and lookups stay short.
#[test]
fn consecutive_addresses_all_fit_when_sized_for_them() {
    for count in [1_000u32, 4_096] {
        let mut c = cache(count as usize);
        for n in 1..=count {
            assert_eq!(c.learn(ip(n), MAC, 0, Claim::Unverified { create: true }), Learned::Stored);
        }
        for n in 1..=count {
            assert_eq!(c.lookup(ip(n), 1), Lookup::Hit(MAC), "{n} of {count}");
        }
        assert_eq!(c.resolved_len(1), count as usize);
        assert!(c.longest_probe() <= 16, "longest probe {} for {count}", c.longest_probe());
    }
}

#[test]
fn held_packets_come_back_in_order_when_resolved() {
    let mut c = cache(16);
    assert_eq!(c.lookup(ip(1), 0), Lookup::Unresolved);
    for k in 0..3 {
        assert_eq!(c.hold(ip(1), parked(k), 0), Ok(()));
    }
    assert_eq!(c.hold(ip(1), parked(9), 0), Err(HoldRefused::QueueFull));
    c.retag_last(ip(1), 77);
    assert_eq!(c.held(), 3);
    let mut out = [NO_PARKED; QUEUE_MAX];
    assert_eq!(c.take_ready(&mut out), None, "not resolved yet");
    assert_eq!(c.learn(ip(1), MAC, 5, Claim::Solicited), Learned::Stored);
    assert_eq!(c.take_ready(&mut out), Some((MAC, 3)));
    assert_eq!(&out[..3], &[parked(0), parked(1), Parked { handle: 2, tag: 77 }]);
    assert_eq!(c.take_ready(&mut out), None);
    assert_eq!(c.held(), 0);
    assert_eq!(c.hold(ip(1), parked(4), 6), Ok(()), "a queue can be used again");
}

#[test]
fn hold_records_are_bounded_and_time_out() {
    let mut c = cache(64);
    for n in 1..=8 {
        c.lookup(ip(n), 0);
        assert_eq!(c.hold(ip(n), parked(n as usize), 0), Ok(()));
    }
    c.lookup(ip(9), 0);
    assert_eq!(c.hold(ip(9), parked(9), 0), Err(HoldRefused::TableFull), "global bound");
    let mut asks = 0;
    c.sweep(100, 64, |e| asks += usize::from(matches!(e, SweepEvent::Ask(_))));
    assert_eq!(asks, 8, "waiting neighbours are asked again");
    let mut dropped = std::vec::Vec::new();
    c.sweep(T.request_interval_ms * 3, 64, |e| {
        if let SweepEvent::Drop(p) = e {
            dropped.push(p.handle)
        }
    });
    dropped.sort_unstable();
    assert_eq!(dropped, (1..=8).collect::<std::vec::Vec<_>>(), "no answer within the retries: dropped");
    assert_eq!(c.held(), 0);
    assert_eq!(c.hold(ip(9), parked(9), 400), Ok(()), "records are free again");
}

#[test]
fn entries_holding_packets_are_never_evicted() {
    let mut c = cache(4);
    c.lookup(ip(1), 0);
    c.hold(ip(1), parked(1), 0).unwrap();
    for n in 2..100 {
        c.learn(ip(n), MAC, u64::from(n), Claim::Unverified { create: true });
    }
    assert!(c.contains(ip(1)));
    c.learn(ip(1), MAC, 200, Claim::Solicited);
    let mut out = [NO_PARKED; QUEUE_MAX];
    assert_eq!(c.take_ready(&mut out), Some((MAC, 1)));
    let mut drained = 0;
    c.drain_held(|_| drained += 1);
    assert_eq!(drained, 0);
}

#[test]
fn drain_returns_everything_held() {
    let mut c = cache(16);
    for n in 1..=3 {
        c.lookup(ip(n), 0);
        c.hold(ip(n), parked(n as usize), 0).unwrap();
    }
    let mut got = 0;
    c.drain_held(|_| got += 1);
    assert_eq!((got, c.held()), (3, 0));
}

/// Model test against a HashMap: with as many peers as the table holds,
/// nothing is forgotten; with more, the table may forget but never invents
/// or returns a stale MAC, and it never holds more than its bound.
#[test]
fn agrees_with_a_hashmap_model() {
    for (peers, max) in [(200u32, 256usize), (600, 256)] {
        let mut c = cache(max);
        let mut model: HashMap<Ipv4Addr, (MacAddr, u64)> = HashMap::new();
        let mut seed = 0x1234_5678u32;
        for now in 0..50_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let peer = ip(1 + seed % peers);
            let mac = MacAddr([2, 0, 0, 0, (seed >> 8) as u8, (seed >> 16) as u8 & 0xfe]);
            match seed % 4 {
                0 => {
                    if c.learn(peer, mac, now, Claim::Solicited) == Learned::Stored {
                        model.insert(peer, (mac, now));
                    }
                }
                1 => {
                    let knew = c.peek(peer, now);
                    let stored = c.learn(peer, mac, now, Claim::Unverified { create: true }) == Learned::Stored;
                    if knew.is_some_and(|m| m != mac) {
                        assert!(!stored, "an unverified claim changed a usable MAC");
                    } else if stored {
                        model.insert(peer, (mac, now));
                    }
                }
                _ => match c.lookup(peer, now) {
                    Lookup::Hit(got) | Lookup::HitRefresh(got) => {
                        let (want, at) = model[&peer];
                        assert_eq!(got, want);
                        assert!(now - at < T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms);
                    }
                    Lookup::Unresolved => {
                        if let Some(&(_, at)) = model.get(&peer) {
                            let fits = (peers as usize) <= max;
                            let live = now - at < T.entry_ttl_ms + STALE_GRACE_INTERVALS * T.request_interval_ms;
                            assert!(!(fits && live), "forgot {peer} though the table holds every peer");
                        }
                    }
                    Lookup::Full => panic!("nothing is pinned"),
                },
            }
            assert!(c.len <= max);
        }
    }
}
