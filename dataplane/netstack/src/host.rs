//! What a host on the link does with one received frame: answer ARP for
//! its address and learn peers, answer ICMP echo, hand UDP for the service
//! port to the caller, and drop everything else with a named reason.
//!
//! Replies are written in place into the received buffer, so the caller
//! transmits the same packet buffer it received (no allocation, no copy).
//! Egress to peers goes through [`Host::resolve`], which applies the static
//! routes and the neighbour table; packets for a neighbour being resolved
//! wait in [`Host::hold`] and come back from [`Host::take_ready`].
//!
//! Who may change a neighbour's MAC (see docs/architecture.md, "Neighbours"):
//! static entries never change; an answer to a request some core of this
//! port made (recorded in the shared [`Solicitations`]) replaces a learned
//! MAC; every other claim (a request for us, a gratuitous or unsolicited
//! reply, the source MAC of a datagram) may add an unknown neighbour or fill
//! an unresolved one but never changes a usable MAC, unless
//! `accept_unsolicited` lets ARP do so. Refusals are counted as drops.

use crate::arp_cache::{ArpCache, Claim, HoldRefused, Learned, Lookup, Parked, Sizes, SweepEvent, Timers};
use crate::ethernet::{self, EtherType, Frame};
use crate::ipv4::{self, Protocol};
use crate::route::{Prefix, RouteError, RouteTable};
use crate::solicit::Solicitations;
use crate::{arp, icmp, udp, Ipv4Addr, MacAddr, WireError};
use alloc::sync::Arc;

/// The largest IPv4 packet the appliance sends (and answers): a standard
/// Ethernet MTU. The wire protocol's datagrams are sized from it.
pub use ms_limits::IPV4_MTU;

/// Static routes per port.
pub use ms_limits::ROUTES_MAX;

// The wire protocol's datagram size assumes these header lengths.
const _: () = assert!(ipv4::HEADER_LEN == ms_limits::IPV4_HEADER_LEN);
const _: () = assert!(udp::HEADER_LEN == ms_limits::UDP_HEADER_LEN);
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
    ArpUnsolicited => "arp_unsolicited", "ARP reply to no outstanding request of ours (refused, learns nothing).";
    ArpConflict => "arp_conflict", "ARP claiming another MAC for a static or usable neighbour (refused; the entry keeps its MAC).";
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
    /// An ARP reply to one of our requests (or, if the config accepts
    /// them, an unsolicited one): learned, nothing to send.
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
    /// No usable MAC for the next hop: hold the packet with
    /// [`Host::hold`], and when `ask` send the ARP request
    /// [`Host::emit_arp_request`] builds for `next_hop` (paced: at most one
    /// per address per request interval, whichever core asks).
    Unresolved {
        /// The on-link address to ask for.
        next_hop: Ipv4Addr,
        /// A request is due now.
        ask: bool,
    },
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
    /// Neighbour table settings.
    pub arp: ArpSettings,
    /// What goes in the UDP checksum of datagrams [`Host::emit_udp`] builds.
    pub udp_checksum: TxChecksum,
}

/// What [`Host::emit_udp`] writes into the UDP checksum field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxChecksum {
    /// The checksum, computed over the whole datagram.
    #[default]
    Full,
    /// The pseudo-header's sum only, for a NIC that adds the rest
    /// (checksum offload: what DPDK's drivers expect in the field).
    PseudoHeader,
    /// Zero: no checksum, which IPv4 allows (RFC 768).
    Zero,
}

/// Neighbour table settings, from the config's `arp` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArpSettings {
    /// Expiry and request timers.
    pub timers: Timers,
    /// Table and queue sizes.
    pub sizes: Sizes,
    /// Let unsolicited replies and gratuitous ARP replace a usable MAC
    /// (failover setups); static entries still win.
    pub accept_unsolicited: bool,
}

/// A neighbour learned or refreshed by the last [`Host::process`], for
/// the other cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// How it was learned here, so the other cores weigh it the same: an
    /// answer to our request, an override the config allows (failover by
    /// gratuitous ARP) or an unverified claim (and whether it may add).
    pub claim: Claim,
}

/// One host: identity, neighbour table and routes. One per worker per
/// port; only the record of outstanding requests is shared between the
/// cores of a port.
#[derive(Debug)]
pub struct Host {
    cfg: HostConfig,
    arp: ArpCache,
    asked: Arc<Solicitations>,
    routes: RouteTable<ROUTES_MAX>,
    link: Prefix,
    /// The link's directed broadcast (checked against every source).
    link_broadcast: Option<Ipv4Addr>,
    learned: Option<Shared>,
    /// The frame being processed had its UDP checksum checked by the NIC.
    udp_checked: bool,
}

