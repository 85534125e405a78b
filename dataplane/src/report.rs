//! The final counter report: a table for people, JSON for programs.

use crate::app::RunReport;
use crate::counters::{self, slot_names, Counter};
use std::fmt::Write;

/// Renders the counters as a table: one column per worker and a total.
/// Drop reasons that stayed zero are left out to keep it readable. The
/// drivers' own drops follow, per port.
pub fn table(run: &RunReport) -> String {
    let reports = &run.workers;
    let total = counters::sum(&reports.iter().map(|r| r.counters).collect::<Vec<_>>());
    let mut out = String::new();
    let _ = write!(out, "{:<34}", "counter");
    for r in reports {
        let _ = write!(out, "{:>14}", format!("lcore {}", r.lcore));
    }
    let _ = writeln!(out, "{:>14}", "total");
    for (i, (name, _)) in slot_names().enumerate() {
        if i >= Counter::ALL.len() && total[i] == 0 {
            continue;
        }
        let _ = write!(out, "{name:<34}");
        for r in reports {
            let _ = write!(out, "{:>14}", r.counters[i]);
        }
        let _ = writeln!(out, "{:>14}", total[i]);
    }
    let _ = writeln!(out, "{:<34}{:>14}", "worker_heap_allocations", crate::alloc::worker_allocations());
    for (port, drops) in &run.ports {
        for (name, v) in drops.fields() {
            let _ = writeln!(out, "{:<34}{v:>14}", format!("port {port} driver {name}"));
        }
    }
    out
}

/// Renders the counters as one JSON object: `total` and per-`workers`.
pub fn json(run: &RunReport) -> serde_json::Value {
    let reports = &run.workers;
    let as_map = |values: &[u64; counters::COUNTERS_LEN]| {
        let map: serde_json::Map<String, serde_json::Value> =
            slot_names().zip(values).map(|((n, _), v)| (n, (*v).into())).collect();
        serde_json::Value::Object(map)
    };
    let total = counters::sum(&reports.iter().map(|r| r.counters).collect::<Vec<_>>());
    let workers: Vec<serde_json::Value> =
        reports.iter().map(|r| serde_json::json!({ "lcore": r.lcore, "counters": as_map(&r.counters) })).collect();
    let ports: serde_json::Map<String, serde_json::Value> = run
        .ports
        .iter()
        .map(|(name, d)| {
            let fields: serde_json::Map<String, serde_json::Value> =
                d.fields().iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
            (name.clone(), serde_json::Value::Object(fields))
        })
        .collect();
    serde_json::json!({
        "total": as_map(&total),
        "workers": workers,
        "worker_heap_allocations": crate::alloc::worker_allocations(),
        "port_driver_drops": ports,
    })
}
