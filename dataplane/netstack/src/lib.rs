//! Sans-IO L2/L3 for the MemoryStreamer dataplane.
//!
//! Typed views over byte slices for Ethernet, ARP, IPv4, ICMP echo and UDP
//! (in the manner of smoltcp's `wire` module), plus the host logic an
//! appliance on a link needs: a neighbour (ARP) table with expiry, request
//! pacing and queues for unresolved neighbours, static routes, and
//! [`host::Host`], which turns one received frame into a verdict (reply in
//! place, hand to the UDP service, or drop with a reason).
//!
//! Contract for every view: after `new_checked()` succeeds, no getter or
//! setter panics. Untrusted input goes through `new_checked`. Only the
//! constructors of the neighbour tables allocate (once, at startup; sized
//! from the config); nothing on the packet path does, and time is passed in by the caller (`now_ms`), so all of it
//! runs in unit tests on a fake clock.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod arp;
pub mod arp_cache;
pub mod checksum;
pub mod ethernet;
pub mod host;
pub mod icmp;
pub mod ipv4;
pub mod route;
pub mod solicit;
pub mod udp;

pub use core::net::Ipv4Addr;
pub use ethernet::MacAddr;

/// Why a view could not be made over a buffer. Tiny and `Copy` on purpose:
/// it is produced on the packet path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the header or than a length field says.
    Truncated,
    /// A length or version field holds a value the format does not allow.
    Malformed,
}

/// Reads a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Reads an IPv4 address at `at`. Callers have checked the length.
#[inline]
pub(crate) fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}
