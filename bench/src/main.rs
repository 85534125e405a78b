//! `ms-bench`: the real dataplane worker against an in-process traffic
//! generator over a crossed pair of DPDK ring ports (no kernel in the
//! path). One run at one offered rate; `--sweep` finds the highest rate
//! without loss, `--suite` runs every scenario, `--overload` overloads a
//! small memory budget and watches it degrade and recover, `--million`
//! subscribes a million streams and follows the process's memory; `--json`
//! for machines.

use anyhow::Context;
use clap::Parser;
use ms_bench::{Classes, Generator, Load, MillionOutcome, OverloadOutcome, OverloadSpec};
use ms_dataplane::app::WorkerReport;
use ms_dataplane::counters::{self, slot, Counter, Metric};
use ms_dataplane::{app, config::Config, eal, mbuf::Mempool, port};
use ms_proto::ProtoCounter;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[global_allocator]
static ALLOC: ms_dataplane::alloc::CountingAlloc = ms_dataplane::alloc::CountingAlloc;

/// Benchmark the dataplane with an in-DPDK generator (open loop).
///
/// MS_BENCH_CONFIG: YAML appended to the generated dataplane config, e.g.
/// 'scheduler: { tx_budget_min: 4096 }' (runs started by --sweep and
/// --suite inherit it).
#[derive(Debug, Clone, Copy, Parser)]
#[command(version, about)]
struct Args {
    /// Offered messages per second [default: 1000000]. With --overload:
    /// the sustainable rate, which skips the calibration.
    #[arg(long)]
    rate: Option<u64>,
    /// Seconds of load [default: 3; --overload 30; --million 2].
    #[arg(long)]
    seconds: Option<f64>,
    /// Streams, published round-robin [default: 1; --overload 1000;
    /// --million 1000000].
    #[arg(long)]
    streams: Option<u64>,
    /// Subscribers, each on every stream [default: 1; --overload 2].
    #[arg(long)]
    subscribers: Option<u16>,
    /// Payload bytes (>= 16).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Messages per PUBLISH datagram.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Zipf exponent of stream popularity (e.g. 1.0); 0 = uniform.
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
    /// workers.rx_burst of the generated config: packets the worker takes
    /// per RX poll at most [default: 32, the appliance's; --overload 256].
    #[arg(long)]
    rx_burst: Option<u16>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Find the highest rate sustained without loss for this scenario, then
    /// measure latency at 10, 50 and 80% of it (runs this program per rate).
    #[arg(long)]
    sweep: bool,
    /// Run every scenario (sweeps), the million-stream memory cycle and the
    /// testpmd ceiling; print a table.
    #[arg(long)]
    suite: bool,
    /// Calibrate the sustainable rate S (or take --rate), offer 1.5 x S
    /// with mixed classes against a 4 MiB memory budget, sample RSS and
    /// the pool every 100 ms, then time the return to normal service.
    #[arg(long, conflicts_with_all = ["sweep", "suite", "million"])]
    overload: bool,
    /// Subscribe a million streams (or --streams), run a load at --rate
    /// with credit granted per stream, unsubscribe them all, and report
    /// the process's RSS at each step and the stream table's bytes.
    #[arg(long, conflicts_with_all = ["sweep", "suite"])]
    million: bool,
}

/// What the program does, with every default resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Overload,
    Million,
}

impl Args {
    fn mode(&self) -> Mode {
        if self.overload {
            Mode::Overload
        } else if self.million {
            Mode::Million
        } else {
            Mode::Plain
        }
    }

    fn rate(&self) -> u64 {
        self.rate.unwrap_or(1_000_000)
    }

    fn seconds(&self) -> f64 {
        self.seconds.unwrap_or(match self.mode() {
            Mode::Plain => 3.0,
            Mode::Overload => 30.0,
            Mode::Million => 2.0,
        })
    }

    fn streams(&self) -> u64 {
        self.streams.unwrap_or(match self.mode() {
            Mode::Plain => 1,
            Mode::Overload => 1000,
            Mode::Million => 1_000_000,
        })
    }

    fn subscribers(&self) -> u16 {
        self.subscribers.unwrap_or(if self.mode() == Mode::Overload { 2 } else { 1 })
    }

