//! The file's shape: one serde struct per section, with the defaults of
//! every key. Values are checked while read (`values`) and across fields
//! afterwards (`check`).

use crate::values::{Cidr, Device, Ip, Mac};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// Which handler runs on the service port.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// The streams protocol (docs/protocol.md).
    #[default]
    Streams,
    /// Count and drop.
    Sink,
    /// Send every payload back to its sender.
    Echo,
}

/// How a port's outgoing UDP datagrams get their checksum.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum UdpChecksum {
    /// Computed by the worker over every datagram.
    #[default]
    Software,
    /// Computed by the NIC (refused at start when the driver cannot).
    Offload,
    /// Not computed: 0, which IPv4 allows (RFC 768); receivers then rely
    /// on the Ethernet CRC alone.
    None,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DPDK Environment Abstraction Layer settings.
    pub eal: EalConfig,
    /// Ports the dataplane drives, each with one RX and one TX queue per worker.
    pub ports: Spanned<Vec<PortConfig>>,
    /// Worker lcores.
    pub workers: WorkersConfig,
    /// The UDP service the streams protocol runs on.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Neighbour (ARP) table: timers, sizes, static entries, trust.
    #[serde(default)]
    pub arp: ArpConfig,
    /// Packet buffer pool.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// Stream table bounds (per worker) and subscription lifetime.
    #[serde(default)]
    pub streams: StreamsConfig,
    /// How workers share their time among subscriptions (live).
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// Credit and slow-consumer policies (live).
    #[serde(default)]
    pub flow: FlowConfig,
    /// The memory budget for queued messages and its pressure steps.
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Where the stats segment and the control socket live.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The control-plane daemon.
    #[serde(default)]
    pub controlplane: ControlPlaneConfig,
}

/// The control-plane daemon's sockets.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// Unix socket `msctl` talks to (mode 0660).
    #[serde(default = "default_cli_socket")]
    pub socket: std::path::PathBuf,
    /// Prometheus endpoint (`GET /metrics`); loopback by default, `null`
    /// to disable.
    #[serde(default = "default_prometheus")]
    pub prometheus_listen: Option<std::net::SocketAddr>,
}

fn default_cli_socket() -> std::path::PathBuf {
    "/run/memorystreamer/msctl.sock".into()
}

fn default_prometheus() -> Option<std::net::SocketAddr> {
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9465)))
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig { socket: default_cli_socket(), prometheus_listen: default_prometheus() }
    }
}

/// Paths shared with the control plane.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The shared-memory stats segment the dataplane writes.
    #[serde(default = "default_stats_path")]
    pub stats_path: std::path::PathBuf,
    /// The dataplane's control socket (Unix, mode 0600).
    #[serde(default = "default_control_socket")]
    pub control_socket: std::path::PathBuf,
}

fn default_stats_path() -> std::path::PathBuf {
    "/dev/shm/memorystreamer/dataplane.stats".into()
}

fn default_control_socket() -> std::path::PathBuf {
    "/run/memorystreamer/dataplane.sock".into()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { stats_path: default_stats_path(), control_socket: default_control_socket() }
    }
}

/// Stream table bounds, per worker, allocated at startup.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamsConfig {
    /// Streams (with at least one subscriber) one worker holds: 40 bytes each.
    #[serde(default = "default_streams_max")]
    pub max_per_worker: u32,
    /// Subscriber addresses per worker.
    #[serde(default = "default_subscribers_max")]
    pub subscribers_max: u32,
    /// (stream, subscriber) pairs per worker: 24 bytes each.
    #[serde(default = "default_subscriptions_max")]
    pub subscriptions_max: u32,
    /// A subscriber not heard from (HEARTBEAT or SUBSCRIBE) for this long
    /// expires and its state is freed.
    #[serde(default = "default_lifetime_ms")]
    pub subscription_lifetime_ms: u32,
}

fn default_streams_max() -> u32 {
    65_536
}

fn default_subscribers_max() -> u32 {
    1024
}

fn default_subscriptions_max() -> u32 {
    262_144
}

fn default_lifetime_ms() -> u32 {
    10_000
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            max_per_worker: default_streams_max(),
            subscribers_max: default_subscribers_max(),
            subscriptions_max: default_subscriptions_max(),
            subscription_lifetime_ms: default_lifetime_ms(),
        }
    }
}

/// A value the file does not set: it has no place to point errors at.
pub(crate) fn unset<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// Where the file sets `v`; `None` for a default.
pub(crate) fn at<T>(v: &Spanned<T>) -> Option<Location> {
    (v.referenced.line() != 0).then_some(v.referenced)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Deficit round robin quantum: bytes a backlogged subscription may send
    /// per round within its class (64..=65536).
    pub quantum_bytes: Spanned<u32>,
    /// After this many consecutive picks of a higher class while a lower
    /// one waits, one pick goes to a lower class (1..=1024).
    pub starvation_guard: Spanned<u32>,
    /// Smallest rx burst the adaptive batching shrinks to when idle
    /// (1..=`workers.rx_burst`).
    pub rx_burst_min: Spanned<u32>,
    /// Messages served per loop turn when idle (1..=`tx_budget_max`).
    pub tx_budget_min: Spanned<u32>,
    /// Messages served per loop turn under load (at most 65536).
    pub tx_budget_max: Spanned<u32>,
    /// Send a message at once, without queueing it, when nothing waits in
    /// the scheduler, its stream has no backlog and every subscription has
    /// the credit for it (docs/flow-control.md).
    pub cut_through: Spanned<bool>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            quantum_bytes: unset(1500),
            starvation_guard: unset(16),
            rx_burst_min: unset(4),
            tx_budget_min: unset(64),
            tx_budget_max: unset(4096),
            cut_through: unset(true),
        }
    }
}

