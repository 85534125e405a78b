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
#[derive(Debug, Parser)]
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
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
    anyhow::ensure!(a.payload >= 16 && a.batch >= 1 && a.subscribers >= 1 && a.rate > 0, "bad arguments");
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
