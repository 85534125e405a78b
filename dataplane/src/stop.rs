//! How the dataplane is asked to stop, and how the main lcore waits for it.
//!
//! The stop request is a flag every thread polls (workers once per loop
//! turn) plus a wake-up for the main lcore: a byte written to a socket pair
//! by the SIGINT/SIGTERM handler, by a worker that panicked, or by anyone
//! else who stops the dataplane. The main lcore waits on that socket with a
//! timeout instead of sleeping, so a stop request ends its wait at once,
//! however its timer is doing.
//!
//! Why not a plain sleep: `std::thread::sleep` resumes after a signal with
//! the time left, and a storm of signals (net_tap raises one per received
//! frame when its Rx trigger is on; a burst of 94,000 IPv4 fragments kept
//! the main lcore handling them for seconds) then stretches a 20 ms sleep
//! without bound. [`crate::dpdk::eal::Eal::init`] keeps driver signals away, and
//! this wake-up keeps shutdown prompt whatever signals arrive.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long, after a stop request, workers and the control thread get to
/// return before the dataplane reports and exits without them.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(3);

/// A stop request: the flag workers poll and the main lcore's wake-up.
#[derive(Debug)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    /// Set by SIGINT/SIGTERM only: a second signal exits at once, but the
    /// first after a stop requested from inside (a worker that panicked)
    /// still gets its report.
    signalled: Arc<AtomicBool>,
    rx: UnixStream,
    tx: UnixStream,
}

impl Stop {
    /// A request not made yet.
    pub fn new() -> std::io::Result<Arc<Stop>> {
        let (rx, tx) = UnixStream::pair()?;
        // A full socket means a wake-up is already pending: never block.
        tx.set_nonblocking(true)?;
        let (flag, signalled) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        Ok(Arc::new(Stop { flag, signalled, rx, tx }))
    }

    /// Makes SIGINT and SIGTERM request a stop; a second one while
    /// stopping exits at once (status 1).
    pub fn on_signals(&self) -> std::io::Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&self.signalled))?;
            signal_hook::flag::register(sig, Arc::clone(&self.signalled))?;
            signal_hook::flag::register(sig, Arc::clone(&self.flag))?;
            // Writes one byte from the handler (async-signal-safe).
            signal_hook::low_level::pipe::register(sig, self.tx.try_clone()?)?;
        }
        Ok(())
    }

    /// The flag, for threads that poll it (workers, the control thread).
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }

    /// Requests a stop and wakes the main lcore.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = (&self.tx).write(&[1]);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Waits until a stop is requested or `timeout` passes; true when
    /// requested. A signal may end the wait early; callers loop.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.is_requested() {
            return true;
        }
        let _ = self.rx.set_read_timeout(Some(timeout.max(Duration::from_micros(1))));
        let mut drain = [0u8; 64];
        let _ = (&self.rx).read(&mut drain);
        self.is_requested()
    }

    /// Polls `done` until it holds or `bound` passes from `since`; true when
    /// it held. For shutdown steps that must not wait forever.
    pub fn until(done: impl Fn() -> bool, since: Instant, bound: Duration) -> bool {
        loop {
            if done() {
                return true;
            }
            if since.elapsed() >= bound {
                return false;
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A fault injected through the environment variable `name` (debug builds
/// only, for the shutdown tests): the number it holds.
#[cfg(debug_assertions)]
pub(crate) fn fault(name: &str) -> Option<u32> {
    std::env::var(name).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_ends_a_wait_at_once() {
        let stop = Stop::new().unwrap();
        assert!(!stop.wait(Duration::from_millis(5)), "nothing requested: times out");
        let s = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            s.request();
        });
        // A wait far longer than the test: only the request can end it.
        while !stop.wait(Duration::from_secs(3600)) {}
        assert!(stop.flag().load(Ordering::Relaxed));
        t.join().unwrap();
        // Many requests never block the requester.
        for _ in 0..100_000 {
            stop.request();
        }
    }

    #[test]
    fn until_is_bounded() {
        let t0 = Instant::now();
        assert!(!Stop::until(|| false, t0, Duration::from_millis(20)));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert!(Stop::until(|| true, Instant::now(), Duration::ZERO));
    }
}
