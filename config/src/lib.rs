//! MemoryStreamer's YAML config (the dataplane's and the control plane's): strict (unknown keys are errors), every
//! value checked while it is read so errors carry file:line:column, and
//! cross-field checks named by their path in the file.

use anyhow::Context;
use ms_netstack::host::ROUTES_MAX;
use ms_netstack::route::Prefix;
use ms_netstack::{Ipv4Addr, MacAddr};
use serde::{de, Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Largest RX burst a worker accepts.
pub const RX_BURST_MAX: usize = 512;

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

/// Highest lcore id DPDK 22.11 is built for (RTE_MAX_LCORE).
pub const LCORE_ID_MAX: u32 = 127;
/// Most worker lcores one process runs.
pub const WORKERS_MAX: usize = 64;
/// Most ports one process drives.
pub const PORTS_MAX: usize = 8;

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
    /// ARP timers.
    #[serde(default)]
    pub arp: ArpConfig,
    /// Packet buffer pool.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// Stream table bounds (per worker) and subscription lifetime.
    #[serde(default)]
    pub streams: StreamsConfig,
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

impl StreamsConfig {
    /// As table limits.
    pub fn limits(&self) -> ms_streams::Limits {
        ms_streams::Limits {
            streams: self.max_per_worker,
            subscribers: self.subscribers_max,
            subscriptions: self.subscriptions_max,
            lifetime_ms: u64::from(self.subscription_lifetime_ms),
            queue_bytes: 0,
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

/// ARP timers.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArpConfig {
    /// How long a learned neighbour stays valid.
    #[serde(default = "default_arp_ttl")]
    pub entry_ttl_s: u32,
    /// Minimum gap between two requests for one address.
    #[serde(default = "default_arp_interval")]
    pub request_interval_ms: u32,
}

fn default_arp_ttl() -> u32 {
    300
}

fn default_arp_interval() -> u32 {
    1000
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig { entry_ttl_s: default_arp_ttl(), request_interval_ms: default_arp_interval() }
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

/// Fails a check at a location (`Some`) or at a key path only (`None`).
macro_rules! fail {
    ($at:expr, $($fmt:tt)*) => {
        return Err(CheckError { at: $at, msg: format!($($fmt)*) })
    };
}

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}: check the path and its permissions", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Config> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| {
            let msg = strip_location(&e.without_snippet().to_string());
            match e.location() {
                Some(loc) => anyhow::anyhow!("{origin}:{}:{}: {msg}", loc.line(), loc.column()),
                None => anyhow::anyhow!("{origin}: {msg}"),
            }
        })?;
        cfg.check().map_err(|e| match e.at {
            Some(loc) => anyhow::anyhow!("{origin}:{}:{}: {}", loc.line(), loc.column(), e.msg),
            None => anyhow::anyhow!("{origin}: {}", e.msg),
        })?;
        Ok(cfg)
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
            fail!(None, "eal.main_lcore: {} is above {LCORE_ID_MAX}", e.main_lcore);
        }
        // Vector PMDs round bursts down to a multiple of 4 or 8; below 8 some
        // would never return a packet.
        if !(8..=RX_BURST_MAX).contains(&usize::from(w.rx_burst)) {
            fail!(None, "workers.rx_burst: expected 8..={}, got {}", RX_BURST_MAX, w.rx_burst);
        }
        if !(1..=8).contains(&e.log_level) {
            fail!(None, "eal.log_level: expected 1..=8, got {}", e.log_level);
        }
        if e.memory_mb < 64 {
            fail!(None, "eal.memory_mb: at least 64 MiB, got {}", e.memory_mb);
        }
        if let Some((l, _)) = e.cpus.iter().find(|(l, _)| **l != e.main_lcore && !w.lcores.value.contains(l)) {
            fail!(None, "eal.cpus: lcore {l} is neither eal.main_lcore nor a worker");
        }
        if self.service.udp_port == 0 {
            fail!(None, "service.udp_port: 0 is not a port");
        }
        if self.arp.entry_ttl_s == 0 || self.arp.request_interval_ms == 0 {
            fail!(None, "arp: entry_ttl_s and request_interval_ms must be at least 1");
        }
        let st = &self.streams;
        if st.max_per_worker == 0 || st.max_per_worker > 1 << 24 {
            fail!(None, "streams.max_per_worker: expected 1..=16777216, got {}", st.max_per_worker);
        }
        if st.subscribers_max == 0
            || st.subscribers_max > 1 << 20
            || st.subscriptions_max == 0
            || st.subscriptions_max > 1 << 26
        {
            fail!(None, "streams: subscribers_max must be 1..=1048576 and subscriptions_max 1..=67108864");
        }
        if st.subscription_lifetime_ms < 100 {
            fail!(None, "streams.subscription_lifetime_ms: at least 100, got {}", st.subscription_lifetime_ms);
        }
        self.check_ports()?;
        self.check_mempool()
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
                    "ports[{i}].name: {:?} must be 1 to 24 characters of A-Z a-z 0-9 _ . - (it labels metrics)",
                    p.name
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
                fail!(None, "ports[{i}].routes: at most {ROUTES_MAX} routes, got {}", p.routes.len());
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
            if !(64..=32768).contains(&p.rx_desc) || !(64..=32768).contains(&p.tx_desc) {
                fail!(None, "ports[{i}]: rx_desc and tx_desc must be within 64..=32768");
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
        let need = workers * rings
            + workers * u64::from(self.workers.rx_burst) * ports.len() as u64
            + workers * delivers
            + (workers + 1) * u64::from(m.cache);
        if u64::from(m.mbufs) < need {
            fail!(None, "mempool.mbufs: {} is too few for the rings and caches; need at least {need}", m.mbufs);
        }
        if m.cache > 512 || u64::from(m.cache) * 3 / 2 > u64::from(m.mbufs) {
            fail!(None, "mempool.cache: {} must be at most 512 and well below mempool.mbufs", m.cache);
        }
        Ok(())
    }

    /// What differs from `self` (the running config) in `new`.
    pub fn diff(&self, new: &Config) -> Diff {
        let mut d = Diff::default();
        if self.streams.subscription_lifetime_ms != new.streams.subscription_lifetime_ms {
            d.live.push("streams.subscription_lifetime_ms");
        }
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
        restart(self.arp != new.arp, "arp");
        restart(self.mempool != new.mempool, "mempool");
        restart(self.telemetry != new.telemetry, "telemetry");
        if self.controlplane != new.controlplane {
            d.controlplane_restart = true;
        }
        let (a, b) = (&self.streams, &new.streams);
        restart(a.max_per_worker != b.max_per_worker, "streams.max_per_worker");
        restart(a.subscribers_max != b.subscribers_max, "streams.subscribers_max");
        restart(a.subscriptions_max != b.subscriptions_max, "streams.subscriptions_max");
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

/// The parser appends "at line L, column C"; we put it in front instead.
fn strip_location(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
