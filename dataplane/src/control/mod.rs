//! The dataplane's control side: the settings workers read live
//! ([`Live`]), and the control socket that changes them ([`socket`]).
//! The control plane uses the socket; the dataplane never depends on it.

use crate::config::Config;
use ms_streams::Tunables;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, TryLockError};

pub mod socket;

pub use socket::{ControlSocket, ControlState, PortInfo, SetLogLevel};

/// Settings workers read at run time (relaxed loads, once per loop turn).
#[derive(Debug)]
pub struct Live {
    /// `streams.subscription_lifetime_ms`.
    pub lifetime_ms: AtomicU64,
    /// The `scheduler`, `flow` and live `memory` keys; written by the
    /// control thread, copied out by workers between bursts.
    tunables: Mutex<Tunables>,
    /// Bumped (under the lock) each time `tunables` is replaced; starts at
    /// 1, so a worker whose `seen` starts at 0 takes the first set too.
    generation: AtomicU64,
    /// Workers that finished building their tables and entered their loop.
    pub workers_started: std::sync::atomic::AtomicUsize,
    /// This run's instance identity, sent to clients in every ACK so they
    /// can tell a restarted appliance (which holds none of their
    /// subscriptions) from the one they subscribed to.
    pub instance: u64,
}

/// A random nonzero instance identity: from the kernel's random source, or
/// (should it be unreadable) from the clock and the process id, which also
/// differ between two runs.
fn new_instance() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    let x = if random {
        u64::from_le_bytes(b)
    } else {
        let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        ms_wire::shard::mix(ns ^ u64::from(std::process::id()) << 32)
    };
    x.max(1)
}

impl Live {
    /// The live settings of `cfg`.
    pub fn new(cfg: &Config) -> Live {
        Live {
            lifetime_ms: AtomicU64::new(u64::from(cfg.streams.subscription_lifetime_ms)),
            tunables: Mutex::new(crate::settings::tunables(cfg)),
            generation: AtomicU64::new(1),
            workers_started: std::sync::atomic::AtomicUsize::new(0),
            instance: new_instance(),
        }
    }

    /// The tunables, if they changed since generation `*seen` (which is
    /// then updated). For workers, between bursts: one atomic load when
    /// nothing changed, else a `try_lock` and a copy; never allocates or
    /// blocks. `None` also when the control thread holds the lock at that
    /// moment: `*seen` stays, so the next call tries again.
    pub fn tunables_if_changed(&self, seen: &mut u64) -> Option<Tunables> {
        if self.generation.load(Ordering::Acquire) == *seen {
            return None;
        }
        let t = match self.tunables.try_lock() {
            Ok(t) => t,
            // The writer only stores a Copy value: what it left is whole.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        // Read under the lock, so generation and values belong together.
        *seen = self.generation.load(Ordering::Relaxed);
        Some(*t)
    }

    /// The tunables in force (locks; for the control thread).
    pub fn tunables(&self) -> Tunables {
        *self.tunables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the tunables and bumps the generation, so every worker
    /// takes them at its next check.
    fn set_tunables(&self, t: Tunables) {
        let mut cur = self.tunables.lock().unwrap_or_else(|p| p.into_inner());
        *cur = t;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times the tunables were set (1 at start).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
