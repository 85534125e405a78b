//! A sampler: keeps one message in every `n` of a stream and drops the
//! others; a stream's first message is kept.
//!
//! The per-stream counts live in a fixed table of [`SLOTS`] slots indexed
//! by the stream id modulo [`SLOTS`], so streams whose ids collide share a
//! count: together they keep one message in every `n`, and a stream may
//! lose its first message to the other's. The table survives a hot swap
//! (`snapshot` writes it as [`SLOTS`] little-endian u64s, `restore` takes
//! it back), and a new configuration keeps it, the new `n` applying to the
//! counts so far.
//!
//! Configuration: `n` (required, at least 1; 1 keeps everything).
//! Counter 0 counts the messages dropped.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::abi::{get64, put64};
use ms_plugin_sdk::{config, counter_add, export_plugin, Error, Message, Plugin, Verdict};

/// Slots of the per-stream table.
pub const SLOTS: usize = 1024;

/// Bytes of the state `snapshot` writes and `restore` takes.
pub const STATE_LEN: usize = SLOTS * 8;

/// The sampling plugin.
pub struct Sample {
    n: u64,
    /// Messages seen per slot: the next kept is the one that finds it a
    /// multiple of `n`.
    seen: [u64; SLOTS],
}

impl Sample {
    fn parse_n(c: &[u8]) -> Result<u64, Error> {
        config::number(c, "n").filter(|&n| n >= 1).ok_or(Error::BAD_CONFIG)
    }

    fn slot(stream: u64) -> usize {
        (stream % SLOTS as u64) as usize
    }
}

impl Plugin for Sample {
    fn init(config: &[u8]) -> Result<Self, Error> {
        Ok(Sample { n: Sample::parse_n(config)?, seen: [0; SLOTS] })
    }

    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        self.n = Sample::parse_n(config)?;
        Ok(())
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        let seen = &mut self.seen[Sample::slot(msg.stream())];
        let keep = *seen % self.n == 0;
        // 2^64 messages on one slot is out of reach; wrapping keeps the
        // arithmetic total rather than panicking.
        *seen = seen.wrapping_add(1);
        if keep {
            Verdict::Pass
        } else {
            counter_add(0, 1);
            Verdict::Drop
        }
    }

    fn snapshot(&self, out: &mut [u8]) -> Result<usize, Error> {
        let out = out.get_mut(..STATE_LEN).ok_or(Error::STATE_TOO_LARGE)?;
        for (i, &seen) in self.seen.iter().enumerate() {
            put64(out, i * 8..i * 8 + 8, seen);
        }
        Ok(STATE_LEN)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        match state.len() {
            0 => Ok(()),
            STATE_LEN => {
                for (i, seen) in self.seen.iter_mut().enumerate() {
                    *seen = get64(state, i * 8..i * 8 + 8);
                }
                Ok(())
            }
            _ => Err(Error::BAD_STATE),
        }
    }
}

export_plugin!(Sample);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::testing::{self, Batch};

    /// The verdicts for messages of `streams`, in order, in one batch.
    fn decide(s: &mut Sample, streams: &[u64]) -> Vec<Verdict> {
        let mut b = Batch::new();
        for &stream in streams {
            b.push(stream, 0, 0, b"m");
        }
        b.run(s).into_iter().map(|o| o.verdict).collect()
    }

    const P: Verdict = Verdict::Pass;
    const D: Verdict = Verdict::Drop;

    #[test]
    fn keeps_one_in_n_starting_with_the_first() {
        let mut s = Sample::init(b"n=3").unwrap();
        testing::take();
        assert_eq!(decide(&mut s, &[1; 7]), [P, D, D, P, D, D, P]);
        assert_eq!(testing::take().counters[0], 4);
        assert_eq!(decide(&mut s, &[1; 3]), [D, D, P], "the count carries over batches");
        assert_eq!(testing::take().counters[0], 2);
    }

    #[test]
    fn each_stream_keeps_its_own_count() {
        let mut s = Sample::init(b"n=2").unwrap();
        assert_eq!(decide(&mut s, &[1, 2, 1, 2, 3, 1]), [P, P, D, D, P, P]);
    }

    #[test]
    fn n_of_one_keeps_everything() {
        let mut s = Sample::init(b"n=1").unwrap();
        testing::take();
        assert_eq!(decide(&mut s, &[1, 1, 1, 2, 2]), [P; 5]);
        assert_eq!(testing::take().counters[0], 0);
    }

    #[test]
    fn streams_that_collide_share_a_count() {
        let mut s = Sample::init(b"n=2").unwrap();
        let twin = 5 + SLOTS as u64;
        assert_eq!(decide(&mut s, &[5, twin, twin, 5, 6]), [P, D, P, D, P]);
        assert_eq!(decide(&mut s, &[u64::MAX, u64::MAX % SLOTS as u64]), [P, D]);
    }

    #[test]
    fn the_table_survives_a_swap() {
        let mut old = Sample::init(b"n=3").unwrap();
        decide(&mut old, &[5, 5, 1029, 7]);
        let mut state = vec![0xee; STATE_LEN + 16];
        assert_eq!(old.snapshot(&mut state), Ok(STATE_LEN));
        let state = &state[..STATE_LEN];
        assert_eq!(get64(state, 5 * 8..6 * 8), 3, "slot 5, little-endian, holds streams 5 and 1029");
        assert_eq!(get64(state, 7 * 8..8 * 8), 1);
        assert_eq!(state.iter().filter(|&&b| b != 0).count(), 2);

        let mut new = Sample::init(b"n=3").unwrap();
        assert_eq!(new.restore(state), Ok(()));
        assert_eq!(decide(&mut new, &[5, 7, 7, 7, 8]), [P, D, D, P, P], "as if never swapped");
    }

    #[test]
    fn an_empty_state_is_no_state_and_a_wrong_length_is_refused() {
        let mut s = Sample::init(b"n=2").unwrap();
        assert_eq!(s.restore(&[]), Ok(()));
        decide(&mut s, &[1]);
        assert_eq!(s.restore(&[0; STATE_LEN - 1]), Err(Error::BAD_STATE));
        assert_eq!(s.restore(&[0; STATE_LEN + 8]), Err(Error::BAD_STATE));
        assert_eq!(s.restore(&[0; 8]), Err(Error::BAD_STATE));
        assert_eq!(decide(&mut s, &[1, 1]), [D, P], "a refused state leaves the table");
        assert_eq!(s.snapshot(&mut [0; STATE_LEN - 1]), Err(Error::STATE_TOO_LARGE));
    }

    #[test]
    fn a_bad_configuration_is_refused_and_a_live_one_keeps_the_old() {
        for bad in [&b""[..], b"n=0", b"n=x", b"n=-1", b"n=", b"every=2"] {
            assert_eq!(Sample::init(bad).err(), Some(Error::BAD_CONFIG), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut s = Sample::init(b"n=2").unwrap();
        assert_eq!(s.on_config(b"n=0"), Err(Error::BAD_CONFIG));
        assert_eq!(decide(&mut s, &[1, 1, 1]), [P, D, P]);
        assert_eq!(s.on_config(b"n=1"), Ok(()));
        assert_eq!(decide(&mut s, &[1, 1]), [P, P]);
    }
}
