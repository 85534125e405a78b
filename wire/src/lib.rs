//! The MemoryStreamer pub/sub wire protocol, version 2 (docs/protocol.md).
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

pub use ms_limits::{DATAGRAM_MAX, PAYLOAD_MAX};

/// A field's bytes within a header or entry (smoltcp style): each layout is
/// written once as consecutive ranges and every length is derived from it.
pub(crate) type Field = core::ops::Range<usize>;

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
    /// Subscribe, unsubscribe, heartbeat, ack, error, credit or backpressure.
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
/// no input panics the parser, a parsed frame yields exactly `count`
/// entries, all inside the input, and every entry, emitted alone by this
/// crate's builders, parses back to itself.
#[doc(hidden)]
pub fn fuzz_check(bytes: &[u8]) {
    use control::Control;
    let Ok(frame) = parse(bytes) else { return };
    let count = usize::from(Header::parse(bytes).expect("parsed above").count);
    let mut out = [0u8; DATAGRAM_MAX];
    // Emits each entry of a fixed-size control frame alone and checks it
    // parses back to exactly that entry; evaluates to the number of entries.
    macro_rules! each_round_trips {
        ($entries:expr, $variant:ident, $emit:expr) => {{
            let mut n = 0;
            for x in $entries {
                let len = ($emit)(&mut out[..], &[x]).expect("one entry fits a datagram");
                let Ok(Frame::Control(Control::$variant(mut again))) = parse(&out[..len]) else {
                    panic!("re-emitted {} does not parse", stringify!($variant))
                };
                assert_eq!(again.next(), Some(x));
                assert!(again.next().is_none());
                n += 1;
            }
            n
        }};
    }
    let n = match frame {
        Frame::Publish(p) => {
            for m in p.messages() {
                let mut w = publish::PublishBuilder::new(&mut out).expect("room for a header");
                assert!(w.push(m.stream, m.class, m.payload), "a parsed message fits a datagram alone");
                let len = w.len();
                let Ok(Frame::Publish(again)) = parse(&out[..len]) else { panic!("re-emitted PUBLISH does not parse") };
                let mut again = again.messages();
                let x = again.next().expect("one message");
                // The builder sends flags as 0.
                assert_eq!((x.stream, x.class, x.payload), (m.stream, m.class, m.payload));
                assert!(again.next().is_none());
            }
            p.messages().count()
        }
        Frame::Deliver(d) => {
            for x in d.deliveries() {
                let mut st = deliver::DeliverState::start(&mut out);
                assert!(st.fits(x.payload.len(), DATAGRAM_MAX), "a parsed delivery fits a datagram alone");
                assert!(st.push(&mut out, &x));
                let again = deliver::Deliver::new_checked(&out[..usize::from(st.len)]).expect("re-emitted DELIVER");
                let mut again = again.deliveries();
                assert_eq!(again.next(), Some(x));
                assert!(again.next().is_none());
            }
            d.deliveries().count()
        }
        Frame::Control(Control::Heartbeat) => {
            let len = control::emit_heartbeat(&mut out).expect("fits");
            assert!(matches!(parse(&out[..len]), Ok(Frame::Control(Control::Heartbeat))));
            0
        }
        Frame::Control(Control::Subscribe(r)) => {
            each_round_trips!(r, Subscribe, |b, x| control::emit_ranges(b, FrameType::Subscribe, x))
        }
        Frame::Control(Control::Unsubscribe(r)) => {
            each_round_trips!(r, Unsubscribe, |b, x| control::emit_ranges(b, FrameType::Unsubscribe, x))
        }
        Frame::Control(Control::Ack(a)) => each_round_trips!(a, Ack, control::emit_acks),
        Frame::Control(Control::Error(e)) => each_round_trips!(e, Error, control::emit_errors),
        Frame::Control(Control::Credit(c)) => each_round_trips!(c, Credit, control::emit_credits),
        Frame::Control(Control::Backpressure(b)) => each_round_trips!(b, Backpressure, control::emit_backpressure),
    };
    assert_eq!(n, count, "entries as counted");
}

// Field accessors. A field's width is fixed by its layout constant; a
// mismatch with the accessor would panic in every test that touches it.

#[inline]
pub(crate) fn le16(b: &[u8], f: Field) -> u16 {
    let mut x = [0u8; 2];
    x.copy_from_slice(&b[f]);
    u16::from_le_bytes(x)
}

#[inline]
pub(crate) fn le32(b: &[u8], f: Field) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[f]);
    u32::from_le_bytes(x)
}

#[inline]
pub(crate) fn le64(b: &[u8], f: Field) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[f]);
    u64::from_le_bytes(x)
}

#[inline]
pub(crate) fn put16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put64(b: &mut [u8], f: Field, v: u64) {
    b[f].copy_from_slice(&v.to_le_bytes());
}

/// `f` moved `by` bytes on: the same field of a later entry.
#[inline]
pub(crate) const fn at(f: Field, by: usize) -> Field {
    f.start + by..f.end + by
}

#[cfg(test)]
mod tests;
