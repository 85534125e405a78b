//! The bounds of MemoryStreamer that constrain one another, in one place.
//!
//! A bound here is one that some other bound, array or wire field depends
//! on: the datagram size fixes how many entries fit a frame, the worker
//! count must fit the ACK's `parts` field, and so on. Each relation is a
//! `const _: () = assert!(..)` below, so changing one number without the
//! others it constrains fails the build instead of truncating a field at
//! run time. The crates that own these numbers (`ms-wire`, `ms-streams`,
//! `ms-config`, `ms-netstack`) re-export them under their old paths.
//!
//! No dependencies and `no_std`, so every crate of the workspace, the
//! fuzz target included, can use it.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

// ---------------------------------------------------------------- IP/UDP

/// The largest IPv4 packet the appliance sends (and answers): a standard
/// Ethernet MTU, so nothing the appliance sends is ever fragmented.
pub const IPV4_MTU: usize = 1500;
/// An IPv4 header without options: the appliance sends none and the wire
/// protocol's datagram size is computed from this.
pub const IPV4_HEADER_LEN: usize = 20;
/// A UDP header.
pub const UDP_HEADER_LEN: usize = 8;

// ------------------------------------------------------------------ wire

/// Largest UDP payload the appliance sends or accepts: what is left of
/// [`IPV4_MTU`] after the IPv4 and UDP headers.
pub const DATAGRAM_MAX: usize = IPV4_MTU - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// The wire protocol's datagram header (magic, version, type, flags,
/// reserved, count); `ms-wire` derives the same value from its layout.
pub const HEADER_LEN: usize = 8;
/// Fixed part of a PUBLISH entry (stream, class, flags, len).
pub const PUBLISH_ENTRY_HEADER_LEN: usize = 12;
/// Fixed part of a DELIVER entry (stream, seq, position, timestamp, class,
/// flags, len).
pub const DELIVER_ENTRY_HEADER_LEN: usize = 36;
/// A SUBSCRIBE/UNSUBSCRIBE entry (request, first, last, initial credit).
pub const RANGE_ENTRY_LEN: usize = 24;
/// An ACK entry (request, part, parts, streams, lifetime, instance).
pub const ACK_ENTRY_LEN: usize = 24;
/// An ERROR entry (request, code, part, parts, reserved, detail).
pub const ERROR_ENTRY_LEN: usize = 20;
/// A CREDIT entry (stream, position).
pub const CREDIT_ENTRY_LEN: usize = 16;
/// A BACKPRESSURE entry (stream, refused, reserved).
pub const BACKPRESSURE_ENTRY_LEN: usize = 16;

/// Largest message payload: what fits one DELIVER entry in one datagram,
/// so every published message can be delivered unfragmented.
pub const PAYLOAD_MAX: usize = DATAGRAM_MAX - HEADER_LEN - DELIVER_ENTRY_HEADER_LEN;

/// Most messages one PUBLISH datagram can carry (all with empty payloads),
/// hence most distinct streams it can name: the dataplane's per-datagram
/// list of blocked streams is sized by it.
pub const PUBLISH_MESSAGES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / PUBLISH_ENTRY_HEADER_LEN;
/// Most SUBSCRIBE/UNSUBSCRIBE entries one datagram carries; the client
/// splits larger requests into several datagrams.
pub const RANGE_ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / RANGE_ENTRY_LEN;
/// Most ACK entries one datagram carries.
pub const ACK_ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / ACK_ENTRY_LEN;
/// Most ERROR entries one datagram carries.
pub const ERROR_ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / ERROR_ENTRY_LEN;
/// Most CREDIT entries one datagram carries.
pub const CREDIT_ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / CREDIT_ENTRY_LEN;
/// Most BACKPRESSURE entries one datagram carries; refusals beyond it in
/// one answer are counted but not reported.
pub const BACKPRESSURE_ENTRIES_MAX: usize = (DATAGRAM_MAX - HEADER_LEN) / BACKPRESSURE_ENTRY_LEN;

/// Most stream ids the ranges of one datagram may cover together: bounds
/// the work one SUBSCRIBE costs every core, and is small enough that the
/// streams one part changes fit ACK's u32 `streams` field.
pub const RANGE_IDS_MAX: u64 = 65_536;

/// Highest wire priority class; higher numbers are served first. Two bits
/// of room, one per scheduling class.
pub const CLASS_MAX: u8 = 3;

/// Number of shards streams are spread over: a power of two so the shard
/// is a mask of the hash, and many per worker so shards balance workers
/// to within one shard (1024 / 64 workers = 16 each).
pub const SHARDS: u32 = 1024;

// --------------------------------------------------------------- streams

