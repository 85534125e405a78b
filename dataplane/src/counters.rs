//! Per-worker counters. Each is declared once as data (name, kind, unit,
//! help) where it is counted: the worker loop's here ([`Counter`]), the
//! packet stack's drop reasons in ms-netstack ([`DropReason`]), the streams
//! protocol's in ms-proto ([`ProtoCounter`]). This module lays them out in
//! one block per worker and builds the stats segment's directory from the
//! declarations; nothing downstream parses names.
//!
//! Each worker owns one cache-line-aligned block and is its only writer; it
//! sums into a local array during a burst and publishes once per burst with
//! plain relaxed stores (no locked instructions). Readers sum the blocks.

use ms_netstack::host::DropReason;
use ms_proto::{Counts, ProtoCounter};
use std::sync::Arc;

ms_stats::declare_counters! {
    /// A counter of the worker loop (packets, ARP, hand-offs, TX).
    pub enum Counter {
        RxPackets => "rx_packets", counter, "packets", "Packets received.";
        RxBytes => "rx_bytes", counter, "bytes", "Bytes received (Ethernet frames without FCS).";
        TxPackets => "tx_packets", counter, "packets", "Packets the driver accepted for transmission.";
        TxBytes => "tx_bytes", counter, "bytes", "Bytes the driver accepted for transmission.";
        TxFull => "tx_full_dropped", counter, "packets", "Packets dropped because the TX queue was full.";
        RxMultiSegment => "rx_multi_segment_dropped", counter, "packets", "Frames spread over several buffers (not supported) dropped.";
        ArpRepliesSent => "arp_replies_sent", counter, "packets", "ARP replies for our address.";
        ArpRequestsSent => "arp_requests_sent", counter, "packets", "ARP requests sent to resolve a next hop.";
        ArpLearned => "arp_replies_learned", counter, "packets", "ARP replies to our requests (or unsolicited ones, when arp.accept_unsolicited allows), learned.";
        IcmpEchoReplies => "icmp_echo_replies_sent", counter, "packets", "ICMP echo replies sent.";
        ServiceDatagrams => "service_datagrams", counter, "datagrams", "UDP datagrams to the service port handed to the service handler.";
        ServiceReplies => "service_replies_sent", counter, "datagrams", "Datagrams the service handler sent (including those held for ARP).";
        EgressNoRoute => "egress_no_route", counter, "datagrams", "Datagrams the handler could not send: no route to the destination.";
        EgressUnresolved => "egress_arp_unresolved", counter, "datagrams", "Datagrams dropped because their next hop did not resolve (egress_arp_queue_full + egress_arp_timeout).";
        EgressHeld => "egress_arp_held", counter, "datagrams", "Datagrams held while their next hop was being resolved (sent when it answers).";
        EgressQueueFull => "egress_arp_queue_full", counter, "datagrams", "Datagrams dropped: their unresolved neighbour's queue (arp.unresolved_queue_max) or the worker's hold table (arp.unresolved_neighbors_max) was full, or the neighbour table had no entry to give a new neighbour (every entry static or holding packets).";
        EgressArpTimeout => "egress_arp_timeout", counter, "datagrams", "Held datagrams dropped: the neighbour answered none of arp.request_retries requests, or the dataplane stopped.";
        EgressNoBuffer => "egress_no_buffer", counter, "packets", "ARP requests or replies not sent because the mbuf pool was empty.";
        NeighborClaimsRefused => "neighbor_claims_refused", counter, "claims", "Datagram source MACs or neighbours from other workers naming another MAC for a usable or static neighbour (refused).";
        NeighborsShared => "neighbors_shared", counter, "neighbors", "Neighbours learned by ARP on this worker and posted to the others.";
        NeighborsReceived => "neighbors_received", counter, "neighbors", "Neighbours other workers posted to this one.";
        HandoffFull => "handoff_full", counter, "items", "Items dropped because another worker's mailbox was full.";
        DeliverDatagrams => "deliver_datagrams", counter, "datagrams", "DELIVER datagrams sent.";
        DeliverMessages => "deliver_messages", counter, "messages", "Messages sent inside DELIVER datagrams (one per subscriber per message).";
        DeliverMessagesDropped => "deliver_messages_dropped", counter, "messages", "Messages dropped because their DELIVER could not be sent (subscriber unresolved or unroutable).";
        HandoffPublish => "handoff_publish", counter, "datagrams", "PUBLISH datagrams handed to the worker that owns their shard.";
        RxBurst => "rx_burst_current", gauge, "packets", "Gauge: packets asked for per RX poll now (adaptive, between scheduler.rx_burst_min and workers.rx_burst).";
        PollsBusy => "polls_busy", counter, "polls", "RX polls that returned packets.";
        PollsIdle => "polls_idle", counter, "polls", "RX polls that returned nothing.";
    }
}

