//! The records of one batch, written straight into the guest's buffer and
//! read back from it: no staging copy on either side.

use crate::Fault;
use ms_plugin_abi::{self as abi, record, Verdict, BATCH_MAX};

/// Where a batch's records start in the guest's buffer, and how far it
/// is filled. Allocated once per instance.
pub(crate) struct Records {
    starts: Box<[u32]>,
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
        Records { starts: vec![0; BATCH_MAX].into_boxed_slice(), count: 0, used: 0 }
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
        self.starts[self.count] = self.used as u32;
        self.count += 1;
        self.used = next;
        true
    }

    /// Checks every record the guest left in `buf`: a defined verdict and
    /// a length within the room. Nothing is used before this passed.
    pub(crate) fn check(&self, buf: &[u8]) -> Result<(), Fault> {
        for (i, &at) in self.starts[..self.count].iter().enumerate() {
            let d = abi::read_decision(buf, at as usize);
            if d.verdict.is_none() {
                return Err(Fault::Abi(format!("message {i} of the batch has an undefined verdict")));
            }
            if d.len.is_none() {
                return Err(Fault::Abi(format!("message {i} of the batch was rewritten past its room")));
            }
        }
        Ok(())
    }

    /// The checked decision for message `i` in `buf`.
    pub(crate) fn decision<'a>(&self, buf: &'a [u8], i: usize) -> Decision<'a> {
        let at = self.starts[i] as usize;
        let d = abi::read_decision(buf, at);
        let verdict = d.verdict.unwrap_or(Verdict::Drop);
        let own = abi::get64(&buf[at..], record::STREAM);
        let len = d.len.unwrap_or(0);
        let payload = &buf[at + record::HEADER_LEN..at + record::HEADER_LEN + len];
        let stream = if verdict == Verdict::Route { d.route } else { own };
        Decision { verdict, stream, class: buf[at + record::CLASS], payload }
    }
}
