//! Write a MemoryStreamer plugin in Rust.
//!
//! Implement [`Plugin`] and name the type in [`export_plugin!`]; build the
//! crate as a `cdylib` for `wasm32-unknown-unknown`. The macro writes the
//! module's exports (the ABI of [`ms_plugin_abi`]): it keeps one instance
//! of the plugin, hands it the configuration, walks each batch's records
//! and writes back the verdicts. Nothing allocates: a plugin keeps its
//! state in fixed-size fields.
//!
//! Built natively (for `cargo test` of a plugin's logic), the host imports
//! are replaced by [`testing`]'s recorders.

#![cfg_attr(target_arch = "wasm32", no_std)]
#![deny(missing_docs)]

pub use ms_plugin_abi as abi;
pub use ms_plugin_abi::{EmitStatus, Verdict};

use abi::record;

mod host;
#[cfg(not(target_arch = "wasm32"))]
pub use host::testing;
pub use host::{counter_add, emit, log, now_ns};

#[doc(hidden)]
pub mod export;

/// Reading a plugin's configuration: `key=value` lines (UTF-8), which is
/// how the host passes the chain entry's `config` mapping.
pub mod config {
    /// The value of `key`, trimmed; the last one when the key repeats.
    pub fn get<'a>(config: &'a [u8], key: &str) -> Option<&'a str> {
        let text = core::str::from_utf8(config).ok()?;
        text.lines().rev().filter_map(|l| l.split_once('=')).find(|(k, _)| k.trim() == key).map(|(_, v)| v.trim())
    }

    /// The value of `key` as a number.
    pub fn number(config: &[u8], key: &str) -> Option<u64> {
        get(config, key)?.parse().ok()
    }

    /// The value of `key` as hex bytes into `out`; how many.
    pub fn hex(config: &[u8], key: &str, out: &mut [u8]) -> Option<usize> {
        let v = get(config, key)?.as_bytes();
        if v.len() % 2 != 0 || v.len() / 2 > out.len() {
            return None;
        }
        for (i, pair) in v.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(v.len() / 2)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn lines_of_key_and_value() {
            let c = b"at = 4\nequals=6869\nat=8\n";
            assert_eq!(super::get(c, "at"), Some("8"));
            assert_eq!(super::number(c, "at"), Some(8));
            let mut out = [0; 4];
            assert_eq!(super::hex(c, "equals", &mut out), Some(2));
            assert_eq!(&out[..2], b"hi");
            assert_eq!(super::get(c, "missing"), None);
            assert_eq!(super::hex(b"x=abc", "x", &mut out), None);
        }
    }
}

/// A failure a hook reports: a nonzero code the host counts and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    /// The configuration is not one this plugin understands.
    pub const BAD_CONFIG: Error = Error(1);
    /// The state handed over by the previous version cannot be read.
    pub const BAD_STATE: Error = Error(2);
    /// The state does not fit the buffer.
    pub const STATE_TOO_LARGE: Error = Error(3);
}

/// A plugin: one instance per worker core, fed batches of messages.
pub trait Plugin: Sized + 'static {
    /// Builds the instance from its configuration (the bytes of the
    /// chain entry's `config`, as written in the appliance's YAML).
    fn init(config: &[u8]) -> Result<Self, Error>;

    /// Traffic is about to flow.
    fn start(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Decides one message. Called for each message of a batch, in order.
    fn on_message(&mut self, msg: &mut Message<'_>) -> Verdict;

    /// A new configuration while running; on error the old one stays.
    fn on_config(&mut self, config: &[u8]) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// No more batches will come to this instance (a swap or a stop
    /// follows): emit whatever is held back.
    fn drain(&mut self) {}

    /// Writes the state the next version should start from into `out`;
    /// returns its length.
    fn snapshot(&self, out: &mut [u8]) -> Result<usize, Error> {
        let _ = out;
        Ok(0)
    }

    /// Takes over the state the previous version's [`Plugin::snapshot`]
    /// wrote (empty when there was none).
    fn restore(&mut self, state: &[u8]) -> Result<(), Error> {
        let _ = state;
        Ok(())
    }

    /// The instance is about to be freed.
    fn stop(&mut self) {}
}

/// One message of a batch: its record in the shared buffer.
#[derive(Debug)]
pub struct Message<'a> {
    rec: &'a mut [u8],
}

impl<'a> Message<'a> {
    /// A view of the record at the start of `rec` (header and room), as
    /// the host wrote it.
    #[doc(hidden)]
    pub fn over(rec: &'a mut [u8]) -> Message<'a> {
        Message { rec }
    }

    /// The stream the message was published to.
    pub fn stream(&self) -> u64 {
        abi::get64(self.rec, record::STREAM)
    }

    /// Its class, 0..=3.
    pub fn class(&self) -> u8 {
        self.rec[record::CLASS]
    }

    /// When it arrived, in ns on the host's clock (see [`now_ns`]).
    pub fn arrival_ns(&self) -> u64 {
        abi::get64(self.rec, record::ARRIVAL)
    }

    /// Its payload (as rewritten so far).
    pub fn payload(&self) -> &[u8] {
        &self.rec[record::HEADER_LEN..record::HEADER_LEN + self.len()]
    }

    /// The payload, to change in place (its length stays).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.rec[record::HEADER_LEN..record::HEADER_LEN + len]
    }

    /// Bytes the payload may grow to.
    pub fn room(&self) -> usize {
        usize::from(abi::get16(self.rec, record::ROOM))
    }

    /// Sets the payload's length (new bytes are whatever the room held:
    /// write them); false, and nothing changed, beyond [`Message::room`].
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.room() {
            return false;
        }
        abi::put16(self.rec, record::LEN, len as u16);
        true
    }

    /// Replaces the payload; false, and nothing changed, when `payload`
    /// is longer than [`Message::room`].
    pub fn set_payload(&mut self, payload: &[u8]) -> bool {
        if !self.set_len(payload.len()) {
            return false;
        }
        self.payload_mut().copy_from_slice(payload);
        true
    }

    /// The verdict that sends the message to `stream` instead.
    pub fn route_to(&mut self, stream: u64) -> Verdict {
        abi::put64(self.rec, record::ROUTE, stream);
        Verdict::Route
    }

    fn len(&self) -> usize {
        usize::from(abi::get16(self.rec, record::LEN)).min(self.room())
    }
}
