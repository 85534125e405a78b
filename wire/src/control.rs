//! Control frames: SUBSCRIBE, UNSUBSCRIBE, HEARTBEAT, ACK, ERROR, CREDIT
//! and BACKPRESSURE. All have fixed-size entries.
//!
//! ```text
//! SUBSCRIBE / UNSUBSCRIBE entry (24 B): | request u32 | first u64 | last u64 | initial_credit u32 |
//! HEARTBEAT: no entries (count = 0)
//! ACK entry (24 B):          | request u32 | part u16 | parts u16 | streams u32 | lifetime_ms u32 | instance u64 |
//! ERROR entry (20 B):        | request u32 | code u16 | part u16 | parts u16 | reserved u16 | detail u64 |
//! CREDIT entry (16 B):       | stream u64 | position u64 |
//! BACKPRESSURE entry (16 B): | stream u64 | refused u32 | reserved u32 |
//! ```
//! A range is inclusive; a single stream is `first == last`. The reply
//! address of a request is the source of its datagram. Reserved fields are
//! sent as 0 and ignored on receipt.

use crate::header::{FrameType, Header, HEADER_LEN};
use crate::{le16, le32, le64, put16, put32, put64, WireError};

pub use ms_limits::{
    ACK_ENTRY_LEN, BACKPRESSURE_ENTRY_LEN, CREDIT_ENTRY_LEN, ERROR_ENTRY_LEN, RANGE_ENTRY_LEN, RANGE_IDS_MAX,
};

/// Byte ranges of a SUBSCRIBE/UNSUBSCRIBE entry's fields.
mod range_field {
    use crate::Field;
    pub const REQUEST: Field = 0..4;
    pub const FIRST: Field = REQUEST.end..REQUEST.end + 8;
    pub const LAST: Field = FIRST.end..FIRST.end + 8;
    pub const INITIAL_CREDIT: Field = LAST.end..LAST.end + 4;
    pub const END: usize = INITIAL_CREDIT.end;
}

/// Byte ranges of an ACK entry's fields.
mod ack_field {
    use crate::Field;
    pub const REQUEST: Field = 0..4;
    pub const PART: Field = REQUEST.end..REQUEST.end + 2;
    pub const PARTS: Field = PART.end..PART.end + 2;
    pub const STREAMS: Field = PARTS.end..PARTS.end + 4;
    pub const LIFETIME_MS: Field = STREAMS.end..STREAMS.end + 4;
    pub const INSTANCE: Field = LIFETIME_MS.end..LIFETIME_MS.end + 8;
    pub const END: usize = INSTANCE.end;
}

/// Byte ranges of an ERROR entry's fields.
mod error_field {
    use crate::Field;
    pub const REQUEST: Field = 0..4;
    pub const CODE: Field = REQUEST.end..REQUEST.end + 2;
    pub const PART: Field = CODE.end..CODE.end + 2;
    pub const PARTS: Field = PART.end..PART.end + 2;
    pub const RESERVED: Field = PARTS.end..PARTS.end + 2;
    pub const DETAIL: Field = RESERVED.end..RESERVED.end + 8;
    pub const END: usize = DETAIL.end;
}

/// Byte ranges of a CREDIT entry's fields.
mod credit_field {
    use crate::Field;
    pub const STREAM: Field = 0..8;
    pub const POSITION: Field = STREAM.end..STREAM.end + 8;
    pub const END: usize = POSITION.end;
}

/// Byte ranges of a BACKPRESSURE entry's fields.
mod backpressure_field {
    use crate::Field;
    pub const STREAM: Field = 0..8;
    pub const REFUSED: Field = STREAM.end..STREAM.end + 4;
    pub const RESERVED: Field = REFUSED.end..REFUSED.end + 4;
    pub const END: usize = RESERVED.end;
}