/// Named counters in one worker's block: the worker loop's, one per drop
/// reason, the streams protocol's. Histogram, per-class, top-N, per-port
/// and most-affected slots follow them.
pub const COUNTERS_LEN: usize = PROTO_BASE + ProtoCounter::ALL.len();
const DROP_BASE: usize = Counter::ALL.len();
const PROTO_BASE: usize = DROP_BASE + DropReason::ALL.len();

/// Any named counter, wherever it is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// The worker loop's.
    Worker(Counter),
    /// A packet drop reason.
    Drop(DropReason),
    /// The streams protocol's.
    Proto(ProtoCounter),
}

impl From<Counter> for Metric {
    fn from(c: Counter) -> Metric {
        Metric::Worker(c)
    }
}

impl From<DropReason> for Metric {
    fn from(r: DropReason) -> Metric {
        Metric::Drop(r)
    }
}

impl From<ProtoCounter> for Metric {
    fn from(c: ProtoCounter) -> Metric {
        Metric::Proto(c)
    }
}

impl Metric {
    /// Exported name (drop reasons with their `drop_` prefix added by
    /// [`slot_names`] are named without it here).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Worker(c) => c.name(),
            Metric::Drop(r) => r.name(),
            Metric::Proto(c) => c.name(),
        }
    }
}

/// The slot of a named counter in a worker's block (and in snapshots).
pub fn slot(m: impl Into<Metric>) -> usize {
    match m.into() {
        Metric::Worker(c) => c as usize,
        Metric::Drop(r) => DROP_BASE + r as usize,
        Metric::Proto(c) => PROTO_BASE + c as usize,
    }
}

/// Log-linear latency buckets: 4 per power of two from 256 ns to 16.8 ms,
/// plus one for everything above.
pub const HIST_BUCKETS: usize = 16 * 4 + 1;
/// Priority classes counted separately.
pub const CLASSES: usize = ms_limits::CLASSES;
/// Busiest streams kept per worker (space-saving sketch, no allocation).
pub const TOP_N: usize = ms_proto::TOP_N;

const HIST_BASE: usize = COUNTERS_LEN;
const HIST_SUM: usize = HIST_BASE + HIST_BUCKETS;
const HIST_COUNT: usize = HIST_SUM + 1;
const CLASS_BASE: usize = HIST_COUNT + 1;
const TOP_BASE: usize = CLASS_BASE + CLASSES;
const PORT_BASE: usize = TOP_BASE + 3 * TOP_N;
/// Ports counted separately (the config's limit).
pub const PORTS: usize = ms_limits::PORTS_MAX;
/// (stream, subscriber) pairs that lost the most messages, per worker.
pub const AFFECTED_N: usize = ms_streams::AFFECTED_MAX;
const AFFECTED_BASE: usize = PORT_BASE + 2 * PORTS;
/// Every slot of a worker's block.
pub const SLOTS_LEN: usize = AFFECTED_BASE + 3 * AFFECTED_N;

// A worker's block fits the segment, and every lcore can have one.
const _: () = assert!(SLOTS_LEN <= ms_stats::SLOTS_MAX);
const _: () = assert!((ms_limits::LCORE_ID_MAX as usize) < ms_stats::LCORES_MAX);

