use super::*;
use std::net::Ipv4Addr;

use crate::examples::{MINIMAL as GOOD, TUNED};

fn err(text: &str) -> String {
    match Config::parse(text, "t.yaml") {
        Ok(_) => "(accepted)".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_config_and_defaults() {
    let c = Config::parse(GOOD, "t.yaml").unwrap();
    assert_eq!(c.service.udp_port, 9000);
    assert_eq!(c.eal.hugepages, Hugepages::Off);
    assert_eq!(c.ports()[0].device, Device::Vdev { name: "net_tap0".into(), args: "iface=ms0".into() });
    assert_eq!(c.ports()[0].ipv4.value, Cidr { addr: Ipv4Addr::new(198, 18, 0, 1), len: 24 });
    assert_eq!(c.mempool, MempoolConfig::default());
}

#[test]
fn arp_section_defaults_and_statics() {
    let c = Config::parse(GOOD, "t.yaml").unwrap();
    assert_eq!((c.arp.neighbors_max.value, c.arp.unresolved_queue_max.value), (4096, 4));
    assert!(!c.arp.accept_unsolicited && c.arp.statics.is_empty());
    let text = GOOD.replace(
        "workers:",
        "arp:\n  accept_unsolicited: true\n  static:\n    - { ip: \"198.18.0.7\", mac: \"02:00:00:00:00:07\" }\nworkers:",
    );
    let s = Config::parse(&text, "t.yaml").unwrap();
    assert!(s.arp.accept_unsolicited);
    assert_eq!(s.arp.statics[0].ip.value.0, Ipv4Addr::new(198, 18, 0, 7));
    assert_eq!(c.diff(&s).restart, ["arp"], "the arp section needs a restart");
    let moved = format!("# a comment moves every position\n{text}");
    assert!(s.diff(&Config::parse(&moved, "t.yaml").unwrap()).restart.is_empty(), "same values, no change");
}

#[test]
fn shipped_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/memorystreamer.yaml");
    Config::load(Path::new(path)).unwrap();
}

#[test]
fn unknown_key_has_line_and_column() {
    let bad = GOOD.replace("  lcores: [1]", "  lcores: [1]\n  lcroes: [2]");
    let e = err(&bad);
    assert!(e.starts_with("t.yaml:13:3: "), "{e}");
    assert!(e.contains("unknown field `lcroes`"), "{e}");
    assert!(e.contains("expected one of lcores, rx_burst"), "{e}");
}

#[test]
fn bad_values_have_line_and_column() {
    let cases = [
        ("\"198.18.0.1/24\"", "\"198.18.0.1/33\"", "t.yaml:8:11: ", "address/length"),
        ("\"198.18.0.254\"", "\"198.18.0\"", "t.yaml:10:33: ", "dotted IPv4"),
        ("\"net_tap0,iface=ms0\"", "\"tap0\"", "t.yaml:7:13: ", "PCI address"),
        ("hugepages: off", "hugepages: maybe", "t.yaml:4:14: ", "unknown variant"),
        (
            "main_lcore: 0",
            "main_lcore: -1",
            "t.yaml:3:15: ",
            "eal.main_lcore: wrote \"-1\"; expected a whole number from 0 to 4294967295",
        ),
    ];
    for (from, to, at, what) in cases {
        let e = err(&GOOD.replace(from, to));
        assert!(e.starts_with(at), "{to}: {e}");
        assert!(e.contains(what), "{to}: {e}");
    }
}

#[test]
fn missing_section_is_named() {
    let e = err("eal: {}\nports: []\n");
    assert!(e.contains("missing field `workers`"), "{e}");
}

#[test]
fn syntax_error_has_location() {
    let e = err("eal: [\n");
    assert!(e.starts_with("t.yaml:"), "{e}");
}

#[test]
fn cross_field_checks_name_the_path() {
    let cases = [
        (GOOD.replace("lcores: [1]", "lcores: [0]"), "t.yaml:12:11: workers.lcores[0]: lcore 0 is eal.main_lcore"),
        (GOOD.replace("lcores: [1]", "lcores: [1, 1]"), "listed twice"),
        (GOOD.replace("lcores: [1]", "lcores: []"), "workers.lcores: expected 1 to"),
        (
            GOOD.replace("198.18.0.254", "198.19.0.254"),
            "t.yaml:10:33: ports[0].routes[0].via: gateway 198.19.0.254 is not another host",
        ),
        (GOOD.replace("198.18.0.1/24", "198.18.0.1/32"), "ports[0].ipv4"),
        (GOOD.replace("198.18.0.1/24", "198.18.0.0/24"), "ports[0].ipv4: 198.18.0.0/24 is not a host address"),
        (GOOD.replace("198.18.0.254", "198.18.0.1"), "is not another host"),
        (GOOD.replace("198.18.0.254", "198.18.0.255"), "is not another host"),
        (
            GOOD.replace("lcores: [1]", "lcores: [1]\n  rx_burst: 2"),
            "t.yaml:13:13: workers.rx_burst: wrote 2; expected 8 to 512",
        ),
        (GOOD.replace("hugepages: off", "hugepages: off\n  cpus: { 5: 0 }"), "eal.cpus: lcore 5"),
        (GOOD.replace("workers:", "arp: { entry_ttl_s: 0 }\nworkers:"), "arp: entry_ttl_s"),
        (GOOD.replace("workers:", "service: { udp_port: 0 }\nworkers:"), "service.udp_port"),
        (
            GOOD.replace("workers:", "arp:\n  neighbors_max: 8\nworkers:"),
            "t.yaml:12:18: arp.neighbors_max: expected 16..=1048576 neighbours, got 8",
        ),
        (
            GOOD.replace("workers:", "arp:\n  unresolved_queue_max: 0\nworkers:"),
            "t.yaml:12:25: arp.unresolved_queue_max: expected 1..=64 packets",
        ),
        (
            GOOD.replace("workers:", "arp:\n  neighbors_max: 64\n  unresolved_neighbors_max: 40\nworkers:"),
            "t.yaml:12:18: arp.neighbors_max: 64 must be at least twice",
        ),
        (
            GOOD.replace(
                "workers:",
                "arp:\n  static: [ { ip: \"198.19.0.5\", mac: \"02:00:00:00:00:05\" } ]\nworkers:",
            ),
            "t.yaml:12:19: arp.static[0].ip: 198.19.0.5 is not another host on any port's subnet",
        ),
        (
            GOOD.replace(
                "workers:",
                "arp:\n  static: [ { ip: \"198.18.0.1\", mac: \"02:00:00:00:00:05\" } ]\nworkers:",
            ),
            "arp.static[0].ip: 198.18.0.1 is not another host",
        ),
        (
            GOOD.replace(
                "workers:",
                "arp:\n  static: [ { ip: \"198.18.0.5\", mac: \"ff:ff:ff:ff:ff:ff\" } ]\nworkers:",
            ),
            "t.yaml:12:",
        ),
        (
            GOOD.replace(
                "  - name: p0",
                "  - name: p1\n    device: \"net_tap0,iface=b\"\n    ipv4: \"198.18.1.1/24\"\n  - name: p0",
            ),
            "ports[1].device: net_tap0 is used by another port",
        ),
        (GOOD.replace("workers:", "mempool: { mbufs: 100 }\nworkers:"), "mempool.mbufs: 100 is too few"),
    ];
    for (text, want) in cases {
        let e = err(&text);
        assert!(e.contains(want), "want {want:?} in {e}");
    }
}

#[test]
fn pci_and_vdev_devices() {
    assert_eq!("0000:03:00.0".parse::<Device>(), Ok(Device::Pci("0000:03:00.0".into())));
    assert_eq!("0000:3B:00.1".parse::<Device>(), Ok(Device::Pci("0000:3b:00.1".into())), "DPDK names are lower case");
    assert!("0000:03:00".parse::<Device>().is_err());
    assert!("net_".parse::<Device>().is_err());
    assert!("net_pcap0,rx_pcap=/tmp/a.pcap,tx_pcap=/tmp/b.pcap".parse::<Device>().is_ok());
}

#[test]
fn diff_ignores_layout_and_names_sections() {
    let a = Config::parse(GOOD, "t.yaml").unwrap();
    let b = Config::parse(&format!("# a comment\n{GOOD}"), "t.yaml").unwrap();
    assert!(a.diff(&b).is_empty(), "{:?}", a.diff(&b));
    let c = Config::parse(&GOOD.replace("198.18.0.254", "198.18.0.253"), "t.yaml").unwrap();
    assert_eq!(a.diff(&c).restart, ["ports"]);
    let d = Config::parse(
        &format!("{GOOD}streams: {{ subscription_lifetime_ms: 500 }}\ncontrolplane: {{ prometheus_listen: null }}\n"),
        "t.yaml",
    )
    .unwrap();
    let diff = a.diff(&d);
    assert_eq!(diff.live, ["streams.subscription_lifetime_ms"]);
    assert!(diff.restart.is_empty() && diff.controlplane_restart, "{diff:?}");
}

#[test]
fn diff_names_follow_the_keys_table() {
    use keys::{live_keys, Effect, KEYS};
    let live: Vec<&str> = live_keys().map(|k| k.diff_name()).collect();
    assert_eq!(
        live,
        [
            "streams.subscription_lifetime_ms",
            "scheduler",
            "scheduler",
            "scheduler",
            "scheduler",
            "scheduler",
            "scheduler",
            "flow",
            "flow",
            "flow",
            "memory.stream_queue_bytes_max",
            "memory.shrink_grants_at_percent",
            "memory.shed_bulk_at_percent",
            "memory.drop_newest_at_percent"
        ]
    );
    let cp: Vec<&str> = KEYS.iter().filter(|k| k.effect == Effect::ControlPlaneRestart).map(|k| k.section()).collect();
    assert_eq!(cp, ["controlplane", "controlplane"]);
    // Every section of the file has its keys in the table.
    for section in ["eal", "ports", "workers", "service", "arp", "mempool", "telemetry", "streams", "memory"] {
        assert!(KEYS.iter().any(|k| k.section() == section), "{section}");
    }
}

#[test]
fn live_keys_set_from_the_dataplanes_json() {
    let mut c = Config::parse(GOOD, "t.yaml").unwrap();
    c.set_live("streams.subscription_lifetime_ms", "2500").unwrap();
    c.set_live("flow.default_policy", "\"conflate\"").unwrap();
    c.set_live("flow.policies", r#"[{"first":0,"last":9,"policy":"block"}]"#).unwrap();
    c.set_live("scheduler.quantum_bytes", "9000").unwrap();
    assert_eq!(c.streams.subscription_lifetime_ms, 2500);
    assert_eq!(c.flow.default_policy, FlowPolicy::Conflate);
    assert_eq!((c.flow.policies.value[0].last.value, c.flow.policies.value[0].policy), (9, FlowPolicy::Block));
    assert_eq!(c.scheduler.quantum_bytes.value, 9000);
    assert!(c.set_live("memory.budget_bytes", "1").unwrap_err().contains("does not change live"));
    assert!(c.set_live("nope", "1").is_err());
    assert!(c.set_live("scheduler.quantum_bytes", "\"x\"").is_err());
}

#[test]
fn port_names_must_be_label_safe() {
    for bad in ["\"q\\\"uote\"", "\"\"", "\"a-very-long-port-name-over-24\""] {
        let e = err(&GOOD.replace("name: p0", &format!("name: {bad}")));
        assert!(e.contains("ports[0].name"), "{bad}: {e}");
    }
}

#[test]
fn tuning_rules_have_line_column_and_key() {
    let payload_max = ms_wire::PAYLOAD_MAX;
    let too_many: String =
        (0..=POLICY_RANGES_MAX).map(|i| format!("    - {{ first: {i}, last: {i}, policy: block }}\n")).collect();
    // GOOD ends at line 12, so the section starts at line 13 and its
    // first key is on line 14.
    let cases = [
        ("scheduler:\n  quantum_bytes: 63\n", "t.yaml:14:18: scheduler.quantum_bytes: expected 64..=65536"),
        ("scheduler:\n  quantum_bytes: 65537\n", "t.yaml:14:18: scheduler.quantum_bytes: expected 64..=65536"),
        ("scheduler:\n  starvation_guard: 0\n", "t.yaml:14:21: scheduler.starvation_guard: expected 1..=1024"),
        ("scheduler:\n  starvation_guard: 1025\n", "t.yaml:14:21: scheduler.starvation_guard: expected 1..=1024"),
        ("scheduler:\n  rx_burst_min: 0\n", "t.yaml:14:17: scheduler.rx_burst_min: expected 1..=workers.rx_burst (32)"),
        (
            "scheduler:\n  rx_burst_min: 33\n",
            "t.yaml:14:17: scheduler.rx_burst_min: expected 1..=workers.rx_burst (32)",
        ),
        ("scheduler:\n  tx_budget_max: 65537\n", "t.yaml:14:18: scheduler.tx_budget_max: expected 1..=65536"),
        (
            "scheduler:\n  tx_budget_min: 0\n",
            "t.yaml:14:18: scheduler.tx_budget_min: expected 1..=scheduler.tx_budget_max",
        ),
        // tx_budget_min keeps its default (64): the error points at the key that is set.
        (
            "scheduler:\n  tx_budget_max: 32\n",
            "t.yaml:14:18: scheduler.tx_budget_max: 32 is below scheduler.tx_budget_min (64, the default)",
        ),
        ("scheduler:\n  quantum: 1500\n", "t.yaml:14:3: scheduler: unknown field `quantum`"),
        ("flow:\n  initial_credit_bytes: 1000\n", "t.yaml:14:25: flow.initial_credit_bytes: expected at least"),
        ("flow:\n  default_policy: drop_oldest\n", "t.yaml:14:19: flow.default_policy: unknown variant `drop_oldest`"),
        (
            "flow:\n  policies:\n    - { first: 5, last: 4, policy: block }\n",
            "t.yaml:15:16: flow.policies[0]: first (5) is above last (4)",
        ),
        ("flow:\n  policies:\n    - { first: 5, last: 6 }\n", "t.yaml:15:19: missing field `policy`"),
        (
            "memory:\n  budget_bytes: 1099511627777\n",
            "t.yaml:14:17: memory.budget_bytes: expected at most 1099511627776",
        ),
        (
            "memory:\n  budget_bytes: 524288\n",
            "t.yaml:14:17: memory.budget_bytes: 524288 split over 1 worker is 524288 bytes each",
        ),
        ("memory:\n  stream_queue_bytes_max: 1000\n", "t.yaml:14:27: memory.stream_queue_bytes_max: expected at least"),
        (
            "memory:\n  budget_bytes: 1048576\n  stream_queue_bytes_max: 2097152\n",
            "t.yaml:15:27: memory.stream_queue_bytes_max: 2097152 is above a worker's share",
        ),
        ("memory:\n  shrink_grants_at_percent: 0\n", "t.yaml:14:29: memory.shrink_grants_at_percent: expected 1..=100"),
        ("memory:\n  shed_bulk_at_percent: 101\n", "t.yaml:14:25: memory.shed_bulk_at_percent: expected 1..=100"),
        ("memory:\n  drop_newest_at_percent: 0\n", "t.yaml:14:27: memory.drop_newest_at_percent: expected 1..=100"),
        // The neighbour keeps its default: the error points at the key that is set.
        (
            "memory:\n  shrink_grants_at_percent: 80\n",
            "t.yaml:14:29: memory.shrink_grants_at_percent: 80 is above memory.shed_bulk_at_percent (75)",
        ),
        (
            "memory:\n  shed_bulk_at_percent: 40\n",
            "t.yaml:14:25: memory.shed_bulk_at_percent: 40 is below memory.shrink_grants_at_percent (50, the default)",
        ),
        (
            "memory:\n  drop_newest_at_percent: 70\n",
            "t.yaml:14:27: memory.drop_newest_at_percent: 70 is below memory.shed_bulk_at_percent (75, the default)",
        ),
    ];
    let both = "memory:\n  shed_bulk_at_percent: 60\n  drop_newest_at_percent: 50\n";
    let e = err(&format!("{GOOD}{both}"));
    assert!(
        e.starts_with("t.yaml:14:25: memory.shed_bulk_at_percent: 60 is above memory.drop_newest_at_percent (50)"),
        "{e}"
    );
    let e = err(&format!("{GOOD}scheduler:\n  tx_budget_min: 100\n  tx_budget_max: 99\n"));
    assert!(
        e.starts_with("t.yaml:14:18: scheduler.tx_budget_min: expected 1..=scheduler.tx_budget_max (99), got 100"),
        "{e}"
    );
    for (section, want) in cases {
        let e = err(&format!("{GOOD}{section}"));
        assert!(e.starts_with(want), "want {want:?} at the start of {e}");
    }
    let e = err(&format!("{GOOD}flow:\n  policies:\n{too_many}"));
    assert!(e.starts_with("t.yaml:15:5: flow.policies: expected at most 64 ranges, got 65"), "{e}");
    // The operator is told the bound, whatever PAYLOAD_MAX is today.
    let e = err(&format!("{GOOD}flow:\n  initial_credit_bytes: {}\n", payload_max - 1));
    assert!(e.contains(&format!("expected at least {payload_max}")), "{e}");
    Config::parse(&format!("{GOOD}flow:\n  initial_credit_bytes: {payload_max}\n"), "t.yaml").unwrap();
    // Each worker's share of the budget counts.
    let e = err(&format!("{}memory:\n  budget_bytes: 1572864\n", GOOD.replace("lcores: [1]", "lcores: [1, 2]")));
    assert!(
        e.starts_with("t.yaml:14:17: memory.budget_bytes: 1572864 split over 2 workers is 786432 bytes each"),
        "{e}"
    );
}

#[test]
fn diff_classifies_tuning_keys() {
    let base = Config::parse(GOOD, "t.yaml").unwrap();
    let with = |s: &str| Config::parse(&format!("{GOOD}{s}"), "t.yaml").unwrap();
    // Writing the defaults out is no change.
    let same = with("scheduler: { quantum_bytes: 1500 }\nflow: { default_policy: drop-oldest }\nmemory: { budget_bytes: 268435456 }\n");
    assert!(base.diff(&same).is_empty(), "{:?}", base.diff(&same));
    let d = base.diff(&with("memory: { budget_bytes: 536870912 }\n"));
    assert_eq!((d.live, d.restart), (vec![], vec!["memory.budget_bytes"]));
    let d = base
        .diff(&with("scheduler: { starvation_guard: 4 }\nflow:\n  policies: [{ first: 1, last: 2, policy: block }]\n"));
    assert_eq!((d.live, d.restart), (vec!["scheduler", "flow"], vec![]));
    let d = base.diff(&with(
        "memory: { stream_queue_bytes_max: 4096, shrink_grants_at_percent: 10, shed_bulk_at_percent: 20, \
         drop_newest_at_percent: 30, budget_bytes: 134217728 }\n",
    ));
    assert_eq!(
        d.live,
        [
            "memory.stream_queue_bytes_max",
            "memory.shrink_grants_at_percent",
            "memory.shed_bulk_at_percent",
            "memory.drop_newest_at_percent"
        ]
    );
    assert_eq!(d.restart, ["memory.budget_bytes"]);
    // A policy range that differs only in its policy is a change.
    let a = with("flow:\n  policies: [{ first: 1, last: 2, policy: block }]\n");
    let b = with("flow:\n  policies: [{ first: 1, last: 2, policy: conflate }]\n");
    assert_eq!(a.diff(&b).live, ["flow"]);
}

#[test]
fn live_keys_are_checked_against_the_running_restart_keys() {
    let running = Config::parse(GOOD, "t.yaml").unwrap();
    // Valid on its own: 512 MiB under a 1 GiB budget.
    let new = Config::parse(
        &format!("{GOOD}memory:\n  budget_bytes: 1073741824\n  stream_queue_bytes_max: 536870912\n"),
        "n.yaml",
    )
    .unwrap();
    let e = format!("{:#}", running.with_live(&new, "n.yaml").unwrap_err());
    assert!(e.starts_with("n.yaml:15:27: memory.stream_queue_bytes_max: 536870912 is above"), "{e}");
    assert!(e.contains("change only at a restart"), "{e}");
    // Live keys are taken, restart keys stay.
    let new = Config::parse(&format!("{GOOD}{TUNED}"), "n.yaml").unwrap();
    let next = running.with_live(&new, "n.yaml").unwrap();
    assert!(next.diff(&new).live.is_empty(), "{:?}", next.diff(&new));
    assert_eq!(next.memory.budget_bytes.value, 256 << 20);
    assert_eq!(running.diff(&next).restart, Vec::<&str>::new());
}

/// Words from the YAML library and Rust that mean nothing to an operator.
const JARGON: [&str; 7] = [
    "invalid u32",
    "sequence start",
    "mapping start",
    "DuplicateKeyPolicy",
    "ScalarBytes",
    "did not contain valid UTF-8",
    "Options",
];

/// `file:LINE:COLUMN: ` at the start, numbers both.
fn has_line_column(e: &str, file: &str) -> bool {
    let Some(rest) = e.strip_prefix(&format!("{file}:")) else { return false };
    let mut parts = rest.splitn(3, ':');
    let num = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    num(parts.next()) && num(parts.next())
}

#[test]
fn every_error_has_line_column_and_plain_words() {
    let huge = "x".repeat(errors::FILE_BYTES_MAX + 1);
    let cases: Vec<(String, &str)> = vec![
        // The issue's own examples.
        (
            GOOD.replace("lcores: [1]", "lcores: [1]\n  rx_burst: 7"),
            "t.yaml:13:13: workers.rx_burst: wrote 7; expected 8 to 512",
        ),
        (
            GOOD.replace("lcores: [1]", "lcores: [1]\n  realtime_priority: 100"),
            "t.yaml:13:22: workers.realtime_priority: wrote 100; expected 0 (off) or 1 to 99 (SCHED_FIFO)",
        ),
        (
            GOOD.replace("hugepages: off", "hugepages: off\n  memory_mb: 10"),
            "t.yaml:5:14: eal.memory_mb: wrote 10; expected at least 64",
        ),
        // Wrong type.
        (
            GOOD.replace("main_lcore: 0", "main_lcore: x"),
            "t.yaml:3:15: eal.main_lcore: wrote \"x\"; expected a whole number from 0 to 4294967295",
        ),
        (GOOD.replace("lcores: [1]", "lcores: 1"), "t.yaml:12:11: workers.lcores: wrote \"1\"; expected a list"),
        (
            GOOD.replace("workers:\n  lcores: [1]", "workers: 5"),
            "t.yaml:11:10: workers: wrote \"5\"; expected a section",
        ),
        // Out of range for its type, and for its key.
        (
            GOOD.replace("main_lcore: 0", "main_lcore: 99999999999"),
            "t.yaml:3:15: eal.main_lcore: wrote \"99999999999\"; expected a whole number",
        ),
        (GOOD.replace("main_lcore: 0", "main_lcore: 200"), "t.yaml:3:15: eal.main_lcore: wrote 200; expected 0 to 127"),
        (
            GOOD.replace("ipv4:", "rx_desc: 10\n    ipv4:"),
            "t.yaml:8:14: ports[0].rx_desc: wrote 10; expected 64 to 32768",
        ),
        (
            format!("{GOOD}streams: {{ subscribers_max: 0 }}\n"),
            "t.yaml:13:29: streams.subscribers_max: wrote 0; expected 1 to 1048576",
        ),
        (
            format!("{GOOD}memory: {{ budget_bytes: 2000000000000 }}\n"),
            "t.yaml:13:25: memory.budget_bytes: expected at most",
        ),
        // A default that no longer fits points at its section.
        (
            format!("{}mempool: {{ cache: 256 }}\n", GOOD.replace("lcores: [1]", "lcores: [1, 2, 3]")),
            "t.yaml:13:10: mempool.mbufs: 8191 is too few for the rings and caches; expected at least 11104 \
             (mempool.mbufs is not set in this file, so this is its default; set it)",
        ),
        (
            GOOD.replace("lcores: [1]", "lcores: [1, 2, 3]"),
            "t.yaml:1:1: mempool.mbufs: 8191 is too few for the rings and caches; expected at least 11104",
        ),
        // Unknown and duplicate keys.
        (
            GOOD.replace("  lcores: [1]", "  lcores: [1]\n  lcroes: [2]"),
            "t.yaml:13:3: unknown field `lcroes`, expected one of lcores, rx_burst",
        ),
        (
            GOOD.replace("main_lcore: 0", "main_lcore: 0\n  main_lcore: 0"),
            "t.yaml:4:3: \"main_lcore\" is set twice in this section; keep one",
        ),
        (format!("{GOOD}workers: {{ lcores: [2] }}\n"), "t.yaml:13:1: \"workers\" is set twice"),
        // Syntax.
        (GOOD.replace("eal:", "eal: ["), "t.yaml:"),
        (GOOD.replace("  main_lcore: 0", "  main_lcore: 0\n main: 1"), "t.yaml:"),
        // Far too much text for a config.
        (GOOD.replace("name: p0", &format!("name: {huge}")), "t.yaml:6:11: the values in this file add up to"),
    ];
    let mut wrong = Vec::new();
    for (text, want) in &cases {
        let e = err(text);
        if !e.starts_with(want) {
            wrong.push(format!("want {want:?} at the start of\n     {}", &e[..e.len().min(300)]));
            continue;
        }
        assert!(has_line_column(&e, "t.yaml"), "no line:column in {e}");
        for j in JARGON {
            assert!(!e.contains(j), "jargon {j:?} in {e}");
        }
        assert!(e.len() < 400, "message too long ({} bytes): {}", e.len(), &e[..400]);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn non_utf8_file_has_line_column() {
    let path = std::env::temp_dir().join(format!("ms-config-utf8-{}.yaml", std::process::id()));
    let mut bytes = GOOD.replace("name: p0", "name: p\u{e9}0").into_bytes();
    // Latin-1 é instead of UTF-8's two bytes.
    let at = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    bytes.splice(at..at + 2, [0xe9]);
    std::fs::write(&path, &bytes).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    let file = path.display().to_string();
    assert!(e.starts_with(&format!("{file}:6:12: byte 0xe9 is not UTF-8 text")), "{e}");
    for j in JARGON {
        assert!(!e.contains(j), "jargon {j:?} in {e}");
    }
}

#[test]
fn long_values_are_cut_in_messages() {
    let e = err(&GOOD.replace("name: p0", &format!("name: {}", "a".repeat(10_000))));
    assert!(e.starts_with("t.yaml:8:11: ports[0].name: wrote \"aaaa"), "{e}");
    assert!(e.contains("(10000 characters)") && e.len() < 300, "{e}");
}

#[test]
fn lcores_must_be_online_on_this_host() {
    let online = host::parse_cpu_list("0-1\n").unwrap();
    assert_eq!(online, [0, 1].into());
    assert_eq!(host::parse_cpu_list("0-3,8,10-11").unwrap().len(), 7);
    assert!(host::parse_cpu_list("3-1").is_none());
    let text = GOOD.replace("lcores: [1]", "lcores: [1, 2]");
    let c = Config::parse(&text, "t.yaml").unwrap();
    let e = c.check_cpus(&online, "t.yaml", &text).unwrap_err().to_string();
    assert!(
        e.starts_with("t.yaml:12:11: workers.lcores[1]: lcore 2 runs on CPU 2, which this machine does not have online (online: 0-1)"),
        "{e}"
    );
    assert!(e.contains("eal.cpus") && e.contains("--for-other-host"), "{e}");
    // Mapped onto an online CPU, it is fine.
    let mapped = text.replace("hugepages: off", "hugepages: off\n  cpus: { 2: 0 }");
    let c = Config::parse(&mapped, "t.yaml").unwrap();
    c.check_cpus(&online, "t.yaml", &mapped).unwrap();
    // The main lcore is checked too, at its own key.
    let main = GOOD.replace("main_lcore: 0", "main_lcore: 5");
    let c = Config::parse(&main, "t.yaml").unwrap();
    let e = c.check_cpus(&online, "t.yaml", &main).unwrap_err().to_string();
    assert!(e.starts_with("t.yaml:3:15: eal.main_lcore: lcore 5 runs on CPU 5"), "{e}");
}

#[test]
fn readme_marks_the_live_keys_of_the_table() {
    use keys::{live_keys, Effect, KEYS};
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let rows: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .filter(|(key, _)| KEYS.iter().any(|k| k.path == *key))
        .collect();
    for (key, rest) in &rows {
        let k = KEYS.iter().find(|k| k.path == *key).unwrap();
        let marked = rest.split('|').nth(1).is_some_and(|m| m.trim_start().starts_with("live;"));
        assert_eq!(marked, k.effect == Effect::Live, "README's row for {key}");
    }
    for k in live_keys() {
        assert!(rows.iter().any(|(key, _)| *key == k.path), "README has no row for the live key {}", k.path);
    }
}
