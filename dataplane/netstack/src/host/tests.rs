use super::*;
use proptest::prelude::*;
use std::vec::Vec;

const OUR_MAC: MacAddr = MacAddr([0x02, 0x4d, 0x53, 0x00, 0x00, 0x01]);
const PEER_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub(super) const SERVICE_PORT: u16 = 9000;

const TIMERS: Timers = Timers { entry_ttl_ms: 1000, request_interval_ms: 100, request_retries: 3 };

fn config(accept_unsolicited: bool) -> HostConfig {
    HostConfig {
        mac: OUR_MAC,
        ip: OUR_IP,
        prefix_len: 24,
        service_port: SERVICE_PORT,
        arp: ArpSettings { timers: TIMERS, sizes: Sizes::default(), accept_unsolicited },
        udp_checksum: TxChecksum::Full,
    }
}

pub(super) fn host() -> Host {
    Host::new(config(false))
}

/// "Who has 198.18.0.1? Tell 198.18.0.2", padded to 60 bytes like a NIC.
fn arp_request() -> Vec<u8> {
    let mut f = hex("ffffffffffff 020000000002 0806 0001 0800 06 04 0001 020000000002 c6120002 000000000000 c6120001");
    f.resize(60, 0);
    f
}

/// Echo request 198.18.0.2 -> 198.18.0.1, id 0x1234 seq 1, data "abcd",
/// with both checksums computed by hand.
fn ping() -> Vec<u8> {
    hex(concat!(
        "024d53000001 020000000002 0800",
        "4500 0020 0001 4000 4001 aeb4 c6120002 c6120001",
        "0800 2104 1234 0001 61626364"
    ))
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|c| u8::from_str_radix(core::str::from_utf8(c).unwrap(), 16).unwrap()).collect()
}

#[test]
fn arp_request_for_us_is_answered_in_place() {
    let mut h = host();
    let mut f = arp_request();
    let v = h.process(&mut f, 0);
    assert_eq!(v, Verdict::Transmit { len: 42, kind: ReplyKind::Arp });
    let want = hex("020000000002 024d53000001 0806 0001 0800 06 04 0002 024d53000001 c6120001 020000000002 c6120002");
    assert_eq!(&f[..42], &want[..]);
    assert_eq!(h.resolve(PEER_IP, 1), Resolution::Mac(PEER_MAC), "the asker is learned");
}

#[test]
fn arp_request_for_others_is_dropped_and_not_learned() {
    let mut h = host();
    let mut f = arp_request();
    f[41] = 9; // target 198.18.0.9
    assert_eq!(h.process(&mut f, 0), Verdict::Drop(DropReason::ArpNotForUs));
    assert!(!h.arp_cache().contains(PEER_IP));
}

/// "198.18.0.2 is at 02:00:00:00:00:02", unicast to us.
fn reply_from_peer() -> Vec<u8> {
    hex("024d53000001 020000000002 0806 0001 0800 06 04 0002 020000000002 c6120002 024d53000001 c6120001")
}

/// The same reply claiming 198.18.0.2 for the forger's MAC 02:..:66.
fn forged_reply() -> Vec<u8> {
    hex("024d53000001 020000000066 0806 0001 0800 06 04 0002 020000000066 c6120002 024d53000001 c6120001")
}

/// Gratuitous ARP reply (sender = target = .2, broadcast) from the forger.
fn forged_garp() -> Vec<u8> {
    hex("ffffffffffff 020000000066 0806 0001 0800 06 04 0002 020000000066 c6120002 ffffffffffff c6120002")
}

/// Gratuitous ARP request from the forger.
fn forged_garp_request() -> Vec<u8> {
    let mut f = forged_garp();
    f[21] = 1;
    f
}

const FORGED_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x66]);

