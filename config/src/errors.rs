//! Config errors in the operator's words: every one names the file, the
//! line and column of the offending value, what was written and what is
//! allowed. Parser errors are translated here, so none of the YAML
//! library's own vocabulary (type names, event names, option names)
//! reaches the operator.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::{Budget, BudgetBreach};
use serde_saphyr::{Error as YamlError, Location, Spanned};
use std::fmt;

/// Largest config file accepted: a real one is a few KiB.
pub const FILE_BYTES_MAX: usize = 1 << 20;
/// Longest written value quoted back in a message.
const SHOWN_CHARS_MAX: usize = 40;

/// A config that cannot be used: where (file, and line:column when the
/// file has a place for it) and what is wrong, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or whatever the text came from).
    pub file: String,
    /// Line and column (1-based) of the offending value; `None` only when
    /// the file itself cannot be read.
    pub at: Option<(u64, u64)>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl ConfigError {
    /// An error at `loc` (1:1 when the location is unknown, so every
    /// message still points into the file).
    pub(crate) fn at(file: &str, loc: Option<Location>, message: String) -> ConfigError {
        let at = loc.filter(|l| l.line() != 0).map_or((1, 1), |l| (l.line(), l.column()));
        ConfigError { file: file.to_string(), at: Some(at), message }
    }
}

/// The parser's limits: far above any real config, low enough that a
/// wrong file (a log, a binary) is refused quickly with a clear message.
pub(crate) fn parse_options() -> serde_saphyr::Options {
    let mut budget = Budget::default();
    budget.max_total_scalar_bytes = FILE_BYTES_MAX;
    budget.max_nodes = 100_000;
    budget.max_depth = 32;
    let mut o = serde_saphyr::Options::default();
    o.budget = Some(budget);
    o.with_snippet = false;
    o
}

/// `s` quoted, cut to a readable length.
pub(crate) fn shown(s: &str) -> String {
    if s.chars().count() <= SHOWN_CHARS_MAX {
        return format!("{s:?}");
    }
    let cut: String = s.chars().take(SHOWN_CHARS_MAX).collect();
    format!("{cut:?}... ({} characters)", s.chars().count())
}

/// The text written at `loc`: the scalar's own span when the parser kept
/// it, else the rest of the line up to a YAML delimiter.
fn written_at(text: &str, loc: Location) -> Option<String> {
    let span = loc.span();
    if let (Some(off), Some(len)) = (span.byte_offset(), span.byte_len()) {
        let s = text.get(off as usize..(off + len) as usize).filter(|s| !s.is_empty());
        if let Some(s) = s {
            return Some(s.trim().to_string());
        }
    }
    let line = text.lines().nth(usize::try_from(loc.line()).ok()?.checked_sub(1)?)?;
    let rest: String = line.chars().skip(usize::try_from(loc.column()).ok()?.saturating_sub(1)).collect();
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    let s = rest[..end].trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// What a Rust/serde type name means to someone writing YAML.
fn allowed(expected: &str) -> String {
    let range = |lo: &str, hi: &str| format!("a whole number from {lo} to {hi}");
    match expected.trim_start_matches("a ").trim_start_matches("an ") {
        "u8" => range("0", "255"),
        "u16" => range("0", "65535"),
        "u32" => range("0", "4294967295"),
        "u64" => range("0", "18446744073709551615"),
        "i8" | "i16" | "i32" | "i64" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "bool" | "boolean" => "true or false".into(),
        "sequence" | "sequence start" => "a list, such as [1, 2] or lines starting with \"- \"".into(),
        "map" | "mapping" | "mapping start" => "a section of \"key: value\" lines (or { key: value })".into(),
        "string" | "scalar" | "plain scalar" => "a single value".into(),
        e if e.starts_with("struct ") => "a section of \"key: value\" lines (or { key: value })".into(),
        e if e.starts_with("sequence") || e.starts_with("tuple") => "a list".into(),
        e => e.to_string(),
    }
}

/// What serde calls the unexpected value ("integer `5`", "a sequence").
fn found(unexpected: &str) -> String {
    match unexpected {
        "sequence" | "a sequence" => "a list".into(),
        "map" | "a map" => "a section".into(),
        u => u.replace("integer ", "").replace("string ", "").replace("boolean ", "").replace("floating point ", ""),
    }
}

fn breach_words(b: &BudgetBreach) -> String {
    match b {
        BudgetBreach::ScalarBytes { total_scalar_bytes } => format!(
            "the values in this file add up to {total_scalar_bytes} bytes; a config holds at most {FILE_BYTES_MAX} \
             (is this the right file?)"
        ),
        BudgetBreach::Depth { depth } => format!("sections nest {depth} deep here; a config nests at most 32 deep"),
        BudgetBreach::Nodes { nodes } => format!("the file holds over {nodes} values; a config holds far fewer"),
        _ => "the file uses more YAML aliases, anchors or documents than a config can (is this the right file?)".into(),
    }
}

/// A parser error in plain words, with where it points.
pub(crate) fn describe(e: &YamlError, text: &str) -> (Option<Location>, String) {
    let e = e.without_snippet();
    let loc = e.location();
    let wrote = || loc.and_then(|l| written_at(text, l)).map_or_else(|| "nothing".into(), |w| shown(&w));
    let msg = match e {
        YamlError::InvalidScalar { ty, .. } => format!("wrote {}; expected {}", wrote(), allowed(ty)),
        YamlError::Unexpected { expected, .. } => format!("wrote {}; expected {}", wrote(), allowed(expected)),
        YamlError::SerdeInvalidType { unexpected, expected, .. }
        | YamlError::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("wrote {}; expected {}", found(unexpected), allowed(expected))
        }
        YamlError::DuplicateMappingKey { key, .. } => match key {
            Some(k) => format!("{k:?} is set twice in this section; keep one"),
            None => "a key is set twice in this section; keep one".into(),
        },
        YamlError::Budget { breach, .. } => breach_words(breach),
        YamlError::InvalidUtf8Input => "the file is not UTF-8 text; save it as UTF-8".into(),
        YamlError::Eof { .. } => "the file ends where a value was expected (is it empty or cut short?)".into(),
        YamlError::MultipleDocuments { .. } => "the file holds several YAML documents (\"---\"); keep one".into(),
        YamlError::UnexpectedSequenceEnd { .. } | YamlError::UnexpectedMappingEnd { .. } => {
            format!("a value is missing before {}", wrote())
        }
        other => syntax(&other.to_string()),
    };
    match loc.and_then(|l| path_at(text, l)) {
        Some(path) if !msg.starts_with(&path) => (loc, format!("{path}: {msg}")),
        _ => (loc, msg),
    }
}