/// The bucket of a latency in ns.
pub fn bucket_of(ns: u64) -> usize {
    if ns < 256 {
        return 0;
    }
    let octave = 63 - ns.leading_zeros() as usize;
    if octave >= 24 {
        return HIST_BUCKETS - 1;
    }
    let sub = ((ns >> (octave - 2)) & 3) as usize;
    (octave - 8) * 4 + sub
}

/// Upper bound (ns, exclusive) of bucket `b`; `u64::MAX` for the last.
pub fn bucket_le(b: usize) -> u64 {
    if b + 1 >= HIST_BUCKETS {
        return u64::MAX;
    }
    let (octave, sub) = (8 + b / 4, (b % 4) as u64);
    (1u64 << octave) + (sub + 1) * (1u64 << (octave - 2))
}

/// Slot of a drop reason.
pub const fn drop_slot(r: DropReason) -> usize {
    DROP_BASE + r as usize
}

/// One named counter's declaration: name, kind, unit and help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// Exported name.
    pub name: &'static str,
    /// Name prefix the stats directory adds (`drop_` for drop reasons).
    pub prefix: &'static str,
    /// A current value (true) or a monotonic count.
    pub gauge: bool,
    /// What one unit counts.
    pub unit: &'static str,
    /// One-line help.
    pub help: &'static str,
}

/// Every named counter in block order, from the declarations.
pub fn declared() -> impl Iterator<Item = Declared> {
    let worker = Counter::ALL.iter().map(|c| Declared {
        name: c.name(),
        prefix: "",
        gauge: c.is_gauge(),
        unit: c.unit(),
        help: c.help(),
    });
    let drops = DropReason::ALL.iter().map(|r| Declared {
        name: r.name(),
        prefix: "drop_",
        gauge: false,
        unit: "packets",
        help: r.help(),
    });
    let proto = ProtoCounter::ALL.iter().map(|c| Declared {
        name: c.name(),
        prefix: "",
        gauge: c.is_gauge(),
        unit: c.unit(),
        help: c.help(),
    });
    worker.chain(drops).chain(proto)
}

/// Name and help of every named slot, in order, drop reasons prefixed `drop_`.
pub fn slot_names() -> impl Iterator<Item = (String, &'static str)> {
    declared().map(|d| (format!("{}{}", d.prefix, d.name), d.help))
}

/// The stats segment directory: every slot with its kind, unit and help,
/// in block order. Slots that differ by a port, a priority class or a rank
/// share a base name and carry that as a label; per-port slots are
/// labelled by `ports` (names in config order; slots of absent ports get
/// an empty label value and are not exported). The control plane exports
/// whatever this says.
pub fn directory_for(ports: &[&str]) -> Vec<ms_stats::Slot> {
    use ms_stats::{Kind, Slot};
    let mut d = directory();
    for (what, help) in
        [("port_rx_packets", "Packets received, by port."), ("port_tx_packets", "Packets transmitted, by port.")]
    {
        for i in 0..PORTS {
            let port = ports.get(i).copied().unwrap_or("");
            d.push(Slot::new(what, Kind::Counter, "packets", help).with_label("port", port));
        }
    }
    let affected = [
        (
            "affected_stream",
            "stream_id",
            "Streams and subscribers that lost the most messages (space-saving): stream id.",
        ),
        (
            "affected_peer",
            "ipv4_port",
            "... subscriber as IPv4 << 16 | UDP port; 0 when every subscriber lost it (refused on arrival).",
        ),
        ("affected_count", "messages", "... messages lost (an estimate that may exceed the true count)."),
    ];
    for r in 0..AFFECTED_N {
        for (what, unit, help) in affected {
            d.push(Slot::new(what, Kind::Info, unit, help).with_label("rank", r.to_string()));
        }
    }
    d
}

