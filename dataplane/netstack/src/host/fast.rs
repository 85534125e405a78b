//! The common frame in one pass: a UDP datagram for the service, in an
//! IPv4 packet without options, to this port's MAC and address.
//!
//! [`Host::process`] tries this first. It reads the 42 header bytes at
//! their fixed offsets with one bounds check, instead of three views that
//! each check their buffer and call their getters; at one message per
//! datagram that was about a fifth of the worker's instructions
//! (`ci/cycle-budget.sh`). It accepts only what the full path accepts, and
//! with the same result (a model test below checks both on mutated
//! frames); anything else, including every drop, goes the full path,
//! which names the reason.

use super::{Host, ServiceDatagram, IPV4_MTU};
use crate::{checksum, ethernet, ipv4, udp, Ipv4Addr, MacAddr};

/// Where the IPv4 header starts.
const IP: usize = ethernet::HEADER_LEN;
/// Where the UDP header starts (an IPv4 header without options).
const UDP: usize = IP + ipv4::HEADER_LEN;
/// Where the service payload starts.
const PAYLOAD: usize = UDP + udp::HEADER_LEN;

/// Version 4, header length 5 words: no options.
const VERSION_IHL_PLAIN: u8 = 0x45;
/// IPv4's protocol number for UDP.
const PROTO_UDP: u8 = 17;
/// The "more fragments" flag and the fragment offset.
const FRAGMENT_BITS: u16 = 0x3fff;

impl Host {
    /// The [`Verdict::Service`](super::Verdict::Service) of a frame that
    /// passes every check of the full path; `None` for any other frame.
    #[inline]
    pub(super) fn fast_service(&self, frame: &[u8]) -> Option<ServiceDatagram> {
        let h: &[u8; PAYLOAD] = frame.get(..PAYLOAD)?.try_into().ok()?;
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        // Ethernet: to our MAC, from a unicast one, carrying IPv4.
        if h[0..6] != self.cfg.mac.0 || h[6] & 1 != 0 || be16(12) != 0x0800 {
            return None;
        }
        // IPv4: plain header, not a fragment, UDP, to our address, within
        // the frame and the MTU.
        let total = usize::from(be16(IP + 2));
        if h[IP] != VERSION_IHL_PLAIN
            || be16(IP + 6) & FRAGMENT_BITS != 0
            || h[IP + 9] != PROTO_UDP
            || h[IP + 16..IP + 20] != self.cfg.ip.octets()
            || !(ipv4::HEADER_LEN + udp::HEADER_LEN..=IPV4_MTU).contains(&total)
            || IP + total > frame.len()
        {
            return None;
        }
        let src_ip = Ipv4Addr::new(h[IP + 12], h[IP + 13], h[IP + 14], h[IP + 15]);
        if !self.is_unicast_peer(src_ip) || checksum::checksum(&h[IP..UDP]) != 0 {
            return None;
        }
        // UDP: to the service port, its length within the IPv4 packet, and
        // its checksum (unless the NIC checked it).
        let udp_len = usize::from(be16(UDP + 4));
        if be16(UDP + 2) != self.cfg.service_port || udp_len < udp::HEADER_LEN || udp_len > total - ipv4::HEADER_LEN {
            return None;
        }
        if !self.udp_checked
            && !udp::Packet::new_unchecked(&frame[UDP..UDP + udp_len]).verify_checksum(src_ip, self.cfg.ip)
        {
            return None;
        }
        Some(ServiceDatagram {
            src_mac: MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]),
            src_ip,
            src_port: be16(UDP),
            payload_offset: PAYLOAD,
            payload_len: udp_len - udp::HEADER_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{host, udp_frame, SERVICE_PORT};
    use super::super::Verdict;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_ordinary_datagram_takes_the_fast_path() {
        let f = udp_frame(SERVICE_PORT, b"payload");
        let d = host().fast_service(&f).expect("the common frame is the fast path's");
        assert_eq!((d.payload_offset, d.payload_len, d.src_port), (PAYLOAD, 7, 40000));
    }

    #[test]
    fn a_packet_over_the_mtu_is_the_full_paths_to_drop() {
        let at_mtu = IPV4_MTU - ipv4::HEADER_LEN - udp::HEADER_LEN;
        assert!(host().fast_service(&udp_frame(SERVICE_PORT, &std::vec![7u8; at_mtu])).is_some());
        let mut over = udp_frame(SERVICE_PORT, &std::vec![7u8; at_mtu + 1]);
        assert_eq!(host().fast_service(&over), None);
        assert_eq!(host().process(&mut over, 0), Verdict::Drop(super::super::DropReason::Ipv4TooBig));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The fast path's answer is the full path's: it takes only frames
        /// the full path hands to the service, and gives the same datagram.
        /// Mutations land in the headers (and the first payload bytes), and
        /// the frame may be cut or padded, as a NIC pads.
        #[test]
        fn agrees_with_the_full_path(
            flips in proptest::collection::vec((0..50usize, any::<u8>()), 0..4),
            len_delta in -12i32..12,
            nic_checked in any::<bool>(),
            refill in 0..3u8,
        ) {
            let mut f = udp_frame(SERVICE_PORT, b"a payload of some length");
            for (at, v) in flips {
                f[at] = v;
            }
            // Most flips break a checksum, which both paths see first: also
            // check the fields behind it, with the IPv4 checksum made right
            // again and the UDP one right or absent (0).
            if refill > 0 {
                f[IP + 10..IP + 12].fill(0);
                let c = checksum::checksum(&f[IP..UDP]);
                f[IP + 10..IP + 12].copy_from_slice(&c.to_be_bytes());
            }
            if refill > 1 {
                f[UDP + 6..UDP + 8].fill(0);
            }
            let len = usize::try_from(f.len() as i32 + len_delta).unwrap_or(0);
            f.resize(len, 0);
            let mut h = host();
            h.udp_checked = nic_checked;
            let fast = h.fast_service(&f);
            let full = match h.classify(&mut f.clone(), 0) {
                Ok(v) => v,
                Err(reason) => Verdict::Drop(reason),
            };
            match fast {
                Some(d) => prop_assert_eq!(full, Verdict::Service(d)),
                None => prop_assert!(!matches!(full, Verdict::Service(_)), "the fast path refused {:?}", full),
            }
        }
    }
}
