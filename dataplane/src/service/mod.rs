//! What handles UDP datagrams for the service port: the streams protocol
//! ([`streams`], the product), or a simple handler behind
//! [`ServiceHandler`] ([`simple`]: `sink` counts and drops, `echo` sends
//! each payload back through routes and ARP, for diagnostics and tests).
//!
//! A service sees one [`Turn`] context per call, never the worker.

pub mod simple;
pub mod streams;

use crate::control::Live;
use crate::dpdk::mbuf;
use crate::lcore::mailbox::Handoff;
use crate::lcore::turn::Turn;
use ms_dpdk_sys as sys;
use ms_netstack::host::ServiceDatagram;
use ms_netstack::Ipv4Addr;

pub use ms_config::HandlerKind;

/// Who sent a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Source address.
    pub ip: Ipv4Addr,
    /// Source port.
    pub port: u16,
}

/// What the worker does with the datagram's buffer afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAction {
    /// Done with it: free it.
    Consumed,
    /// The payload buffer now holds `payload_len` bytes to send back to the
    /// peer from the service port.
    Reply {
        /// Reply payload length (at most the received payload's length).
        payload_len: usize,
    },
}

/// A per-worker service handler. Called on the worker lcore for every
/// datagram: it must not allocate, lock, block or log.
pub trait ServiceHandler: Send {
    /// Handles one datagram; `payload` may be rewritten in place.
    fn on_datagram(&mut self, from: Peer, payload: &mut [u8]) -> ServiceAction;
}

/// What runs on the service port, as chosen at startup. The worker builds
/// it on its own lcore ([`ServiceSpec::build`]), so its tables are local
/// to that core's memory.
#[derive(Debug, Clone, Copy)]
pub enum ServiceSpec {
    /// A simple handler.
    Simple(HandlerKind),
    /// The streams protocol, with these table bounds.
    Streams(ms_streams::Limits),
}

/// A fresh service description for one worker; `streams` bounds the stream
/// tables.
pub fn spec(kind: HandlerKind, streams: ms_streams::Limits) -> ServiceSpec {
    match kind {
        HandlerKind::Streams => ServiceSpec::Streams(streams),
        other => ServiceSpec::Simple(other),
    }
}

/// A worker's built service.
pub enum Service {
    /// A simple handler.
    Simple(Box<dyn ServiceHandler>),
    /// The streams protocol engine.
    Streams(Box<streams::StreamsService>),
}

impl ServiceSpec {
    /// Builds the service (allocates its tables) for worker `t.index` of
    /// `workers`, on the calling lcore.
    pub fn build(self, t: &Turn, workers: u32, instance: u64) -> Service {
        match self {
            ServiceSpec::Simple(kind) => Service::Simple(simple::build(kind)),
            ServiceSpec::Streams(limits) => {
                Service::Streams(Box::new(streams::StreamsService::new(t, limits, workers, instance)))
            }
        }
    }
}

impl Service {
    /// Handles one datagram to the service port that arrived on queue `q`;
    /// `m` is the service's to send, hand over or free.
    #[inline]
    pub(crate) fn on_datagram(&mut self, t: &mut Turn, q: usize, m: *mut sys::rte_mbuf, d: &ServiceDatagram) {
        match self {
            Service::Streams(s) => s.on_datagram(t, q, m, d),
            Service::Simple(h) => simple::on_datagram(h.as_mut(), t, q, m, d),
        }
    }

    /// Work another worker handed to this one.
    pub fn on_mail(&mut self, t: &mut Turn, item: Handoff) {
        match self {
            Service::Streams(s) => s.on_mail(t, item),
            Service::Simple(_) => {
                if let Handoff::Publish { mbuf, .. } = item {
                    t.release(mbuf.0);
                }
            }
        }
    }

    /// Start of a turn, before any packet: live settings, expiry.
    pub fn begin_turn(&mut self, t: &mut Turn, live: &Live) {
        if let Service::Streams(s) = self {
            s.begin_turn(t, live);
        }
    }

    /// End of a turn: the streams scheduler sends what the turn queued.
    pub fn end_turn(&mut self, t: &mut Turn) {
        if let Service::Streams(s) = self {
            s.end_turn(t);
        }
    }

    /// The RX burst floor the service wants (the streams tunables').
    pub fn rx_burst_min(&self) -> usize {
        match self {
            Service::Streams(s) => s.rx_burst_min(),
            Service::Simple(_) => 1,
        }
    }
}

/// The UDP payload of a received datagram.
///
/// # Safety
/// `m` must be a live single-segment mbuf owned by the caller, and `d`
/// must describe a datagram inside it (the netstack's verdict on it).
pub(crate) unsafe fn payload_of<'a>(m: *mut sys::rte_mbuf, d: &ServiceDatagram) -> &'a mut [u8] {
    // SAFETY: forwarded from the caller's contract.
    let frame = unsafe { mbuf::data_mut(m) };
    &mut frame[d.payload_offset..d.payload_offset + d.payload_len]
}
