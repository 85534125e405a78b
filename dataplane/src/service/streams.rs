//! The streams protocol on a DPDK worker: a thin shim around the sans-IO
//! engine of `ms-proto`. It turns received mbufs into frames for the
//! engine, and the engine's intents (buffers, sends, hand-offs, neighbours
//! to learn) into mbufs, TX batches, mailbox items and ARP state.

use super::payload_of;
use crate::control::Live;
use crate::counters::Counter;
use crate::dpdk::mbuf;
use crate::lcore::mailbox::{Handoff, MbufPtr};
use crate::lcore::turn::{Egress, Turn};
use ms_dpdk_sys as sys;
use ms_netstack::host::{ServiceDatagram, UDP_PAYLOAD_OFFSET};
use ms_netstack::MacAddr;
use ms_proto::{Addr, Disposition, Engine, EngineConfig, From, Io, Mail, Now};
use ms_wire::DATAGRAM_MAX;
use std::sync::atomic::Ordering;

/// An mbuf the engine is filling: made only by [`Io::alloc`] and consumed
/// by `send` or `free`, so safe code cannot forge one or use it twice.
pub struct TxBuf(*mut sys::rte_mbuf);

/// One worker's streams engine, with DPDK mbufs as its buffers.
pub struct StreamsService {
    engine: Engine<TxBuf>,
    /// Generation of the live tunables last taken.
    tunables_seen: u64,
}

impl StreamsService {
    /// Allocates the engine's tables and pool (on the calling lcore).
    pub fn new(t: &Turn, limits: ms_streams::Limits, workers: u32, instance: u64) -> StreamsService {
        let cfg = EngineConfig { limits, workers, me: t.index as u32, instance, service_port: t.service_port };
        StreamsService { engine: Engine::new(cfg), tunables_seen: u64::MAX }
    }

    /// A datagram to the service port, received on queue `q`.
    #[inline]
    pub(crate) fn on_datagram(&mut self, t: &mut Turn, q: usize, m: *mut sys::rte_mbuf, d: &ServiceDatagram) {
        // SAFETY: m came from rx_burst and is this worker's until released
        // or handed over below, after the last use of these slices.
        let (frame, payload) = unsafe { (mbuf::data_mut(m), payload_of(m, d)) };
        let mac = ms_netstack::ethernet::Frame::new_unchecked(&*frame).src();
        let from = From { addr: Addr { ip: d.src_ip, port: d.src_port, via: q as u16 }, mac: mac.0 };
        let now = t.now;
        match self.engine.on_datagram(t, now, from, payload) {
            Disposition::Done => t.release(m),
            Disposition::HandOff { worker } => {
                let item = Handoff::Publish {
                    mbuf: MbufPtr(m),
                    port: q,
                    offset: d.payload_offset as u16,
                    len: d.payload_len as u16,
                    ip: d.src_ip,
                    udp_port: d.src_port,
                };
                if t.mail.post(worker as usize, item).is_ok() {
                    t.c.add(Counter::HandoffPublish, 1);
                } else {
                    t.c.add(Counter::HandoffFull, 1);
                    t.release(m);
                }
            }
        }
    }

    /// Work another worker handed to this one.
    pub fn on_mail(&mut self, t: &mut Turn, item: Handoff) {
        let now = t.now;
        match item {
            Handoff::Publish { mbuf: MbufPtr(m), port, offset, len, ip, udp_port } => {
                // SAFETY: the sender gave up m with the item; we own it now.
                let frame = unsafe { mbuf::data_mut(m) };
                let payload = frame.get(usize::from(offset)..usize::from(offset) + usize::from(len)).unwrap_or(&[]);
                let from = Addr { ip, port: udp_port, via: port as u16 };
                self.engine.on_handed_publish(t, now, from, payload);
                t.release(m);
            }
            Handoff::Proto(mail) => self.engine.on_mail(t, now, mail),
            Handoff::Neighbor { .. } => {}
        }
    }

    /// Takes changed live settings and expires a slice of silent subscribers.
    pub fn begin_turn(&mut self, t: &mut Turn, live: &Live) {
        if let Some(tun) = live.tunables_if_changed(&mut self.tunables_seen) {
            self.engine.set_tunables(tun);
        }
        self.engine.expire(t.now, live.lifetime_ms.load(Ordering::Relaxed));
    }

    /// Runs the scheduler and publishes the engine's counts.
    pub fn end_turn(&mut self, t: &mut Turn) {
        let now = t.now;
        self.engine.end_turn(t, now);
        t.c.absorb(self.engine.counts());
    }

    /// The rx burst floor of the tunables in force.
    pub fn rx_burst_min(&self) -> usize {
        usize::from(self.engine.tunables().rx_burst_min)
    }
}

impl Io for Turn {
    type Buf = TxBuf;

    #[inline]
    fn alloc(&mut self) -> Option<Self::Buf> {
        let m = self.pool.alloc()?;
        // SAFETY: a fresh single-segment mbuf; 1514 bytes fit the default
        // data room (2048), which the mempool config check guarantees.
        if unsafe { mbuf::set_len(m, UDP_PAYLOAD_OFFSET + DATAGRAM_MAX) } {
            Some(TxBuf(m))
        } else {
            self.release(m);
            None
        }
    }

    #[inline]
    fn payload(&mut self, buf: &Self::Buf) -> &mut [u8] {
        // SAFETY: a TxBuf only comes from alloc above (sized, owned by this
        // worker) and is consumed by send or free, so it is still live.
        let frame = unsafe { mbuf::data_mut(buf.0) };
        &mut frame[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + DATAGRAM_MAX]
    }

    fn send(&mut self, to: Addr, buf: Self::Buf, len: usize, messages: u32) -> bool {
        match self.egress(usize::from(to.via), buf.0, (to.ip, to.port), len) {
            // Counted as delivered or dropped once the driver takes it or not.
            Egress::Sent => {
                if messages > 0 {
                    self.tag_last_deliver(messages);
                }
                true
            }
            Egress::Held => {
                if messages > 0 {
                    self.tag_last_held(messages);
                }
                true
            }
            Egress::Unresolved | Egress::Dropped => {
                self.c.add(Counter::DeliverMessagesDropped, u64::from(messages));
                false
            }
        }
    }

    fn free(&mut self, buf: Self::Buf) {
        self.release(buf.0);
    }

    fn post(&mut self, worker: u32, mail: Mail) -> bool {
        let ok = self.mail.post(worker as usize, Handoff::Proto(mail)).is_ok();
        if !ok {
            self.c.add(Counter::HandoffFull, 1);
        }
        ok
    }

    fn broadcast(&mut self, mail: Mail) {
        let full = self.mail.broadcast(self.index, Handoff::Proto(mail));
        self.c.add(Counter::HandoffFull, full);
    }

    fn learn(&mut self, from: From, _now: Now) {
        self.learn_from_datagram(usize::from(from.addr.via), from.addr.ip, MacAddr(from.mac));
    }
}
