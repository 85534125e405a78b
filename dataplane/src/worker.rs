//! The run-to-completion loop of one worker lcore: read the time once, let
//! the service start its turn, drain mail from other workers, then for each
//! of its queues rx burst -> netstack -> service, and end the turn (the
//! scheduler's sends, TX bursts, counters once per turn). Nothing here
//! allocates, locks or logs per packet; the service is built on this lcore
//! when the loop starts.

use crate::control::Live;
use crate::counters::{Counter, WorkerCounters};
use crate::dpdk::mbuf;
use crate::dpdk::mbuf::Mempool;
use crate::dpdk::port;
use crate::lcore::clock::{self, Clock};
use crate::lcore::mailbox::{Handoff, Mailboxes, DRAIN_PER_TURN};
use crate::lcore::turn::{QueuePlan, Turn, BURST_MAX};
use crate::service::{Service, ServiceSpec};
use ms_dpdk_sys as sys;

/// Received packets whose data is prefetched ahead of the one handled.
const PREFETCH_AHEAD: usize = 2;
/// Cache lines prefetched per packet: Ethernet, IPv4 and UDP headers and
/// the first messages of a PUBLISH.
const PREFETCH_LINES: usize = 4;
use ms_netstack::host::{ReplyKind, Shared, Verdict};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a worker is built from: the main lcore makes it and moves it to
/// the worker's lcore, which builds everything it owns (host tables,
/// service tables and pool) there, so that memory is local to its core.
pub struct Worker {
    /// Index among the workers (= its queue index on every port).
    pub index: usize,
    /// One plan per port, for the host state of its queue `index`.
    pub queues: Vec<QueuePlan>,
    /// Pool for packets the worker originates (DELIVER, ACK, ARP).
    pub pool: Arc<Mempool>,
    /// Mailboxes of all workers.
    pub mail: Arc<Mailboxes>,
    /// UDP port the service answers from.
    pub service_port: u16,
    /// TSC ticks per millisecond.
    pub tsc_per_ms: u64,
    /// What runs on the service port.
    pub service: ServiceSpec,
    /// Published counters.
    pub counters: Arc<WorkerCounters>,
    /// Set by the main lcore to stop.
    pub stop: Arc<AtomicBool>,
    /// Settings that change at run time.
    pub live: Arc<Live>,
    /// Packets per RX burst (the most; adaptive below it).
    pub burst: usize,
    /// `SCHED_FIFO` priority of the worker thread; 0 leaves it as it is.
    pub realtime_priority: u8,
}

/// A worker running on its lcore.
struct Running {
    turn: Turn,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    burst: usize,
}

impl Worker {
    /// Builds what the worker owns on the calling lcore, then polls until
    /// `stop` is set; returns the lcore exit code.
    pub fn run(self) -> i32 {
        assert!(self.burst >= 1 && self.burst <= BURST_MAX);
        if self.realtime_priority > 0 {
            // The main lcore checked that the kernel allows it (realtime::check).
            if let Err(e) = crate::lcore::realtime::make_current_fifo(self.realtime_priority) {
                panic!("worker {}: SCHED_FIFO priority {}: {e}", self.index, self.realtime_priority);
            }
        }
        let queues = self.queues.iter().map(|p| p.build(self.index as u16));
        // The main lcore built each plan once already, so this cannot fail.
        let queues = match queues.collect::<Result<Vec<_>, String>>() {
            Ok(q) => q,
            Err(e) => panic!("worker {}: {e}", self.index),
        };
        let clock = Clock::start(self.tsc_per_ms);
        let turn = Turn::new(self.index, queues, self.pool, Arc::clone(&self.mail), self.service_port, clock);
        let workers = self.mail.len() as u32;
        let service = self.service.build(&turn, workers, self.live.instance);
        let running = Running { turn, stop: self.stop, live: self.live, burst: self.burst };
        running.run(service, &self.counters)
    }
}

impl Running {
    fn run(mut self, mut service: Service, counters: &Arc<WorkerCounters>) -> i32 {
        let mut rx = [std::ptr::null_mut(); BURST_MAX];
        let mut last_flush_tsc = 0u64;
        let mut rx_burst = self.burst;
        self.turn.c.set(Counter::RxBurst, rx_burst as u64);
        // Everything is allocated: from here on, any heap allocation on
        // this lcore is a bug that the counting allocator reports.
        crate::alloc::count_this_thread(true);
        self.live.workers_started.fetch_add(1, Ordering::Release);
        #[cfg(debug_assertions)]
        self.injected_faults();
        let tsc_per_ms = self.turn.clock.tsc_per_ms;
        while !self.stop.load(Ordering::Relaxed) {
            let tsc = clock::tsc();
            self.turn.begin(tsc);
            // Expiry first: the previous turn sent every pending DELIVER,
            // so no freed subscriber slot has one in flight.
            service.begin_turn(&mut self.turn, &self.live);
            self.read_mail(&mut service);
            let mut received = 0;
            for q in 0..self.turn.queues.len() {
                received += self.poll(&mut service, q, &mut rx[..rx_burst]);
            }
            rx_burst = self.adapt_rx_burst(&service, rx_burst, received);
            self.finish_turn(&mut service, true);
            if received > 0 {
                let cycles = clock::tsc().saturating_sub(tsc);
                self.turn.c.observe_burst_ns(cycles.saturating_mul(1_000_000) / tsc_per_ms);
            }
            // Publish after every busy turn, and when idle once a millisecond.
            if self.turn.c.is_dirty() || tsc.saturating_sub(last_flush_tsc) >= tsc_per_ms {
                self.turn.c.flush(counters);
                last_flush_tsc = tsc;
            }
        }
        crate::alloc::count_this_thread(false);
        self.finish_turn(&mut service, false);
        self.turn.drop_all_held();
        self.turn.c.flush(counters);
        0
    }

