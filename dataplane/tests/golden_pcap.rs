//! Golden-file test: the real `ms-dataplane` on a `net_pcap` port reads
//! `golden/input.pcap` (ARP, pings, UDP to the service port, garbage) and
//! must write exactly the frames in `golden/expected.pcap`.
//!
//! The frames are built here by a builder that shares no code with the
//! dataplane (its own checksum), so the expected replies are an independent
//! oracle. `MS_BLESS=1` rewrites both files from these builders; the test
//! also checks the committed files still match them.

mod common;

use common::{pcap, Dataplane};
use std::path::PathBuf;
use std::time::Duration;

const OUR_MAC: [u8; 6] = [0x02, 0x4d, 0x53, 0x00, 0x00, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const GW_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
const OUR_IP: [u8; 4] = [198, 18, 0, 1];
const PEER_IP: [u8; 4] = [198, 18, 0, 2];
const GW_IP: [u8; 4] = [198, 18, 0, 254];
const FAR_IP: [u8; 4] = [198, 19, 0, 5];

fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &ethertype.to_be_bytes(), payload].concat()
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    [&[0, 1, 8, 0, 6, 4][..], &op.to_be_bytes(), &sha, &spa, &tha, &tpa].concat()
}

/// IPv4 header without options: flags_frag is the 16-bit flags/offset word.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = [&[0x45, 0][..], &total.to_be_bytes(), &id.to_be_bytes(), &flags_frag.to_be_bytes()].concat();
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    [h, payload.to_vec()].concat()
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut d = [&sport.to_be_bytes()[..], &dport.to_be_bytes(), &len.to_be_bytes(), &[0, 0], payload].concat();
    let pseudo = [&src[..], &dst, &[0, 17], &len.to_be_bytes()].concat();
    let c = match csum(&[pseudo, d.clone()].concat()) {
        0 => 0xffff,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
    d
}

