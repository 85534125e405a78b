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
//! - [`SubscriberState`] and [`PublisherState`] are their protocol logic
//!   without sockets or clocks (time is passed in), for drivers other than
//!   the kernel sockets here (a simulator, a fake network); [`CreditRule`]
//!   is the automatic credit rule on its own.
//! - The [`Publisher`] reads the BACKPRESSURE frames the appliance answers
//!   with when streams under the `block` policy refuse messages
//!   ([`Publisher::poll_backpressure`]).

#![warn(missing_docs)]

pub mod cli;
mod credit;
mod publisher;
mod ranges;
mod subscriber;

pub use credit::CreditRule;
pub use publisher::{Publisher, PublisherState, Transmit};
pub use subscriber::{
    Delivery, RequestKind, RequestOutcome, StreamState, Subscriber, SubscriberState, SubscriberStats,
    DEFAULT_CREDIT_WINDOW,
};

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
    /// The appliance refused a request (or, for a range, at least one
    /// core refused its share and changed nothing). `applied` streams were
    /// added by the cores that accepted theirs; [`Subscriber::subscribe`]
    /// then unsubscribes those again (the streams of the range that were
    /// not subscribed before), so a refused subscribe changes nothing.
    #[error("the appliance refused request {request}: {code:?} (detail {detail}); cores that accepted their share had added {applied} streams (a refused subscribe removes them again)")]
    Refused {
        /// Request id.
        request: u32,
        /// Reason.
        code: ms_wire::control::ErrorCode,
        /// Code-specific detail.
        detail: u64,
        /// Streams changed by the parts that were applied.
        applied: u32,
    },
    /// A range whose first stream id is above its last.
    #[error("stream range {first}..={last} is empty: the first id must not be above the last")]
    EmptyRange {
        /// First id given.
        first: u64,
        /// Last id given.
        last: u64,
    },
    /// A message payload is larger than one DELIVER entry can carry.
    #[error("message refused locally: the payload is {len} bytes; at most {max} bytes fit one message")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// A message's priority class is out of range.
    #[error("message refused locally: class {class} does not exist; classes are 0 (bulk), 1 (normal), 2 (latency) and 3 (control)")]
    BadClass {
        /// Class given.
        class: u8,
    },
}

/// True for a socket error that a datagram client outlives: the appliance
/// or the route to it is gone for now (restarting, interface down,
/// address being re-added, an ICMP unreachable reported on the socket),
/// or a signal interrupted the call. The caller counts it and goes on.
pub(crate) fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        Interrupted
            | WouldBlock
            | TimedOut
            | ConnectionRefused
            | ConnectionReset
            | NetworkUnreachable
            | HostUnreachable
            | NetworkDown
            | AddrNotAvailable
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}
