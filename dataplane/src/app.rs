//! Startup and shutdown of the dataplane process: pools, ports, workers,
//! the main lcore's wait, and the orderly teardown.

use crate::config::{Config, PortConfig};
use crate::control::{ControlSocket, ControlState, Live, PortInfo};
use crate::counters::WorkerCounters;
use crate::dpdk::eal::Eal;
use crate::dpdk::mbuf::Mempool;
use crate::dpdk::port::{self, Port};
use crate::lcore::mailbox::Mailboxes;
use crate::lcore::turn::QueuePlan;
use crate::settings;
use crate::stop::{Stop, SHUTDOWN_BOUND};
use crate::worker::Worker;
use anyhow::Context;
use ms_netstack::solicit::Solicitations;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Items each worker's mailbox holds.
const MAILBOX_ITEMS: usize = 1024;

/// What a run leaves behind: every worker's counters and every port's
/// driver drops.
pub struct RunReport {
    /// Per worker.
    pub workers: Vec<WorkerReport>,
    /// Per port (name, drops), in config order.
    pub ports: Vec<(String, port::PortDrops)>,
    /// What ended the run, when it was not a stop request: a worker that
    /// panicked, failed to start or did not stop in time. The counters
    /// above are still the run's.
    pub failure: Option<anyhow::Error>,
    /// A worker was still running at exit: EAL must not be cleaned up.
    pub workers_stuck: bool,
}

/// One worker's final counters.
#[derive(Debug)]
pub struct WorkerReport {
    /// Worker lcore.
    pub lcore: u32,
    /// Final counter values.
    pub counters: [u64; crate::counters::COUNTERS_LEN],
}

/// What the main lcore needs besides the config.
pub struct RunContext {
    /// Requested on SIGINT/SIGTERM (see [`crate::stop`]).
    pub stop: Arc<Stop>,
    /// Where the config came from (for status).
    pub origin: String,
    /// Changes the log filter.
    pub set_log_level: crate::control::SetLogLevel,
    /// The log filter in force at start.
    pub log_level: String,
}

/// Runs the dataplane until a stop is requested (or a worker fails), then
/// tears it down within a bound and returns the final counters, with what
/// went wrong if anything did. EAL must be initialised; its cleanup is the
/// caller's (unless [`RunReport::workers_stuck`]).
pub fn run(eal: &Eal, cfg: &Config, ctx: RunContext) -> anyhow::Result<RunReport> {
    let stop = &ctx.stop;
    let control = ControlSocket::bind(&cfg.telemetry.control_socket)?;
    let stats = Arc::new(create_stats(cfg)?);
    let pools = create_pools(eal, cfg)?;
    let worker_pools: Vec<Arc<Mempool>> =
        cfg.worker_lcores().iter().map(|&l| Arc::clone(&pools[&eal.lcore_socket(l)])).collect();
    let mut ports = Vec::new();
    let result = start_ports(eal, cfg, &worker_pools, &mut ports).and_then(|()| {
        let live = Arc::new(Live::new(cfg));
        let state = ControlState {
            running: cfg.clone(),
            origin: ctx.origin,
            live: Arc::clone(&live),
            ports: ports.iter().map(port_info).collect(),
            set_log_level: ctx.set_log_level,
            link: Box::new(port::link_of),
            drops: Box::new(port::drops_of),
            log_level: ctx.log_level,
            started: std::time::Instant::now(),
        };
        let plant = Plant { eal, cfg, ports: &ports, pools: &worker_pools, stats: &stats, stop };
        run_workers(&plant, Main { control, state, live })
    });
    // Read before the ports close: what the drivers dropped.
    let drops = ports.iter().map(|p| (p.name.clone(), port::drops_of(p.id))).collect();
    let run = result?;
    if run.workers_stuck {
        // A worker may still touch the ports and pools: leave them be; the
        // process is about to exit.
        std::mem::forget(worker_pools);
        std::mem::forget(pools);
        std::mem::forget(ports);
    } else {
        for p in &ports {
            p.stop_and_close();
        }
        drop(worker_pools);
        drop(pools);
    }
    Ok(RunReport { workers: run.reports, ports: drops, failure: run.failure, workers_stuck: run.workers_stuck })
}