impl Host {
    /// A host with an empty neighbour table, only its on-link route, and a
    /// record of requests of its own (one core per port).
    pub fn new(cfg: HostConfig) -> Self {
        let asked = Arc::new(Solicitations::new(cfg.arp.sizes.neighbors_max));
        Self::with_shared(cfg, asked)
    }

    /// As [`Host::new`], sharing `asked` with the hosts of the same port on
    /// other cores (so a reply is accepted whichever core asked).
    pub fn with_shared(cfg: HostConfig, asked: Arc<Solicitations>) -> Self {
        let link = Prefix { addr: cfg.ip, len: cfg.prefix_len };
        let arp = ArpCache::new(cfg.arp.timers, cfg.arp.sizes);
        let link_broadcast = link.broadcast();
        let routes = RouteTable::new(link);
        Host { cfg, arp, asked, routes, link, link_broadcast, learned: None, udp_checked: false }
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
    pub fn take_learned(&mut self) -> Option<Shared> {
        self.learned.take()
    }

    /// The source MAC of a datagram from on-link `ip`: an unverified claim
    /// (it may add or fill an entry, never change a usable MAC), so a
    /// forged datagram cannot divert an existing neighbour.
    pub fn learn_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64) -> Learned {
        self.claim(ip, mac, now_ms, Claim::Unverified { create: true })
    }

    /// A neighbour another core of this port learned, with the weight it
    /// had there.
    pub fn learn_shared(&mut self, n: Shared, now_ms: u64) -> Learned {
        self.claim(n.ip, n.mac, now_ms, n.claim)
    }

    /// Adds a static neighbour (startup). False when `ip` is not on the
    /// port's subnet, is ours, or the table has no room.
    pub fn add_static(&mut self, ip: Ipv4Addr, mac: MacAddr) -> bool {
        self.is_neighbor(ip) && self.arp.add_static(ip, mac)
    }

    fn is_neighbor(&self, ip: Ipv4Addr) -> bool {
        self.link.contains(ip) && ip != self.cfg.ip
    }

    fn claim(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, claim: Claim) -> Learned {
        if !self.is_neighbor(ip) {
            return Learned::Ignored;
        }
        self.arp.learn(ip, mac, now_ms, claim)
    }

    /// An unverified ARP claim, as the config weighs it.
    fn arp_claim(&self, create: bool) -> Claim {
        if self.cfg.arp.accept_unsolicited {
            Claim::Override { create }
        } else {
            Claim::Unverified { create }
        }
    }

    /// Learns from an ARP packet and notes it for the other cores.
    fn learn_from(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64, claim: Claim) -> Learned {
        let r = self.claim(ip, mac, now_ms, claim);
        if r == Learned::Stored {
            self.learned = Some(Shared { ip, mac, claim });
        }
        r
    }

    /// The neighbour table (read-only, for counters and tests).
    pub fn arp_cache(&self) -> &ArpCache {
        &self.arp
    }

    /// How long after a request its reply is accepted.
    fn reply_window_ms(&self) -> u64 {
        self.cfg.arp.timers.request_interval_ms.max(1000)
    }

