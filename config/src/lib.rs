//! MemoryStreamer's YAML config (the dataplane's and the control plane's): strict (unknown keys are errors), every
//! value checked while it is read so errors carry file:line:column, and
//! cross-field checks named by their path in the file.

use ms_netstack::host::ROUTES_MAX;
use ms_netstack::route::Prefix;
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_streams::tunables::POLICY_RANGES_MAX;
use serde::{de, Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

mod errors;
pub mod host;
pub use errors::ConfigError;
pub use host::Host;

/// Largest RX burst a worker accepts.
pub use ms_limits::RX_BURST_MAX;

/// The largest message payload, which every credit and queue limit must hold.
const PAYLOAD_MAX: u64 = ms_wire::PAYLOAD_MAX as u64;

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

pub use ms_limits::{LCORE_ID_MAX, PORTS_MAX, WORKERS_MAX};

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

/// How two configs differ: keys that change live, and keys that need a
/// dataplane restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Applied without a restart.
    pub live: Vec<&'static str>,
    /// Need `systemctl restart ms-dataplane`.
    pub restart: Vec<&'static str>,
    /// The `controlplane` section changed: needs `systemctl restart
    /// ms-controlplane` (the dataplane is not involved).
    pub controlplane_restart: bool,
}

impl Diff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty() && !self.controlplane_restart
    }
}

/// Port lists equal in value (YAML positions ignored).
fn same_ports(a: &[PortConfig], b: &[PortConfig]) -> bool {
    let key = |p: &PortConfig| {
        let routes: Vec<(Cidr, Ipv4Addr)> = p.routes.iter().map(|r| (r.to, r.via.value.0)).collect();
        (p.name.clone(), p.device.clone(), p.mac, p.ipv4.value, routes, p.rx_desc, p.tx_desc)
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| key(x) == key(y))
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
fn unset<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// Where the file sets `v`; `None` for a default.
fn at<T>(v: &Spanned<T>) -> Option<Location> {
    (v.referenced.line() != 0).then_some(v.referenced)
}

/// Largest `scheduler.quantum_bytes`, `scheduler.tx_budget_max`.
const SCHEDULER_LIMIT: u32 = 65_536;

/// How a worker shares its time and the wire among subscriptions: deficit
/// round robin within a class, classes strictly in order but for the
/// starvation guard, and adaptive burst sizes. Every key changes live.
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
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let t = ms_streams::Tunables::default();
        SchedulerConfig {
            quantum_bytes: unset(t.quantum_bytes),
            starvation_guard: unset(t.starvation_guard),
            rx_burst_min: unset(u32::from(t.rx_burst_min)),
            tx_budget_min: unset(t.tx_budget_min),
            tx_budget_max: unset(t.tx_budget_max),
        }
    }
}

impl SchedulerConfig {
    /// The values, without their places in the file.
    fn values(&self) -> [u32; 5] {
        [
            self.quantum_bytes.value,
            self.starvation_guard.value,
            self.rx_burst_min.value,
            self.tx_budget_min.value,
            self.tx_budget_max.value,
        ]
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

impl From<FlowPolicy> for ms_streams::Policy {
    fn from(p: FlowPolicy) -> Self {
        match p {
            FlowPolicy::Block => ms_streams::Policy::Block,
            FlowPolicy::DropOldest => ms_streams::Policy::DropOldest,
            FlowPolicy::Conflate => ms_streams::Policy::Conflate,
            FlowPolicy::Disconnect => ms_streams::Policy::Disconnect,
        }
    }
}

impl From<ms_streams::Policy> for FlowPolicy {
    fn from(p: ms_streams::Policy) -> Self {
        match p {
            ms_streams::Policy::Block => FlowPolicy::Block,
            ms_streams::Policy::DropOldest => FlowPolicy::DropOldest,
            ms_streams::Policy::Conflate => FlowPolicy::Conflate,
            ms_streams::Policy::Disconnect => FlowPolicy::Disconnect,
        }
    }
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
        let t = ms_streams::Tunables::default();
        FlowConfig {
            initial_credit_bytes: unset(t.initial_credit_bytes),
            default_policy: t.default_policy.into(),
            policies: unset(Vec::new()),
        }
    }
}

impl FlowConfig {
    /// The policy ranges as the dataplane takes them.
    fn ranges(&self) -> impl Iterator<Item = ms_streams::PolicyRange> + '_ {
        self.policies.value.iter().map(|r| ms_streams::PolicyRange {
            first: r.first.value,
            last: r.last.value,
            policy: r.policy.into(),
        })
    }