    fn rx_burst(&self) -> u16 {
        self.rx_burst.unwrap_or(if self.mode() == Mode::Overload { OVERLOAD_RX_BURST } else { 32 })
    }

    fn load(&self) -> Load {
        Load {
            rate: self.rate(),
            seconds: self.seconds(),
            streams: self.streams(),
            subscribers: self.subscribers(),
            payload: self.payload,
            batch: self.batch,
            zipf: self.zipf,
            classes: if self.mode() == Mode::Overload { Classes::Mixed } else { Classes::Normal },
        }
    }
}

/// Extra top-level YAML appended to the generated config (sections it
/// does not have yet; the overload scenario already sets `memory`).
const CONFIG_ENV: &str = "MS_BENCH_CONFIG";

/// The overload scenario's memory: a 4 MiB budget (38,836 message slots
/// of up to 64 B) against 1000 streams that may each queue 16 KiB (256
/// messages; 128 once the pool is half full): the streams' limits add up
/// to several times the pool, so the pool, not the streams, runs out.
/// Small, because normal service resumes only once the worker has worked
/// through what waits in its RX ring (up to 4096 datagrams) and sent what
/// is queued: in the debug build of the overload test, about 230 ms for
/// the ring and 130 ms for a 4 MiB pool (8 MiB took it 480 ms in all).
const OVERLOAD_BUDGET_BYTES: u64 = 4 << 20;
const OVERLOAD_STREAM_QUEUE_BYTES: u32 = 16 << 10;

/// The overload's RX burst. With the default 32 a worker takes in at most
/// 32 datagrams (512 messages) per loop turn and its scheduler sends up to
/// 4096 per turn: it never accepts more than it can send, so an overload
/// stays in the RX ring and is lost there, before the appliance counts it
/// (`--overload --rx-burst 32` shows it). With 256, a saturated worker
/// takes in up to 4096 messages (8192 deliveries at fan-out 2) per turn,
/// more than it sends: the excess reaches the queues, the memory budget
/// and its degradation steps, which is what this scenario is about.
const OVERLOAD_RX_BURST: u16 = 256;

/// P50 and P99 (bucket upper bounds) of the worker's busy-turn latency, read
/// from the stats segment the run left behind: time from receiving a burst
/// to handing its DELIVERs to the driver.
fn appliance_latency(path: &std::path::Path) -> Value {
    let Ok(seg) = ms_stats::Segment::open(path) else { return Value::Null };
    let dir = seg.directory();
    let mut v = vec![0u64; seg.slots()];
    if seg.read(0, &mut v, std::time::Duration::from_millis(100)).is_none() {
        return Value::Null;
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
    json!({ "p50_le": quantile(0.5), "p99_le": quantile(0.99), "turns": total })
}

/// One run of this program as a subprocess with `extra` flags, parsed.
fn run_child(a: &Args, rate: u64, extra: &[&str]) -> anyhow::Result<Value> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["--json", "--rate", &rate.to_string(), "--seconds", &a.seconds().to_string()])
        .args(["--streams", &a.streams().to_string(), "--subscribers", &a.subscribers().to_string()])
        .args(["--payload", &a.payload.to_string(), "--batch", &a.batch.to_string(), "--zipf", &a.zipf.to_string()])
        .args(extra)
        .stderr(std::process::Stdio::null());
    if let Some(b) = a.rx_burst.filter(|_| !extra.contains(&"--rx-burst")) {
        cmd.args(["--rx-burst", &b.to_string()]);
    }
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("ms-bench {extra:?} at {rate} msg/s printed {line:?}"))
}

fn run_once(a: &Args, rate: u64) -> anyhow::Result<Value> {
    run_child(a, rate, &[])
}

fn sustained(r: &Value) -> bool {
    r["subscribed"] == true && r["lost"] == 0 && r["generator_dropped_packets"] == 0
}

/// Doubling, then bisection: the highest offered rate with no loss.
fn sweep(a: &Args) -> anyhow::Result<Value> {
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
            json!({
                "rate": good * pct / 100, "latency_ns": r["latency_ns"],
                "appliance_busy_turn_ns": r["appliance_busy_turn_ns"], "lost": r["lost"],
            }),
        );
    }
    let best = run_once(a, good.max(1000))?;
    eprintln!();
    Ok(json!({
        "scenario": label(a), "max_sustained_msgs_per_s": good, "pps_at_max": best["dut_rx_pps"],
        "credit_entries_at_max": best["credit_entries"], "latency": at,
    }))
}

