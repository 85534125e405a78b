//! Live test: frames larger than the dataplane's buffers are counted, not
//! lost silently. The kernel side of a `net_tap` port, in a namespace made
//! here, gets a 9000-byte MTU and sends UDP with DF to the appliance.
//!
//! net_tap reads each frame into one mbuf (no RX scatter), 2048 bytes of
//! data room. A longer frame comes back from the kernel truncated and
//! flagged TUN_PKT_STRIP; the driver discards it and counts it in
//! `ierrors`, which the report shows as the port's driver `rx_errors`.
//! A frame that fits the buffer but exceeds the 1500-byte IP MTU reaches a
//! worker and is counted there as `drop_ipv4_too_big`.

mod common;

use common::Dataplane;
use std::time::Duration;

/// UDP payload of a 4042-byte frame: twice the buffer.
const HUGE: usize = 4000;
/// UDP payload of a 2049-byte frame: one byte more than the buffer.
const OVER: usize = 2007;
/// UDP payload of a 2048-byte frame: exactly the buffer, but over the MTU.
const FITS: usize = 2006;
/// How many HUGE datagrams are sent.
const HUGE_COUNT: u64 = 3;

/// Sends `argv[1]` datagrams of `argv[2]` bytes, one of `argv[3]` and one
/// of `argv[4]`, all with DF (IP_MTU_DISCOVER = IP_PMTUDISC_DO), to the echo
/// service; then a small one until its echo returns. The TAP has one queue,
/// read in order, so that echo means the dataplane has read all the others.
const SENDER: &str = r#"
import socket, sys
count, huge, over, fits = (int(a) for a in sys.argv[1:5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)
s.settimeout(0.5)
for size in [huge] * count + [over, fits]:
    s.sendto(b"x" * size, ("198.18.0.1", 9000))
for attempt in range(10):
    s.sendto(b"after", ("198.18.0.1", 9000))
    try:
        data, _ = s.recvfrom(65536)
    except socket.timeout:
        continue
    print("echoed", data.decode())
    break
else:
    sys.exit("no echo of the small datagram after 10 attempts")
"#;

/// One request to the dataplane's control socket (JSON lines).
fn control(dp: &Dataplane, req: serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(dp.dir.path().join("dataplane.sock")).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    writeln!(s, "{req}").expect("send request");
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("control answer");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn frames_larger_than_the_buffers_are_counted_as_port_rx_errors() {
    let common::Lab { iface, ns, .. } = &common::lab("j", "jumbo", &["ip", "python3"]);
    let config = common::echo_config(&format!("net_tap0,iface={iface}"), "198.18.0.3");
    let mut dp = Dataplane::spawn(&config);
    dp.wait_ready(Duration::from_secs(30));
    ns.adopt(iface);
    let out = ns.exec(&["ip", "link", "set", iface, "mtu", "9000"]);
    assert!(out.status.success(), "mtu 9000: {}", String::from_utf8_lossy(&out.stderr));
    let args = [HUGE_COUNT as usize, HUGE, OVER, FITS].map(|n| n.to_string());
    let out = ns.exec(&["python3", "-c", SENDER, &args[0], &args[1], &args[2], &args[3]]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("echoed after"), "sender failed:\n{said}");
    let too_long = HUGE_COUNT + 1; // the HUGE ones and the OVER one

    // The live status already shows them, per port.
    let st = control(&dp, serde_json::json!({ "cmd": "status" }));
    assert_eq!(st["ports"][0]["name"], "p0", "{st:#}");
    assert_eq!(st["ports"][0]["driver_drops"]["rx_errors"], too_long, "{st:#}");

    let kernel_sent = ns.iface_stat(iface, "tx_packets");
    let done = dp.stop();
    assert!(done.status.success(), "exit {}; log:\n{}", done.status, done.stderr);
    let report = done.counters();
    let port = &report["port_driver_drops"]["p0"];
    let total = &report["total"];
    assert_eq!(port["rx_errors"], too_long, "every frame longer than the buffer: {report:#}");
    for quiet in ["rx_missed", "rx_nombuf", "tx_errors"] {
        assert_eq!(port[quiet], 0, "{quiet}: {report:#}");
    }
    assert_eq!(total["drop_ipv4_too_big"], 1, "the frame that fits the buffer reaches a worker: {report:#}");
    assert_eq!(total["rx_multi_segment_dropped"], 0, "no RX scatter, so no chains: {report:#}");
    let received = total["rx_packets"].as_u64().expect("rx_packets");
    assert_eq!(
        received + too_long,
        kernel_sent,
        "every frame the kernel sent was received by a worker or counted by the driver: {report:#}"
    );
}