#[test]
fn answers_to_our_requests_are_learned_and_shared() {
    let mut h = host();
    assert_eq!(h.resolve(PEER_IP, 0), Resolution::Unresolved { next_hop: PEER_IP, ask: true });
    assert_eq!(h.resolve(PEER_IP, 10), Resolution::Unresolved { next_hop: PEER_IP, ask: false }, "paced");
    assert_eq!(h.process(&mut reply_from_peer(), 20), Verdict::Learned);
    let shared = Shared { ip: PEER_IP, mac: PEER_MAC, claim: Claim::Solicited };
    assert_eq!(h.take_learned(), Some(shared), "shared with other cores");
    assert_eq!(h.take_learned(), None);
    assert_eq!(h.resolve(PEER_IP, 30), Resolution::Mac(PEER_MAC));
    assert_eq!(h.resolve(PEER_IP, 1020), Resolution::MacRefresh { mac: PEER_MAC, next_hop: PEER_IP }, "expired");
}

#[test]
fn replies_nobody_asked_for_are_refused() {
    let mut h = host();
    assert_eq!(h.process(&mut reply_from_peer(), 0), Verdict::Drop(DropReason::ArpUnsolicited));
    assert_eq!(h.process(&mut forged_garp(), 0), Verdict::Drop(DropReason::ArpUnsolicited));
    assert!(!h.arp_cache().contains(PEER_IP));
    assert_eq!(h.take_learned(), None);
}

/// The attack: one forged unicast reply (or gratuitous ARP) for a
/// subscriber's address must not divert it, and each attempt is counted.
#[test]
fn forged_arp_does_not_divert_a_confirmed_neighbour() {
    let mut h = host();
    assert!(matches!(h.resolve(PEER_IP, 0), Resolution::Unresolved { ask: true, .. }));
    assert_eq!(h.process(&mut reply_from_peer(), 1), Verdict::Learned);
    let conflict = Verdict::Drop(DropReason::ArpConflict);
    assert_eq!(h.process(&mut forged_reply(), 2), conflict, "the answer was already taken");
    assert_eq!(h.process(&mut forged_garp(), 3), conflict);
    assert_eq!(h.process(&mut forged_garp_request(), 4), conflict);
    let mut asker = arp_request();
    asker[6..12].copy_from_slice(&FORGED_MAC.0);
    asker[22..28].copy_from_slice(&FORGED_MAC.0);
    assert_eq!(h.process(&mut asker, 5), conflict, "a request for us cannot change it either");
    assert_eq!(h.learn_neighbor(PEER_IP, FORGED_MAC, 6), Learned::Conflict, "nor a datagram's source MAC");
    assert_eq!(h.resolve(PEER_IP, 7), Resolution::Mac(PEER_MAC));
    // The refresh after expiry is a new request: its answer may move it.
    assert!(matches!(h.resolve(PEER_IP, 1001), Resolution::MacRefresh { .. }));
    assert_eq!(h.process(&mut forged_reply(), 1002), Verdict::Learned);
    assert_eq!(h.resolve(PEER_IP, 1003), Resolution::Mac(FORGED_MAC));
}

#[test]
fn the_config_may_accept_unsolicited_arp_for_failover() {
    let mut h = Host::new(config(true));
    assert_eq!(h.learn_neighbor(PEER_IP, PEER_MAC, 0), Learned::Stored);
    assert_eq!(h.process(&mut forged_garp(), 5), Verdict::Learned, "failover: the new MAC replaces the old");
    assert_eq!(h.resolve(PEER_IP, 6), Resolution::Mac(FORGED_MAC));
    assert!(h.add_static(Ipv4Addr::new(198, 18, 0, 3), PEER_MAC));
    let mut garp3 = forged_garp();
    garp3[31] = 3;
    garp3[41] = 3;
    assert_eq!(h.process(&mut garp3, 7), Verdict::Drop(DropReason::ArpConflict), "static entries still win");
}

