//! What a host on the link does with one received frame: answer ARP for
//! its address and learn peers, answer ICMP echo, hand UDP for the service
//! port to the caller, and drop everything else with a named reason.
//!
//! Replies are written in place into the received buffer, so the caller
//! transmits the same packet buffer it received (no allocation, no copy).
//! Egress to peers goes through [`Host::resolve`], which applies the static
//! routes and the ARP cache.

use crate::arp_cache::{ArpCache, Lookup, Timers};
use crate::ethernet::{self, EtherType, Frame};
use crate::ipv4::{self, Protocol};
use crate::route::{Prefix, RouteError, RouteTable};
use crate::{arp, icmp, udp, Ipv4Addr, MacAddr, WireError};

/// The largest IPv4 packet the appliance sends (and answers): a standard
/// Ethernet MTU. The wire protocol's datagrams are sized from it.
pub const IPV4_MTU: usize = 1500;

/// ARP cache entries per host (a compile-time bound; see docs/architecture.md).
pub const ARP_CACHE_ENTRIES: usize = 256;
/// Static routes per port.
pub const ROUTES_MAX: usize = 32;
/// TTL of packets the host originates.
pub const DEFAULT_TTL: u8 = 64;

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        /// Why a frame was dropped. Each is a counter per worker.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $help] $variant,)* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Counter name (snake_case, without prefix).
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            /// One-line description for operators.
            pub const fn help(self) -> &'static str {
                match self { $(DropReason::$variant => $help,)* }
            }
        }
    };
}

drop_reasons! {
    Truncated => "truncated", "Frame shorter than its headers or length fields say.";
    Malformed => "malformed", "A version or length field holds an impossible value.";
    UnknownEthertype => "unknown_ethertype", "EtherType other than IPv4 and ARP (IPv6, VLAN, LLDP, ...).";
    OtherMac => "other_mac", "Unicast to another MAC, or multicast that is not ARP.";
    BadSourceMac => "bad_source_mac", "Source MAC is multicast or broadcast (never a real sender).";
    ArpUnsupported => "arp_unsupported", "ARP for other hardware/protocol types, or an unknown operation.";
    ArpNotForUs => "arp_not_for_us", "ARP request for another address.";
    ArpUnsolicited => "arp_unsolicited", "ARP reply nobody asked for.";
    Ipv4BadChecksum => "ipv4_bad_checksum", "IPv4 header checksum is wrong.";
    Ipv4Options => "ipv4_options", "IPv4 header carries options (not supported).";
    Ipv4Fragment => "ipv4_fragment", "IPv4 fragment (reassembly not supported).";
    Ipv4NotForUs => "ipv4_not_for_us", "IPv4 destination is not the port's address.";
    Ipv4TooBig => "ipv4_too_big", "IPv4 packet larger than the 1500-byte MTU the appliance sends with (an answer would not fit one frame).";
    Ipv4BadSource => "ipv4_bad_source", "IPv4 source is not a unicast host: broadcast (also the port's subnet broadcast), multicast, loopback, reserved (240.0.0.0/4), unspecified, or ours.";
    IpProtoUnsupported => "ip_proto_unsupported", "IP protocol other than ICMP and UDP.";
    IcmpBadChecksum => "icmp_bad_checksum", "ICMP checksum is wrong.";
    IcmpUnsupported => "icmp_unsupported", "ICMP type other than echo request.";
    UdpBadChecksum => "udp_bad_checksum", "UDP checksum is wrong.";
    UdpOtherPort => "udp_other_port", "UDP to a port other than the service port.";
}

impl From<WireError> for DropReason {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => DropReason::Truncated,
            WireError::Malformed => DropReason::Malformed,
        }
    }
}

/// Which reply a [`Verdict::Transmit`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// ARP reply for our address.
    Arp,
    /// ICMP echo reply.
    IcmpEcho,
}

/// A UDP datagram for the service port, located inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDatagram {
    /// Sender's MAC (the next hop back, on-link or gateway).
    pub src_mac: MacAddr,
    /// Sender's address.
    pub src_ip: Ipv4Addr,
    /// Sender's port.
    pub src_port: u16,
    /// Offset of the UDP payload in the frame.
    pub payload_offset: usize,
    /// Length of the UDP payload.
    pub payload_len: usize,
}

/// The outcome of [`Host::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place into a reply of `len` bytes: send it.
    Transmit {
        /// Reply length in bytes.
        len: usize,
        /// What the reply is.
        kind: ReplyKind,
    },
    /// UDP for the service port: the caller's handler takes it.
    Service(ServiceDatagram),
    /// An ARP reply we asked for (or a refresh): learned, nothing to send.
    Learned,
    /// Dropped; the caller counts the reason and frees the buffer.
    Drop(DropReason),
}