    /// Same values (places in the file ignored).
    fn same(&self, other: &FlowConfig) -> bool {
        self.initial_credit_bytes.value == other.initial_credit_bytes.value
            && self.default_policy == other.default_policy
            && self.ranges().eq(other.ranges())
    }
}

/// Default `memory.budget_bytes`: 256 MiB.
pub const MEMORY_BUDGET_DEFAULT: u64 = 256 << 20;
/// Largest `memory.budget_bytes`: 1 TiB.
pub const MEMORY_BUDGET_MAX: u64 = 1 << 40;
/// Smallest share of `memory.budget_bytes` a worker may get: 1 MiB.
pub const WORKER_SHARE_MIN: u64 = 1 << 20;

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
        let t = ms_streams::Tunables::default();
        MemoryConfig {
            budget_bytes: unset(MEMORY_BUDGET_DEFAULT),
            stream_queue_bytes_max: unset(t.stream_queue_bytes_max),
            shrink_grants_at_percent: unset(u32::from(t.shrink_grants_at_percent)),
            shed_bulk_at_percent: unset(u32::from(t.shed_bulk_at_percent)),
            drop_newest_at_percent: unset(u32::from(t.drop_newest_at_percent)),
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
    /// Equal values, wherever the file put them.
    fn same(&self, o: &ArpConfig) -> bool {
        let v = |a: &ArpConfig| {
            (
                a.entry_ttl_s,
                a.request_interval_ms,
                a.request_retries.value,
                a.neighbors_max.value,
                a.unresolved_queue_max.value,
                a.unresolved_neighbors_max.value,
                a.accept_unsolicited,
            )
        };
        let statics = |a: &ArpConfig| a.statics.iter().map(|n| (n.ip.value, n.mac)).collect::<Vec<_>>();
        v(self) == v(o) && statics(self) == statics(o)
    }

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

/// Parses a value from its string form inside `Deserialize`, so a bad
/// value is reported at its line and column.
macro_rules! from_str_deserialize {
    ($t:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e| de::Error::custom(format!("{e}; expected {}", $expecting)))
            }
        }
    };
}

/// An IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub Ipv4Addr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Ip).map_err(|_| format!("invalid IPv4 address {s:?}"))
    }
}
from_str_deserialize!(Ip, "a dotted IPv4 address such as 198.18.0.1");

/// An address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// As a netstack prefix.
    pub fn prefix(&self) -> Prefix {
        Prefix { addr: self.addr, len: self.len }
    }

    /// True when `ip` is a usable host in this /1../30 subnet: not its
    /// network or broadcast address, nor a special address.
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        if !(1..=30).contains(&self.len) || !self.prefix().contains(ip) {
            return false;
        }
        let host_bits = u32::from(ip) & (u32::MAX >> self.len);
        let special = ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback();
        !special && host_bits != 0 && host_bits != u32::MAX >> self.len
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid IPv4 prefix {s:?}");
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr = a.parse().map_err(|_| bad())?;
        let len = l.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
        Ok(Cidr { addr, len })
    }
}
from_str_deserialize!(Cidr, "address/length such as 198.18.0.1/24");

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A unicast MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub MacAddr);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match MacAddr::parse(s) {
            Some(m) if !m.is_multicast() && m != MacAddr::ZERO => Ok(Mac(m)),
            Some(_) => Err(format!("MAC {s:?} is multicast or zero")),
            None => Err(format!("invalid MAC {s:?}")),
        }
    }
}
from_str_deserialize!(Mac, "a unicast MAC such as 02:4d:53:00:00:01");