/// Regression (review): an override accepted on the core that received
/// the gratuitous ARP was posted to the others as an unverified claim, so
/// only that core failed over.
#[test]
fn a_failover_reaches_every_core_of_the_port() {
    let asked = Arc::new(Solicitations::new(64));
    let mut a = Host::with_shared(config(true), Arc::clone(&asked));
    let mut b = Host::with_shared(config(true), asked);
    for h in [&mut a, &mut b] {
        assert_eq!(h.learn_neighbor(PEER_IP, PEER_MAC, 0), Learned::Stored);
    }
    assert_eq!(a.process(&mut forged_garp(), 5), Verdict::Learned);
    let shared = a.take_learned().expect("posted to the other cores");
    assert_eq!(b.learn_shared(shared, 6), Learned::Stored);
    assert_eq!(b.resolve(PEER_IP, 7), Resolution::Mac(FORGED_MAC), "the other core failed over too");
    // Without the config switch, the same claim changes nothing anywhere.
    let mut c = Host::new(config(false));
    assert_eq!(c.learn_neighbor(PEER_IP, PEER_MAC, 0), Learned::Stored);
    let unverified = Shared { claim: Claim::Unverified { create: true }, ..shared };
    assert_eq!(c.learn_shared(unverified, 6), Learned::Conflict);
    assert_eq!(c.resolve(PEER_IP, 7), Resolution::Mac(PEER_MAC));
}

#[test]
fn static_neighbours_resolve_without_asking() {
    let mut h = host();
    assert!(h.add_static(PEER_IP, PEER_MAC));
    assert!(!h.add_static(Ipv4Addr::new(198, 19, 0, 1), PEER_MAC), "off-link");
    assert_eq!(h.resolve(PEER_IP, 1_000_000), Resolution::Mac(PEER_MAC));
    assert_eq!(h.process(&mut forged_garp(), 1), Verdict::Drop(DropReason::ArpConflict));
}

/// The answer to one core's request may arrive on another core of the
/// same port: the shared record of requests makes it an answer there too.
#[test]
fn an_answer_is_accepted_on_any_core_of_the_port() {
    let asked = Arc::new(Solicitations::new(64));
    let mut a = Host::with_shared(config(false), Arc::clone(&asked));
    let mut b = Host::with_shared(config(false), asked);
    assert!(matches!(a.resolve(PEER_IP, 0), Resolution::Unresolved { ask: true, .. }));
    assert!(matches!(b.resolve(PEER_IP, 1), Resolution::Unresolved { ask: false, .. }), "one request per port");
    assert_eq!(b.process(&mut reply_from_peer(), 2), Verdict::Learned);
    let shared = b.take_learned().unwrap();
    assert_eq!(a.learn_shared(shared, 3), Learned::Stored);
    assert_eq!(a.resolve(PEER_IP, 4), Resolution::Mac(PEER_MAC));
    assert_eq!(a.process(&mut forged_reply(), 5), Verdict::Drop(DropReason::ArpConflict));
}

/// Many packets to an unresolved neighbour: one request per interval, the
/// first `queue_max` held and sent in order once it answers, the rest
/// refused; an eviction of its entry would not reset the pacing.
#[test]
fn unresolved_neighbours_are_asked_once_per_interval_and_hold_packets() {
    let mut h = host();
    let mut requests = 0;
    let mut held = 0;
    for t in 0..1_000u64 {
        let Resolution::Unresolved { next_hop, ask } = h.resolve(PEER_IP, t / 10) else { panic!() };
        requests += usize::from(ask);
        if h.hold(next_hop, Parked { handle: t as usize, tag: 1 }, t / 10).is_ok() {
            held += 1;
        }
    }
    assert_eq!(requests, 1, "100 ms of deliveries, one request");
    assert_eq!(held, Sizes::default().queue_max);
    let mut asks = 0;
    h.sweep(100, 16, |_| asks += 1, |_| panic!("not timed out yet"));
    assert_eq!(asks, 1, "the sweep asks again after the interval");
    h.sweep(150, 16, |_| asks += 1, |_| panic!());
    assert_eq!(asks, 1, "and not before the next one");
    assert_eq!(h.process(&mut reply_from_peer(), 160), Verdict::Learned);
    let mut out = [Parked { handle: 0, tag: 0 }; crate::arp_cache::QUEUE_MAX];
    assert_eq!(h.take_ready(&mut out), Some((PEER_MAC, held)));
    assert_eq!(out[..held].iter().map(|p| p.handle).collect::<Vec<_>>(), (0..held).collect::<Vec<_>>());
}

