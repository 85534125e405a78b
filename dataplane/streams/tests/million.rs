//! One million streams on one worker's table: registering them, publishing
//! to every one and expiring them returns memory to where it started, and
//! an idle stream costs at most 128 bytes.

use ms_streams::{Limits, Outcome, Peer, Streams, EXPIRE_SUBSCRIPTIONS_MAX, SLOT_BYTES};

const STREAMS: u32 = 1 << 20;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn cycle(t: &mut Streams, now_ms: u64) {
    let subscriber = Peer { ip: u32::from_be_bytes([198, 18, 0, 2]), port: 40_000 };
    for id in 0..u64::from(STREAMS) {
        assert_eq!(t.subscribe(subscriber, id, now_ms), Ok(true));
    }
    assert_eq!(t.gauges().streams, STREAMS);
    for id in 0..u64::from(STREAMS) {
        assert!(matches!(t.publish(id, 2, 0, &id.to_le_bytes()), Outcome::Queued { fanout: 1, .. }));
    }
    // Half are sent; the other half are still queued when the subscriber
    // expires, and are freed with it.
    let mut sent = 0u32;
    while sent < STREAMS / 2 {
        sent += t.serve(4096.min(STREAMS / 2 - sent), |_, _| true).messages;
    }
    assert_eq!(t.gauges().queued_messages, STREAMS / 2);
    let expire_at = now_ms + t.limits().lifetime_ms;
    // Expiry removes a bounded number of subscriptions per call (per loop
    // turn in the dataplane): a million take a thousand calls.
    let mut calls = 0;
    while t.expire(expire_at, 16, |_, _| {}) == 0 {
        calls += 1;
        assert!(calls <= STREAMS / EXPIRE_SUBSCRIPTIONS_MAX, "expiry makes progress");
    }
    let g = t.gauges();
    assert_eq!((g.streams, g.subscriptions, g.subscribers, g.queued_messages, g.pool_used_bytes), (0, 0, 0, 0, 0));
    let tally = t.take_tally();
    assert_eq!(tally.fanout, tally.sent + tally.dropped_total());
}

#[test]
fn a_million_streams_come_and_go_without_growing_the_process() {
    let limits = Limits {
        streams: STREAMS,
        subscribers: 4,
        subscriptions: STREAMS,
        lifetime_ms: 1000,
        // Twice what one message per stream needs: the pool stays below the
        // shedding thresholds (a full pool would shed normal messages).
        queue_bytes: 2 * u64::from(STREAMS) * SLOT_BYTES,
    };
    let mut t = Streams::new(limits);
    let idle = (t.stream_bytes() + t.subscription_bytes()) / STREAMS as usize;
    assert!(idle <= 128, "{idle} bytes per idle stream with one subscriber");
    let before = rss_bytes();
    cycle(&mut t, 0);
    let after_first = rss_bytes();
    cycle(&mut t, 10_000);
    let after_second = rss_bytes();
    let slack = 16 << 20;
    assert!(after_first <= before + slack, "RSS {before} -> {after_first} after a million streams came and went");
    assert!(after_second <= after_first + slack, "a second round: {after_first} -> {after_second}");
}
