//! Time on a worker lcore: the TSC, read once per loop turn, turned into
//! milliseconds (expiry) and wall-clock nanoseconds (message stamps)
//! without a syscall.

use ms_dpdk_sys as sys;
use ms_proto::Now;

/// Wall-clock nanoseconds and milliseconds from the TSC.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_tsc: u64,
    base_ns: u64,
    /// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u64,
    /// TSC ticks per millisecond.
    pub tsc_per_ms: u64,
}

/// Reads the time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rte_rdtsc only reads the time-stamp counter.
    unsafe { sys::rte_rdtsc() }
}

impl Clock {
    /// Anchors the TSC, ticking `tsc_per_ms` times a millisecond, to
    /// CLOCK_REALTIME now.
    pub fn start(tsc_per_ms: u64) -> Clock {
        let base_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let tsc_hz = tsc_per_ms.max(1) * 1000;
        let ns_per_tick_q32 = ((1_000_000_000u128 << 32) / u128::from(tsc_hz)) as u64;
        Clock { base_tsc: tsc(), base_ns, ns_per_tick_q32, tsc_per_ms: tsc_per_ms.max(1) }
    }

    /// Nanoseconds since the Unix epoch at TSC value `tsc`.
    pub fn ns(&self, tsc: u64) -> u64 {
        let ticks = u128::from(tsc.saturating_sub(self.base_tsc));
        self.base_ns + ((ticks * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// The engine's view of TSC value `tsc`.
    pub fn now(&self, tsc: u64) -> Now {
        Now { ms: tsc / self.tsc_per_ms, ns: self.ns(tsc) }
    }
}