#[test]
fn silent_neighbours_give_up_their_packets() {
    let mut h = host();
    assert!(matches!(h.resolve(PEER_IP, 0), Resolution::Unresolved { ask: true, .. }));
    h.hold(PEER_IP, Parked { handle: 7, tag: 3 }, 0).unwrap();
    let (mut asks, mut dropped) = (0, Vec::new());
    for t in (0..=300).step_by(10) {
        h.sweep(t, 16, |_| asks += 1, |p| dropped.push(p));
    }
    assert_eq!(asks, 2, "retries at 100 and 200 ms");
    assert_eq!(dropped, [Parked { handle: 7, tag: 3 }], "dropped after 3 intervals");
}

#[test]
fn datagram_source_macs_add_and_fill_but_never_divert() {
    let mut h = host();
    assert_eq!(h.learn_neighbor(PEER_IP, PEER_MAC, 0), Learned::Stored);
    assert_eq!(h.resolve(PEER_IP, 1), Resolution::Mac(PEER_MAC));
    assert_eq!(h.learn_neighbor(PEER_IP, FORGED_MAC, 2), Learned::Conflict);
    let other = Ipv4Addr::new(198, 18, 0, 3);
    assert!(matches!(h.resolve(other, 3), Resolution::Unresolved { .. }));
    h.hold(other, Parked { handle: 1, tag: 0 }, 3).unwrap();
    assert_eq!(h.learn_neighbor(other, PEER_MAC, 4), Learned::Stored, "fills an unresolved entry");
    let mut out = [Parked { handle: 0, tag: 0 }; crate::arp_cache::QUEUE_MAX];
    assert_eq!(h.take_ready(&mut out), Some((PEER_MAC, 1)));
    assert_eq!(h.learn_neighbor(Ipv4Addr::new(198, 19, 0, 1), PEER_MAC, 5), Learned::Ignored, "off-link");
}

#[test]
fn only_on_link_neighbours_are_learned() {
    let mut h = host();
    assert_eq!(h.learn_neighbor(Ipv4Addr::new(198, 19, 0, 1), PEER_MAC, 0), Learned::Ignored, "off-link");
    assert_eq!(h.learn_neighbor(OUR_IP, PEER_MAC, 0), Learned::Ignored, "our own address");
    let mut spoof = arp_request();
    spoof[28..32].copy_from_slice(&[198, 18, 0, 1]); // sender claims our IP
    assert!(matches!(h.process(&mut spoof, 0), Verdict::Transmit { .. }));
    assert!(!h.arp_cache().contains(OUR_IP));
}

#[test]
fn arp_of_other_types_is_unsupported() {
    let mut h = host();
    let mut f = arp_request();
    f[17] = 0x06; // ptype 0x0806
    assert_eq!(h.process(&mut f, 0), Verdict::Drop(DropReason::ArpUnsupported));
    let mut rarp = arp_request();
    rarp[21] = 3;
    assert_eq!(h.process(&mut rarp, 0), Verdict::Drop(DropReason::ArpUnsupported));
}

#[test]
fn ping_is_answered_in_place() {
    let mut h = host();
    let mut f = ping();
    f.extend_from_slice(&[0; 4]); // Ethernet padding must not be echoed
    assert_eq!(h.process(&mut f, 0), Verdict::Transmit { len: 46, kind: ReplyKind::IcmpEcho });
    let want = hex(concat!(
        "020000000002 024d53000001 0800",
        "4500 0020 0001 4000 4001 aeb4 c6120001 c6120002",
        "0000 2904 1234 0001 61626364"
    ));
    assert_eq!(&f[..46], &want[..]);
}