/// The directory without the per-port slots (see [`directory_for`]).
fn directory() -> Vec<ms_stats::Slot> {
    declared()
        .map(|d| {
            let kind = if d.gauge { ms_stats::Kind::Gauge } else { ms_stats::Kind::Counter };
            ms_stats::Slot::new(format!("{}{}", d.prefix, d.name), kind, d.unit, d.help)
        })
        .chain(extra_slots())
        .collect()
}

/// Histogram, per-class and top-N slots. The buckets' bounds are in the
/// unit of the `_sum` slot (the name says it too, for people).
fn extra_slots() -> impl Iterator<Item = ms_stats::Slot> {
    use ms_stats::{Kind, Slot};
    let help = "Time from receiving a burst to handing its replies to the driver, per busy loop turn.";
    let buckets = (0..HIST_BUCKETS)
        .map(move |b| Slot::new("burst_latency_ns_bucket", Kind::Bucket { le: bucket_le(b) }, "turns", help));
    let sums = [
        Slot::new("burst_latency_ns_sum", Kind::Counter, "nanoseconds", help),
        Slot::new("burst_latency_ns_count", Kind::Counter, "turns", help),
    ];
    let classes = (0..CLASSES).map(|k| {
        Slot::new("messages_by_class", Kind::Counter, "messages", "Messages published, by priority class.")
            .with_label("class", k.to_string())
    });
    let top = (0..TOP_N).flat_map(|r| {
        [
            ("top_stream", "stream_id", "Busiest streams (space-saving estimate): stream id."),
            ("top_count", "messages", "Busiest streams (space-saving estimate): messages."),
            ("top_error", "messages", "Busiest streams: most the estimate may exceed the true count."),
        ]
        .map(|(name, unit, help)| Slot::new(name, Kind::Info, unit, help).with_label("rank", r.to_string()))
    });
    buckets.chain(sums).chain(classes).chain(top)
}

/// One worker's published counters: its block in the shared-memory stats
/// segment (128-byte aligned there, one writer, seqlocked updates).
pub struct WorkerCounters {
    seg: Arc<ms_stats::Segment>,
    block: usize,
}

impl WorkerCounters {
    /// The counters of block `block` of `seg`.
    pub fn new(seg: Arc<ms_stats::Segment>, block: usize) -> WorkerCounters {
        WorkerCounters { seg, block }
    }

    /// Reads every slot consistently (any thread); zeros if the writer is
    /// stuck mid-update, which cannot outlast a burst.
    pub fn snapshot(&self) -> [u64; COUNTERS_LEN] {
        let mut v = [0u64; SLOTS_LEN];
        let _ = self.seg.read(self.block, &mut v, std::time::Duration::from_secs(1));
        std::array::from_fn(|i| v[i])
    }
}

/// A worker's private tally for the current burst.
#[derive(Debug)]
pub struct LocalCounters {
    slots: [u64; SLOTS_LEN],
    gauges: [Option<u64>; SLOTS_LEN],
    dirty: bool,
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters { slots: [0; SLOTS_LEN], gauges: [None; SLOTS_LEN], dirty: false }
    }
}

