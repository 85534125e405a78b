//! ICMP echo request and reply (RFC 792). Other ICMP types are reported as
//! [`Message::Other`] and dropped by the host.

use crate::{be16, checksum, put_be16, WireError};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const DATA: usize = 8;
}

/// Length of an echo header.
pub const ECHO_HEADER_LEN: usize = field::DATA;

/// ICMP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Type 0.
    EchoReply,
    /// Type 8.
    EchoRequest,
    /// Any other type.
    Other(u8),
}

impl From<u8> for Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Message::EchoReply,
            8 => Message::EchoRequest,
            other => Message::Other(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(v: Message) -> u8 {
        match v {
            Message::EchoReply => 0,
            Message::EchoRequest => 8,
            Message::Other(other) => other,
        }
    }
}

/// A view over an ICMP message (the IPv4 payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking it holds an echo-sized header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < ECHO_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Message type.
    pub fn message(&self) -> Message {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Echo identifier.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number.
    pub fn seq(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ)
    }

    /// True when the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }

    /// Echo data.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_message(&mut self, m: Message) {
        self.buffer.as_mut()[field::TYPE] = m.into();
    }

    /// Sets the code.
    pub fn set_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the echo identifier.
    pub fn set_ident(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets the echo sequence number.
    pub fn set_seq(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        put_be16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(b);
        put_be16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echo request id 0x1234 seq 1, data "abcd", checksum by hand:
    /// !(0x0800 + 0x1234 + 0x0001 + 0x6162 + 0x6364) = !0xdefb = 0x2104.
    const REQUEST: [u8; 12] = [8, 0, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd'];

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.message(), Message::EchoRequest);
        assert_eq!((p.code(), p.ident(), p.seq()), (0, 0x1234, 1));
        assert_eq!(p.data(), b"abcd");
        assert!(p.verify_checksum());
    }

    #[test]
    fn emit_reply() {
        let mut b = REQUEST;
        b[..8].fill(0xa5);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_message(Message::EchoReply);
        p.set_code(0);
        p.set_ident(0x1234);
        p.set_seq(1);
        p.fill_checksum();
        assert_eq!(b, [0, 0, 0x29, 0x04, 0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd']);
    }

    #[test]
    fn truncated_and_bad_checksum() {
        assert_eq!(Packet::new_checked(&REQUEST[..7]).unwrap_err(), WireError::Truncated);
        let mut bad = REQUEST;
        bad[11] ^= 1;
        assert!(!Packet::new_checked(&bad[..]).unwrap().verify_checksum());
        assert_eq!(Message::from(3), Message::Other(3));
    }
}
