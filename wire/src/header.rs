//! The 8-byte datagram header.
//!
//! ```text
//! 0      2       3      4       5          6       8
//! | magic | version | type | flags | reserved | count |
//! ```

use crate::{le16, put16, WireError};

/// `"MS"` on the wire (bytes 0x4d 0x53).
pub const MAGIC: u16 = u16::from_le_bytes(*b"MS");
/// The protocol version this crate speaks.
pub const VERSION: u8 = 2;
/// Header length (see [`ms_limits::HEADER_LEN`], which sizes the frames).
pub const HEADER_LEN: usize = field::COUNT.end;

const _: () = assert!(HEADER_LEN == ms_limits::HEADER_LEN, "the layout and the limits agree");

mod field {
    use crate::Field;
    pub const MAGIC: Field = 0..2;
    pub const VERSION: usize = MAGIC.end;
    pub const TYPE: usize = VERSION + 1;
    pub const FLAGS: usize = TYPE + 1;
    pub const RESERVED: usize = FLAGS + 1;
    pub const COUNT: Field = RESERVED + 1..RESERVED + 3;
}

/// Frame types. Unknown values are kept so they can be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// Publisher -> appliance: messages.
    Publish,
    /// Subscriber -> appliance: stream ranges to receive.
    Subscribe,
    /// Subscriber -> appliance: stream ranges to stop receiving.
    Unsubscribe,
    /// Subscriber -> appliance: "still here" (no entries).
    Heartbeat,
    /// Appliance -> subscriber: messages with sequence numbers.
    Deliver,
    /// Appliance -> client: a request was applied.
    Ack,
    /// Appliance -> client: a request or datagram was refused.
    Error,
    /// Subscriber -> appliance: how far into each stream it may be sent.
    Credit,
    /// Appliance -> publisher: messages refused because a stream is full.
    Backpressure,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(v: u8) -> Self {
        match v {
            1 => FrameType::Publish,
            2 => FrameType::Subscribe,
            3 => FrameType::Unsubscribe,
            4 => FrameType::Heartbeat,
            5 => FrameType::Deliver,
            6 => FrameType::Ack,
            7 => FrameType::Error,
            8 => FrameType::Credit,
            9 => FrameType::Backpressure,
            other => FrameType::Unknown(other),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(v: FrameType) -> u8 {
        match v {
            FrameType::Publish => 1,
            FrameType::Subscribe => 2,
            FrameType::Unsubscribe => 3,
            FrameType::Heartbeat => 4,
            FrameType::Deliver => 5,
            FrameType::Ack => 6,
            FrameType::Error => 7,
            FrameType::Credit => 8,
            FrameType::Backpressure => 9,
            FrameType::Unknown(other) => other,
        }
    }
}

/// The meaning of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Frame type.
    pub frame_type: FrameType,
    /// Flags (none defined; sent as 0, ignored on receipt).
    pub flags: u8,
    /// Number of entries that follow.
    pub count: u16,
}

impl Header {
    /// Reads a header. Checks magic, then version, then length, so a
    /// datagram too short to carry the magic is not ours (dropped without
    /// an answer) and a peer speaking another version can be told which
    /// one we speak.
    pub fn parse(b: &[u8]) -> Result<Header, WireError> {
        if b.len() < field::MAGIC.end || le16(b, field::MAGIC) != MAGIC {
            return Err(WireError::BadMagic);
        }
        match b.get(field::VERSION) {
            Some(&v) if v != VERSION => return Err(WireError::UnsupportedVersion(v)),
            _ => {}
        }
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Header { frame_type: b[field::TYPE].into(), flags: b[field::FLAGS], count: le16(b, field::COUNT) })
    }

    /// Writes all [`HEADER_LEN`] bytes; returns that length, or `None`
    /// (nothing written) when `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> Option<usize> {
        let b = b.get_mut(..HEADER_LEN)?;
        put16(b, field::MAGIC, MAGIC);
        b[field::VERSION] = VERSION;
        b[field::TYPE] = self.frame_type.into();
        b[field::FLAGS] = self.flags;
        b[field::RESERVED] = 0;
        put16(b, field::COUNT, self.count);
        Some(HEADER_LEN)
    }

    /// Rewrites only the count of an emitted header (builders use it);
    /// does nothing when `b` is shorter than a header.
    pub fn set_count(b: &mut [u8], count: u16) {
        if let Some(h) = b.get_mut(..HEADER_LEN) {
            put16(h, field::COUNT, count);
        }
    }
}
