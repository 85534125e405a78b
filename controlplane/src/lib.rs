//! MemoryStreamer's control plane: the `ms-controlplane` daemon and the
//! `msctl` CLI. The daemon owns the YAML config, reads the dataplane's
//! shared-memory stats segment (read-only), exports Prometheus metrics,
//! and serves `msctl` on a Unix socket; it talks to the dataplane through
//! the dataplane's control socket. The dataplane never depends on it.

#![warn(missing_docs)]

pub mod api;
pub mod metrics;
pub mod plugins;
pub mod server;
pub mod text;
