//! The automatic credit rule (docs/protocol.md, "Flow control"), shared by
//! [`crate::SubscriberState`] and anything else that grants like a client
//! (the in-DPDK benchmark `ms-bench`, a simulator).

/// Grant a window past the last message consumed, but only once that moves
/// the grant by at least half a window: one CREDIT per half window per
/// stream instead of one per message, while a stream that keeps being
/// consumed never runs out of credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRule {
    window: u64,
}

impl CreditRule {
    /// The rule for `window` bytes past the last message consumed; `None`
    /// for a window of 0 (no automatic grants: manual flow control).
    pub const fn new(window: u64) -> Option<CreditRule> {
        if window == 0 {
            None
        } else {
            Some(CreditRule { window })
        }
    }

    /// The window in bytes.
    pub const fn window(self) -> u64 {
        self.window
    }

    /// The grant due once a stream's message ending at byte `position` was
    /// consumed, given the stream's latest grant (`None`: none yet):
    /// `position + window` (saturating) when the stream has no grant yet or
    /// that is at least half a window (at least 1 byte) beyond its latest
    /// grant; `None` when no grant is due.
    #[inline]
    pub const fn next_grant(self, position: u64, granted: Option<u64>) -> Option<u64> {
        let want = position.saturating_add(self.window);
        let half = if self.window / 2 == 0 { 1 } else { self.window / 2 };
        match granted {
            None => Some(want),
            Some(g) if want > g && want - g >= half => Some(want),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_every_half_window() {
        let r = CreditRule::new(300).expect("non-zero");
        assert_eq!(r.next_grant(30, None), Some(330), "the first grant is due at once");
        assert_eq!(r.next_grant(150, Some(330)), None, "120 beyond: under half");
        assert_eq!(r.next_grant(180, Some(330)), Some(480), "150 beyond: half");
        assert_eq!(r.next_grant(10, Some(480)), None, "never below the latest grant");
        assert_eq!(r.next_grant(u64::MAX - 1, Some(0)), Some(u64::MAX), "saturates");
        assert_eq!(CreditRule::new(0), None, "manual");
        assert_eq!(CreditRule::new(1).map(|r| r.next_grant(5, Some(5))), Some(Some(6)), "at least a byte");
    }
}
