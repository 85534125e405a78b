//! An enricher: appends the message's arrival time (ns on the host's
//! clock, 8 bytes little-endian) to its payload, within the record's room.
//! When the room cannot take 8 more bytes the message passes unchanged.
//!
//! No configuration (whatever is given is ignored). Counter 0 counts the
//! messages passed unstamped for want of room.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::{counter_add, export_plugin, Error, Message, Plugin, Verdict};

/// Bytes the stamp adds.
pub const STAMP_LEN: usize = 8;

/// The stamping plugin.
pub struct Stamp;

impl Plugin for Stamp {
    fn init(_config: &[u8]) -> Result<Self, Error> {
        Ok(Stamp)
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        let len = msg.payload().len();
        let arrival = msg.arrival_ns();
        // set_len refuses, changing nothing, past the room: the message
        // then goes on as it came rather than with a torn stamp.
        if msg.set_len(len + STAMP_LEN) {
            msg.payload_mut()[len..].copy_from_slice(&arrival.to_le_bytes());
        } else {
            counter_add(0, 1);
        }
        Verdict::Pass
    }
}

export_plugin!(Stamp);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::abi::{PAYLOAD_MAX, REWRITE_GROWTH_MAX};
    use ms_plugin_sdk::testing::{self, Batch};

    const T: u64 = 0x0102_0304_0506_0708;

    #[test]
    fn appends_the_arrival_time_little_endian() {
        let mut s = Stamp::init(b"").unwrap();
        testing::take();
        let out = Batch::new().push(3, 2, T, b"ab").push(4, 0, 0, b"").run(&mut s);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!((out[0].stream, &out[0].payload[..]), (3, &b"ab\x08\x07\x06\x05\x04\x03\x02\x01"[..]));
        assert_eq!((out[1].stream, &out[1].payload[..]), (4, &[0; 8][..]));
        assert_eq!(testing::take().counters[0], 0);
    }

    #[test]
    fn stamps_until_the_room_is_used_up_exactly() {
        let mut s = Stamp::init(b"").unwrap();
        testing::take();
        let mut b = Batch::new();
        b.push(1, 0, T, b"x");
        // The room is the payload plus REWRITE_GROWTH_MAX (64): eight
        // stamps fill it to the byte, the ninth finds none.
        let stamps = REWRITE_GROWTH_MAX / STAMP_LEN;
        for _ in 0..stamps {
            b.run(&mut s);
        }
        assert_eq!(testing::take().counters[0], 0);
        let out = b.run(&mut s);
        assert_eq!(out[0].verdict, Verdict::Pass);
        assert_eq!(out[0].payload.len(), 1 + REWRITE_GROWTH_MAX, "the ninth left it as it was");
        assert!(out[0].payload[1..].chunks(8).all(|c| c == T.to_le_bytes()));
        assert_eq!(testing::take().counters[0], 1);
    }

    #[test]
    fn a_payload_near_the_largest_passes_unchanged_and_is_counted() {
        let mut s = Stamp::init(b"").unwrap();
        testing::take();
        let fits = vec![b'a'; PAYLOAD_MAX - STAMP_LEN];
        let over = vec![b'b'; PAYLOAD_MAX - STAMP_LEN + 1];
        let full = vec![b'c'; PAYLOAD_MAX];
        let out = Batch::new().push(1, 0, T, &fits).push(1, 0, T, &over).push(1, 0, T, &full).run(&mut s);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!(out[0].payload.len(), PAYLOAD_MAX);
        assert_eq!(out[0].payload[PAYLOAD_MAX - STAMP_LEN..], T.to_le_bytes());
        assert_eq!(out[1].payload, over);
        assert_eq!(out[2].payload, full);
        assert_eq!(testing::take().counters[0], 2);
    }
}
