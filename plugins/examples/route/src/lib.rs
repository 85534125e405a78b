//! A content router: reads a key from the payload, `len` bytes at offset
//! `at` as a little-endian unsigned integer k, and routes the message to
//! stream `base + k` when k < `count`. A message whose key is out of range,
//! or whose payload is too short to hold the key, passes unchanged on its
//! own stream. The payload is never changed.
//!
//! Configuration: `at` (default 0), `len` (1 to 8, default 1; `at + len`
//! at most [`PAYLOAD_MAX`]), `base` (required) and `count` (required, 1 to
//! 1 000 000; `base + count - 1` must be a stream id, not past `u64::MAX`).
//! Counter 0 counts the messages routed.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::abi::PAYLOAD_MAX;
use ms_plugin_sdk::{config, counter_add, export_plugin, Error, Message, Plugin, Verdict};

/// Bytes of the widest key: a u64.
const KEY_MAX: u64 = 8;

/// Target streams one router may address: keeps a mistyped `count` from
/// spraying messages over the stream id space.
const COUNT_MAX: u64 = 1_000_000;

/// The routing plugin.
pub struct Route {
    at: usize,
    len: usize,
    base: u64,
    count: u64,
}

/// `key` as a number, `default` when it is absent; present but not a
/// number is a bad configuration rather than the default.
fn number_or(c: &[u8], key: &str, default: u64) -> Result<u64, Error> {
    match config::get(c, key) {
        Some(_) => config::number(c, key).ok_or(Error::BAD_CONFIG),
        None => Ok(default),
    }
}

impl Route {
    fn parse(c: &[u8]) -> Result<Route, Error> {
        let at = number_or(c, "at", 0)?;
        let len = number_or(c, "len", 1)?;
        let base = config::number(c, "base").ok_or(Error::BAD_CONFIG)?;
        let count = config::number(c, "count").ok_or(Error::BAD_CONFIG)?;
        if !(1..=KEY_MAX).contains(&len) || !(1..=COUNT_MAX).contains(&count) {
            return Err(Error::BAD_CONFIG);
        }
        // A key no payload can hold would make the router a silent pass.
        if at.checked_add(len).is_none_or(|end| end > PAYLOAD_MAX as u64) {
            return Err(Error::BAD_CONFIG);
        }
        if base.checked_add(count - 1).is_none() {
            return Err(Error::BAD_CONFIG);
        }
        // Both fit: they are bounded by PAYLOAD_MAX, itself a usize.
        Ok(Route { at: at as usize, len: len as usize, base, count })
    }

    /// The stream `payload` goes to, if its key is in range.
    fn target(&self, payload: &[u8]) -> Option<u64> {
        let key = payload.get(self.at..self.at + self.len)?;
        let mut k = [0; 8];
        k[..self.len].copy_from_slice(key);
        let k = u64::from_le_bytes(k);
        (k < self.count).then(|| self.base + k)
    }
}

impl Plugin for Route {
    fn init(config: &[u8]) -> Result<Self, Error> {
        Route::parse(config)
    }

    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        *self = Route::parse(config)?;
        Ok(())
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        match self.target(msg.payload()) {
            Some(stream) => {
                counter_add(0, 1);
                msg.route_to(stream)
            }
            None => Verdict::Pass,
        }
    }
}

