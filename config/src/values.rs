//! Value types the YAML holds as strings (addresses, prefixes, MACs,
//! devices), parsed inside `Deserialize` so a bad one is reported at its
//! own line and column. Plain values: the dataplane converts them into its
//! own types (`ms_dataplane::settings`).

use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Parses a value from its string form inside `Deserialize`, so a bad
/// value is reported at its line and column.
macro_rules! from_str_deserialize {
    ($t:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e| de::Error::custom(format!("{e}; expected {}", $expecting)))
            }
        }
    };
}

/// An IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub Ipv4Addr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Ip).map_err(|_| format!("invalid IPv4 address {s:?}"))
    }
}
from_str_deserialize!(Ip, "a dotted IPv4 address such as 198.18.0.1");

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// The network mask of `len` bits.
    fn mask(&self) -> u32 {
        match self.len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }

    /// True when `ip` is inside the prefix (host bits of `addr` ignored).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// True when `ip` is a usable host in this /1../30 subnet: not its
    /// network or broadcast address, nor a special address.
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        if !(1..=30).contains(&self.len) || !self.contains(ip) {
            return false;
        }
        let host_bits = u32::from(ip) & (u32::MAX >> self.len);
        let special = ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback();
        !special && host_bits != 0 && host_bits != u32::MAX >> self.len
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid IPv4 prefix {s:?}");
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr = a.parse().map_err(|_| bad())?;
        let len = l.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        Ok(Cidr { addr, len })
    }
}
from_str_deserialize!(Cidr, "address/length such as 198.18.0.1/24");

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A unicast MAC address, its six bytes in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `aa:bb:cc:dd:ee:ff` (also with `-`), any unicast or group address.
    fn parse_any(s: &str) -> Option<[u8; 6]> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(out)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match Mac::parse_any(s) {
            // The group bit is the low bit of the first byte.
            Some(m) if m[0] & 1 == 0 && m != [0; 6] => Ok(Mac(m)),
            Some(_) => Err(format!("MAC {s:?} is multicast or zero")),
            None => Err(format!("invalid MAC {s:?}")),
        }
    }
}
from_str_deserialize!(Mac, "a unicast MAC such as 02:4d:53:00:00:01");

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// Where a port comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A PCI device bound to a DPDK-compatible driver (vfio-pci).
    Pci(String),
    /// A virtual device: driver name and its arguments.
    Vdev {
        /// Device name, e.g. `net_tap0` (also the ethdev name).
        name: String,
        /// Arguments after the first comma, e.g. `iface=ms0`.
        args: String,
    },
}

impl Device {
    /// The ethdev name: the PCI address or the vdev name.
    pub fn name(&self) -> &str {
        match self {
            Device::Pci(a) => a,
            Device::Vdev { name, .. } => name,
        }
    }
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, args) = s.split_once(',').unwrap_or((s, ""));
        if is_pci_address(name) && args.is_empty() {
            // DPDK names PCI ports in lower case.
            return Ok(Device::Pci(name.to_ascii_lowercase()));
        }
        let valid_name =
            name.starts_with("net_") && name.len() > 4 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(format!("{s:?} is neither a PCI address nor a vdev string"));
        }
        Ok(Device::Vdev { name: name.to_string(), args: args.to_string() })
    }
}
from_str_deserialize!(Device, "a PCI address (0000:03:00.0) or a vdev string (net_tap0,iface=ms0)");

fn is_pci_address(s: &str) -> bool {
    // dddd:bb:dd.f, hex digits
    let b = s.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b':',
            10 => *c == b'.',
            _ => c.is_ascii_hexdigit(),
        })
}
