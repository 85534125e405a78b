//! Real-time scheduling for worker threads (`workers.realtime_priority`):
//! a busy-polling worker under `SCHED_FIFO` is never preempted by an
//! ordinary thread on its CPU, only by interrupts, kernel threads of higher
//! priority and the kernel's real-time throttling.

use std::io;

/// The kernel takes the CPU from real-time threads for this share of
/// every period unless `kernel.sched_rt_runtime_us` is -1.
const RT_RUNTIME: &str = "/proc/sys/kernel/sched_rt_runtime_us";
const RT_PERIOD: &str = "/proc/sys/kernel/sched_rt_period_us";

/// Makes the calling thread `SCHED_FIFO` at `priority` (1..=99).
pub fn make_current_fifo(priority: u8) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: i32::from(priority) };
    // SAFETY: pid 0 is the calling thread; param is a valid, initialised
    // struct that the call only reads.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Checks, before any worker starts, that this process may make threads
/// `SCHED_FIFO` at `priority`: a short-lived thread tries it. The error
/// says what to do.
pub fn check(priority: u8) -> anyhow::Result<()> {
    let tried = std::thread::spawn(move || make_current_fifo(priority))
        .join()
        .map_err(|_| anyhow::anyhow!("the SCHED_FIFO probe thread panicked"))?;
    tried.map_err(|e| {
        anyhow::anyhow!(
            "workers.realtime_priority {priority}: the kernel refused SCHED_FIFO ({e}); run the dataplane as root \
             (or with CAP_SYS_NICE, or RLIMIT_RTPRIO >= {priority}), or set workers.realtime_priority: 0"
        )
    })
}

/// The throttling the kernel applies to real-time threads, as (runtime,
/// period) in microseconds; `None` when it is off (runtime -1) or unknown.
pub fn throttling() -> Option<(u64, u64)> {
    let read = |p: &str| std::fs::read_to_string(p).ok()?.trim().parse::<i64>().ok();
    let (runtime, period) = (read(RT_RUNTIME)?, read(RT_PERIOD)?);
    (runtime >= 0 && runtime < period).then_some((runtime as u64, period as u64))
}
