//! Static routes: which next hop reaches an address.

use crate::Ipv4Addr;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Network address (host bits are ignored).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Prefix {
    fn mask(&self) -> u32 {
        match self.len {
            0 => 0,
            l => u32::MAX << (32 - u32::from(l.min(32))),
        }
    }

    /// True when `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }

    /// The prefix's directed broadcast address, if it has one: prefixes
    /// of 30 bits or fewer (a /31 or /32 has none, RFC 3021).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.len <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.mask()))
    }
}

/// Why a route was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The table holds its maximum number of routes.
    Full,
    /// Prefix length above 32.
    BadPrefix,
    /// The gateway is not on the port's subnet, so ARP cannot reach it.
    GatewayOffLink,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    dest: Prefix,
    via: Ipv4Addr,
}

/// The on-link subnet of a port plus up to `N` static routes.
#[derive(Debug)]
pub struct RouteTable<const N: usize> {
    link: Prefix,
    routes: [Option<Route>; N],
}

impl<const N: usize> RouteTable<N> {
    /// A table with only the on-link subnet.
    pub const fn new(link: Prefix) -> Self {
        RouteTable { link, routes: [None; N] }
    }

    /// Adds `dest via gateway`. The gateway must be on-link.
    pub fn add(&mut self, dest: Prefix, via: Ipv4Addr) -> Result<(), RouteError> {
        if dest.len > 32 {
            return Err(RouteError::BadPrefix);
        }
        if !self.link.contains(via) {
            return Err(RouteError::GatewayOffLink);
        }
        let slot = self.routes.iter_mut().find(|r| r.is_none()).ok_or(RouteError::Full)?;
        *slot = Some(Route { dest, via });
        Ok(())
    }

    /// The address to resolve with ARP to reach `dst`: `dst` itself when
    /// on-link, else the gateway of the longest matching route.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.link.contains(dst) {
            return Some(dst);
        }
        self.routes.iter().flatten().filter(|r| r.dest.contains(dst)).max_by_key(|r| r.dest.len).map(|r| r.via)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: [u8; 4], len: u8) -> Prefix {
        Prefix { addr: a.into(), len }
    }

    #[test]
    fn on_link_then_longest_prefix() {
        let mut t = RouteTable::<4>::new(p([198, 18, 0, 0], 24));
        t.add(p([0, 0, 0, 0], 0), [198, 18, 0, 254].into()).unwrap();
        t.add(p([198, 19, 0, 0], 16), [198, 18, 0, 2].into()).unwrap();
        assert_eq!(t.next_hop([198, 18, 0, 7].into()), Some([198, 18, 0, 7].into()));
        assert_eq!(t.next_hop([198, 19, 5, 5].into()), Some([198, 18, 0, 2].into()));
        assert_eq!(t.next_hop([203, 0, 113, 1].into()), Some([198, 18, 0, 254].into()));
    }

    #[test]
    fn no_default_means_no_route() {
        let t = RouteTable::<4>::new(p([198, 18, 0, 0], 24));
        assert_eq!(t.next_hop([198, 19, 0, 1].into()), None);
    }

    #[test]
    fn refuses_bad_routes() {
        let mut t = RouteTable::<1>::new(p([198, 18, 0, 0], 24));
        assert_eq!(t.add(p([10, 0, 0, 0], 33), [198, 18, 0, 1].into()), Err(RouteError::BadPrefix));
        assert_eq!(t.add(p([198, 19, 0, 0], 16), [198, 19, 0, 1].into()), Err(RouteError::GatewayOffLink));
        t.add(p([198, 19, 0, 0], 16), [198, 18, 0, 1].into()).unwrap();
        assert_eq!(t.add(p([198, 19, 0, 0], 16), [198, 18, 0, 1].into()), Err(RouteError::Full));
    }

    #[test]
    fn prefix_edges() {
        assert!(p([0, 0, 0, 0], 0).contains([255, 255, 255, 255].into()));
        assert!(p([198, 18, 0, 1], 32).contains([198, 18, 0, 1].into()));
        assert!(!p([198, 18, 0, 1], 32).contains([198, 18, 0, 2].into()));
    }
}
