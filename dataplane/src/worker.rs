//! The run-to-completion loop of one worker lcore: for each of its queues,
//! rx burst -> parse -> act -> tx burst, counters flushed once per burst.
//! Nothing here allocates, locks or logs per packet.

use crate::counters::{Counter, LocalCounters, WorkerCounters};
use crate::mailbox::{Handoff, Mailboxes, DRAIN_PER_TURN};
use crate::mbuf::{self, Mempool};
use crate::port;
use crate::service::{Peer, ServiceAction, ServiceHandler};
use ms_dpdk_sys as sys;
use ms_netstack::host::{Host, ReplyKind, Resolution, UdpEndpoint, Verdict, UDP_PAYLOAD_OFFSET};
use ms_netstack::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Largest RX burst a worker accepts (config is checked against it).
pub const BURST_MAX: usize = 512;

/// One (port, queue) a worker owns, with its host state.
pub struct WorkerQueue {
    /// DPDK port id.
    pub port: u16,
    /// Queue index (= worker index).
    pub queue: u16,
    /// ARP cache, routes and identity for this port, private to the worker.
    pub host: Host,
}

/// Everything a worker owns. Built on the main lcore, moved to the worker.
pub struct Worker {
    /// Index among the workers (= its queue index on every port).
    pub index: usize,
    /// Queues polled in turn.
    pub queues: Vec<WorkerQueue>,
    /// Pool for packets the worker originates (ARP refresh requests).
    pub pool: Arc<Mempool>,
    /// Mailboxes of all workers.
    pub mail: Arc<Mailboxes>,
    /// Published counters.
    pub counters: Arc<WorkerCounters>,
    /// Set by the main lcore to stop.
    pub stop: Arc<AtomicBool>,
    /// Packets per RX burst.
    pub burst: usize,
    /// TSC ticks per millisecond.
    pub tsc_per_ms: u64,
    /// The UDP service.
    pub service: Box<dyn ServiceHandler>,
    /// UDP port the service answers from.
    pub service_port: u16,
}

/// Packets to send and to free, gathered during one burst.
struct Batch {
    tx: [*mut sys::rte_mbuf; BURST_MAX],
    tx_lens: [u32; BURST_MAX],
    tx_len: usize,
    free: [*mut sys::rte_mbuf; BURST_MAX],
    free_len: usize,
}

impl Batch {
    fn send(&mut self, m: *mut sys::rte_mbuf, len: usize) {
        self.tx[self.tx_len] = m;
        self.tx_lens[self.tx_len] = len as u32;
        self.tx_len += 1;
    }

    fn release(&mut self, m: *mut sys::rte_mbuf) {
        self.free[self.free_len] = m;
        self.free_len += 1;
    }
}

impl Worker {
    /// Polls until `stop` is set; returns the lcore exit code.
    pub fn run(mut self) -> i32 {
        assert!(self.burst >= 1 && self.burst <= BURST_MAX);
        let mut rx = [std::ptr::null_mut(); BURST_MAX];
        let mut batch = Batch {
            tx: [std::ptr::null_mut(); BURST_MAX],
            tx_lens: [0; BURST_MAX],
            tx_len: 0,
            free: [std::ptr::null_mut(); BURST_MAX],
            free_len: 0,
        };
        let mut local = LocalCounters::default();
        let counters = Arc::clone(&self.counters);
        while !self.stop.load(Ordering::Relaxed) {
            self.read_mail(&mut local);
            for q in 0..self.queues.len() {
                self.poll(q, &mut rx, &mut batch, &mut local);
                local.flush(&counters);
            }
        }
        0
    }