// The public lengths (from ms-limits, which sizes frames and arrays from
// them) are the ones the layouts above give.
const _: () = assert!(RANGE_ENTRY_LEN == range_field::END);
const _: () = assert!(ACK_ENTRY_LEN == ack_field::END);
const _: () = assert!(ERROR_ENTRY_LEN == error_field::END);
const _: () = assert!(CREDIT_ENTRY_LEN == credit_field::END);
const _: () = assert!(BACKPRESSURE_ENTRY_LEN == backpressure_field::END);

/// A subscribe or unsubscribe request for `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRequest {
    /// Chosen by the client; echoed in the ACK or ERROR.
    pub request: u32,
    /// First stream id.
    pub first: u64,
    /// Last stream id (inclusive).
    pub last: u64,
    /// SUBSCRIBE: the initial credit (bytes) the subscriber asks for each
    /// new subscription, at most the appliance's
    /// `flow.initial_credit_bytes`; 0 takes that default. A subscriber
    /// asks for less when its receive buffer cannot hold the default for
    /// every stream. Ignored in UNSUBSCRIBE (sent as 0).
    pub initial_credit: u32,
}

impl RangeRequest {
    /// Number of ids covered, or `None` when `last < first`.
    pub fn ids(&self) -> Option<u64> {
        self.last.checked_sub(self.first).map(|d| d.saturating_add(1))
    }
}

/// A request was applied. Requests that span several appliance cores are
/// acknowledged once per core: `part` of `parts`, in any order. A HEARTBEAT
/// is answered with ACKs of request 0 (see docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The request id (0 answers a HEARTBEAT).
    pub request: u32,
    /// Which part this is, 0-based.
    pub part: u16,
    /// How many parts the request has.
    pub parts: u16,
    /// Streams this part changed (for a HEARTBEAT: the subscriptions the
    /// sender holds on this part's core).
    pub streams: u32,
    /// The appliance's `streams.subscription_lifetime_ms`: a subscriber not
    /// heard from for this long expires.
    pub lifetime_ms: u32,
    /// The appliance instance: chosen at random when the dataplane starts,
    /// never 0. A new value means the appliance restarted and holds none of
    /// the subscriptions made before.
    pub instance: u64,
}

