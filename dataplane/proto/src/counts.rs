//! What the engine counts, declared once as data (name, kind, unit, help),
//! and the per-worker tally it counts into. The caller publishes the tally
//! once per loop turn ([`Counts::take`]); nothing here is shared.

use ms_streams::{Peer, AFFECTED_MAX};

/// Busiest streams kept per worker (space-saving sketch, no allocation).
pub const TOP_N: usize = 8;

ms_stats::declare_counters! {
    /// A counter or gauge of the streams protocol.
    pub enum ProtoCounter {
        MessagesPublished => "messages_published", counter, "messages", "PUBLISH messages accepted for a stream this worker owns.";
        MessagesNoSubscriber => "messages_no_subscriber", counter, "messages", "Published messages for streams nobody subscribes to (dropped).";
        MixedShards => "publish_mixed_shards", counter, "messages", "Published messages of another shard than their datagram's (dropped, answered with ERROR).";
        DeliverNoBuffer => "deliver_no_buffer", counter, "events", "Times the scheduler stopped for a turn because no mbuf was free for a DELIVER (the message stays queued).";
        Subscriptions => "subscriptions_added", counter, "subscriptions", "Subscriptions created.";
        Unsubscriptions => "subscriptions_removed", counter, "subscriptions", "Subscriptions removed by UNSUBSCRIBE.";
        SubscribeRefused => "subscribe_refused", counter, "requests", "SUBSCRIBE requests refused because a table was full.";
        SubscribersExpired => "subscribers_expired", counter, "subscribers", "Subscribers whose lifetime ran out without a heartbeat (state freed).";
        Heartbeats => "heartbeats", counter, "datagrams", "HEARTBEAT datagrams received.";
        ProtoReplies => "proto_replies_sent", counter, "datagrams", "ACK and ERROR datagrams sent.";
        ReplyNoBuffer => "reply_no_buffer", counter, "datagrams", "ACK, ERROR or BACKPRESSURE datagrams not sent because the buffer pool was empty.";
        ProtoBadMagic => "proto_bad_magic", counter, "datagrams", "Datagrams to the service port that are not MemoryStreamer's (dropped).";
        ProtoBadVersion => "proto_bad_version", counter, "datagrams", "Datagrams of another protocol version (answered with ERROR).";
        ProtoMalformed => "proto_malformed", counter, "datagrams", "Datagrams that failed to parse: too short, entries not matching their count, a field out of range (answered with ERROR Malformed).";
        ProtoUnexpected => "proto_unexpected", counter, "datagrams", "DELIVER, ACK or ERROR frames sent to the appliance (dropped).";
        ProtoUnknownType => "proto_unknown_type", counter, "datagrams", "Datagrams of an unknown frame type (answered with ERROR UnknownType).";
        RangeTooLarge => "range_too_large", counter, "datagrams", "SUBSCRIBE/UNSUBSCRIBE datagrams refused because their ranges cover more than 65,536 ids or a range ends before it starts (answered with ERROR RangeTooLarge).";
        RangeBusy => "range_jobs_full", counter, "requests", "Range (un)subscriptions refused with ERROR Busy because this worker already had 64 of them in progress (clients retry).";
        HandoffControl => "handoff_control", counter, "requests", "(Un)subscriptions handed to the workers that own their streams.";
        StreamsActive => "streams_active", gauge, "streams", "Gauge: streams with at least one subscriber.";
        SubscribersActive => "subscribers_active", gauge, "subscribers", "Gauge: subscriber addresses with at least one subscription.";
        SubscriptionsActive => "subscriptions_active", gauge, "subscriptions", "Gauge: (stream, subscriber) pairs.";
        MessagesQueued => "messages_queued", counter, "messages", "Published messages stored in their stream's queue (once, whatever the fan-out).";
        DeliveriesQueued => "deliveries_queued", counter, "deliveries", "Deliveries queued: each queued message times the subscriptions it is queued for.";
        RefusedBackpressure => "messages_refused_backpressure", counter, "messages", "Messages refused under the block policy because their stream's queue was full (publisher told with BACKPRESSURE).";
        ShedBulk => "messages_shed_bulk", counter, "messages", "Bulk messages dropped on arrival because the message pool passed memory.shed_bulk_at_percent.";
        ShedBestEffort => "messages_shed_best_effort", counter, "messages", "Normal and bulk messages dropped on arrival because the pool passed memory.drop_newest_at_percent.";
        RefusedPoolFull => "messages_refused_pool_full", counter, "messages", "Messages dropped on arrival because the message pool (the memory budget) was full.";
        DroppedOldest => "deliveries_dropped_oldest", counter, "deliveries", "Deliveries dropped by the drop-oldest policy (the subscriber sees a sequence gap).";
        DroppedConflated => "deliveries_conflated", counter, "deliveries", "Deliveries skipped by the conflate policy (the subscriber got a newer message instead).";
        DroppedDisconnected => "deliveries_disconnected", counter, "deliveries", "Deliveries dropped when the disconnect policy removed a slow subscription.";
        DroppedUnsubscribed => "deliveries_unsubscribed", counter, "deliveries", "Deliveries still queued when their subscriber unsubscribed.";
        DroppedExpired => "deliveries_expired", counter, "deliveries", "Deliveries still queued when their subscriber expired.";
        CreditsReceived => "credits_received", counter, "grants", "CREDIT grants received.";
        CreditsUnknown => "credits_unknown", counter, "grants", "CREDIT grants for a subscription that does not exist (ignored).";
        HandoffCredit => "handoff_credit", counter, "grants", "CREDIT grants handed to the worker that owns their stream.";
        BackpressureSent => "backpressure_sent", counter, "datagrams", "BACKPRESSURE frames sent to publishers.";
        SlowConsumerNotices => "slow_consumer_notices", counter, "datagrams", "ERROR SlowConsumer frames sent to subscribers removed by the disconnect policy.";
        NoticesLost => "slow_consumer_notices_lost", counter, "notices", "SlowConsumer notices not sent because too many came in one loop turn.";
        QueuedMessages => "queued_messages", gauge, "messages", "Gauge: messages queued in this worker's pool.";
        PoolUsedBytes => "pool_used_bytes", gauge, "bytes", "Gauge: bytes of the message pool in use.";
        PoolBytes => "pool_bytes", gauge, "bytes", "Gauge: bytes of the message pool (this worker's share of memory.budget_bytes).";
        DegradationLevel => "degradation_level", gauge, "level", "Gauge: memory degradation step in force: 0 normal, 1 stream queue limits halved, 2 also bulk shed (limits quartered), 3 also best effort shed (limits an eighth).";
        TxBudget => "tx_budget_current", gauge, "messages", "Gauge: messages the scheduler may send per loop turn now (adaptive, scheduler.tx_budget_min..max).";
    }
}

