//! The config's plain values as the dataplane's crates take them: stream
//! tunables and limits (`ms-streams`), host, ARP and route settings
//! (`ms-netstack`). `ms-config` knows none of these types, so the control
//! plane reads YAML without compiling them.

use crate::config::{ArpConfig, Cidr, Config, FlowPolicy, Mac, PortConfig, UdpChecksum};
use ms_netstack::arp_cache::{Sizes, Timers};
use ms_netstack::host::{ArpSettings, HostConfig, TxChecksum};
use ms_netstack::route::Prefix;
use ms_netstack::MacAddr;
use ms_streams::{Limits, Policy, PolicyRange, Tunables};

/// A flow policy as the stream tables name it.
pub fn policy(p: FlowPolicy) -> Policy {
    match p {
        FlowPolicy::Block => Policy::Block,
        FlowPolicy::DropOldest => Policy::DropOldest,
        FlowPolicy::Conflate => Policy::Conflate,
        FlowPolicy::Disconnect => Policy::Disconnect,
    }
}

/// The settings workers take live, as the stream tables use them.
pub fn tunables(cfg: &Config) -> Tunables {
    let (s, f, m) = (&cfg.scheduler, &cfg.flow, &cfg.memory);
    // Checked to 1..=100: the saturation never happens.
    let percent = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let mut t = Tunables {
        quantum_bytes: s.quantum_bytes.value,
        starvation_guard: s.starvation_guard.value,
        rx_burst_min: u16::try_from(s.rx_burst_min.value).unwrap_or(u16::MAX),
        tx_budget_min: s.tx_budget_min.value,
        tx_budget_max: s.tx_budget_max.value,
        cut_through: s.cut_through.value,
        initial_credit_bytes: f.initial_credit_bytes.value,
        default_policy: policy(f.default_policy),
        stream_queue_bytes_max: m.stream_queue_bytes_max.value,
        shrink_grants_at_percent: percent(m.shrink_grants_at_percent.value),
        shed_bulk_at_percent: percent(m.shed_bulk_at_percent.value),
        drop_newest_at_percent: percent(m.drop_newest_at_percent.value),
        ..Default::default()
    };
    let ranges: Vec<PolicyRange> = f
        .policies
        .value
        .iter()
        .take(ms_streams::tunables::POLICY_RANGES_MAX)
        .map(|r| PolicyRange { first: r.first.value, last: r.last.value, policy: policy(r.policy) })
        .collect();
    // At most POLICY_RANGES_MAX (checked, and taken): cannot fail.
    let _ = t.set_policies(&ranges);
    t
}

/// Each worker's stream table bounds and its share of
/// `memory.budget_bytes` for queued messages.
pub fn stream_limits(cfg: &Config) -> Limits {
    let st = &cfg.streams;
    Limits {
        streams: st.max_per_worker,
        subscribers: st.subscribers_max,
        subscriptions: st.subscriptions_max,
        lifetime_ms: u64::from(st.subscription_lifetime_ms),
        queue_bytes: cfg.worker_queue_bytes(),
    }
}

/// A MAC as the netstack holds it.
pub fn mac(m: Mac) -> MacAddr {
    MacAddr(m.0)
}

/// A prefix as the route table holds it.
pub fn prefix(c: Cidr) -> Prefix {
    Prefix { addr: c.addr, len: c.len }
}

/// The `arp` section as each neighbour table takes it.
pub fn arp(a: &ArpConfig) -> ArpSettings {
    ArpSettings {
        timers: Timers {
            entry_ttl_ms: u64::from(a.entry_ttl_s) * 1000,
            request_interval_ms: u64::from(a.request_interval_ms),
            request_retries: a.request_retries.value,
        },
        sizes: Sizes {
            neighbors_max: a.neighbors_max.value as usize,
            queue_max: a.unresolved_queue_max.value as usize,
            unresolved_max: a.unresolved_neighbors_max.value as usize,
        },
        accept_unsolicited: a.accept_unsolicited,
    }
}