/// How to reach a peer, from [`Host::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send to this MAC.
    Mac(MacAddr),
    /// Send to this MAC, and also send the ARP request
    /// [`Host::emit_arp_request`] builds for `next_hop`: the entry expired
    /// and is being refreshed.
    MacRefresh {
        /// The last known MAC.
        mac: MacAddr,
        /// The on-link address to ask for.
        next_hop: Ipv4Addr,
    },
    /// Unknown next hop: send the ARP request [`Host::emit_arp_request`]
    /// builds for `next_hop`, and drop or retry the packet.
    SendArpRequest {
        /// The on-link address to ask for.
        next_hop: Ipv4Addr,
    },
    /// A request for the next hop is in flight.
    Waiting,
    /// No route to the destination.
    NoRoute,
}

/// Static identity of a host on one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// The port's MAC.
    pub mac: MacAddr,
    /// The port's address.
    pub ip: Ipv4Addr,
    /// Length of the on-link prefix.
    pub prefix_len: u8,
    /// UDP port of the streaming service.
    pub service_port: u16,
    /// ARP timers.
    pub arp: Timers,
}

/// One host: identity, ARP cache and routes. One per worker per port, so
/// nothing in it is shared between cores.
#[derive(Debug)]
pub struct Host {
    cfg: HostConfig,
    arp: ArpCache<ARP_CACHE_ENTRIES>,
    routes: RouteTable<ROUTES_MAX>,
    link: Prefix,
    learned: Option<(Ipv4Addr, MacAddr)>,
}

impl Host {
    /// A host with an empty ARP cache and only its on-link route.
    pub fn new(cfg: HostConfig) -> Self {
        let link = Prefix { addr: cfg.ip, len: cfg.prefix_len };
        Host { cfg, arp: ArpCache::new(cfg.arp), routes: RouteTable::new(link), link, learned: None }
    }

    /// The host's identity.
    pub fn config(&self) -> &HostConfig {
        &self.cfg
    }

    /// Adds a static route; the gateway must be on-link.
    pub fn add_route(&mut self, dest: Prefix, via: Ipv4Addr) -> Result<(), RouteError> {
        self.routes.add(dest, via)
    }

    /// The neighbour the last [`Host::process`] call learned or refreshed,
    /// if any, so the caller can share it with hosts on other cores.
    pub fn take_learned(&mut self) -> Option<(Ipv4Addr, MacAddr)> {
        self.learned.take()
    }

