//! Raw bindings to DPDK (>= 22.11), generated at build time by bindgen from
//! the system headers found through `pkg-config libdpdk`.
//!
//! This crate holds bindings only. DPDK's `static inline` functions
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...) are reachable through C
//! wrappers that bindgen generates and `build.rs` compiles; they keep their
//! original names. Safe wrappers live in `ms-dataplane`.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
