//! What the machine itself allows, measured beside our numbers in the same
//! run: testpmd forwarding on the same port type and core, a memory-copy
//! floor for the payload bytes, and the CPUs' own latency noise (oslat).

use anyhow::Context;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The worker's CPU (lcore 1 runs on CPU 1), where every ceiling runs.
pub(crate) const WORKER_CPU: usize = 1;
/// The generator's CPU.
pub(crate) const GENERATOR_CPU: usize = 0;

/// testpmd forwarding modes, from moving pointers to touching, parsing and
/// checksumming every packet.
pub(crate) const MODES: [&str; 4] = ["io", "macswap", "5tswap", "csum"];

/// The mode `make bench-check` divides by: it parses Ethernet, IPv4 and
/// UDP and rewrites the IPv4 checksum of every packet, as our worker does.
pub(crate) const CHECK_MODE: &str = "csum";

/// Frame bytes of a PUBLISH of `batch` messages of `payload` bytes.
pub(crate) fn frame_len(payload: usize, batch: usize) -> usize {
    ms_netstack::host::UDP_PAYLOAD_OFFSET + ms_wire::HEADER_LEN + batch * (ms_wire::publish::ENTRY_HEADER_LEN + payload)
}

/// testpmd in forwarding mode `mode` on one `net_ring` port that loops TX
/// back to RX, one forwarding core (lcore 1, the worker's CPU), packets of
/// `len` bytes: the median of its per-second RX rates over `seconds`.
pub(crate) fn testpmd(mode: &str, len: usize, seconds: u64) -> anyhow::Result<f64> {
    let child = Command::new("dpdk-testpmd")
        .args(["-l", "0,1", "--no-pci", "--in-memory", "--log-level", "1"])
        .args(["--file-prefix", &format!("msb-tp-{}", std::process::id())])
        .args(["--vdev=net_ring0", "--", &format!("--forward-mode={mode}"), "--tx-first", "--stats-period=1"])
        .args(["--nb-cores=1", &format!("--txpkts={len}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("run dpdk-testpmd (package dpdk-dev; `make setup` installs it)")?;
    std::thread::sleep(Duration::from_secs(seconds + 1));
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let out = child.wait_with_output()?;
    let mut pps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .collect();
    pps.sort_by(|a, b| a.total_cmp(b));
    pps.get(pps.len() / 2).copied().with_context(|| format!("testpmd --forward-mode={mode} printed no Rx-pps"))
}

/// Pins the calling thread to `cpu`; returns the CPUs it had.
fn pin(cpu: usize) -> anyhow::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the set passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) } != 0 {
        return Err(std::io::Error::last_os_error()).context("read this thread's CPU affinity");
    }
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only sets a bit in `set` (its index is bounds-checked).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: as above.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("pin this thread to CPU {cpu}"));
    }
    Ok(old)
}

/// The memory-copy floor: messages per second one core (the worker's CPU)
/// copies when it does nothing but the copy each delivery needs, `payload`
/// bytes from a received datagram into an outgoing one, over as many
/// buffers as the dataplane's mempool cycles through (so not all in L1).
pub(crate) fn memcpy_floor(payload: usize, seconds: f64) -> anyhow::Result<f64> {
    const BUFFERS: usize = 4096;
    const BUF_BYTES: usize = 2048;
    let old = pin(WORKER_CPU)?;
    let src = vec![0x5au8; BUFFERS * BUF_BYTES];
    let mut dst = vec![0u8; BUFFERS * BUF_BYTES];
    let per_buf = (BUF_BYTES / payload.max(1)).max(1);
    let (mut copied, mut i) = (0u64, 0usize);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        // One datagram's messages, then the next buffer, like a burst.
        let base = (i % BUFFERS) * BUF_BYTES;
        for k in 0..per_buf {
            let at = base + k * payload;
            dst[at..at + payload].copy_from_slice(&src[at..at + payload]);
        }
        std::hint::black_box(&mut dst);
        copied += per_buf as u64;
        i += 1;
    }
    let rate = copied as f64 / start.elapsed().as_secs_f64();
    // SAFETY: restores the set read above.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    Ok(rate)
}

