//! DELIVER: the appliance's messages to one subscriber, possibly of many
//! streams, each with the stream's sequence number and byte position.
//!
//! ```text
//! entry: | stream u64 | seq u64 | position u64 | timestamp_ns u64 | class u8 | flags u8 | len u16 | payload[len] |
//! ```
//! `seq` counts the stream's messages from 0 when the stream came into
//! existence in the appliance; it is contiguous, so a subscriber that sees
//! `seq` jump knows exactly how many messages it missed. `position` is the
//! stream's byte position at the end of the message (see
//! [`Delivery::position`]); subscribers grant credit in positions
//! ([`crate::control::Credit`]). `timestamp_ns` is when the appliance
//! received the message (CLOCK_REALTIME, nanoseconds).

use crate::header::{FrameType, Header, HEADER_LEN};
use crate::publish::validate_entries;
use crate::{le16, le64, put16, put64, WireError, PAYLOAD_MAX};

/// Fixed part of an entry.
pub use ms_limits::DELIVER_ENTRY_HEADER_LEN as ENTRY_HEADER_LEN;

mod field {
    use crate::Field;
    pub const STREAM: Field = 0..8;
    pub const SEQ: Field = STREAM.end..STREAM.end + 8;
    pub const POSITION: Field = SEQ.end..SEQ.end + 8;
    pub const TIMESTAMP: Field = POSITION.end..POSITION.end + 8;
    pub const CLASS: usize = TIMESTAMP.end;
    pub const FLAGS: usize = CLASS + 1;
    pub const LEN: Field = FLAGS + 1..FLAGS + 3;
    /// The fixed part's length; the payload follows.
    pub const END: usize = LEN.end;
}

const _: () = assert!(ENTRY_HEADER_LEN == field::END, "the layout and the limits agree");

/// One delivered message, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// Stream id.
    pub stream: u64,
    /// The stream's sequence number of this message.
    pub seq: u64,
    /// The stream's byte position at the end of this message: the sum of
    /// the payload lengths of every message the appliance accepted into
    /// this stream (since the stream came into existence in the appliance)
    /// up to and including this one. A subscriber that has consumed this
    /// message grants credit `position + window`.
    pub position: u64,
    /// When the appliance received it (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Priority class.
    pub class: u8,
    /// Flags (none defined in version 1).
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
}

impl Delivery<'_> {
    /// Everything but the payload.
    pub fn meta(&self) -> DeliveryMeta {
        DeliveryMeta {
            stream: self.stream,
            seq: self.seq,
            position: self.position,
            timestamp_ns: self.timestamp_ns,
            class: self.class,
            flags: self.flags,
        }
    }
}

/// The fixed fields of a DELIVER entry, for [`DeliverState::push_with`]
/// (see [`Delivery`] for their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryMeta {
    /// Stream id.
    pub stream: u64,
    /// The stream's sequence number of this message.
    pub seq: u64,
    /// The stream's byte position at the end of this message.
    pub position: u64,
    /// When the appliance received it (ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// Priority class.
    pub class: u8,
    /// Flags (none defined in version 1).
    pub flags: u8,
}

/// A checked DELIVER datagram.
#[derive(Debug, Clone, Copy)]
pub struct Deliver<'a> {
    entries: &'a [u8],
    count: u16,
}

impl<'a> Deliver<'a> {
    /// Checks the header and every entry; afterwards iteration cannot fail.
    pub fn new_checked(datagram: &'a [u8]) -> Result<Self, WireError> {
        let h = Header::parse(datagram)?;
        if h.frame_type != FrameType::Deliver {
            return Err(WireError::Malformed);
        }
        let entries = &datagram[HEADER_LEN..];
        validate_entries(entries, h.count, ENTRY_HEADER_LEN, field::LEN, |_| true)?;
        Ok(Deliver { entries, count: h.count })
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when the datagram carries no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The messages, in order.
    pub fn deliveries(&self) -> Deliveries<'a> {
        Deliveries { rest: self.entries }
    }
}

