//! The run-to-completion loop of one worker lcore: mail from other workers,
//! then for each of its queues rx burst -> parse -> act -> tx burst, with
//! counters flushed once per burst. Nothing here allocates, locks or logs
//! per packet (the stream tables are allocated once, when the loop starts).

use crate::counters::{Counter, LocalCounters, WorkerCounters};
use crate::mailbox::{Handoff, Mailboxes, DRAIN_PER_TURN};
use crate::mbuf::{self, Mempool};
use crate::port;
use crate::pubsub::{Clock, PubSub};
use crate::service::{Peer, ServiceAction, ServiceHandler};
use ms_dpdk_sys as sys;
use ms_netstack::arp_cache::{Learned, Parked, QUEUE_MAX};
use ms_netstack::host::{
    Host, ReplyKind, Resolution, ServiceDatagram, Shared, UdpEndpoint, Verdict, UDP_PAYLOAD_OFFSET,
};
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_streams::Limits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Largest RX burst a worker accepts (config is checked against it).
pub const BURST_MAX: usize = ms_config::RX_BURST_MAX;

/// One (port, queue) a worker owns, with its host state.
pub struct WorkerQueue {
    /// DPDK port id.
    pub port: u16,
    /// Queue index (= worker index).
    pub queue: u16,
    /// ARP cache, routes and identity for this port, private to the worker.
    pub host: Host,
}

/// What runs on the service port.
pub enum Service {
    /// A simple handler (sink, echo).
    Simple(Box<dyn ServiceHandler>),
    /// The streams protocol, with these table bounds.
    Streams(Limits),
}

/// Everything a worker owns. Built on the main lcore, moved to the worker.
pub struct Worker {
    /// Index among the workers (= its queue index on every port).
    pub index: usize,
    /// Queues polled in turn.
    pub queues: Vec<WorkerQueue>,
    /// Pool for packets the worker originates (DELIVER, ACK, ARP refresh).
    pub pool: Arc<Mempool>,
    /// Mailboxes of all workers.
    pub mail: Arc<Mailboxes>,
    /// Published counters.
    pub counters: Arc<WorkerCounters>,
    /// Set by the main lcore to stop.
    pub stop: Arc<AtomicBool>,
    /// Settings that change at run time.
    pub live: Arc<crate::control::Live>,
    /// Packets per RX burst.
    pub burst: usize,
    /// TSC ticks per millisecond.
    pub tsc_per_ms: u64,
    /// The UDP service.
    pub service: Service,
    /// UDP port the service answers from.
    pub service_port: u16,
    /// Stream state, built when the loop starts (on the worker's own core,
    /// so its memory is NUMA-local).
    pub(crate) pubsub: Option<Box<PubSub>>,
    /// Queue and next hop of the datagram [`Worker::egress`] held last, so
    /// the caller can tag it ([`Worker::tag_last_held`]).
    pub(crate) last_held: Option<(usize, Ipv4Addr)>,
}

/// Unresolved neighbours the timeout sweep looks at per port per loop turn.
const NEIGHBOR_SWEEP_PER_TURN: usize = 16;

