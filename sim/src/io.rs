//! The workers' side of `ms_proto::Io`: a bounded buffer pool, bounded
//! mailboxes between workers, and a transmit path that records what leaves
//! (the world checks it and puts it on the network).

use crate::scenario::Mutation;
use crate::Rng;
use ms_proto::{Addr, From, Io, Mail, Now};
use ms_wire::{DATAGRAM_MAX, HEADER_LEN};
use std::collections::VecDeque;

/// What one worker's mailbox carries: engine mail, and PUBLISH datagrams
/// handed to the worker that owns their streams.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Mail(Mail),
    Publish(Addr, Vec<u8>),
}

/// A datagram a worker sent, and whether it left (`Io::send`'s answer).
#[derive(Debug)]
pub(crate) struct Sent {
    pub to: Addr,
    pub bytes: Vec<u8>,
    pub messages: u32,
    pub ok: bool,
}

/// What a worker's `Io` counted, as the dataplane's worker counters do.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IoStats {
    /// Messages in DELIVERs that left (`deliver_messages`).
    pub deliver_messages: u64,
    /// Messages in DELIVERs that could not leave (`deliver_messages_dropped`).
    pub deliver_dropped: u64,
    /// DELIVERs sent, for the mutations' "every n-th".
    pub delivers: u64,
    /// Mail not posted: the receiver's mailbox was full.
    pub mail_full: u64,
}

/// A worker's transmit buffers.
pub(crate) struct Buffers {
    bufs: Vec<Vec<u8>>,
    free: Vec<usize>,
}

impl Buffers {
    pub(crate) fn new(n: usize) -> Buffers {
        Buffers { bufs: vec![vec![0; DATAGRAM_MAX]; n], free: (0..n).rev().collect() }
    }

    /// True when every buffer is back in the pool.
    pub(crate) fn all_free(&self) -> bool {
        self.free.len() == self.bufs.len()
    }
}

/// One worker's `Io` for one engine call.
pub(crate) struct TurnIo<'a> {
    pub me: usize,
    pub bufs: &'a mut Buffers,
    pub mail: &'a mut [VecDeque<Item>],
    pub mailbox: usize,
    pub sent: &'a mut Vec<Sent>,
    pub stats: &'a mut IoStats,
    pub rng: &'a mut Rng,
    pub tx_fail: f64,
    pub mutation: Mutation,
}

impl TurnIo<'_> {
    /// The planted bug, if any, applied to a DELIVER about to leave.
    /// Returns true when it is to be sent twice.
    fn mutate(&mut self, bytes: &mut [u8]) -> bool {
        let nth = |n: u32| n > 0 && self.stats.delivers % u64::from(n) == 0;
        match self.mutation {
            Mutation::None | Mutation::GrantPastWindow(_) | Mutation::SkipDelivery(_) => false,
            Mutation::DuplicateDeliver(n) => nth(n),
            Mutation::CorruptPosition(n) => {
                if nth(n) {
                    // The first entry's position field (see ms_wire::deliver).
                    let at = HEADER_LEN + 16;
                    let p = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                    bytes[at..at + 8].copy_from_slice(&(p + 1).to_le_bytes());
                }
                false
            }
        }
    }
}

impl Io for TurnIo<'_> {
    type Buf = usize;

    fn alloc(&mut self) -> Option<usize> {
        self.bufs.free.pop()
    }

    fn payload(&mut self, buf: &usize) -> &mut [u8] {
        &mut self.bufs.bufs[*buf]
    }

    fn send(&mut self, to: Addr, buf: usize, len: usize, messages: u32) -> bool {
        let mut bytes = self.bufs.bufs[buf][..len].to_vec();
        self.bufs.free.push(buf);
        let ok = !self.rng.chance(self.tx_fail);
        let mut twice = false;
        if messages > 0 {
            self.stats.delivers += 1;
            if ok {
                self.stats.deliver_messages += u64::from(messages);
            } else {
                self.stats.deliver_dropped += u64::from(messages);
            }
            twice = self.mutate(&mut bytes);
        }
        if twice {
            self.sent.push(Sent { to, bytes: bytes.clone(), messages, ok });
        }
        self.sent.push(Sent { to, bytes, messages, ok });
        ok
    }

    fn free(&mut self, buf: usize) {
        self.bufs.free.push(buf);
    }

    fn post(&mut self, worker: u32, mail: Mail) -> bool {
        let q = &mut self.mail[worker as usize];
        if q.len() >= self.mailbox {
            self.stats.mail_full += 1;
            return false;
        }
        q.push_back(Item::Mail(mail));
        true
    }

    fn broadcast(&mut self, mail: Mail) {
        for w in 0..self.mail.len() {
            if w != self.me {
                self.post(w as u32, mail);
            }
        }
    }

    fn learn(&mut self, _from: From, _now: Now) {}
}
