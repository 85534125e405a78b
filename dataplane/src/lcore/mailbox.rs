//! Bounded lock-free mailboxes between worker lcores. Each worker drains its
//! own box once per loop turn, a bounded number of items at a time; a full
//! box drops the item and the sender counts it (`handoff_full`).

use crossbeam_queue::ArrayQueue;
use ms_dpdk_sys as sys;
use ms_netstack::{Ipv4Addr, MacAddr};

/// An mbuf handed from one worker to another. Whoever holds the item owns
/// the buffer: the receiver frees or sends it, or the sender frees it when
/// the mailbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MbufPtr(pub *mut sys::rte_mbuf);

// SAFETY: an mbuf may be used from any lcore; ownership moves with the item
// and exactly one worker holds it at a time (see the type's docs).
unsafe impl Send for MbufPtr {}

/// Items one worker drains per loop turn, so mail never starves RX.
pub const DRAIN_PER_TURN: usize = 64;

/// Something one worker tells another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// A neighbour learned from ARP on another core. ARP is not spread by
    /// RSS, so answers to one core's requests often arrive on another.
    Neighbor {
        /// Index of the port in the workers' queue lists.
        port: usize,
        /// The neighbour's address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: MacAddr,
        /// How it was learned (the receiving worker weighs it the same).
        claim: ms_netstack::arp_cache::Claim,
    },
    /// A PUBLISH datagram for streams this worker owns, still in its mbuf.
    Publish {
        /// The frame.
        mbuf: MbufPtr,
        /// Port index it arrived on.
        port: usize,
        /// Offset of the UDP payload in the frame.
        offset: u16,
        /// Length of the UDP payload.
        len: u16,
        /// Publisher address.
        ip: Ipv4Addr,
        /// Publisher UDP port.
        udp_port: u16,
    },
    /// Work of the streams protocol for the engine of the receiver.
    Proto(ms_proto::Mail),
}

/// One mailbox per worker.
#[derive(Debug)]
pub struct Mailboxes {
    boxes: Vec<ArrayQueue<Handoff>>,
}

impl Mailboxes {
    /// `workers` boxes of `capacity` items each, allocated now.
    pub fn new(workers: usize, capacity: usize) -> Mailboxes {
        Mailboxes { boxes: (0..workers).map(|_| ArrayQueue::new(capacity.max(1))).collect() }
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.boxes.len()
    }

    /// True when there are no workers.
    pub fn is_empty(&self) -> bool {
        self.boxes.is_empty()
    }

    /// Posts to every worker but `from`; returns how many boxes were full.
    pub fn broadcast(&self, from: usize, item: Handoff) -> u64 {
        let mut full = 0;
        for (i, b) in self.boxes.iter().enumerate() {
            if i != from && b.push(item).is_err() {
                full += 1;
            }
        }
        full
    }

    /// Posts to worker `to`; gives the item back when the box is full.
    pub fn post(&self, to: usize, item: Handoff) -> Result<(), Handoff> {
        self.boxes[to].push(item)
    }

    /// Takes the next item for worker `me`.
    pub fn take(&self, me: usize) -> Option<Handoff> {
        self.boxes[me].pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u8) -> Handoff {
        Handoff::Neighbor {
            port: 0,
            ip: Ipv4Addr::new(198, 18, 0, n),
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            claim: ms_netstack::arp_cache::Claim::Solicited,
        }
    }

    #[test]
    fn broadcast_skips_the_sender_and_counts_full_boxes() {
        let m = Mailboxes::new(3, 1);
        assert_eq!(m.broadcast(0, item(1)), 0);
        assert_eq!(m.take(0), None);
        assert_eq!(m.broadcast(0, item(2)), 2, "boxes 1 and 2 are full");
        assert_eq!(m.take(1), Some(item(1)));
        assert_eq!(m.take(1), None);
        assert_eq!(m.take(2), Some(item(1)));
    }
}
