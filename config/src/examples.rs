//! Example configs, for the tests of this crate and of the crates that turn
//! a config into their own types. Kept small: every line is something a
//! test relies on (line numbers included: config errors name them).

/// The smallest useful config: one TAP port with a default route, one
/// worker on lcore 1, the main lcore 0, no hugepages.
pub const MINIMAL: &str = r#"
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

/// Every scheduler, flow and memory tunable set away from its default, to
/// append to [`MINIMAL`].
pub const TUNED: &str = r#"
scheduler:
  quantum_bytes: 9000
  starvation_guard: 8
  rx_burst_min: 2
  tx_budget_min: 32
  tx_budget_max: 1024
flow:
  initial_credit_bytes: 131072
  default_policy: block
  policies:
    - { first: 0, last: 999, policy: conflate }
    - { first: 1000, last: 1999, policy: disconnect }
    - { first: 0, last: 4000, policy: drop-oldest }
memory:
  budget_bytes: 1073741824
  stream_queue_bytes_max: 1048576
  shrink_grants_at_percent: 40
  shed_bulk_at_percent: 60
  drop_newest_at_percent: 95
"#;
