//! Live test: the real dataplane on a `net_tap` port whose kernel side is
//! moved into a network namespace made here (198.18.0.0/15 addresses).
//! The kernel in the namespace is an ordinary host on the link: `ping`,
//! `arping` and a UDP client talk to the appliance, and the appliance's
//! counters must match the kernel's interface counters exactly.

mod common;

use common::{require_cmd, require_root, Dataplane, Netns};
use std::time::Duration;

/// Sends from `argv[2]` sockets (distinct source ports, so distinct RSS
/// flows) bound to `argv[1]`; each retries until its echo comes back.
const UDP_CLIENT: &str = r#"
import socket, sys
ok = 0
for n in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 0))
    s.settimeout(0.5)
    for attempt in range(10):
        s.sendto(b"echo-through-gateway", ("198.18.0.1", 9000))
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        print("reply", s.getsockname()[1], attempt, peer[0], peer[1], data.decode())
        ok += 1
        break
    else:
        sys.exit("socket %d: no echo after 10 attempts" % n)
print("echoed", ok)
"#;

fn kernel_counters(ns: &Netns, iface: &str) -> (u64, u64) {
    (ns.iface_stat(iface, "tx_packets"), ns.iface_stat(iface, "rx_packets"))
}

/// Moves the TAP's kernel side into `ns` as host 198.18.0.2/24, with the
/// gateway address .3 and the off-link address 198.19.0.1, IPv6 off so the
/// only traffic is what the test sends (and the ARP it implies).
fn make_kernel_host(ns: &Netns, iface: &str) {
    ns.adopt(iface);
    ok(ns.exec(&["ip", "addr", "add", "198.18.0.3/24", "dev", iface]), "gateway address");
    ok(ns.exec(&["ip", "addr", "add", "198.19.0.1/32", "dev", "lo"]), "far address");
}

fn ok(out: std::process::Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

#[test]
fn ping_arping_and_udp_through_a_tap_port() {
    require_root();
    for cmd in ["ip", "ping", "arping", "python3"] {
        require_cmd(cmd);
    }
    let _guard = common::exclusive();
    let tag = common::tag();
    let iface = format!("mst{tag}");
    let ns = Netns::new(&format!("ms-live-{tag}"));
    // The gateway is a second address of the namespace's host, so the
    // dataplane cannot have learned it from the kernel's own ARP requests
    // (which come from .2): the echo must resolve it.
    let config = common::echo_config(&format!("net_tap0,iface={iface}"), "198.18.0.3");
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    make_kernel_host(&ns, &iface);
    let (tx_before, rx_before) = kernel_counters(&ns, &iface);

    let ping = ok(ns.exec(&["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.0.1"]), "ping");
    assert!(ping.contains("5 packets transmitted, 5 received"), "{ping}");
    let arping = ok(ns.exec(&["arping", "-c", "3", "-w", "5", "-I", &iface, "198.18.0.1"]), "arping");
    assert!(
        arping.contains("3 packets received") || arping.contains("Received 3 response"),
        "arping did not get 3 replies:\n{arping}"
    );
    // UDP from an off-link address: the echo goes back through the static
    // route's gateway (198.18.0.3), which the dataplane resolves by ARP; the
    // datagram that triggers the request waits for the answer, then goes.
    let udp = ok(ns.exec(&["python3", "-c", UDP_CLIENT, "198.19.0.1", "1"]), "udp client");
    assert!(udp.contains("198.18.0.1 9000 echo-through-gateway"), "{udp}");

    std::thread::sleep(Duration::from_millis(300));
    let (tx_after, rx_after) = kernel_counters(&ns, &iface);
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let c = done.counters()["total"].clone();
    assert_eq!(c["icmp_echo_replies_sent"], 5, "{c:#}");
    assert!(c["arp_replies_sent"].as_u64().unwrap() >= 3, "{c:#}");
    assert_eq!(c["arp_requests_sent"], 1, "one request resolves the gateway: {c:#}");
    assert_eq!(c["arp_replies_learned"], 1, "{c:#}");
    assert!(c["service_replies_sent"].as_u64().unwrap() >= 1, "{c:#}");
    assert_eq!(c["egress_arp_held"], 1, "the first echo waited for the gateway: {c:#}");
    assert_eq!(c["egress_arp_unresolved"], 0, "and was not dropped: {c:#}");
    // Everything the kernel sent was received, and everything sent arrived.
    assert_eq!(c["rx_packets"].as_u64().unwrap(), tx_after, "dataplane rx == kernel tx; {c:#}");
    assert_eq!(c["tx_packets"].as_u64().unwrap(), rx_after, "dataplane tx == kernel rx; {c:#}");
    assert!(tx_after > tx_before && rx_after > rx_before);
    let sent = c["tx_packets"].as_u64().unwrap();
    let replies: u64 = ["icmp_echo_replies_sent", "arp_replies_sent", "arp_requests_sent", "service_replies_sent"]
        .iter()
        .map(|k| c[*k].as_u64().unwrap())
        .sum();
    assert_eq!(sent, replies, "every transmitted frame is a counted reply: {c:#}");
}

/// Two workers on a 2-queue TAP (the second worker shares CPU 0 with the
/// main lcore, so this runs on a 2-CPU machine). Flows from 16 source ports
/// spread over both queues; every one must be echoed, so the worker that
/// did not see the gateway's ARP reply must have learned it from the other.
#[test]
fn two_workers_share_what_arp_learns() {
    require_root();
    for cmd in ["ip", "python3"] {
        require_cmd(cmd);
    }
    let _guard = common::exclusive();
    let tag = common::tag();
    let iface = format!("msm{tag}");
    let ns = Netns::new(&format!("ms-multi-{tag}"));
    let config = common::echo_config(&format!("net_tap0,iface={iface}"), "198.18.0.3")
        .replace("main_lcore: 0,", "main_lcore: 0, cpus: { 2: 0 },")
        .replace("lcores: [1]", "lcores: [1, 2]");
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    make_kernel_host(&ns, &iface);
    let udp = ok(ns.exec(&["python3", "-c", UDP_CLIENT, "198.19.0.1", "16"]), "udp client");
    assert!(udp.contains("echoed 16"), "{udp}");
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let all = done.counters();
    let workers = all["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    for w in workers {
        let c = &w["counters"];
        assert!(c["service_datagrams"].as_u64().unwrap() > 0, "both queues carry flows: {all:#}");
    }
    let total = &all["total"];
    assert!(total["neighbors_shared"].as_u64().unwrap() >= 1, "{all:#}");
    assert!(total["neighbors_received"].as_u64().unwrap() >= 1, "{all:#}");
    assert_eq!(total["handoff_full"], 0, "{all:#}");
    assert!(total["service_replies_sent"].as_u64().unwrap() >= 16, "{all:#}");
}
