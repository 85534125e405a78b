//! ARP for Ethernet and IPv4 (RFC 826). Other hardware or protocol types
//! are reported by [`Packet::is_ethernet_ipv4`] and dropped by the host.

use crate::{be16, ip_at, put_be16, Ipv4Addr, MacAddr, WireError};

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Anything else (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A view over an ARP packet (the Ethernet payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking it holds an Ethernet/IPv4-sized packet.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    /// True when hardware is Ethernet (1, len 6) and protocol IPv4 (0x0800, len 4).
    pub fn is_ethernet_ipv4(&self) -> bool {
        let b = self.buffer.as_ref();
        be16(b, field::HTYPE) == 1 && be16(b, field::PTYPE) == 0x0800 && b[field::HLEN] == 6 && b[field::PLEN] == 4
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        be16(self.buffer.as_ref(), field::OPER).into()
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        MacAddr(m)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::SPA.start)
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        MacAddr(m)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ip_at(self.buffer.as_ref(), field::TPA.start)
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet, apart from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Request or reply.
    pub operation: Operation,
    /// Sender MAC.
    pub sender_mac: MacAddr,
    /// Sender IPv4.
    pub sender_ip: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_mac: MacAddr,
    /// Target IPv4.
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet; `None` if it is not Ethernet/IPv4 ARP.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Option<Repr> {
        p.is_ethernet_ipv4().then(|| Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        })
    }

    /// Writes all [`PACKET_LEN`] bytes into `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        put_be16(b, field::HTYPE, 1);
        put_be16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        put_be16(b, field::OPER, self.operation.into());
        b[field::SHA].copy_from_slice(&self.sender_mac.0);
        b[field::SPA].copy_from_slice(&self.sender_ip.octets());
        b[field::THA].copy_from_slice(&self.target_mac.0);
        b[field::TPA].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Who has 198.18.0.1? Tell 198.18.0.2" from 02:00:00:00:00:02.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 1,
    ];

    fn repr() -> Repr {
        Repr {
            operation: Operation::Request,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            sender_ip: Ipv4Addr::new(198, 18, 0, 2),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(198, 18, 0, 1),
        }
    }

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(Repr::parse(&p), Some(repr()));
    }

    #[test]
    fn emit_writes_every_byte() {
        let mut buf = [0xa5u8; 28];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn truncated_and_foreign_types() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]).unwrap_err(), WireError::Truncated);
        let mut other = REQUEST;
        other[3] = 0xdd; // ptype 0x08dd
        assert_eq!(Repr::parse(&Packet::new_checked(&other[..]).unwrap()), None);
        let mut hlen = REQUEST;
        hlen[4] = 8;
        assert_eq!(Repr::parse(&Packet::new_checked(&hlen[..]).unwrap()), None);
    }

    #[test]
    fn unknown_operation_is_kept() {
        let mut rarp = REQUEST;
        rarp[7] = 3;
        let p = Packet::new_checked(&rarp[..]).unwrap();
        assert_eq!(p.operation(), Operation::Unknown(3));
    }
}
