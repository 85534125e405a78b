//! Counts and passes everything: counter 0 counts the messages, counter 1
//! their payload bytes, counter 2 the messages whose payload is empty.
//! Each `drain` logs one line at INFO, `count: N messages`, N being the
//! messages this instance has seen since it was built.
//!
//! No configuration (whatever is given is ignored).

#![cfg_attr(target_arch = "wasm32", no_std)]

use core::fmt::{self, Write};
use ms_plugin_sdk::abi::level;
use ms_plugin_sdk::{counter_add, export_plugin, log, Error, Message, Plugin, Verdict};

/// The counting plugin.
pub struct Count {
    messages: u64,
}

/// A line formatted without allocating. Long enough for the drain line
/// with a u64's 20 digits.
struct Line {
    buf: [u8; 64],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line { buf: [0; 64], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are copied in, so this cannot fail; an empty
        // line is still better than a trap if it ever did.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // All or nothing, so a cut never lands inside a character.
        let to = self.buf.get_mut(self.len..self.len + s.len()).ok_or(fmt::Error)?;
        to.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

impl Plugin for Count {
    fn init(_config: &[u8]) -> Result<Self, Error> {
        Ok(Count { messages: 0 })
    }

    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict {
        let len = msg.payload().len();
        self.messages += 1;
        counter_add(0, 1);
        counter_add(1, len as i64);
        if len == 0 {
            counter_add(2, 1);
        }
        Verdict::Pass
    }

    fn drain(&mut self) {
        let mut line = Line::new();
        // The buffer holds the longest line; were it ever short, the host
        // still gets what fitted.
        let _ = write!(line, "count: {} messages", self.messages);
        log(level::INFO, line.as_str());
    }
}

export_plugin!(Count);

#[cfg(test)]
mod tests {
    use super::*;
    use ms_plugin_sdk::abi::PAYLOAD_MAX;
    use ms_plugin_sdk::testing::{self, Batch};

    #[test]
    fn counts_messages_bytes_and_empty_payloads_and_passes_all() {
        let mut c = Count::init(b"").unwrap();
        testing::take();
        let big = vec![7; PAYLOAD_MAX];
        let out =
            Batch::new().push(1, 0, 0, b"").push(2, 1, 0, b"abc").push(1, 0, 0, b"").push(3, 3, 0, &big).run(&mut c);
        assert!(out.iter().all(|o| o.verdict == Verdict::Pass));
        assert_eq!((out[1].stream, &out[1].payload[..]), (2, &b"abc"[..]));
        assert_eq!(out[3].payload, big);
        let r = testing::take();
        assert_eq!(r.counters, [4, 3 + PAYLOAD_MAX as i64, 2, 0, 0, 0, 0, 0]);
        assert!(r.logs.is_empty(), "nothing is logged per message");
    }

    #[test]
    fn each_drain_logs_one_line_of_the_total() {
        let mut c = Count::init(b"").unwrap();
        testing::take();
        c.drain();
        assert_eq!(testing::take().logs, [(level::INFO, String::from("count: 0 messages"))]);
        let mut b = Batch::new();
        b.push(1, 0, 0, b"a").push(1, 0, 0, b"b");
        b.run(&mut c);
        b.run(&mut c);
        b.run(&mut c);
        testing::take();
        c.drain();
        c.drain();
        let line = (level::INFO, String::from("count: 6 messages"));
        assert_eq!(testing::take().logs, [line.clone(), line]);
    }

    #[test]
    fn the_largest_count_fits_the_line() {
        let mut c = Count { messages: u64::MAX };
        testing::take();
        c.drain();
        assert_eq!(testing::take().logs, [(level::INFO, String::from("count: 18446744073709551615 messages"))]);
    }

    #[test]
    fn a_line_refuses_what_does_not_fit_whole() {
        let mut l = Line::new();
        assert!(l.write_str(&"x".repeat(60)).is_ok());
        assert!(l.write_str("é€").is_err());
        assert!(l.write_str("é").is_ok());
        assert_eq!(l.as_str().len(), 62);
    }
}