fn port_info(p: &Port) -> PortInfo {
    PortInfo { name: p.name.clone(), driver: p.driver.clone(), mac: p.mac.to_string(), id: p.id }
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The shared-memory stats segment: one block per worker.
fn create_stats(cfg: &Config) -> anyhow::Result<ms_stats::Segment> {
    let path = &cfg.telemetry.stats_path;
    let names: Vec<&str> = cfg.ports().iter().map(|p| p.name.as_str()).collect();
    let seg = ms_stats::Segment::create(
        path,
        &crate::counters::directory_for(&names),
        cfg.worker_lcores().len(),
        std::process::id(),
        unix_ns(),
    )
    .with_context(|| {
        format!("create the stats segment {} (telemetry.stats_path): is /dev/shm writable?", path.display())
    })?;
    tracing::info!(path = %path.display(), "stats segment created");
    Ok(seg)
}

/// One pool per NUMA socket that has a worker; each worker's RX queues
/// take buffers from its own socket's pool.
fn create_pools(eal: &Eal, cfg: &Config) -> anyhow::Result<BTreeMap<u32, Arc<Mempool>>> {
    let mut pools = BTreeMap::new();
    for &lcore in cfg.worker_lcores() {
        let socket = eal.lcore_socket(lcore);
        if let std::collections::btree_map::Entry::Vacant(e) = pools.entry(socket) {
            let m = &cfg.mempool;
            let pool = Mempool::new(eal, &format!("ms_pool_s{socket}"), m.mbufs, m.cache, socket)?;
            e.insert(Arc::new(pool));
        }
    }
    Ok(pools)
}

fn start_ports(eal: &Eal, cfg: &Config, pools: &[Arc<Mempool>], ports: &mut Vec<Port>) -> anyhow::Result<()> {
    let pools: Vec<&Mempool> = pools.iter().map(|p| p.as_ref()).collect();
    for pc in cfg.ports() {
        let id = port::probe(eal, pc)?;
        let p = port::start(id, pc, &pools)?;
        let (up, speed) = p.link();
        tracing::info!(port = %p.name, id = p.id, driver = %p.driver, mac = %p.mac, rss = p.rss,
            socket = p.socket, link_up = up, speed_mbps = speed, ipv4 = %pc.ipv4.value, "port started");
        ports.push(p);
    }
    Ok(())
}

/// One port's host on one worker; `asked` is shared by the port's workers.
fn queue_plan(pc: &PortConfig, p: &Port, cfg: &Config, asked: &Arc<Solicitations>) -> anyhow::Result<QueuePlan> {
    // Each static neighbour goes to the port whose subnet holds it (the
    // config check made sure one does).
    let statics = cfg
        .arp
        .statics
        .iter()
        .filter(|n| pc.ipv4.value.is_host_address(n.ip.value.0))
        .map(|n| (n.ip.value.0, settings::mac(n.mac)))
        .collect();
    let routes = pc.routes.iter().map(|r| (settings::prefix(r.to), r.via.value.0)).collect();
    let plan = QueuePlan {
        port: p.id,
        name: pc.name.clone(),
        host: settings::host(pc, p.mac, cfg),
        statics,
        routes,
        asked: Arc::clone(asked),
        tx_udp_checksum: p.tx_udp_checksum,
        rx_udp_checksum: p.rx_udp_checksum,
    };
    // Checked here, so the workers building theirs from it cannot fail.
    plan.build(0).map_err(anyhow::Error::msg)?;
    Ok(plan)
}

/// What workers are built from, started before any of them.
struct Plant<'a> {
    eal: &'a Eal,
    cfg: &'a Config,
    ports: &'a [Port],
    pools: &'a [Arc<Mempool>],
    stats: &'a Arc<ms_stats::Segment>,
    stop: &'a Arc<Stop>,
}

