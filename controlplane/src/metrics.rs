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

/// A unique key for a slot, as `msctl stats --json` and the status totals
/// name it: the name, then its labels and a bucket's bound as
/// `:key=value,key=value` (e.g. `port_rx_packets:port=p0`,
/// `burst_latency_ns_bucket:le=+Inf`).
pub fn slot_key(s: &Slot) -> String {
    let mut key = s.name.clone();
    let bound = match s.kind {
        Kind::Bucket { le: u64::MAX } => Some("+Inf".to_string()),
        Kind::Bucket { le } => Some(le.to_string()),
        _ => None,
    };
    let labels = s.labels.iter().map(|(k, v)| (k.as_str(), v.clone())).chain(bound.map(|b| ("le", b)));
    for (i, (k, v)) in labels.enumerate() {
        key.push(if i == 0 { ':' } else { ',' });
        let _ = write!(key, "{k}={v}");
    }
    key
}

/// Totals over the workers that could be read, by slot key.
pub fn totals(dir: &[Slot], blocks: &[Vec<u64>]) -> Vec<(String, u64)> {
    dir.iter().enumerate().map(|(i, s)| (slot_key(s), blocks.iter().filter_map(|b| b.get(i)).sum())).collect()
}

/// The slots named `name` that have label `key` with a value: (value,
/// slot key), in directory order (e.g. every configured port's
/// `port_rx_packets`).
pub fn labelled(dir: &[Slot], name: &str, key: &str) -> Vec<(String, String)> {
    dir.iter()
        .filter(|s| s.name == name)
        .filter_map(|s| s.label(key).filter(|v| !v.is_empty()).map(|v| (v.to_string(), slot_key(s))))
        .collect()
}

/// What `msctl` needs to lay out and filter a slot, by the key it has in
/// `total` and `counters`: name, kind, unit and labels.
pub fn slots_json(dir: &[Slot]) -> Vec<serde_json::Value> {
    dir.iter()
        .map(|s| {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Bucket { .. } => "bucket",
                Kind::Info => "info",
            };
            let labels: serde_json::Map<String, serde_json::Value> =
                s.labels.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
            serde_json::json!({ "key": slot_key(s), "name": s.name, "kind": kind, "unit": s.unit, "labels": labels })
        })
        .collect()
}

/// Slots named `drop_<reason>` are exported as `ms_drops_total{reason}`
/// (their names are the README's and the end-of-run report's).
const DROP_PREFIX: &str = "drop_";

/// Whether a slot is left out of the export: a label with an empty value
/// marks a slot with nothing behind it (a port the config does not have).
fn absent(s: &Slot) -> bool {
    s.labels.iter().any(|(_, v)| v.is_empty())
}

/// The slot's labels after the worker's, as `,key="value"`.
fn label_text(s: &Slot) -> String {
    s.labels.iter().map(|(k, v)| format!(",{k}=\"{}\"", label(v))).collect()
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Help with the unit the directory gives (the text format has no UNIT).
fn with_unit(help: &str, unit: &str) -> String {
    match unit {
        "" => help.to_string(),
        u => format!("{help} Unit: {u}."),
    }
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
    render_drops(&mut out, dir, blocks);
    render_histograms(&mut out, dir, blocks);
    let histogram_parts: Vec<String> =
        histograms(dir).iter().flat_map(|h| [format!("{}_sum", h.stem), format!("{}_count", h.stem)]).collect();
    let mut done = std::collections::HashSet::new();
    for (i, slot) in dir.iter().enumerate() {
        let skip = matches!(slot.kind, Kind::Bucket { .. } | Kind::Info)
            || slot.name.starts_with(DROP_PREFIX)
            || histogram_parts.contains(&slot.name);
        if skip || !done.insert(slot.name.as_str()) {
            continue;
        }
        let (name, kind) = match slot.kind {
            Kind::Counter => (format!("ms_{}_total", slot.name), "counter"),
            _ => (format!("ms_{}", slot.name), "gauge"),
        };
        header(&mut out, &name, &with_unit(&slot.help, &slot.unit), kind);
        for (j, s) in dir.iter().enumerate().skip(i).filter(|(_, s)| s.name == slot.name && !absent(s)) {
            let extra = label_text(s);
            for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
                let _ = writeln!(out, "{name}{{worker=\"{w}\"{extra}}} {}", value(b, j));
            }
        }
    }
    out
}

fn value(b: &[u64], i: usize) -> u64 {
    b.get(i).copied().unwrap_or(0)
}

/// Drop reasons are one metric with a `reason` label, as Prometheus
/// conventions ask (and summing them gives all drops).
fn render_drops(out: &mut String, dir: &[Slot], blocks: &[Vec<u64>]) {
    let drops: Vec<(usize, &str)> =
        dir.iter().enumerate().filter_map(|(i, s)| s.name.strip_prefix(DROP_PREFIX).map(|r| (i, r))).collect();
    let Some((first, _)) = drops.first() else { return };
    let help = with_unit("Frames dropped, by reason (see README.md, Counters).", &dir[*first].unit);
    header(out, "ms_drops_total", &help, "counter");
    for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
        for (i, reason) in &drops {
            let _ = writeln!(out, "ms_drops_total{{worker=\"{w}\",reason=\"{reason}\"}} {}", value(b, *i));
        }
    }
}