export_plugin!(Route);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::testing::{self, Batch};

    /// Verdict and stream of each payload, published to stream 7.
    fn decide(r: &mut Route, inputs: &[&[u8]]) -> Vec<(Verdict, u64)> {
        let mut b = Batch::new();
        for p in inputs {
            b.push(7, 0, 0, p);
        }
        let out = b.run(r);
        for (o, p) in out.iter().zip(inputs) {
            assert_eq!(&o.payload[..], *p, "the payload is never changed");
        }
        out.iter().map(|o| (o.verdict, o.stream)).collect()
    }

    #[test]
    fn routes_by_a_little_endian_key_within_the_count() {
        let mut r = Route::init(b"at=1\nlen=2\nbase=100\ncount=10").unwrap();
        testing::take();
        let out = decide(&mut r, &[b"x\x03\x00", b"x\x00\x00rest", b"x\x09\x00", b"x\x0a\x00", b"x\x00\x01"]);
        assert_eq!(
            out,
            [
                (Verdict::Route, 103),
                (Verdict::Route, 100),
                (Verdict::Route, 109),
                (Verdict::Pass, 7),
                (Verdict::Pass, 7),
            ],
            "k = count - 1 is the last routed; k = count and the high byte's 256 pass"
        );
        assert_eq!(testing::take().counters, [3, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_payload_too_short_for_the_key_passes_uncounted() {
        let mut r = Route::init(b"at=1\nlen=2\nbase=100\ncount=10").unwrap();
        testing::take();
        assert_eq!(decide(&mut r, &[b"x\x01", b"x", b""]), [(Verdict::Pass, 7); 3]);
        assert_eq!(testing::take().counters[0], 0);
    }

    #[test]
    fn the_defaults_read_one_byte_at_the_start() {
        let mut r = Route::init(b"base=50\ncount=256").unwrap();
        assert_eq!(
            decide(&mut r, &[b"\x00", b"\xffzz", b""]),
            [(Verdict::Route, 50), (Verdict::Route, 305), (Verdict::Pass, 7)]
        );
    }

    #[test]
    fn an_eight_byte_key_reads_the_whole_u64() {
        let mut r = Route::init(b"len=8\nbase=0\ncount=1000000").unwrap();
        let k = 999_999u64.to_le_bytes();
        let big = 1_000_000u64.to_le_bytes();
        let top = u64::MAX.to_le_bytes();
        assert_eq!(
            decide(&mut r, &[&k, &big, &top, &k[..7]]),
            [(Verdict::Route, 999_999), (Verdict::Pass, 7), (Verdict::Pass, 7), (Verdict::Pass, 7)]
        );
    }

    #[test]
    fn the_last_stream_id_is_reachable() {
        let base = format!("base={}\ncount=2", u64::MAX - 1);
        let mut r = Route::init(base.as_bytes()).unwrap();
        assert_eq!(decide(&mut r, &[b"\x01"]), [(Verdict::Route, u64::MAX)]);
    }

    #[test]
    fn a_bad_configuration_is_refused_and_a_live_one_keeps_the_old() {
        let overflow = format!("base={}\ncount=2", u64::MAX);
        let far = format!("at={}\nlen=1\nbase=0\ncount=1", PAYLOAD_MAX);
        for bad in [
            &b""[..],
            b"count=10",
            b"base=1",
            b"base=x\ncount=10",
            b"base=1\ncount=0",
            b"base=1\ncount=1000001",
            b"base=1\ncount=ten",
            b"base=1\ncount=10\nlen=0",
            b"base=1\ncount=10\nlen=9",
            b"base=1\ncount=10\nlen=",
            b"base=1\ncount=10\nat=-1",
            b"base=1\ncount=10\nat=18446744073709551615",
            overflow.as_bytes(),
            far.as_bytes(),
        ] {
            assert_eq!(Route::init(bad).err(), Some(Error::BAD_CONFIG), "{:?}", String::from_utf8_lossy(bad));
        }
        let edge = format!("at={}\nlen=1\nbase=0\ncount=1", PAYLOAD_MAX - 1);
        assert!(Route::init(edge.as_bytes()).is_ok(), "a key in the largest payload's last byte");

        let mut r = Route::init(b"base=10\ncount=2").unwrap();
        assert_eq!(r.on_config(b"base=20\ncount=0"), Err(Error::BAD_CONFIG));
        assert_eq!(decide(&mut r, &[b"\x01"]), [(Verdict::Route, 11)]);
        assert_eq!(r.on_config(b"base=20\ncount=2"), Ok(()));
        assert_eq!(decide(&mut r, &[b"\x01"]), [(Verdict::Route, 21)]);
    }
}
