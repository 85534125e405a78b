//! The two helpers every test that starts a dataplane needs, shared with
//! `bench/tests` (which includes this file by path: the rest of
//! `common/` names the `ms-dataplane` binary and builds only here).

use std::sync::{Mutex, MutexGuard};

/// DPDK processes busy-poll a core each; on a 2-core machine running two at
/// once only makes both slow. Tests take this lock around a run.
static DATAPLANE_LOCK: Mutex<()> = Mutex::new(());

/// Serialises dataplane runs within one test binary.
pub fn exclusive() -> MutexGuard<'static, ()> {
    DATAPLANE_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "this test needs root (DPDK, TAP devices, network namespaces): run `make test` as root"
    );
}
