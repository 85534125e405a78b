//! Stream-table numbers at one million streams on one core:
//! bytes per idle stream, lookups per second (random ids, prefetched in
//! batches of 16 like a burst), and publish + schedule + send per second.
//!
//! `cargo run --release -p ms-streams --example million_bench`

use ms_streams::{Limits, Peer, Streams, SLOT_BYTES};
use std::time::Instant;

const STREAMS: u32 = 1 << 20;

fn main() {
    let limits = Limits {
        streams: STREAMS,
        subscribers: 4,
        subscriptions: STREAMS,
        lifetime_ms: 60_000,
        queue_bytes: 2 * u64::from(STREAMS) * SLOT_BYTES,
    };
    let mut t = Streams::new(limits);
    let sub = Peer { ip: u32::from_be_bytes([198, 18, 0, 2]), port: 40_000 };
    let start = Instant::now();
    for id in 0..u64::from(STREAMS) {
        t.subscribe(sub, id * 7919, 0).expect("table sized for every stream");
    }
    let per_stream = (t.stream_bytes() + t.subscription_bytes()) as f64 / f64::from(STREAMS);
    println!(
        "registered {STREAMS} streams in {:.2} s; {per_stream:.0} B per idle stream with one subscriber",
        start.elapsed().as_secs_f64()
    );

    // Random ids from a fixed LCG, so runs compare.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) % u64::from(STREAMS) * 7919
    };
    let rounds = 8_000_000u64;
    let mut ids = [0u64; 16];
    let mut found = 0u64;
    let start = Instant::now();
    for _ in 0..rounds / 16 {
        for id in &mut ids {
            *id = next();
            t.prefetch(*id);
        }
        found += ids.iter().filter(|id| t.position(**id).is_some()).count() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(found, rounds);
    println!("lookup: {:.1} M/s ({:.0} ns each)", rounds as f64 / secs / 1e6, secs * 1e9 / rounds as f64);

    let payload = [7u8; 64];
    let start = Instant::now();
    let mut sent = 0u64;
    for _ in 0..rounds / 16 / 4 {
        for id in &mut ids {
            *id = next();
            t.prefetch(*id);
        }
        for id in ids {
            t.publish(id, 2, 0, &payload);
        }
        sent += u64::from(t.serve(64, |_, o| o.len == 64).messages);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("publish + schedule + send (64 B, fan-out 1): {:.1} M msg/s", sent as f64 / secs / 1e6);
}