/// Where a port comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A PCI device bound to a DPDK-compatible driver (vfio-pci).
    Pci(String),
    /// A virtual device: driver name and its arguments.
    Vdev {
        /// Device name, e.g. `net_tap0` (also the ethdev name).
        name: String,
        /// Arguments after the first comma, e.g. `iface=ms0`.
        args: String,
    },
}

impl Device {
    /// The ethdev name: the PCI address or the vdev name.
    pub fn name(&self) -> &str {
        match self {
            Device::Pci(a) => a,
            Device::Vdev { name, .. } => name,
        }
    }
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, args) = s.split_once(',').unwrap_or((s, ""));
        if is_pci_address(name) && args.is_empty() {
            // DPDK names PCI ports in lower case.
            return Ok(Device::Pci(name.to_ascii_lowercase()));
        }
        let valid_name =
            name.starts_with("net_") && name.len() > 4 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(format!("{s:?} is neither a PCI address nor a vdev string"));
        }
        Ok(Device::Vdev { name: name.to_string(), args: args.to_string() })
    }
}
from_str_deserialize!(Device, "a PCI address (0000:03:00.0) or a vdev string (net_tap0,iface=ms0)");

fn is_pci_address(s: &str) -> bool {
    // dddd:bb:dd.f, hex digits
    let b = s.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b':',
            10 => *c == b'.',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A failed cross-field check: what is wrong, and where when known.
#[derive(Debug)]
struct CheckError {
    at: Option<Location>,
    msg: String,
}

impl CheckError {
    /// As an error naming `origin` and the line:column of the offending
    /// value: its own when it carries one, else the key its message starts
    /// with, looked up in `text`; `note` is appended to the message.
    fn located(self, origin: &str, note: &str, text: Option<&str>) -> ConfigError {
        let mut msg = self.msg;
        let at = self.at.or_else(|| {
            let key = msg.split(": ").next().unwrap_or_default().to_string();
            match errors::locate(text?, &key) {
                Some((loc, true)) => Some(loc),
                near => {
                    msg.push_str(&format!(" ({key} is not set in this file, so this is its default; set it)"));
                    near.map(|(loc, _)| loc)
                }
            }
        });
        msg.push_str(note);
        ConfigError::at(origin, at, msg)
    }
}

/// Fails a check at a location (`Some`) or at a key path only (`None`).
macro_rules! fail {
    ($at:expr, $($fmt:tt)*) => {
        return Err(CheckError { at: $at, msg: format!($($fmt)*) })
    };
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&Self::read_text(path)?, &path.display().to_string())
    }

    /// A config file's text: refused when unreadable, over
    /// `errors::FILE_BYTES_MAX` or not UTF-8.
    fn read_text(path: &Path) -> Result<String, ConfigError> {
        let file = path.display().to_string();
        let unreadable = |message: String| ConfigError { file: file.clone(), at: None, message };
        let len = std::fs::metadata(path)
            .map_err(|e| unreadable(format!("cannot read config: {e}; check the path and its permissions")))?
            .len();
        if len > errors::FILE_BYTES_MAX as u64 {
            return Err(unreadable(format!(
                "the file is {len} bytes; a config is a few KiB and at most {} (is this the right file?)",
                errors::FILE_BYTES_MAX
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| unreadable(format!("cannot read config: {e}; check the path and its permissions")))?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(errors::not_utf8(&file, e.as_bytes(), &e.utf8_error())),
        }
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_saphyr::from_str_with_options(text, errors::parse_options()).map_err(|e| {
            let (at, msg) = errors::describe(&e, text);
            ConfigError::at(origin, at, msg)
        })?;
        cfg.check().map_err(|e| e.located(origin, "", Some(text)))?;
        Ok(cfg)
    }

    /// The running config `self` with every live key taken from `new` (a
    /// checked config read from `origin`): what is in force after a live
    /// apply until the next restart. Checked again as a whole, because
    /// `new`'s live values were checked against its own restart-only ones
    /// (e.g. `memory.stream_queue_bytes_max` against `memory.budget_bytes`
    /// and `workers`), and the running ones stay until a restart.
    pub fn with_live(&self, new: &Config, origin: &str) -> Result<Config, ConfigError> {
        let mut c = self.clone();
        c.streams.subscription_lifetime_ms = new.streams.subscription_lifetime_ms;
        c.scheduler = new.scheduler.clone();
        c.flow = new.flow.clone();
        c.memory = MemoryConfig { budget_bytes: c.memory.budget_bytes, ..new.memory.clone() };
        c.check().map_err(|e| {
            e.located(
                origin,
                " (checked against the running workers and memory.budget_bytes, which change only at a restart: \
                 restart with the new file, or apply the live keys in a step of their own)",
                None,
            )
        })?;
        Ok(c)
    }

    /// The settings workers take live, as the stream tables use them.
    pub fn tunables(&self) -> ms_streams::Tunables {
        let (s, f, m) = (&self.scheduler, &self.flow, &self.memory);
        let percent = |v: &Spanned<u32>| u8::try_from(v.value).unwrap_or(u8::MAX);
        let mut t = ms_streams::Tunables {
            quantum_bytes: s.quantum_bytes.value,
            starvation_guard: s.starvation_guard.value,
            rx_burst_min: u16::try_from(s.rx_burst_min.value).unwrap_or(u16::MAX),
            tx_budget_min: s.tx_budget_min.value,
            tx_budget_max: s.tx_budget_max.value,
            initial_credit_bytes: f.initial_credit_bytes.value,
            default_policy: f.default_policy.into(),
            stream_queue_bytes_max: m.stream_queue_bytes_max.value,
            shrink_grants_at_percent: percent(&m.shrink_grants_at_percent),
            shed_bulk_at_percent: percent(&m.shed_bulk_at_percent),
            drop_newest_at_percent: percent(&m.drop_newest_at_percent),
            ..Default::default()
        };
        let ranges: Vec<ms_streams::PolicyRange> = f.ranges().take(POLICY_RANGES_MAX).collect();
        // At most POLICY_RANGES_MAX (checked, and taken): cannot fail.
        let _ = t.set_policies(&ranges);
        t
    }

    /// Each worker's stream table bounds and its share of
    /// `memory.budget_bytes` for queued messages.
    pub fn stream_limits(&self) -> ms_streams::Limits {
        let st = &self.streams;
        ms_streams::Limits {
            streams: st.max_per_worker,
            subscribers: st.subscribers_max,
            subscriptions: st.subscriptions_max,
            lifetime_ms: u64::from(st.subscription_lifetime_ms),
            queue_bytes: self.worker_queue_bytes(),
        }
    }

    /// One worker's share of `memory.budget_bytes`.
    pub fn worker_queue_bytes(&self) -> u64 {
        self.memory.budget_bytes.value / self.workers.lcores.value.len().max(1) as u64
    }

    /// Cross-field checks that no single value can make.
    fn check(&self) -> Result<(), CheckError> {
        let (w, e) = (&self.workers, &self.eal);
        let at = Some(w.lcores.referenced);
        if w.lcores.value.is_empty() || w.lcores.value.len() > WORKERS_MAX {
            fail!(at, "workers.lcores: expected 1 to {WORKERS_MAX} lcores, got {}", w.lcores.value.len());
        }
        for (i, &l) in w.lcores.value.iter().enumerate() {
            if l > LCORE_ID_MAX {
                fail!(at, "workers.lcores[{i}]: lcore {l} is above {LCORE_ID_MAX}");
            }
            if l == e.main_lcore {
                fail!(at, "workers.lcores[{i}]: lcore {l} is eal.main_lcore; workers need their own lcores");
            }
            if w.lcores.value[..i].contains(&l) {
                fail!(at, "workers.lcores[{i}]: lcore {l} is listed twice");
            }
        }
        if e.main_lcore > LCORE_ID_MAX {
            fail!(None, "eal.main_lcore: wrote {}; expected 0 to {LCORE_ID_MAX}", e.main_lcore);
        }
        // Vector PMDs round bursts down to a multiple of 4 or 8; below 8 some
        // would never return a packet.
        if !(8..=RX_BURST_MAX).contains(&usize::from(w.rx_burst)) {
            fail!(None, "workers.rx_burst: wrote {}; expected 8 to {RX_BURST_MAX} packets per burst", w.rx_burst);
        }
        if !(1..=8).contains(&e.log_level) {
            fail!(None, "eal.log_level: wrote {}; expected 1 (critical only) to 8 (debug)", e.log_level);
        }
        if e.memory_mb < 64 {
            fail!(None, "eal.memory_mb: wrote {}; expected at least 64 (MiB)", e.memory_mb);
        }
        if let Some((l, _)) = e.cpus.iter().find(|(l, _)| **l != e.main_lcore && !w.lcores.value.contains(l)) {
            fail!(None, "eal.cpus: lcore {l} is neither eal.main_lcore nor a worker");
        }
        if self.service.udp_port == 0 {
            fail!(None, "service.udp_port: wrote 0; expected a UDP port from 1 to 65535");
        }
        if self.arp.entry_ttl_s == 0 || self.arp.request_interval_ms == 0 {
            fail!(None, "arp: entry_ttl_s and request_interval_ms must be at least 1");
        }
        self.check_arp()?;
        let st = &self.streams;
        let bounds = [
            ("max_per_worker", st.max_per_worker, 1 << 24),
            ("subscribers_max", st.subscribers_max, 1 << 20),
            ("subscriptions_max", st.subscriptions_max, 1 << 26),
        ];
        for (key, v, max) in bounds {
            if v == 0 || v > max {
                fail!(None, "streams.{key}: wrote {v}; expected 1 to {max}");
            }
        }
        if st.subscription_lifetime_ms < 100 {
            fail!(
                None,
                "streams.subscription_lifetime_ms: wrote {}; expected at least 100",
                st.subscription_lifetime_ms
            );
        }
        self.check_ports()?;
        self.check_mempool()?;
        self.check_scheduler()?;
        self.check_flow()?;
        self.check_memory()
    }

    fn check_scheduler(&self) -> Result<(), CheckError> {
        let s = &self.scheduler;
        let q = &s.quantum_bytes;
        if !(64..=SCHEDULER_LIMIT).contains(&q.value) {
            fail!(at(q), "scheduler.quantum_bytes: expected 64..={SCHEDULER_LIMIT} bytes, got {}", q.value);
        }
        let g = &s.starvation_guard;
        if !(1..=1024).contains(&g.value) {
            fail!(at(g), "scheduler.starvation_guard: expected 1..=1024 picks, got {}", g.value);
        }
        let (r, burst) = (&s.rx_burst_min, self.workers.rx_burst);
        if !(1..=u32::from(burst)).contains(&r.value) {
            fail!(at(r), "scheduler.rx_burst_min: expected 1..=workers.rx_burst ({burst}), got {}", r.value);
        }
        let (lo, hi) = (&s.tx_budget_min, &s.tx_budget_max);
        if !(1..=SCHEDULER_LIMIT).contains(&hi.value) {
            fail!(at(hi), "scheduler.tx_budget_max: expected 1..={SCHEDULER_LIMIT} messages, got {}", hi.value);
        }
        if lo.value == 0 || (lo.value > hi.value && at(lo).is_some()) {
            fail!(
                at(lo),
                "scheduler.tx_budget_min: expected 1..=scheduler.tx_budget_max ({}), got {}; \
                 lower tx_budget_min or raise tx_budget_max",
                hi.value,
                lo.value
            );
        }
        if lo.value > hi.value {
            fail!(
                at(hi),
                "scheduler.tx_budget_max: {} is below scheduler.tx_budget_min ({}, the default); \
                 raise tx_budget_max or lower tx_budget_min",
                hi.value,
                lo.value
            );
        }
        Ok(())
    }

    fn check_flow(&self) -> Result<(), CheckError> {
        let f = &self.flow;
        let c = &f.initial_credit_bytes;
        if u64::from(c.value) < PAYLOAD_MAX {
            fail!(
                at(c),
                "flow.initial_credit_bytes: expected at least {PAYLOAD_MAX} (the largest message payload; \
                 a smaller credit could never send a max-size message), got {}",
                c.value
            );
        }
        let p = &f.policies;
        if p.value.len() > POLICY_RANGES_MAX {
            fail!(
                at(p),
                "flow.policies: expected at most {POLICY_RANGES_MAX} ranges, got {}; \
                 merge ranges or let flow.default_policy cover the most common one",
                p.value.len()
            );
        }
        for (i, r) in p.value.iter().enumerate() {
            if r.first.value > r.last.value {
                fail!(
                    at(&r.first),
                    "flow.policies[{i}]: first ({}) is above last ({}); expected first <= last",
                    r.first.value,
                    r.last.value
                );
            }
        }
        Ok(())
    }

    fn check_memory(&self) -> Result<(), CheckError> {
        let m = &self.memory;
        let b = &m.budget_bytes;
        if b.value > MEMORY_BUDGET_MAX {
            fail!(at(b), "memory.budget_bytes: expected at most {MEMORY_BUDGET_MAX} (1 TiB), got {}", b.value);
        }
        let workers = self.workers.lcores.value.len().max(1) as u64;
        let plural = if workers == 1 { "worker" } else { "workers" };
        let share = self.worker_queue_bytes();
        if share < WORKER_SHARE_MIN {
            fail!(
                at(b).or(Some(self.workers.lcores.referenced)),
                "memory.budget_bytes: {} split over {workers} {plural} is {share} bytes each; \
                 expected at least {} (1 MiB per worker): raise it or use fewer workers",
                b.value,
                WORKER_SHARE_MIN * workers
            );
        }
        let q = &m.stream_queue_bytes_max;
        if u64::from(q.value) < PAYLOAD_MAX {
            fail!(
                at(q),
                "memory.stream_queue_bytes_max: expected at least {PAYLOAD_MAX} (the largest message payload), got {}",
                q.value
            );
        }
        if u64::from(q.value) > share {
            fail!(
                at(q).or(at(b)),
                "memory.stream_queue_bytes_max: {} is above a worker's share of memory.budget_bytes \
                 ({} / {workers} {plural} = {share}); lower it or raise memory.budget_bytes",
                q.value,
                b.value
            );
        }
        let steps = [
            ("shrink_grants_at_percent", &m.shrink_grants_at_percent),
            ("shed_bulk_at_percent", &m.shed_bulk_at_percent),
            ("drop_newest_at_percent", &m.drop_newest_at_percent),
        ];
        for (key, v) in steps {
            if !(1..=100).contains(&v.value) {
                fail!(at(v), "memory.{key}: expected 1..=100 (percent of the pool in use), got {}", v.value);
            }
        }
        const ORDER: &str = "expected shrink_grants_at_percent <= shed_bulk_at_percent <= drop_newest_at_percent";
        for w in steps.windows(2) {
            let ((ka, a), (kb, b)) = (w[0], w[1]);
            if a.value > b.value && at(a).is_some() {
                fail!(at(a), "memory.{ka}: {} is above memory.{kb} ({}); {ORDER}", a.value, b.value);
            }
            if a.value > b.value {
                fail!(at(b), "memory.{kb}: {} is below memory.{ka} ({}, the default); {ORDER}", b.value, a.value);
            }
        }
        Ok(())
    }

    fn check_ports(&self) -> Result<(), CheckError> {
        let ports = &self.ports.value;
        if ports.is_empty() || ports.len() > PORTS_MAX {
            fail!(Some(self.ports.referenced), "ports: expected 1 to {PORTS_MAX} ports, got {}", ports.len());
        }
        for (i, p) in ports.iter().enumerate() {
            let at = Some(p.ipv4.referenced);
            let name_ok = (1..=24).contains(&p.name.len())
                && p.name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
            if !name_ok {
                fail!(
                    at,
                    "ports[{i}].name: wrote {}; expected 1 to 24 characters of A-Z a-z 0-9 _ . - (it labels metrics)",
                    errors::shown(&p.name)
                );
            }
            if ports[..i].iter().any(|q| q.name == p.name) {
                fail!(at, "ports[{i}].name: {:?} is used by another port", p.name);
            }
            if ports[..i].iter().any(|q| q.device.name() == p.device.name()) {
                fail!(at, "ports[{i}].device: {} is used by another port", p.device.name());
            }
            let net = p.ipv4.value;
            if !net.is_host_address(net.addr) {
                fail!(at, "ports[{i}].ipv4: {net} is not a host address with a /1../30 prefix");
            }
            if p.routes.len() > ROUTES_MAX {
                fail!(None, "ports[{i}].routes: wrote {} routes; expected at most {ROUTES_MAX}", p.routes.len());
            }
            for (j, r) in p.routes.iter().enumerate() {
                let gw = r.via.value.0;
                if !net.is_host_address(gw) || gw == net.addr {
                    let at = Some(r.via.referenced);
                    fail!(
                        at,
                        "ports[{i}].routes[{j}].via: gateway {gw} is not another host on the port's subnet {net}"
                    );
                }
            }
            for (key, v) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
                if !(64..=32768).contains(&v) {
                    fail!(None, "ports[{i}].{key}: wrote {v}; expected 64 to 32768 descriptors");
                }
            }
        }
        Ok(())
    }

    fn check_arp(&self) -> Result<(), CheckError> {
        let a = &self.arp;
        let ranges = [
            (&a.request_retries, "request_retries", 1, 10, "requests"),
            (&a.neighbors_max, "neighbors_max", 16, 1 << 20, "neighbours"),
            (&a.unresolved_queue_max, "unresolved_queue_max", 1, 64, "packets"),
            (&a.unresolved_neighbors_max, "unresolved_neighbors_max", 1, 4096, "neighbours"),
        ];
        for (v, key, lo, hi, unit) in ranges {
            if !(lo..=hi).contains(&v.value) {
                fail!(at(v), "arp.{key}: expected {lo}..={hi} {unit}, got {}", v.value);
            }
        }
        // Entries holding packets and static ones are never replaced: half
        // the table stays free for the rest.
        let pinned = a.statics.len() as u64 + u64::from(a.unresolved_neighbors_max.value);
        if pinned * 2 > u64::from(a.neighbors_max.value) {
            fail!(
                at(&a.neighbors_max),
                "arp.neighbors_max: {} must be at least twice the static neighbours plus \
                 arp.unresolved_neighbors_max ({pinned}); raise it or lower those",
                a.neighbors_max.value
            );
        }
        for (i, n) in a.statics.iter().enumerate() {
            let ip = n.ip.value.0;
            let on_link = self.ports().iter().any(|p| p.ipv4.value.is_host_address(ip) && p.ipv4.value.addr != ip);
            if !on_link {
                fail!(
                    Some(n.ip.referenced),
                    "arp.static[{i}].ip: {ip} is not another host on any port's subnet; \
                     static neighbours must be on-link"
                );
            }
            if a.statics[..i].iter().any(|m| m.ip.value.0 == ip) {
                fail!(Some(n.ip.referenced), "arp.static[{i}].ip: {ip} is listed twice");
            }
        }
        Ok(())
    }

    fn check_mempool(&self) -> Result<(), CheckError> {
        let m = &self.mempool;
        // Every RX and TX ring full, one burst in flight per worker per
        // port, and every lcore's cache full, all at once.
        let workers = self.workers.lcores.value.len() as u64;
        let ports = &self.ports.value;
        let rings: u64 = ports.iter().map(|p| u64::from(p.rx_desc) + u64::from(p.tx_desc)).sum();
        // Plus one DELIVER being filled per subscriber when streams run.
        let delivers = match self.service.handler {
            HandlerKind::Streams => u64::from(self.streams.subscribers_max),
            _ => 0,
        };
        // Plus what each worker may hold for unresolved neighbours.
        let held = self.arp.held_max() * ports.len() as u64;
        let need = workers * rings
            + workers * u64::from(self.workers.rx_burst) * ports.len() as u64
            + workers * delivers
            + workers * held
            + (workers + 1) * u64::from(m.cache);
        if u64::from(m.mbufs) < need {
            fail!(None, "mempool.mbufs: {} is too few for the rings and caches; expected at least {need}", m.mbufs);
        }
        if m.cache > 512 || u64::from(m.cache) * 3 / 2 > u64::from(m.mbufs) {
            fail!(
                None,
                "mempool.cache: wrote {}; expected at most 512 and at most two thirds of mempool.mbufs",
                m.cache
            );
        }
        Ok(())
    }

    /// What differs from `self` (the running config) in `new`. Sections
    /// whose keys all change the same way are named as a section (`eal`,
    /// `scheduler`); mixed ones key by key (`memory.budget_bytes`).
    pub fn diff(&self, new: &Config) -> Diff {
        let mut d = Diff::default();
        let mut live = |changed: bool, key: &'static str| {
            if changed {
                d.live.push(key);
            }
        };
        live(
            self.streams.subscription_lifetime_ms != new.streams.subscription_lifetime_ms,
            "streams.subscription_lifetime_ms",
        );
        live(self.scheduler.values() != new.scheduler.values(), "scheduler");
        live(!self.flow.same(&new.flow), "flow");
        let (a, b) = (&self.memory, &new.memory);
        live(a.stream_queue_bytes_max.value != b.stream_queue_bytes_max.value, "memory.stream_queue_bytes_max");
        live(a.shrink_grants_at_percent.value != b.shrink_grants_at_percent.value, "memory.shrink_grants_at_percent");
        live(a.shed_bulk_at_percent.value != b.shed_bulk_at_percent.value, "memory.shed_bulk_at_percent");
        live(a.drop_newest_at_percent.value != b.drop_newest_at_percent.value, "memory.drop_newest_at_percent");
        let mut restart = |changed: bool, key: &'static str| {
            if changed {
                d.restart.push(key);
            }
        };
        restart(self.eal != new.eal, "eal");
        // Compare values, not the YAML positions `Spanned` also carries:
        // a comment or a reformatted file is no change.
        restart(!same_ports(self.ports(), new.ports()), "ports");
        let (wa, wb) = (&self.workers, &new.workers);
        restart(wa.lcores.value != wb.lcores.value || wa.rx_burst != wb.rx_burst, "workers");
        restart(self.service != new.service, "service");
        restart(!self.arp.same(&new.arp), "arp");
        restart(self.mempool != new.mempool, "mempool");
        restart(self.telemetry != new.telemetry, "telemetry");
        if self.controlplane != new.controlplane {
            d.controlplane_restart = true;
        }
        let (a, b) = (&self.streams, &new.streams);
        restart(a.max_per_worker != b.max_per_worker, "streams.max_per_worker");
        restart(a.subscribers_max != b.subscribers_max, "streams.subscribers_max");
        restart(a.subscriptions_max != b.subscriptions_max, "streams.subscriptions_max");
        restart(self.memory.budget_bytes.value != new.memory.budget_bytes.value, "memory.budget_bytes");
        d
    }

    /// The ports, in config order.
    pub fn ports(&self) -> &[PortConfig] {
        &self.ports.value
    }

    /// The worker lcores, in config order.
    pub fn worker_lcores(&self) -> &[u32] {
        &self.workers.lcores.value
    }

    /// Every PCI device the config names.
    pub fn pci_devices(&self) -> impl Iterator<Item = &str> {
        self.ports.value.iter().filter_map(|p| match &p.device {
            Device::Pci(a) => Some(a.as_str()),
            Device::Vdev { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests;
