//! End to end through the real dataplane on a TAP port: publishers and
//! subscribers are ordinary kernel UDP sockets in a network namespace made
//! here (the client library, `ms-client`), the appliance is DPDK.

mod common;

use common::{require_cmd, require_root, Dataplane, Netns};
use ms_client::{Publisher, Subscriber};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const APPLIANCE: &str = "198.18.0.1:9000";
const ACK_WAIT: Duration = Duration::from_millis(500);

fn appliance() -> SocketAddr {
    APPLIANCE.parse().unwrap()
}

fn any_port() -> SocketAddr {
    "198.18.0.2:0".parse().unwrap()
}

fn payload(stream: u64, i: u64) -> Vec<u8> {
    format!("s{stream}-m{i}").into_bytes()
}

/// Receives on a subscriber thread until `stop` is set, heartbeating.
fn spawn_receiver(
    mut sub: Subscriber,
    stop: mpsc::Receiver<()>,
) -> thread::JoinHandle<(Subscriber, Vec<ms_client::Delivery>)> {
    thread::spawn(move || {
        let mut got = Vec::new();
        while stop.try_recv().is_err() {
            if let Some(d) = sub.recv(Duration::from_millis(50)).expect("recv") {
                got.push(d);
            }
        }
        while let Some(d) = sub.recv(Duration::from_millis(300)).expect("recv") {
            got.push(d);
        }
        (sub, got)
    })
}

/// Every stream of `streams` delivered exactly `seqs`, in order, with the
/// payloads published, and nothing else.
fn assert_exactly(got: &[ms_client::Delivery], streams: &[u64], seqs: std::ops::Range<u64>, who: &str) {
    let mut per: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for d in got {
        assert_eq!(d.payload, payload(d.stream, d.seq), "{who}: payload of stream {} seq {}", d.stream, d.seq);
        per.entry(d.stream).or_default().push(d.seq);
    }
    let want: Vec<u64> = seqs.collect();
    for s in streams {
        assert_eq!(per.remove(s).unwrap_or_default(), want, "{who}: stream {s}");
    }
    assert!(per.is_empty(), "{who}: unexpected streams {:?}", per.keys().collect::<Vec<_>>());
}

fn publish_round(publisher: &mut Publisher, streams: impl Iterator<Item = u64> + Clone, seqs: std::ops::Range<u64>) {
    for i in seqs {
        for s in streams.clone() {
            publisher.publish(s, 1, &payload(s, i)).expect("publish");
        }
        publisher.flush().expect("flush");
        // Pace a little: kernel socket buffers are the bottleneck here.
        thread::sleep(Duration::from_millis(2));
    }
}

fn setup(workers: u32, lifetime_ms: u32) -> (Dataplane, Netns) {
    require_root();
    require_cmd("ip");
    let tag = common::tag();
    let iface = format!("mss{workers}{tag}");
    let ns = Netns::new(&format!("ms-streams{workers}-{tag}"));
    let mut dp = Dataplane::spawn(&common::streams_config(&iface, workers, lifetime_ms));
    dp.wait_ready(Duration::from_secs(30));
    ns.adopt(&iface);
    (dp, ns)
}

