//! What a plugin's fault leads to: its failure policy as a state machine
//! over faults and time, with no I/O, so every path is testable on a fake
//! clock.
//!
//! A faulted instance is never called again: after a trap its memory may
//! hold anything. Until a new instance is attached, the policy says where
//! the chain's messages go: unprocessed to their streams (`fail-open`) or
//! to the dead-letter stream (`fail-closed`, and `reload` while it waits).
//! `reload` asks for a new instance after a backoff that doubles with
//! every fault; the breaker stops it after too many faults in a window,
//! and the plugin then stays failed closed until an operator swaps it.

/// A plugin's failure policy, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Messages pass unprocessed.
    FailOpen,
    /// Messages go to the dead-letter stream.
    FailClosed {
        /// The dead-letter stream.
        dead_letter: u64,
    },
    /// A new instance, with backoff and a crash-loop breaker.
    Reload {
        /// Where messages go meanwhile, and after the breaker trips.
        dead_letter: u64,
        /// The first wait before a new instance, ms.
        backoff_initial_ms: u64,
        /// The longest wait, ms.
        backoff_max_ms: u64,
        /// Faults within `breaker_window_ms` that trip the breaker.
        breaker_faults: u32,
        /// The breaker's window, ms.
        breaker_window_ms: u64,
    },
}

/// Where a chain's messages go while its plugin cannot run them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// To their own streams, unprocessed.
    Open,
    /// To the dead-letter stream.
    DeadLetter(u64),
}

/// The plugin's health, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Running its instance.
    Running,
    /// Faulted; messages bypass it. `reload_at_ms` when a new instance is
    /// due (policy `reload`), `None` when only an operator brings it back.
    Failed {
        /// The bypass in force.
        bypass: Bypass,
        /// When to ask for a new instance.
        reload_at_ms: Option<u64>,
    },
}

/// Faults the breaker remembers (its window counts at most this many).
const FAULTS_KEPT: usize = 32;

/// The policy's state for one plugin of one chain on one core.
#[derive(Debug, Clone)]
pub struct Supervisor {
    policy: FailurePolicy,
    health: Health,
    /// Times of recent faults, a ring.
    faults_ms: [u64; FAULTS_KEPT],
    faults: usize,
    backoff_ms: u64,
    /// True once the breaker tripped (until an operator attaches anew).
    tripped: bool,
}

impl Supervisor {
    /// A supervisor for a running plugin.
    pub fn new(policy: FailurePolicy) -> Supervisor {
        let backoff_ms = match policy {
            FailurePolicy::Reload { backoff_initial_ms, .. } => backoff_initial_ms,
            _ => 0,
        };
        Supervisor {
            policy,
            health: Health::Running,
            faults_ms: [0; FAULTS_KEPT],
            faults: 0,
            backoff_ms,
            tripped: false,
        }
    }

    /// Its health now.
    pub fn health(&self) -> Health {
        self.health
    }

    /// True when the breaker has tripped.
    pub fn tripped(&self) -> bool {
        self.tripped
    }

    /// A call faulted at `now_ms`: the instance is retired, and this is
    /// where messages go until another is attached.
    pub fn on_fault(&mut self, now_ms: u64) -> Health {
        self.faults_ms[self.faults % FAULTS_KEPT] = now_ms;
        self.faults += 1;
        self.health = match self.policy {
            FailurePolicy::FailOpen => Health::Failed { bypass: Bypass::Open, reload_at_ms: None },
            FailurePolicy::FailClosed { dead_letter } => {
                Health::Failed { bypass: Bypass::DeadLetter(dead_letter), reload_at_ms: None }
            }
            FailurePolicy::Reload { dead_letter, backoff_max_ms, breaker_faults, breaker_window_ms, .. } => {
                let bypass = Bypass::DeadLetter(dead_letter);
                if self.recent(now_ms, breaker_window_ms) >= breaker_faults as usize {
                    self.tripped = true;
                    Health::Failed { bypass, reload_at_ms: None }
                } else {
                    let at = now_ms.saturating_add(self.backoff_ms);
                    self.backoff_ms = self.backoff_ms.saturating_mul(2).min(backoff_max_ms);
                    Health::Failed { bypass, reload_at_ms: Some(at) }
                }
            }
        };
        self.health
    }

