use super::*;

const GOOD: &str = r#"
eal:
  main_lcore: 0
  hugepages: off
ports:
  - name: p0
    device: "net_tap0,iface=ms0"
    ipv4: "198.18.0.1/24"
    routes:
      - { to: "0.0.0.0/0", via: "198.18.0.254" }
workers:
  lcores: [1]
"#;

fn err(text: &str) -> String {
    format!("{:#}", Config::parse(text, "t.yaml").unwrap_err())
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
        ("main_lcore: 0", "main_lcore: -1", "t.yaml:3:15: ", "u32"),
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
        (GOOD.replace("lcores: [1]", "lcores: [1]\n  rx_burst: 2"), "workers.rx_burst: expected 8.."),
        (GOOD.replace("hugepages: off", "hugepages: off\n  cpus: { 5: 0 }"), "eal.cpus: lcore 5"),
        (GOOD.replace("workers:", "arp: { entry_ttl_s: 0 }\nworkers:"), "arp: entry_ttl_s"),
        (GOOD.replace("workers:", "service: { udp_port: 0 }\nworkers:"), "service.udp_port"),
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
fn port_names_must_be_label_safe() {
    for bad in ["\"q\\\"uote\"", "\"\"", "\"a-very-long-port-name-over-24\""] {
        let e = err(&GOOD.replace("name: p0", &format!("name: {bad}")));
        assert!(e.contains("ports[0].name"), "{bad}: {e}");
    }
}
