//! Prometheus text exposition from the stats segment. Names follow the
//! Prometheus conventions: `ms_` prefix, counters end in `_total`, byte
//! counters in `_bytes_total`, one `worker` label per dataplane worker.

use ms_stats::{Kind, Segment, Slot};
use std::fmt::Write;

/// Snapshots of every worker block: (directory, values per worker). A
/// block the writer kept busy for the whole read budget is an empty vector:
/// its samples are left out rather than reported as zeros (which a
/// scraper would take for a counter reset).
pub fn snapshot(seg: &Segment) -> (Vec<Slot>, Vec<Vec<u64>>) {
    let dir = seg.directory();
    let blocks = (0..seg.lcores())
        .map(|l| {
            let mut v = vec![0u64; seg.slots()];
            seg.read(l, &mut v, std::time::Duration::from_millis(200)).map(|_| v).unwrap_or_default()
        })
        .collect();
    (dir, blocks)
}

/// A unique key for a slot: its name, plus the bound for histogram buckets
/// (which share a name).
pub fn slot_key(s: &Slot) -> String {
    match s.kind {
        Kind::Bucket { le: u64::MAX } => format!("{}:le=+Inf", s.name),
        Kind::Bucket { le } => format!("{}:le={le}", s.name),
        _ => s.name.clone(),
    }
}

/// Totals over the workers that could be read, by slot key.
pub fn totals(dir: &[Slot], blocks: &[Vec<u64>]) -> Vec<(String, u64)> {
    dir.iter().enumerate().map(|(i, s)| (slot_key(s), blocks.iter().filter_map(|b| b.get(i)).sum())).collect()
}

/// Slots named `drop_<reason>` are exported as `ms_drops_total{reason}`.
const DROP_PREFIX: &str = "drop_";

/// Splits `base:key=value` into the base and its label.
fn split_label(name: &str) -> (&str, Option<(&str, &str)>) {
    match name.split_once(':') {
        Some((base, label)) => (base, label.split_once('=')),
        None => (name, None),
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders the text format. `up` says whether the dataplane's heartbeat is
/// fresh; `start_s` is its start time in seconds since the epoch.
pub fn render(dir: &[Slot], blocks: &[Vec<u64>], up: bool, start_s: f64) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "ms_dataplane_up",
        "1 when the dataplane's process exists and its stats heartbeat is fresh (under 10 heartbeat periods, 200 ms).",
        "gauge",
    );
    let _ = writeln!(out, "ms_dataplane_up {}", u8::from(up));
    header(
        &mut out,
        "ms_dataplane_start_time_seconds",
        "When the dataplane started, seconds since the Unix epoch.",
        "gauge",
    );
    let _ = writeln!(out, "ms_dataplane_start_time_seconds {start_s:.3}");
    let value = |b: &Vec<u64>, i: usize| b.get(i).copied().unwrap_or(0);
    // Drop reasons are one metric with a `reason` label, as Prometheus
    // conventions ask (and summing them gives all drops).
    let drops: Vec<(usize, &str)> =
        dir.iter().enumerate().filter_map(|(i, s)| s.name.strip_prefix(DROP_PREFIX).map(|r| (i, r))).collect();
    if !drops.is_empty() {
        header(&mut out, "ms_drops_total", "Frames dropped, by reason (see README.md, Counters).", "counter");
        for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            for (i, reason) in &drops {
                let _ = writeln!(out, "ms_drops_total{{worker=\"{w}\",reason=\"{reason}\"}} {}", value(b, *i));
            }
        }
    }
    render_histograms(&mut out, dir, blocks);
    let mut done = std::collections::HashSet::new();
    for (i, slot) in dir.iter().enumerate() {
        let (base, _) = split_label(&slot.name);
        let skip = matches!(slot.kind, Kind::Bucket { .. } | Kind::Info)
            || slot.name.starts_with(DROP_PREFIX)
            || base.ends_with("_ns_sum")
            || base.ends_with("_ns_count");
        if skip || !done.insert(base.to_string()) {
            continue;
        }
        let (name, kind) = match slot.kind {
            Kind::Counter => (format!("ms_{base}_total"), "counter"),
            _ => (format!("ms_{base}"), "gauge"),
        };
        header(&mut out, &name, &slot.help, kind);
        for (j, s) in dir.iter().enumerate().skip(i) {
            let (b2, label) = split_label(&s.name);
            if b2 != base || label.is_some_and(|(_, v)| v.is_empty()) {
                continue;
            }
            let extra = label.map(|(k, v)| format!(",{k}=\"{}\"", self::label(v))).unwrap_or_default();
            for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
                let _ = writeln!(out, "{name}{{worker=\"{w}\"{extra}}} {}", value(b, j));
            }
        }
    }
    out
}

