//! Cross-field checks: what no single value can get wrong on its own.
//! Each failure names the key path and, where the file sets the value,
//! its line and column (else `errors::locate` finds the key's section).

use crate::errors::{self, ConfigError};
use crate::schema::{at, Config, HandlerKind};
use crate::{
    LCORE_ID_MAX, MEMORY_BUDGET_MAX, PAYLOAD_MAX, POLICY_RANGES_MAX, PORTS_MAX, ROUTES_MAX, RX_BURST_MAX,
    SCHEDULER_LIMIT, WORKERS_MAX, WORKER_SHARE_MIN,
};
use serde_saphyr::Location;

/// A failed cross-field check: what is wrong, and where when known.
#[derive(Debug)]
pub(crate) struct CheckError {
    pub(crate) at: Option<Location>,
    pub(crate) msg: String,
}

impl CheckError {
    /// As an error naming `origin` and the line:column of the offending
    /// value: its own when it carries one, else the key its message starts
    /// with, looked up in `text`; `note` is appended to the message.
    pub(crate) fn located(self, origin: &str, note: &str, text: Option<&str>) -> ConfigError {
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
    /// Cross-field checks that no single value can make.
    pub(crate) fn check(&self) -> Result<(), CheckError> {
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
        if w.realtime_priority > 99 {
            fail!(
                None,
                "workers.realtime_priority: wrote {}; expected 0 (off) or 1 to 99 (SCHED_FIFO)",
                w.realtime_priority
            );
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
}
