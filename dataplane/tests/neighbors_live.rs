//! Live test of the neighbour table at fan-out scale: the real dataplane on
//! a TAP port, 1,000 subscriber addresses in one kernel namespace (as /32s
//! on its interface, 198.18.2.0 onwards), each subscribed to one stream,
//! 300 messages published. Every subscriber gets every message, nothing is
//! dropped for ARP, and ARP requests stay within one per address.

mod common;

use common::{require_cmd, require_root, Dataplane, Netns};
use ms_client::{Publisher, Subscriber};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const SUBSCRIBERS: u32 = 1_000;
const MESSAGES: u64 = 300;
const STREAM: u64 = 7;

fn subscriber_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 2, 0)) + n)
}

/// One worker on a /21 (room for the subscribers), tables sized for them.
fn config(iface: &str) -> String {
    format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 256 }}
ports:
  - name: tap0
    device: "net_tap0,iface={iface}"
    mac: "02:4d:53:00:00:01"
    ipv4: "198.18.0.1/21"
workers: {{ lcores: [1] }}
service: {{ udp_port: 9000, handler: streams }}
streams: {{ max_per_worker: 64, subscribers_max: 2048, subscriptions_max: 4096, subscription_lifetime_ms: 60000 }}
arp: {{ neighbors_max: 2048 }}
mempool: {{ mbufs: 8191, cache: 64 }}
"#
    )
}

