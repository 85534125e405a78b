//! Safe, small wrappers over `ms-dpdk-sys`: the EAL, mempools and mbufs,
//! ports. Every `unsafe` block of the dataplane that touches DPDK is here
//! or in the lcore shim, each with its `// SAFETY:` reasoning.

pub mod eal;
pub mod mbuf;
pub mod port;