    /// Applies what other workers posted, a bounded number per turn.
    fn read_mail(&mut self, c: &mut LocalCounters) {
        let Some(first) = self.mail.take(self.index) else {
            return;
        };
        // SAFETY: rte_rdtsc only reads the time-stamp counter.
        let now_ms = unsafe { sys::rte_rdtsc() } / self.tsc_per_ms;
        let mut item = Some(first);
        for _ in 0..DRAIN_PER_TURN {
            let Some(Handoff::Neighbor { port, ip, mac }) = item else {
                break;
            };
            if let Some(q) = self.queues.get_mut(port) {
                q.host.learn_neighbor(ip, mac, now_ms);
                c.add(Counter::NeighborsReceived, 1);
            }
            item = self.mail.take(self.index);
        }
        if let Some(Handoff::Neighbor { port, ip, mac }) = item {
            if let Some(q) = self.queues.get_mut(port) {
                q.host.learn_neighbor(ip, mac, now_ms);
                c.add(Counter::NeighborsReceived, 1);
            }
        }
    }

    /// Tells the other workers about a neighbour this one learned.
    fn share_learned(&mut self, q: usize, c: &mut LocalCounters) {
        if let Some((ip, mac)) = self.queues[q].host.take_learned() {
            if self.mail.len() > 1 {
                c.add(Counter::NeighborsShared, 1);
                c.add(Counter::HandoffFull, self.mail.broadcast(self.index, Handoff::Neighbor { port: q, ip, mac }));
            }
        }
    }

    fn poll(&mut self, q: usize, rx: &mut [*mut sys::rte_mbuf; BURST_MAX], batch: &mut Batch, c: &mut LocalCounters) {
        let (port_id, queue_id) = (self.queues[q].port, self.queues[q].queue);
        let n = port::rx_burst(port_id, queue_id, &mut rx[..self.burst]);
        if n == 0 {
            c.add(Counter::PollsIdle, 1);
            return;
        }
        c.add(Counter::PollsBusy, 1);
        c.add(Counter::RxPackets, n as u64);
        // SAFETY: rte_rdtsc only reads the time-stamp counter.
        let now_ms = unsafe { sys::rte_rdtsc() } / self.tsc_per_ms;
        for &m in &rx[..n] {
            self.handle(q, m, now_ms, batch, c);
        }
        let sent = port::tx_burst(port_id, queue_id, &mut batch.tx[..batch.tx_len]);
        // Lengths were noted before the driver took (and maybe freed) them.
        let bytes: u64 = batch.tx_lens[..sent].iter().map(|&l| u64::from(l)).sum();
        c.add(Counter::TxPackets, sent as u64);
        c.add(Counter::TxBytes, bytes);
        for i in sent..batch.tx_len {
            c.add(Counter::TxFull, 1);
            batch.release(batch.tx[i]);
        }
        batch.tx_len = 0;
        mbuf::free_bulk(&mut batch.free[..batch.free_len]);
        batch.free_len = 0;
    }

