//! Scheduling, flow-control and memory-budget settings: fixed-size and
//! `Copy`, so a worker can take a new set between bursts without
//! allocating (they change live through the control plane).

/// Priority classes, served strictly in this order (index 0 first). A
/// message's wire class maps with [`class_of`].
pub use ms_limits::CLASSES;

/// Names of the classes in service order, for counters, docs and the CLI.
pub const CLASS_NAMES: [&str; CLASSES] = ["control", "latency", "normal", "bulk"];

/// The scheduling class (service order) of a message's wire `class` byte:
/// on the wire 3 is control and 0 is bulk (higher numbers first, see
/// docs/protocol.md); the parser refuses anything above 3, and this clamps
/// it to control anyway.
#[inline]
pub fn class_of(wire_class: u8) -> usize {
    CLASSES - 1 - usize::from(wire_class).min(CLASSES - 1)
}

/// The first class that counts as best effort for the drop-newest step.
pub const BEST_EFFORT_CLASS: usize = 2;
const _: () = assert!(BEST_EFFORT_CLASS < CLASSES);

/// Most per-range policy entries a config may carry.
pub use ms_limits::POLICY_RANGES_MAX;

/// What happens when a stream's queue reaches its limit because some
/// subscriber has not taken (or not granted credit for) older messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Refuse new messages for the stream and tell the publisher with a
    /// BACKPRESSURE frame; nothing queued is dropped.
    Block,
    /// Drop the oldest queued message for the subscribers still waiting on
    /// it; they see the gap in sequence numbers.
    #[default]
    DropOldest,
    /// Subscribers that are behind skip to the newest message.
    Conflate,
    /// Subscribers that are behind lose the subscription (and get an ERROR
    /// `SlowConsumer`).
    Disconnect,
}

impl Policy {
    /// The name used in the YAML config and in counters.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Block => "block",
            Policy::DropOldest => "drop-oldest",
            Policy::Conflate => "conflate",
            Policy::Disconnect => "disconnect",
        }
    }
}

/// A policy for the stream ids `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRange {
    /// First stream id.
    pub first: u64,
    /// Last stream id (inclusive).
    pub last: u64,
    /// Policy of these streams.
    pub policy: Policy,
}

const NO_RANGE: PolicyRange = PolicyRange { first: 1, last: 0, policy: Policy::DropOldest };

/// Up to [`POLICY_RANGES_MAX`] policy ranges, in a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    ranges: [PolicyRange; POLICY_RANGES_MAX],
    len: u8,
}

impl Default for Policies {
    fn default() -> Self {
        Policies { ranges: [NO_RANGE; POLICY_RANGES_MAX], len: 0 }
    }
}

impl Policies {
    /// The ranges, in order.
    pub fn as_slice(&self) -> &[PolicyRange] {
        &self.ranges[..usize::from(self.len)]
    }
}

/// Settings that may change while the dataplane runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tunables {
    /// Deficit round robin quantum: bytes a backlogged subscription may
    /// send per round within its class.
    pub quantum_bytes: u32,
    /// After this many consecutive picks of a higher class while a lower
    /// class waits, one pick goes to a lower class.
    pub starvation_guard: u32,
    /// Credit a new subscription starts with, in bytes past the stream's
    /// position at the time it subscribes.
    pub initial_credit_bytes: u32,
    /// Bytes a stream may hold queued before its policy applies.
    pub stream_queue_bytes_max: u32,
    /// Pool fill (percent) from which stream queue limits are halved.
    pub shrink_grants_at_percent: u8,
    /// Pool fill (percent) from which new bulk messages are shed.
    pub shed_bulk_at_percent: u8,
    /// Pool fill (percent) from which new best-effort (normal and bulk)
    /// messages are dropped.
    pub drop_newest_at_percent: u8,
    /// Policy of streams no range names.
    pub default_policy: Policy,
    /// Per-range policies; first match wins.
    pub policies: Policies,
    /// Smallest rx burst the adaptive batching shrinks to when idle.
    pub rx_burst_min: u16,
    /// Messages the scheduler serves per loop turn, at least (idle) ...
    pub tx_budget_min: u32,
    /// ... and at most (under load).
    pub tx_budget_max: u32,
    /// Messages may skip the queue when nothing waits and every
    /// subscription has credit ([`crate::Streams::publish_through`]).
    pub cut_through: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            quantum_bytes: 1500,
            starvation_guard: 16,
            initial_credit_bytes: 65_536,
            stream_queue_bytes_max: 65_536,
            shrink_grants_at_percent: 50,
            shed_bulk_at_percent: 75,
            drop_newest_at_percent: 90,
            default_policy: Policy::DropOldest,
            policies: Policies::default(),
            rx_burst_min: 4,
            tx_budget_min: 64,
            tx_budget_max: 4096,
            cut_through: true,
        }
    }
}

/// More policy ranges than [`POLICY_RANGES_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRanges;

impl Tunables {
    /// Replaces the per-range policies (first match wins).
    pub fn set_policies(&mut self, ranges: &[PolicyRange]) -> Result<(), TooManyRanges> {
        if ranges.len() > POLICY_RANGES_MAX {
            return Err(TooManyRanges);
        }
        self.policies.ranges[..ranges.len()].copy_from_slice(ranges);
        self.policies.len = ranges.len() as u8;
        Ok(())
    }

    /// The per-range policies.
    pub fn policies(&self) -> &[PolicyRange] {
        self.policies.as_slice()
    }

    /// The policy of stream `id`: the first range that holds it, else the
    /// default. At most [`POLICY_RANGES_MAX`] comparisons; called when a
    /// stream is created, not per message.
    pub fn policy_of(&self, id: u64) -> Policy {
        self.policies().iter().find(|r| (r.first..=r.last).contains(&id)).map_or(self.default_policy, |r| r.policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_range_wins() {
        let mut t = Tunables::default();
        let r = |first, last, policy| PolicyRange { first, last, policy };
        t.set_policies(&[r(0, 9, Policy::Block), r(5, 20, Policy::Conflate)]).unwrap();
        assert_eq!(t.policy_of(5), Policy::Block);
        assert_eq!(t.policy_of(15), Policy::Conflate);
        assert_eq!(t.policy_of(21), Policy::DropOldest);
        assert_eq!(t.set_policies(&[r(0, 0, Policy::Block); POLICY_RANGES_MAX + 1]), Err(TooManyRanges));
    }

    #[test]
    fn wire_class_three_is_control_and_zero_is_bulk() {
        assert_eq!(CLASS_NAMES[class_of(3)], "control");
        assert_eq!(CLASS_NAMES[class_of(2)], "latency");
        assert_eq!(CLASS_NAMES[class_of(1)], "normal");
        assert_eq!(CLASS_NAMES[class_of(0)], "bulk");
        assert_eq!(class_of(200), 0);
    }
}