/// The parser's own text (unknown and missing keys, syntax errors, our
/// own value parsers), without the location it appends: we put it in front.
fn syntax(s: &str) -> String {
    let s = s.rfind(" at line ").map_or(s, |i| &s[..i]);
    let s = s.strip_prefix("YAML parse error: ").unwrap_or(s);
    s.replace("did not find expected", "expected")
}

/// Where a non-UTF-8 file first goes wrong.
pub(crate) fn not_utf8(file: &str, bytes: &[u8], e: &std::str::Utf8Error) -> ConfigError {
    let good = &bytes[..e.valid_up_to()];
    let line = good.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    // Columns count characters, as the parser's do.
    let column = std::str::from_utf8(&good[line_start..]).map_or(1, |s| s.chars().count() as u64 + 1);
    let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
    ConfigError {
        file: file.to_string(),
        at: Some((line, column)),
        message: format!("byte 0x{byte:02x} is not UTF-8 text; save the file as UTF-8 (plain ASCII is fine)"),
    }
}

/// A YAML tree that remembers where each value is, to point check errors
/// (made after parsing, on plain values) at the key they are about.
#[derive(Debug)]
pub(crate) enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

/// A mapping key of any scalar kind (`eal.cpus` has numbers as keys).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(Key(k)) = m.next_key()? {
                    entries.push((k, m.next_value()?));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = s.next_element()? {
                    items.push(v);
                }
                Ok(Node::Seq(items))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
        }
        d.deserialize_any(V)
    }
}

/// Where `path` (`workers.rx_burst`, `ports[0].rx_desc`) is set in
/// `text`: `(location, exact)`, where a key the file leaves at its default
/// resolves to its nearest enclosing section that the file does set.
pub(crate) fn locate(text: &str, path: &str) -> Option<(Location, bool)> {
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, parse_options()).ok()?;
    let mut node = &root;
    let mut found = None;
    for seg in path.split('.') {
        let (key, indexes) = seg.split_once('[').map_or((seg, ""), |(k, rest)| (k, rest));
        let next = match &node.value {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        };
        let Some(mut next) = next else { return found.map(|l| (l, false)) };
        for idx in indexes.split('[').map(|s| s.trim_end_matches(']')).filter(|s| !s.is_empty()) {
            let item = match (&next.value, idx.parse::<usize>()) {
                (Node::Seq(items), Ok(i)) => items.get(i),
                _ => None,
            };
            match item {
                Some(item) => next = item,
                None => return Some((next.referenced, false)),
            }
        }
        node = next;
        found = Some(node.referenced);
    }
    found.map(|l| (l, true))
}

/// The key path of the value at `loc` (`eal.main_lcore`), when the file
/// parses as YAML and a value starts there.
pub(crate) fn path_at(text: &str, loc: Location) -> Option<String> {
    fn walk(node: &Spanned<Node>, loc: Location, path: &mut String) -> bool {
        let here = node.referenced;
        if (here.line(), here.column()) == (loc.line(), loc.column()) && !path.is_empty() {
            return true;
        }
        let len = path.len();
        let children: Vec<(String, &Spanned<Node>)> = match &node.value {
            Node::Map(entries) => {
                entries.iter().map(|(k, v)| (if path.is_empty() { k.clone() } else { format!(".{k}") }, v)).collect()
            }
            Node::Seq(items) => items.iter().enumerate().map(|(i, v)| (format!("[{i}]"), v)).collect(),
            Node::Scalar => Vec::new(),
        };
        for (seg, child) in children {
            path.push_str(&seg);
            if walk(child, loc, path) {
                return true;
            }
            path.truncate(len);
        }
        false
    }
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, parse_options()).ok()?;
    let mut path = String::new();
    walk(&root, loc, &mut path).then_some(path)
}
