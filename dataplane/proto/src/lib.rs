//! The appliance's streams protocol on one worker, as a sans-IO state
//! machine: what a PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CREDIT or HEARTBEAT
//! does, decided without DPDK, sockets or a clock.
//!
//! The caller (the DPDK worker in `ms-dataplane`, the simulator in
//! `ms-sim`, the unit tests here) feeds it datagrams with the time
//! ([`Engine::on_datagram`]), mail from other workers ([`Engine::on_mail`])
//! and the end of each loop turn ([`Engine::end_turn`]); the engine answers
//! through the caller's [`Io`]: buffers to fill with replies and DELIVERs,
//! sends, hand-offs to the worker that owns a stream, and neighbours to
//! learn. Like quinn-proto's `Connection`: events in, transmits out, no I/O.
//!
//! Adding a frame: its layout and builder go in `ms-wire`, what the
//! appliance does with it in [`Engine`] (`engine.rs`), its test in
//! `tests.rs`; the DPDK shim needs no change.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod counts;
mod engine;
mod fanout;
mod ranges;

pub use counts::{Counts, ProtoCounter, TOP_N};
pub use engine::{Engine, EngineConfig};
pub use ranges::{RANGE_IDS_PER_TURN, RANGE_JOBS_MAX};

pub use core::net::Ipv4Addr;

/// The time, computed once per loop turn by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// Milliseconds on the caller's monotonic clock (expiry, lifetimes).
    pub ms: u64,
    /// Nanoseconds since the Unix epoch (message stamps).
    pub ns: u64,
}

/// Where a datagram came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// UDP port.
    pub port: u16,
    /// The caller's index of the link (port) it arrived on or leaves by.
    pub via: u16,
}

/// A datagram's sender as the link layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct From {
    /// Address and link.
    pub addr: Addr,
    /// Source MAC of the frame (the sender's when it is on-link).
    pub mac: [u8; 6],
}

/// Subscribe or unsubscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
}

/// One range of a (UN)SUBSCRIBE, for every worker that owns part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeWork {
    /// What to do.
    pub op: RangeOp,
    /// The subscriber.
    pub from: From,
    /// Client's request id.
    pub request: u32,
    /// First stream id.
    pub first: u64,
    /// Last stream id (inclusive).
    pub last: u64,
    /// How many workers acknowledge this request (1: a single stream).
    pub parts: u16,
    /// SUBSCRIBE: the initial credit asked for (0 = the default).
    pub initial_credit: u32,
}

/// Work one worker's engine hands to another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mail {
    /// This worker's share of a range.
    Range(RangeWork),
    /// A subscriber is alive: answer it if it holds subscriptions here.
    Heartbeat(Addr),
    /// A CREDIT grant for a stream the receiver owns.
    Credit {
        /// The subscriber.
        addr: Addr,
        /// Stream id.
        stream: u64,
        /// Granted position.
        position: u64,
    },
}

/// What the caller does with a received datagram's buffer afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done with it: free it.
    Done,
    /// A PUBLISH for streams `worker` owns: hand the datagram over
    /// (or free it, counted, when that worker's mailbox is full). The
    /// receiver calls [`Engine::on_handed_publish`].
    HandOff {
        /// The owning worker.
        worker: u32,
    },
}

/// What the engine asks of its caller. Everything is bounded: `alloc` may
/// fail (the engine counts it and retries next turn), `post` may find a
/// mailbox full (the caller counts it), `send` may not get a datagram out.
pub trait Io {
    /// A buffer for one outgoing datagram (an mbuf in the dataplane): a
    /// token that only `alloc` makes and `send` or `free` consumes.
    type Buf;

    /// A free buffer whose payload area holds `ms_wire::DATAGRAM_MAX` bytes.
    fn alloc(&mut self) -> Option<Self::Buf>;
    /// The payload area of `buf` (`ms_wire::DATAGRAM_MAX` bytes).
    fn payload(&mut self, buf: &Self::Buf) -> &mut [u8];
    /// Sends `len` payload bytes of `buf` to `to` (ownership moves); a
    /// DELIVER carries `messages` messages (0 for ACK/ERROR/BACKPRESSURE),
    /// which the caller counts delivered or dropped. True when the datagram
    /// left or is held for address resolution.
    fn send(&mut self, to: Addr, buf: Self::Buf, len: usize, messages: u32) -> bool;
    /// Gives back a buffer that will not be sent.
    fn free(&mut self, buf: Self::Buf);
    /// Posts `mail` to worker `worker`; false when its mailbox is full.
    fn post(&mut self, worker: u32, mail: Mail) -> bool;
    /// Posts `mail` to every other worker (full mailboxes are the caller's
    /// to count).
    fn broadcast(&mut self, mail: Mail);
    /// The sender of a SUBSCRIBE may be an on-link neighbour: its MAC can
    /// spare DELIVERs an address resolution round trip.
    fn learn(&mut self, from: From, now: Now);
}

#[cfg(test)]
mod tests;
