//! MemoryStreamer's DPDK dataplane.
//!
//! Layers, each using only those above it (docs/architecture.md has the
//! map, and `tests/layout.rs` checks there is no cycle):
//! - [`dpdk`]: safe, small wrappers over `ms-dpdk-sys` (EAL, mbufs, ports);
//! - [`lcore`]: a worker's per-turn context, mailboxes and clock;
//! - [`service`]: what runs on the service port (the streams protocol's
//!   engine from `ms-proto` behind a thin shim, or sink/echo);
//! - [`worker`]: the loop; [`app`]: startup, the main lcore, shutdown.
//!
//! Packet logic is sans-IO in `ms-netstack`, protocol logic in `ms-proto`.

#![warn(missing_docs)]

pub mod alloc;
pub mod app;
pub use ms_config as config;
pub mod control;
pub mod counters;
pub mod dpdk;
pub mod lcore;
pub mod report;
pub mod service;
pub mod settings;
pub mod stop;
pub mod worker;
