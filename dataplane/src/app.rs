//! Startup and shutdown of the dataplane process: pools, ports, workers,
//! the main lcore's wait, and the orderly teardown.

use crate::config::{Config, PortConfig};
use crate::counters::WorkerCounters;
use crate::eal::Eal;
use crate::mbuf::Mempool;
use crate::port::{self, Port};
use crate::worker::{Worker, WorkerQueue};
use anyhow::Context;
use ms_netstack::arp_cache::Timers;
use ms_netstack::host::{Host, HostConfig};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one worker at the end of a run.
#[derive(Debug)]
pub struct WorkerReport {
    /// Worker lcore.
    pub lcore: u32,
    /// Final counter values.
    pub counters: [u64; crate::counters::COUNTERS_LEN],
}

/// Runs the dataplane until `stop` is set, then tears it down and returns
/// the final counters. EAL must be initialised; its cleanup is the caller's.
pub fn run(eal: &Eal, cfg: &Config, stop: &Arc<AtomicBool>) -> anyhow::Result<Vec<WorkerReport>> {
    let pools = create_pools(eal, cfg)?;
    let mut ports = Vec::new();
    let result = start_ports(eal, cfg, &pools, &mut ports).and_then(|()| run_workers(eal, cfg, &ports, stop));
    for p in &ports {
        p.stop_and_close();
    }
    drop(pools);
    result
}

/// One pool per NUMA socket that has a worker, so RX buffers are local.
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

fn start_ports(
    eal: &Eal,
    cfg: &Config,
    pools: &BTreeMap<u32, Arc<Mempool>>,
    ports: &mut Vec<Port>,
) -> anyhow::Result<()> {
    let queues = u16::try_from(cfg.worker_lcores().len()).expect("config caps workers");
    let first_pool = pools.values().next().expect("at least one worker, so one pool");
    for pc in cfg.ports() {
        let id = port::probe(eal, pc)?;
        let p = port::start(id, pc, queues, first_pool)?;
        let (up, speed) = p.link();
        tracing::info!(port = %p.name, id = p.id, driver = %p.driver, mac = %p.mac, rss = p.rss,
            socket = p.socket, link_up = up, speed_mbps = speed, ipv4 = %pc.ipv4.value, "port started");
        ports.push(p);
    }
    Ok(())
}

fn host_for(pc: &PortConfig, p: &Port, cfg: &Config) -> anyhow::Result<Host> {
    let mut host = Host::new(HostConfig {
        mac: p.mac,
        ip: pc.ipv4.value.addr,
        prefix_len: pc.ipv4.value.len,
        service_port: cfg.service.udp_port,
        arp: Timers {
            entry_ttl_ms: u64::from(cfg.arp.entry_ttl_s) * 1000,
            request_interval_ms: u64::from(cfg.arp.request_interval_ms),
        },
    });
    for r in &pc.routes {
        host.add_route(r.to.prefix(), r.via.value.0)
            .map_err(|e| anyhow::anyhow!("port {}: route {} via {}: {e:?}", pc.name, r.to, r.via.value.0))?;
    }
    Ok(host)
}

fn build_workers(eal: &Eal, cfg: &Config, ports: &[Port], stop: &Arc<AtomicBool>) -> anyhow::Result<Vec<Worker>> {
    let tsc_per_ms = (eal.tsc_hz() / 1000).max(1);
    let mut workers = Vec::with_capacity(cfg.worker_lcores().len());
    for i in 0..cfg.worker_lcores().len() {
        let mut queues = Vec::with_capacity(ports.len());
        for (pc, p) in cfg.ports().iter().zip(ports) {
            queues.push(WorkerQueue { port: p.id, queue: i as u16, host: host_for(pc, p, cfg)? });
        }
        workers.push(Worker {
            queues,
            counters: Arc::new(WorkerCounters::default()),
            stop: Arc::clone(stop),
            burst: usize::from(cfg.workers.rx_burst),
            tsc_per_ms,
            service: cfg.service.handler.build(),
            service_port: cfg.service.udp_port,
        });
    }
    Ok(workers)
}

/// Launches every worker (all are built first, so nothing can fail with
/// some running), waits for `stop`, then waits for every worker to return.
fn run_workers(eal: &Eal, cfg: &Config, ports: &[Port], stop: &Arc<AtomicBool>) -> anyhow::Result<Vec<WorkerReport>> {
    let workers = build_workers(eal, cfg, ports, stop)?;
    let mut blocks = Vec::with_capacity(workers.len());
    let mut launched = Ok(());
    for (worker, &lcore) in workers.into_iter().zip(cfg.worker_lcores()) {
        blocks.push((lcore, Arc::clone(&worker.counters)));
        launched = eal.launch(lcore, move || worker.run()).with_context(|| format!("worker on lcore {lcore}"));
        if launched.is_err() {
            break;
        }
    }
    if launched.is_ok() {
        tracing::info!(workers = blocks.len(), ports = ports.len(), "ready");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::info!("stopping");
    }
    stop.store(true, Ordering::Relaxed);
    eal.wait_all();
    launched?;
    Ok(blocks.into_iter().map(|(lcore, c)| WorkerReport { lcore, counters: c.snapshot() }).collect())
}