/// Reasons in ERROR entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The datagram's version is not ours; `detail` is the version we speak.
    UnsupportedVersion,
    /// The datagram could not be parsed.
    Malformed,
    /// The range covers more than [`RANGE_IDS_MAX`] ids, or `last < first`.
    RangeTooLarge,
    /// The appliance's stream table is full.
    StreamTableFull,
    /// The appliance's subscriber table is full.
    SubscribersFull,
    /// The appliance's subscription pool is full.
    SubscriptionsFull,
    /// An internal queue was full; retry later.
    Busy,
    /// A PUBLISH mixed streams of several shards; `detail` is the first
    /// refused stream.
    MixedShards,
    /// The frame type is unknown; `detail` is the type.
    UnknownType,
    /// The appliance removed this subscriber's subscription to stream
    /// `detail` because it fell behind under the `disconnect` policy.
    SlowConsumer,
    /// A HEARTBEAT came from an address that holds no subscription on the
    /// core that received it; `detail` is the appliance instance.
    UnknownSubscriber,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for ErrorCode {
    fn from(v: u16) -> Self {
        match v {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::Malformed,
            3 => ErrorCode::RangeTooLarge,
            4 => ErrorCode::StreamTableFull,
            5 => ErrorCode::SubscribersFull,
            6 => ErrorCode::SubscriptionsFull,
            7 => ErrorCode::Busy,
            8 => ErrorCode::MixedShards,
            9 => ErrorCode::UnknownType,
            10 => ErrorCode::SlowConsumer,
            11 => ErrorCode::UnknownSubscriber,
            other => ErrorCode::Unknown(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(v: ErrorCode) -> u16 {
        match v {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::Malformed => 2,
            ErrorCode::RangeTooLarge => 3,
            ErrorCode::StreamTableFull => 4,
            ErrorCode::SubscribersFull => 5,
            ErrorCode::SubscriptionsFull => 6,
            ErrorCode::Busy => 7,
            ErrorCode::MixedShards => 8,
            ErrorCode::UnknownType => 9,
            ErrorCode::SlowConsumer => 10,
            ErrorCode::UnknownSubscriber => 11,
            ErrorCode::Unknown(other) => other,
        }
    }
}

/// An ERROR entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorEntry {
    /// The refused request, or 0 when the datagram had none.
    pub request: u32,
    /// Why.
    pub code: ErrorCode,
    /// For a request answered per core (a range), the part this core
    /// refused, as in [`Ack::part`]; 0 otherwise.
    pub part: u16,
    /// How many parts the request has (1 when it is not split).
    pub parts: u16,
    /// Code-specific detail (see [`ErrorCode`]).
    pub detail: u64,
}

impl ErrorEntry {
    /// An error that answers a whole request or datagram (part 0 of 1).
    pub const fn whole(request: u32, code: ErrorCode, detail: u64) -> ErrorEntry {
        ErrorEntry { request, code, part: 0, parts: 1, detail }
    }
}

/// A CREDIT entry: the appliance may send the datagram's source address
/// the messages of `stream` whose end position
/// ([`crate::deliver::Delivery::position`]) is at most `position`. Grants
/// are absolute and the appliance keeps the largest it has seen, so lost,
/// duplicated or reordered grants are harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// Stream id.
    pub stream: u64,
    /// The stream position up to which messages may be sent.
    pub position: u64,
}

/// A BACKPRESSURE entry: the appliance refused `refused` messages of
/// `stream` from the datagram it answers, because the stream's queue is
/// full under the `block` policy. The publisher should slow down and
/// retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backpressure {
    /// Stream id.
    pub stream: u64,
    /// Messages of `stream` refused from that datagram.
    pub refused: u32,
}

/// Fixed-size entries of one kind, checked.
#[derive(Debug, Clone, Copy)]
pub struct Entries<'a> {
    rest: &'a [u8],
    size: usize,
}

impl<'a> Entries<'a> {
    fn checked(b: &'a [u8], count: u16, size: usize) -> Result<Self, WireError> {
        let need = usize::from(count) * size;
        if b.len() < need {
            return Err(WireError::Truncated);
        }
        if b.len() > need {
            return Err(WireError::Malformed);
        }
        Ok(Entries { rest: b, size })
    }

    fn next_chunk(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < self.size || self.size == 0 {
            return None;
        }
        let (e, rest) = self.rest.split_at(self.size);
        self.rest = rest;
        Some(e)
    }

    /// Number of entries left.
    pub fn remaining(&self) -> usize {
        self.rest.len().checked_div(self.size).unwrap_or(0)
    }
}

/// Iterator over range requests.
#[derive(Debug, Clone, Copy)]
pub struct Ranges<'a>(pub(crate) Entries<'a>);

impl Iterator for Ranges<'_> {
    type Item = RangeRequest;
    fn next(&mut self) -> Option<RangeRequest> {
        self.0.next_chunk().map(|e| RangeRequest {
            request: le32(e, range_field::REQUEST),
            first: le64(e, range_field::FIRST),
            last: le64(e, range_field::LAST),
            initial_credit: le32(e, range_field::INITIAL_CREDIT),
        })
    }
}

/// Iterator over ACK entries.
#[derive(Debug, Clone, Copy)]
pub struct Acks<'a>(Entries<'a>);

impl Iterator for Acks<'_> {
    type Item = Ack;
    fn next(&mut self) -> Option<Ack> {
        self.0.next_chunk().map(|e| Ack {
            request: le32(e, ack_field::REQUEST),
            part: le16(e, ack_field::PART),
            parts: le16(e, ack_field::PARTS),
            streams: le32(e, ack_field::STREAMS),
            lifetime_ms: le32(e, ack_field::LIFETIME_MS),
            instance: le64(e, ack_field::INSTANCE),
        })
    }
}