fn build_workers(plant: &Plant<'_>, live: &Arc<Live>) -> anyhow::Result<Vec<Worker>> {
    let Plant { eal, cfg, ports, pools, stats, stop } = *plant;
    let tsc_per_ms = (eal.tsc_hz() / 1000).max(1);
    let priority = cfg.workers.realtime_priority;
    if priority > 0 {
        crate::lcore::realtime::check(priority)?;
        if let Some((runtime_us, period_us)) = crate::lcore::realtime::throttling() {
            tracing::warn!(
                runtime_us,
                period_us,
                "SCHED_FIFO workers are stopped for the rest of every period by the kernel's real-time throttling; \
                 set kernel.sched_rt_runtime_us=-1 only where the workers' CPUs are isolated"
            );
        }
    }
    let n = cfg.worker_lcores().len();
    let mail = Arc::new(Mailboxes::new(n, MAILBOX_ITEMS));
    let mut workers = Vec::with_capacity(n);
    // One record of outstanding ARP requests per port, shared by its workers.
    let asked: Vec<Arc<Solicitations>> =
        ports.iter().map(|_| Arc::new(Solicitations::new(cfg.arp.neighbors_max.value as usize))).collect();
    let plans = cfg
        .ports()
        .iter()
        .zip(ports)
        .zip(&asked)
        .map(|((pc, p), asked)| queue_plan(pc, p, cfg, asked))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (index, pool) in pools.iter().enumerate() {
        workers.push(Worker {
            index,
            queues: plans.clone(),
            pool: Arc::clone(pool),
            mail: Arc::clone(&mail),
            service_port: cfg.service.udp_port,
            tsc_per_ms,
            counters: Arc::new(WorkerCounters::new(Arc::clone(stats), index)),
            stop: Arc::clone(stop.flag()),
            live: Arc::clone(live),
            burst: usize::from(cfg.workers.rx_burst),
            realtime_priority: cfg.workers.realtime_priority,
            service: crate::service::spec(cfg.service.handler, settings::stream_limits(cfg)),
        });
    }
    Ok(workers)
}

/// The control socket and what it serves, handed to its own thread.
struct Main {
    control: ControlSocket,
    state: ControlState,
    live: Arc<Live>,
}

/// Serves the control socket on its own thread until `stop`, so a slow
/// client delays nobody: not the main lcore's heartbeat, not shutdown.
fn spawn_control(main: Main, stop: &Stop) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let stop = Arc::clone(stop.flag());
    let Main { control, mut state, .. } = main;
    let handle = std::thread::Builder::new().name("control".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            control.poll(&mut state);
            std::thread::sleep(Duration::from_millis(10));
        }
    })?;
    Ok(handle)
}

