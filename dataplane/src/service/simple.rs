//! Simple handlers: `sink` (the worker counts, it drops) and `echo` (sends
//! the payload back, for diagnostics and tests).

use super::{payload_of, HandlerKind, Peer, ServiceAction, ServiceHandler};
use crate::counters::Counter;
use crate::lcore::turn::{Egress, Turn};
use ms_dpdk_sys as sys;
use ms_netstack::host::{ServiceDatagram, UDP_PAYLOAD_OFFSET};

/// The handler for `kind` (streams is not a simple handler: sink then).
pub fn build(kind: HandlerKind) -> Box<dyn ServiceHandler> {
    match kind {
        HandlerKind::Echo => Box::new(Echo),
        HandlerKind::Sink | HandlerKind::Streams => Box::new(Sink),
    }
}

/// Runs `h` on a datagram and sends its reply, if any.
pub(crate) fn on_datagram(
    h: &mut dyn ServiceHandler,
    t: &mut Turn,
    q: usize,
    m: *mut sys::rte_mbuf,
    d: &ServiceDatagram,
) {
    let peer = Peer { ip: d.src_ip, port: d.src_port };
    // SAFETY: m is owned by this worker; the slice dies before m moves.
    let payload = unsafe { payload_of(m, d) };
    match h.on_datagram(peer, payload) {
        // A reply reuses the received buffer, so it may not be longer than
        // what arrived; and it never goes to another service on our port
        // (two appliances would bounce a datagram forever).
        ServiceAction::Reply { payload_len }
            if d.payload_offset == UDP_PAYLOAD_OFFSET
                && payload_len <= d.payload_len
                && peer.port != t.service_port =>
        {
            // A held reply is counted now; if it is dropped later,
            // egress_arp_timeout says so.
            if matches!(t.egress(q, m, (peer.ip, peer.port), payload_len), Egress::Sent | Egress::Held) {
                t.c.add(Counter::ServiceReplies, 1);
            }
        }
        ServiceAction::Reply { .. } | ServiceAction::Consumed => t.release(m),
    }
}

/// Counts (the worker does) and drops.
#[derive(Debug, Default)]
pub struct Sink;

impl ServiceHandler for Sink {
    fn on_datagram(&mut self, _from: Peer, _payload: &mut [u8]) -> ServiceAction {
        ServiceAction::Consumed
    }
}

/// Echoes the payload unchanged.
#[derive(Debug, Default)]
pub struct Echo;

/// Below this, ports belong to system services; echoing to them (or to
/// another echo service on our port) could start a packet loop.
const ECHO_PORT_MIN: u16 = 1024;

impl ServiceHandler for Echo {
    fn on_datagram(&mut self, from: Peer, payload: &mut [u8]) -> ServiceAction {
        if from.port < ECHO_PORT_MIN {
            return ServiceAction::Consumed;
        }
        ServiceAction::Reply { payload_len: payload.len() }
    }
}