/// Iterator over the messages of a checked DELIVER.
#[derive(Debug, Clone)]
pub struct Deliveries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Deliveries<'a> {
    type Item = Delivery<'a>;

    fn next(&mut self) -> Option<Delivery<'a>> {
        let b = self.rest;
        if b.len() < ENTRY_HEADER_LEN {
            return None;
        }
        let len = usize::from(le16(b, field::LEN));
        let end = (ENTRY_HEADER_LEN + len).min(b.len());
        let d = Delivery {
            stream: le64(b, field::STREAM),
            seq: le64(b, field::SEQ),
            position: le64(b, field::POSITION),
            timestamp_ns: le64(b, field::TIMESTAMP),
            class: b[field::CLASS],
            flags: b[field::FLAGS],
            payload: &b[ENTRY_HEADER_LEN..end],
        };
        self.rest = &b[end..];
        Some(d)
    }
}

/// Builds a DELIVER datagram in a caller's buffer (an mbuf's data room in
/// the appliance). The caller keeps `len`/`count` across calls by keeping
/// the builder state in [`DeliverState`], since the buffer outlives a
/// borrow. Like every builder of this crate it never panics: what does not
/// fit is refused and nothing is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverState {
    /// Datagram length so far (0 = not started).
    pub len: u16,
    /// Entries so far.
    pub count: u16,
}

impl DeliverState {
    /// Starts a datagram in `buf`; `None` when `buf` cannot hold a header.
    pub fn new(buf: &mut [u8]) -> Option<DeliverState> {
        let len = Header { frame_type: FrameType::Deliver, flags: 0, count: 0 }.emit(buf)?;
        Some(DeliverState { len: len as u16, count: 0 })
    }

    /// Starts a datagram in `buf` (at least [`HEADER_LEN`] bytes). A
    /// shorter `buf` gives a state that is not started, which accepts no
    /// entry.
    pub fn start(buf: &mut [u8]) -> DeliverState {
        Self::new(buf).unwrap_or_default()
    }

    /// Bytes an entry with `payload_len` bytes takes.
    pub const fn entry_len(payload_len: usize) -> usize {
        ENTRY_HEADER_LEN + payload_len
    }

    /// True when an entry of `payload_len` bytes fits in `capacity` bytes
    /// (at most [`crate::DATAGRAM_MAX`] for a datagram the appliance may
    /// send) and the datagram stays valid: the payload is at most
    /// [`PAYLOAD_MAX`] and the count does not overflow.
    #[inline]
    pub fn fits(&self, payload_len: usize, capacity: usize) -> bool {
        payload_len <= PAYLOAD_MAX
            && usize::from(self.len) >= HEADER_LEN
            && usize::from(self.len) + Self::entry_len(payload_len) <= capacity.min(usize::from(u16::MAX))
            && self.count < u16::MAX
    }

    /// Appends an entry whose `len` payload bytes `fill` writes in place
    /// (the dataplane copies from chunked storage straight into the
    /// datagram). `fill` gets exactly `len` bytes, holding whatever `buf`
    /// held before, and must write all of them. `false`, with nothing
    /// written and `fill` not called, unless [`DeliverState::fits`]`(len,
    /// buf.len())`.
    #[inline]
    pub fn push_with(&mut self, buf: &mut [u8], meta: &DeliveryMeta, len: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        if !self.fits(len, buf.len()) {
            return false;
        }
        let start = usize::from(self.len);
        let need = Self::entry_len(len);
        let e = &mut buf[start..start + need];
        put64(e, field::STREAM, meta.stream);
        put64(e, field::SEQ, meta.seq);
        put64(e, field::POSITION, meta.position);
        put64(e, field::TIMESTAMP, meta.timestamp_ns);
        e[field::CLASS] = meta.class;
        e[field::FLAGS] = meta.flags;
        put16(e, field::LEN, len as u16);
        fill(&mut e[field::END..]);
        self.len += need as u16;
        self.count += 1;
        Header::set_count(buf, self.count);
        true
    }

    /// Appends an entry; `false` (nothing written) unless
    /// [`DeliverState::fits`] against `buf.len()`.
    pub fn push(&mut self, buf: &mut [u8], d: &Delivery<'_>) -> bool {
        self.push_with(buf, &d.meta(), d.payload.len(), |p| p.copy_from_slice(d.payload))
    }
}
