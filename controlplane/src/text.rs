//! What `msctl` and the daemon say, as pure functions: log level checks,
//! link wording, dataplane liveness, the `stats` and `streams top` tables.

use std::fmt::Write;

/// Levels a log filter may use.
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Accepts `debug` or `info,ms_dataplane=debug` (tracing's filter syntax,
/// restricted to levels and `target=level`); refuses anything else with
/// the allowed forms.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    let allowed = || {
        format!("expected one of {} or a comma-separated list such as info,ms_dataplane=debug", LOG_LEVELS.join(", "))
    };
    if filter.trim().is_empty() {
        return Err(format!("empty log level; {}", allowed()));
    }
    for directive in filter.split(',') {
        let level = directive.rsplit_once('=').map_or(directive, |(target, level)| {
            if target.is_empty() || !target.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b)) {
                ""
            } else {
                level
            }
        });
        if !LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(format!("log level {filter:?}: {directive:?} is not a level; {}", allowed()));
        }
    }
    Ok(())
}

/// The link as an operator should read it. Drivers that cannot see the
/// wire (net_tap once its kernel interface moves to another network
/// namespace asks the kernel by name and finds nothing) report "down"
/// for a port that works, so traffic overrides them.
pub fn link_words(driver_says_up: bool, driver: &str, rx_packets_per_s: f64) -> String {
    if driver_says_up {
        "up".into()
    } else if rx_packets_per_s > 0.0 {
        "up (carrying traffic; the driver reports down)".into()
    } else if driver == "net_tap" {
        "unknown (net_tap reports down when its interface is in another network namespace; no traffic now)".into()
    } else {
        "down".into()
    }
}

/// The main lcore beats every this many ms (ms-dataplane's app.rs).
pub const HEARTBEAT_PERIOD_MS: f64 = 20.0;
/// A heartbeat older than this many periods means the dataplane stopped
/// or hangs: well above scheduling noise on a busy machine, well below
/// the second an operator would notice.
pub const HEARTBEAT_PERIODS_STALE: f64 = 10.0;

/// Whether the dataplane that owns the stats segment is alive: its
/// process exists (`pid_alive`) and its heartbeat is fresh. `Err` says
/// why not, in words.
pub fn liveness(pid: u32, pid_alive: bool, heartbeat_age_s: f64) -> Result<(), String> {
    let stale_s = HEARTBEAT_PERIOD_MS * HEARTBEAT_PERIODS_STALE / 1000.0;
    if !pid_alive {
        return Err(format!("the dataplane (pid {pid}) is gone; last heartbeat {heartbeat_age_s:.1} s ago"));
    }
    if heartbeat_age_s > stale_s {
        return Err(format!(
            "the dataplane (pid {pid}) has not beaten for {heartbeat_age_s:.1} s (it beats every {HEARTBEAT_PERIOD_MS:.0} ms): \
             stopped or hung"
        ));
    }
    Ok(())
}

/// Whether process `pid` exists (signal 0 checks without sending).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// One line under `msctl streams top` saying what its columns mean.
pub const TOP_LEGEND: &str = "messages (est): space-saving estimate per worker, summed (may over-count); \
                              at least: messages certainly published on the stream";

/// The `streams top` table: (stream, estimate, at least) rows under a
/// header, columns as wide as their widest cell, then the legend.
pub fn top_table(rows: &[(u64, u64, u64)]) -> String {
    let head = ["stream", "messages (est)", "at least"];
    let cells: Vec<[String; 3]> = rows.iter().map(|(s, n, m)| [s.to_string(), n.to_string(), m.to_string()]).collect();
    let width = |i: usize| cells.iter().map(|c| c[i].len()).chain([head[i].len()]).max().unwrap_or(0);
    let w = [width(0), width(1), width(2)];
    let mut out = String::new();
    let mut line = |c: [&str; 3]| {
        let _ = writeln!(out, "{:>w0$}  {:>w1$}  {:>w2$}", c[0], c[1], c[2], w0 = w[0], w1 = w[1], w2 = w[2]);
    };
    line(head);
    for c in &cells {
        line([&c[0], &c[1], &c[2]]);
    }
    if rows.is_empty() {
        out.push_str("(no stream has published messages yet)\n");
    }
    out.push_str(TOP_LEGEND);
    out.push('\n');
    out
}

/// One counter as `msctl stats` gets it from the daemon: its key and value
/// in `total`, and what the stats directory says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatRow {
    /// Key in the daemon's `total` (`name` or `name:label=value`).
    pub key: String,
    /// Base name.
    pub name: String,
    /// `counter`, `gauge`, `bucket` or `info`.
    pub kind: String,
    /// What one unit counts.
    pub unit: String,
    /// A label has an empty value: the slot stands for nothing (a port the
    /// config does not have).
    pub absent: bool,
    /// Total over the workers.
    pub value: u64,
    /// Change per second since the previous refresh (`--watch`).
    pub per_s: Option<f64>,
}