    /// True when a new instance should be asked for at `now_ms` (once:
    /// the request is then pending until [`Supervisor::on_attached`]).
    pub fn reload_due(&mut self, now_ms: u64) -> bool {
        match self.health {
            Health::Failed { bypass, reload_at_ms: Some(at) } if now_ms >= at => {
                self.health = Health::Failed { bypass, reload_at_ms: None };
                true
            }
            _ => false,
        }
    }

    /// A new instance runs: by reload, or by an operator's swap (which
    /// also resets the breaker and the backoff).
    pub fn on_attached(&mut self, by_operator: bool) {
        self.health = Health::Running;
        if by_operator {
            *self = Supervisor::new(self.policy);
        }
    }

    /// Faults within `window_ms` before `now_ms`, this one included.
    fn recent(&self, now_ms: u64, window_ms: u64) -> usize {
        let kept = self.faults.min(FAULTS_KEPT);
        self.faults_ms[..kept].iter().filter(|&&t| now_ms.saturating_sub(t) < window_ms).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELOAD: FailurePolicy = FailurePolicy::Reload {
        dead_letter: 99,
        backoff_initial_ms: 10,
        backoff_max_ms: 40,
        breaker_faults: 4,
        breaker_window_ms: 1_000,
    };

    #[test]
    fn fail_open_and_fail_closed_bypass_until_an_operator_attaches() {
        let mut s = Supervisor::new(FailurePolicy::FailOpen);
        assert_eq!(s.on_fault(5), Health::Failed { bypass: Bypass::Open, reload_at_ms: None });
        assert!(!s.reload_due(1_000_000));
        s.on_attached(true);
        assert_eq!(s.health(), Health::Running);
        let mut s = Supervisor::new(FailurePolicy::FailClosed { dead_letter: 7 });
        assert_eq!(s.on_fault(5), Health::Failed { bypass: Bypass::DeadLetter(7), reload_at_ms: None });
    }

    #[test]
    fn reload_backs_off_exponentially_to_its_maximum() {
        let mut s = Supervisor::new(RELOAD);
        let mut waits = Vec::new();
        for now in [0, 2_000, 4_000, 6_000] {
            let Health::Failed { bypass, reload_at_ms: Some(at) } = s.on_fault(now) else { panic!("a reload is due") };
            assert_eq!(bypass, Bypass::DeadLetter(99), "messages are dead-lettered meanwhile");
            assert!(!s.reload_due(at - 1));
            assert!(s.reload_due(at));
            assert!(!s.reload_due(at), "asked once");
            s.on_attached(false);
            waits.push(at - now);
        }
        assert_eq!(waits, [10, 20, 40, 40]);
    }

    #[test]
    fn the_breaker_trips_on_a_crash_loop_and_falls_back_to_fail_closed() {
        let mut s = Supervisor::new(RELOAD);
        for now in [0, 100, 200] {
            assert!(matches!(s.on_fault(now), Health::Failed { reload_at_ms: Some(_), .. }));
            s.on_attached(false);
        }
        assert_eq!(s.on_fault(300), Health::Failed { bypass: Bypass::DeadLetter(99), reload_at_ms: None });
        assert!(s.tripped());
        assert!(!s.reload_due(u64::MAX));
        s.on_attached(true);
        assert!(!s.tripped(), "an operator's swap resets the breaker");
        assert!(matches!(s.on_fault(400), Health::Failed { reload_at_ms: Some(410), .. }), "and the backoff");
    }

    #[test]
    fn faults_spread_wider_than_the_window_do_not_trip_it() {
        let mut s = Supervisor::new(RELOAD);
        for k in 0..20 {
            assert!(matches!(s.on_fault(k * 600), Health::Failed { reload_at_ms: Some(_), .. }), "fault {k}");
            s.on_attached(false);
        }
        assert!(!s.tripped());
    }
}