    fn handle(&mut self, q: usize, m: *mut sys::rte_mbuf, now_ms: u64, batch: &mut Batch, c: &mut LocalCounters) {
        // SAFETY: m came from rx_burst, so this worker owns it exclusively.
        if unsafe { mbuf::segments(m) } != 1 {
            c.add(Counter::RxMultiSegment, 1);
            batch.release(m);
            return;
        }
        // SAFETY: as above; the slice dies before m is sent or freed.
        let frame = unsafe { mbuf::data_mut(m) };
        c.add(Counter::RxBytes, frame.len() as u64);
        let verdict = self.queues[q].host.process(frame, now_ms);
        self.share_learned(q, c);
        match verdict {
            Verdict::Transmit { len, kind } => {
                c.add(
                    match kind {
                        ReplyKind::Arp => Counter::ArpRepliesSent,
                        ReplyKind::IcmpEcho => Counter::IcmpEchoReplies,
                    },
                    1,
                );
                Self::transmit(m, len, batch);
            }
            Verdict::Service(d) => {
                c.add(Counter::ServiceDatagrams, 1);
                let peer = Peer { ip: d.src_ip, port: d.src_port };
                let payload = &mut frame[d.payload_offset..d.payload_offset + d.payload_len];
                match self.service.on_datagram(peer, payload) {
                    ServiceAction::Consumed => batch.release(m),
                    // A reply reuses the received buffer, so it may not be
                    // longer than what arrived.
                    // Never answer another service on our port: two
                    // appliances would bounce a datagram forever.
                    ServiceAction::Reply { payload_len }
                        if d.payload_offset == UDP_PAYLOAD_OFFSET
                            && payload_len <= d.payload_len
                            && peer.port != self.service_port =>
                    {
                        self.send_udp(q, m, peer.ip, peer.port, payload_len, now_ms, batch, c);
                    }
                    ServiceAction::Reply { .. } => batch.release(m),
                }
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

    fn send_resolved(
        &self,
        q: usize,
        m: *mut sys::rte_mbuf,
        to: UdpEndpoint,
        payload_len: usize,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        // SAFETY: m is owned, single-segment; the slice dies here.
        let frame = unsafe { mbuf::data_mut(m) };
        match self.queues[q].host.emit_udp(frame, to, self.service_port, payload_len) {
            Some(len) => {
                c.add(Counter::ServiceReplies, 1);
                Self::transmit(m, len, batch);
            }
            None => batch.release(m),
        }
    }

    fn transmit(m: *mut sys::rte_mbuf, len: usize, batch: &mut Batch) {
        // SAFETY: m is owned by this worker and single-segment (checked).
        if unsafe { mbuf::set_len(m, len) } {
            batch.send(m, len);
        } else {
            batch.release(m);
        }
    }

    /// Sends the datagram whose payload sits at UDP_PAYLOAD_OFFSET in `m`,
    /// through routes and ARP. On an unresolved next hop the datagram is
    /// dropped (counted) and an ARP request goes out instead.
    #[allow(clippy::too_many_arguments)]
    fn send_udp(
        &mut self,
        q: usize,
        m: *mut sys::rte_mbuf,
        ip: Ipv4Addr,
        dst_port: u16,
        payload_len: usize,
        now_ms: u64,
        batch: &mut Batch,
        c: &mut LocalCounters,
    ) {
        let resolution = self.queues[q].host.resolve(ip, now_ms);
        match resolution {
            Resolution::Mac(mac) => {
                self.send_resolved(q, m, UdpEndpoint { mac, ip, port: dst_port }, payload_len, batch, c);
            }
            Resolution::MacRefresh { mac, next_hop } => {
                let host = &self.queues[q].host;
                match self.pool.alloc() {
                    Some(req) => {
                        // SAFETY: a fresh single-segment mbuf we own; 42 bytes
                        // fit any data room.
                        let ok = unsafe { mbuf::set_len(req, 42) };
                        // SAFETY: as above; the slice dies before req is sent.
                        let frame = unsafe { mbuf::data_mut(req) };
                        match ok.then(|| host.emit_arp_request(frame, next_hop)).flatten() {
                            Some(len) => {
                                c.add(Counter::ArpRequestsSent, 1);
                                Self::transmit(req, len, batch);
                            }
                            None => batch.release(req),
                        }
                    }
                    None => c.add(Counter::EgressNoBuffer, 1),
                }
                self.send_resolved(q, m, UdpEndpoint { mac, ip, port: dst_port }, payload_len, batch, c);
            }
            Resolution::SendArpRequest { next_hop } => {
                c.add(Counter::EgressUnresolved, 1);
                // The datagram's buffer becomes the ARP request: no
                // allocation needed, and the pool can never run dry here.
                let host = &self.queues[q].host;
                // SAFETY: m is owned and single-segment; 42 bytes fit any mbuf.
                let ok = unsafe { mbuf::set_len(m, 42) };
                // SAFETY: as above; the slice dies before m is sent.
                let frame = unsafe { mbuf::data_mut(m) };
                match ok.then(|| host.emit_arp_request(frame, next_hop)).flatten() {
                    Some(len) => {
                        c.add(Counter::ArpRequestsSent, 1);
                        Self::transmit(m, len, batch);
                    }
                    None => batch.release(m),
                }
            }
            Resolution::Waiting => {
                c.add(Counter::EgressUnresolved, 1);
                batch.release(m);
            }
            Resolution::NoRoute => {
                c.add(Counter::EgressNoRoute, 1);
                batch.release(m);
            }
        }
    }
}
