//! The records of one batch, written straight into the guest's buffer and
//! read back from it: no staging copy on either side.

use crate::Fault;
use ms_plugin_abi::{self as abi, record, Verdict, BATCH_MAX};

/// What the host knows of each message of a batch: written when it is
/// pushed, completed from the guest's record by [`Records::check`].
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    at: u32,
    len: u16,
    class: u8,
    verdict: u8,
    stream: u64,
    route: u64,
}

/// A batch's messages in the guest's buffer, and how far it is filled.
/// Allocated once per instance.
pub(crate) struct Records {
    entries: Box<[Entry]>,
    count: usize,
    used: usize,
}

/// What the plugin decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Pass, drop or route.
    pub verdict: Verdict,
    /// The stream it goes to: its own, or the route's.
    pub stream: u64,
    /// Its class.
    pub class: u8,
    /// Its payload after the plugin.
    pub payload: &'a [u8],
}

impl Records {
    pub(crate) fn new() -> Records {
        Records { entries: vec![Entry::default(); BATCH_MAX].into_boxed_slice(), count: 0, used: 0 }
    }

    pub(crate) fn clear(&mut self) {
        (self.count, self.used) = (0, 0);
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Writes a message's record into `buf` (the guest's buffer); false,
    /// and nothing written, when the batch is full.
    pub(crate) fn push(&mut self, buf: &mut [u8], stream: u64, class: u8, arrival_ns: u64, payload: &[u8]) -> bool {
        if self.count == BATCH_MAX {
            return false;
        }
        let Some(next) = abi::write_record(buf, self.used, stream, class, arrival_ns, payload) else {
            return false;
        };
        self.entries[self.count] = Entry { at: self.used as u32, class, stream, ..Entry::default() };
        self.count += 1;
        self.used = next;
        true
    }

    /// Checks every record the guest left in `buf` (a defined verdict, a
    /// length within the room) and takes its decision. Nothing is used
    /// before this passed.
    pub(crate) fn check(&mut self, buf: &[u8]) -> Result<(), Fault> {
        for (i, e) in self.entries[..self.count].iter_mut().enumerate() {
            let d = abi::read_decision(buf, e.at as usize);
            let Some(verdict) = d.verdict else {
                return Err(Fault::Abi(format!("message {i} of the batch has an undefined verdict")));
            };
            let Some(len) = d.len else {
                return Err(Fault::Abi(format!("message {i} of the batch was rewritten past its room")));
            };
            (e.verdict, e.len, e.route) = (verdict as u8, len as u16, d.route);
        }
        Ok(())
    }

    /// The decision for message `i`, with its payload in `buf` (after a
    /// [`Records::check`] that passed).
    pub(crate) fn decision<'a>(&self, buf: &'a [u8], i: usize) -> Decision<'a> {
        let e = &self.entries[i];
        let verdict = Verdict::from_byte(e.verdict).unwrap_or(Verdict::Drop);
        let start = e.at as usize + record::HEADER_LEN;
        let stream = if verdict == Verdict::Route { e.route } else { e.stream };
        Decision { verdict, stream, class: e.class, payload: &buf[start..start + usize::from(e.len)] }
    }
}