/// Launches every worker (all are built first, so nothing can fail with
/// some running), beats the stats heartbeat until a stop is requested
/// while the control socket is served on its own thread, then gives the
/// workers and the control thread [`SHUTDOWN_BOUND`] to return. Whatever
/// ended the run (a signal, a worker that panicked, a worker that failed
/// to start), the workers' counters are reported; [`Run::failure`] says
/// what went wrong, if anything.
fn run_workers(plant: &Plant<'_>, main: Main) -> anyhow::Result<Run> {
    let Plant { eal, cfg, stop, .. } = *plant;
    let workers = build_workers(plant, &main.live)?;
    let mut blocks = Vec::with_capacity(workers.len());
    let mut launched = Ok(());
    for (worker, &lcore) in workers.into_iter().zip(cfg.worker_lcores()) {
        blocks.push((lcore, Arc::clone(&worker.counters)));
        launched = launch_worker(eal, lcore, worker, stop);
        if launched.is_err() {
            blocks.pop();
            break;
        }
    }
    let mut control = None;
    if launched.is_ok() {
        // A control thread that cannot start ends the run like a worker
        // that cannot: the workers are stopped and reported.
        match serve_until_stopped(plant, main, blocks.len()) {
            Ok(c) => control = Some(c),
            Err(e) => launched = Err(e),
        }
    }
    stop.request();
    let since = Instant::now();
    let control_stuck = control.is_some_and(|c| !Stop::until(|| c.is_finished(), since, SHUTDOWN_BOUND));
    let stuck: Vec<u32> = blocks
        .iter()
        .map(|(l, _)| *l)
        .filter(|&l| !Stop::until(|| !eal.is_running(l), since, SHUTDOWN_BOUND))
        .collect();
    // Only lcores that returned may be waited for (a wait on one still
    // running would never end).
    let failed: Vec<u32> =
        blocks.iter().map(|(l, _)| *l).filter(|l| !stuck.contains(l)).filter(|&l| eal.wait(l) != 0).collect();
    let reports = blocks.into_iter().map(|(lcore, c)| WorkerReport { lcore, counters: c.snapshot() }).collect();
    let failure = match (launched, stuck.is_empty(), failed.is_empty()) {
        (Err(e), _, _) => Some(e),
        (Ok(()), false, _) => Some(anyhow::anyhow!(
            "worker(s) on lcore(s) {stuck:?} did not stop within {SHUTDOWN_BOUND:?}; their counters are as last published"
        )),
        (Ok(()), true, false) => {
            Some(anyhow::anyhow!("worker(s) on lcore(s) {failed:?} panicked (see the log above); the dataplane stopped"))
        }
        (Ok(()), true, true) => None,
    };
    if control_stuck {
        tracing::warn!(bound = ?SHUTDOWN_BOUND, "the control thread did not stop in time; leaving it");
    }
    Ok(Run { reports, failure, workers_stuck: !stuck.is_empty() })
}

/// What [`run_workers`] leaves.
struct Run {
    reports: Vec<WorkerReport>,
    failure: Option<anyhow::Error>,
    workers_stuck: bool,
}

/// Launches `worker` on `lcore`. A worker that panics requests the stop.
fn launch_worker(eal: &Eal, lcore: u32, worker: Worker, stop: &Arc<Stop>) -> anyhow::Result<()> {
    let stop = Arc::clone(stop);
    #[cfg(debug_assertions)]
    if crate::stop::fault("MS_FAULT_LAUNCH_FAIL_LCORE") == Some(lcore) {
        anyhow::bail!("worker on lcore {lcore}: launch refused (fault injected by MS_FAULT_LAUNCH_FAIL_LCORE)");
    }
    eal.launch(lcore, move || {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run())).unwrap_or(-1);
        if code != 0 {
            tracing::error!(lcore, "worker panicked; stopping the dataplane");
            stop.request();
        }
        code
    })
    .with_context(|| format!("worker on lcore {lcore}"))
}

/// Serves the control socket and beats the stats heartbeat until a stop
/// is requested; returns the control thread.
fn serve_until_stopped(plant: &Plant<'_>, main: Main, workers: usize) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let Plant { ports, stats, stop, .. } = *plant;
    let live = Arc::clone(&main.live);
    let control = spawn_control(main, stop)?;
    // Ready once every worker built its tables (the message pool is
    // touched page by page) and polls.
    while live.workers_started.load(Ordering::Acquire) < workers && !stop.is_requested() {
        stats.beat(unix_ns());
        stop.wait(Duration::from_millis(5));
    }
    tracing::info!(workers, ports = ports.len(), instance = format!("{:016x}", live.instance), "ready");
    while !stop.wait(Duration::from_millis(20)) {
        stats.beat(unix_ns());
    }
    tracing::info!("stopping");
    Ok(control)
}