/// Adds the subscriber addresses in one `ip -batch` call.
fn add_addresses(ns: &Netns, iface: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = dir.path().join("addrs");
    let lines: String = (0..SUBSCRIBERS).map(|n| format!("addr add {}/32 dev {iface}\n", subscriber_ip(n))).collect();
    std::fs::write(&batch, lines).expect("write batch");
    let out = ns.exec(&["ip", "-batch", batch.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "adding addresses: {}", String::from_utf8_lossy(&out.stderr));
}

/// 1,000 sockets plus the test's own files exceed the default 1,024.
fn raise_fd_limit() {
    let want = libc::rlimit { rlim_cur: 8192, rlim_max: 8192 };
    // SAFETY: setrlimit reads a valid struct; failing leaves the old limit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) };
    assert_eq!(rc, 0, "setrlimit(NOFILE, 8192): {}", std::io::Error::last_os_error());
}

#[test]
fn a_thousand_subscribers_on_one_link_all_get_every_message() {
    require_root();
    require_cmd("ip");
    raise_fd_limit();
    let _guard = common::exclusive();
    let started = Instant::now();
    let tag = common::tag();
    let iface = format!("msn{tag}");
    let ns = Netns::new(&format!("ms-neigh-{tag}"));
    let mut dp = Dataplane::spawn(&config(&iface));
    dp.wait_ready(Duration::from_secs(30));
    ns.adopt(&iface);
    add_addresses(&ns, &iface);

    let appliance: SocketAddr = "198.18.0.1:9000".parse().unwrap();
    let (mut subs, mut publisher) = ns.enter(move || {
        let subs: Vec<Subscriber> = (0..SUBSCRIBERS)
            .map(|n| {
                let bind = SocketAddr::new(subscriber_ip(n).into(), 0);
                Subscriber::new(appliance, bind, Duration::from_secs(30)).expect("subscriber socket")
            })
            .collect();
        let publisher = Publisher::new(appliance, "198.18.0.2:0".parse().unwrap(), 1).expect("publisher");
        (subs, publisher)
    });
    // Subscribe from a few threads: one ACK round trip after another
    // would dominate the test's time.
    std::thread::scope(|scope| {
        for chunk in subs.chunks_mut(125) {
            scope.spawn(move || {
                for s in chunk {
                    let acked = s.subscribe(STREAM, STREAM, Duration::from_secs(2));
                    assert_eq!(acked.unwrap_or_else(|e| panic!("subscribe: {e}")), 1);
                }
            });
        }
    });
    for i in 0..MESSAGES {
        publisher.publish(STREAM, 1, &i.to_be_bytes()).expect("publish");
        if i % 10 == 9 {
            publisher.flush().expect("flush");
            // Pace: 1,000 copies of each batch leave through one TAP.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    publisher.flush().expect("flush");

    // Drain every subscriber; what arrived waits in its socket buffer.
    std::thread::sleep(Duration::from_millis(500));
    let mut short = Vec::new();
    for (n, s) in subs.iter_mut().enumerate() {
        let mut seqs = Vec::new();
        while let Some(d) = s.recv(Duration::from_millis(1)).expect("recv") {
            seqs.push(d.seq);
        }
        if seqs != (0..MESSAGES).collect::<Vec<_>>() {
            short.push((n, seqs.len()));
        }
    }
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let t = done.counters()["total"].clone();
    assert!(
        short.is_empty(),
        "{} subscribers missed messages (index, got): {:?}; {t:#}",
        short.len(),
        &short[..short.len().min(10)]
    );
    assert_eq!(t["deliver_messages"].as_u64(), Some(u64::from(SUBSCRIBERS) * MESSAGES), "{t:#}");
    for zero in ["egress_arp_unresolved", "egress_arp_queue_full", "egress_arp_timeout", "deliver_messages_dropped"] {
        assert_eq!(t[zero].as_u64(), Some(0), "{zero}; all: {t:#}");
    }
    let requests = t["arp_requests_sent"].as_u64().unwrap();
    assert!(requests <= u64::from(SUBSCRIBERS) + 10, "{requests} ARP requests for {SUBSCRIBERS} addresses: {t:#}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    eprintln!("neighbors_live: {:?}, {requests} ARP requests", started.elapsed());
}

/// Sends forged ARP from the namespace's side of the link: a unicast reply
/// to the appliance and a gratuitous reply, both claiming `victim` is at
/// 02:66:66:66:66:66.
const FORGE: &str = r#"
import socket, struct, sys
iface, victim = sys.argv[1], socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
forged = bytes.fromhex("026666666666")
appliance = bytes.fromhex("024d53000001")
def reply(dst_mac, target_mac, target_ip):
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + forged + victim + target_mac + target_ip
    return dst_mac + forged + b"\x08\x06" + arp + b"\0" * 18
s.send(reply(appliance, appliance, socket.inet_aton("198.18.0.1")))  # unicast, unsolicited
s.send(reply(b"\xff" * 6, b"\xff" * 6, victim))                      # gratuitous
print("sent")
"#;

/// Regression (outside test): one forged unicast ARP reply claiming a
/// subscriber's address cut that subscriber off for the rest of the run,
/// counted as `arp_replies_learned`. Now the forged replies are refused
/// and counted, and the subscriber gets every message.
#[test]
fn forged_arp_does_not_divert_a_subscriber() {
    let common::Lab { iface, ns, .. } = &common::lab("f", "forge", &["ip", "python3"]);
    let mut dp = Dataplane::spawn(&common::streams_config(iface, 1, 60_000));
    dp.wait_ready(Duration::from_secs(30));
    ns.adopt(iface);
    let appliance: SocketAddr = "198.18.0.1:9000".parse().unwrap();
    let local: SocketAddr = "198.18.0.2:0".parse().unwrap();
    let (mut sub, mut publisher) = ns.enter(move || {
        (
            Subscriber::new(appliance, local, Duration::from_millis(500)).unwrap(),
            Publisher::new(appliance, local, 1).unwrap(),
        )
    });
    assert_eq!(sub.subscribe(STREAM, STREAM, Duration::from_millis(500)).unwrap(), 1);
    let forged = ns.exec(&["python3", "-c", FORGE, iface, "198.18.0.2"]);
    assert!(forged.status.success(), "forger: {}", String::from_utf8_lossy(&forged.stderr));
    for i in 0..MESSAGES {
        publisher.publish(STREAM, 1, &i.to_le_bytes()).unwrap();
        publisher.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut got = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while got < MESSAGES && Instant::now() < end {
        if sub.recv(Duration::from_millis(50)).unwrap().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, MESSAGES, "the subscriber still gets every message");
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    assert_eq!(done.total("arp_replies_learned"), 0, "nothing forged was learned");
    let refused = done.total("drop_arp_unsolicited") + done.total("drop_arp_conflict");
    assert_eq!(refused, 2, "both forged replies refused and counted");
    assert_eq!(done.total("deliver_messages"), MESSAGES);
}