#[test]
fn ipv4_drops_have_reasons() {
    let cases: &[(usize, u8, DropReason)] = &[
        (14, 0x46, DropReason::Ipv4BadChecksum), // options, but checksum checked first
        (24, 0x00, DropReason::Ipv4BadChecksum),
        (23, 6, DropReason::Ipv4BadChecksum),
        (14, 0x65, DropReason::Malformed),
    ];
    for &(at, val, want) in cases {
        let mut f = ping();
        f[at] = val;
        assert_eq!(host().process(&mut f, 0), Verdict::Drop(want), "byte {at} = {val:#x}");
    }
}

/// Rewrites a field of the ping's IPv4 header and fixes its checksum, so
/// the drop is for the field and not for the checksum.
fn ping_with(edit: impl FnOnce(&mut ipv4::Packet<&mut [u8]>)) -> Vec<u8> {
    let mut f = ping();
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    edit(&mut ip);
    ip.fill_checksum();
    f
}

#[test]
fn ipv4_semantic_drops() {
    let mut h = host();
    let mut frag = ping();
    frag[20] = 0x20; // MF
    let mut ip = ipv4::Packet::new_unchecked(&mut frag[14..]);
    ip.fill_checksum();
    assert_eq!(h.process(&mut frag, 0), Verdict::Drop(DropReason::Ipv4Fragment));
    let mut other = ping_with(|ip| ip.set_dst(Ipv4Addr::new(198, 18, 0, 9)));
    assert_eq!(h.process(&mut other, 0), Verdict::Drop(DropReason::Ipv4NotForUs));
    // Regression: a subnet-broadcast or loopback source was taken as a
    // subscriber and failed later as egress_no_route.
    let bad = [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(198, 18, 0, 255),
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 1, 2, 3),
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        OUR_IP,
    ];
    for src in bad {
        let mut f = ping_with(|ip| ip.set_src(src));
        assert_eq!(h.process(&mut f, 0), Verdict::Drop(DropReason::Ipv4BadSource), "{src}");
    }
    let mut ok = ping_with(|ip| ip.set_src(Ipv4Addr::new(198, 18, 0, 254)));
    assert!(matches!(h.process(&mut ok, 0), Verdict::Transmit { .. }), "the last host of the subnet is fine");
    // Regression: an echo request larger than the MTU was answered, and the
    // reply the port could not send was counted as tx_full_dropped.
    let mut big = ping();
    big.resize(14 + IPV4_MTU + 1, 0);
    let mut ip = ipv4::Packet::new_unchecked(&mut big[14..]);
    ip.set_total_len((IPV4_MTU + 1) as u16);
    ip.fill_checksum();
    assert_eq!(h.process(&mut big, 0), Verdict::Drop(DropReason::Ipv4TooBig));
    let mut tcp = ping_with(|ip| ip.set_protocol(Protocol::Unknown(6)));
    assert_eq!(h.process(&mut tcp, 0), Verdict::Drop(DropReason::IpProtoUnsupported));
}

#[test]
fn ipv4_options_are_dropped() {
    let mut f = ping();
    // Insert a 4-byte NOP option block and fix lengths and checksum.
    f.splice(34..34, [1, 1, 1, 1]);
    f[14] = 0x46;
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    ip.set_total_len(36);
    ip.fill_checksum();
    assert_eq!(host().process(&mut f, 0), Verdict::Drop(DropReason::Ipv4Options));
}

#[test]
fn icmp_drops() {
    let mut bad = ping();
    bad[41] ^= 0xff;
    assert_eq!(host().process(&mut bad, 0), Verdict::Drop(DropReason::IcmpBadChecksum));
    let mut reply = ping();
    reply[34] = 0;
    assert_eq!(host().process(&mut reply, 0), Verdict::Drop(DropReason::IcmpUnsupported));
}

pub(super) fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let h = host();
    let mut buf = std::vec![0u8; UDP_PAYLOAD_OFFSET + payload.len()];
    buf[UDP_PAYLOAD_OFFSET..].copy_from_slice(payload);
    // Build as if the peer sent it: emit from a host with the peer's identity.
    let peer = Host::new(HostConfig { mac: PEER_MAC, ip: PEER_IP, ..*h.config() });
    let to = UdpEndpoint { mac: OUR_MAC, ip: OUR_IP, port: dst_port };
    let len = peer.emit_udp(&mut buf, to, 40000, payload.len()).unwrap();
    buf.truncate(len);
    buf
}

