//! The control plane against the real dataplane: `msctl` through
//! `ms-controlplane`, live config changes while a stream runs, SIGKILL of
//! the control plane during traffic, and a real Prometheus server (Debian's
//! package) scraping the endpoint, with `promtool check metrics`.

mod common;

use common::{require_cmd, require_root, Dataplane, Netns};
use ms_client::{Publisher, Subscriber};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn sibling(name: &str) -> PathBuf {
    let p = common::binary().with_file_name(name);
    assert!(p.exists(), "{} not built: run `cargo build --workspace` (make test does)", p.display());
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn msctl(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(sibling("msctl")).arg("--socket").arg(socket).args(args).output().expect("run msctl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn status(socket: &Path) -> Value {
    let (ok, text) = msctl(socket, &["--json", "status"]);
    assert!(ok, "msctl status failed: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A child process killed when dropped, so a failing assertion never leaves
/// a control plane or Prometheus running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_controlplane(config: &Path, socket: &Path) -> Killed {
    let _ = std::fs::remove_file(socket);
    let child = Command::new(sibling("ms-controlplane"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ms-controlplane");
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "ms-controlplane did not create {}", socket.display());
        thread::sleep(Duration::from_millis(50));
    }
    Killed(child)
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// Publishes round-robin on streams 0..50 at about 2,000 msg/s until told.
fn spawn_publisher(mut p: Publisher, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && i < 200_000 {
            for _ in 0..20 {
                p.publish(i % 50, 1, &i.to_le_bytes()).expect("publish");
                i += 1;
            }
            p.flush().expect("flush");
            sent.store(i, Ordering::Relaxed);
            thread::sleep(Duration::from_millis(10));
        }
    })
}

#[test]
fn msctl_live_config_sigkill_and_prometheus() {
    require_root();
    for cmd in ["ip", "prometheus", "promtool"] {
        require_cmd(cmd);
    }
    let _guard = common::exclusive();
    let tag = common::tag();
    let iface = format!("msc{tag}");
    let ns = Netns::new(&format!("ms-cp-{tag}"));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("msctl.sock");
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = common::streams_config(&iface, 1, 1500)
        + &format!("controlplane: {{ socket: \"{}\", prometheus_listen: \"{metrics_addr}\" }}\n", socket.display());
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    let config_path = dp.dir.path().join("dataplane.yaml");
    let mut cp = start_controlplane(&config_path, &socket);
    let st = status(&socket);
    assert_eq!(st["dataplane"]["ok"], true, "{st:#}");
    assert_eq!(st["dataplane"]["workers"], serde_json::json!([1]));
    assert_eq!(st["dataplane"]["ports"][0]["driver"], "net_tap");

    ns.adopt(&iface);
    let appliance: SocketAddr = "198.18.0.1:9000".parse().unwrap();
    let any: SocketAddr = "198.18.0.2:0".parse().unwrap();
    let (mut sub, publisher) = ns.enter(move || {
        (
            Subscriber::new(appliance, any, Duration::from_millis(200)).unwrap(),
            Publisher::new(appliance, any, 4).unwrap(),
        )
    });
    assert_eq!(sub.subscribe(0, 49, Duration::from_millis(500)).expect("subscribe"), 50);
    let (stop_pub, stop_sub, sent) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let pub_h = spawn_publisher(publisher, Arc::clone(&stop_pub), Arc::clone(&sent));
    let sub_stop = Arc::clone(&stop_sub);
    let sub_h = thread::spawn(move || {
        let mut n = 0u64;
        while !sub_stop.load(Ordering::Relaxed) {
            if sub.recv(Duration::from_millis(50)).expect("recv").is_some() {
                n += 1;
            }
        }
        while sub.recv(Duration::from_millis(500)).expect("recv").is_some() {
            n += 1;
        }
        (n, sub.stats())
    });

    // While traffic flows, read the dataplane's stats segment as fast as
    // possible and check an invariant that holds only for whole updates:
    // every received frame has exactly one outcome, counted in the same
    // flush as its reception.
    let stats_path = dp.dir.path().join("dataplane.stats");
    let checker_stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let stop = Arc::clone(&checker_stop);
        thread::spawn(move || consistency_checks(&stats_path, &stop))
    };

    // A refused config changes nothing; a valid one applies live.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, std::fs::read_to_string(&config_path).unwrap().replace("lcores: [1]", "lcores: [0]")).unwrap();
    let (ok, text) = msctl(&socket, &["config", "apply", bad.to_str().unwrap()]);
    assert!(!ok && text.contains("bad.yaml:") && text.contains("main_lcore"), "{text}");
    assert_eq!(status(&socket)["dataplane"]["live"]["streams.subscription_lifetime_ms"], 1500);
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("subscription_lifetime_ms: 1500", "subscription_lifetime_ms: 3000"),
    )
    .unwrap();
    let (ok, text) = msctl(&socket, &["config", "apply", good.to_str().unwrap()]);
    assert!(ok && text.contains("streams.subscription_lifetime_ms"), "{text}");
    let st = status(&socket);
    assert_eq!(st["dataplane"]["live"]["streams.subscription_lifetime_ms"], 3000);
    let rate = st["stats"]["rates"]["messages_published_per_s"].as_f64().unwrap();
    assert!(rate > 100.0, "status shows the publish rate during traffic: {st:#}");
    // The TAP's kernel side is in the namespace, where net_tap cannot see
    // it; the port carries traffic, so it is not "down".
    let link = st["dataplane"]["ports"][0]["link"].as_str().unwrap_or_default();
    assert!(link.starts_with("up"), "link of a TAP carrying traffic: {st:#}");
    let (ok, text) = msctl(&socket, &["status"]);
    assert!(ok && text.contains("link up") && !text.contains(" ,"), "{text}");
    let (ok, text) = msctl(&socket, &["log-level", "debug"]);
    assert!(ok && text.contains("log level debug: control plane, dataplane"), "{text}");
    let (ok, text) = msctl(&socket, &["log-level", ""]);
    assert!(!ok && text.contains("expected one of error, warn, info, debug, trace, off"), "{text}");

    // SIGKILL the control plane mid-stream; the dataplane goes on.
    cp.0.kill().unwrap();
    cp.0.wait().unwrap();
    thread::sleep(Duration::from_millis(1000));
    let cp = start_controlplane(&config_path, &socket);
    assert_eq!(status(&socket)["dataplane"]["ok"], true);
    thread::sleep(Duration::from_millis(500));

    stop_pub.store(true, Ordering::Relaxed);
    pub_h.join().unwrap();
    checker_stop.store(true, Ordering::Relaxed);
    let checked = checker.join().expect("no torn or inconsistent snapshot");
    assert!(checked > 1000, "only {checked} snapshots checked");
    stop_sub.store(true, Ordering::Relaxed);
    let (received, stats) = sub_h.join().unwrap();
    let published = sent.load(Ordering::Relaxed);
    assert!(published > 1000, "published {published}");
    assert_eq!(received, published, "every message arrived across apply and the SIGKILL: {stats:?}");
    assert_eq!((stats.lost, stats.out_of_order), (0, 0));

    // The busiest streams, and the latency histogram and per-class counts.
    let (ok, text) = msctl(&socket, &["--json", "streams", "top"]);
    assert!(ok, "{text}");
    let top: Value = serde_json::from_str(&text).unwrap();
    let first = &top["top"][0];
    assert!(first["stream"].as_u64().unwrap() < 50 && first["messages"].as_u64().unwrap() > 0, "{top}");
    let (ok, text) = msctl(&socket, &["streams", "top"]);
    assert!(ok && text.contains("\nmessages (est): space-saving estimate"), "a legend under the table: {text}");

    // A real Prometheus scrapes the endpoint; its view of the dataplane's
    // received packets equals what the kernel side sent.
    let metrics = http_get(metrics_addr, "/metrics");
    assert!(metrics.contains("# TYPE ms_burst_latency_seconds histogram"), "{metrics}");
    assert!(metrics.contains("ms_port_rx_packets_total{worker=\"0\",port=\"tap0\"}"), "{metrics}");
    assert!(!metrics.contains("port=\"\""), "absent ports are not exported");
    assert!(
        metrics.contains(&format!("ms_messages_by_class_total{{worker=\"0\",class=\"1\"}} {published}")),
        "{metrics}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let lint = promtool.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let kernel_tx = ns.iface_stat(&iface, "tx_packets");
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, format!("global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: ms\n    static_configs: [ {{ targets: [\"{metrics_addr}\"] }} ]\n")).unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prom = Killed(prom);
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    let start = Instant::now();
    let mut seen = None;
    while start.elapsed() < Duration::from_secs(40) {
        thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(prom_addr).is_err() {
            continue;
        }
        let body = http_get(prom_addr, "/api/v1/query?query=sum(ms_rx_packets_total)");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        seen = v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<u64>().ok());
        if seen == Some(kernel_tx) {
            break;
        }
    }
    drop(prom);
    assert_eq!(seen, Some(kernel_tx), "Prometheus's ms_rx_packets_total vs the kernel's tx_packets");

    drop(cp);
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    assert!(done.stderr.contains("log level changed"), "the dataplane logged the level change");
}

