//! For hot-swap tests: appends one byte, the configured `version`, to each
//! payload (within the record's room; a message without room for it
//! passes unchanged), and keeps a running count of the messages seen that
//! moves from one version to the next.
//!
//! The count goes out through `snapshot` (8 bytes, little-endian) and
//! comes back through `restore`; an empty state is none (the count stays),
//! any other length is refused. Counter 1 follows the count: it rises
//! with each message and, on `restore`, jumps to the count taken over, so
//! an instance's counter 1 shows the messages seen by it and by the
//! versions before it.
//!
//! Configuration: `version` (required, 0 to 255). Counter 0 counts the
//! messages passed unchanged for want of room.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::abi::{get64, put64};
use ms_plugin_sdk::{config, counter_add, export_plugin, Error, Message, Plugin, Verdict};

/// Bytes of the state `snapshot` writes and `restore` takes.
pub const STATE_LEN: usize = 8;

/// The versioned plugin.
pub struct Version {
    version: u8,
    seen: u64,
}

impl Version {
    fn parse(c: &[u8]) -> Result<u8, Error> {
        config::number(c, "version").and_then(|v| u8::try_from(v).ok()).ok_or(Error::BAD_CONFIG)
    }

    /// Sets the count, moving counter 1 along with it: the host's counters
    /// only take deltas.
    fn set_seen(&mut self, seen: u64) {
        counter_add(1, seen.wrapping_sub(self.seen) as i64);
        self.seen = seen;
    }
}

impl Plugin for Version {
    fn init(config: &[u8]) -> Result<Self, Error> {
        Ok(Version { version: Version::parse(config)?, seen: 0 })
    }

    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        self.version = Version::parse(config)?;
        Ok(())
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        self.set_seen(self.seen.wrapping_add(1));
        let len = msg.payload().len();
        if msg.set_len(len + 1) {
            msg.payload_mut()[len] = self.version;
        } else {
            counter_add(0, 1);
        }
        Verdict::Pass
    }

    fn snapshot(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..STATE_LEN).ok_or(Error::STATE_TOO_LARGE)?;
        put64(out, 0..STATE_LEN, self.seen);
        Ok(STATE_LEN)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        match state.len() {
            0 => Ok(()),
            STATE_LEN => {
                self.set_seen(get64(state, 0..STATE_LEN));
                Ok(())
            }
            _ => Err(Error::BAD_STATE),
        }
    }
}

export_plugin!(Version);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::abi::PAYLOAD_MAX;
    use ms_plugin_sdk::testing::{self, Batch};

    fn snapshot(v: &Version) -> Vec<u8> {
        let mut out = vec![0; 64];
        let n = v.snapshot(&mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn appends_the_version_byte_and_counts_messages() {
        let mut v = Version::init(b"version=7").unwrap();
        testing::take();
        let out = Batch::new().push(1, 0, 0, b"ab").push(2, 3, 0, b"").run(&mut v);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!((out[0].stream, &out[0].payload[..]), (1, &b"ab\x07"[..]));
        assert_eq!((out[1].stream, &out[1].payload[..]), (2, &b"\x07"[..]));
        assert_eq!(testing::take().counters, [0, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(snapshot(&v), 2u64.to_le_bytes());
    }

    #[test]
    fn without_room_a_message_passes_unchanged_but_is_still_seen() {
        let mut v = Version::init(b"version=255").unwrap();
        testing::take();
        let fits = vec![1; PAYLOAD_MAX - 1];
        let full = vec![2; PAYLOAD_MAX];
        let out = Batch::new().push(1, 0, 0, &fits).push(1, 0, 0, &full).run(&mut v);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!((out[0].payload.len(), out[0].payload[PAYLOAD_MAX - 1]), (PAYLOAD_MAX, 255));
        assert_eq!(out[1].payload, full);
        assert_eq!(testing::take().counters[..2], [1, 2]);
    }

    #[test]
    fn the_count_moves_from_one_version_to_the_next() {
        let mut v1 = Version::init(b"version=1").unwrap();
        let mut b = Batch::new();
        b.push(1, 0, 0, b"m").push(1, 0, 0, b"m").push(1, 0, 0, b"m");
        b.run(&mut v1);
        v1.drain();
        let state = snapshot(&v1);
        assert_eq!(state, 3u64.to_le_bytes());

        let mut v2 = Version::init(b"version=2").unwrap();
        testing::take();
        assert_eq!(v2.restore(&state), Ok(()));
        assert_eq!(testing::take().counters[1], 3, "counter 1 shows the count taken over");
        let out = Batch::new().push(1, 0, 0, b"m").push(1, 0, 0, b"m").run(&mut v2);
        assert!(out.iter().all(|o| o.payload == b"m\x02"));
        assert_eq!(testing::take().counters[1], 2);
        assert_eq!(snapshot(&v2), 5u64.to_le_bytes());
    }

    #[test]
    fn restore_replaces_the_count_and_counter_one_follows_it_down_too() {
        let mut v = Version::init(b"version=0").unwrap();
        Batch::new().push(1, 0, 0, b"").push(1, 0, 0, b"").run(&mut v);
        assert_eq!(v.restore(&1u64.to_le_bytes()), Ok(()));
        assert_eq!(testing::take().counters[1], 1, "2 seen, then -1 to the restored 1");
        assert_eq!(snapshot(&v), 1u64.to_le_bytes());
    }

    #[test]
    fn an_empty_state_is_no_state_and_a_wrong_length_is_refused() {
        let mut v = Version::init(b"version=3").unwrap();
        Batch::new().push(1, 0, 0, b"").run(&mut v);
        testing::take();
        assert_eq!(v.restore(&[]), Ok(()));
        assert_eq!(v.restore(&[1; 7]), Err(Error::BAD_STATE));
        assert_eq!(v.restore(&[1; 9]), Err(Error::BAD_STATE));
        assert_eq!(testing::take().counters[1], 0);
        assert_eq!(snapshot(&v), 1u64.to_le_bytes());
        assert_eq!(v.snapshot(&mut [0; 7]), Err(Error::STATE_TOO_LARGE));
    }

    #[test]
    fn a_bad_configuration_is_refused_and_a_live_one_keeps_the_old() {
        for bad in [&b""[..], b"version=", b"version=256", b"version=-1", b"version=v2", b"v=2"] {
            assert_eq!(Version::init(bad).err(), Some(Error::BAD_CONFIG), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(Version::init(b"version=0").is_ok());
        let mut v = Version::init(b"version=4").unwrap();
        Batch::new().push(1, 0, 0, b"").run(&mut v);
        assert_eq!(v.on_config(b"version=256"), Err(Error::BAD_CONFIG));
        let out = Batch::new().push(1, 0, 0, b"").run(&mut v);
        assert_eq!(out[0].payload, [4]);
        assert_eq!(v.on_config(b"version=5"), Ok(()));
        let out = Batch::new().push(1, 0, 0, b"").run(&mut v);
        assert_eq!(out[0].payload, [5]);
        assert_eq!(snapshot(&v), 3u64.to_le_bytes(), "a new configuration keeps the count");
    }
}
