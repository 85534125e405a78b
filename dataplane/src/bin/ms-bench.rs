//! `ms-bench`: the real dataplane worker against an in-process traffic
//! generator over a crossed pair of DPDK ring ports (no kernel in the
//! path). One run at one offered rate; `--json` for machines.

use anyhow::Context;
use clap::Parser;
use ms_dataplane::bench::{Generator, Load};
use ms_dataplane::{app, config::Config, eal, mbuf::Mempool, port};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

#[global_allocator]
static ALLOC: ms_dataplane::alloc::CountingAlloc = ms_dataplane::alloc::CountingAlloc;

/// Benchmark the dataplane with an in-DPDK generator (open loop).
#[derive(Debug, Clone, Copy, Parser)]
#[command(version, about)]
struct Args {
    /// Offered messages per second.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Streams (published round-robin).
    #[arg(long, default_value_t = 1)]
    streams: u64,
    /// Subscribers, each on every stream.
    #[arg(long, default_value_t = 1)]
    subscribers: u16,
    /// Payload bytes (>= 16).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Messages per PUBLISH datagram.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Zipf exponent of stream popularity (e.g. 1.0); 0 = uniform.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Find the highest rate sustained without loss for this scenario, then
    /// measure latency at 10, 50 and 80% of it (runs this program per rate).
    #[arg(long)]
    sweep: bool,
    /// Run every scenario (sweeps) and the testpmd ceiling; print a table.
    #[arg(long)]
    suite: bool,
}

/// P50 and P99 (bucket upper bounds) of the worker's busy-turn latency, read
/// from the stats segment the run left behind: time from receiving a burst
/// to handing its DELIVERs to the driver.
fn appliance_latency(path: &std::path::Path) -> serde_json::Value {
    let Ok(seg) = ms_stats::Segment::open(path) else { return serde_json::Value::Null };
    let dir = seg.directory();
    let mut v = vec![0u64; seg.slots()];
    if seg.read(0, &mut v, std::time::Duration::from_millis(100)).is_none() {
        return serde_json::Value::Null;
    }
    let buckets: Vec<(u64, u64)> = dir
        .iter()
        .zip(&v)
        .filter_map(|(s, n)| match s.kind {
            ms_stats::Kind::Bucket { le } => Some((le, *n)),
            _ => None,
        })
        .collect();
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    let quantile = |q: f64| {
        let mut seen = 0;
        buckets
            .iter()
            .find(|(_, n)| {
                seen += n;
                seen as f64 >= q * total as f64
            })
            .map(|b| b.0)
    };
    serde_json::json!({ "p50_le": quantile(0.5), "p99_le": quantile(0.99), "turns": total })
}

/// One run of this program as a subprocess, parsed.
fn run_once(a: &Args, rate: u64) -> anyhow::Result<serde_json::Value> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--json", "--rate", &rate.to_string(), "--seconds", &a.seconds.to_string()])
        .args(["--streams", &a.streams.to_string(), "--subscribers", &a.subscribers.to_string()])
        .args(["--payload", &a.payload.to_string(), "--batch", &a.batch.to_string(), "--zipf", &a.zipf.to_string()])
        .stderr(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("ms-bench run at {rate} msg/s printed {line:?}"))
}

fn sustained(r: &serde_json::Value) -> bool {
    r["subscribed"] == true && r["lost"] == 0 && r["generator_dropped_packets"] == 0
}

