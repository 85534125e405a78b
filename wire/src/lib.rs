//! The MemoryStreamer pub/sub wire protocol, version 1 (docs/protocol.md).
//!
//! Every datagram is one UDP payload: an 8-byte [`header`] followed by
//! `count` entries of one frame type. Integers are little-endian (the
//! appliance and its clients are x86/ARM; no byte swapping on the path).
//!
//! Sans-IO: views over byte slices (`new_checked` validates the whole
//! datagram once, after which iteration and getters never fail or panic)
//! and builders that write into the caller's buffer. No allocation, no
//! `unsafe`, `no_std`.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod control;
pub mod deliver;
pub mod header;
pub mod publish;
pub mod shard;

pub use header::{FrameType, Header, HEADER_LEN, MAGIC, VERSION};

/// Largest UDP payload the appliance sends or accepts: a 1500-byte MTU
/// minus IPv4 (20) and UDP (8) headers.
pub const DATAGRAM_MAX: usize = 1472;

/// Largest message payload: what fits one DELIVER entry in one datagram,
/// so every published message can be delivered unfragmented.
pub const PAYLOAD_MAX: usize = DATAGRAM_MAX - HEADER_LEN - deliver::ENTRY_HEADER_LEN;

/// Why a datagram was refused. Small and `Copy`: produced on the data path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Not a MemoryStreamer datagram (wrong magic).
    BadMagic,
    /// A MemoryStreamer datagram of another protocol version.
    UnsupportedVersion(u8),
    /// Shorter than its header or entries say.
    Truncated,
    /// Bytes left over after `count` entries, or a field out of range.
    Malformed,
    /// The frame type is not one this version knows.
    UnknownType(u8),
}

/// Any checked datagram.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// Messages from a publisher.
    Publish(publish::Publish<'a>),
    /// Messages to a subscriber.
    Deliver(deliver::Deliver<'a>),
    /// Subscribe, unsubscribe, heartbeat, ack or error.
    Control(control::Control<'a>),
}

/// Parses and checks a whole datagram. After `Ok`, nothing about the frame
/// can fail or panic. Never panics, whatever the bytes.
pub fn parse(datagram: &[u8]) -> Result<Frame<'_>, WireError> {
    let h = Header::parse(datagram)?;
    let entries = &datagram[HEADER_LEN..];
    Ok(match h.frame_type {
        FrameType::Publish => Frame::Publish(publish::Publish::from_entries(entries, h.count)?),
        FrameType::Deliver => Frame::Deliver(deliver::Deliver::new_checked(datagram)?),
        _ => Frame::Control(control::Control::from_entries(&h, entries)?),
    })
}

/// The property the fuzz target (wire/fuzz) and the property tests share:
/// no input panics the parser, and a parsed frame yields exactly `count`
/// entries, all inside the input.
#[doc(hidden)]
pub fn fuzz_check(bytes: &[u8]) {
    match parse(bytes) {
        Ok(Frame::Publish(p)) => assert_eq!(p.messages().count(), p.len()),
        Ok(Frame::Deliver(d)) => assert_eq!(d.deliveries().count(), d.len()),
        Ok(Frame::Control(control::Control::Subscribe(r) | control::Control::Unsubscribe(r))) => {
            let n = r.0.remaining();
            assert_eq!(r.count(), n);
        }
        Ok(Frame::Control(_)) | Err(_) => {}
    }
}

#[inline]
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[inline]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests;