    /// Faults the shutdown tests inject through the environment (debug
    /// builds only): a worker that panics, or one that never returns.
    #[cfg(debug_assertions)]
    fn injected_faults(&self) {
        let me = Some(self.turn.index as u32);
        if crate::stop::fault("MS_FAULT_PANIC_WORKER") == me {
            crate::alloc::count_this_thread(false);
            panic!("worker {} panics (fault injected by MS_FAULT_PANIC_WORKER)", self.turn.index);
        }
        if crate::stop::fault("MS_FAULT_HANG_WORKER") == me {
            crate::alloc::count_this_thread(false);
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }

    /// Adaptive batching: a poll that filled its burst asks for twice as
    /// many next time (throughput under load), one that got less than a
    /// quarter asks for half (latency when idle), between the tunables'
    /// floor and `workers.rx_burst`.
    fn adapt_rx_burst(&mut self, service: &Service, burst: usize, received: usize) -> usize {
        let floor = service.rx_burst_min().clamp(1, self.burst);
        let polled = burst * self.turn.queues.len();
        let next = if received >= polled {
            burst * 2
        } else if received * 4 < polled {
            burst / 2
        } else {
            burst
        }
        .clamp(floor, self.burst);
        if next != burst {
            self.turn.c.set(Counter::RxBurst, next as u64);
        }
        next
    }

    /// Ends a turn: neighbour timeouts (not on the shutdown pass, which
    /// asks nothing new), the service's sends, TX bursts and frees.
    fn finish_turn(&mut self, service: &mut Service, running: bool) {
        if running {
            self.turn.sweep_neighbors();
        }
        service.end_turn(&mut self.turn);
        self.turn.flush();
    }

    /// Applies what other workers posted, a bounded number per turn.
    fn read_mail(&mut self, service: &mut Service) {
        for _ in 0..DRAIN_PER_TURN {
            let Some(item) = self.turn.mail.take(self.turn.index) else {
                return;
            };
            match item {
                Handoff::Neighbor { port, ip, mac, claim } => self.turn.learn_shared(port, Shared { ip, mac, claim }),
                other => service.on_mail(&mut self.turn, other),
            }
        }
    }

    /// Receives and handles one burst of at most `rx.len()` packets;
    /// returns how many it had.
    fn poll(&mut self, service: &mut Service, q: usize, rx: &mut [*mut sys::rte_mbuf]) -> usize {
        let (port_id, queue_id) = (self.turn.queues[q].port, self.turn.queues[q].queue);
        let n = port::rx_burst(port_id, queue_id, rx);
        if n == 0 {
            self.turn.c.add_quiet(Counter::PollsIdle, 1);
            return 0;
        }
        self.turn.c.add(Counter::PollsBusy, 1);
        self.turn.c.add(Counter::RxPackets, n as u64);
        self.turn.c.port_rx(q, n as u64);
        // Packets ahead of the one being handled have their first lines on
        // the way (headers and the first messages); the rest of a datagram
        // follows from the hardware prefetcher once it is being read.
        for &m in rx[..n].iter().take(PREFETCH_AHEAD) {
            // SAFETY: m came from rx_burst and is owned by this worker.
            unsafe { mbuf::prefetch_data(m, PREFETCH_LINES) };
        }
        for i in 0..n {
            if let Some(&ahead) = rx[..n].get(i + PREFETCH_AHEAD) {
                // SAFETY: as above.
                unsafe { mbuf::prefetch_data(ahead, PREFETCH_LINES) };
            }
            self.handle(service, q, rx[i]);
        }
        n
    }

    fn handle(&mut self, service: &mut Service, q: usize, m: *mut sys::rte_mbuf) {
        let t = &mut self.turn;
        // SAFETY: m came from rx_burst, so this worker owns it exclusively.
        if unsafe { mbuf::segments(m) } != 1 {
            t.c.add(Counter::RxMultiSegment, 1);
            t.release(m);
            return;
        }
        // SAFETY: as above; the slice dies before m is sent or freed.
        let frame = unsafe { mbuf::data_mut(m) };
        t.c.add(Counter::RxBytes, frame.len() as u64);
        // SAFETY: as above.
        let nic_checked = t.queues[q].rx_udp_checksum && unsafe { mbuf::l4_checksum_good(m) };
        let verdict = t.queues[q].host.process_checked(frame, t.now.ms, nic_checked);
        t.share_learned(q);
        t.release_ready(q);
        match verdict {
            Verdict::Transmit { len, kind } => {
                let counter = match kind {
                    ReplyKind::Arp => Counter::ArpRepliesSent,
                    ReplyKind::IcmpEcho => Counter::IcmpEchoReplies,
                };
                t.c.add(counter, 1);
                t.transmit(q, m, len);
            }
            Verdict::Service(d) => {
                t.c.add(Counter::ServiceDatagrams, 1);
                service.on_datagram(t, q, m, &d);
            }
            Verdict::Learned => {
                t.c.add(Counter::ArpLearned, 1);
                t.release(m);
            }
            Verdict::Drop(reason) => {
                t.c.dropped(reason);
                t.release(m);
            }
        }
    }
}
