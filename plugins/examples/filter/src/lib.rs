//! A content filter: keeps a message when its payload holds the bytes
//! `equals` (hex) at offset `at`, and drops it otherwise (shorter payloads
//! included). Configuration: `at` (default 0) and `equals` (1 to 32 bytes).
//! Counter 0 counts the messages dropped.

#![cfg_attr(target_arch = "wasm32", no_std)]

use ms_plugin_sdk::{config, counter_add, export_plugin, Error, Message, Plugin, Verdict};

/// Bytes a predicate may compare.
const EQUALS_MAX: usize = 32;

/// The filter's predicate.
pub struct Filter {
    at: usize,
    equals: [u8; EQUALS_MAX],
    len: usize,
}

impl Filter {
    fn parse(c: &[u8]) -> Result<Filter, Error> {
        let at = match config::get(c, "at") {
            Some(_) => config::number(c, "at").ok_or(Error::BAD_CONFIG)? as usize,
            None => 0,
        };
        let mut equals = [0; EQUALS_MAX];
        let len = config::hex(c, "equals", &mut equals).filter(|&n| n > 0).ok_or(Error::BAD_CONFIG)?;
        Ok(Filter { at, equals, len })
    }

    fn keeps(&self, payload: &[u8]) -> bool {
        payload.get(self.at..self.at + self.len) == Some(&self.equals[..self.len])
    }
}

impl Plugin for Filter {
    fn init(config: &[u8]) -> Result<Self, Error> {
        Filter::parse(config)
    }

    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        *self = Filter::parse(config)?;
        Ok(())
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        if self.keeps(msg.payload()) {
            Verdict::Pass
        } else {
            counter_add(0, 1);
            Verdict::Drop
        }
    }
}

export_plugin!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::testing::{self, Batch};

    #[test]
    fn keeps_what_matches_at_the_offset_and_drops_the_rest() {
        let mut f = Filter::init(b"at=1\nequals=4142").unwrap();
        testing::take();
        let out = Batch::new().push(1, 1, 0, b"xAB").push(1, 1, 0, b"ABx").push(1, 1, 0, b"xA").run(&mut f);
        let verdicts: Vec<_> = out.iter().map(|o| o.verdict).collect();
        assert_eq!(verdicts, [Verdict::Pass, Verdict::Drop, Verdict::Drop]);
        assert_eq!(testing::take().counters[0], 2);
    }

    #[test]
    fn a_bad_configuration_is_refused_and_a_live_one_keeps_the_old() {
        assert_eq!(Filter::init(b"equals=zz").err(), Some(Error::BAD_CONFIG));
        assert_eq!(Filter::init(b"at=1").err(), Some(Error::BAD_CONFIG));
        let mut f = Filter::init(b"equals=41").unwrap();
        assert_eq!(f.on_config(b"at=x\nequals=41"), Err(Error::BAD_CONFIG));
        assert!(f.keeps(b"A"));
    }
}
