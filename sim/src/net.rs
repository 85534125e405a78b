//! The network between clients and the appliance, in both directions: each
//! datagram may be dropped or duplicated, and is delayed by a whole number
//! of steps; the datagrams due at a step arrive in random order, so
//! datagrams are reordered too.

use crate::Rng;
use ms_proto::Addr;

/// How bad the network is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetConfig {
    /// Probability a datagram is lost.
    pub drop: f64,
    /// Probability a datagram arrives twice.
    pub duplicate: f64,
    /// Largest delay, in steps.
    pub max_delay: u32,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A worker of the appliance (the one RSS picked).
    Worker(u32),
    /// A client, by index.
    Client(usize),
}

/// A datagram in flight.
#[derive(Debug, Clone)]
pub struct Packet {
    /// First step it may arrive at.
    pub due: u64,
    /// Where it goes.
    pub dest: Dest,
    /// Its source address.
    pub from: Addr,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Datagrams in flight.
#[derive(Debug)]
pub struct Net {
    cfg: NetConfig,
    flight: Vec<Packet>,
    /// Datagrams lost so far.
    pub dropped: u64,
    /// Extra copies made so far.
    pub duplicated: u64,
}

impl Net {
    /// An empty network behaving as `cfg` says.
    pub fn new(cfg: NetConfig) -> Net {
        Net { cfg, flight: Vec::new(), dropped: 0, duplicated: 0 }
    }

    /// Sends a datagram at step `now`.
    pub fn send(&mut self, rng: &mut Rng, now: u64, dest: Dest, from: Addr, bytes: Vec<u8>) {
        if rng.chance(self.cfg.drop) {
            self.dropped += 1;
            return;
        }
        if rng.chance(self.cfg.duplicate) {
            self.duplicated += 1;
            let due = now + rng.below(u64::from(self.cfg.max_delay) + 1);
            self.flight.push(Packet { due, dest, from, bytes: bytes.clone() });
        }
        let due = now + rng.below(u64::from(self.cfg.max_delay) + 1);
        self.flight.push(Packet { due, dest, from, bytes });
    }

    /// The datagrams due at step `now`, in random order.
    pub fn take_due(&mut self, rng: &mut Rng, now: u64) -> Vec<Packet> {
        let (mut due, later): (Vec<Packet>, Vec<Packet>) = self.flight.drain(..).partition(|p| p.due <= now);
        self.flight = later;
        for i in (1..due.len()).rev() {
            due.swap(i, rng.below(i as u64 + 1) as usize);
        }
        due
    }

    /// No more loss or duplication; what is in flight still arrives.
    pub fn heal(&mut self) {
        self.cfg.drop = 0.0;
        self.cfg.duplicate = 0.0;
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }
}
