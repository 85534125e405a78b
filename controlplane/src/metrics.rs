//! Prometheus text exposition from the stats segment. Names follow the
//! Prometheus conventions: `ms_` prefix, counters end in `_total`, byte
//! counters in `_bytes_total`, one `worker` label per dataplane worker.

use ms_stats::{Kind, Segment, Slot};
use std::fmt::Write;

/// Snapshots of every worker block: (directory, values per worker). A
/// block the writer keeps busy for a whole read budget is left out.
pub fn snapshot(seg: &Segment) -> (Vec<Slot>, Vec<Vec<u64>>) {
    let dir = seg.directory();
    let blocks = (0..seg.lcores())
        .map(|l| {
            let mut v = vec![0u64; seg.slots()];
            seg.read(l, &mut v, 100_000).map(|_| v).unwrap_or_default()
        })
        .collect();
    (dir, blocks)
}

/// Totals over workers, by slot name.
pub fn totals(dir: &[Slot], blocks: &[Vec<u64>]) -> Vec<(String, u64)> {
    dir.iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), blocks.iter().map(|b| b.get(i).copied().unwrap_or(0)).sum()))
        .collect()
}

/// Slots named `drop_<reason>` are exported as `ms_drops_total{reason}`.
const DROP_PREFIX: &str = "drop_";

fn metric_name(slot: &Slot) -> String {
    match slot.kind {
        Kind::Counter => format!("ms_{}_total", slot.name),
        _ => format!("ms_{}", slot.name),
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Renders the text format. `up` says whether the dataplane's heartbeat is
/// fresh; `start_s` is its start time in seconds since the epoch.
pub fn render(dir: &[Slot], blocks: &[Vec<u64>], up: bool, start_s: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP ms_dataplane_up 1 when the dataplane's stats heartbeat is fresh (under 2 s old).");
    let _ = writeln!(out, "# TYPE ms_dataplane_up gauge");
    let _ = writeln!(out, "ms_dataplane_up {}", u8::from(up));
    let _ = writeln!(
        out,
        "# HELP ms_dataplane_start_time_seconds When the dataplane started, seconds since the Unix epoch."
    );
    let _ = writeln!(out, "# TYPE ms_dataplane_start_time_seconds gauge");
    let _ = writeln!(out, "ms_dataplane_start_time_seconds {start_s:.3}");
    // Drop reasons are one metric with a `reason` label, as Prometheus
    // conventions ask (and summing them gives all drops).
    let drops: Vec<(usize, &str)> =
        dir.iter().enumerate().filter_map(|(i, s)| s.name.strip_prefix(DROP_PREFIX).map(|r| (i, r))).collect();
    if !drops.is_empty() {
        let _ = writeln!(out, "# HELP ms_drops_total Frames dropped, by reason (see README.md, Counters).");
        let _ = writeln!(out, "# TYPE ms_drops_total counter");
        for (w, b) in blocks.iter().enumerate() {
            for (i, reason) in &drops {
                let _ = writeln!(
                    out,
                    "ms_drops_total{{worker=\"{w}\",reason=\"{reason}\"}} {}",
                    b.get(*i).copied().unwrap_or(0)
                );
            }
        }
    }
    for (i, slot) in dir.iter().enumerate() {
        if matches!(slot.kind, Kind::Bucket { .. } | Kind::Info) || slot.name.starts_with(DROP_PREFIX) {
            continue;
        }
        let name = metric_name(slot);
        let kind = if slot.kind == Kind::Counter { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&slot.help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (w, b) in blocks.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", b.get(i).copied().unwrap_or(0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_conventions() {
        let dir = vec![
            Slot { name: "rx_packets".into(), kind: Kind::Counter, help: "Packets received.".into() },
            Slot { name: "rx_bytes".into(), kind: Kind::Counter, help: "Bytes.".into() },
            Slot { name: "streams_active".into(), kind: Kind::Gauge, help: "Gauge: streams.".into() },
            Slot { name: "drop_truncated".into(), kind: Kind::Counter, help: "Short.".into() },
        ];
        let text = render(&dir, &[vec![3, 100, 7, 4], vec![2, 50, 1, 0]], true, 1.5);
        assert!(text.contains("ms_drops_total{worker=\"0\",reason=\"truncated\"} 4"), "{text}");
        assert!(!text.contains("ms_drop_truncated"), "{text}");
        assert!(text.contains("# TYPE ms_rx_packets_total counter\nms_rx_packets_total{worker=\"0\"} 3\nms_rx_packets_total{worker=\"1\"} 2\n"), "{text}");
        assert!(text.contains("ms_rx_bytes_total{worker=\"1\"} 50"));
        assert!(text.contains("# TYPE ms_streams_active gauge\nms_streams_active{worker=\"0\"} 7"));
        assert!(text.contains("ms_dataplane_up 1"));
        assert_eq!(totals(&dir, &[vec![3, 100, 7], vec![2, 50, 1]])[0], ("rx_packets".into(), 5));
    }
}
