//! UDP headers (RFC 768).

use crate::{be16, checksum, put_be16, Ipv4Addr, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over a UDP datagram (the IPv4 payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking the length field covers the header and
    /// fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(be16(b, field::LENGTH));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Checksum field; 0 means the sender did not compute one.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True when the checksum is absent (0) or correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let seg = &self.buffer.as_ref()[..usize::from(self.len())];
        let sum = checksum::pseudo_header(src.octets(), dst.octets(), 17, self.len());
        checksum::finish(checksum::accumulate(sum, seg)) == 0
    }

    /// Payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Computes the checksum over pseudo-header, header and payload. A
    /// computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.len();
        let b = self.buffer.as_mut();
        put_be16(b, field::CHECKSUM, 0);
        let sum = checksum::pseudo_header(src.octets(), dst.octets(), 17, len);
        let c = match checksum::finish(checksum::accumulate(sum, &b[..usize::from(len)])) {
            0 => 0xffff,
            c => c,
        };
        put_be16(b, field::CHECKSUM, c);
    }

    /// Writes the checksum field as is (0: no checksum).
    pub fn set_checksum(&mut self, v: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Writes the folded, uncomplemented sum of the pseudo-header into the
    /// checksum field: what a NIC that offloads the UDP checksum expects
    /// there, to add the header and payload to.
    pub fn fill_pseudo_header(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let sum = checksum::pseudo_header(src.octets(), dst.octets(), 17, self.len());
        put_be16(self.buffer.as_mut(), field::CHECKSUM, !checksum::finish(sum));
    }

    /// Mutable payload, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// 40000 -> 9000, payload "hi"; checksum by hand (pseudo-header
    /// c612+0002+c612+0001+0011+000a, header 9c40+2328+000a, data 6869).
    const DGRAM: [u8; 10] = [0x9c, 0x40, 0x23, 0x28, 0x00, 0x0a, 0x4b, 0xe0, b'h', b'i'];

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 9000, 10));
        assert_eq!(p.payload(), b"hi");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(198, 18, 0, 3)));
    }

    #[test]
    fn emit_writes_every_byte() {
        let mut b = [0xa5u8; 10];
        b[8..].copy_from_slice(b"hi");
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(40000);
        p.set_dst_port(9000);
        p.set_len(10);
        p.fill_checksum(SRC, DST);
        assert_eq!(b, DGRAM);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = DGRAM;
        b[6] = 0;
        b[7] = 0;
        assert!(Packet::new_checked(&b[..]).unwrap().verify_checksum(SRC, DST));
    }

    #[test]
    fn malformed_lengths() {
        assert_eq!(Packet::new_checked(&DGRAM[..7]).unwrap_err(), WireError::Truncated);
        assert_eq!(Packet::new_checked(&DGRAM[..9]).unwrap_err(), WireError::Truncated);
        let mut short = DGRAM;
        short[5] = 7;
        assert_eq!(Packet::new_checked(&short[..]).unwrap_err(), WireError::Malformed);
    }
}
