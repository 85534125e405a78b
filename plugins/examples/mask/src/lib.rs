//! A transform: overwrites the payload's bytes `from..to` with the byte
//! `with`, in place, and passes the message. A payload that ends before
//! `to` is masked as far as it goes (one that ends before `from` is left
//! as it is); the payload's length never changes.
//!
//! Configuration: `from` and `to` (required; `from < to <=`
//! [`PAYLOAD_MAX`], so `to` set to the maximum masks to the end of any
//! payload) and `with`, one byte as two hex digits (default `2a`, `*`).
//! No counters.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::abi::PAYLOAD_MAX;
use ms_plugin_sdk::{config, export_plugin, Error, Message, Plugin, Verdict};

/// What `with` is when the configuration leaves it out: `*`.
const WITH_DEFAULT: u8 = b'*';

/// The masking plugin.
pub struct Mask {
    from: usize,
    to: usize,
    with: u8,
}

impl Mask {
    fn parse(c: &[u8]) -> Result<Mask, Error> {
        let from = config::number(c, "from").ok_or(Error::BAD_CONFIG)?;
        let to = config::number(c, "to").ok_or(Error::BAD_CONFIG)?;
        // An empty range masks nothing, and one past the largest payload
        // can never apply: both are mistakes worth refusing.
        if from >= to || to > PAYLOAD_MAX as u64 {
            return Err(Error::BAD_CONFIG);
        }
        let with = match config::get(c, "with") {
            Some(_) => {
                let mut b = [0; 1];
                config::hex(c, "with", &mut b).filter(|&n| n == 1).ok_or(Error::BAD_CONFIG)?;
                b[0]
            }
            None => WITH_DEFAULT,
        };
        // Both fit: they are at most PAYLOAD_MAX, itself a usize.
        Ok(Mask { from: from as usize, to: to as usize, with })
    }

    fn apply(&self, payload: &mut [u8]) {
        let end = self.to.min(payload.len());
        if let Some(bytes) = payload.get_mut(self.from..end) {
            bytes.fill(self.with);
        }
    }
}

impl Plugin for Mask {
    fn init(config: &[u8]) -> Result<Self, Error> {
        Mask::parse(config)
    }

    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        *self = Mask::parse(config)?;
        Ok(())
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        self.apply(msg.payload_mut());
        Verdict::Pass
    }
}

export_plugin!(Mask);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::testing::{self, Batch};

    fn payloads(m: &mut Mask, inputs: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut b = Batch::new();
        for p in inputs {
            b.push(9, 0, 0, p);
        }
        let out = b.run(m);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass && o.stream == 9));
        out.into_iter().map(|o| o.payload).collect()
    }

    #[test]
    fn masks_the_range_in_place_with_stars_by_default() {
        let mut m = Mask::init(b"from=1\nto=4").unwrap();
        testing::take();
        assert_eq!(payloads(&mut m, &[b"abcdef", b"abcd"]), [b"a***ef".to_vec(), b"a***".to_vec()]);
        assert_eq!(testing::take(), testing::Recorded::default(), "no counters, logs or emits");
    }

    #[test]
    fn a_short_payload_is_masked_as_far_as_it_goes_and_keeps_its_length() {
        let mut m = Mask::init(b"from=2\nto=6").unwrap();
        let out = payloads(&mut m, &[b"abc", b"ab", b"a", b""]);
        assert_eq!(out, [b"ab*".to_vec(), b"ab".to_vec(), b"a".to_vec(), b"".to_vec()]);
    }

    #[test]
    fn the_byte_is_configurable_and_to_may_reach_the_largest_payload() {
        let max = format!("from=0\nto={PAYLOAD_MAX}\nwith=00");
        let mut m = Mask::init(max.as_bytes()).unwrap();
        assert_eq!(payloads(&mut m, &[b"xyz"]), [vec![0, 0, 0]]);
        let mut m = Mask::init(b"from=0\nto=1\nwith=FF").unwrap();
        assert_eq!(payloads(&mut m, &[b"xyz"]), [b"\xffyz".to_vec()]);
    }

    #[test]
    fn a_bad_configuration_is_refused_and_a_live_one_keeps_the_old() {
        let too_far = format!("from=0\nto={}", PAYLOAD_MAX + 1);
        for bad in [
            &b""[..],
            b"to=4",
            b"from=1",
            b"from=x\nto=4",
            b"from=1\nto=-4",
            b"from=4\nto=4",
            b"from=5\nto=4",
            too_far.as_bytes(),
            b"from=0\nto=4\nwith=2",
            b"from=0\nto=4\nwith=zz",
            b"from=0\nto=4\nwith=2a2a",
            b"from=0\nto=4\nwith=",
        ] {
            assert_eq!(Mask::init(bad).err(), Some(Error::BAD_CONFIG), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut m = Mask::init(b"from=0\nto=1").unwrap();
        assert_eq!(m.on_config(b"from=0\nto=2\nwith=zz"), Err(Error::BAD_CONFIG));
        assert_eq!(payloads(&mut m, &[b"abc"]), [b"*bc".to_vec()]);
        assert_eq!(m.on_config(b"from=1\nto=3\nwith=2d"), Ok(()));
        assert_eq!(payloads(&mut m, &[b"abc"]), [b"a--".to_vec()]);
    }
}
