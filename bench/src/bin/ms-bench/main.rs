//! `ms-bench`: the real dataplane worker against an in-process traffic
//! generator over a crossed pair of DPDK ring ports (no kernel in the
//! path). One run at one offered rate; `--sweep` finds the highest rate
//! without loss, `--suite` runs every scenario, `--overload` overloads a
//! small memory budget and watches it degrade and recover, `--million`
//! subscribes a million streams and follows the process's memory; `--json`
//! for machines.

mod ceilings;
mod check;
mod million;
mod overload;
mod plain;
mod rtt;
mod sweep;

use anyhow::Context;
use clap::Parser;
use ms_bench::{Classes, Generator, Load};
use ms_dataplane::app::WorkerReport;
use ms_dataplane::counters;
use ms_dataplane::dpdk::{eal, mbuf::Mempool, port};
use ms_dataplane::{app, config::Config};
use overload::{OVERLOAD_BUDGET_BYTES, OVERLOAD_RX_BURST, OVERLOAD_STREAM_QUEUE_BYTES};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[global_allocator]
static ALLOC: ms_dataplane::alloc::CountingAlloc = ms_dataplane::alloc::CountingAlloc;

/// Benchmark the dataplane with an in-DPDK generator (open loop).
///
/// MS_BENCH_CONFIG: YAML appended to the generated dataplane config, e.g.
/// 'scheduler: { tx_budget_min: 4096 }' (runs started by --sweep and
/// --suite inherit it).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: Args,
    /// The regression guard: run the headline scenarios and testpmd's csum
    /// ceiling, and compare their ratios with the baseline in this file.
    #[arg(long, conflicts_with_all = ["sweep", "suite", "overload", "million", "rtt"])]
    check: Option<std::path::PathBuf>,
    /// With --check: write the file instead of comparing.
    #[arg(long, requires = "check")]
    write_baseline: bool,
}

/// What one run does (every flag but the regression guard's).
#[derive(Debug, Clone, Copy, clap::Args)]
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
    /// Closed loop: this many round trips with one message in flight (after
    /// 10,000 not measured), like Aeron's ping/pong; P50/P99/P99.9/max.
    #[arg(long, conflicts_with_all = ["sweep", "suite", "overload", "million"])]
    rtt: Option<u64>,
    /// workers.realtime_priority of the generated config: 1..99 runs the
    /// worker SCHED_FIFO [default: 0, normal scheduling].
    #[arg(long, default_value_t = 0)]
    realtime_priority: u8,
    /// UDP checksums on the link, both ways: `software` (computed and
    /// checked by the worker and the generator) or `none` (sent as 0,
    /// which IPv4 allows, so nobody computes or checks them).
    #[arg(long, value_enum, default_value_t = LinkChecksum::Software)]
    udp_checksum: LinkChecksum,
}

/// The link's UDP checksums (`--udp-checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LinkChecksum {
    Software,
    None,
}

impl LinkChecksum {
    fn yaml(self) -> &'static str {
        match self {
            LinkChecksum::Software => "software",
            LinkChecksum::None => "none",
        }
    }
}

/// What the program does, with every default resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Overload,
    Million,
    RoundTrip,
}

impl Args {
    fn mode(&self) -> Mode {
        if self.overload {
            Mode::Overload
        } else if self.million {
            Mode::Million
        } else if self.rtt.is_some() {
            Mode::RoundTrip
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
            // The most the round trips may take.
            Mode::RoundTrip => 120.0,
        })
    }

    fn streams(&self) -> u64 {
        self.streams.unwrap_or(match self.mode() {
            Mode::Plain | Mode::RoundTrip => 1,
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
  - {{ name: dut, device: "net_ring_bench_dut", mac: "02:4d:53:00:00:01", ipv4: "198.18.0.1/24", udp_checksum: {csum} }}
workers: {{ lcores: [1], rx_burst: {rx_burst}, realtime_priority: {rt} }}
streams: {{ max_per_worker: {streams}, subscribers_max: 64, subscriptions_max: {subs} }}
mempool: {{ mbufs: 32767, cache: 256 }}
telemetry: {{ stats_path: "{d}/stats", control_socket: "{d}/dp.sock" }}
flow: {{ initial_credit_bytes: {credit}, default_policy: drop-oldest }}
"#,
        subs = (streams * u64::from(a.subscribers().max(1))).min(1 << 26),
        credit = ms_bench::INITIAL_CREDIT,
        rx_burst = a.rx_burst(),
        rt = a.realtime_priority,
        csum = a.udp_checksum.yaml(),
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
        // The overload exercises the queue, its budget and the degradation
        // steps: with cut-through, subscribers that always have credit are
        // sent everything at once and the excess stays in the RX ring.
        yaml.push_str("scheduler: { cut_through: false }\n");
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
        // The generator sends what the port does (`--udp-checksum`).
        udp_checksum: match cfg.ports().first().map(|p| p.udp_checksum) {
            Some(ms_dataplane::config::UdpChecksum::None) => ms_netstack::host::TxChecksum::Zero,
            _ => ms_netstack::host::TxChecksum::Full,
        },
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

/// Bytes as MiB with one decimal, "-" if not a number.
fn mib(bytes: &Value) -> String {
    bytes.as_f64().map_or("-".into(), |b| format!("{:.1} MiB", b / f64::from(1 << 20)))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let a = cli.args;
    if let Some(file) = &cli.check {
        return check::check(&a, file, cli.write_baseline);
    }
    if a.suite {
        return sweep::suite(&a);
    }
    if a.sweep {
        let r = sweep::sweep(&a)?;
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
        Mode::Plain => plain::plain(&a),
        Mode::Overload => overload::overload(&a),
        Mode::Million => million::million(&a),
        Mode::RoundTrip => rtt::rtt(&a),
    }
}
