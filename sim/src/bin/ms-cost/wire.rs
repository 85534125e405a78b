//! The worker's side of the link as the engine's `Io`: the port's host, a
//! fixed pool of frame buffers (mbufs), and the dataplane's egress
//! (resolve, `Host::emit_udp`, TX burst), where a transmit recycles the
//! buffer.

use crate::frames::{DUT_IP, DUT_MAC, GEN_IP, GEN_MAC, SERVICE_PORT};
use ms_netstack::host::{Host, HostConfig, Resolution, UdpEndpoint, UDP_PAYLOAD_OFFSET};
use ms_netstack::{ethernet, ipv4, udp, Ipv4Addr, MacAddr};
use ms_proto::{Addr, From, Io, Mail, Now};
use ms_wire::{Frame, DATAGRAM_MAX};

/// Transmit buffers: at most one DELIVER per subscriber is pending.
const TX_BUFFERS: usize = 256;

/// What the transmit side saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxTally {
    /// DELIVER datagrams sent.
    pub delivers: u64,
    /// Messages in them.
    pub delivered: u64,
    /// Messages in DELIVERs that could not leave.
    pub dropped: u64,
    /// Control datagrams (ACK, ERROR, BACKPRESSURE) sent.
    pub replies: u64,
    /// Messages in DELIVERs that `--verify` checked.
    pub verified: u64,
    /// DELIVERs `--verify` refused.
    pub bad: u64,
}

/// The port and its buffers.
pub struct Wire {
    /// The appliance's host on the port (it also parses received frames).
    pub host: Host,
    bufs: Vec<Vec<u8>>,
    free: Vec<usize>,
    pub now_ms: u64,
    pub tally: TxTally,
    /// Setup only: control replies copied out to be read.
    pub replies: Option<Vec<Vec<u8>>>,
    verify: bool,
}

impl Wire {
    /// The appliance's port (ms-bench's addresses) with every buffer free.
    pub fn new(verify: bool, now_ms: u64) -> Wire {
        let host = Host::new(HostConfig {
            mac: DUT_MAC,
            ip: DUT_IP,
            prefix_len: 24,
            service_port: SERVICE_PORT,
            arp: Default::default(),
            udp_checksum: Default::default(),
        });
        Wire {
            host,
            bufs: vec![vec![0; UDP_PAYLOAD_OFFSET + DATAGRAM_MAX]; TX_BUFFERS],
            free: (0..TX_BUFFERS).rev().collect(),
            now_ms,
            tally: TxTally::default(),
            replies: None,
            verify,
        }
    }
}

impl Io for Wire {
    type Buf = usize;

    #[inline]
    fn alloc(&mut self) -> Option<usize> {
        self.free.pop()
    }

    #[inline]
    fn payload(&mut self, buf: &usize) -> &mut [u8] {
        &mut self.bufs[*buf][UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + DATAGRAM_MAX]
    }

    /// Not inlined, so the profile splits the engine from its egress.
    #[inline(never)]
    fn send(&mut self, to: Addr, buf: usize, len: usize, messages: u32) -> bool {
        let Some(mac) = tx_resolve(&mut self.host, to.ip, self.now_ms) else {
            // The dataplane would hold it for address resolution; here
            // every peer is known, so this is a harness bug (counted).
            return self.drop(buf, messages);
        };
        let ep = UdpEndpoint { mac, ip: to.ip, port: to.port };
        match tx_emit_udp(&self.host, &mut self.bufs[buf], ep, len) {
            Some(frame_len) => {
                tx_burst(self, buf, frame_len, messages);
                true
            }
            None => self.drop(buf, messages),
        }
    }

    fn free(&mut self, buf: usize) {
        self.free.push(buf);
    }

    /// One worker: nothing is ever handed to another.
    fn post(&mut self, _worker: u32, _mail: Mail) -> bool {
        false
    }

    fn broadcast(&mut self, _mail: Mail) {}

    fn learn(&mut self, from: From, now: Now) {
        self.host.learn_neighbor(from.addr.ip, MacAddr(from.mac), now.ms);
    }
}

impl Wire {
    fn drop(&mut self, buf: usize, messages: u32) -> bool {
        self.free.push(buf);
        self.tally.dropped += u64::from(messages);
        false
    }
}

/// Stage: route and neighbour lookup for a datagram's destination.
#[inline(never)]
fn tx_resolve(host: &mut Host, ip: Ipv4Addr, now_ms: u64) -> Option<MacAddr> {
    match host.resolve(ip, now_ms) {
        Resolution::Mac(mac) | Resolution::MacRefresh { mac, .. } => Some(mac),
        Resolution::Unresolved { .. } | Resolution::NoRoute => None,
    }
}

/// Stage: Ethernet, IPv4 and UDP headers, with both checksums.
#[inline(never)]
fn tx_emit_udp(host: &Host, frame: &mut [u8], to: UdpEndpoint, payload_len: usize) -> Option<usize> {
    host.emit_udp(frame, to, SERVICE_PORT, payload_len)
}

/// Stage: the TX burst, here the buffer back to the pool (plus the checks
/// of `--verify`, and setup's copy of control replies).
#[inline(never)]
fn tx_burst(io: &mut Wire, buf: usize, frame_len: usize, messages: u32) {
    let frame = &io.bufs[buf][..frame_len];
    if messages == 0 {
        io.tally.replies += 1;
        if let Some(r) = io.replies.as_mut() {
            r.push(frame[UDP_PAYLOAD_OFFSET..].to_vec());
        }
    } else {
        io.tally.delivers += 1;
        io.tally.delivered += u64::from(messages);
        if io.verify {
            match check_deliver(frame) {
                Some(n) if n == u64::from(messages) => io.tally.verified += n,
                _ => io.tally.bad += 1,
            }
        }
    }
    io.free.push(buf);
}

/// What a subscriber checks of a DELIVER frame: addressed to it, both
/// checksums right, a DELIVER. The number of messages in it.
fn check_deliver(frame: &[u8]) -> Option<u64> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let dgram = udp::Packet::new_checked(ip.payload()).ok()?;
    let addressed = eth.dst() == GEN_MAC && ip.dst() == GEN_IP && dgram.src_port() == SERVICE_PORT;
    if !addressed || !ip.verify_checksum() || !dgram.verify_checksum(ip.src(), ip.dst()) {
        return None;
    }
    match ms_wire::parse(dgram.payload()) {
        Ok(Frame::Deliver(d)) => Some(d.len() as u64),
        _ => None,
    }
}