fn label(a: &Args) -> String {
    let skew = if a.zipf > 0.0 { format!(" zipf {}", a.zipf) } else { String::new() };
    format!("{} streams{skew}, 1:{}, {} B, {}/datagram", a.streams(), a.subscribers(), a.payload, a.batch)
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

fn mib(bytes: &Value) -> String {
    bytes.as_f64().map_or("-".into(), |b| format!("{:.1} MiB", b / f64::from(1 << 20)))
}

/// Every scenario of the issue (see docs/PERFORMANCE.md).
fn suite(a: &Args) -> anyhow::Result<()> {
    let base = Args {
        rate: None,
        seconds: a.seconds,
        streams: Some(1),
        subscribers: Some(1),
        payload: 64,
        batch: 16,
        zipf: 0.0,
        json: true,
        sweep: true,
        suite: false,
        overload: false,
        million: false,
        rx_burst: None,
    };
    let scenarios = [
        Args { ..base },
        Args { batch: 1, ..base },
        Args { streams: Some(10_000), ..base },
        Args { streams: Some(1_000_000), ..base },
        Args { streams: Some(1_000_000), zipf: 1.0, ..base },
        Args { subscribers: Some(8), ..base },
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
    eprintln!("[bench] a million streams: subscribe, load, unsubscribe");
    let million_args = Args { million: true, sweep: false, streams: Some(1_000_000), seconds: Some(2.0), ..base };
    let million = run_child(&million_args, 1_000_000, &["--million"])?;
    let summary = json!({ "ceiling_testpmd_ring_pps": ceiling_pps, "scenarios": rows, "million": million });
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
    let rss = &million["rss_bytes"];
    println!(
        "\n1M streams: {:.1} B of stream table per idle stream; RSS {} before subscribing, {} subscribed, {} after \
         the load, {} unsubscribed, {} after a second round; lost {}",
        million["stream_table_bytes_per_idle_stream"].as_f64().unwrap_or(0.0),
        mib(&rss["before_subscribing"]),
        mib(&rss["after_subscribing"]),
        mib(&rss["after_load"]),
        mib(&rss["after_unsubscribing"]),
        mib(&rss["after_a_second_round"]),
        million["load"]["lost"]
    );
    Ok(())
}

fn config(a: &Args) -> anyhow::Result<Config> {
    let dir = std::env::temp_dir().join(format!("ms-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The overload's probe stream is one past the load's streams.
    let probe = u64::from(a.mode() == Mode::Overload);
    let streams = (a.streams() + probe).clamp(1024, 1 << 24);
    let mut yaml = format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 1024 }}
ports:
  - {{ name: dut, device: "net_ring_bench_dut", mac: "02:4d:53:00:00:01", ipv4: "198.18.0.1/24" }}
workers: {{ lcores: [1], rx_burst: {rx_burst} }}
streams: {{ max_per_worker: {streams}, subscribers_max: 64, subscriptions_max: {subs} }}
mempool: {{ mbufs: 32767, cache: 256 }}
telemetry: {{ stats_path: "{d}/stats", control_socket: "{d}/dp.sock" }}
flow: {{ initial_credit_bytes: {credit}, default_policy: drop-oldest }}
"#,
        subs = (streams * u64::from(a.subscribers().max(1))).min(1 << 26),
        credit = ms_bench::INITIAL_CREDIT,
        rx_burst = a.rx_burst(),
        d = dir.display()
    );
    // Experiments with the appliance's settings (inherited by the runs a
    // sweep starts), e.g. MS_BENCH_CONFIG='scheduler: { tx_budget_min: 4096 }'.
    if let Ok(extra) = std::env::var(CONFIG_ENV) {
        yaml.push_str(&extra);
        yaml.push('\n');
    }
    if a.mode() == Mode::Overload {
        yaml.push_str(&format!(
            "memory: {{ budget_bytes: {OVERLOAD_BUDGET_BYTES}, stream_queue_bytes_max: {OVERLOAD_STREAM_QUEUE_BYTES} }}\n"
        ));
    }
    Ok(Config::parse(&yaml, "ms-bench")?)
}

/// Starts EAL, the ring pair and the generator (lcore 2), runs the
/// dataplane on the main lcore until `scenario` sets the stop flag, and
/// returns the scenario's result with the workers' final counters.
fn with_dataplane<T: Send + 'static>(
    cfg: &Config,
    scenario: impl FnOnce(&Generator, &AtomicBool) -> T + Send + 'static,
) -> anyhow::Result<(T, Vec<WorkerReport>)> {
    let mut args = eal::eal_args(cfg);
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
        dut_mac: ms_dataplane::settings::mac("02:4d:53:00:00:01".parse().map_err(anyhow::Error::msg)?),
        tsc_hz: eal.tsc_hz(),
    };
    let stopper = ms_dataplane::stop::Stop::new().context("create the stop wake-up")?;
    let stop = Arc::clone(stopper.flag());
    let result = Arc::new(Mutex::new(None));
    {
        let (stop, result) = (Arc::clone(&stop), Arc::clone(&result));
        eal.launch(2, move || {
            // Let the dataplane start its port and worker first.
            std::thread::sleep(std::time::Duration::from_millis(500));
            let outcome = scenario(&generator, &stop);
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            0
        })?;
    }
    let ctx = app::RunContext {
        stop: Arc::clone(&stopper),
        origin: "ms-bench".into(),
        set_log_level: Box::new(|_| Ok(())),
        log_level: "off".into(),
    };
    let reports = app::run(&eal, cfg, ctx);
    // A dataplane that failed to start must not leave the generator
    // waiting for answers.
    stop.store(true, Ordering::Relaxed);
    eal.wait(2);
    let run = reports.context("dataplane")?;
    if let Some(e) = run.failure {
        return Err(e.context("dataplane"));
    }
    let reports = run.workers;
    let outcome =
        result.lock().unwrap_or_else(|p| p.into_inner()).take().context("the generator produced no result")?;
    drop(pool);
    eal.cleanup();
    Ok((outcome, reports))
}

