//! The counting global allocator (crate `ms-alloc-count`), under the
//! path the dataplane's binaries and tests use.

pub use ms_alloc_count::{count_this_thread, worker_allocations, CountingAlloc};