#[test]
fn three_subscribers_unsubscribe_expiry_and_malformed_input() {
    let _guard = common::exclusive();
    let (dp, ns) = setup(1, 1500);
    let (mut a, mut b, mut c, mut publisher) = ns.enter(|| {
        let hb = Duration::from_millis(200);
        (
            Subscriber::new(appliance(), any_port(), hb).unwrap(),
            Subscriber::new(appliance(), any_port(), hb).unwrap(),
            Subscriber::new(appliance(), any_port(), hb).unwrap(),
            Publisher::new(appliance(), any_port(), 4).unwrap(),
        )
    });
    // Overlapping sets: A 0..=99, B 50..=149, C 75 and 140..=199.
    assert_eq!(a.subscribe(0, 99, ACK_WAIT).expect("A subscribes"), 100);
    assert_eq!(b.subscribe(50, 149, ACK_WAIT).expect("B subscribes"), 100);
    assert_eq!(c.subscribe(75, 75, ACK_WAIT).expect("C subscribes"), 1);
    assert_eq!(c.subscribe(140, 199, ACK_WAIT).expect("C subscribes"), 60);

    let (stops, handles): (Vec<_>, Vec<_>) = [a, b, c]
        .into_iter()
        .map(|s| {
            let (tx, rx) = mpsc::channel();
            (tx, spawn_receiver(s, rx))
        })
        .unzip();
    // Malformed input around valid traffic: not ours, truncated, version 1.
    publisher.send_raw(b"definitely not a MemoryStreamer datagram").unwrap();
    publish_round(&mut publisher, 0..200, 0..10);
    publisher.send_raw(&[0x4d, 0x53, ms_wire::VERSION, 1, 0, 0, 5, 0, 1, 2, 3]).unwrap();
    publisher.send_raw(&[0x4d, 0x53, 1, 4, 0, 0, 0, 0]).unwrap();
    publish_round(&mut publisher, 0..200, 10..20);
    thread::sleep(Duration::from_millis(300));
    for s in &stops {
        s.send(()).unwrap();
    }
    let mut results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (c_sub, c_got) = results.pop().unwrap();
    let (b_sub, b_got) = results.pop().unwrap();
    let (mut a_sub, a_got) = results.pop().unwrap();
    assert_exactly(&a_got, &(0..100).collect::<Vec<_>>(), 0..20, "A");
    assert_exactly(&b_got, &(50..150).collect::<Vec<_>>(), 0..20, "B");
    let c_streams: Vec<u64> = std::iter::once(75).chain(140..200).collect();
    assert_exactly(&c_got, &c_streams, 0..20, "C");
    for (who, s) in [("A", &a_sub), ("B", &b_sub), ("C", &c_sub)] {
        let st = s.stats();
        assert_eq!((st.lost, st.out_of_order), (0, 0), "{who}: {st:?}");
    }

    // UNSUBSCRIBE stops delivery: A leaves 0..=99; B keeps 50..=99.
    assert_eq!(a_sub.unsubscribe(0, 99, ACK_WAIT).expect("A unsubscribes"), 100);
    let (a_stop, a_rx) = mpsc::channel();
    let (b_stop, b_rx) = mpsc::channel();
    let (c_stop, c_rx) = mpsc::channel();
    let (a_h, b_h) = (spawn_receiver(a_sub, a_rx), spawn_receiver(b_sub, b_rx));
    // C stops heartbeating and will expire.
    let mut c_sub = c_sub;
    c_sub.set_heartbeat_every(Duration::from_secs(3600));
    let c_h = spawn_receiver(c_sub, c_rx);
    publish_round(&mut publisher, [10u64, 60].into_iter(), 20..25);
    thread::sleep(Duration::from_millis(2500)); // > lifetime: C expires
    publish_round(&mut publisher, [75u64, 150].into_iter(), 20..25);
    thread::sleep(Duration::from_millis(300));
    for s in [a_stop, b_stop, c_stop] {
        s.send(()).unwrap();
    }
    let (_, a_after) = a_h.join().unwrap();
    let (b_sub, b_after) = b_h.join().unwrap();
    let (_, c_after) = c_h.join().unwrap();
    assert!(a_after.is_empty(), "A unsubscribed but got {} messages", a_after.len());
    assert!(c_after.is_empty(), "C expired but got {} messages", c_after.len());
    let b60: Vec<u64> = b_after.iter().filter(|d| d.stream == 60).map(|d| d.seq).collect();
    assert_eq!(b60, (20..25).collect::<Vec<_>>(), "B still gets stream 60");
    let b75: Vec<u64> = b_after.iter().filter(|d| d.stream == 75).map(|d| d.seq).collect();
    assert_eq!(b75, (20..25).collect::<Vec<_>>(), "B still gets stream 75 after C expired");
    drop(b_sub);

    // Everyone goes quiet: all state expires and the gauges return to 0.
    thread::sleep(Duration::from_millis(2500));
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    assert_eq!(done.counters()["worker_heap_allocations"], 0, "the worker allocated on the data path");
    let t = done.counters()["total"].clone();
    for (name, want) in [
        ("streams_active", 0),
        ("subscribers_active", 0),
        ("subscriptions_active", 0),
        ("proto_bad_magic", 1),
        ("proto_malformed", 1),
        ("proto_bad_version", 1),
        ("subscribers_expired", 2), // C, then B; A left by unsubscribing
        ("deliver_messages_dropped", 0),
        ("deliver_no_buffer", 0),
    ] {
        assert_eq!(t[name].as_u64(), Some(want), "{name}; all: {t:#}");
    }
    let delivered = t["deliver_messages"].as_u64().unwrap();
    let expected = (100 + 100 + 61) * 20 + 5 + 5; // phase 1, then B alone on 60 and on 75
    assert_eq!(delivered, expected, "{t:#}");
    assert_eq!(t["messages_no_subscriber"], 10, "streams 10 and 150 had nobody left: {t:#}");
}

