//! IPv4 headers (RFC 791). The dataplane accepts only option-less,
//! unfragmented packets; the view reports both so the host can count them.

use crate::{be16, checksum, ip_at, put_be16, Ipv4Addr, WireError};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST.end;

/// IP protocol numbers the dataplane knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// 1
    Icmp,
    /// 17
    Udp,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Self {
        match v {
            1 => Protocol::Icmp,
            17 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(v: Protocol) -> u8 {
        match v {
            Protocol::Icmp => 1,
            Protocol::Udp => 17,
            Protocol::Unknown(other) => other,
        }
    }
}

/// A view over an IPv4 packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking the version, that the header length is at
    /// least 20 and fits, and that the total length covers the header and
    /// fits in the buffer (trailing Ethernet padding is allowed).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        let header_len = p.header_len();
        let total_len = usize::from(p.total_len());
        if p.version() != 4 || header_len < HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > p.buffer.as_ref().len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Version (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// True when the header carries options.
    pub fn has_options(&self) -> bool {
        self.header_len() > HEADER_LEN
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// True when this is a fragment: More Fragments set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol.
    pub fn protocol(&self) -> Protocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::SRC.start)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::DST.start)
    }

    /// The payload, up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and a header length of 20.
    pub fn set_version_ihl_no_options(&mut self) {
        self.buffer.as_mut()[field::VER_IHL] = 0x45;
    }

    /// Sets DSCP/ECN.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, id: u16) {
        put_be16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Sets Don't Fragment and clears the offset.
    pub fn set_dont_fragment(&mut self) {
        put_be16(self.buffer.as_mut(), field::FLG_OFF, 0x4000);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    /// Sets the source address.
    pub fn set_src(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&ip.octets());
    }

    /// Sets the destination address.
    pub fn set_dst(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&ip.octets());
    }

    /// Recomputes the header checksum; call after every other setter.
    pub fn fill_checksum(&mut self) {
        let len = self.header_len();
        let b = self.buffer.as_mut();
        put_be16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..len]);
        put_be16(b, field::CHECKSUM, c);
    }

    /// Mutable payload, up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 198.18.0.2 -> 198.18.0.1, ICMP, 28 bytes, id 0x1c46, DF, TTL 64.
    const HEADER: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, //
        198, 18, 0, 2, 198, 18, 0, 1, //
        8, 0, 0xf7, 0xff, 0, 0, 0, 0,
    ];

    fn fixture() -> [u8; 28] {
        let mut b = HEADER;
        Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn parse_fixture() {
        let b = fixture();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.protocol(), Protocol::Icmp);
        assert_eq!((p.src(), p.dst()), (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(p.payload().len(), 8);
        assert!(!p.is_fragment() && !p.has_options());
        assert_eq!((p.ident(), p.ttl()), (0x1c46, 64));
    }

    #[test]
    fn known_checksum() {
        // Computed independently: sum of the header words with checksum 0.
        assert_eq!(Packet::new_unchecked(&fixture()[..]).checksum(), 0x9273);
    }

    #[test]
    fn bad_checksum_detected() {
        let mut b = fixture();
        b[8] = 63;
        assert!(!Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn malformed_lengths() {
        let b = fixture();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), WireError::Truncated);
        assert_eq!(Packet::new_checked(&b[..27]).unwrap_err(), WireError::Truncated);
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), WireError::Malformed);
        let mut short_ihl = b;
        short_ihl[0] = 0x44;
        assert_eq!(Packet::new_checked(&short_ihl[..]).unwrap_err(), WireError::Malformed);
        let mut short_total = b;
        short_total[3] = 19;
        assert_eq!(Packet::new_checked(&short_total[..]).unwrap_err(), WireError::Malformed);
        let mut ihl_past_total = b;
        ihl_past_total[0] = 0x47; // 28-byte header == total: ok, no payload
        assert!(Packet::new_checked(&ihl_past_total[..]).is_ok());
        ihl_past_total[0] = 0x48; // 32 > total 28
        assert_eq!(Packet::new_checked(&ihl_past_total[..]).unwrap_err(), WireError::Malformed);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&fixture());
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload().len(), 8);
    }

    #[test]
    fn options_and_fragments_are_reported() {
        let mut b = [0u8; 32];
        b[..20].copy_from_slice(&fixture()[..20]);
        b[0] = 0x46;
        b[3] = 32;
        assert!(Packet::new_checked(&b[..]).unwrap().has_options());
        let mut frag = fixture();
        frag[6] = 0x20; // MF
        assert!(Packet::new_checked(&frag[..]).unwrap().is_fragment());
        let mut off = fixture();
        off[6] = 0x40;
        off[7] = 0x01; // DF + offset 1
        assert!(Packet::new_checked(&off[..]).unwrap().is_fragment());
    }

    #[test]
    fn emit_overwrites_header() {
        let mut b = [0xa5u8; 28];
        b[20..].copy_from_slice(&HEADER[20..]);
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_ihl_no_options();
        p.set_tos(0);
        p.set_total_len(28);
        p.set_ident(0x1c46);
        p.set_dont_fragment();
        p.set_ttl(64);
        p.set_protocol(Protocol::Icmp);
        p.set_src(Ipv4Addr::new(198, 18, 0, 2));
        p.set_dst(Ipv4Addr::new(198, 18, 0, 1));
        p.fill_checksum();
        assert_eq!(b, fixture());
    }
}
