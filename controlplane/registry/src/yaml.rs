//! Strict YAML as the config crate reads it: serde-saphyr with a budget,
//! and the parser's errors put in the operator's words with the line and
//! column they point at.

use serde_saphyr::budget::Budget;
use serde_saphyr::{Error, Location, Options};

/// The parser's limits: far above any real manifest, low enough that a
/// wrong file is refused quickly.
pub(crate) fn options(bytes_max: usize) -> Options {
    let mut budget = Budget::default();
    budget.max_total_scalar_bytes = bytes_max;
    budget.max_nodes = 10_000;
    budget.max_depth = 16;
    let mut o = Options::default();
    o.budget = Some(budget);
    o.with_snippet = false;
    o
}

/// Line and column (1-based) of `loc`, when the parser knows them.
pub(crate) fn line_column(loc: Location) -> Option<(u64, u64)> {
    (loc.line() != 0).then(|| (loc.line(), loc.column()))
}

/// A parser error in plain words, with where it points.
pub(crate) fn describe(e: &Error) -> (Option<(u64, u64)>, String) {
    let e = e.without_snippet();
    let at = e.location().and_then(line_column);
    let msg = match e {
        Error::Message { msg, .. } => msg.clone(),
        Error::SerdeUnknownField { field, expected, .. } => {
            format!(
                "unknown key `{field}`; the keys allowed here are {}: fix the spelling or remove it",
                expected.join(", ")
            )
        }
        Error::SerdeMissingField { field, .. } => format!("the key `{field}` is missing: add it"),
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("wrote {unexpected}; expected {expected}")
        }
        Error::InvalidScalar { ty, .. } => format!("this value is not {}", plain_type(ty)),
        Error::Unexpected { expected, .. } => format!("expected {}", plain_type(expected)),
        Error::DuplicateMappingKey { key: Some(k), .. } => format!("{k:?} is set twice in this section; keep one"),
        Error::DuplicateMappingKey { key: None, .. } => "a key is set twice in this section; keep one".into(),
        Error::Budget { .. } => "the file holds far more than a manifest does (is this the right file?)".into(),
        Error::Eof { .. } => "the file ends where a value was expected (is it empty or cut short?)".into(),
        Error::MultipleDocuments { .. } => "the file holds several YAML documents (\"---\"); keep one".into(),
        other => syntax(&other.to_string()),
    };
    (at, msg)
}

/// What a Rust type name means to someone writing YAML.
fn plain_type(ty: &str) -> String {
    match ty.trim_start_matches("a ").trim_start_matches("an ") {
        "u32" | "u64" => "a whole number (0 or more)".into(),
        "string" | "string scalar" | "scalar" | "plain scalar" => "a single value".into(),
        "sequence" | "sequence start" => "a list, such as [a, b] or lines starting with \"- \"".into(),
        "map" | "mapping" | "mapping start" => "a section of \"key: value\" lines".into(),
        other => other.to_string(),
    }
}

/// The parser's own text without the location it appends (we put it in
/// front).
fn syntax(s: &str) -> String {
    let s = s.rfind(" at line ").map_or(s, |i| &s[..i]);
    let s = s.strip_prefix("YAML parse error: ").unwrap_or(s);
    s.replace("did not find expected", "expected")
}