/// The CPU's own latency noise: oslat (Debian's rt-tests) busy-loops on
/// `cpu` for `seconds` and histograms the gaps between loop iterations,
/// which is what preemption, interrupts and the hypervisor take away from
/// a busy-polling worker.
pub(crate) fn oslat(cpu: usize, seconds: u64) -> anyhow::Result<Value> {
    let file = std::env::temp_dir().join(format!("ms-bench-oslat-{}-{cpu}.json", std::process::id()));
    let status = Command::new("oslat")
        .args(["-c", &cpu.to_string(), "-D", &seconds.to_string(), "-q", "-b", &OSLAT_BUCKETS.to_string()])
        .arg(format!("--json={}", file.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("run oslat (package rt-tests; `make setup` installs it)")?;
    anyhow::ensure!(status.success(), "oslat on CPU {cpu} failed: {status}");
    let text = std::fs::read_to_string(&file).context("read oslat's JSON")?;
    let _ = std::fs::remove_file(&file);
    let v: Value = serde_json::from_str(&text).context("parse oslat's JSON")?;
    let t = &v["thread"]["0"];
    let hist = t["histogram"].as_object().context("oslat's JSON has no histogram")?;
    // Buckets are 1 us wide; the last one also holds every longer gap,
    // counted here as if it were the bucket's width: lower bounds.
    let gaps: Vec<(u64, u64)> =
        hist.iter().map(|(us, n)| (us.parse::<u64>().unwrap_or(0), n.as_u64().unwrap_or(0))).collect();
    let long = gaps.iter().filter(|g| g.0 > 10);
    let (over_10us, stalled_us) = long.fold((0, 0), |(c, s), (us, n)| (c + n, s + us * n));
    let secs = t["duration"].as_f64().unwrap_or(seconds as f64).max(1e-9);
    Ok(json!({
        "cpu": cpu, "seconds": secs, "max_us": t["max"], "avg_us": t["avg"],
        "gaps_over_10us_per_s": over_10us as f64 / secs,
        "stalled_share_min": stalled_us as f64 / 1e6 / secs,
        "open_loop_p99_floor_us": wait_quantile_us(&gaps, secs, 0.99),
        "open_loop_p999_floor_us": wait_quantile_us(&gaps, secs, 0.999),
    }))
}

/// oslat's buckets: 1 us each, so gaps up to about 1 ms are told apart.
const OSLAT_BUCKETS: u32 = 1024;

/// The `q` quantile of the wait a message sees from the CPU's gaps alone,
/// when messages arrive at a steady rate (open loop): one arriving during
/// a gap of `g` us waits for the rest of it, so P(wait > x) is the time
/// spent in gaps past their first `x` us, over the run. A lower bound of
/// the latency an open-loop test on this CPU can show at that quantile,
/// however fast the code under test.
fn wait_quantile_us(gaps: &[(u64, u64)], seconds: f64, q: f64) -> u64 {
    let total_us = seconds * 1e6;
    let longest = gaps.iter().map(|g| g.0).max().unwrap_or(0);
    let beyond = |x: u64| gaps.iter().filter(|g| g.0 > x).map(|(us, n)| ((us - x) * n) as f64).sum::<f64>();
    (0..=longest).find(|&x| beyond(x) / total_us <= 1.0 - q).unwrap_or(longest)
}

/// Every ceiling for frames of `len` bytes and `payload`-byte messages.
pub(crate) fn all(len: usize, payload: usize) -> anyhow::Result<Value> {
    let mut testpmd_pps = serde_json::Map::new();
    for mode in MODES {
        eprintln!("[bench] ceiling: testpmd --forward-mode={mode}, {len}-byte packets, lcore 1");
        testpmd_pps.insert(mode.into(), testpmd(mode, len, 5)?.into());
    }
    eprintln!("[bench] floor: copying {payload}-byte payloads on CPU {WORKER_CPU}");
    let memcpy = memcpy_floor(payload, 2.0)?;
    eprintln!("[bench] noise: oslat on CPUs {WORKER_CPU} and {GENERATOR_CPU}, 10 s each");
    let noise = [oslat(WORKER_CPU, 10)?, oslat(GENERATOR_CPU, 10)?];
    Ok(json!({
        "frame_bytes": len, "testpmd_pps": testpmd_pps, "memcpy_msgs_per_s": memcpy, "payload": payload,
        "oslat": noise,
    }))
}
