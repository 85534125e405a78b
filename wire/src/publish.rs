//! PUBLISH: one or more messages, each for one stream.
//!
//! ```text
//! entry: | stream u64 | class u8 | flags u8 | len u16 | payload[len] |
//! ```
//! All messages of one datagram must belong to one shard
//! ([`crate::shard::shard`]); the client library batches that way so a
//! datagram is handled by exactly one appliance core.

use crate::header::{FrameType, Header, HEADER_LEN};
use crate::{at, le16, le64, put16, put64, Field, WireError, PAYLOAD_MAX};

/// Fixed part of an entry.
pub use ms_limits::PUBLISH_ENTRY_HEADER_LEN as ENTRY_HEADER_LEN;

/// Priority classes; higher numbers are served first. Values above
/// [`CLASS_MAX`] are refused by the parser.
pub use ms_limits::CLASS_MAX;

mod field {
    use crate::Field;
    pub const STREAM: Field = 0..8;
    pub const CLASS: usize = STREAM.end;
    pub const FLAGS: usize = CLASS + 1;
    pub const LEN: Field = FLAGS + 1..FLAGS + 3;
    /// The fixed part's length; the payload follows.
    pub const END: usize = LEN.end;
}

const _: () = assert!(ENTRY_HEADER_LEN == field::END, "the layout and the limits agree");

/// One published message, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Stream id.
    pub stream: u64,
    /// Priority class, 0..=[`CLASS_MAX`].
    pub class: u8,
    /// Flags (none defined in version 1).
    pub flags: u8,
    /// Payload.
    pub payload: &'a [u8],
}

/// Walks `count` variable-length entries of `fixed` bytes whose u16
/// payload length is the field `len`, checking they exactly fill `b` and
/// that `entry_ok` accepts each entry's fixed part. One walk for both: a
/// length error is still the one reported when there are both.
pub(crate) fn validate_entries(
    b: &[u8],
    count: u16,
    fixed: usize,
    len: Field,
    entry_ok: impl Fn(&[u8]) -> bool,
) -> Result<(), WireError> {
    let mut pos = 0;
    let mut all_ok = true;
    for _ in 0..count {
        if b.len() < pos + fixed {
            return Err(WireError::Truncated);
        }
        all_ok &= entry_ok(&b[pos..pos + fixed]);
        let n = usize::from(le16(b, at(len.clone(), pos)));
        if n > PAYLOAD_MAX {
            return Err(WireError::Malformed);
        }
        pos += fixed + n;
        if b.len() < pos {
            return Err(WireError::Truncated);
        }
    }
    if pos != b.len() || !all_ok {
        return Err(WireError::Malformed);
    }
    Ok(())
}

/// A checked PUBLISH datagram.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    entries: &'a [u8],
    count: u16,
}

impl<'a> Publish<'a> {
    /// Checks the header and every entry; afterwards iteration cannot fail.
    pub fn new_checked(datagram: &'a [u8]) -> Result<Self, WireError> {
        let h = Header::parse(datagram)?;
        if h.frame_type != FrameType::Publish {
            return Err(WireError::Malformed);
        }
        Self::from_entries(&datagram[HEADER_LEN..], h.count)
    }

    /// Checks entries that follow an already parsed header.
    pub fn from_entries(entries: &'a [u8], count: u16) -> Result<Self, WireError> {
        validate_entries(entries, count, ENTRY_HEADER_LEN, field::LEN, |e| e[field::CLASS] <= CLASS_MAX)?;
        Ok(Publish { entries, count })
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
    pub fn messages(&self) -> Messages<'a> {
        Messages { rest: self.entries }
    }
}

/// Iterator over the messages of a checked PUBLISH.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let b = self.rest;
        if b.len() < ENTRY_HEADER_LEN {
            return None;
        }
        let len = usize::from(le16(b, field::LEN));
        let end = (ENTRY_HEADER_LEN + len).min(b.len());
        let m = Message {
            stream: le64(b, field::STREAM),
            class: b[field::CLASS],
            flags: b[field::FLAGS],
            payload: &b[ENTRY_HEADER_LEN..end],
        };
        self.rest = &b[end..];
        Some(m)
    }
}

/// Builds a PUBLISH datagram in a caller's buffer.
#[derive(Debug)]
pub struct PublishBuilder<'a> {
    buf: &'a mut [u8],
    len: usize,
    count: u16,
}

impl<'a> PublishBuilder<'a> {
    /// Starts a datagram; `buf` must hold at least the header.
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        let len = Header { frame_type: FrameType::Publish, flags: 0, count: 0 }.emit(buf)?;
        Some(PublishBuilder { buf, len, count: 0 })
    }

    /// Continues a datagram this builder type wrote earlier into `buf`,
    /// whose first `len` bytes are that datagram (count read from its
    /// header). `None` if `buf` does not hold a PUBLISH of that length.
    pub fn resume(buf: &'a mut [u8], len: usize) -> Option<Self> {
        let h = Header::parse(buf.get(..len)?).ok()?;
        if h.frame_type != FrameType::Publish {
            return None;
        }
        Some(PublishBuilder { buf, len, count: h.count })
    }

    /// Bytes a message of `payload_len` takes.
    pub const fn entry_len(payload_len: usize) -> usize {
        ENTRY_HEADER_LEN + payload_len
    }

    /// Appends a message; `false` (and nothing written) when it does not
    /// fit, the payload is too long or the class is out of range.
    pub fn push(&mut self, stream: u64, class: u8, payload: &[u8]) -> bool {
        let need = Self::entry_len(payload.len());
        if payload.len() > PAYLOAD_MAX
            || class > CLASS_MAX
            || self.len + need > self.buf.len()
            || self.count == u16::MAX
        {
            return false;
        }
        let e = &mut self.buf[self.len..self.len + need];
        put64(e, field::STREAM, stream);
        e[field::CLASS] = class;
        e[field::FLAGS] = 0;
        put16(e, field::LEN, payload.len() as u16);
        e[field::END..].copy_from_slice(payload);
        self.len += need;
        self.count += 1;
        Header::set_count(self.buf, self.count);
        true
    }

    /// Messages so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Datagram length so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no message has been added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