/// A frame from the peer to the service port whose UDP checksum field is
/// what `mode` writes.
fn udp_frame_with(mode: TxChecksum, payload: &[u8]) -> Vec<u8> {
    let h = host();
    let mut buf = std::vec![0u8; UDP_PAYLOAD_OFFSET + payload.len()];
    buf[UDP_PAYLOAD_OFFSET..].copy_from_slice(payload);
    let peer = Host::new(HostConfig { mac: PEER_MAC, ip: PEER_IP, udp_checksum: mode, ..*h.config() });
    let to = UdpEndpoint { mac: OUR_MAC, ip: OUR_IP, port: SERVICE_PORT };
    let len = peer.emit_udp(&mut buf, to, 40000, payload.len()).unwrap();
    buf.truncate(len);
    buf
}

const UDP_CHECKSUM_AT: usize = UDP_PAYLOAD_OFFSET - 2;

#[test]
fn tx_checksum_modes_write_what_the_receiver_or_the_nic_needs() {
    let payload = b"seventeen bytes!!";
    let full = udp_frame_with(TxChecksum::Full, payload);
    let zero = udp_frame_with(TxChecksum::Zero, payload);
    let pseudo = udp_frame_with(TxChecksum::PseudoHeader, payload);
    assert_eq!(&zero[UDP_CHECKSUM_AT..UDP_CHECKSUM_AT + 2], &[0, 0], "none: 0, which IPv4 allows");
    for mut f in [full.clone(), zero] {
        assert!(matches!(host().process(&mut f, 0), Verdict::Service(_)));
    }
    // A NIC adds header and payload to the pseudo-header sum in the field
    // and stores the complement: the result is the full checksum.
    let seg = &pseudo[ethernet::HEADER_LEN + ipv4::HEADER_LEN..];
    let nic = crate::checksum::checksum(seg);
    assert_eq!(nic.to_be_bytes(), full[UDP_CHECKSUM_AT..UDP_CHECKSUM_AT + 2], "offload completes to the full sum");
}

#[test]
fn a_checksum_the_nic_found_good_is_not_computed_again() {
    let mut bad = udp_frame_with(TxChecksum::Full, b"payload");
    bad[UDP_CHECKSUM_AT] ^= 0x5a;
    let mut h = host();
    assert_eq!(h.process(&mut bad.clone(), 0), Verdict::Drop(DropReason::UdpBadChecksum));
    assert!(matches!(h.process_checked(&mut bad.clone(), 0, true), Verdict::Service(_)), "trusted");
    // The trust lasts one frame.
    assert_eq!(h.process(&mut bad, 0), Verdict::Drop(DropReason::UdpBadChecksum));
}

#[test]
fn udp_to_service_port_goes_to_the_handler() {
    let mut f = udp_frame(SERVICE_PORT, b"hello");
    let v = host().process(&mut f, 0);
    let Verdict::Service(d) = v else { panic!("{v:?}") };
    assert_eq!((d.src_mac, d.src_ip, d.src_port), (PEER_MAC, PEER_IP, 40000));
    assert_eq!(&f[d.payload_offset..d.payload_offset + d.payload_len], b"hello");
}

#[test]
fn udp_drops() {
    let mut other = udp_frame(53, b"x");
    assert_eq!(host().process(&mut other, 0), Verdict::Drop(DropReason::UdpOtherPort));
    let mut bad = udp_frame(SERVICE_PORT, b"x");
    bad[42] ^= 1;
    assert_eq!(host().process(&mut bad, 0), Verdict::Drop(DropReason::UdpBadChecksum));
    let mut short = udp_frame(SERVICE_PORT, b"x");
    short[38..40].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(host().process(&mut short, 0), Verdict::Drop(DropReason::Malformed));
}

