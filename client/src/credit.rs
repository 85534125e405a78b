//! The automatic credit rule (docs/protocol.md, "Flow control"), shared by
//! [`crate::SubscriberState`] and anything else that grants like a client
//! (the in-DPDK benchmark `ms-bench`, a simulator).

/// Grant a window past the last message consumed, but only once that moves
/// the grant by at least half a window: one CREDIT per half window per
/// stream instead of one per message, while a stream that keeps being
/// consumed never runs out of credit. A grant is also due whenever less
/// than a largest message of credit is left: with a window under two
/// largest messages, waiting for half a window could leave the next
/// message forever past the grant (found by the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRule {
    window: u64,
}

/// Payload bytes of the largest message: less credit than this left may
/// not fit the next one.
const LARGEST_MESSAGE: u64 = ms_wire::PAYLOAD_MAX as u64;

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
    /// `position + window` (saturating) when the stream has no grant yet,
    /// when that is at least half a window (at least 1 byte) beyond its
    /// latest grant, or when the latest grant leaves less than a largest
    /// message past `position`; `None` when no grant is due.
    #[inline]
    pub const fn next_grant(self, position: u64, granted: Option<u64>) -> Option<u64> {
        let want = position.saturating_add(self.window);
        let half = if self.window / 2 == 0 { 1 } else { self.window / 2 };
        match granted {
            None => Some(want),
            Some(g) if want > g && (want - g >= half || g.saturating_sub(position) < LARGEST_MESSAGE) => Some(want),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_every_half_window() {
        let r = CreditRule::new(30_000).expect("non-zero");
        assert_eq!(r.next_grant(3_000, None), Some(33_000), "the first grant is due at once");
        assert_eq!(r.next_grant(15_000, Some(33_000)), None, "12,000 beyond: under half");
        assert_eq!(r.next_grant(18_000, Some(33_000)), Some(48_000), "15,000 beyond: half");
        assert_eq!(r.next_grant(1_000, Some(48_000)), None, "never below the latest grant");
        assert_eq!(r.next_grant(u64::MAX - 1, Some(0)), Some(u64::MAX), "saturates");
        assert_eq!(CreditRule::new(0), None, "manual");
        assert_eq!(CreditRule::new(1).map(|r| r.next_grant(5, Some(5))), Some(Some(6)), "at least a byte");
    }

    /// The simulator's stall: a window of 1,700 bytes, 874 left (more than
    /// half a window) and a 957-byte message next: the old rule waited for
    /// half a window to be consumed, which never came.
    #[test]
    fn a_grant_is_due_while_less_than_a_largest_message_is_left() {
        let r = CreditRule::new(1_700).expect("non-zero");
        assert_eq!(r.next_grant(16_539, Some(17_413)), Some(18_239));
        let wide = CreditRule::new(1 << 16).expect("non-zero");
        assert_eq!(wide.next_grant(1_000, Some(1_000 + (1 << 16) - 10)), None, "plenty left: no grant");
        let left = LARGEST_MESSAGE - 1;
        assert_eq!(wide.next_grant(1_000, Some(1_000 + left)), Some(1_000 + (1 << 16)), "under a message left");
    }
}