#[test]
fn subscriptions_reach_the_owning_worker() {
    let _guard = common::exclusive();
    let (dp, ns) = setup(2, 10_000);
    let (mut sub, mut publisher) = ns.enter(|| {
        (
            Subscriber::new(appliance(), any_port(), Duration::from_millis(500)).unwrap(),
            Publisher::new(appliance(), any_port(), 8).unwrap(),
        )
    });
    // Single-stream subscriptions each go to their owner, whichever worker
    // RSS hands the request to; the range is acknowledged by both.
    for s in 0..32u64 {
        assert_eq!(sub.subscribe(s, s, ACK_WAIT).expect("single subscribe"), 1);
    }
    assert_eq!(sub.subscribe(1000, 1099, ACK_WAIT).expect("range subscribe"), 100);
    let (stop, rx) = mpsc::channel();
    let h = spawn_receiver(sub, rx);
    let streams: Vec<u64> = (0..32).chain(1000..1100).collect();
    publish_round(&mut publisher, streams.clone().into_iter(), 0..10);
    thread::sleep(Duration::from_millis(300));
    stop.send(()).unwrap();
    let (sub, got) = h.join().unwrap();
    assert_exactly(&got, &streams, 0..10, "subscriber");
    assert_eq!(sub.stats().lost, 0);
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let all = done.counters();
    let t = &all["total"];
    let handed = t["handoff_control"].as_u64().unwrap() + t["handoff_publish"].as_u64().unwrap();
    assert!(handed > 0, "some work crossed workers: {all:#}");
    assert_eq!(t["handoff_full"], 0, "{all:#}");
    for w in all["workers"].as_array().unwrap() {
        assert!(w["counters"]["streams_active"].as_u64().unwrap() > 0, "both workers own streams: {all:#}");
    }
}

