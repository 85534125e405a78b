//! The regression guard (`make bench-check`): the headline scenarios,
//! offered above saturation, each as a ratio to testpmd's `csum` forwarding
//! of frames of the same size on the same core in the same run, compared
//! with the committed baseline. Ratios, not rates, because this VM's speed
//! drifts from one hour to the next; the ratio drifts much less.

use crate::ceilings::{frame_len, testpmd, CHECK_MODE};
use crate::sweep::run_child;
use crate::Args;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::Path;

/// Runs of each scenario and of each ceiling; the medians are compared.
const REPEATS: usize = 3;
/// Seconds per scenario run.
const SECONDS: f64 = 2.0;
/// A scenario's tolerance (twice the spread between its runs when the
/// baseline was written) is never below this.
const TOLERANCE_MIN: f64 = 0.10;
/// Nor above this: a larger drop is always a regression.
const TOLERANCE_MAX: f64 = 0.35;

/// A headline scenario: name, messages per datagram, streams, subscribers
/// and the offered rate (above what one worker sustains).
struct Scenario {
    name: &'static str,
    batch: usize,
    streams: u64,
    subscribers: u16,
    rate: u64,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario { name: "1 stream, 16/datagram", batch: 16, streams: 1, subscribers: 1, rate: 16_000_000 },
    Scenario { name: "1 stream, 1/datagram", batch: 1, streams: 1, subscribers: 1, rate: 8_000_000 },
    Scenario { name: "1M streams, 16/datagram", batch: 16, streams: 1_000_000, subscribers: 1, rate: 12_000_000 },
    Scenario { name: "fan-out 8 (deliveries)", batch: 16, streams: 1, subscribers: 8, rate: 4_000_000 },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Relative spread (max - min) / median.
fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    (hi - lo) / median(v.to_vec()).max(f64::MIN_POSITIVE)
}

/// Delivered messages per second of one saturated run.
fn delivered(a: &Args, s: &Scenario) -> anyhow::Result<f64> {
    let (streams, subscribers) = (Some(s.streams), Some(s.subscribers));
    let run = Args { batch: s.batch, seconds: Some(SECONDS), streams, subscribers, ..*a };
    let r = run_child(&run, s.rate, &[])?;
    anyhow::ensure!(r["subscribed"] == true, "{}: the generator could not subscribe: {r}", s.name);
    let received = r["received"].as_f64().context("no received count")?;
    Ok(received / r["seconds"].as_f64().unwrap_or(SECONDS))
}

/// Measures every scenario and its ceiling, alternating, `REPEATS` times.
fn measure(a: &Args) -> anyhow::Result<Value> {
    let sizes = [frame_len(64, 16), frame_len(64, 1)];
    let mut ceiling: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); SCENARIOS.len()];
    for round in 0..REPEATS {
        for (i, len) in sizes.iter().enumerate() {
            eprintln!("[bench-check] round {}/{REPEATS}: testpmd {CHECK_MODE}, {len}-byte frames", round + 1);
            ceiling[i].push(testpmd(CHECK_MODE, *len, 3)?);
        }
        for (i, s) in SCENARIOS.iter().enumerate() {
            eprintln!("[bench-check] round {}/{REPEATS}: {}", round + 1, s.name);
            rates[i].push(delivered(a, s)?);
        }
    }
    let mut out = serde_json::Map::new();
    for (s, r) in SCENARIOS.iter().zip(&rates) {
        let c = &ceiling[usize::from(s.batch == 1)];
        let ratios: Vec<f64> = r.iter().zip(c).map(|(x, c)| x / c).collect();
        out.insert(
            s.name.into(),
            json!({
                "msgs_per_s": median(r.clone()), "ceiling_pps": median(c.clone()),
                "ratio": median(ratios.clone()), "spread": spread(&ratios), "runs": r,
            }),
        );
    }
    Ok(Value::Object(out))
}

/// `--check FILE`: measures and compares with the baseline in FILE (or
/// writes it there with `--write-baseline`). Fails when a scenario's ratio
/// drops by more than its tolerance.
pub(crate) fn check(a: &Args, file: &Path, write: bool) -> anyhow::Result<()> {
    let now = measure(a)?;
    if write {
        return write_baseline(now, file);
    }
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("read the baseline {} (make bench-baseline writes one)", file.display()))?;
    let base: Value = serde_json::from_str(&text).with_context(|| format!("parse {}", file.display()))?;
    println!(
        "{:<26} {:>12} {:>12} {:>10} {:>10} {:>8} {:>9}",
        "scenario", "msg/s", "ceiling pps", "ratio", "baseline", "change", "tolerance"
    );
    let mut failed = Vec::new();
    for s in &SCENARIOS {
        let (n, b) = (&now[s.name], &base["scenarios"][s.name]);
        let (ratio, was) = (n["ratio"].as_f64().unwrap_or(0.0), b["ratio"].as_f64());
        let tolerance = b["tolerance"].as_f64().unwrap_or(TOLERANCE_MAX);
        let change = was.map(|w| ratio / w - 1.0);
        println!(
            "{:<26} {:>12.0} {:>12.0} {:>10.5} {:>10} {:>8} {:>8.0}%",
            s.name,
            n["msgs_per_s"].as_f64().unwrap_or(0.0),
            n["ceiling_pps"].as_f64().unwrap_or(0.0),
            ratio,
            was.map_or("-".into(), |w| format!("{w:.5}")),
            change.map_or("new".into(), |c| format!("{:+.1}%", c * 100.0)),
            tolerance * 100.0,
        );
        if change.is_some_and(|c| c < -tolerance) {
            failed.push(s.name);
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "slower than the baseline by more than its tolerance: {}. Profile the change (make flamegraph, \
         ci/cycle-budget.sh), or, if the slowdown is deliberate, say why and run make bench-baseline",
        failed.join(", ")
    );
    println!("no scenario dropped by more than its tolerance");
    Ok(())
}

/// Writes `now` as the baseline, each scenario with its tolerance: twice
/// the spread between its runs, within [`TOLERANCE_MIN`, `TOLERANCE_MAX`].
fn write_baseline(mut now: Value, file: &Path) -> anyhow::Result<()> {
    for v in now.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        let spread = v["spread"].as_f64().unwrap_or(TOLERANCE_MAX);
        v["tolerance"] = (2.0 * spread).clamp(TOLERANCE_MIN, TOLERANCE_MAX).into();
    }
    let baseline = json!({
        "about": "make bench-check: ratio = delivered msg/s / testpmd csum pps of the same frame size, same core, \
                  same run; a scenario fails when its ratio drops by more than its tolerance",
        "scenarios": now,
    });
    std::fs::write(file, serde_json::to_string_pretty(&baseline)? + "\n")
        .with_context(|| format!("write {}", file.display()))?;
    println!("baseline written to {}", file.display());
    Ok(())
}
