//! The host's side of the shared buffer: records written before a call,
//! decisions read after it.

use crate::Fault;
use ms_plugin_abi::{self as abi, record, Verdict, BATCH_MAX, BUFFER_LEN};

/// Up to [`BATCH_MAX`] messages laid out as the ABI's records. Allocated
/// once; reused for every batch.
pub struct Batch {
    buf: Box<[u8]>,
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

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

impl Batch {
    /// An empty batch with its buffer (startup only).
    pub fn new() -> Batch {
        Batch {
            buf: vec![0; BUFFER_LEN].into_boxed_slice(),
            starts: vec![0; BATCH_MAX].into_boxed_slice(),
            count: 0,
            used: 0,
        }
    }

    /// Empties it.
    pub fn clear(&mut self) {
        (self.count, self.used) = (0, 0);
    }

    /// Messages in it.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a message; false, and nothing added, when the batch holds
    /// [`BATCH_MAX`] or its buffer has no room for this one.
    pub fn push(&mut self, stream: u64, class: u8, arrival_ns: u64, payload: &[u8]) -> bool {
        if self.count == BATCH_MAX {
            return false;
        }
        let Some(next) = abi::write_record(&mut self.buf, self.used, stream, class, arrival_ns, payload) else {
            return false;
        };
        self.starts[self.count] = self.used as u32;
        self.count += 1;
        self.used = next;
        true
    }

    /// The bytes to copy into the guest.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.used]
    }

    /// Where the guest's answer is copied back.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.used]
    }

    /// Checks every record the guest left in `guest` (its copy of the
    /// buffer, as long as [`Batch::bytes`]): a defined verdict and a length
    /// within the room. Called before anything is copied back.
    pub(crate) fn check(&self, guest: &[u8]) -> Result<(), Fault> {
        for (i, &at) in self.starts[..self.count].iter().enumerate() {
            let d = abi::read_decision(guest, at as usize);
            if d.verdict.is_none() {
                return Err(Fault::Abi(format!("message {i} of the batch has an undefined verdict")));
            }
            if d.len.is_none() {
                return Err(Fault::Abi(format!("message {i} of the batch was rewritten past its room")));
            }
        }
        Ok(())
    }

    /// The decision for message `i` (after a call that returned; before
    /// one, every verdict is pass).
    pub fn decision(&self, i: usize) -> Decision<'_> {
        let at = self.starts[i] as usize;
        let d = abi::read_decision(&self.buf, at);
        let verdict = d.verdict.unwrap_or(Verdict::Drop);
        let own = abi::get64(&self.buf[at..], record::STREAM);
        let len = d.len.unwrap_or(0);
        let payload = &self.buf[at + record::HEADER_LEN..at + record::HEADER_LEN + len];
        let stream = if verdict == Verdict::Route { d.route } else { own };
        Decision { verdict, stream, class: self.buf[at + record::CLASS], payload }
    }
}