/// `X_ns_bucket` slots (non-cumulative, bounds in ns) with `X_ns_sum` and
/// `X_ns_count` become the Prometheus histogram `ms_X_seconds`.
fn render_histograms(out: &mut String, dir: &[Slot], blocks: &[Vec<u64>]) {
    let mut bases: Vec<&str> = dir
        .iter()
        .filter(|s| matches!(s.kind, Kind::Bucket { .. }))
        .filter_map(|s| s.name.strip_suffix("_ns_bucket"))
        .collect();
    bases.dedup();
    for base in bases {
        let name = format!("ms_{base}_seconds");
        let help = dir.iter().find(|s| s.name.starts_with(base)).map(|s| s.help.as_str()).unwrap_or("");
        header(out, &name, help, "histogram");
        let idx = |n: String| dir.iter().position(|s| s.name == n);
        let (sum_i, count_i) = (idx(format!("{base}_ns_sum")), idx(format!("{base}_ns_count")));
        for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let mut cumulative = 0u64;
            for (i, s) in dir.iter().enumerate() {
                let Kind::Bucket { le } = s.kind else { continue };
                if s.name != format!("{base}_ns_bucket") || le == u64::MAX {
                    continue;
                }
                cumulative += b.get(i).copied().unwrap_or(0);
                let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"{}\"}} {cumulative}", le as f64 / 1e9);
            }
            let count = count_i.and_then(|i| b.get(i)).copied().unwrap_or(0);
            let sum_ns = sum_i.and_then(|i| b.get(i)).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{worker=\"{w}\"}} {}", sum_ns as f64 / 1e9);
            let _ = writeln!(out, "{name}_count{{worker=\"{w}\"}} {count}");
        }
    }
}

/// Rows of a per-worker ranked sketch: for every worker and every rank
/// that has a `{fields[0]}:rank=r` slot, the values of `fields` at rank r.
fn ranked(dir: &[Slot], blocks: &[Vec<u64>], fields: &[&str]) -> Vec<Vec<u64>> {
    let at = |what: &str, rank: &str| {
        let name = format!("{what}:rank={rank}");
        dir.iter().position(|x| x.name == name)
    };
    let mut out = Vec::new();
    for b in blocks {
        for s in dir {
            if let (base, Some(("rank", rank))) = split_label(&s.name) {
                if base == fields[0] {
                    out.push(fields.iter().map(|f| at(f, rank).and_then(|j| b.get(j)).copied().unwrap_or(0)).collect());
                }
            }
        }
    }
    out
}

/// The busiest streams over all workers: (stream, estimated messages,
/// guaranteed messages), largest estimate first.
pub fn top_streams(dir: &[Slot], blocks: &[Vec<u64>]) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = ranked(dir, blocks, &["top_stream", "top_count", "top_error"])
        .into_iter()
        .filter(|r| r[1] > 0)
        .map(|r| (r[0], r[1], r[1].saturating_sub(r[2])))
        .collect();
    out.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// The (stream, subscriber) pairs that lost the most messages to flow
/// control and the memory budget, over all workers: (stream, subscriber
/// as "ip:port" or "every subscriber" for messages refused on arrival,
/// messages), most first.
pub fn affected(dir: &[Slot], blocks: &[Vec<u64>]) -> Vec<(u64, String, u64)> {
    let mut out: Vec<(u64, String, u64)> = ranked(dir, blocks, &["affected_stream", "affected_peer", "affected_count"])
        .into_iter()
        .filter(|r| r[2] > 0)
        .map(|r| {
            let who = match r[1] {
                0 => "every subscriber".to_string(),
                p => format!("{}:{}", std::net::Ipv4Addr::from((p >> 16) as u32), p & 0xffff),
            };
            (r[0], who, r[2])
        })
        .collect();
    out.sort_unstable_by_key(|e| std::cmp::Reverse(e.2));
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

    #[test]
    fn histograms_labels_and_top() {
        let mut dir: Vec<Slot> = [1000u64, 2000, u64::MAX]
            .iter()
            .map(|le| Slot {
                name: "burst_latency_ns_bucket".into(),
                kind: Kind::Bucket { le: *le },
                help: "Latency.".into(),
            })
            .collect();
        dir.push(Slot { name: "burst_latency_ns_sum".into(), kind: Kind::Counter, help: "Latency.".into() });
        dir.push(Slot { name: "burst_latency_ns_count".into(), kind: Kind::Counter, help: "Latency.".into() });
        dir.push(Slot { name: "messages_by_class:class=0".into(), kind: Kind::Counter, help: "By class.".into() });
        dir.push(Slot { name: "messages_by_class:class=1".into(), kind: Kind::Counter, help: "By class.".into() });
        dir.push(Slot { name: "top_stream:rank=0".into(), kind: Kind::Info, help: "".into() });
        dir.push(Slot { name: "top_count:rank=0".into(), kind: Kind::Info, help: "".into() });
        let block = vec![2, 3, 1, 9000, 6, 10, 20, 42, 77];
        let text = render(&dir, std::slice::from_ref(&block), true, 0.0);
        assert!(text.contains("# TYPE ms_burst_latency_seconds histogram"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"0.000001\"} 2"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"0.000002\"} 5"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"} 6"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_sum{worker=\"0\"} 0.000009"), "{text}");
        assert!(text.contains("ms_messages_by_class_total{worker=\"0\",class=\"1\"} 20"), "{text}");
        assert_eq!(text.matches("# TYPE ms_messages_by_class_total").count(), 1);
        assert!(!text.contains("top_"), "top-N is for msctl, not Prometheus");
        assert_eq!(top_streams(&dir, std::slice::from_ref(&block)), [(42, 77, 77)]);
        for what in ["affected_stream", "affected_peer", "affected_count"] {
            dir.push(Slot { name: format!("{what}:rank=0"), kind: Kind::Info, help: "".into() });
        }
        let peer = u64::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 2))) << 16 | 40_000;
        let block = [block, vec![5, peer, 12]].concat();
        assert_eq!(affected(&dir, &[block]), [(5, "198.18.0.2:40000".to_string(), 12)]);
    }
}