/// Port `pc`'s host settings, with the MAC the port ended up with.
pub fn host(pc: &PortConfig, port_mac: MacAddr, cfg: &Config) -> HostConfig {
    HostConfig {
        mac: port_mac,
        ip: pc.ipv4.value.addr,
        prefix_len: pc.ipv4.value.len,
        service_port: cfg.service.udp_port,
        arp: arp(&cfg.arp),
        udp_checksum: match pc.udp_checksum {
            UdpChecksum::Software => TxChecksum::Full,
            UdpChecksum::Offload => TxChecksum::PseudoHeader,
            UdpChecksum::None => TxChecksum::Zero,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::examples::{MINIMAL as GOOD, TUNED};

    #[test]
    fn tuning_defaults_are_the_streams_defaults() {
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        assert_eq!(tunables(&c), Tunables::default());
        assert_eq!(c.flow.default_policy, FlowPolicy::DropOldest);
        let l = stream_limits(&c);
        assert_eq!((l.streams, l.lifetime_ms, l.queue_bytes), (65_536, 10_000, 256 << 20));
    }

    #[test]
    fn tuning_sections_map_to_tunables() {
        let c = Config::parse(&format!("{}{TUNED}", GOOD.replace("lcores: [1]", "lcores: [1, 2]")), "t.yaml").unwrap();
        let mut want = Tunables {
            quantum_bytes: 9000,
            starvation_guard: 8,
            rx_burst_min: 2,
            tx_budget_min: 32,
            tx_budget_max: 1024,
            initial_credit_bytes: 131_072,
            default_policy: Policy::Block,
            stream_queue_bytes_max: 1 << 20,
            shrink_grants_at_percent: 40,
            shed_bulk_at_percent: 60,
            drop_newest_at_percent: 95,
            ..Tunables::default()
        };
        let r = |first, last, policy| PolicyRange { first, last, policy };
        want.set_policies(&[
            r(0, 999, Policy::Conflate),
            r(1000, 1999, Policy::Disconnect),
            r(0, 4000, Policy::DropOldest),
        ])
        .unwrap();
        let t = tunables(&c);
        assert_eq!(t, want);
        assert_eq!(
            (t.policy_of(500), t.policy_of(1500), t.policy_of(3000), t.policy_of(5000)),
            (Policy::Conflate, Policy::Disconnect, Policy::DropOldest, Policy::Block)
        );
        assert_eq!(stream_limits(&c).queue_bytes, 512 << 20, "1 GiB over two workers");
    }

    #[test]
    fn live_apply_takes_the_new_tunables() {
        let running = Config::parse(GOOD, "t.yaml").unwrap();
        let new = Config::parse(&format!("{GOOD}{TUNED}"), "n.yaml").unwrap();
        let next = running.with_live(&new, "n.yaml").unwrap();
        assert_eq!(tunables(&next), tunables(&new));
        assert_eq!(next.memory.budget_bytes.value, 256 << 20);
    }

    #[test]
    fn policy_names_are_the_streams_names() {
        for name in ["block", "drop-oldest", "conflate", "disconnect"] {
            let c = Config::parse(&format!("{GOOD}flow: {{ default_policy: {name} }}\n"), "t.yaml").unwrap();
            assert_eq!(tunables(&c).default_policy.name(), name);
        }
    }

    #[test]
    fn ports_map_to_host_settings() {
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        let pc = &c.ports()[0];
        let h = host(pc, MacAddr([2, 0, 0, 0, 0, 1]), &c);
        assert_eq!((h.ip, h.prefix_len, h.service_port), (pc.ipv4.value.addr, 24, 9000));
        assert_eq!(h.arp.sizes.neighbors_max, 4096);
        let p = prefix(pc.routes[0].to);
        assert_eq!((p.addr, p.len), (std::net::Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(mac("02:4d:53:00:00:01".parse().unwrap()), MacAddr([2, 0x4d, 0x53, 0, 0, 1]));
    }
}