/// Iterator over ERROR entries.
#[derive(Debug, Clone, Copy)]
pub struct Errors<'a>(Entries<'a>);

impl Iterator for Errors<'_> {
    type Item = ErrorEntry;
    fn next(&mut self) -> Option<ErrorEntry> {
        self.0.next_chunk().map(|e| ErrorEntry {
            request: le32(e, error_field::REQUEST),
            code: le16(e, error_field::CODE).into(),
            part: le16(e, error_field::PART),
            parts: le16(e, error_field::PARTS),
            detail: le64(e, error_field::DETAIL),
        })
    }
}

/// Iterator over CREDIT entries.
#[derive(Debug, Clone, Copy)]
pub struct Credits<'a>(Entries<'a>);

impl Iterator for Credits<'_> {
    type Item = Credit;
    fn next(&mut self) -> Option<Credit> {
        self.0
            .next_chunk()
            .map(|e| Credit { stream: le64(e, credit_field::STREAM), position: le64(e, credit_field::POSITION) })
    }
}

/// Iterator over BACKPRESSURE entries.
#[derive(Debug, Clone, Copy)]
pub struct Backpressures<'a>(Entries<'a>);

impl Iterator for Backpressures<'_> {
    type Item = Backpressure;
    fn next(&mut self) -> Option<Backpressure> {
        self.0.next_chunk().map(|e| Backpressure {
            stream: le64(e, backpressure_field::STREAM),
            refused: le32(e, backpressure_field::REFUSED),
        })
    }
}