/// Sends `datagram` from `sock` and returns the answers that arrive
/// within a short wait (parsed).
fn answers(sock: &std::net::UdpSocket, datagram: &[u8]) -> Vec<Vec<u8>> {
    sock.send(datagram).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn error_of(datagram: &[u8]) -> ms_wire::control::ErrorEntry {
    match ms_wire::parse(datagram) {
        Ok(ms_wire::Frame::Control(ms_wire::control::Control::Error(mut e))) => e.next().expect("an entry"),
        other => panic!("not an ERROR: {other:?}"),
    }
}

/// Regressions from the outside test of the protocol's edges: a range that
/// overflows the stream table was partly applied; a SUBSCRIBE without
/// entries got no answer; an empty datagram got ERROR Malformed; unknown
/// types and RangeTooLarge had no counter of their own; a HEARTBEAT never
/// told a forgotten subscriber anything.
#[test]
fn protocol_edges_are_answered_as_documented() {
    use ms_wire::control::{self, ErrorCode, RangeRequest};
    use ms_wire::FrameType;
    let _guard = common::exclusive();
    let (dp, ns) = setup(1, 10_000);
    let sock = ns.enter(|| {
        let s = std::net::UdpSocket::bind(any_port()).unwrap();
        s.connect(appliance()).unwrap();
        s
    });
    let mut buf = [0u8; 64];
    // A HEARTBEAT from an address with no subscription: UnknownSubscriber.
    let len = control::emit_heartbeat(&mut buf).unwrap();
    let got = answers(&sock, &buf[..len]);
    assert_eq!(got.len(), 1);
    let e = error_of(&got[0]);
    assert_eq!(e.code, ErrorCode::UnknownSubscriber);
    let instance = e.detail;
    // 5,000 streams do not fit a 4,096-stream table: refused whole.
    let range = RangeRequest { request: 9, first: 0, last: 4_999, initial_credit: 0 };
    let len = control::emit_ranges(&mut buf, FrameType::Subscribe, &[range]).unwrap();
    let got = answers(&sock, &buf[..len]);
    assert_eq!(got.len(), 1);
    let e = error_of(&got[0]);
    assert_eq!((e.request, e.code, e.part, e.parts), (9, ErrorCode::StreamTableFull, 0, 1));
    // One that fits: acknowledged with the instance and the lifetime.
    let range = RangeRequest { request: 10, first: 0, last: 99, initial_credit: 0 };
    let len = control::emit_ranges(&mut buf, FrameType::Subscribe, &[range]).unwrap();
    let got = answers(&sock, &buf[..len]);
    let Ok(ms_wire::Frame::Control(control::Control::Ack(mut a))) = ms_wire::parse(&got[0]) else { panic!() };
    let a = a.next().unwrap();
    assert_eq!((a.request, a.streams, a.lifetime_ms, a.instance), (10, 100, 10_000, instance));
    // Now the HEARTBEAT is answered with the subscriptions held.
    let len = control::emit_heartbeat(&mut buf).unwrap();
    let got = answers(&sock, &buf[..len]);
    let Ok(ms_wire::Frame::Control(control::Control::Ack(mut a))) = ms_wire::parse(&got[0]) else { panic!() };
    let a = a.next().unwrap();
    assert_eq!((a.request, a.part, a.parts, a.streams, a.instance), (0, 0, 1, 100, instance));
    // SUBSCRIBE without entries: ERROR Malformed. Empty and 1-byte
    // datagrams: not ours, no answer.
    let empty_sub = [0x4d, 0x53, ms_wire::VERSION, 2, 0, 0, 0, 0];
    assert_eq!(error_of(&answers(&sock, &empty_sub)[0]).code, ErrorCode::Malformed);
    assert!(answers(&sock, &[]).is_empty(), "an empty datagram is not answered");
    assert!(answers(&sock, &[0x4d]).is_empty(), "a 1-byte datagram is not answered");
    let unknown = [0x4d, 0x53, ms_wire::VERSION, 42, 0, 0, 0, 0];
    assert_eq!(
        error_of(&answers(&sock, &unknown)[0]),
        ms_wire::control::ErrorEntry::whole(0, ErrorCode::UnknownType, 42)
    );
    let huge = RangeRequest { request: 11, first: 0, last: 70_000, initial_credit: 0 };
    let len = control::emit_ranges(&mut buf, FrameType::Subscribe, &[huge]).unwrap();
    assert_eq!(error_of(&answers(&sock, &buf[..len])[0]).code, ErrorCode::RangeTooLarge);

    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let t = done.counters()["total"].clone();
    for (name, want) in [
        ("subscriptions_added", 100),
        ("subscribe_refused", 1),
        ("proto_malformed", 1),
        ("proto_bad_magic", 2),
        ("proto_unknown_type", 1),
        ("range_too_large", 1),
        ("heartbeats", 2),
    ] {
        assert_eq!(t[name].as_u64(), Some(want), "{name}: {t:#}");
    }
}

/// With two workers, a subscriber whose subscriptions all live on the core
/// that does not receive its HEARTBEATs gets ERROR UnknownSubscriber from
/// the receiving core and an ACK from the owner; the client sums the ACKs
/// and does not subscribe again. Checked for a subscriber on each core.
#[test]
fn heartbeat_answers_from_two_workers_keep_subscribers_steady() {
    let _guard = common::exclusive();
    let (dp, ns) = setup(2, 3_000);
    let on = |core: u32| (0..).find(|&s| ms_wire::shard::owner(s, 2) == core).unwrap();
    let subs: Vec<Subscriber> = (0..2u32)
        .map(|core| {
            let mut s = ns.enter(|| Subscriber::new(appliance(), any_port(), Duration::from_millis(100)).unwrap());
            assert_eq!(s.subscribe(on(core), on(core), ACK_WAIT).unwrap(), 1);
            s
        })
        .collect();
    let handles: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                let end = std::time::Instant::now() + Duration::from_millis(2_500);
                while std::time::Instant::now() < end {
                    s.recv(Duration::from_millis(20)).expect("recv");
                }
                s.stats()
            })
        })
        .collect();
    for (core, h) in handles.into_iter().enumerate() {
        let st = h.join().unwrap();
        assert_eq!((st.resubscribes, st.restarts), (0, 0), "subscriber on core {core}: {st:?}");
    }
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let t = done.counters()["total"].clone();
    assert!(t["heartbeats"].as_u64().unwrap() >= 20, "heartbeats went out: {t:#}");
    assert_eq!(t["subscriptions_added"], 2, "nothing was made twice: {t:#}");
}

