//! Every way the dataplane stops ends the process within a bound, with the
//! final counters printed. Regression (outside test, with hping3): SIGINT
//! shortly after a burst of IPv4 fragments left the process waiting
//! forever, because net_tap raised a real-time signal per frame at our
//! threads and the main lcore's 20 ms sleep never ended.
//!
//! The bounds asserted here are generous (seconds, against a hang that was
//! infinite): they catch a stop that never comes, not a slow one.

mod common;

use common::{Dataplane, Finished, Netns};
use std::time::{Duration, Instant};

/// Well above `ms_dataplane::stop::SHUTDOWN_BOUND` (3 s) plus a report.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// 20,000 UDP datagrams of 3,000 bytes from the namespace: the kernel
/// splits each into 3 IPv4 fragments (60,000 frames), faster than the
/// dataplane drops them.
const FRAGMENTS: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: fragment
payload = b"f" * 3000
sent = 0
for i in range(20000):
    try:
        s.sendto(payload, ("198.18.0.1", 9000))
        sent += 1
    except OSError:
        pass
print(sent)
"#;

fn config(iface: &str, workers: u32) -> String {
    common::streams_config(iface, workers, 10_000)
}

fn start(iface: &str, ns: &Netns, workers: u32, env: &[(&str, &str)]) -> Dataplane {
    let mut dp = Dataplane::spawn_env(&config(iface, workers), env);
    dp.wait_ready(Duration::from_secs(30));
    ns.adopt(iface);
    dp
}

/// Stops with `sig` and returns what the run left and how long it took.
fn stop_timed(dp: Dataplane, sig: &str) -> (Finished, Duration) {
    let t0 = Instant::now();
    let done = dp.stop_with(sig);
    (done, t0.elapsed())
}

fn setup(name: &str) -> common::Lab {
    common::lab(&format!("d{}", &name[..1]), name, &["ip", "python3"])
}

#[test]
fn a_signal_right_after_a_fragment_flood_stops_cleanly() {
    let common::Lab { iface, ns, .. } = &setup("frag");
    for sig in ["INT", "TERM"] {
        let dp = start(iface, ns, 1, &[]);
        assert_no_signal_driven_io(dp.pid());
        let out = ns.exec(&["python3", "-c", FRAGMENTS]);
        assert!(out.status.success(), "sender: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_secs(1));
        let (done, took) = stop_timed(dp, sig);
        assert!(done.status.success(), "SIG{sig}: exit {}; log:\n{}", done.status, done.stderr);
        assert!(took < STOP_LIMIT, "SIG{sig} took {took:?}");
        assert!(done.stderr.contains("\"stopping\""), "SIG{sig}: no 'stopping' in the log:\n{}", done.stderr);
        let fragments = done.total("drop_ipv4_fragment");
        assert!(fragments > 1_000, "SIG{sig}: the flood arrived ({fragments} fragments counted)");
        assert_eq!(done.counters()["worker_heap_allocations"], 0);
    }
}

/// The cause of the hang: net_tap had the kernel signal every received
/// frame (O_ASYNC on its queue descriptors). None may have it.
fn assert_no_signal_driven_io(pid: u32) {
    const O_ASYNC: u32 = 0o20000;
    let mut tuns = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        if std::fs::read_link(fd.path()).is_ok_and(|t| t.ends_with("net/tun")) {
            tuns += 1;
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy())).unwrap();
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim).unwrap();
            let flags = u32::from_str_radix(flags, 8).unwrap();
            assert_eq!(flags & O_ASYNC, 0, "a TAP queue raises a signal per frame (fdinfo: {info})");
        }
    }
    assert!(tuns > 0, "the TAP's descriptors were found");
}

/// A worker that panics stops the process: exit 1, the panic named, the
/// counters of every worker still printed.
#[test]
fn a_worker_panic_stops_the_process_with_a_report() {
    let common::Lab { iface, .. } = &setup("panic");
    let dp = Dataplane::spawn_env(&config(iface, 2), &[("MS_FAULT_PANIC_WORKER", "1")]);
    let done = dp.wait_exit(STOP_LIMIT);
    assert_eq!(done.status.code(), Some(1), "log:\n{}", done.stderr);
    assert!(done.stderr.contains("panicked"), "{}", done.stderr);
    assert_eq!(done.counters()["workers"].as_array().map(Vec::len), Some(2), "both workers reported");
}

/// A worker that never returns does not hold the process: after the bound
/// it exits 1 with the counters as last published.
#[test]
fn a_worker_that_does_not_stop_is_left_after_the_bound() {
    let common::Lab { iface, ns, .. } = &setup("hang");
    let dp = start(iface, ns, 1, &[("MS_FAULT_HANG_WORKER", "0")]);
    let (done, took) = stop_timed(dp, "INT");
    assert_eq!(done.status.code(), Some(1), "log:\n{}", done.stderr);
    assert!(took < STOP_LIMIT, "took {took:?}");
    assert!(done.stderr.contains("did not stop within"), "{}", done.stderr);
    assert_eq!(done.counters()["workers"].as_array().map(Vec::len), Some(1), "reported anyway");
}

/// A worker that fails to start stops the others: exit 1, the reason, and
/// the counters of the workers that ran.
#[test]
fn a_worker_that_fails_to_start_stops_the_rest_with_a_report() {
    let common::Lab { iface, .. } = &setup("launch");
    let dp = Dataplane::spawn_env(&config(iface, 2), &[("MS_FAULT_LAUNCH_FAIL_LCORE", "2")]);
    let done = dp.wait_exit(STOP_LIMIT);
    assert_eq!(done.status.code(), Some(1), "log:\n{}", done.stderr);
    assert!(done.stderr.contains("launch refused"), "{}", done.stderr);
    assert_eq!(done.counters()["workers"].as_array().map(Vec::len), Some(1), "the worker on lcore 1 ran");
}