impl LocalCounters {
    /// Adds to a counter.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        // Adding 0 must not ask for a flush: some counts are added every
        // loop turn, and a seqlock update per turn would starve readers.
        if n != 0 {
            self.slots[c as usize] += n;
            self.dirty = true;
        }
    }

    /// Adds to a counter without asking for a flush: for counts that change
    /// on every idle poll, which would otherwise turn every loop turn into
    /// a segment update and starve readers. Published with the next flush.
    #[inline]
    pub fn add_quiet(&mut self, c: Counter, n: u64) {
        self.slots[c as usize] += n;
    }

    /// True when something other than quiet counts changed.
    #[inline]
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Sets a gauge (published with the next flush).
    #[inline]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.gauges[c as usize] = Some(v);
        self.dirty = true;
    }

    /// Records one burst's latency.
    #[inline]
    pub fn observe_burst_ns(&mut self, ns: u64) {
        self.slots[HIST_BASE + bucket_of(ns)] += 1;
        self.slots[HIST_SUM] += ns;
        self.slots[HIST_COUNT] += 1;
        self.dirty = true;
    }

    /// Counts packets received on port index `port`.
    #[inline]
    pub fn port_rx(&mut self, port: usize, n: u64) {
        self.slots[PORT_BASE + port.min(PORTS - 1)] += n;
        self.dirty = true;
    }

    /// Counts packets transmitted on port index `port`.
    #[inline]
    pub fn port_tx(&mut self, port: usize, n: u64) {
        self.slots[PORT_BASE + PORTS + port.min(PORTS - 1)] += n;
        self.dirty = true;
    }

    /// Publishes rank `rank` of the busiest streams: the estimate `count`
    /// exceeds the true count by at most `error`.
    pub fn top(&mut self, rank: usize, stream: u64, count: u64, error: u64) {
        if rank < TOP_N {
            self.gauges[TOP_BASE + 3 * rank] = Some(stream);
            self.gauges[TOP_BASE + 3 * rank + 1] = Some(count);
            self.gauges[TOP_BASE + 3 * rank + 2] = Some(error);
            self.dirty = true;
        }
    }

    /// Publishes the most-affected sketch (rank order as given).
    pub fn affected(&mut self, rank: usize, stream: u64, peer: u64, count: u64) {
        if rank < AFFECTED_N {
            let at = AFFECTED_BASE + 3 * rank;
            (self.gauges[at], self.gauges[at + 1], self.gauges[at + 2]) = (Some(stream), Some(peer), Some(count));
            self.dirty = true;
        }
    }

    /// Takes the streams protocol's tally of this turn (a few dozen adds,
    /// once per turn, not per message).
    pub fn absorb(&mut self, counts: &mut Counts) {
        if !counts.is_dirty() {
            return;
        }
        counts.take(|t| {
            for c in ProtoCounter::ALL {
                let (at, v) = (PROTO_BASE + *c as usize, t.values[*c as usize]);
                if c.is_gauge() {
                    self.gauges[at] = Some(v);
                } else {
                    self.slots[at] += v;
                }
            }
            for (k, n) in t.by_class.iter().enumerate() {
                self.slots[CLASS_BASE + k] += n;
            }
            if let Some(top) = t.top {
                for (rank, (stream, count, error)) in top.iter().enumerate() {
                    self.top(rank, *stream, *count, *error);
                }
            }
            if let Some(affected) = t.affected {
                for (rank, (stream, peer, count)) in affected.iter().enumerate() {
                    self.affected(rank, *stream, u64::from(peer.ip) << 16 | u64::from(peer.port), *count);
                }
            }
        });
        self.dirty = true;
    }

    /// Counts one drop.
    #[inline]
    pub fn dropped(&mut self, r: DropReason) {
        self.slots[drop_slot(r)] += 1;
        self.dirty = true;
    }

    /// Publishes the tally into the worker's block in one seqlocked update
    /// and clears it. Only the owning worker calls this (single writer).
    #[inline]
    pub fn flush(&mut self, shared: &WorkerCounters) {
        let w = shared.seg.writer(shared.block);
        w.begin();
        for (i, local) in self.slots.iter_mut().enumerate() {
            if *local != 0 {
                w.add(i, *local);
                *local = 0;
            }
        }
        for (i, g) in self.gauges.iter_mut().enumerate() {
            if let Some(v) = g.take() {
                w.set(i, v);
            }
        }
        w.end();
        self.dirty = false;
    }
}

