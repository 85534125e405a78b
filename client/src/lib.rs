//! MemoryStreamer's client library, over ordinary kernel UDP sockets.
//!
//! - [`Publisher`] batches messages per shard into PUBLISH datagrams, one
//!   UDP socket (so one source port) per shard group, so NIC RSS on the
//!   appliance spreads streams over its cores (docs/protocol.md,
//!   "Steering").
//! - [`Subscriber`] subscribes to streams or ranges (waiting for every ACK
//!   part), sends heartbeats, receives DELIVERs and checks every stream's
//!   sequence numbers for gaps and reordering. It grants credit by itself
//!   as messages are consumed (a window per stream, re-sent with the
//!   heartbeats) or leaves it to the caller, and records the streams the
//!   appliance dropped it from as a slow consumer.
//! - The [`Publisher`] reads the BACKPRESSURE frames the appliance answers
//!   with when streams under the `block` policy refuse messages
//!   ([`Publisher::poll_backpressure`]).

#![warn(missing_docs)]

pub mod cli;
mod publisher;
mod subscriber;

pub use publisher::Publisher;
pub use subscriber::{Delivery, StreamState, Subscriber, SubscriberStats, DEFAULT_CREDIT_WINDOW};

/// What can go wrong talking to the appliance.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket call failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The appliance did not answer a request in time.
    #[error("no answer from the appliance at {target} after {attempts} attempts: is ms-dataplane running with service.handler: streams, and is the address reachable?")]
    Timeout {
        /// Appliance address.
        target: std::net::SocketAddr,
        /// Attempts made.
        attempts: u32,
    },
    /// The appliance refused a request.
    #[error("the appliance refused request {request}: {code:?} (detail {detail})")]
    Refused {
        /// Request id.
        request: u32,
        /// Reason.
        code: ms_wire::control::ErrorCode,
        /// Code-specific detail.
        detail: u64,
    },
    /// A message cannot be published as given.
    #[error("message refused locally: payload of {len} bytes (max {max}) or class {class} (max 3)")]
    BadMessage {
        /// Payload length.
        len: usize,
        /// Largest allowed.
        max: usize,
        /// Class given.
        class: u8,
    },
}