#[test]
fn l2_drops() {
    let mut h = host();
    assert_eq!(h.process(&mut [0u8; 13], 0), Verdict::Drop(DropReason::Truncated));
    let mut v6 = ping();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(h.process(&mut v6, 0), Verdict::Drop(DropReason::UnknownEthertype));
    let mut other = ping();
    other[5] = 0x77;
    assert_eq!(h.process(&mut other, 0), Verdict::Drop(DropReason::OtherMac));
    let mut bcast_ip = ping();
    bcast_ip[..6].fill(0xff);
    assert_eq!(h.process(&mut bcast_ip, 0), Verdict::Drop(DropReason::OtherMac));
    let mut bcast_src = ping();
    bcast_src[6..12].fill(0xff);
    assert_eq!(h.process(&mut bcast_src, 0), Verdict::Drop(DropReason::BadSourceMac));
    let mut bcast_src = ping();
    bcast_src[6..12].fill(0xff);
    assert_eq!(h.process(&mut bcast_src, 0), Verdict::Drop(DropReason::BadSourceMac));
    let mut short_arp = arp_request();
    short_arp.truncate(40);
    assert_eq!(h.process(&mut short_arp, 0), Verdict::Drop(DropReason::Truncated));
    let mut short_ip = ping();
    short_ip.truncate(40);
    assert_eq!(h.process(&mut short_ip, 0), Verdict::Drop(DropReason::Truncated));
}

#[test]
fn routes_pick_the_gateway_and_arp_resolves_it() {
    let mut h = host();
    let gw = Ipv4Addr::new(198, 18, 0, 254);
    h.add_route(Prefix { addr: Ipv4Addr::new(198, 19, 0, 0), len: 16 }, gw).unwrap();
    let far = Ipv4Addr::new(198, 19, 1, 1);
    assert_eq!(h.resolve(far, 0), Resolution::Unresolved { next_hop: gw, ask: true });
    let mut buf = [0xa5u8; 64];
    let len = h.emit_arp_request(&mut buf, gw).unwrap();
    let want = hex("ffffffffffff 024d53000001 0806 0001 0800 06 04 0001 024d53000001 c6120001 000000000000 c61200fe");
    assert_eq!(&buf[..len], &want[..]);
    assert_eq!(h.resolve(Ipv4Addr::new(203, 0, 113, 1), 0), Resolution::NoRoute);
}

#[test]
fn drop_reasons_have_unique_names() {
    let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DropReason::ALL.len());
    assert!(DropReason::ALL.iter().all(|r| !r.help().is_empty()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// No byte sequence panics the host, and a reply never exceeds the input.
    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let len = bytes.len();
        if let Verdict::Transmit { len: out, .. } = host().process(&mut bytes, 0) {
            prop_assert!(out <= len);
        }
    }

    /// Valid frames with random bytes flipped: exercises the deep paths.
    #[test]
    fn mutated_frames_never_panic(which in 0..3u8, flips in proptest::collection::vec((0..80usize, any::<u8>()), 1..6), cut in 0..80usize) {
        let mut f = match which { 0 => arp_request(), 1 => ping(), _ => udp_frame(SERVICE_PORT, b"payload") };
        for (at, v) in flips {
            if let Some(b) = f.get_mut(at) { *b = v; }
        }
        f.truncate(cut.max(1));
        let mut h = host();
        if let Verdict::Service(d) = h.process(&mut f, 0) {
            prop_assert!(d.payload_offset + d.payload_len <= f.len());
        }
    }

    /// Views never panic after new_checked succeeds.
    #[test]
    fn views_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(p) = ipv4::Packet::new_checked(&bytes[..]) {
            let _ = (p.payload(), p.verify_checksum(), p.src(), p.dst(), p.is_fragment());
        }
        if let Ok(p) = udp::Packet::new_checked(&bytes[..]) {
            let _ = (p.payload(), p.verify_checksum(OUR_IP, PEER_IP));
        }
        if let Ok(p) = icmp::Packet::new_checked(&bytes[..]) {
            let _ = (p.data(), p.verify_checksum());
        }
        if let Ok(p) = arp::Packet::new_checked(&bytes[..]) {
            let _ = arp::Repr::parse(&p);
        }
    }
}