/// Number of [`ProtoCounter`]s.
pub const PROTO_COUNTERS: usize = ProtoCounter::ALL.len();

/// One worker's tally since the caller last took it.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Counts to add (counters) or values in force (gauges), by [`ProtoCounter`].
    pub values: [u64; PROTO_COUNTERS],
    /// Messages published per priority class.
    pub by_class: [u64; ms_limits::CLASSES],
    /// The busiest streams, (stream, count, error), when they changed.
    pub top: Option<[(u64, u64, u64); TOP_N]>,
    /// The (stream, subscriber, lost) pairs that lost most, when they changed.
    pub affected: Option<[(u64, Peer, u64); AFFECTED_MAX]>,
    dirty: bool,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            values: [0; PROTO_COUNTERS],
            by_class: [0; ms_limits::CLASSES],
            top: None,
            affected: None,
            dirty: false,
        }
    }
}

impl Counts {
    /// Adds `n` to counter `c`.
    #[inline]
    pub fn add(&mut self, c: ProtoCounter, n: u64) {
        debug_assert!(!c.is_gauge(), "{} is a gauge", c.name());
        self.values[c as usize] += n;
        self.dirty |= n > 0;
    }

    /// Sets gauge `c`.
    pub fn set(&mut self, c: ProtoCounter, v: u64) {
        debug_assert!(c.is_gauge(), "{} is a counter", c.name());
        self.values[c as usize] = v;
        self.dirty = true;
    }

    /// Counts a message of priority `class`.
    #[inline]
    pub fn class(&mut self, class: u8, n: u64) {
        if let Some(v) = self.by_class.get_mut(usize::from(class)) {
            *v += n;
        }
    }

    /// The value of `c` (tests and the simulator).
    pub fn get(&self, c: ProtoCounter) -> u64 {
        self.values[c as usize]
    }

    /// True when something was counted since the last [`Counts::take`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Hands the tally to `f` and starts a new one: counters restart from
    /// zero, gauges keep their values.
    pub fn take(&mut self, f: impl FnOnce(&Counts)) {
        f(self);
        for c in ProtoCounter::ALL {
            if !c.is_gauge() {
                self.values[*c as usize] = 0;
            }
        }
        self.by_class = [0; ms_limits::CLASSES];
        self.top = None;
        self.affected = None;
        self.dirty = false;
    }
}
