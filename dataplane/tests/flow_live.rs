//! Flow control through the real dataplane on a TAP port, with kernel
//! subscribers (`ms-client`): one stream per policy, each with a fast
//! subscriber (granting credit as it reads) and a slow one (never granting
//! past its initial credit until the publisher is done). The fast one
//! loses nothing; the slow one gets exactly what its stream's policy says;
//! every message is accounted for in the counters. The policies are applied
//! live, while the dataplane runs.

mod common;

use common::{require_cmd, require_root, Dataplane, Netns};
use ms_client::{Delivery, Publisher, Subscriber};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const ACK_WAIT: Duration = Duration::from_millis(500);
/// Messages published on each stream.
const N: u64 = 400;
const PAYLOAD: usize = 100;
/// The slow subscriber's credit: 40 messages of 100 bytes.
const INITIAL_CREDIT: u64 = 4096;
/// Each stream's queue: 117 messages of 100 bytes (140 with descriptors).
const QUEUE: u64 = 16_384;

const POLICIES: &str = r#"
flow:
  initial_credit_bytes: 4096
  policies:
    - { first: 0, last: 0, policy: block }
    - { first: 1, last: 1, policy: drop-oldest }
    - { first: 2, last: 2, policy: conflate }
    - { first: 3, last: 3, policy: disconnect }
memory: { budget_bytes: 33554432, stream_queue_bytes_max: 16384 }
"#;

/// What the dataplane starts with: the default policy and limits
/// everywhere. The policies above are applied live, through the control
/// socket, before anyone subscribes.
const AT_START: &str = "memory: { budget_bytes: 33554432 }\n";

/// One request to the dataplane's control socket (JSON lines).
fn control(dp: &Dataplane, req: serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(dp.dir.path().join("dataplane.sock")).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    writeln!(s, "{req}").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("control answer");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn appliance() -> SocketAddr {
    "198.18.0.1:9000".parse().unwrap()
}

fn payload(stream: u64, seq: u64) -> Vec<u8> {
    let mut p = format!("s{stream}-m{seq}-").into_bytes();
    p.resize(PAYLOAD, b'.');
    p
}

enum Say {
    /// Grant unlimited credit on these streams.
    Open(Vec<u64>),
    Stop,
}

/// Reads until told to stop; grants when told. Returns what arrived.
fn receiver(mut sub: Subscriber, said: mpsc::Receiver<Say>) -> thread::JoinHandle<(Subscriber, Vec<Delivery>)> {
    thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            match said.try_recv() {
                Ok(Say::Open(streams)) => {
                    for s in streams {
                        sub.grant(s, u64::MAX / 2).expect("grant");
                    }
                }
                Ok(Say::Stop) => break,
                Err(_) => {}
            }
            if let Some(d) = sub.recv(Duration::from_millis(20)).expect("recv") {
                got.push(d);
            }
        }
        while let Some(d) = sub.recv(Duration::from_millis(300)).expect("recv") {
            got.push(d);
        }
        (sub, got)
    })
}

/// Sequence numbers per stream, checking every payload on the way.
fn by_stream(got: &[Delivery], who: &str) -> BTreeMap<u64, Vec<u64>> {
    let mut per: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for d in got {
        assert_eq!(d.payload, payload(d.stream, d.seq), "{who}: payload of stream {} seq {}", d.stream, d.seq);
        assert_eq!(d.position, (d.seq + 1) * PAYLOAD as u64, "{who}: position of stream {} seq {}", d.stream, d.seq);
        per.entry(d.stream).or_default().push(d.seq);
    }
    per
}