/// Packets to send and to free. Sends go out in bursts per queue; both
/// arrays flush themselves when full, so callers may add any number.
pub(crate) struct Batch {
    tx: [*mut sys::rte_mbuf; BURST_MAX],
    tx_lens: [u32; BURST_MAX],
    /// Messages in each queued frame that is a DELIVER (0 otherwise).
    tx_msgs: [u32; BURST_MAX],
    tx_len: usize,
    tx_q: usize,
    free: [*mut sys::rte_mbuf; BURST_MAX],
    free_len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            tx: [std::ptr::null_mut(); BURST_MAX],
            tx_lens: [0; BURST_MAX],
            tx_msgs: [0; BURST_MAX],
            tx_len: 0,
            tx_q: 0,
            free: [std::ptr::null_mut(); BURST_MAX],
            free_len: 0,
        }
    }

    /// Queues `m` (a `len`-byte frame) for TX on queue index `q`.
    pub(crate) fn send(
        &mut self,
        queues: &[WorkerQueue],
        q: usize,
        m: *mut sys::rte_mbuf,
        len: usize,
        c: &mut LocalCounters,
    ) {
        if self.tx_len == BURST_MAX || (self.tx_len > 0 && self.tx_q != q) {
            self.flush_tx(queues, c);
        }
        self.tx_q = q;
        self.tx[self.tx_len] = m;
        self.tx_lens[self.tx_len] = len as u32;
        self.tx_msgs[self.tx_len] = 0;
        self.tx_len += 1;
    }

    /// Marks the frame queued last as a DELIVER of `messages` messages, so
    /// they are counted delivered or dropped when the driver takes it or not.
    pub(crate) fn tag_last_deliver(&mut self, messages: u32) {
        debug_assert!(self.tx_len > 0);
        if let Some(i) = self.tx_len.checked_sub(1) {
            self.tx_msgs[i] = messages;
        }
    }

    /// Frees `m` with the next bulk free.
    pub(crate) fn release(&mut self, m: *mut sys::rte_mbuf) {
        if self.free_len == BURST_MAX {
            self.flush_free();
        }
        self.free[self.free_len] = m;
        self.free_len += 1;
    }

    pub(crate) fn flush_tx(&mut self, queues: &[WorkerQueue], c: &mut LocalCounters) {
        if self.tx_len == 0 {
            return;
        }
        let wq = &queues[self.tx_q];
        let sent = port::tx_burst(wq.port, wq.queue, &mut self.tx[..self.tx_len]);
        // Lengths were noted before the driver took (and maybe freed) them.
        let bytes: u64 = self.tx_lens[..sent].iter().map(|&l| u64::from(l)).sum();
        c.add(Counter::TxPackets, sent as u64);
        c.port_tx(self.tx_q, sent as u64);
        c.add(Counter::TxBytes, bytes);
        let unsent = self.tx_len - sent;
        c.add(Counter::TxFull, unsent as u64);
        let msgs = |r: std::ops::Range<usize>| self.tx_msgs[r].iter().map(|&m| u64::from(m)).sum::<u64>();
        c.add(Counter::DeliverMessages, msgs(0..sent));
        c.add(Counter::DeliverDatagrams, self.tx_msgs[..sent].iter().filter(|&&m| m > 0).count() as u64);
        c.add(Counter::DeliverMessagesDropped, msgs(sent..self.tx_len));
        for i in sent..self.tx_len {
            let m = self.tx[i];
            self.release(m);
        }
        self.tx_len = 0;
    }

    fn flush_free(&mut self) {
        mbuf::free_bulk(&mut self.free[..self.free_len]);
        self.free_len = 0;
    }
}

/// What became of a datagram sent through [`Worker::egress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Egress {
    /// Queued for TX.
    Sent,
    /// Held until the next hop answers ARP; sent or counted dropped later.
    Held,
    /// Dropped: next hop unresolved and its hold queue full.
    Unresolved,
    /// Dropped: no route, or the frame did not fit.
    Dropped,
}

