//! The context a worker hands its service each loop turn: the time (read
//! once per turn), the ports' host state, TX batches, the buffer pool and
//! the mailboxes. Sends go out through routes and ARP; what waits for an
//! address is held, bounded, and sent or dropped (counted) later.

use crate::counters::{Counter, LocalCounters};
use crate::dpdk::mbuf::{self, Mempool};
use crate::dpdk::port;
use crate::lcore::clock::Clock;
use crate::lcore::mailbox::{Handoff, Mailboxes};
use ms_dpdk_sys as sys;
use ms_netstack::arp_cache::{Learned, Parked, QUEUE_MAX};
use ms_netstack::host::{Host, Resolution, Shared, UdpEndpoint};
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_proto::Now;
use std::sync::Arc;

/// Largest RX burst a worker accepts (config is checked against it).
pub const BURST_MAX: usize = ms_config::RX_BURST_MAX;

/// Unresolved neighbours the timeout sweep looks at per port per loop turn.
const NEIGHBOR_SWEEP_PER_TURN: usize = 16;

/// One (port, queue) a worker owns, with its host state.
pub struct WorkerQueue {
    /// DPDK port id.
    pub port: u16,
    /// Queue index (= worker index).
    pub queue: u16,
    /// ARP cache, routes and identity for this port, private to the worker.
    pub host: Host,
    /// The NIC computes UDP checksums of what this queue sends.
    pub tx_udp_checksum: bool,
    /// The NIC checks UDP checksums of what this queue receives.
    pub rx_udp_checksum: bool,
}

/// What a worker builds one of its [`WorkerQueue`]s from, on its own
/// lcore: the host's identity, its static neighbours and routes, and the
/// port's shared record of ARP requests.
#[derive(Debug, Clone)]
pub struct QueuePlan {
    /// DPDK port id.
    pub port: u16,
    /// Port name (for errors).
    pub name: String,
    /// Identity and ARP settings.
    pub host: ms_netstack::host::HostConfig,
    /// Static neighbours on this port's subnet.
    pub statics: Vec<(Ipv4Addr, MacAddr)>,
    /// Static routes: (destination, next hop).
    pub routes: Vec<(ms_netstack::route::Prefix, Ipv4Addr)>,
    /// Outstanding ARP requests, shared by the port's workers.
    pub asked: Arc<ms_netstack::solicit::Solicitations>,
    /// The NIC computes UDP checksums of what is sent.
    pub tx_udp_checksum: bool,
    /// The NIC checks UDP checksums of what is received.
    pub rx_udp_checksum: bool,
}

impl QueuePlan {
    /// Builds queue `queue`'s host (allocates its tables). The main lcore
    /// builds one first to check the plan, so the workers' cannot fail.
    pub fn build(&self, queue: u16) -> Result<WorkerQueue, String> {
        let mut host = Host::with_shared(self.host, Arc::clone(&self.asked));
        for &(ip, mac) in &self.statics {
            if !host.add_static(ip, mac) {
                return Err(format!("port {}: static neighbour {ip} does not fit; raise arp.neighbors_max", self.name));
            }
        }
        for &(to, via) in &self.routes {
            host.add_route(to, via).map_err(|e| format!("port {}: route via {via}: {e:?}", self.name))?;
        }
        let (tx_udp_checksum, rx_udp_checksum) = (self.tx_udp_checksum, self.rx_udp_checksum);
        Ok(WorkerQueue { port: self.port, queue, host, tx_udp_checksum, rx_udp_checksum })
    }
}

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

/// What became of a datagram sent through [`Turn::egress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Queued for TX.
    Sent,
    /// Held until the next hop answers ARP; sent or counted dropped later.
    Held,
    /// Dropped: next hop unresolved and its hold queue full.
    Unresolved,
    /// Dropped: no route, or the frame did not fit.
    Dropped,
}