/// A histogram in the directory: `STEM_bucket` slots (non-cumulative, one
/// per bound) with `STEM_sum` and `STEM_count`.
struct Histogram<'a> {
    stem: &'a str,
    /// The exported name.
    name: String,
    /// Divides bounds and sum into the exported unit.
    scale: f64,
    help: String,
}

/// The histograms of the directory. One whose sum is in nanoseconds is
/// exported in seconds, as Prometheus asks (`burst_latency_ns` becomes
/// `ms_burst_latency_seconds`).
fn histograms(dir: &[Slot]) -> Vec<Histogram<'_>> {
    let mut out: Vec<Histogram<'_>> = Vec::new();
    for s in dir.iter().filter(|s| matches!(s.kind, Kind::Bucket { .. })) {
        let Some(stem) = s.name.strip_suffix("_bucket") else { continue };
        if out.iter().any(|h| h.stem == stem) {
            continue;
        }
        let sum_unit = dir.iter().find(|x| x.name == format!("{stem}_sum")).map_or("", |x| x.unit.as_str());
        let (name, scale, unit) = match sum_unit {
            "nanoseconds" => (format!("ms_{}_seconds", stem.strip_suffix("_ns").unwrap_or(stem)), 1e9, "seconds"),
            other => (format!("ms_{stem}"), 1.0, other),
        };
        out.push(Histogram { stem, name, scale, help: with_unit(&s.help, unit) });
    }
    out
}

/// Each histogram as a Prometheus histogram (cumulative buckets). Buckets
/// are told apart by their bound only: a histogram's slots carry no labels.
fn render_histograms(out: &mut String, dir: &[Slot], blocks: &[Vec<u64>]) {
    for h in histograms(dir) {
        let name = &h.name;
        header(out, name, &h.help, "histogram");
        let idx = |n: String| dir.iter().position(|s| s.name == n);
        let (sum_i, count_i) = (idx(format!("{}_sum", h.stem)), idx(format!("{}_count", h.stem)));
        let bucket = format!("{}_bucket", h.stem);
        for (w, b) in blocks.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let mut cumulative = 0u64;
            for (i, s) in dir.iter().enumerate() {
                let Kind::Bucket { le } = s.kind else { continue };
                if s.name != bucket || le == u64::MAX {
                    continue;
                }
                cumulative += value(b, i);
                let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"{}\"}} {cumulative}", le as f64 / h.scale);
            }
            let count = count_i.map_or(0, |i| value(b, i));
            let sum = sum_i.map_or(0, |i| value(b, i));
            let _ = writeln!(out, "{name}_bucket{{worker=\"{w}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{worker=\"{w}\"}} {}", sum as f64 / h.scale);
            let _ = writeln!(out, "{name}_count{{worker=\"{w}\"}} {count}");
        }
    }
}