/// Sums snapshots of several workers.
pub fn sum(snapshots: &[[u64; COUNTERS_LEN]]) -> [u64; COUNTERS_LEN] {
    let mut total = [0; COUNTERS_LEN];
    for s in snapshots {
        for (t, v) in total.iter_mut().zip(s) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_complete() {
        let names: Vec<String> = slot_names().map(|(n, _)| n).collect();
        assert_eq!(names.len(), COUNTERS_LEN);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }

    /// The README's counter table is the operator's reference: it must name
    /// every counter the code declares.
    #[test]
    fn readme_documents_every_counter() {
        let readme = include_str!("../../README.md");
        for (name, _) in slot_names() {
            assert!(readme.contains(&format!("`{name}`")), "README.md does not document counter `{name}`");
        }
    }

    #[test]
    fn log_linear_buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(300), 0);
        assert_eq!(bucket_of(320), 1);
        assert_eq!(bucket_of(u64::MAX), HIST_BUCKETS - 1);
        for ns in [256u64, 1000, 4096, 65_000, 1_000_000, 16_000_000] {
            let b = bucket_of(ns);
            assert!(ns < bucket_le(b) && (b == 0 || ns >= bucket_le(b - 1)), "{ns} in bucket {b}");
        }
        assert_eq!(directory_for(&["p0"]).len(), SLOTS_LEN);
    }

    /// Labels are data in the directory, never text inside a name, and
    /// every slot says what it counts and fits its entry (with the longest
    /// port name the config allows).
    #[test]
    fn directory_slots_have_units_and_labels_within_bounds() {
        let longest_port = "p".repeat(24);
        let dir = directory_for(&["p0", &longest_port]);
        assert_eq!(dir.len(), SLOTS_LEN);
        for s in &dir {
            assert!(!s.unit.is_empty(), "slot {} has no unit", s.name);
            assert!(!s.name.contains(':') && !s.name.contains('='), "slot {} has a label in its name", s.name);
            assert!(s.labels.len() <= ms_stats::LABELS_MAX, "slot {} has {} labels", s.name, s.labels.len());
            s.check().unwrap_or_else(|e| panic!("slot {}: {e}", s.name));
        }
        let labelled = |name: &str, key: &str| dir.iter().filter(|s| s.name == name && s.label(key).is_some()).count();
        assert_eq!(labelled("port_rx_packets", "port"), PORTS);
        assert_eq!(labelled("messages_by_class", "class"), CLASSES);
        assert_eq!(labelled("top_stream", "rank"), TOP_N);
        assert_eq!(labelled("affected_peer", "rank"), AFFECTED_N);
        assert!(dir.iter().any(|s| s.name == "port_tx_packets" && s.label("port") == Some(longest_port.as_str())));
        // Unlabelled slots keep their names: the named counters, in order.
        let named: Vec<String> = dir[..COUNTERS_LEN].iter().map(|s| s.name.clone()).collect();
        assert_eq!(named, slot_names().map(|(n, _)| n).collect::<Vec<_>>());
        assert!(dir[..COUNTERS_LEN].iter().all(|s| s.labels.is_empty()));
    }

    #[test]
    fn adding_zero_does_not_ask_for_a_flush() {
        let mut local = LocalCounters::default();
        local.add(Counter::HandoffFull, 0);
        local.add_quiet(Counter::PollsIdle, 5);
        assert!(!local.is_dirty(), "an idle turn must not publish");
        local.add(Counter::RxPackets, 1);
        assert!(local.is_dirty());
    }

    #[test]
    fn flush_publishes_and_clears() {
        let dir = std::env::temp_dir().join(format!("ms-counters-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats");
        let seg = Arc::new(ms_stats::Segment::create(&path, &directory_for(&[]), 1, 1, 1).unwrap());
        let shared = WorkerCounters::new(Arc::clone(&seg), 0);
        let mut local = LocalCounters::default();
        local.add(Counter::RxPackets, 3);
        local.dropped(DropReason::Truncated);
        local.flush(&shared);
        local.add(Counter::RxPackets, 2);
        local.flush(&shared);
        let s = shared.snapshot();
        assert_eq!(s[Counter::RxPackets as usize], 5);
        assert_eq!(s[drop_slot(DropReason::Truncated)], 1);
        local.set(Counter::RxBurst, 9);
        local.flush(&shared);
        assert_eq!(shared.snapshot()[slot(Counter::RxBurst)], 9);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