/// Reads the segment until `stop`, asserting on every consistent snapshot
/// that rx_packets equals the sum of the per-frame outcomes. Returns the
/// number of snapshots checked.
fn consistency_checks(path: &Path, stop: &AtomicBool) -> u64 {
    let seg = ms_stats::Segment::open(path).expect("open the stats segment");
    let dir = seg.directory();
    let idx = |n: &str| dir.iter().position(|s| s.name == n).unwrap_or_else(|| panic!("no slot {n}"));
    let rx = idx("rx_packets");
    let outcomes: Vec<usize> = [
        "rx_multi_segment_dropped",
        "arp_replies_sent",
        "icmp_echo_replies_sent",
        "service_datagrams",
        "arp_replies_learned",
    ]
    .iter()
    .map(|n| idx(n))
    .chain(dir.iter().enumerate().filter(|(_, s)| s.name.starts_with("drop_")).map(|(i, _)| i))
    .collect();
    let mut v = vec![0u64; seg.slots()];
    let (mut checked, mut last_rx) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        if seg.read(0, &mut v, Duration::from_millis(100)).is_some() {
            let sum: u64 = outcomes.iter().map(|i| v[*i]).sum();
            assert_eq!(v[rx], sum, "rx_packets vs outcomes in one snapshot");
            assert!(v[rx] >= last_rx, "rx_packets went backwards");
            last_rx = v[rx];
            checked += 1;
        }
    }
    checked
}

fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    http_get(addr, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// A dataplane that dies is seen as down within a few heartbeat periods:
/// `msctl status` exits non-zero and says why, `ms_dataplane_up` is 0.
/// (Polled with a generous bound: no assertion on speed.)
#[test]
fn status_and_metrics_see_a_dead_dataplane() {
    require_root();
    let _guard = common::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("msctl.sock");
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "eal: {{ main_lcore: 0, memory_mb: 256 }}\nports:\n  - {{ name: n0, device: net_null0, ipv4: \"198.18.0.1/24\" }}\n\
         workers: {{ lcores: [1] }}\nmempool: {{ mbufs: 4095, cache: 64 }}\n\
         controlplane: {{ socket: \"{}\", prometheus_listen: \"{metrics_addr}\" }}\n",
        socket.display()
    );
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    let _cp = start_controlplane(&dp.dir.path().join("dataplane.yaml"), &socket);
    let st = status(&socket);
    assert_eq!(st["dataplane_up"], true, "{st:#}");
    assert_eq!(metric(metrics_addr, "ms_dataplane_up"), Some(1.0));

    // SIGKILL by pid, keeping `dp` (and its directory with the stats
    // segment) until the end: the process stays a zombie until reaped, so
    // this is the heartbeat that must tell.
    let pid = st["dataplane"]["pid"].as_u64().expect("dataplane pid").to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let start = Instant::now();
    let (code, text) = loop {
        let out = Command::new(sibling("msctl")).arg("--socket").arg(&socket).arg("status").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || start.elapsed() > Duration::from_secs(20) {
            break (out.status.code(), text);
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(2), "msctl status after the dataplane died:\n{text}");
    assert!(text.contains(&format!("dataplane: DOWN: the dataplane (pid {pid})")), "{text}");
    let start = Instant::now();
    while metric(metrics_addr, "ms_dataplane_up") != Some(0.0) && start.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(metrics_addr, "ms_dataplane_up"), Some(0.0));
    drop(dp);
}