/// What happens when a stream's queue is full because a subscriber is
/// behind (docs/flow-control.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FlowPolicy {
    /// Refuse new messages and tell the publisher (BACKPRESSURE).
    Block,
    /// Drop the oldest queued message; the subscribers behind see a gap.
    DropOldest,
    /// Subscribers behind skip to the newest message.
    Conflate,
    /// Subscribers behind lose the subscription.
    Disconnect,
}

/// The policy of the stream ids `first..=last`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRangeConfig {
    /// First stream id.
    pub first: Spanned<u64>,
    /// Last stream id, inclusive (>= `first`).
    pub last: Spanned<u64>,
    /// Policy of these streams.
    pub policy: FlowPolicy,
}

/// Flow control: the credit a subscription starts with and what happens
/// to streams whose subscribers fall behind. Every key changes live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Credit a new subscription starts with, in bytes; at least
    /// `ms_wire::PAYLOAD_MAX`, or a max-size message could never be sent.
    pub initial_credit_bytes: Spanned<u32>,
    /// Policy of streams no entry of `policies` names.
    pub default_policy: FlowPolicy,
    /// Policies by stream id range; the first range holding a stream wins.
    /// At most `POLICY_RANGES_MAX` entries.
    pub policies: Spanned<Vec<PolicyRangeConfig>>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            initial_credit_bytes: unset(65_536),
            default_policy: FlowPolicy::DropOldest,
            policies: unset(Vec::new()),
        }
    }
}

/// Default `memory.budget_bytes`: 256 MiB.
pub const MEMORY_BUDGET_DEFAULT: u64 = 256 << 20;

/// The memory queued messages may take, and the pool fill levels at which
/// the dataplane sheds load. `budget_bytes` is allocated at startup (a
/// restart changes it); the other keys change live.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Bytes for queued messages in all, split evenly over the workers;
    /// each worker's share at least 1 MiB, the whole at most 1 TiB.
    pub budget_bytes: Spanned<u64>,
    /// Bytes one stream may hold queued before its policy applies; at least
    /// `ms_wire::PAYLOAD_MAX` and at most a worker's share of the budget.
    pub stream_queue_bytes_max: Spanned<u32>,
    /// Pool fill (percent) from which stream queue limits are halved.
    pub shrink_grants_at_percent: Spanned<u32>,
    /// Pool fill (percent) from which new bulk messages are shed.
    pub shed_bulk_at_percent: Spanned<u32>,
    /// Pool fill (percent) from which new best-effort messages are dropped.
    pub drop_newest_at_percent: Spanned<u32>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            budget_bytes: unset(MEMORY_BUDGET_DEFAULT),
            stream_queue_bytes_max: unset(65_536),
            shrink_grants_at_percent: unset(50),
            shed_bulk_at_percent: unset(75),
            drop_newest_at_percent: unset(90),
        }
    }
}

/// Whether DPDK backs its memory with hugepages.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hugepages {
    /// Use hugepages when enough are free, else run with `--no-huge`.
    #[default]
    Auto,
    /// Require hugepages.
    On,
    /// Never use them (`--no-huge`); fine for tests, slower in production.
    Off,
}

/// EAL settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// The lcore that runs setup, signals and stats (not a worker).
    #[serde(default)]
    pub main_lcore: u32,
    /// Memory DPDK reserves at startup, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Hugepage use.
    #[serde(default)]
    pub hugepages: Hugepages,
    /// Runtime file prefix; distinct per process on one machine. Default:
    /// `ms-<pid>`.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// DPDK log level (1..=8).
    #[serde(default = "default_eal_log_level")]
    pub log_level: u8,
    /// CPU each lcore runs on, where it differs from the lcore id (for
    /// example several lcores on one CPU in a test VM).
    #[serde(default)]
    pub cpus: std::collections::BTreeMap<u32, u32>,
    /// Extra EAL arguments, appended verbatim (escape hatch; prefer keys).
    #[serde(default)]
    pub extra_args: Vec<String>,
}

fn default_memory_mb() -> u32 {
    512
}

fn default_eal_log_level() -> u8 {
    4
}

