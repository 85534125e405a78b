//! MemoryStreamer's DPDK dataplane.
//!
//! Safe, small wrappers over `ms-dpdk-sys` (EAL, mempools, mbufs, ports,
//! lcore launch), the YAML config, the per-worker counters and the
//! run-to-completion worker loop. Packet logic is sans-IO in `ms-netstack`.
//! See docs/architecture.md for the map.

#![warn(missing_docs)]

pub mod alloc;
pub mod app;
pub mod bench;
pub use ms_config as config;
pub mod control;
pub mod counters;
pub mod eal;
pub mod mailbox;
pub mod mbuf;
pub mod port;
pub mod pubsub;
pub mod report;
pub mod service;
pub mod stop;
pub mod worker;