/// Rows of a per-worker ranked sketch: for every worker and every rank
/// that a `fields[0]` slot has (its `rank` label), the values of `fields`
/// at that rank.
fn ranked(dir: &[Slot], blocks: &[Vec<u64>], fields: &[&str]) -> Vec<Vec<u64>> {
    let at = |what: &str, rank: &str| dir.iter().position(|x| x.name == what && x.label("rank") == Some(rank));
    let ranks: Vec<&str> = dir.iter().filter(|s| s.name == fields[0]).filter_map(|s| s.label("rank")).collect();
    let mut out = Vec::new();
    for b in blocks {
        for rank in &ranks {
            out.push(fields.iter().map(|f| at(f, rank).and_then(|j| b.get(j)).copied().unwrap_or(0)).collect());
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
            Slot::new("rx_packets", Kind::Counter, "packets", "Packets received."),
            Slot::new("rx_bytes", Kind::Counter, "bytes", "Bytes."),
            Slot::new("streams_active", Kind::Gauge, "streams", "Gauge: streams."),
            Slot::new("drop_truncated", Kind::Counter, "packets", "Short."),
        ];
        let text = render(&dir, &[vec![3, 100, 7, 4], vec![2, 50, 1, 0]], true, 1.5);
        assert!(text.contains("ms_drops_total{worker=\"0\",reason=\"truncated\"} 4"), "{text}");
        assert!(!text.contains("ms_drop_truncated"), "{text}");
        assert!(text.contains("# TYPE ms_rx_packets_total counter\nms_rx_packets_total{worker=\"0\"} 3\nms_rx_packets_total{worker=\"1\"} 2\n"), "{text}");
        assert!(text.contains("ms_rx_bytes_total{worker=\"1\"} 50"));
        assert!(text.contains("# TYPE ms_streams_active gauge\nms_streams_active{worker=\"0\"} 7"));
        assert!(text.contains("ms_dataplane_up 1"));
        assert!(text.contains("# HELP ms_rx_packets_total Packets received. Unit: packets.\n"), "{text}");
        assert!(text
            .contains("# HELP ms_drops_total Frames dropped, by reason (see README.md, Counters). Unit: packets.\n"));
        assert_eq!(totals(&dir, &[vec![3, 100, 7], vec![2, 50, 1]])[0], ("rx_packets".into(), 5));
    }

    #[test]
    fn histograms_labels_and_top() {
        let help = "Latency.";
        let mut dir: Vec<Slot> = [1000u64, 2000, u64::MAX]
            .iter()
            .map(|le| Slot::new("burst_latency_ns_bucket", Kind::Bucket { le: *le }, "turns", help))
            .collect();
        dir.push(Slot::new("burst_latency_ns_sum", Kind::Counter, "nanoseconds", help));
        dir.push(Slot::new("burst_latency_ns_count", Kind::Counter, "turns", help));
        for class in ["0", "1"] {
            dir.push(Slot::new("messages_by_class", Kind::Counter, "messages", "By class.").with_label("class", class));
        }
        dir.push(Slot::new("top_stream", Kind::Info, "stream_id", "").with_label("rank", "0"));
        dir.push(Slot::new("top_count", Kind::Info, "messages", "").with_label("rank", "0"));
        let block = vec![2, 3, 1, 9000, 6, 10, 20, 42, 77];
        let text = render(&dir, std::slice::from_ref(&block), true, 0.0);
        assert!(text.contains("# TYPE ms_burst_latency_seconds histogram"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"0.000001\"} 2"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"0.000002\"} 5"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"} 6"), "{text}");
        assert!(text.contains("ms_burst_latency_seconds_sum{worker=\"0\"} 0.000009"), "{text}");
        assert!(text.contains("ms_messages_by_class_total{worker=\"0\",class=\"1\"} 20"), "{text}");
        assert_eq!(text.matches("# TYPE ms_messages_by_class_total").count(), 1);
        assert!(text.contains("# HELP ms_burst_latency_seconds Latency. Unit: seconds.\n"), "{text}");
        assert!(!text.contains("ms_burst_latency_ns"), "the sum and count are the histogram's: {text}");
        assert!(!text.contains("top_"), "top-N is for msctl, not Prometheus");
        assert_eq!(top_streams(&dir, std::slice::from_ref(&block)), [(42, 77, 77)]);
        for what in ["affected_stream", "affected_peer", "affected_count"] {
            dir.push(Slot::new(what, Kind::Info, "", "").with_label("rank", "0"));
        }
        let peer = u64::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 2))) << 16 | 40_000;
        let block = [block, vec![5, peer, 12]].concat();
        assert_eq!(affected(&dir, &[block]), [(5, "198.18.0.2:40000".to_string(), 12)]);
    }

    /// Keys (msctl's JSON) keep the `name:label=value` form; absent ports
    /// (an empty label value) are not exported.
    #[test]
    fn labels_come_from_the_directory() {
        let dir = vec![
            Slot::new("port_rx_packets", Kind::Counter, "packets", "By port.").with_label("port", "p0"),
            Slot::new("port_rx_packets", Kind::Counter, "packets", "By port.").with_label("port", ""),
            Slot::new("burst_latency_ns_bucket", Kind::Bucket { le: 512 }, "turns", ""),
            Slot::new("burst_latency_ns_bucket", Kind::Bucket { le: u64::MAX }, "turns", ""),
            Slot::new("two", Kind::Gauge, "items", "Two labels.").with_label("port", "p\"1").with_label("class", "2"),
        ];
        let keys: Vec<String> = dir.iter().map(slot_key).collect();
        assert_eq!(
            keys,
            [
                "port_rx_packets:port=p0",
                "port_rx_packets:port=",
                "burst_latency_ns_bucket:le=512",
                "burst_latency_ns_bucket:le=+Inf",
                "two:port=p\"1,class=2"
            ]
        );
        let text = render(&dir, &[vec![5, 6, 1, 0, 9]], true, 0.0);
        assert!(text.contains("ms_port_rx_packets_total{worker=\"0\",port=\"p0\"} 5\n"), "{text}");
        assert!(!text.contains("port=\"\""), "{text}");
        assert!(text.contains("ms_two{worker=\"0\",port=\"p\\\"1\",class=\"2\"} 9\n"), "{text}");
        let ports = labelled(&dir, "port_rx_packets", "port");
        assert_eq!(ports, [("p0".to_string(), "port_rx_packets:port=p0".to_string())]);
        let described = slots_json(&dir);
        assert_eq!(described[0]["key"], "port_rx_packets:port=p0");
        assert_eq!(described[0]["labels"]["port"], "p0");
        assert_eq!((described[2]["kind"].as_str(), described[2]["unit"].as_str()), (Some("bucket"), Some("turns")));
    }
}
