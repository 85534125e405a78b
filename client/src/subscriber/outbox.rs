//! Datagrams a [`super::SubscriberState`] wants sent, in order, encoded
//! into one reused buffer (no allocation per datagram once it has grown).

use ms_wire::control::{self, Credit, RangeRequest, CREDIT_ENTRY_LEN};
use ms_wire::{FrameType, DATAGRAM_MAX, HEADER_LEN};
use std::collections::VecDeque;

/// CREDIT entries that fit one datagram (91).
pub(super) const CREDITS_PER_DATAGRAM: usize = (DATAGRAM_MAX - HEADER_LEN) / CREDIT_ENTRY_LEN;

/// A FIFO of encoded datagrams.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    bytes: Vec<u8>,
    lens: VecDeque<usize>,
    /// Where the first datagram not yet taken starts in `bytes`.
    head: usize,
}

impl Outbox {
    /// Appends the datagram `emit` writes (it returns the length, `None`
    /// when it does not fit one datagram, which the callers rule out).
    fn push(&mut self, emit: impl FnOnce(&mut [u8]) -> Option<usize>) {
        let at = self.bytes.len();
        self.bytes.resize(at + DATAGRAM_MAX, 0);
        let len = emit(&mut self.bytes[at..]).expect("callers size entries to fit a datagram");
        self.bytes.truncate(at + len);
        self.lens.push_back(len);
    }

    /// Queues `credits` in as few CREDIT datagrams as they fit; returns how
    /// many datagrams.
    pub fn credits(&mut self, credits: &[Credit]) -> u64 {
        let mut n = 0;
        for chunk in credits.chunks(CREDITS_PER_DATAGRAM) {
            self.push(|b| control::emit_credits(b, chunk));
            n += 1;
        }
        n
    }

    /// Queues one SUBSCRIBE or UNSUBSCRIBE carrying `entries`.
    pub fn ranges(&mut self, t: FrameType, entries: &[RangeRequest]) {
        self.push(|b| control::emit_ranges(b, t, entries));
    }

    /// Queues a HEARTBEAT.
    pub fn heartbeat(&mut self) {
        self.push(control::emit_heartbeat);
    }

    /// Moves the first datagram into `buf`; returns its length.
    ///
    /// # Panics
    /// When `buf` is shorter than the datagram (at most
    /// [`DATAGRAM_MAX`]): the caller's buffer is too small.
    pub fn pop_into(&mut self, buf: &mut [u8]) -> Option<usize> {
        let len = self.lens.pop_front()?;
        buf[..len].copy_from_slice(&self.bytes[self.head..self.head + len]);
        self.head += len;
        if self.lens.is_empty() {
            self.bytes.clear();
            self.head = 0;
        }
        Some(len)
    }
}