    /// Handles one received frame; see [`Verdict`]. Never panics, whatever
    /// the bytes.
    pub fn process(&mut self, frame: &mut [u8], now_ms: u64) -> Verdict {
        if let Some(d) = self.fast_service(frame) {
            return Verdict::Service(d);
        }
        match self.classify(frame, now_ms) {
            Ok(v) => v,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// As [`Host::process`], for a frame whose UDP checksum the NIC found
    /// good (when `udp_checksum_good`): it is not computed again.
    pub fn process_checked(&mut self, frame: &mut [u8], now_ms: u64, udp_checksum_good: bool) -> Verdict {
        self.udp_checked = udp_checksum_good;
        let verdict = self.process(frame, now_ms);
        self.udp_checked = false;
        verdict
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
        let (ip, mac) = (req.sender_ip, req.sender_mac);
        match req.operation {
            // The asker is about to talk to us: it may add itself, but a
            // request cannot change a usable MAC (that would be a forged
            // reply by another name). A conflicting asker is not answered.
            arp::Operation::Request if for_us => match self.learn_from(ip, mac, now_ms, self.arp_claim(true)) {
                Learned::Conflict => Err(DropReason::ArpConflict),
                _ => Ok(self.emit_arp_reply(frame, &req)),
            },
            // RFC 826 merge (gratuitous requests included): refresh a peer
            // we know, but do not add one.
            arp::Operation::Request => match self.learn_from(ip, mac, now_ms, self.arp_claim(false)) {
                Learned::Conflict => Err(DropReason::ArpConflict),
                _ => Err(DropReason::ArpNotForUs),
            },
            arp::Operation::Reply => self.arp_reply(ip, mac, for_us, now_ms),
            arp::Operation::Unknown(_) => Err(DropReason::ArpUnsupported),
        }
    }

    /// A reply is learned as an answer only if some core of this port asked
    /// for its sender and nobody answered yet; anything else is
    /// unsolicited (gratuitous replies included).
    fn arp_reply(&mut self, ip: Ipv4Addr, mac: MacAddr, for_us: bool, now_ms: u64) -> Result<Verdict, DropReason> {
        let answered = self.is_neighbor(ip) && self.asked.take_answer(ip, now_ms, self.reply_window_ms());
        let claim = match answered {
            true => Claim::Solicited,
            false if self.cfg.arp.accept_unsolicited => Claim::Override { create: for_us },
            // Not learned; a claim against a usable MAC is a conflict.
            false => {
                return match self.arp.peek(ip, now_ms) {
                    Some(known) if known != mac => Err(DropReason::ArpConflict),
                    _ => Err(DropReason::ArpUnsolicited),
                }
            }
        };
        match self.learn_from(ip, mac, now_ms, claim) {
            Learned::Stored => Ok(Verdict::Learned),
            Learned::Conflict => Err(DropReason::ArpConflict),
            Learned::Ignored => {
                if answered {
                    // No room to store it: the answer is not spent.
                    self.asked.give_back(ip);
                }
                Err(DropReason::ArpUnsolicited)
            }
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
            || Some(src) == self.link_broadcast)
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
        if !self.udp_checked && !dgram.verify_checksum(ip.src(), ip.dst()) {
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

    /// How to reach `dst`: route lookup, then the neighbour table for the
    /// next hop. Requests are paced per address across the port's cores.
    pub fn resolve(&mut self, dst: Ipv4Addr, now_ms: u64) -> Resolution {
        let Some(next_hop) = self.routes.next_hop(dst) else {
            return Resolution::NoRoute;
        };
        match self.arp.lookup(next_hop, now_ms) {
            Lookup::Hit(mac) => Resolution::Mac(mac),
            Lookup::HitRefresh(mac) if self.ask(next_hop, now_ms) => Resolution::MacRefresh { mac, next_hop },
            Lookup::HitRefresh(mac) => Resolution::Mac(mac),
            Lookup::Unresolved => Resolution::Unresolved { next_hop, ask: self.ask(next_hop, now_ms) },
            Lookup::Full => Resolution::Unresolved { next_hop, ask: false },
        }
    }

    /// True when a request for `ip` may go out now (and records it).
    fn ask(&self, ip: Ipv4Addr, now_ms: u64) -> bool {
        self.asked.try_ask(ip, now_ms, self.cfg.arp.timers.request_interval_ms)
    }

    /// Holds a packet for unresolved `next_hop` (after
    /// [`Resolution::Unresolved`]); on refusal the caller drops it.
    pub fn hold(&mut self, next_hop: Ipv4Addr, p: Parked, now_ms: u64) -> Result<(), HoldRefused> {
        self.arp.hold(next_hop, p, now_ms)
    }

    /// Re-tags the packet held last for `next_hop`.
    pub fn retag_last_held(&mut self, next_hop: Ipv4Addr, tag: u32) {
        self.arp.retag_last(next_hop, tag);
    }

    /// True when held packets wait to be sent (see [`Host::take_ready`]).
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.arp.has_ready()
    }

    /// Packets whose neighbour resolved, one neighbour at a time: its MAC
    /// and how many packets were written to `out` (room for
    /// [`crate::arp_cache::QUEUE_MAX`]), in the order they were held.
    pub fn take_ready(&mut self, out: &mut [Parked]) -> Option<(MacAddr, usize)> {
        self.arp.take_ready(out)
    }

    /// Looks at up to `budget` unresolved neighbours holding packets:
    /// `ask(ip)` for those due a new request (paced), `drop(p)` for the
    /// packets of those that stayed silent through every retry.
    pub fn sweep(&mut self, now_ms: u64, budget: usize, mut ask: impl FnMut(Ipv4Addr), mut drop: impl FnMut(Parked)) {
        let (asked, interval) = (&self.asked, self.cfg.arp.timers.request_interval_ms);
        self.arp.sweep(now_ms, budget, |e| match e {
            SweepEvent::Ask(ip) if asked.try_ask(ip, now_ms, interval) => ask(ip),
            SweepEvent::Ask(_) => {}
            SweepEvent::Drop(p) => drop(p),
        });
    }

    /// Hands back every held packet (shutdown).
    pub fn drain_held(&mut self, each: impl FnMut(Parked)) {
        self.arp.drain_held(each);
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
        match self.cfg.udp_checksum {
            TxChecksum::Full => dgram.fill_checksum(self.cfg.ip, to.ip),
            TxChecksum::PseudoHeader => dgram.fill_pseudo_header(self.cfg.ip, to.ip),
            TxChecksum::Zero => dgram.set_checksum(0),
        }
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

mod fast;
#[cfg(test)]
mod tests;