/// Whether `msctl stats` shows a row. Zero drop reasons, histogram
/// buckets, ranked sketches (`msctl streams top|affected`) and absent
/// ports would drown the table; `--json` has them all.
pub fn shown_in_stats(row: &StatRow) -> bool {
    let sketch = row.kind == "bucket" || row.kind == "info";
    let quiet_drop = row.value == 0 && row.name.starts_with("drop_");
    !(sketch || row.absent || quiet_drop)
}

/// The `msctl stats` table: counter, total, per second (when known), unit.
pub fn stats_table(rows: &[StatRow]) -> String {
    let rates = rows.iter().any(|r| r.per_s.is_some());
    let mut out = String::new();
    let _ = writeln!(out, "{:<34}{:>16}{:>14}  unit", "counter", "total", if rates { "per second" } else { "" });
    for r in rows.iter().filter(|r| shown_in_stats(r)) {
        let per_s = r.per_s.map(|p| format!("{p:.0}")).unwrap_or_default();
        let _ = writeln!(out, "{:<34}{:>16}{per_s:>14}  {}", r.key, r.value, r.unit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_refuse_empty_and_unknown_with_the_list() {
        for ok in ["debug", "INFO", "info,ms_dataplane=debug", "ms_controlplane::server=trace", "off"] {
            check_log_level(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", " ", "verbose", "debug,", "=debug", "info,x=loud"] {
            let e = check_log_level(bad).unwrap_err();
            assert!(e.contains("expected one of error, warn, info, debug, trace, off"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_port_carrying_traffic_is_never_down() {
        assert_eq!(link_words(true, "net_tap", 0.0), "up");
        assert!(link_words(false, "net_tap", 12.0).starts_with("up (carrying traffic"));
        assert!(link_words(false, "net_tap", 0.0).starts_with("unknown"));
        assert_eq!(link_words(false, "net_ixgbe", 0.0), "down");
    }

    #[test]
    fn a_dead_or_silent_dataplane_is_down() {
        liveness(7, true, 0.02).unwrap();
        assert!(liveness(7, false, 0.02).unwrap_err().contains("pid 7) is gone"));
        assert!(liveness(7, true, 0.5).unwrap_err().contains("has not beaten for 0.5 s"));
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
    }

    #[test]
    fn top_columns_line_up_with_wide_numbers() {
        let rows = [(u64::MAX, 1_250, 1), (7, 123_456_789_012_345_678, 99_999_999_999_999_999)];
        let t = top_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        // Right-aligned: every row ends each column where the header does.
        let ends = |l: &str| -> Vec<usize> {
            let b = l.as_bytes();
            (0..b.len()).filter(|&i| b[i] != b' ' && (i + 1 == b.len() || b[i + 1] == b' ')).collect()
        };
        let head = ends(lines[0]);
        // "messages (est)" and "at least" have a space inside.
        assert_eq!(head.len(), 5, "{head:?}");
        let head = [head[0], head[2], head[4]];
        for row in &lines[1..3] {
            assert_eq!(ends(row), head, "{t}");
        }
        assert_eq!(lines[3], TOP_LEGEND);
        assert!(top_table(&[]).contains("no stream has published"));
    }

    #[test]
    fn stats_table_filters_by_kind_and_labels_and_shows_units() {
        let row = |key: &str, name: &str, kind: &str, absent: bool, value: u64| StatRow {
            key: key.into(),
            name: name.into(),
            kind: kind.into(),
            unit: "packets".into(),
            absent,
            value,
            per_s: Some(2.4),
        };
        let rows = [
            row("rx_packets", "rx_packets", "counter", false, 7),
            row("drop_truncated", "drop_truncated", "counter", false, 0),
            row("drop_malformed", "drop_malformed", "counter", false, 1),
            row("burst_latency_ns_bucket:le=512", "burst_latency_ns_bucket", "bucket", false, 3),
            row("top_stream:rank=0", "top_stream", "info", false, 42),
            row("port_rx_packets:port=p0", "port_rx_packets", "counter", false, 5),
            row("port_rx_packets:port=", "port_rx_packets", "counter", true, 0),
        ];
        let t = stats_table(&rows);
        let keys: Vec<&str> = t.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(keys, ["rx_packets", "drop_malformed", "port_rx_packets:port=p0"], "{t}");
        assert!(t.lines().next().is_some_and(|h| h.contains("per second") && h.ends_with("unit")), "{t}");
        assert!(t.contains(&format!("{:<34}{:>16}{:>14}  packets\n", "rx_packets", 7, 2)), "{t}");
    }
}