fn total(reports: &[WorkerReport]) -> [u64; counters::COUNTERS_LEN] {
    counters::sum(&reports.iter().map(|r| r.counters).collect::<Vec<_>>())
}

/// The counters that are not zero, by name.
fn nonzero(reports: &[WorkerReport]) -> Value {
    let total = total(reports);
    let all: serde_json::Map<String, Value> =
        counters::slot_names().zip(total).map(|((n, _), v)| (n, v.into())).collect();
    let all = serde_json::json!({ "total": all });
    let map: serde_json::Map<String, Value> = all["total"]
        .as_object()
        .map(|m| m.iter().filter(|(_, v)| v.as_u64() != Some(0)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Value::Object(map)
}

fn plain(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.run(load, stop))?;
    let t = total(&reports);
    let appliance = appliance_latency(&cfg.telemetry.stats_path);
    let q = |p: f64| outcome.latency_ns.value_at_quantile(p);
    let expected = outcome.sent * u64::from(load.subscribers);
    let out = json!({
        "rate_offered": load.rate, "seconds": outcome.seconds, "streams": load.streams, "subscribers": load.subscribers,
        "payload": load.payload, "batch": load.batch, "subscribed": outcome.subscribed,
        "sent": outcome.sent, "sent_packets": outcome.sent_packets,
        "generator_dropped_packets": outcome.gen_dropped_packets,
        "generator_dropped_messages": outcome.gen_dropped_messages,
        "received": outcome.received, "lost": expected.saturating_sub(outcome.received),
        "achieved_msgs_per_s": outcome.received as f64 / outcome.seconds / f64::from(load.subscribers),
        "dut_rx_pps": t[slot(Counter::RxPackets)] as f64 / outcome.seconds,
        "latency_ns": { "p50": q(0.5), "p99": q(0.99), "p999": q(0.999), "max": outcome.latency_ns.max() },
        "appliance_busy_turn_ns": appliance,
        "credit_entries": outcome.credit_entries, "credit_datagrams": outcome.credit_datagrams,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(&reports),
    });
    if a.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// Counters of `messages_published = ...` (right-hand side).
const PUBLISHED_PARTS: [Metric; 6] = [
    Metric::Proto(ProtoCounter::MessagesNoSubscriber),
    Metric::Proto(ProtoCounter::MessagesQueued),
    Metric::Proto(ProtoCounter::RefusedBackpressure),
    Metric::Proto(ProtoCounter::ShedBulk),
    Metric::Proto(ProtoCounter::ShedBestEffort),
    Metric::Proto(ProtoCounter::RefusedPoolFull),
];

/// Counters of `deliveries_queued = ... + deliveries still queued`.
const DELIVERY_PARTS: [Metric; 7] = [
    Metric::Worker(Counter::DeliverMessages),
    Metric::Worker(Counter::DeliverMessagesDropped),
    Metric::Proto(ProtoCounter::DroppedOldest),
    Metric::Proto(ProtoCounter::DroppedConflated),
    Metric::Proto(ProtoCounter::DroppedDisconnected),
    Metric::Proto(ProtoCounter::DroppedUnsubscribed),
    Metric::Proto(ProtoCounter::DroppedExpired),
];

/// Drops with a reason: refused or shed on arrival, or dropped from a queue.
const DROP_REASONS: [Metric; 9] = [
    Metric::Proto(ProtoCounter::RefusedBackpressure),
    Metric::Proto(ProtoCounter::ShedBulk),
    Metric::Proto(ProtoCounter::ShedBestEffort),
    Metric::Proto(ProtoCounter::RefusedPoolFull),
    Metric::Proto(ProtoCounter::DroppedOldest),
    Metric::Proto(ProtoCounter::DroppedConflated),
    Metric::Proto(ProtoCounter::DroppedDisconnected),
    Metric::Proto(ProtoCounter::DroppedUnsubscribed),
    Metric::Proto(ProtoCounter::DroppedExpired),
];

fn phase_json(p: &ms_bench::Phase) -> Value {
    json!({
        "rate": p.rate, "seconds": p.seconds, "offered": p.offered, "sent": p.sent, "received": p.received,
        "generator_dropped_packets": p.gen_dropped_packets, "generator_dropped_messages": p.gen_dropped_messages,
    })
}

fn overload_json(
    a: &Args,
    o: &OverloadOutcome,
    sustainable: u64,
    calibration: Option<&Value>,
    reports: &[WorkerReport],
) -> Value {
    let t = total(reports);
    let c = |x: Metric| t[slot(x)];
    let mut counters = serde_json::Map::new();
    for x in [Metric::Proto(ProtoCounter::MessagesPublished), Metric::Proto(ProtoCounter::DeliveriesQueued)]
        .iter()
        .chain(&PUBLISHED_PARTS)
        .chain(&DELIVERY_PARTS)
    {
        counters.insert(x.name().into(), c(*x).into());
    }
    counters.insert(ProtoCounter::QueuedMessages.name().into(), c(ProtoCounter::QueuedMessages.into()).into());
    let published_rhs: u64 = PUBLISHED_PARTS.iter().map(|x| c(*x)).sum();
    let delivered_rhs: u64 = DELIVERY_PARTS.iter().map(|x| c(*x)).sum();
    let still_queued = i128::from(c(ProtoCounter::DeliveriesQueued.into())) - i128::from(delivered_rhs);
    // What happened during the overload phase alone (the calibration
    // before it overloads too).
    let during = match (o.at_start, o.at_stop) {
        (Some(s), Some(e)) => {
            let m: serde_json::Map<String, Value> =
                [Metric::Proto(ProtoCounter::MessagesPublished), Metric::Proto(ProtoCounter::MessagesQueued)]
                    .iter()
                    .chain(&DROP_REASONS)
                    .chain(&[Metric::Worker(Counter::DeliverMessages), Metric::Worker(Counter::DeliverMessagesDropped)])
                    .map(|x| (x.name().to_string(), e.get(*x).saturating_sub(s.get(*x)).into()))
                    .collect();
            Value::Object(m)
        }
        _ => Value::Null,
    };
    let max = |f: fn(&ms_bench::Sample) -> u64| o.samples.iter().map(f).max().unwrap_or(0);
    // First time (ms into the overload) each degradation level was seen.
    let first_at: Vec<Value> = (0..=3u64)
        .map(|l| o.samples.iter().find(|s| s.degradation_level >= l).map_or(Value::Null, |s| s.t_ms.into()))
        .collect();
    let rows = |v: &[ms_bench::Sample]| -> Vec<Value> {
        v.iter()
            .map(|s| json!([s.t_ms, s.rss_bytes, s.pool_used_bytes, s.degradation_level, s.queued_messages]))
            .collect()
    };
    let fields = ["t_ms", "rss_bytes", "pool_used_bytes", "degradation_level", "queued_messages"];
    // Which steps the overload reached: the halved queue limits show only
    // in the level gauge; shedding and a full pool in their counters (a
    // step between two samples still counts).
    let delta = |x: ProtoCounter| match (o.at_start, o.at_stop) {
        (Some(s), Some(e)) => e.get(x).saturating_sub(s.get(x)),
        _ => 0,
    };
    let steps = json!({
        "1_queue_limits_halved": max(|s| s.degradation_level) >= 1,
        "2_bulk_shed": delta(ProtoCounter::ShedBulk),
        "3_best_effort_shed": delta(ProtoCounter::ShedBestEffort),
        "full_refused": delta(ProtoCounter::RefusedPoolFull),
    });
    json!({
        "scenario": "overload",
        "streams": a.streams(), "subscribers": a.subscribers(), "payload": a.payload, "batch": a.batch,
        "classes": "stream s carries wire class s % 4",
        "memory": { "budget_bytes": OVERLOAD_BUDGET_BYTES, "stream_queue_bytes_max": OVERLOAD_STREAM_QUEUE_BYTES },
        "policy": "drop-oldest",
        "subscribed": o.subscribed,
        "rx_burst": a.rx_burst(),
        "calibrated": calibration.is_some(),
        "calibration": calibration.map(|c| json!({
            "rate_offered": c["rate_offered"], "seconds": c["seconds"], "rx_burst": 32, "offered": c["sent"],
            "generator_dropped_messages": c["generator_dropped_messages"], "received": c["received"],
            "delivered_msgs_per_s": c["achieved_msgs_per_s"],
        })),
        "sustainable_msgs_per_s": sustainable,
        "offered_msgs_per_s": o.overload.rate,
        "overload": phase_json(&o.overload),
        "offered": o.offered_total, "sent": o.sent_total, "received": o.received,
        "generator_dropped_packets": o.gen_dropped_packets_total,
        "generator_dropped_messages": o.gen_dropped_messages_total,
        "rss_bytes": {
            "load_start": o.rss_load_start,
            "max_during_load": max(|s| s.rss_bytes).max(o.rss_load_start),
            "after": o.rss_after,
        },
        "pool_bytes": max(|s| s.pool_bytes),
        "pool_used_bytes_max": max(|s| s.pool_used_bytes),
        "queued_messages_max": max(|s| s.queued_messages),
        "degradation_level_max": max(|s| s.degradation_level),
        "degradation_first_ms": first_at,
        "samples": o.samples.len(),
        "degradation_steps": steps,
        "timeline": { "fields": fields, "every_ms": 100, "rows": rows(&o.samples) },
        "recovery_timeline": { "fields": fields, "every_ms": 10, "rows": rows(&o.recovery_samples) },
        "during_overload": during,
        "counters": counters,
        "identities": {
            "messages_published": c(ProtoCounter::MessagesPublished.into()),
            "messages_accounted": published_rhs,
            "published_holds": c(ProtoCounter::MessagesPublished.into()) == published_rhs,
            "deliveries_queued": c(ProtoCounter::DeliveriesQueued.into()),
            "deliveries_accounted": delivered_rhs,
            "deliveries_still_queued": i64::try_from(still_queued).unwrap_or(i64::MAX),
        },
        "recovery_ms": o.recovery_ms,
        "probes_sent": o.probes_sent,
        "settled": o.settled,
        "credit_entries": o.credit_entries,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(reports),
    })
}

/// Rate offered while calibrating: far above what either side can do, so
/// the generator sends as fast as the ring takes datagrams and the worker
/// is saturated.
const CALIBRATION_RATE: u64 = 100_000_000;

/// The sustainable rate S: a 2 s run of this program at
/// [`CALIBRATION_RATE`] with the appliance's default RX burst, where what
/// the worker takes in it also sends (the excess stays in the RX ring), so
/// the delivered rate is its capacity. Measured in a process of its own
/// because the RX burst is fixed at startup, and with the overload's
/// larger burst a saturated worker spends its time taking messages in and
/// delivers less (see `OVERLOAD_RX_BURST`).
fn calibrate(a: &Args) -> anyhow::Result<Value> {
    let cal = Args {
        seconds: Some(2.0),
        streams: Some(a.streams()),
        subscribers: Some(a.subscribers()),
        rx_burst: None,
        overload: false,
        ..*a
    };
    let r = run_child(&cal, CALIBRATION_RATE, &["--rx-burst", "32"])?;
    anyhow::ensure!(r["subscribed"] == true, "the calibration run could not subscribe: {r}");
    Ok(r)
}

fn overload(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let (sustainable, calibration) = match a.rate {
        Some(r) => (r, None),
        None => {
            eprintln!("[bench] overload: calibrating the sustainable rate (2 s at saturation, RX burst 32)");
            let c = calibrate(a)?;
            ((c["achieved_msgs_per_s"].as_f64().unwrap_or(0.0) as u64).max(1000), Some(c))
        }
    };
    let spec = OverloadSpec { sustainable, factor: 1.5, seconds: a.seconds(), recovery_limit_s: 10.0 };
    eprintln!(
        "[bench] overload: S = {sustainable} msg/s; offering {:.0} msg/s for {} s",
        1.5 * sustainable as f64,
        a.seconds()
    );
    let stats = cfg.telemetry.stats_path.clone();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.overload(load, spec, &stats, stop))?;
    let o = outcome?;
    let r = overload_json(a, &o, sustainable, calibration.as_ref(), &reports);
    if a.json {
        println!("{r}");
        return Ok(());
    }
    let rss = &r["rss_bytes"];
    let id = &r["identities"];
    println!(
        "overload: {} streams (wire class = stream % 4), {} subscribers, {} B, drop-oldest, memory budget {} \
         (stream queues {} each)",
        a.streams(),
        a.subscribers(),
        a.payload,
        mib(&OVERLOAD_BUDGET_BYTES.into()),
        OVERLOAD_STREAM_QUEUE_BYTES
    );
    match &calibration {
        Some(c) => println!(
            "sustainable rate S: {sustainable} msg/s delivered to every subscriber (calibrated: {:.1} s at \
             saturation with RX burst 32)",
            c["seconds"].as_f64().unwrap_or(0.0)
        ),
        None => println!("sustainable rate S: {sustainable} msg/s (given)"),
    }
    let p = &o.overload;
    println!(
        "offered 1.5 x S = {} msg/s for {:.1} s: {} offered, {} sent, {} lost at the generator's ring, {} received",
        p.rate, p.seconds, p.offered, p.sent, p.gen_dropped_messages, p.received
    );
    println!(
        "RSS: {} at load start, {} max during load, {} after",
        mib(&rss["load_start"]),
        mib(&rss["max_during_load"]),
        mib(&rss["after"])
    );
    let first: Vec<String> = (1..=3)
        .map(|l| match r["degradation_first_ms"][l].as_u64() {
            Some(ms) => format!("level {l} at {ms} ms"),
            None => format!("level {l} never sampled"),
        })
        .collect();
    println!(
        "pool: {} of {} max used, {} messages queued at most; sampled degradation level max {} ({})",
        mib(&r["pool_used_bytes_max"]),
        mib(&r["pool_bytes"]),
        r["queued_messages_max"],
        r["degradation_level_max"],
        first.join(", ")
    );
    let d = |k: &str| r["during_overload"][k].as_u64().unwrap_or(0);
    println!(
        "during the overload: {} published; shed on arrival: {} bulk (level 2), {} best effort (level 3), {} pool \
         full, {} refused (block); deliveries dropped: {} drop-oldest, {} conflated, {} disconnected; {} delivered",
        d("messages_published"),
        d("messages_shed_bulk"),
        d("messages_shed_best_effort"),
        d("messages_refused_pool_full"),
        d("messages_refused_backpressure"),
        d("deliveries_dropped_oldest"),
        d("deliveries_conflated"),
        d("deliveries_disconnected"),
        d("deliver_messages")
    );
    println!(
        "identities: published {} = {} accounted ({}); deliveries queued {} = {} accounted + {} still queued",
        id["messages_published"],
        id["messages_accounted"],
        if id["published_holds"] == true { "holds" } else { "DOES NOT HOLD" },
        id["deliveries_queued"],
        id["deliveries_accounted"],
        id["deliveries_still_queued"]
    );
    println!(
        "recovery: {} ms after the load stopped ({} probes); settled {}; generator received {} = deliver_messages {}; \
         worker heap allocations {}",
        o.recovery_ms.map_or("not within 10 s".into(), |v| v.to_string()),
        o.probes_sent,
        o.settled,
        o.received,
        r["counters"]["deliver_messages"],
        r["worker_heap_allocations"]
    );
    Ok(())
}

fn million_json(a: &Args, m: &MillionOutcome, cfg: &Config, reports: &[WorkerReport]) -> Value {
    // The table the worker allocated, rebuilt here after the run (the
    // dataplane is gone) to read its size; no message pool.
    let limits = ms_streams::Limits { queue_bytes: 0, ..ms_dataplane::settings::stream_limits(cfg) };
    let table = ms_streams::Streams::new(limits);
    let table_bytes = table.stream_bytes() + table.subscription_bytes();
    drop(table);
    let subs = u64::from(a.subscribers());
    let expected = m.load.offered * subs;
    json!({
        "scenario": "million",
        "streams": a.streams(), "subscribers": a.subscribers(), "payload": a.payload, "batch": a.batch,
        "stream_table": {
            "max_per_worker": limits.streams, "subscriptions_max": limits.subscriptions, "bytes": table_bytes,
        },
        "stream_table_bytes_per_idle_stream": table_bytes as f64 / f64::from(limits.streams.max(1)),
        "rss_bytes": {
            "before_subscribing": m.rss_before,
            "after_subscribing": m.rss_subscribed,
            "after_load": m.rss_loaded,
            "after_unsubscribing": m.rss_unsubscribed,
            "after_a_second_round": m.rss_second_round,
        },
        "subscribed": m.subscribed,
        "subscribe_seconds": m.subscribe_seconds,
        "streams_active_after_subscribing": m.streams_active,
        "freed": m.freed,
        "load": {
            "rate": m.load.rate, "seconds": m.load.seconds, "offered": m.load.offered, "received": m.load.received,
            "lost": expected.saturating_sub(m.load.received),
            "generator_dropped_packets": m.load.gen_dropped_packets,
        },
        "credit_entries": m.credit_entries,
        "worker_heap_allocations": ms_dataplane::alloc::worker_allocations(),
        "dataplane": nonzero(reports),
    })
}

fn million(a: &Args) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let load = a.load();
    let stats = cfg.telemetry.stats_path.clone();
    let (outcome, reports) = with_dataplane(&cfg, move |g, stop| g.million(load, &stats, stop))?;
    let m = outcome?;
    let r = million_json(a, &m, &cfg, &reports);
    if a.json {
        println!("{r}");
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
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
        a.payload >= 16 && a.batch >= 1 && a.subscribers() >= 1 && a.rate() > 0 && a.seconds() > 0.0,
        "--payload must be >= 16, --batch, --subscribers, --rate and --seconds positive"
    );
    // The stream table (and the Zipf and grant tables) are sized from
    // --streams; the overload adds a probe stream.
    let most = if a.mode() == Mode::Overload { (1 << 24) - 1 } else { 1 << 24 };
    anyhow::ensure!(
        (1..=most).contains(&a.streams()),
        "--streams must be 1..={most} (streams.max_per_worker's limit; --overload adds a probe stream)"
    );
    // Every subscriber is on every stream: the appliance's subscription
    // table (and the generator's grant table, 8 bytes a pair) hold them all.
    anyhow::ensure!(
        a.streams() * u64::from(a.subscribers()) <= 1 << 26 && a.subscribers() <= 64,
        "--streams x --subscribers must be at most 67108864 (streams.subscriptions_max's limit) and \
         --subscribers at most 64"
    );
    anyhow::ensure!(a.zipf.is_finite() && a.zipf >= 0.0, "--zipf must be a finite exponent >= 0");
    let fits = (ms_wire::DATAGRAM_MAX - ms_wire::HEADER_LEN) / (ms_wire::publish::ENTRY_HEADER_LEN + a.payload);
    anyhow::ensure!(
        a.batch <= fits,
        "--batch {} of {} B payloads does not fit one datagram (at most {fits})",
        a.batch,
        a.payload
    );
    match a.mode() {
        Mode::Plain => plain(&a),
        Mode::Overload => overload(&a),
        Mode::Million => million(&a),
    }
}