fn icmp(kind: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = [&[kind, 0, 0, 0][..], &id.to_be_bytes(), &seq.to_be_bytes(), data].concat();
    let c = csum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

const DF: u16 = 0x4000;

fn ping_data() -> Vec<u8> {
    (0..56u8).collect()
}

/// The input, with what each frame must cause.
fn input() -> Vec<Vec<u8>> {
    let to_us =
        |proto, flags, payload: &[u8]| eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4(PEER_IP, OUR_IP, proto, 7, flags, payload));
    let mut bad_ip = to_us(1, DF, &icmp(8, 0x1234, 2, &ping_data()));
    bad_ip[24] ^= 0x55; // IPv4 header checksum
    let mut options = eth(OUR_MAC, PEER_MAC, 0x0800, &ipv4(PEER_IP, OUR_IP, 1, 7, DF, &[1, 1, 1, 1]));
    options[14] = 0x46; // IHL 6: the 4 bytes become a NOP option block
    let fix = csum(&{
        let mut h = options[14..38].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    options[24..26].copy_from_slice(&fix.to_be_bytes());
    let mut truncated = to_us(17, DF, &udp(PEER_IP, OUR_IP, 40000, 9000, b"cut short"));
    truncated.truncate(30);
    let mut noise = [OUR_MAC, PEER_MAC].concat();
    noise.extend_from_slice(&[0x08, 0x00]);
    let mut x = 0x2545_f491u32;
    noise.extend((0..50).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    vec![
        // 1: ARP request for us -> reply.
        pad60(eth([0xff; 6], PEER_MAC, 0x0806, &arp(1, PEER_MAC, PEER_IP, [0; 6], OUR_IP))),
        // 2: ARP request for someone else -> arp_not_for_us.
        pad60(eth([0xff; 6], PEER_MAC, 0x0806, &arp(1, PEER_MAC, PEER_IP, [0; 6], [198, 18, 0, 9]))),
        // 3: ping -> echo reply.
        to_us(1, DF, &icmp(8, 0x1234, 1, &ping_data())),
        // 4: ping with a bad IPv4 checksum -> ipv4_bad_checksum.
        bad_ip,
        // 5: UDP to the service port (echo handler) -> echo, peer known from 1.
        to_us(17, DF, &udp(PEER_IP, OUR_IP, 40000, 9000, b"golden")),
        // 6: UDP to another port -> udp_other_port.
        to_us(17, DF, &udp(PEER_IP, OUR_IP, 40000, 53, b"dns?")),
        // 7: UDP from off-link via the gateway -> ARP request for the gateway.
        eth(OUR_MAC, GW_MAC, 0x0800, &ipv4(FAR_IP, OUR_IP, 17, 8, DF, &udp(FAR_IP, OUR_IP, 40001, 9000, b"far"))),
        // 8: 10 bytes -> truncated.
        vec![0xff; 10],
        // 9: IPv6 -> unknown_ethertype.
        pad60(eth(OUR_MAC, PEER_MAC, 0x86dd, &[0x60, 0, 0, 0])),
        // 10: first fragment -> ipv4_fragment.
        to_us(17, 0x2000, &udp(PEER_IP, OUR_IP, 40000, 9000, b"frag")),
        // 11: IPv4 options -> ipv4_options.
        options,
        // 12: ICMP timestamp request -> icmp_unsupported.
        to_us(1, DF, &icmp(13, 1, 1, &[0; 12])),
        // 13: unicast to another MAC -> other_mac.
        eth([0x02, 0, 0, 0, 0, 0x77], PEER_MAC, 0x0800, &ipv4(PEER_IP, OUR_IP, 1, 7, DF, &icmp(8, 1, 1, b"x"))),
        // 14: TCP -> ip_proto_unsupported.
        to_us(6, DF, &[0u8; 20]),
        // 15: IPv4 total length beyond the frame -> truncated.
        truncated,
        // 16: noise after a valid Ethernet header -> dropped, whatever it is.
        noise,
    ]
}

/// The replies, built independently of the dataplane's code.
fn expected() -> Vec<Vec<u8>> {
    vec![
        eth(PEER_MAC, OUR_MAC, 0x0806, &arp(2, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)),
        eth(PEER_MAC, OUR_MAC, 0x0800, &ipv4(OUR_IP, PEER_IP, 1, 7, DF, &icmp(0, 0x1234, 1, &ping_data()))),
        eth(
            PEER_MAC,
            OUR_MAC,
            0x0800,
            &ipv4(OUR_IP, PEER_IP, 17, 0, DF, &udp(OUR_IP, PEER_IP, 9000, 40000, b"golden")),
        ),
        eth([0xff; 6], OUR_MAC, 0x0806, &arp(1, OUR_MAC, OUR_IP, [0; 6], GW_IP)),
    ]
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

#[test]
fn golden_files_match_their_builders() {
    if std::env::var_os("MS_BLESS").is_some() {
        pcap::write(&golden("input.pcap"), &input());
        pcap::write(&golden("expected.pcap"), &expected());
    }
    assert_eq!(pcap::read(&golden("input.pcap")), input(), "input.pcap drifted; MS_BLESS=1 rewrites it");
    assert_eq!(pcap::read(&golden("expected.pcap")), expected(), "expected.pcap drifted; MS_BLESS=1 rewrites it");
}

#[test]
fn pcap_port_replies_exactly_as_expected() {
    common::require_root();
    let _guard = common::exclusive();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = out_dir.path().join("out.pcap");
    let device = format!("net_pcap0,rx_pcap={},tx_pcap={}", golden("input.pcap").display(), out.display());
    // No ARP retry within the run: the output stays exactly the 4 frames.
    let config = common::echo_config(&device, "198.18.0.254") + "arp: { request_interval_ms: 60000 }\n";
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    // The PMD reads the whole file in the first polls; give it ample time.
    std::thread::sleep(Duration::from_millis(1500));
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let input = pcap::read(&golden("input.pcap"));
    assert_eq!(done.total("rx_packets"), input.len() as u64, "every input frame was read");
    let got = pcap::read(&out);
    let want = pcap::read(&golden("expected.pcap"));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(hex(g), hex(w), "reply {i} differs");
    }
    let extra: Vec<String> = got.iter().skip(want.len()).map(|f| hex(f)).collect();
    assert_eq!(got.len(), want.len(), "number of replies; beyond the expected ones: {extra:?}; log:\n{}", done.stderr);
    let c = done.counters()["total"].clone();
    let expect = [
        ("tx_packets", 4),
        ("arp_replies_sent", 1),
        ("icmp_echo_replies_sent", 1),
        ("service_datagrams", 2),
        ("service_replies_sent", 2), // the echo sent, and the one held for the gateway
        ("arp_requests_sent", 1),
        // The echo for the off-link peer waits for the gateway, which never
        // answers: held, then dropped at shutdown.
        ("egress_arp_held", 1),
        ("egress_arp_timeout", 1),
        ("egress_arp_unresolved", 1),
        ("drop_arp_not_for_us", 1),
        ("drop_ipv4_bad_checksum", 1),
        ("drop_udp_other_port", 1),
        ("drop_unknown_ethertype", 1),
        ("drop_ipv4_fragment", 1),
        ("drop_ipv4_options", 1),
        ("drop_icmp_unsupported", 1),
        ("drop_other_mac", 1),
        ("drop_ip_proto_unsupported", 1),
    ];
    for (name, n) in expect {
        assert_eq!(c[name].as_u64(), Some(n), "counter {name}; all: {c:#}");
    }
    let drops: u64 =
        c.as_object().unwrap().iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v.as_u64().unwrap()).sum();
    // 16 in = 4 replies (the 4th the ARP request for the gateway) + 1
    // service datagram held for the gateway (counted above) + drops; the
    // noise frame is one drop.
    assert_eq!(drops, 16 - 4, "every frame not answered is dropped with a reason; all: {c:#}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}