    /// Stores a neighbour another core learned. Only on-link addresses
    /// other than ours are accepted.
    pub fn learn_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64) -> bool {
        self.is_neighbor(ip) && self.arp.learn(ip, mac, now_ms, true)
    }

    fn is_neighbor(&self, ip: Ipv4Addr) -> bool {
        self.link.contains(ip) && ip != self.cfg.ip
    }

    /// Learns from an ARP packet; `create` as in [`ArpCache::learn`].
    fn learn_from(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, create: bool) -> bool {
        let ok = self.is_neighbor(ip) && self.arp.learn(ip, mac, now_ms, create);
        if ok {
            self.learned = Some((ip, mac));
        }
        ok
    }

    /// The ARP cache (read-only, for counters and tests).
    pub fn arp_cache(&self) -> &ArpCache<ARP_CACHE_ENTRIES> {
        &self.arp
    }

    /// Handles one received frame; see [`Verdict`]. Never panics, whatever
    /// the bytes.
    pub fn process(&mut self, frame: &mut [u8], now_ms: u64) -> Verdict {
        match self.classify(frame, now_ms) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    fn classify(&mut self, frame: &mut [u8], now_ms: u64) -> Result<Verdict, DropReason> {
        let eth = Frame::new_checked(&*frame)?;
        if eth.src().is_multicast() {
            return Err(DropReason::BadSourceMac);
        }
        let dst = eth.dst();
        let to_us = dst == self.cfg.mac;
        match eth.ethertype() {
            EtherType::Arp if to_us || dst == MacAddr::BROADCAST => self.arp(frame, now_ms),
            EtherType::Ipv4 if to_us => self.ipv4(frame),
            EtherType::Unknown(_) => Err(DropReason::UnknownEthertype),
            _ => Err(DropReason::OtherMac),
        }
    }

    fn arp(&mut self, frame: &mut [u8], now_ms: u64) -> Result<Verdict, DropReason> {
        let pkt = arp::Packet::new_checked(&frame[ethernet::HEADER_LEN..])?;
        let req = arp::Repr::parse(&pkt).ok_or(DropReason::ArpUnsupported)?;
        let for_us = req.target_ip == self.cfg.ip;
        match req.operation {
            arp::Operation::Request if for_us => {
                self.learn_from(req.sender_ip, req.sender_mac, now_ms, true);
                Ok(self.emit_arp_reply(frame, &req))
            }
            arp::Operation::Request => {
                // RFC 826 merge: refresh a peer we know, but do not add one.
                self.learn_from(req.sender_ip, req.sender_mac, now_ms, false);
                Err(DropReason::ArpNotForUs)
            }
            // Replies to our address are answers to some core's request
            // (they may arrive on any core); others, gratuitous ones
            // included, only refresh what we already know.
            arp::Operation::Reply if self.learn_from(req.sender_ip, req.sender_mac, now_ms, for_us) => {
                Ok(Verdict::Learned)
            }
            arp::Operation::Reply => Err(DropReason::ArpUnsolicited),
            arp::Operation::Unknown(_) => Err(DropReason::ArpUnsupported),
        }
    }

    fn emit_arp_reply(&self, frame: &mut [u8], req: &arp::Repr) -> Verdict {
        let len = ethernet::HEADER_LEN + arp::PACKET_LEN;
        let frame = &mut frame[..len];
        let mut eth = Frame::new_unchecked(&mut *frame);
        eth.set_dst(req.sender_mac);
        eth.set_src(self.cfg.mac);
        let reply = arp::Repr {
            operation: arp::Operation::Reply,
            sender_mac: self.cfg.mac,
            sender_ip: self.cfg.ip,
            target_mac: req.sender_mac,
            target_ip: req.sender_ip,
        };
        reply.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
        Verdict::Transmit { len, kind: ReplyKind::Arp }
    }

    fn ipv4(&mut self, frame: &mut [u8]) -> Result<Verdict, DropReason> {
        let ip = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..])?;
        if !ip.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        if ip.has_options() {
            return Err(DropReason::Ipv4Options);
        }
        if ip.is_fragment() {
            return Err(DropReason::Ipv4Fragment);
        }
        if ip.dst() != self.cfg.ip {
            return Err(DropReason::Ipv4NotForUs);
        }
        if usize::from(ip.total_len()) > IPV4_MTU {
            return Err(DropReason::Ipv4TooBig);
        }
        if !self.is_unicast_peer(ip.src()) {
            return Err(DropReason::Ipv4BadSource);
        }
        match ip.protocol() {
            Protocol::Icmp => self.icmp(frame),
            Protocol::Udp => self.udp(frame),
            Protocol::Unknown(_) => Err(DropReason::IpProtoUnsupported),
        }
    }

    /// Whether `src` can be a host that talks to us: anything else is a
    /// forged or broken source that a reply (or a subscription's DELIVERs)
    /// could never reach.
    fn is_unicast_peer(&self, src: Ipv4Addr) -> bool {
        let reserved = u32::from(src) >> 28 == 0xf; // 240.0.0.0/4, with 255.255.255.255
        !(reserved
            || src.is_multicast()
            || src.is_unspecified()
            || src.is_loopback()
            || src == self.cfg.ip
            || Some(src) == self.link.broadcast())
    }

    fn icmp(&self, frame: &mut [u8]) -> Result<Verdict, DropReason> {
        let ip_len = {
            let ip = ipv4::Packet::new_unchecked(&frame[ethernet::HEADER_LEN..]);
            let icmp = icmp::Packet::new_checked(ip.payload())?;
            if icmp.message() != icmp::Message::EchoRequest || icmp.code() != 0 {
                return Err(DropReason::IcmpUnsupported);
            }
            if !icmp.verify_checksum() {
                return Err(DropReason::IcmpBadChecksum);
            }
            usize::from(ip.total_len())
        };
        let len = ethernet::HEADER_LEN + ip_len;
        let mut eth = Frame::new_unchecked(&mut frame[..len]);
        let peer_mac = eth.src();
        eth.set_dst(peer_mac);
        eth.set_src(self.cfg.mac);
        let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
        let peer_ip = ip.src();
        ip.set_src(self.cfg.ip);
        ip.set_dst(peer_ip);
        ip.set_ttl(DEFAULT_TTL);
        ip.fill_checksum();
        let mut echo = icmp::Packet::new_unchecked(ip.payload_mut());
        echo.set_message(icmp::Message::EchoReply);
        echo.fill_checksum();
        Ok(Verdict::Transmit { len, kind: ReplyKind::IcmpEcho })
    }

    fn udp(&self, frame: &[u8]) -> Result<Verdict, DropReason> {
        let eth = Frame::new_unchecked(frame);
        let ip = ipv4::Packet::new_unchecked(eth.payload());
        let dgram = udp::Packet::new_checked(ip.payload())?;
        if !dgram.verify_checksum(ip.src(), ip.dst()) {
            return Err(DropReason::UdpBadChecksum);
        }
        if dgram.dst_port() != self.cfg.service_port {
            return Err(DropReason::UdpOtherPort);
        }
        Ok(Verdict::Service(ServiceDatagram {
            src_mac: eth.src(),
            src_ip: ip.src(),
            src_port: dgram.src_port(),
            payload_offset: ethernet::HEADER_LEN + ip.header_len() + udp::HEADER_LEN,
            payload_len: dgram.payload().len(),
        }))
    }

    /// How to reach `dst`: route lookup, then the ARP cache for the next
    /// hop. A miss asks the caller to send a request (paced per address).
    pub fn resolve(&mut self, dst: Ipv4Addr, now_ms: u64) -> Resolution {
        let Some(next_hop) = self.routes.next_hop(dst) else {
            return Resolution::NoRoute;
        };
        match self.arp.lookup(next_hop, now_ms) {
            Lookup::Hit(mac) => Resolution::Mac(mac),
            Lookup::HitRefresh(mac) => Resolution::MacRefresh { mac, next_hop },
            Lookup::SendRequest => Resolution::SendArpRequest { next_hop },
            Lookup::Waiting => Resolution::Waiting,
        }
    }

    /// Writes a broadcast ARP request for `target` into `buf` and returns
    /// its length, or `None` if `buf` is too small.
    pub fn emit_arp_request(&self, buf: &mut [u8], target: Ipv4Addr) -> Option<usize> {
        let len = ethernet::HEADER_LEN + arp::PACKET_LEN;
        let mut eth = Frame::new_unchecked(buf.get_mut(..len)?);
        eth.set_dst(MacAddr::BROADCAST);
        eth.set_src(self.cfg.mac);
        eth.set_ethertype(EtherType::Arp);
        let req = arp::Repr {
            operation: arp::Operation::Request,
            sender_mac: self.cfg.mac,
            sender_ip: self.cfg.ip,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        };
        req.emit(&mut arp::Packet::new_unchecked(eth.payload_mut()));
        Some(len)
    }

    /// Writes Ethernet, IPv4 and UDP headers in front of a payload of
    /// `payload_len` bytes that the caller already placed at
    /// [`UDP_PAYLOAD_OFFSET`] in `buf`. Returns the frame length, or `None`
    /// if it does not fit `buf` or a 16-bit length.
    pub fn emit_udp(&self, buf: &mut [u8], to: UdpEndpoint, src_port: u16, payload_len: usize) -> Option<usize> {
        let udp_len = u16::try_from(udp::HEADER_LEN + payload_len).ok()?;
        let ip_len = u16::try_from(ipv4::HEADER_LEN + usize::from(udp_len)).ok()?;
        let len = ethernet::HEADER_LEN + usize::from(ip_len);
        let mut eth = Frame::new_unchecked(buf.get_mut(..len)?);
        eth.set_dst(to.mac);
        eth.set_src(self.cfg.mac);
        eth.set_ethertype(EtherType::Ipv4);
        let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
        ip.set_version_ihl_no_options();
        ip.set_tos(0);
        ip.set_total_len(ip_len);
        ip.set_ident(0);
        ip.set_dont_fragment();
        ip.set_ttl(DEFAULT_TTL);
        ip.set_protocol(Protocol::Udp);
        ip.set_src(self.cfg.ip);
        ip.set_dst(to.ip);
        ip.fill_checksum();
        let mut dgram = udp::Packet::new_unchecked(ip.payload_mut());
        dgram.set_src_port(src_port);
        dgram.set_dst_port(to.port);
        dgram.set_len(udp_len);
        dgram.fill_checksum(self.cfg.ip, to.ip);
        Some(len)
    }
}

/// Offset of the UDP payload in frames built by [`Host::emit_udp`].
pub const UDP_PAYLOAD_OFFSET: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Where [`Host::emit_udp`] sends: the resolved next-hop MAC and the
/// final address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEndpoint {
    /// Next-hop MAC from [`Host::resolve`].
    pub mac: MacAddr,
    /// Destination address.
    pub ip: Ipv4Addr,
    /// Destination port.
    pub port: u16,
}

#[cfg(test)]
mod tests;
