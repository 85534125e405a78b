//! What handles UDP datagrams for the service port: the streams protocol
//! (`streams`, the product, in `pubsub.rs`), or a simple handler behind
//! [`ServiceHandler`]: `sink` counts and drops, `echo` sends each payload
//! back to its sender through routes and ARP (diagnostics and tests).

use ms_netstack::Ipv4Addr;

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

pub use ms_config::HandlerKind;

/// A fresh service for one worker; `streams` bounds the stream tables.
pub fn build(kind: HandlerKind, streams: ms_streams::Limits) -> crate::worker::Service {
    use crate::worker::Service;
    match kind {
        HandlerKind::Streams => Service::Streams(streams),
        HandlerKind::Sink => Service::Simple(Box::new(Sink)),
        HandlerKind::Echo => Service::Simple(Box::new(Echo)),
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