/// A worker's I/O context, refreshed with the time at every loop turn.
pub struct Turn {
    /// Index among the workers (= its queue index on every port).
    pub index: usize,
    /// Queues polled in turn.
    pub queues: Vec<WorkerQueue>,
    /// Pool for packets the worker originates (DELIVER, ACK, ARP refresh).
    pub pool: Arc<Mempool>,
    /// Mailboxes of all workers.
    pub mail: Arc<Mailboxes>,
    /// The counters of this turn, published by the worker.
    pub c: LocalCounters,
    /// UDP port the service answers from.
    pub service_port: u16,
    /// The TSC and its rate.
    pub clock: Clock,
    /// TSC at the start of this turn (0 on the shutdown pass).
    pub tsc: u64,
    /// This turn's time for the service.
    pub now: Now,
    pub(crate) batch: Batch,
    /// Queue and next hop of the datagram [`Turn::egress`] held last, so
    /// the caller can tag it ([`Turn::tag_last_held`]).
    last_held: Option<(usize, Ipv4Addr)>,
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
    fn send(&mut self, queues: &[WorkerQueue], q: usize, m: *mut sys::rte_mbuf, len: usize, c: &mut LocalCounters) {
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
    fn tag_last_deliver(&mut self, messages: u32) {
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

    fn flush_tx(&mut self, queues: &[WorkerQueue], c: &mut LocalCounters) {
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

impl Turn {
    /// The context of worker `index`, built on its own lcore (it holds raw
    /// mbuf pointers, so it never moves to another thread).
    pub fn new(
        index: usize,
        queues: Vec<WorkerQueue>,
        pool: Arc<Mempool>,
        mail: Arc<Mailboxes>,
        service_port: u16,
        clock: Clock,
    ) -> Turn {
        Turn {
            index,
            queues,
            pool,
            mail,
            c: LocalCounters::default(),
            service_port,
            clock,
            tsc: 0,
            now: Now::default(),
            batch: Batch::new(),
            last_held: None,
        }
    }

    /// Starts a loop turn at TSC value `tsc`: the time everything in this
    /// turn sees.
    #[inline]
    pub fn begin(&mut self, tsc: u64) {
        self.tsc = tsc;
        self.now = self.clock.now(tsc);
    }

    /// This turn's time in milliseconds.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.now.ms
    }

    /// Frees `m` with the next bulk free.
    #[inline]
    pub(crate) fn release(&mut self, m: *mut sys::rte_mbuf) {
        self.batch.release(m);
    }

    /// Sends what the turn queued and frees what it dropped.
    pub fn flush(&mut self) {
        self.batch.flush_tx(&self.queues, &mut self.c);
        self.batch.flush_free();
    }

    /// Marks the frame queued last as a DELIVER of `messages` messages.
    pub fn tag_last_deliver(&mut self, messages: u32) {
        self.batch.tag_last_deliver(messages);
    }

    /// Queues `m`, trimmed to `len` bytes, for TX on queue `q`.
    pub(crate) fn transmit(&mut self, q: usize, m: *mut sys::rte_mbuf, len: usize) {
        // SAFETY: m is owned by this worker and single-segment.
        if unsafe { mbuf::set_len(m, len) } {
            self.batch.send(&self.queues, q, m, len, &mut self.c);
        } else {
            self.batch.release(m);
        }
    }

    /// Marks a datagram built by `emit_udp` for the NIC to checksum, where
    /// the port does that (`udp_checksum: offload`).
    #[inline]
    fn offload_checksum(&self, q: usize, m: *mut sys::rte_mbuf) {
        if self.queues[q].tx_udp_checksum {
            // SAFETY: m is owned by this worker.
            unsafe { mbuf::request_udp_checksum(m) };
        }
    }

    /// Sends the UDP payload of `payload_len` bytes that sits at
    /// UDP_PAYLOAD_OFFSET in `m` to `ip:dst_port` from the service port,
    /// through routes and ARP. On an unresolved next hop the datagram is
    /// held (bounded per neighbour and per worker; dropped and counted when
    /// full) and a fresh mbuf carries the request, paced per address; an
    /// expired neighbour is used while its refresh request goes out.
    pub(crate) fn egress(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        to: (Ipv4Addr, u16),
        payload_len: usize,
    ) -> Egress {
        let (ip, dst_port) = to;
        let resolution = self.queues[q].host.resolve(ip, self.now.ms);
        let mac = match resolution {
            Resolution::Mac(mac) => mac,
            Resolution::MacRefresh { mac, next_hop } => {
                self.ask(q, next_hop);
                mac
            }
            Resolution::Unresolved { next_hop, ask } => {
                if ask {
                    self.ask(q, next_hop);
                }
                return self.hold(q, m, next_hop, to, payload_len);
            }
            Resolution::NoRoute => {
                self.c.add(Counter::EgressNoRoute, 1);
                self.batch.release(m);
                return Egress::Dropped;
            }
        };
        // SAFETY: m is owned, single-segment; the slice dies here.
        let frame = unsafe { mbuf::data_mut(m) };
        let to = UdpEndpoint { mac, ip, port: dst_port };
        match self.queues[q].host.emit_udp(frame, to, self.service_port, payload_len) {
            Some(len) => {
                self.offload_checksum(q, m);
                self.transmit(q, m, len);
                Egress::Sent
            }
            None => {
                self.batch.release(m);
                Egress::Dropped
            }
        }
    }

    /// Sends a request for `next_hop` in a fresh mbuf.
    fn ask(&mut self, q: usize, next_hop: Ipv4Addr) {
        match self.pool.alloc() {
            Some(req) => self.send_arp_request(q, req, next_hop),
            None => self.c.add(Counter::EgressNoBuffer, 1),
        }
    }

    /// Builds the datagram (destination MAC left zero) and parks it until
    /// `next_hop` resolves, or drops it when its queue is full.
    fn hold(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        next_hop: Ipv4Addr,
        to: (Ipv4Addr, u16),
        payload_len: usize,
    ) -> Egress {
        // SAFETY: m is owned, single-segment; the slice dies here.
        let frame = unsafe { mbuf::data_mut(m) };
        let dst = UdpEndpoint { mac: MacAddr::ZERO, ip: to.0, port: to.1 };
        let built = self.queues[q].host.emit_udp(frame, dst, self.service_port, payload_len);
        // SAFETY: m is owned and single-segment.
        if !built.is_some_and(|len| unsafe { mbuf::set_len(m, len) }) {
            self.batch.release(m);
            return Egress::Dropped;
        }
        self.offload_checksum(q, m);
        match self.queues[q].host.hold(next_hop, Parked { handle: m as usize, tag: 0 }, self.now.ms) {
            Ok(()) => {
                self.c.add(Counter::EgressHeld, 1);
                self.last_held = Some((q, next_hop));
                Egress::Held
            }
            Err(_) => {
                self.c.add(Counter::EgressQueueFull, 1);
                self.c.add(Counter::EgressUnresolved, 1);
                self.batch.release(m);
                Egress::Unresolved
            }
        }
    }

    /// Tags the datagram [`Turn::egress`] held last as a DELIVER of
    /// `messages` messages, counted when it is finally sent or dropped.
    pub fn tag_last_held(&mut self, messages: u32) {
        if let Some((q, next_hop)) = self.last_held.take() {
            self.queues[q].host.retag_last_held(next_hop, messages);
        }
    }

    /// The source MAC of a datagram from `ip` (a SUBSCRIBE): may add or
    /// fill a neighbour, never divert one (counted when refused).
    pub fn learn_from_datagram(&mut self, q: usize, ip: Ipv4Addr, mac: MacAddr) {
        if self.queues[q].host.learn_neighbor(ip, mac, self.now.ms) == Learned::Conflict {
            self.c.add(Counter::NeighborClaimsRefused, 1);
        }
        self.release_ready(q);
    }

    /// A neighbour another worker learned.
    pub fn learn_shared(&mut self, q: usize, shared: Shared) {
        if let Some(wq) = self.queues.get_mut(q) {
            self.c.add(Counter::NeighborsReceived, 1);
            if wq.host.learn_shared(shared, self.now.ms) == Learned::Conflict {
                self.c.add(Counter::NeighborClaimsRefused, 1);
            }
            self.release_ready(q);
        }
    }

    /// Tells the other workers about a neighbour this one learned.
    pub fn share_learned(&mut self, q: usize) {
        if let Some(Shared { ip, mac, claim }) = self.queues[q].host.take_learned() {
            if self.mail.len() > 1 {
                self.c.add(Counter::NeighborsShared, 1);
                let item = Handoff::Neighbor { port: q, ip, mac, claim };
                self.c.add(Counter::HandoffFull, self.mail.broadcast(self.index, item));
            }
        }
    }

    /// Sends what waited for neighbours of queue `q` that resolved, in the
    /// order it was held.
    pub fn release_ready(&mut self, q: usize) {
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
                self.batch.send(&self.queues, q, m, frame.len(), &mut self.c);
                if p.tag > 0 {
                    self.batch.tag_last_deliver(p.tag);
                }
            }
        }
    }

    /// Re-asks for neighbours still silent and drops what waited for those
    /// that never answered.
    pub fn sweep_neighbors(&mut self) {
        for q in 0..self.queues.len() {
            let mut asks = [Ipv4Addr::UNSPECIFIED; NEIGHBOR_SWEEP_PER_TURN];
            let mut n = 0;
            let (batch, c) = (&mut self.batch, &mut self.c);
            self.queues[q].host.sweep(
                self.now.ms,
                NEIGHBOR_SWEEP_PER_TURN,
                |ip| {
                    asks[n] = ip;
                    n += 1;
                },
                |p| drop_held(p, batch, c),
            );
            for &ip in &asks[..n] {
                self.ask(q, ip);
            }
        }
    }

    /// Shutdown: whatever still waits for a neighbour is dropped, counted;
    /// PUBLISH mbufs still in this worker's mailbox are freed.
    pub fn drop_all_held(&mut self) {
        let (batch, c) = (&mut self.batch, &mut self.c);
        for q in &mut self.queues {
            q.host.drain_held(|p| drop_held(p, batch, c));
        }
        while let Some(item) = self.mail.take(self.index) {
            if let Handoff::Publish { mbuf, .. } = item {
                self.batch.release(mbuf.0);
            }
        }
        self.batch.flush_free();
    }

    fn send_arp_request(&mut self, q: usize, m: *mut sys::rte_mbuf, next_hop: Ipv4Addr) {
        // SAFETY: m is owned and single-segment; 42 bytes fit any mbuf.
        let ok = unsafe { mbuf::set_len(m, 42) };
        // SAFETY: as above; the slice dies before m is sent.
        let frame = unsafe { mbuf::data_mut(m) };
        match ok.then(|| self.queues[q].host.emit_arp_request(frame, next_hop)).flatten() {
            Some(len) => {
                self.c.add(Counter::ArpRequestsSent, 1);
                self.transmit(q, m, len);
            }
            None => self.batch.release(m),
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
