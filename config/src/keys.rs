//! The one table of config keys: dotted path, when a change takes effect
//! (live, dataplane restart, control-plane restart) and a line of help.
//! The diff, the live apply (`Config::with_live`), the control plane's
//! view of the running values (`Config::set_live`) and `msctl config keys`
//! all read it; nothing else lists keys.

use crate::schema::{
    Config, FlowPolicy, HandlerKind, Hugepages, PolicyRangeConfig, PortConfig, RouteConfig, StaticNeighbor, UdpChecksum,
};
use crate::values::{Cidr, Device, Ip, Mac};
use serde_saphyr::Spanned;

/// When a changed key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// At once, through `msctl config apply` (workers take it between two
    /// loop turns).
    Live,
    /// At the next dataplane restart.
    Restart,
    /// At the next control-plane restart (the dataplane is not involved).
    ControlPlaneRestart,
}

impl Effect {
    /// As `msctl config keys` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Effect::Live => "live",
            Effect::Restart => "restart",
            Effect::ControlPlaneRestart => "controlplane-restart",
        }
    }
}

/// How a live key is copied between configs.
struct LiveOps {
    /// Copies the key's value from the second config into the first.
    take: fn(&mut Config, &Config),
    /// Sets the key from its value written as YAML (JSON is YAML too).
    set: fn(&mut Config, &str) -> Result<(), String>,
}

/// One key of the file.
pub struct Key {
    /// Dotted path as errors and `msctl` name it (`ports[].ipv4`).
    pub path: &'static str,
    /// When a change takes effect.
    pub effect: Effect,
    /// What it sets, in a line.
    pub help: &'static str,
    /// Equal values in two configs (places in the file ignored).
    same: fn(&Config, &Config) -> bool,
    /// Present exactly for `Effect::Live` keys.
    live: Option<LiveOps>,
}

impl Key {
    /// The section: the path up to its first `.` or `[`.
    pub fn section(&self) -> &'static str {
        let end = self.path.find(['.', '[']).unwrap_or(self.path.len());
        &self.path[..end]
    }

    /// The name a diff reports for this key: its section when every key
    /// of the section takes effect the same way (`scheduler`, `eal`),
    /// else the key itself (`memory.budget_bytes`).
    pub fn diff_name(&self) -> &'static str {
        let section = self.section();
        let uniform = KEYS.iter().filter(|k| k.section() == section).all(|k| k.effect == self.effect);
        if uniform {
            section
        } else {
            self.path
        }
    }

    /// True when the key differs between `a` and `b`.
    pub fn changed(&self, a: &Config, b: &Config) -> bool {
        !(self.same)(a, b)
    }
}

/// Values compared as the operator sees them: YAML positions ignored.
trait SameValue {
    fn same_as(&self, other: &Self) -> bool;
}

macro_rules! plain_same {
    ($($t:ty),*) => { $(impl SameValue for $t { fn same_as(&self, o: &Self) -> bool { self == o } })* };
}
plain_same!(
    u8, u16, u32, u64, bool, String, std::path::PathBuf, std::net::SocketAddr, Hugepages, HandlerKind, UdpChecksum,
    FlowPolicy, Device, Cidr, Ip, Mac, std::collections::BTreeMap<u32, u32>
);

impl<T: SameValue> SameValue for Spanned<T> {
    fn same_as(&self, o: &Self) -> bool {
        self.value.same_as(&o.value)
    }
}