/// A checked control frame.
#[derive(Debug, Clone, Copy)]
pub enum Control<'a> {
    /// Subscribe to ranges.
    Subscribe(Ranges<'a>),
    /// Unsubscribe from ranges.
    Unsubscribe(Ranges<'a>),
    /// Keep the sender's subscriptions alive.
    Heartbeat,
    /// Requests applied.
    Ack(Acks<'a>),
    /// Requests refused.
    Error(Errors<'a>),
    /// Flow-control grants from a subscriber.
    Credit(Credits<'a>),
    /// Messages refused because their streams are full.
    Backpressure(Backpressures<'a>),
}

impl<'a> Control<'a> {
    /// Checks a control frame's entries, given its parsed header.
    pub fn from_entries(h: &Header, b: &'a [u8]) -> Result<Self, WireError> {
        Ok(match h.frame_type {
            // A request without entries has no request id to answer with.
            FrameType::Subscribe | FrameType::Unsubscribe if h.count == 0 => return Err(WireError::Malformed),
            FrameType::Subscribe => Control::Subscribe(Ranges(Entries::checked(b, h.count, RANGE_ENTRY_LEN)?)),
            FrameType::Unsubscribe => Control::Unsubscribe(Ranges(Entries::checked(b, h.count, RANGE_ENTRY_LEN)?)),
            FrameType::Heartbeat => {
                Entries::checked(b, h.count, 0)?;
                if h.count != 0 {
                    return Err(WireError::Malformed);
                }
                Control::Heartbeat
            }
            FrameType::Ack => Control::Ack(Acks(Entries::checked(b, h.count, ACK_ENTRY_LEN)?)),
            FrameType::Error => Control::Error(Errors(Entries::checked(b, h.count, ERROR_ENTRY_LEN)?)),
            FrameType::Credit => Control::Credit(Credits(Entries::checked(b, h.count, CREDIT_ENTRY_LEN)?)),
            FrameType::Backpressure => {
                Control::Backpressure(Backpressures(Entries::checked(b, h.count, BACKPRESSURE_ENTRY_LEN)?))
            }
            FrameType::Unknown(t) => return Err(WireError::UnknownType(t)),
            FrameType::Publish | FrameType::Deliver => return Err(WireError::Malformed),
        })
    }
}

/// The one builder of fixed-size frames: writes the header and every
/// entry into `buf` and returns the datagram's length, or `None` (nothing
/// written) when the entries do not fit `buf` or a u16 count. `put` writes
/// every byte of its `size`-byte entry, reserved ones as 0.
fn emit_entries<T>(
    buf: &mut [u8],
    t: FrameType,
    items: &[T],
    size: usize,
    put: impl Fn(&mut [u8], &T),
) -> Option<usize> {
    let count = u16::try_from(items.len()).ok()?;
    let len = HEADER_LEN + items.len() * size;
    let b = buf.get_mut(..len)?;
    let (header, entries) = b.split_at_mut(HEADER_LEN);
    Header { frame_type: t, flags: 0, count }.emit(header)?;
    if size > 0 {
        for (e, item) in entries.chunks_exact_mut(size).zip(items) {
            put(e, item);
        }
    }
    Some(len)
}

/// Writes a SUBSCRIBE or UNSUBSCRIBE datagram; returns its length, or
/// `None` if `buf` is too small or `t` is another type.
pub fn emit_ranges(buf: &mut [u8], t: FrameType, ranges: &[RangeRequest]) -> Option<usize> {
    if !matches!(t, FrameType::Subscribe | FrameType::Unsubscribe) {
        return None;
    }
    emit_entries(buf, t, ranges, RANGE_ENTRY_LEN, |e, r| {
        put32(e, range_field::REQUEST, r.request);
        put64(e, range_field::FIRST, r.first);
        put64(e, range_field::LAST, r.last);
        put32(e, range_field::INITIAL_CREDIT, r.initial_credit);
    })
}

/// Writes a HEARTBEAT datagram.
pub fn emit_heartbeat(buf: &mut [u8]) -> Option<usize> {
    emit_entries::<()>(buf, FrameType::Heartbeat, &[], 0, |_, _| {})
}

/// Writes an ACK datagram.
pub fn emit_acks(buf: &mut [u8], acks: &[Ack]) -> Option<usize> {
    emit_entries(buf, FrameType::Ack, acks, ACK_ENTRY_LEN, |e, a| {
        put32(e, ack_field::REQUEST, a.request);
        put16(e, ack_field::PART, a.part);
        put16(e, ack_field::PARTS, a.parts);
        put32(e, ack_field::STREAMS, a.streams);
        put32(e, ack_field::LIFETIME_MS, a.lifetime_ms);
        put64(e, ack_field::INSTANCE, a.instance);
    })
}

/// Writes an ERROR datagram.
pub fn emit_errors(buf: &mut [u8], errors: &[ErrorEntry]) -> Option<usize> {
    emit_entries(buf, FrameType::Error, errors, ERROR_ENTRY_LEN, |e, x| {
        put32(e, error_field::REQUEST, x.request);
        put16(e, error_field::CODE, x.code.into());
        put16(e, error_field::PART, x.part);
        put16(e, error_field::PARTS, x.parts);
        put16(e, error_field::RESERVED, 0);
        put64(e, error_field::DETAIL, x.detail);
    })
}

/// Writes a CREDIT datagram.
pub fn emit_credits(buf: &mut [u8], credits: &[Credit]) -> Option<usize> {
    emit_entries(buf, FrameType::Credit, credits, CREDIT_ENTRY_LEN, |e, c| {
        put64(e, credit_field::STREAM, c.stream);
        put64(e, credit_field::POSITION, c.position);
    })
}

/// Writes a BACKPRESSURE datagram.
pub fn emit_backpressure(buf: &mut [u8], entries: &[Backpressure]) -> Option<usize> {
    emit_entries(buf, FrameType::Backpressure, entries, BACKPRESSURE_ENTRY_LEN, |e, x| {
        put64(e, backpressure_field::STREAM, x.stream);
        put32(e, backpressure_field::REFUSED, x.refused);
        put32(e, backpressure_field::RESERVED, 0);
    })
}