/// Doubling, then bisection: the highest offered rate with no loss.
fn sweep(a: &Args) -> anyhow::Result<serde_json::Value> {
    let (mut good, mut bad) = (0u64, 0u64);
    let mut rate = 100_000u64;
    for _ in 0..10 {
        eprint!("\r[bench] {:<46} trying {:>10} msg/s   ", label(a), rate);
        if sustained(&run_once(a, rate)?) {
            good = rate;
            rate *= 2;
        } else {
            bad = rate;
            break;
        }
    }
    if bad > 0 {
        for _ in 0..3 {
            let mid = (good + bad) / 2;
            eprint!("\r[bench] {:<46} trying {:>10} msg/s   ", label(a), mid);
            if sustained(&run_once(a, mid)?) {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }
    let mut at = serde_json::Map::new();
    for pct in [10u64, 50, 80] {
        let r = run_once(a, (good * pct / 100).max(1000))?;
        at.insert(
            format!("at_{pct}pct"),
            serde_json::json!({
                "rate": good * pct / 100, "latency_ns": r["latency_ns"],
                "appliance_busy_turn_ns": r["appliance_busy_turn_ns"], "lost": r["lost"],
            }),
        );
    }
    let best = run_once(a, good.max(1000))?;
    eprintln!();
    Ok(serde_json::json!({
        "scenario": label(a), "max_sustained_msgs_per_s": good, "pps_at_max": best["dut_rx_pps"], "latency": at,
    }))
}

fn label(a: &Args) -> String {
    let skew = if a.zipf > 0.0 { format!(" zipf {}", a.zipf) } else { String::new() };
    format!("{} streams{skew}, 1:{}, {} B, {}/datagram", a.streams, a.subscribers, a.payload, a.batch)
}

/// testpmd io-forward on a ring port, one forwarding core (lcore 1, the
/// worker's CPU): the raw I/O ceiling of this port type on this core.
fn ceiling() -> anyhow::Result<f64> {
    let child = std::process::Command::new("dpdk-testpmd")
        .args([
            "-l",
            "0,1",
            "--no-pci",
            "--in-memory",
            "--log-level",
            "1",
            "--file-prefix",
            &format!("msb-tp-{}", std::process::id()),
        ])
        .args(["--vdev=net_ring0", "--", "--forward-mode=io", "--tx-first", "--stats-period=1", "--nb-cores=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("run dpdk-testpmd (package dpdk-dev)")?;
    std::thread::sleep(std::time::Duration::from_secs(6));
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let out = child.wait_with_output()?;
    let mut pps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .collect();
    pps.sort_by(|a, b| a.total_cmp(b));
    pps.get(pps.len() / 2).copied().context("testpmd printed no Rx-pps")
}

/// Every scenario of the issue (see docs/PERFORMANCE.md).
fn suite(a: &Args) -> anyhow::Result<()> {
    let base = Args {
        rate: 0,
        seconds: a.seconds,
        streams: 1,
        subscribers: 1,
        payload: 64,
        batch: 16,
        zipf: 0.0,
        json: true,
        sweep: true,
        suite: false,
    };
    let scenarios = [
        Args { ..base },
        Args { batch: 1, ..base },
        Args { streams: 10_000, ..base },
        Args { streams: 1_000_000, ..base },
        Args { streams: 1_000_000, zipf: 1.0, ..base },
        Args { subscribers: 8, ..base },
        Args { payload: 32, ..base },
        // 16 x 256 B do not fit one datagram: as many as fit (5).
        Args {
            payload: 256,
            batch: (ms_wire::DATAGRAM_MAX - ms_wire::HEADER_LEN) / (ms_wire::publish::ENTRY_HEADER_LEN + 256),
            ..base
        },
    ];
    let ceiling_pps = ceiling()?;
    eprintln!("[bench] testpmd io-forward ceiling on net_ring, one core: {ceiling_pps:.0} pps");
    let mut rows = Vec::new();
    for s in &scenarios {
        rows.push(sweep(s)?);
    }
    let summary = serde_json::json!({ "ceiling_testpmd_ring_pps": ceiling_pps, "scenarios": rows });
    if a.json {
        println!("{summary}");
        return Ok(());
    }
    println!(
        "\n{:<46} {:>12} {:>11} {:>9} {:>10} {:>10} {:>10} {:>14}",
        "scenario", "max msg/s", "pps", "% ceiling", "p99@10%", "p99@50%", "p99@80%", "in-DUT p99@50%"
    );
    for r in &rows {
        let pps = r["pps_at_max"].as_f64().unwrap_or(0.0);
        let p99 = |k: &str| format!("{:.1} us", r["latency"][k]["latency_ns"]["p99"].as_f64().unwrap_or(0.0) / 1000.0);
        let dut = r["latency"]["at_50pct"]["appliance_busy_turn_ns"]["p99_le"]
            .as_f64()
            .map_or("-".to_string(), |v| format!("<{:.1} us", v / 1000.0));
        println!(
            "{:<46} {:>12} {:>11.0} {:>8.3}% {:>10} {:>10} {:>10} {:>14}",
            r["scenario"].as_str().unwrap_or(""),
            r["max_sustained_msgs_per_s"],
            pps,
            100.0 * pps / ceiling_pps,
            p99("at_10pct"),
            p99("at_50pct"),
            p99("at_80pct"),
            dut
        );
    }
    Ok(())
}

fn config(a: &Args) -> anyhow::Result<Config> {
    let dir = std::env::temp_dir().join(format!("ms-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let streams = a.streams.clamp(1024, 1 << 24);
    let yaml = format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 1024 }}
ports:
  - {{ name: dut, device: "net_ring_bench_dut", mac: "02:4d:53:00:00:01", ipv4: "198.18.0.1/24" }}
workers: {{ lcores: [1] }}
streams: {{ max_per_worker: {streams}, subscribers_max: 64, subscriptions_max: {subs} }}
mempool: {{ mbufs: 32767, cache: 256 }}
telemetry: {{ stats_path: "{d}/stats", control_socket: "{d}/dp.sock" }}
"#,
        subs = (streams * u64::from(a.subscribers.max(1))).min(1 << 26),
        d = dir.display()
    );
    Config::parse(&yaml, "ms-bench")
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.suite {
        return suite(&a);
    }
    if a.sweep {
        let r = sweep(&a)?;
        println!("{}", if a.json { r.to_string() } else { serde_json::to_string_pretty(&r)? });
        return Ok(());
    }
    anyhow::ensure!(
        a.payload >= 16 && a.batch >= 1 && a.subscribers >= 1 && a.rate > 0 && a.seconds > 0.0,
        "--payload must be >= 16, --batch, --subscribers, --rate and --seconds positive"
    );
    // The stream table (and the Zipf table) are sized from --streams.
    anyhow::ensure!(
        (1..=1 << 24).contains(&a.streams),
        "--streams must be 1..=16777216 (streams.max_per_worker's limit)"
    );
    anyhow::ensure!(a.zipf.is_finite() && a.zipf >= 0.0, "--zipf must be a finite exponent >= 0");
    let fits = (ms_wire::DATAGRAM_MAX - ms_wire::HEADER_LEN) / (ms_wire::publish::ENTRY_HEADER_LEN + a.payload);
    anyhow::ensure!(
        a.batch <= fits,
        "--batch {} of {} B payloads does not fit one datagram (at most {fits})",
        a.batch,
        a.payload
    );
    let cfg = config(&a)?;
    let mut args = eal::eal_args(&cfg);
    // The generator gets lcore 2, sharing CPU 0 with the (mostly idle) main lcore.
    if let Some(i) = args.iter().position(|x| x == "--lcores") {
        args[i + 1].push_str(",2@0");
    }
    args.extend(["--log-level".into(), "1".into()]);
    let eal = eal::Eal::init(&args)?;
    let (gen_id, _dut_id) = port::ring_pair("bench_gen", "bench_dut", 4096)?;
    let pool = Arc::new(Mempool::new(&eal, "bench_gen", 32767, 256, 0)?);
    // Ring ports have no MAC of their own (all zeros): the generator uses a
    // fixed locally administered one; its port is promiscuous.
    port::start_simple(gen_id, &pool)?;
    let gen_mac = ms_netstack::MacAddr([0x02, 0x4d, 0x53, 0x00, 0x00, 0x02]);
    let generator = Generator {
        port: gen_id,
        pool: Arc::clone(&pool),
        mac: gen_mac,
        dut_mac: "02:4d:53:00:00:01".parse::<ms_dataplane::config::Mac>().map_err(anyhow::Error::msg)?.0,
        tsc_hz: eal.tsc_hz(),
    };
    let load = Load {
        rate: a.rate,
        seconds: a.seconds,
        streams: a.streams,
        subscribers: a.subscribers,
        payload: a.payload,
        batch: a.batch,
        zipf: a.zipf,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let result = Arc::new(Mutex::new(None));
    {
        let (stop, result) = (Arc::clone(&stop), Arc::clone(&result));
        eal.launch(2, move || {
            // Let the dataplane start its port and worker first.
            std::thread::sleep(std::time::Duration::from_millis(500));
            let outcome = generator.run(load, &stop);
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            0
        })?;
    }
    let ctx = app::RunContext {
        stop,
        origin: "ms-bench".into(),
        set_log_level: Box::new(|_| Ok(())),
        log_level: "off".into(),
    };
    let reports = app::run(&eal, &cfg, ctx).context("dataplane")?;
    eal.wait(2);
    let outcome =
        result.lock().unwrap_or_else(|p| p.into_inner()).take().context("the generator produced no result")?;
    drop(pool);
    eal.cleanup();
    let t = ms_dataplane::counters::sum(&reports.iter().map(|r| r.counters).collect::<Vec<_>>());
    let appliance = appliance_latency(&cfg.telemetry.stats_path);
    let q = |p: f64| outcome.latency_ns.value_at_quantile(p);
    let expected = outcome.sent * u64::from(a.subscribers);
    let out = serde_json::json!({
        "rate_offered": a.rate, "seconds": outcome.seconds, "streams": a.streams, "subscribers": a.subscribers,
        "payload": a.payload, "batch": a.batch, "subscribed": outcome.subscribed,
        "sent": outcome.sent, "sent_packets": outcome.sent_packets, "generator_dropped_packets": outcome.gen_dropped_packets,
        "received": outcome.received, "lost": expected.saturating_sub(outcome.received),
        "achieved_msgs_per_s": outcome.received as f64 / outcome.seconds / f64::from(a.subscribers),
        "dut_rx_pps": t[ms_dataplane::counters::Counter::RxPackets as usize] as f64 / outcome.seconds,
        "latency_ns": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": outcome.latency_ns.max() },
        "appliance_busy_turn_ns": appliance,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": ms_dataplane::report::json(&reports)["total"].as_object().map(|m| m.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>()),
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