impl<T: SameValue> SameValue for Option<T> {
    fn same_as(&self, o: &Self) -> bool {
        match (self, o) {
            (Some(a), Some(b)) => a.same_as(b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

impl<T: SameValue> SameValue for Vec<T> {
    fn same_as(&self, o: &Self) -> bool {
        self.len() == o.len() && self.iter().zip(o).all(|(a, b)| a.same_as(b))
    }
}

impl SameValue for RouteConfig {
    fn same_as(&self, o: &Self) -> bool {
        self.to.same_as(&o.to) && self.via.same_as(&o.via)
    }
}

impl SameValue for StaticNeighbor {
    fn same_as(&self, o: &Self) -> bool {
        self.ip.same_as(&o.ip) && self.mac.same_as(&o.mac)
    }
}

impl SameValue for PolicyRangeConfig {
    fn same_as(&self, o: &Self) -> bool {
        self.first.same_as(&o.first) && self.last.same_as(&o.last) && self.policy.same_as(&o.policy)
    }
}

/// Same `field` on every port, and as many ports.
fn same_on_ports<V: SameValue>(a: &Config, b: &Config, field: fn(&PortConfig) -> &V) -> bool {
    a.ports().len() == b.ports().len() && a.ports().iter().zip(b.ports()).all(|(x, y)| field(x).same_as(field(y)))
}

macro_rules! key {
    (Live, $path:literal, $($f:ident).+, $help:literal) => {
        Key {
            path: $path,
            effect: Effect::Live,
            help: $help,
            same: |a, b| a.$($f).+.same_as(&b.$($f).+),
            live: Some(LiveOps {
                take: |a, b| a.$($f).+ = b.$($f).+.clone(),
                set: |c, v| {
                    c.$($f).+ = serde_saphyr::from_str(v).map_err(|e| e.to_string())?;
                    Ok(())
                },
            }),
        }
    };
    ($effect:ident, $path:literal, $($f:ident).+, $help:literal) => {
        Key { path: $path, effect: Effect::$effect, help: $help, same: |a, b| a.$($f).+.same_as(&b.$($f).+), live: None }
    };
}

macro_rules! port_key {
    ($path:literal, $f:ident, $help:literal) => {
        Key {
            path: $path,
            effect: Effect::Restart,
            help: $help,
            same: |a, b| same_on_ports(a, b, |p| &p.$f),
            live: None,
        }
    };
}

/// Every key, in the order diffs list them.
pub static KEYS: &[Key] = &[
    key!(Restart, "eal.main_lcore", eal.main_lcore, "lcore for setup, signals and reporting; never a worker"),
    key!(Restart, "eal.memory_mb", eal.memory_mb, "memory DPDK reserves at startup, MiB (>= 64)"),
    key!(Restart, "eal.hugepages", eal.hugepages, "auto, on or off"),
    key!(Restart, "eal.file_prefix", eal.file_prefix, "runtime file prefix without hugepages (default ms-<pid>)"),
    key!(Restart, "eal.log_level", eal.log_level, "DPDK's own log level, 1..8"),
    key!(Restart, "eal.cpus", eal.cpus, "{lcore: cpu} where an lcore runs on another CPU than its id"),
    key!(Restart, "eal.extra_args", eal.extra_args, "appended verbatim to the EAL command line"),
    port_key!("ports[].name", name, "name used in logs and counters"),
    port_key!("ports[].device", device, "PCI address or vdev string"),
    port_key!("ports[].mac", mac, "unicast MAC to set (default: the port's own)"),
    port_key!("ports[].ipv4", ipv4, "host address and on-link prefix, /1../30"),
    port_key!("ports[].routes", routes, "{ to: PREFIX, via: GATEWAY } static routes, at most 32"),
    port_key!("ports[].rx_desc", rx_desc, "RX descriptors per queue, 64..32768"),
    port_key!("ports[].tx_desc", tx_desc, "TX descriptors per queue, 64..32768"),
    port_key!("ports[].udp_checksum", udp_checksum, "software, offload (the NIC) or none (0, as IPv4 allows)"),
    key!(Restart, "workers.lcores", workers.lcores, "worker lcores, 1..64; worker i owns queue i of every port"),
    key!(Restart, "workers.rx_burst", workers.rx_burst, "packets per RX burst, 8..512"),
    key!(
        Restart,
        "workers.realtime_priority",
        workers.realtime_priority,
        "0 = normal scheduling; 1..99 = SCHED_FIFO at that priority"
    ),
    key!(Restart, "service.udp_port", service.udp_port, "UDP port of the streaming service"),
    key!(Restart, "service.handler", service.handler, "streams, sink or echo"),
    key!(Restart, "arp.entry_ttl_s", arp.entry_ttl_s, "lifetime of a learned neighbour"),
    key!(Restart, "arp.request_interval_ms", arp.request_interval_ms, "minimum gap between requests for one address"),
    key!(Restart, "arp.request_retries", arp.request_retries, "requests before held packets are dropped, 1..10"),
    key!(Restart, "arp.neighbors_max", arp.neighbors_max, "neighbours per port per worker, 16..1048576"),
    key!(Restart, "arp.unresolved_queue_max", arp.unresolved_queue_max, "packets held per unresolved neighbour, 1..64"),
    key!(
        Restart,
        "arp.unresolved_neighbors_max",
        arp.unresolved_neighbors_max,
        "unresolved neighbours holding packets per port per worker, 1..4096"
    ),
    key!(Restart, "arp.accept_unsolicited", arp.accept_unsolicited, "let unsolicited ARP replace a learned MAC"),
    key!(Restart, "arp.static", arp.statics, "{ ip, mac } neighbours that never change"),
    key!(Restart, "mempool.mbufs", mempool.mbufs, "buffers per NUMA socket in use"),
    key!(Restart, "mempool.cache", mempool.cache, "per-lcore buffer cache, <= 512"),
    key!(Restart, "telemetry.stats_path", telemetry.stats_path, "the shared-memory stats segment"),
    key!(Restart, "telemetry.control_socket", telemetry.control_socket, "the dataplane's control socket (0600)"),
    key!(ControlPlaneRestart, "controlplane.socket", controlplane.socket, "where msctl reaches ms-controlplane (0660)"),
    key!(
        ControlPlaneRestart,
        "controlplane.prometheus_listen",
        controlplane.prometheus_listen,
        "Prometheus endpoint; null disables it"
    ),
    key!(Restart, "streams.max_per_worker", streams.max_per_worker, "streams with subscribers per worker"),
    key!(Restart, "streams.subscribers_max", streams.subscribers_max, "subscriber addresses per worker"),
    key!(Restart, "streams.subscriptions_max", streams.subscriptions_max, "(stream, subscriber) pairs per worker"),
    key!(
        Live,
        "streams.subscription_lifetime_ms",
        streams.subscription_lifetime_ms,
        "a subscriber silent this long expires (>= 100)"
    ),
    key!(Live, "scheduler.quantum_bytes", scheduler.quantum_bytes, "DRR quantum, bytes per round, 64..65536"),
    key!(
        Live,
        "scheduler.starvation_guard",
        scheduler.starvation_guard,
        "higher-class picks before a lower one, 1..1024"
    ),
    key!(Live, "scheduler.rx_burst_min", scheduler.rx_burst_min, "floor of the adaptive rx burst, 1..workers.rx_burst"),
    key!(Live, "scheduler.tx_budget_min", scheduler.tx_budget_min, "messages per loop turn when idle"),
    key!(Live, "scheduler.tx_budget_max", scheduler.tx_budget_max, "messages per loop turn under load, <= 65536"),
    key!(Live, "scheduler.cut_through", scheduler.cut_through, "send at once when nothing waits and credit allows"),
    key!(Live, "flow.initial_credit_bytes", flow.initial_credit_bytes, "credit a new subscription starts with"),
    key!(Live, "flow.default_policy", flow.default_policy, "block, drop-oldest, conflate or disconnect"),
    key!(Live, "flow.policies", flow.policies, "{ first, last, policy } by stream id range, at most 64"),
    key!(Restart, "memory.budget_bytes", memory.budget_bytes, "bytes for queued messages, split over the workers"),
    key!(Live, "memory.stream_queue_bytes_max", memory.stream_queue_bytes_max, "bytes one stream may hold queued"),
    key!(Live, "memory.shrink_grants_at_percent", memory.shrink_grants_at_percent, "pool fill halving queue limits"),
    key!(Live, "memory.shed_bulk_at_percent", memory.shed_bulk_at_percent, "pool fill shedding new bulk messages"),
    key!(Live, "memory.drop_newest_at_percent", memory.drop_newest_at_percent, "pool fill dropping new messages"),
];

/// The keys that change live, in table order.
pub fn live_keys() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(|k| k.effect == Effect::Live)
}

impl Config {
    /// This config with every live key taken from `other` (unchecked).
    pub(crate) fn take_live(&mut self, other: &Config) {
        for ops in KEYS.iter().filter_map(|k| k.live.as_ref()) {
            (ops.take)(self, other);
        }
    }

    /// Sets the live key `path` from its value written as YAML or JSON
    /// (as the dataplane's status reports it). Unchecked: for values a
    /// running dataplane already took. Refuses keys that are not live.
    pub fn set_live(&mut self, path: &str, value: &str) -> Result<(), String> {
        let key = KEYS.iter().find(|k| k.path == path).ok_or_else(|| format!("no key {path}"))?;
        let ops = key.live.as_ref().ok_or_else(|| format!("{path} does not change live"))?;
        (ops.set)(self, value).map_err(|e| format!("{path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_ops_exactly_for_live_keys_and_paths_unique() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(k.live.is_some(), k.effect == Effect::Live, "{}", k.path);
            assert!(KEYS[..i].iter().all(|o| o.path != k.path), "{} twice", k.path);
            assert!(!k.help.is_empty(), "{}", k.path);
        }
    }
}
