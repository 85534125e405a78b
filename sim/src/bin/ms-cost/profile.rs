//! `ms-cost report`: reads callgrind profiles of ms-cost runs and prints
//! instructions per message by stage, and the costliest functions.
//!
//! Costs are summed per function name over the whole profile (callgrind
//! files key them by source file too, which splits a function with inlined
//! code into several entries). A function's inclusive cost is its own plus
//! that of its calls to other functions.

use std::collections::HashMap;

/// One function's instructions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// In the function itself (inlined code included).
    pub own: u64,
    /// In the functions it called.
    pub calls: u64,
}

impl Cost {
    fn inclusive(self) -> u64 {
        self.own + self.calls
    }
}

/// A callgrind profile, reduced to costs per function name.
#[derive(Debug, Default)]
pub struct Profile {
    /// The profiled command line.
    pub cmd: String,
    /// Instructions collected.
    pub total: u64,
    /// Per function name.
    pub fns: HashMap<String, Cost>,
}

/// Reads a compressed name reference, `(id) name` or `(id)`.
fn name(names: &mut HashMap<String, String>, field: &str) -> String {
    match field.split_once(')') {
        Some((id, rest)) if !rest.trim().is_empty() => {
            names.insert(id.to_string(), rest.trim().to_string());
            rest.trim().to_string()
        }
        Some((id, _)) => names.get(id).cloned().unwrap_or_default(),
        None => field.to_string(),
    }
}

/// Parses callgrind's output format (one event, Ir).
pub fn parse(text: &str) -> Profile {
    let mut p = Profile::default();
    let mut names = HashMap::new();
    let (mut fun, mut callee, mut in_call) = (String::new(), String::new(), false);
    // Position columns before the cost ("line", or "instr line").
    let mut positions = 1;
    for line in text.lines() {
        if let Some(kinds) = line.strip_prefix("positions:") {
            positions = kinds.split_whitespace().count().max(1);
        } else if let Some(f) = line.strip_prefix("fn=") {
            fun = name(&mut names, f);
        } else if let Some(f) = line.strip_prefix("cfn=") {
            callee = name(&mut names, f);
        } else if line.starts_with("calls=") {
            in_call = true;
        } else if let Some(cmd) = line.strip_prefix("cmd:") {
            p.cmd = cmd.trim().to_string();
        } else if let Some(s) = line.strip_prefix("summary:").or_else(|| line.strip_prefix("totals:")) {
            p.total = s.trim().parse().unwrap_or(p.total);
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            let ir: u64 = line.split_whitespace().nth(positions).and_then(|v| v.parse().ok()).unwrap_or(0);
            let cost = p.fns.entry(fun.clone()).or_default();
            match (in_call, callee == fun) {
                (false, _) => cost.own += ir,
                (true, false) => cost.calls += ir,
                (true, true) => {} // recursion: already counted
            }
            in_call = false;
        }
    }
    p
}

impl Profile {
    fn inclusive(&self, f: &str) -> Option<u64> {
        self.fns.get(f).map(|c| c.inclusive())
    }
}

const LOOP: &str = "ms_cost::worker::run_turns";
const BEGIN: &str = "ms_cost::worker::begin_turn";
const RX: &str = "ms_cost::worker::rx_parse";
const PUBLISH: &str = "ms_cost::worker::publish_into_engine";
const END: &str = "ms_cost::worker::end_turn";
const ABSORB: &str = "ms_cost::worker::absorb_counts";
const SEND: &str = "<ms_cost::wire::Wire as ms_proto::Io>::send";
const UDP_VERIFY: &str = "ms_netstack::udp::Packet<T>::verify_checksum";
const UDP_FILL: &str = "ms_netstack::udp::Packet<T>::fill_checksum";
const IP_FILL: &str = "ms_netstack::ipv4::Packet<T>::fill_checksum";

/// A row: the inclusive costs of `plus` less those of `minus`. Every
/// `ms_cost::` function must be in the profile; a library function may
/// have been inlined (the row then says so).
struct Row {
    label: &'static str,
    plus: &'static [&'static str],
    minus: &'static [&'static str],
}