/// A raw socket for every UDP datagram the namespace receives (with its
/// IPv4 header), reads time out after 100 ms.
fn raw_udp_socket() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the fd is owned by the result.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
    // SAFETY: fd is a socket; tv is a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just created and nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// The UDP checksum fields of the DELIVERs (from the service port) the raw
/// socket has queued.
fn deliver_checksums(raw: &std::os::fd::OwnedFd) -> Vec<u16> {
    use std::os::fd::AsRawFd;
    let mut sums = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(raw.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return sums;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let udp = &buf[ihl..n as usize];
        let payload = &udp[8..];
        let from_service = u16::from_be_bytes([udp[0], udp[1]]) == 9000;
        if from_service && matches!(ms_wire::parse(payload), Ok(ms_wire::Frame::Deliver(_))) {
            sums.push(u16::from_be_bytes([udp[6], udp[7]]));
        }
    }
}

#[test]
fn udp_checksum_offload_and_none_reach_kernel_subscribers() {
    let _guard = common::exclusive();
    require_root();
    require_cmd("ip");
    for mode in ["offload", "none"] {
        let tag = common::tag();
        let iface = format!("msc{}{tag}", &mode[..1]);
        let ns = Netns::new(&format!("ms-csum-{mode}-{tag}"));
        let ip = "ipv4: \"198.18.0.1/24\"";
        let cfg = common::streams_config(&iface, 1, 5000).replace(ip, &format!("{ip}\n    udp_checksum: {mode}"));
        let mut dp = Dataplane::spawn(&cfg);
        dp.wait_ready(Duration::from_secs(30));
        ns.adopt(&iface);
        let (mut sub, mut publisher, raw) = ns.enter(|| {
            (
                Subscriber::new(appliance(), any_port(), Duration::from_millis(200)).unwrap(),
                Publisher::new(appliance(), any_port(), 4).unwrap(),
                raw_udp_socket(),
            )
        });
        assert_eq!(sub.subscribe(7, 7, ACK_WAIT).expect("subscribe"), 1, "{mode}");
        publish_round(&mut publisher, 7..8, 0..50);
        let mut got = Vec::new();
        while let Some(d) = sub.recv(Duration::from_millis(500)).expect("recv") {
            got.push(d);
        }
        // The kernel drops datagrams whose checksum is wrong: every one
        // arriving proves the NIC (offload) or the zero (none) was right.
        assert_exactly(&got, &[7], 0..50, mode);
        let sums = deliver_checksums(&raw);
        assert!(!sums.is_empty(), "{mode}: the raw socket saw no DELIVER");
        match mode {
            "none" => assert!(sums.iter().all(|&c| c == 0), "none sends 0: {sums:x?}"),
            _ => assert!(sums.iter().all(|&c| c != 0), "offload fills the checksum: {sums:x?}"),
        }
    }
}