impl Worker {
    /// Polls until `stop` is set; returns the lcore exit code.
    pub fn run(mut self) -> i32 {
        assert!(self.burst >= 1 && self.burst <= BURST_MAX);
        if let Service::Streams(limits) = self.service {
            // SAFETY: rte_rdtsc only reads the time-stamp counter.
            let clock = Clock::now(unsafe { sys::rte_rdtsc() }, self.tsc_per_ms * 1000);
            self.pubsub = Some(Box::new(PubSub::new(
                limits,
                self.mail.len() as u32,
                self.index as u32,
                clock,
                self.live.instance,
            )));
        }
        let mut rx = [std::ptr::null_mut(); BURST_MAX];
        let mut batch = Batch::new();
        let mut local = LocalCounters::default();
        let counters = Arc::clone(&self.counters);
        let mut last_flush_tsc = 0u64;
        let mut rx_burst = self.burst;
        local.set(Counter::RxBurst, rx_burst as u64);
        // Everything is allocated: from here on, any heap allocation on
        // this lcore is a bug that the counting allocator reports.
        crate::alloc::count_this_thread(true);
        self.live.workers_started.fetch_add(1, Ordering::Release);
        #[cfg(debug_assertions)]
        self.injected_faults();
        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: rte_rdtsc only reads the time-stamp counter.
            let tsc = unsafe { sys::rte_rdtsc() };
            // Expiry first: the previous turn sent every pending DELIVER,
            // so no freed subscriber slot has one in flight.
            self.expire(tsc, &mut local);
            self.read_mail(tsc, &mut batch, &mut local);
            let mut received = 0;
            for q in 0..self.queues.len() {
                received += self.poll(q, &mut rx[..rx_burst], &mut batch, &mut local);
            }
            let busy = received > 0;
            rx_burst = self.adapt_rx_burst(rx_burst, received, &mut local);
            self.finish_burst(tsc, &mut batch, &mut local);
            if busy {
                // SAFETY: rte_rdtsc only reads the time-stamp counter.
                let cycles = unsafe { sys::rte_rdtsc() }.saturating_sub(tsc);
                local.observe_burst_ns(cycles.saturating_mul(1_000_000) / self.tsc_per_ms);
            }
            // Publish after every busy turn, and when idle once a millisecond.
            if local.is_dirty() || tsc.saturating_sub(last_flush_tsc) >= self.tsc_per_ms {
                local.flush(&counters);
                last_flush_tsc = tsc;
            }
        }
        crate::alloc::count_this_thread(false);
        self.finish_burst(0, &mut batch, &mut local);
        self.drop_all_held(&mut batch, &mut local);
        PubSub::drain_mail(&self, &mut batch);
        batch.flush_free();
        local.flush(&counters);
        0
    }

    /// Faults the shutdown tests inject through the environment (debug
    /// builds only): a worker that panics, or one that never returns.
    #[cfg(debug_assertions)]
    fn injected_faults(&self) {
        let me = Some(self.index as u32);
        if crate::stop::fault("MS_FAULT_PANIC_WORKER") == me {
            crate::alloc::count_this_thread(false);
            panic!("worker {} panics (fault injected by MS_FAULT_PANIC_WORKER)", self.index);
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
    fn adapt_rx_burst(&self, burst: usize, received: usize, c: &mut LocalCounters) -> usize {
        let floor = self.pubsub.as_ref().map_or(1, |ps| ps.rx_burst_min()).clamp(1, self.burst);
        let polled = burst * self.queues.len();
        let next = if received >= polled {
            burst * 2
        } else if received * 4 < polled {
            burst / 2
        } else {
            burst
        }
        .clamp(floor, self.burst);
        if next != burst {
            c.set(Counter::RxBurst, next as u64);
        }
        next
    }

    /// Runs the scheduler, sends what the turn built and frees what it
    /// dropped.
    fn finish_burst(&mut self, tsc: u64, batch: &mut Batch, c: &mut LocalCounters) {
        // The shutdown pass (tsc 0) asks for nothing; drop_all_held follows.
        if tsc != 0 {
            self.sweep_neighbors(tsc / self.tsc_per_ms, batch, c);
        }
        if let Some(mut ps) = self.pubsub.take() {
            ps.serve(self, tsc / self.tsc_per_ms, batch, c);
            ps.publish_gauges(c);
            self.pubsub = Some(ps);
        }
        batch.flush_tx(&self.queues, c);
        batch.flush_free();
    }

    fn expire(&mut self, tsc: u64, c: &mut LocalCounters) {
        if let Some(ps) = self.pubsub.as_mut() {
            ps.refresh_tunables(&self.live);
            let lifetime_ms = self.live.lifetime_ms.load(Ordering::Relaxed);
            ps.expire(tsc / self.tsc_per_ms, lifetime_ms, c);
        }
    }

    /// Applies what other workers posted, a bounded number per turn.
    fn read_mail(&mut self, tsc: u64, batch: &mut Batch, c: &mut LocalCounters) {
        let now_ms = tsc / self.tsc_per_ms;
        for _ in 0..DRAIN_PER_TURN {
            let Some(item) = self.mail.take(self.index) else {
                return;
            };
            match item {
                Handoff::Neighbor { port, ip, mac, claim } => {
                    if let Some(q) = self.queues.get_mut(port) {
                        c.add(Counter::NeighborsReceived, 1);
                        if q.host.learn_shared(Shared { ip, mac, claim }, now_ms) == Learned::Conflict {
                            c.add(Counter::NeighborClaimsRefused, 1);
                        }
                        self.release_ready(port, batch, c);
                    }
                }
                other => match self.pubsub.take() {
                    Some(mut ps) => {
                        ps.on_mail(self, other, tsc, batch, c);
                        self.pubsub = Some(ps);
                    }
                    None => {
                        if let Handoff::Publish { mbuf, .. } = other {
                            batch.release(mbuf.0);
                        }
                    }
                },
            }
        }
    }

    /// Tells the other workers about a neighbour this one learned.
    fn share_learned(&mut self, q: usize, c: &mut LocalCounters) {
        if let Some(Shared { ip, mac, claim }) = self.queues[q].host.take_learned() {
            if self.mail.len() > 1 {
                c.add(Counter::NeighborsShared, 1);
                let item = Handoff::Neighbor { port: q, ip, mac, claim };
                c.add(Counter::HandoffFull, self.mail.broadcast(self.index, item));
            }
        }
    }

    /// Receives and handles one burst of at most `rx.len()` packets;
    /// returns how many it had.
    fn poll(&mut self, q: usize, rx: &mut [*mut sys::rte_mbuf], batch: &mut Batch, c: &mut LocalCounters) -> usize {
        let (port_id, queue_id) = (self.queues[q].port, self.queues[q].queue);
        let n = port::rx_burst(port_id, queue_id, rx);
        if n == 0 {
            c.add_quiet(Counter::PollsIdle, 1);
            return 0;
        }
        c.add(Counter::PollsBusy, 1);
        c.add(Counter::RxPackets, n as u64);
        c.port_rx(q, n as u64);
        // SAFETY: rte_rdtsc only reads the time-stamp counter.
        let tsc = unsafe { sys::rte_rdtsc() };
        for &m in &rx[..n] {
            self.handle(q, m, tsc, batch, c);
        }
        n
    }

    fn handle(&mut self, q: usize, m: *mut sys::rte_mbuf, tsc: u64, batch: &mut Batch, c: &mut LocalCounters) {
        // SAFETY: m came from rx_burst, so this worker owns it exclusively.
        if unsafe { mbuf::segments(m) } != 1 {
            c.add(Counter::RxMultiSegment, 1);
            batch.release(m);
            return;
        }
        // SAFETY: as above; the slice dies before m is sent or freed.
        let frame = unsafe { mbuf::data_mut(m) };
        c.add(Counter::RxBytes, frame.len() as u64);
        let now_ms = tsc / self.tsc_per_ms;
        let verdict = self.queues[q].host.process(frame, now_ms);
        self.share_learned(q, c);
        self.release_ready(q, batch, c);
        match verdict {
            Verdict::Transmit { len, kind } => {
                let counter = match kind {
                    ReplyKind::Arp => Counter::ArpRepliesSent,
                    ReplyKind::IcmpEcho => Counter::IcmpEchoReplies,
                };
                c.add(counter, 1);
                self.transmit(q, m, len, batch, c);
            }
            Verdict::Service(d) => {
                c.add(Counter::ServiceDatagrams, 1);
                self.on_service(q, m, d, tsc, batch, c);
            }
            Verdict::Learned => {
                c.add(Counter::ArpLearned, 1);
                batch.release(m);
            }
            Verdict::Drop(reason) => {
                c.dropped(reason);
                batch.release(m);
            }
        }
    }

    fn on_service(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        d: ServiceDatagram,
        tsc: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let peer = Peer { ip: d.src_ip, port: d.src_port };
        if let Some(mut ps) = self.pubsub.take() {
            ps.on_datagram(self, q, m, &d, tsc, batch, c);
            self.pubsub = Some(ps);
            return;
        }
        let Service::Simple(handler) = &mut self.service else {
            batch.release(m);
            return;
        };
        // SAFETY: m is owned by this worker; the slice dies before m moves.
        let frame = unsafe { mbuf::data_mut(m) };
        let payload = &mut frame[d.payload_offset..d.payload_offset + d.payload_len];
        match handler.on_datagram(peer, payload) {
            // A reply reuses the received buffer, so it may not be longer
            // than what arrived; and it never goes to another service on our
            // port (two appliances would bounce a datagram forever).
            ServiceAction::Reply { payload_len }
                if d.payload_offset == UDP_PAYLOAD_OFFSET
                    && payload_len <= d.payload_len
                    && peer.port != self.service_port =>
            {
                let sent = self.egress(q, m, peer.ip, peer.port, payload_len, tsc / self.tsc_per_ms, batch, c);
                // A held reply is counted now; if it is dropped later,
                // egress_arp_timeout says so.
                if matches!(sent, Egress::Sent | Egress::Held) {
                    c.add(Counter::ServiceReplies, 1);
                }
            }
            ServiceAction::Reply { .. } | ServiceAction::Consumed => batch.release(m),
        }
    }

    /// Queues `m`, trimmed to `len` bytes, for TX on queue `q`.
    pub(crate) fn transmit(
        &self,
        q: usize,
        m: *mut sys::rte_mbuf,
        len: usize,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        // SAFETY: m is owned by this worker and single-segment.
        if unsafe { mbuf::set_len(m, len) } {
            batch.send(&self.queues, q, m, len, c);
        } else {
            batch.release(m);
        }
    }

    /// Sends the UDP payload of `payload_len` bytes that sits at
    /// UDP_PAYLOAD_OFFSET in `m` to `ip:dst_port` from the service port,
    /// through routes and ARP. On an unresolved next hop the datagram is
    /// held (bounded per neighbour and per worker; dropped and counted when
    /// full) and a fresh mbuf carries the request, paced per address; an
    /// expired neighbour is used while its refresh request goes out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn egress(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        ip: Ipv4Addr,
        dst_port: u16,
        payload_len: usize,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) -> Egress {
        let resolution = self.queues[q].host.resolve(ip, now_ms);
        let mac = match resolution {
            Resolution::Mac(mac) => mac,
            Resolution::MacRefresh { mac, next_hop } => {
                self.ask(q, next_hop, batch, c);
                mac
            }
            Resolution::Unresolved { next_hop, ask } => {
                if ask {
                    self.ask(q, next_hop, batch, c);
                }
                return self.hold(q, m, next_hop, ip, dst_port, payload_len, now_ms, batch, c);
            }
            Resolution::NoRoute => {
                c.add(Counter::EgressNoRoute, 1);
                batch.release(m);
                return Egress::Dropped;
            }
        };
        // SAFETY: m is owned, single-segment; the slice dies here.
        let frame = unsafe { mbuf::data_mut(m) };
        let to = UdpEndpoint { mac, ip, port: dst_port };
        match self.queues[q].host.emit_udp(frame, to, self.service_port, payload_len) {
            Some(len) => {
                self.transmit(q, m, len, batch, c);
                Egress::Sent
            }
            None => {
                batch.release(m);
                Egress::Dropped
            }
        }
    }

    /// Sends a request for `next_hop` in a fresh mbuf.
    fn ask(&self, q: usize, next_hop: Ipv4Addr, batch: &mut Batch, c: &mut LocalCounters) {
        match self.pool.alloc() {
            Some(req) => self.send_arp_request(q, req, next_hop, batch, c),
            None => c.add(Counter::EgressNoBuffer, 1),
        }
    }

    /// Builds the datagram (destination MAC left zero) and parks it until
    /// `next_hop` resolves, or drops it when its queue is full.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        next_hop: Ipv4Addr,
        ip: Ipv4Addr,
        dst_port: u16,
        payload_len: usize,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) -> Egress {
        // SAFETY: m is owned, single-segment; the slice dies here.
        let frame = unsafe { mbuf::data_mut(m) };
        let to = UdpEndpoint { mac: MacAddr::ZERO, ip, port: dst_port };
        let host = &mut self.queues[q].host;
        let built = host.emit_udp(frame, to, self.service_port, payload_len);
        // SAFETY: m is owned and single-segment.
        if !built.is_some_and(|len| unsafe { mbuf::set_len(m, len) }) {
            batch.release(m);
            return Egress::Dropped;
        }
        match host.hold(next_hop, Parked { handle: m as usize, tag: 0 }, now_ms) {
            Ok(()) => {
                c.add(Counter::EgressHeld, 1);
                self.last_held = Some((q, next_hop));
                Egress::Held
            }
            Err(_) => {
                c.add(Counter::EgressQueueFull, 1);
                c.add(Counter::EgressUnresolved, 1);
                batch.release(m);
                Egress::Unresolved
            }
        }
    }

    /// Tags the datagram [`Worker::egress`] held last as a DELIVER of
    /// `messages` messages, counted when it is finally sent or dropped.
    pub(crate) fn tag_last_held(&mut self, messages: u32) {
        if let Some((q, next_hop)) = self.last_held.take() {
            self.queues[q].host.retag_last_held(next_hop, messages);
        }
    }

    /// The source MAC of a datagram from `ip` (a SUBSCRIBE): may add or
    /// fill a neighbour, never divert one (counted when refused).
    pub(crate) fn learn_from_datagram(
        &mut self,
        q: usize,
        ip: Ipv4Addr,
        mac: MacAddr,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        if self.queues[q].host.learn_neighbor(ip, mac, now_ms) == Learned::Conflict {
            c.add(Counter::NeighborClaimsRefused, 1);
        }
        self.release_ready(q, batch, c);
    }

    /// Sends what waited for neighbours of queue `q` that resolved, in the
    /// order it was held.
    fn release_ready(&mut self, q: usize, batch: &mut Batch, c: &mut LocalCounters) {
        // Called per received packet: nothing but this check when nothing
        // waits (the buffer below is 1 KiB to initialise).
        if !self.queues[q].host.has_ready() {
            return;
        }
        let mut out = [Parked { handle: 0, tag: 0 }; QUEUE_MAX];
        while let Some((mac, n)) = self.queues[q].host.take_ready(&mut out) {
            for p in &out[..n] {
                let m = p.handle as *mut sys::rte_mbuf;
                // SAFETY: a held mbuf is owned by this worker, single-segment
                // and sized to its frame when it was held.
                let frame = unsafe { mbuf::data_mut(m) };
                frame[..6].copy_from_slice(&mac.0);
                batch.send(&self.queues, q, m, frame.len(), c);
                if p.tag > 0 {
                    batch.tag_last_deliver(p.tag);
                }
            }
        }
    }

    /// Re-asks for neighbours still silent and drops what waited for those
    /// that never answered.
    fn sweep_neighbors(&mut self, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        for q in 0..self.queues.len() {
            let mut asks = [Ipv4Addr::UNSPECIFIED; NEIGHBOR_SWEEP_PER_TURN];
            let mut n = 0;
            self.queues[q].host.sweep(
                now_ms,
                NEIGHBOR_SWEEP_PER_TURN,
                |ip| {
                    asks[n] = ip;
                    n += 1;
                },
                |p| drop_held(p, batch, c),
            );
            for &ip in &asks[..n] {
                self.ask(q, ip, batch, c);
            }
        }
    }

    /// Shutdown: whatever still waits for a neighbour is dropped, counted.
    fn drop_all_held(&mut self, batch: &mut Batch, c: &mut LocalCounters) {
        for q in &mut self.queues {
            q.host.drain_held(|p| drop_held(p, batch, c));
        }
    }

    fn send_arp_request(
        &self,
        q: usize,
        m: *mut sys::rte_mbuf,
        next_hop: Ipv4Addr,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        // SAFETY: m is owned and single-segment; 42 bytes fit any mbuf.
        let ok = unsafe { mbuf::set_len(m, 42) };
        // SAFETY: as above; the slice dies before m is sent.
        let frame = unsafe { mbuf::data_mut(m) };
        match ok.then(|| self.queues[q].host.emit_arp_request(frame, next_hop)).flatten() {
            Some(len) => {
                c.add(Counter::ArpRequestsSent, 1);
                self.transmit(q, m, len, batch, c);
            }
            None => batch.release(m),
        }
    }
}

/// Frees a held datagram whose neighbour never answered, counting it and
/// the messages inside.
fn drop_held(p: Parked, batch: &mut Batch, c: &mut LocalCounters) {
    c.add(Counter::EgressArpTimeout, 1);
    c.add(Counter::EgressUnresolved, 1);
    c.add(Counter::DeliverMessagesDropped, u64::from(p.tag));
    batch.release(p.handle as *mut sys::rte_mbuf);
}