#[test]
fn each_policy_with_a_slow_and_a_fast_subscriber() {
    require_root();
    require_cmd("ip");
    let _guard = common::exclusive();
    let tag = common::tag();
    let iface = format!("msf{tag}");
    let ns = Netns::new(&format!("ms-flow-{tag}"));
    let base = common::streams_config(&iface, 1, 10_000);
    let mut dp = Dataplane::spawn(&format!("{base}{AT_START}"));
    dp.wait_ready(Duration::from_secs(30));
    // The same file with the policies, applied live (the telemetry paths are
    // the ones the test harness gave the running dataplane).
    let d = dp.dir.path().display();
    let telemetry =
        format!("telemetry: {{ stats_path: \"{d}/dataplane.stats\", control_socket: \"{d}/dataplane.sock\" }}\n");
    let yaml = format!("{base}{POLICIES}{telemetry}");
    let r = control(&dp, serde_json::json!({ "cmd": "apply", "yaml": yaml, "origin": "policies.yaml" }));
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["applied"], serde_json::json!(["flow", "memory.stream_queue_bytes_max"]), "{r:#}");
    let st = control(&dp, serde_json::json!({ "cmd": "status" }));
    assert_eq!(st["live"]["memory.stream_queue_bytes_max"], 16_384, "{st:#}");
    thread::sleep(Duration::from_millis(50)); // workers take it between two loop turns
    ns.adopt(&iface);
    let any: SocketAddr = "198.18.0.2:0".parse().unwrap();
    let (mut fast, mut slow, mut publisher) = ns.enter(move || {
        let hb = Duration::from_millis(200);
        (
            Subscriber::new(appliance(), any, hb).unwrap(),
            Subscriber::new(appliance(), any, hb).unwrap(),
            Publisher::new(appliance(), any, 4).unwrap(),
        )
    });
    slow.set_credit_window(None);
    assert_eq!(fast.subscribe(0, 3, ACK_WAIT).expect("fast subscribes"), 4);
    assert_eq!(slow.subscribe(0, 3, ACK_WAIT).expect("slow subscribes"), 4);
    let (tell_fast, fast_rx) = mpsc::channel();
    let (tell_slow, slow_rx) = mpsc::channel();
    let (fast, slow) = (receiver(fast, fast_rx), receiver(slow, slow_rx));

    for seq in 0..N {
        for stream in 0..4 {
            publisher.publish(stream, 1, &payload(stream, seq)).expect("publish");
        }
        publisher.flush().expect("flush");
        thread::sleep(Duration::from_millis(2));
    }
    thread::sleep(Duration::from_millis(300));
    publisher.poll_backpressure().expect("read BACKPRESSURE");
    // The publisher is done: the slow subscriber catches up on what its
    // policy kept for it.
    tell_slow.send(Say::Open(vec![0, 1, 2, 3])).unwrap();
    thread::sleep(Duration::from_millis(700));
    tell_fast.send(Say::Stop).unwrap();
    tell_slow.send(Say::Stop).unwrap();
    let (_, fast_got) = fast.join().expect("fast receiver");
    let (slow_sub, slow_got) = slow.join().expect("slow receiver");
    let done = dp.stop();
    let c = &done.counters()["total"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("counter {k}: {c:#}"));

    // block: refused messages took no sequence number; everything accepted
    // reached both subscribers, the slow one included.
    let refused = publisher.refused();
    assert!(refused > 0, "the block stream pushed back: {c:#}");
    assert_eq!(n("messages_refused_backpressure"), refused, "the publisher was told of every refusal");
    let accepted: Vec<u64> = (0..N - refused).collect();
    let (f, s) = (by_stream(&fast_got, "fast"), by_stream(&slow_got, "slow"));
    assert_eq!(f[&0], accepted, "fast, block stream");
    assert_eq!(s[&0], accepted, "slow, block stream: nothing dropped");

    let all: Vec<u64> = (0..N).collect();
    for stream in 1..4 {
        assert_eq!(f[&stream], all, "the fast subscriber of stream {stream} loses nothing");
    }
    let credit_msgs = INITIAL_CREDIT / PAYLOAD as u64;
    // Each queued message counts its payload and its 40-byte descriptor.
    let kept = QUEUE / (PAYLOAD as u64 + u64::from(ms_streams::MSG_CHARGE_BYTES));
    // drop-oldest: the first 40 (its credit), the one message a skip may
    // send past the grant (the subscriber grants nothing: no more), then
    // the newest queue-full.
    let dropped_oldest = &s[&1];
    let past_gap = dropped_oldest.get(credit_msgs as usize).copied().unwrap_or(0);
    let want: Vec<u64> = (0..credit_msgs).chain([past_gap]).chain(N - kept..N).collect();
    assert_eq!(*dropped_oldest, want, "slow, drop-oldest");
    assert!(past_gap > credit_msgs && past_gap < N - kept, "one message past the first gap: {past_gap}");
    // conflate: the first 40, then newest messages only, ending at the last.
    let conflated = &s[&2];
    assert_eq!(conflated[..credit_msgs as usize], all[..credit_msgs as usize], "slow, conflate");
    assert_eq!(conflated.last(), Some(&(N - 1)), "slow, conflate: the latest value");
    assert!(conflated.windows(2).all(|w| w[0] < w[1]) && conflated.len() < (credit_msgs + kept) as usize);
    // disconnect: the first 40, then removed and told so.
    assert_eq!(s[&3], all[..credit_msgs as usize], "slow, disconnect");
    assert!(slow_sub.slow_consumer_notices().contains(&3), "SlowConsumer for stream 3");

    assert_eq!(n("deliveries_dropped_oldest"), N - credit_msgs - 1 - kept);
    assert_eq!(n("deliveries_conflated"), N - conflated.len() as u64);
    assert!(n("deliveries_disconnected") > 0 && n("slow_consumer_notices") == 1, "{c:#}");
    accounting_holds(c);
}

/// The identities of docs/flow-control.md, with nothing left queued.
fn accounting_holds(c: &serde_json::Value) {
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("counter {k}: {c:#}"));
    let arrived = ["messages_no_subscriber", "messages_queued", "messages_refused_backpressure"]
        .iter()
        .chain(&["messages_shed_bulk", "messages_shed_best_effort", "messages_refused_pool_full"])
        .map(|k| n(k))
        .sum::<u64>();
    assert_eq!(n("messages_published"), arrived, "{c:#}");
    let fates = ["deliver_messages", "deliver_messages_dropped", "deliveries_dropped_oldest", "deliveries_conflated"]
        .iter()
        .chain(&["deliveries_disconnected", "deliveries_unsubscribed", "deliveries_expired"])
        .map(|k| n(k))
        .sum::<u64>();
    assert_eq!(n("deliveries_queued"), fates, "{c:#}");
}