/// Scheduling classes (control, latency, normal, bulk), one per wire
/// class 0..=[`CLASS_MAX`].
pub const CLASSES: usize = 4;
/// Slots of the "most affected" (stream, subscriber) sketch: enough to name
/// the few worst offenders in counters without a per-drop cost beyond a
/// scan of this many entries.
pub const AFFECTED_MAX: usize = 8;
/// Most per-range policy entries a config may carry: every published
/// message may scan them, so they stay few, and their count is a `u8`.
pub const POLICY_RANGES_MAX: usize = 64;

// ---------------------------------------------------------------- config

/// Largest RX burst a worker asks for: the TX and free arrays of a worker
/// are this long, and DPDK takes the burst size as a u16.
pub const RX_BURST_MAX: usize = 512;
/// Highest lcore id DPDK 22.11 is built for (RTE_MAX_LCORE - 1).
pub const LCORE_ID_MAX: u32 = 127;
/// Most worker lcores one process runs: each answers its part of a range
/// request, so the count must fit ACK/ERROR's u16 `parts`.
pub const WORKERS_MAX: usize = 64;
/// Most ports one process drives; per-port counters take two slots each.
pub const PORTS_MAX: usize = 8;

// -------------------------------------------------------------- netstack

/// Static routes per port: a linear scan per routed packet, so few.
pub const ROUTES_MAX: usize = 32;
/// Largest per-neighbour queue of packets waiting for ARP resolution:
/// enough to cover a request round trip at line rate for a few flows.
pub const ARP_QUEUE_MAX: usize = 64;

// ------------------------------------------------------------- relations

// Every length and count field of the wire is a u16.
const _: () = assert!(DATAGRAM_MAX <= u16::MAX as usize, "DELIVER builder keeps the datagram length in a u16");
const _: () = assert!(PAYLOAD_MAX <= u16::MAX as usize, "PUBLISH/DELIVER `len` is a u16");
const _: () = assert!(PUBLISH_MESSAGES_MAX <= u16::MAX as usize, "header `count` is a u16");
const _: () = assert!(RANGE_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(ACK_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(ERROR_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(CREDIT_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(BACKPRESSURE_ENTRIES_MAX <= u16::MAX as usize);
// A message of the largest payload can be published, not only delivered.
const _: () = assert!(HEADER_LEN + PUBLISH_ENTRY_HEADER_LEN + PAYLOAD_MAX <= DATAGRAM_MAX);
// Every frame carries at least one entry of each kind.
const _: () = assert!(RANGE_ENTRIES_MAX >= 1);
const _: () = assert!(ACK_ENTRIES_MAX >= 1);
const _: () = assert!(ERROR_ENTRIES_MAX >= 1);
const _: () = assert!(CREDIT_ENTRIES_MAX >= 1);
const _: () = assert!(BACKPRESSURE_ENTRIES_MAX >= 1);
const _: () = assert!(PUBLISH_MESSAGES_MAX >= 1);
// BACKPRESSURE `refused` (u32) counts one datagram's refused messages.
const _: () = assert!(PUBLISH_MESSAGES_MAX <= u32::MAX as usize);
// ACK `streams` (u32) counts the streams one part of a range request changed.
const _: () = assert!(RANGE_IDS_MAX <= u32::MAX as u64);
const _: () = assert!(RANGE_IDS_MAX >= 1);
// `shard()` masks the hash with SHARDS - 1; `owner()` is shard % workers.
const _: () = assert!(SHARDS.is_power_of_two());
const _: () = assert!(WORKERS_MAX <= SHARDS as usize, "every worker owns at least one shard");
// ACK/ERROR `part`/`parts` are u16 and number the workers.
const _: () = assert!(WORKERS_MAX <= u16::MAX as usize);
// Workers run on distinct lcores 0..=LCORE_ID_MAX other than the main one.
const _: () = assert!(WORKERS_MAX <= LCORE_ID_MAX as usize);
// `rte_eth_rx_burst` takes the burst as a u16.
const _: () = assert!(RX_BURST_MAX <= u16::MAX as usize);
// `Policies` keeps its length in a u8.
const _: () = assert!(POLICY_RANGES_MAX <= u8::MAX as usize);
// `class_of` maps wire classes 0..=CLASS_MAX one to one onto 0..CLASSES.
const _: () = assert!(CLASSES == CLASS_MAX as usize + 1);
// An ARP hold record counts its queued packets in a u16.
const _: () = assert!(ARP_QUEUE_MAX <= u16::MAX as usize);
// The config accepts 1 to PORTS_MAX ports; the sketch replaces its smallest slot.
const _: () = assert!(PORTS_MAX >= 1);
const _: () = assert!(AFFECTED_MAX >= 1);