/// One port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Operator's name for the port (counters and logs use it).
    pub name: String,
    /// A PCI address (`0000:03:00.0`) or a DPDK vdev string
    /// (`net_tap0,iface=ms0`).
    pub device: Device,
    /// MAC to set on the port; default: the port's own.
    #[serde(default)]
    pub mac: Option<Mac>,
    /// The port's address and on-link prefix, e.g. `198.18.0.1/24`.
    pub ipv4: Spanned<Cidr>,
    /// Static routes to off-link networks, through on-link gateways.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// RX descriptors per queue (the driver may adjust it).
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    /// TX descriptors per queue (the driver may adjust it).
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// The UDP checksum of what the port sends: `software`, `offload` or
    /// `none`.
    #[serde(default)]
    pub udp_checksum: UdpChecksum,
}

fn default_desc() -> u16 {
    1024
}

/// A static route.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination prefix, e.g. `198.19.0.0/16` or `0.0.0.0/0`.
    pub to: Cidr,
    /// On-link gateway.
    pub via: Spanned<Ip>,
}

/// Worker lcores.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// One busy-polling worker per lcore; each owns queue `i` of every port.
    pub lcores: Spanned<Vec<u32>>,
    /// Packets per RX burst.
    #[serde(default = "default_burst")]
    pub rx_burst: u16,
    /// Real-time priority of the worker threads: 0 keeps the normal
    /// scheduler; 1 to 99 makes them `SCHED_FIFO` at that priority, so no
    /// ordinary thread preempts them on their CPUs.
    #[serde(default)]
    pub realtime_priority: u8,
}

fn default_burst() -> u16 {
    32
}

/// The UDP service.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// UDP port of the streams protocol.
    #[serde(default = "default_udp_port")]
    pub udp_port: u16,
    /// Built-in handler until the streams protocol lands: `sink` or `echo`.
    #[serde(default)]
    pub handler: HandlerKind,
}

fn default_udp_port() -> u16 {
    9000
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { udp_port: default_udp_port(), handler: HandlerKind::default() }
    }
}

/// The neighbour (ARP) table of each port on each worker.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArpConfig {
    /// How long a learned neighbour stays valid.
    #[serde(default = "default_arp_ttl")]
    pub entry_ttl_s: u32,
    /// Minimum gap between two requests for one address.
    #[serde(default = "default_arp_interval")]
    pub request_interval_ms: u32,
    /// Requests sent for an unresolved neighbour before the packets
    /// waiting for it are dropped (1..=10).
    #[serde(default = "default_arp_retries")]
    pub request_retries: Spanned<u32>,
    /// Neighbours per port per worker, allocated at startup (16..=1048576).
    #[serde(default = "default_neighbors_max")]
    pub neighbors_max: Spanned<u32>,
    /// Packets held per unresolved neighbour (1..=64), like Linux's
    /// `unres_qlen`.
    #[serde(default = "default_unresolved_queue_max")]
    pub unresolved_queue_max: Spanned<u32>,
    /// Unresolved neighbours that may hold packets at once, per port per
    /// worker (1..=4096); times `unresolved_queue_max` bounds the held mbufs.
    #[serde(default = "default_unresolved_neighbors_max")]
    pub unresolved_neighbors_max: Spanned<u32>,
    /// Let unsolicited ARP replies and gratuitous ARP replace a learned MAC
    /// (failover setups). Off: only answers to our requests may.
    #[serde(default)]
    pub accept_unsolicited: bool,
    /// Neighbours that never change and never expire.
    #[serde(default, rename = "static")]
    pub statics: Vec<StaticNeighbor>,
}

/// A static neighbour.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbor {
    /// Its address, on one port's subnet.
    pub ip: Spanned<Ip>,
    /// Its MAC.
    pub mac: Mac,
}

fn default_arp_retries() -> Spanned<u32> {
    unset(3)
}

fn default_neighbors_max() -> Spanned<u32> {
    unset(4096)
}

fn default_unresolved_queue_max() -> Spanned<u32> {
    unset(4)
}

fn default_unresolved_neighbors_max() -> Spanned<u32> {
    unset(64)
}

impl ArpConfig {
    /// Mbufs one worker may hold for unresolved neighbours on one port.
    pub fn held_max(&self) -> u64 {
        u64::from(self.unresolved_queue_max.value) * u64::from(self.unresolved_neighbors_max.value)
    }
}

fn default_arp_ttl() -> u32 {
    300
}

fn default_arp_interval() -> u32 {
    1000
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            entry_ttl_s: default_arp_ttl(),
            request_interval_ms: default_arp_interval(),
            request_retries: default_arp_retries(),
            neighbors_max: default_neighbors_max(),
            unresolved_queue_max: default_unresolved_queue_max(),
            unresolved_neighbors_max: default_unresolved_neighbors_max(),
            accept_unsolicited: false,
            statics: Vec::new(),
        }
    }
}

/// The packet buffer pool (one per NUMA socket in use).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    /// Buffers per pool; best as 2^n - 1.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Per-lcore cache of buffers.
    #[serde(default = "default_cache")]
    pub cache: u32,
}

fn default_mbufs() -> u32 {
    8191
}

fn default_cache() -> u32 {
    256
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { mbufs: default_mbufs(), cache: default_cache() }
    }
}