const fn row(label: &'static str, plus: &'static [&'static str], minus: &'static [&'static str]) -> Row {
    Row { label, plus, minus }
}

const ROWS: &[Row] = &[
    row("**total** (measured loop)", &[LOOP], &[]),
    row("begin_turn: `Engine::expire`", &[BEGIN], &[]),
    row("rx_parse: `Host::process` (Eth/IPv4/UDP, checksums)", &[RX], &[]),
    row("  of which UDP checksum verify", &[UDP_VERIFY], &[]),
    row("streams protocol: `on_datagram` + `end_turn` − `Io::send`", &[PUBLISH, END], &[SEND]),
    row("  of which PUBLISH parse `ms_wire::parse`", &["ms_wire::parse"], &[]),
    row(
        "  of which lookup, admission, cut-through `Streams::publish_through` (with its sends)",
        &["ms_streams::flow::<impl ms_streams::Streams>::publish_through"],
        &[],
    ),
    row(
        "  of which DELIVER entry and payload copy `DeliverState::push_with`",
        &["ms_wire::deliver::DeliverState::push_with"],
        &[],
    ),
    row(
        "  of which scheduler (queued messages) `Streams::serve`",
        &["ms_streams::sched::<impl ms_streams::Streams>::serve"],
        &[],
    ),
    row("  `Io::send` (egress)", &[SEND], &[]),
    row("    tx_resolve: `Host::resolve`", &["ms_cost::wire::tx_resolve"], &[]),
    row("    tx_emit_udp: `Host::emit_udp`", &["ms_cost::wire::tx_emit_udp"], &[]),
    row("      of which UDP checksum fill", &[UDP_FILL], &[]),
    row("    tx_burst: recycle the buffer", &["ms_cost::wire::tx_burst"], &[]),
    row("absorb_counts: `Counts::take`", &[ABSORB], &[]),
    row("loop glue (burst, `From`, ring)", &[LOOP], &[BEGIN, RX, PUBLISH, END, ABSORB]),
    row("checksums in all (UDP verify + UDP/IPv4 fill)", &[UDP_VERIFY, UDP_FILL, IP_FILL], &[]),
];

/// A profile and what its run did.
pub struct Scenario {
    pub label: String,
    pub profile: Profile,
    pub messages: u64,
    pub deliveries: u64,
}

fn value(s: &Scenario, r: &Row) -> Result<Option<f64>, String> {
    let mut sum = 0i128;
    for (sign, f) in r.plus.iter().map(|f| (1, f)).chain(r.minus.iter().map(|f| (-1, f))) {
        match s.profile.inclusive(f) {
            Some(ir) => sum += sign * i128::from(ir),
            None if f.contains("ms_cost::") => {
                return Err(format!("{}: no {f} in the profile (was it collected?)", s.label));
            }
            None if r.plus.len() > 1 => {} // a checksum inlined elsewhere
            None => return Ok(None),
        }
    }
    Ok(Some(sum as f64 / s.messages as f64))
}

fn fmt(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The stage table, a column per scenario: instructions per message.
pub fn stage_table(scenarios: &[Scenario]) -> Result<String, String> {
    let mut out = String::from("| stage (Ir per published message) |");
    for s in scenarios {
        out += &format!(" {} |", s.label);
    }
    out += "\n|---|";
    out += &"---:|".repeat(scenarios.len());
    for r in ROWS {
        out += &format!("\n| {} |", r.label);
        for s in scenarios {
            let cell = value(s, r)?.map_or_else(|| "inlined".to_string(), fmt);
            out += &format!(" {cell} |");
        }
    }
    out += "\n| total per delivery (fan-out) |";
    for s in scenarios {
        let total = s.profile.inclusive(LOOP).unwrap_or(0);
        out += &format!(" {} |", fmt(total as f64 / s.deliveries as f64));
    }
    Ok(out)
}

/// The `n` functions with the most instructions of their own in `s`.
pub fn top_table(s: &Scenario, n: usize) -> String {
    let mut fns: Vec<(&String, &Cost)> = s.profile.fns.iter().filter(|(_, c)| c.own > 0).collect();
    fns.sort_by(|a, b| b.1.own.cmp(&a.1.own).then(a.0.cmp(b.0)));
    let total = s.profile.inclusive(LOOP).unwrap_or(s.profile.total).max(1);
    let mut out = format!("| # | self Ir/msg | % | function ({}) |\n|---:|---:|---:|---|", s.label);
    for (i, (f, c)) in fns.iter().take(n).enumerate() {
        let pct = 100.0 * c.own as f64 / total as f64;
        out += &format!("\n| {} | {} | {pct:.1} | `{f}` |", i + 1, fmt(c.own as f64 / s.messages as f64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# callgrind format
cmd:  target/release/ms-cost --batch 1
events: Ir
summary: 160

ob=(1) /bin/ms-cost
fl=(1) a.rs
fn=(1) outer
10 5
cfn=(2) inner
calls=2 20
11 100
fi=(2) b.rs
12 5
fn=(2)
20 40
+1 10
fl=(3) c.rs
fn=(2)
5 10
cfn=(2)
calls=1 5
6 30
";

    #[test]
    fn costs_are_summed_per_function_over_files_and_calls_are_inclusive() {
        let p = parse(SAMPLE);
        assert_eq!(p.cmd, "target/release/ms-cost --batch 1");
        assert_eq!(p.total, 160);
        assert_eq!(p.fns["outer"], Cost { own: 10, calls: 100 });
        assert_eq!(p.fns["inner"], Cost { own: 60, calls: 0 }, "the recursive call is not counted twice");
    }

    #[test]
    fn a_missing_harness_stage_is_an_error_and_a_missing_library_function_is_inlined() {
        let s = Scenario { label: "x".into(), profile: parse(SAMPLE), messages: 1, deliveries: 1 };
        assert!(stage_table(&[s]).is_err());
        let s = Scenario { label: "x".into(), profile: parse(SAMPLE), messages: 1, deliveries: 1 };
        assert_eq!(value(&s, &row("lib", &["ms_wire::parse"], &[])), Ok(None));
    }
}
