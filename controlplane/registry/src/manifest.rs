//! `manifest.yaml`: what a plugin is, what it needs and what it asks for.
//! Strict like the config: unknown keys are errors, and every value is
//! checked while it is read so a refusal carries its line and column.

use crate::yaml;
use ms_plugin_abi::{ABI_VERSION, BUFFER_LEN, COUNTERS_MAX};
use semver::{Version, VersionReq};
use serde::{de, Deserialize, Deserializer};
use serde_saphyr::Spanned;
use std::collections::BTreeSet;
use std::fmt;

/// Largest manifest accepted: a real one is well under a KiB.
pub const MANIFEST_BYTES_MAX: usize = 64 << 10;
/// Longest plugin or counter name.
const NAME_CHARS_MAX: usize = 64;
/// Longest description: a line or a short paragraph for `msctl`.
const DESCRIPTION_CHARS_MAX: usize = 1024;
/// Longest per-batch deadline a plugin may ask for: a batch runs on a
/// worker core, and a second-long batch already stalls every stream on it.
const DEADLINE_MS_MAX: u32 = 1000;
/// A wasm32 memory's size limit.
const MEMORY_BYTES_MAX: u64 = 1 << 32;

/// A parsed and checked manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The plugin's name: 1 to 64 of `a-z`, `0-9` and `-`, not starting with `-`.
    pub name: String,
    /// Its version (semver, without build metadata).
    pub version: Version,
    /// The ABI versions it works with; accepts [`ABI_VERSION`].
    pub abi: VersionReq,
    /// What it does, for people.
    pub description: String,
    /// Plugins that must run before it in a chain.
    pub after: Vec<After>,
    /// Names of its counters: counter id `i` is `counters[i]`.
    pub counters: Vec<String>,
    /// What it asks the host for; the control plane decides what it gets.
    pub limits: Limits,
}

/// An ordering dependency: in a chain, this plugin comes after `name`, at
/// a version matching `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// The plugin that must come earlier.
    pub name: String,
    /// The versions of it this plugin works after.
    pub version: VersionReq,
}

/// Resource requests; `None` leaves the host's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in bytes.
    pub memory_bytes: Option<u64>,
    /// Time for one call, in milliseconds.
    pub deadline_ms: Option<u32>,
    /// Instructions for one call (when the host meters fuel).
    pub fuel: Option<u64>,
}

/// A manifest that cannot be used: where (file, and line:column when the
/// text has a place for it) and what is wrong, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file (or whatever the text came from).
    pub file: String,
    /// Line and column (1-based) of the offending value.
    pub at: Option<(u64, u64)>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl Manifest {
    /// Parses and checks manifest bytes; `origin` names them in errors.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Manifest, ManifestError> {
        let error = |at, message| ManifestError { file: origin.to_string(), at, message };
        if bytes.len() > MANIFEST_BYTES_MAX {
            let msg = format!(
                "the file is {} bytes; a manifest is a few hundred and at most {MANIFEST_BYTES_MAX} (is this the right file?)",
                bytes.len()
            );
            return Err(error(None, msg));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| error(None, format!("byte {} is not UTF-8 text; save the file as UTF-8", e.valid_up_to())))?;
        let raw: Raw = serde_saphyr::from_str_with_options(text, yaml::options(MANIFEST_BYTES_MAX)).map_err(|e| {
            let (at, msg) = yaml::describe(&e);
            // Every message points into the file, as the config's do.
            error(Some(at.unwrap_or((1, 1))), msg)
        })?;
        raw.check().map_err(|(at, msg)| error(Some(at), msg))
    }
}

/// A check's refusal: line:column and message.
type Refusal = ((u64, u64), String);

fn at<T>(s: &Spanned<T>) -> (u64, u64) {
    yaml::line_column(s.referenced).unwrap_or((1, 1))
}

/// The file's shape; values are checked as they are read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Name,
    version: Semver,
    abi: Abi,
    description: Description,
    #[serde(default)]
    after: Vec<Spanned<RawAfter>>,
    #[serde(default)]
    counters: Option<Spanned<Vec<Spanned<CounterName>>>>,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAfter {
    name: Name,
    version: Req,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_bytes: Option<MemoryBytes>,
    deadline_ms: Option<DeadlineMs>,
    fuel: Option<Fuel>,
}

impl Raw {
    /// The checks across values: counters and `after` entries.
    fn check(self) -> Result<Manifest, Refusal> {
        let counters = self.counters.map_or(Ok(Vec::new()), check_counters)?;
        let after = check_after(&self.name.0, self.after)?;
        Ok(Manifest {
            name: self.name.0,
            version: self.version.0,
            abi: self.abi.0,
            description: self.description.0,
            after,
            counters,
            limits: Limits {
                memory_bytes: self.limits.memory_bytes.map(|m| m.0),
                deadline_ms: self.limits.deadline_ms.map(|d| d.0),
                fuel: self.limits.fuel.map(|f| f.0),
            },
        })
    }
}

fn check_counters(list: Spanned<Vec<Spanned<CounterName>>>) -> Result<Vec<String>, Refusal> {
    if list.value.len() > COUNTERS_MAX {
        let msg = format!(
            "counters: {} names; a plugin has at most {COUNTERS_MAX} counters (ids 0..{COUNTERS_MAX}): remove some",
            list.value.len()
        );
        return Err((at(&list), msg));
    }
    let mut seen = BTreeSet::new();
    let mut names = Vec::with_capacity(list.value.len());
    for c in list.value {
        if !seen.insert(c.value.0.clone()) {
            let msg = format!("counters: {:?} is listed twice; each counter id needs its own name", c.value.0);
            return Err((at(&c), msg));
        }
        names.push(c.value.0);
    }
    Ok(names)
}

fn check_after(own: &str, list: Vec<Spanned<RawAfter>>) -> Result<Vec<After>, Refusal> {
    let mut seen = BTreeSet::new();
    let mut after = Vec::with_capacity(list.len());
    for a in list {
        let name = &a.value.name.0;
        if name == own {
            let msg = format!("after: {own:?} names this plugin itself; list only the plugins it must follow");
            return Err((at(&a), msg));
        }
        if !seen.insert(name.clone()) {
            let msg = format!("after: {name:?} is listed twice; keep one entry with the version requirement");
            return Err((at(&a), msg));
        }
        after.push(After { name: a.value.name.0, version: a.value.version.0 });
    }
    Ok(after)
}

/// Reads a value from its string form inside `Deserialize`, so a bad one
/// is reported at its own line and column.
macro_rules! from_str_deserialize {
    ($t:ident, $parse:expr) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map($t).map_err(de::Error::custom)
            }
        }
    };
}

/// Reads a number inside `Deserialize` and checks it against a range.
macro_rules! bounded_deserialize {
    ($t:ident, $n:ty, $key:literal, $lo:expr, $hi:expr, $why:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let expected = || format!(concat!("expected a whole number from {} to {} ", $why), $lo, $hi);
                // A negative or fractional number, or text, gets the same
                // words as one out of range.
                let v = <$n>::deserialize(d).map_err(|_| de::Error::custom(format!("{}: {}", $key, expected())))?;
                if ($lo..=$hi).contains(&v) {
                    return Ok($t(v));
                }
                Err(de::Error::custom(format!("{}: wrote {v}; {}", $key, expected())))
            }
        }
    };
}

struct Name(String);
from_str_deserialize!(Name, parse_name);

struct Semver(Version);
from_str_deserialize!(Semver, parse_version);

struct Req(VersionReq);
from_str_deserialize!(Req, parse_req);

struct Abi(VersionReq);
from_str_deserialize!(Abi, parse_abi);

struct Description(String);
from_str_deserialize!(Description, parse_description);

struct CounterName(String);
from_str_deserialize!(CounterName, parse_counter);

struct MemoryBytes(u64);
bounded_deserialize!(
    MemoryBytes,
    u64,
    "limits.memory_bytes",
    BUFFER_LEN as u64,
    MEMORY_BYTES_MAX,
    "(the ABI's shared buffer alone takes the lower bound; a wasm32 memory holds at most the upper)"
);

struct DeadlineMs(u32);
bounded_deserialize!(
    DeadlineMs,
    u32,
    "limits.deadline_ms",
    1,
    DEADLINE_MS_MAX,
    "(a batch runs on a worker core: a longer call stalls every stream on it)"
);

struct Fuel(u64);
bounded_deserialize!(Fuel, u64, "limits.fuel", 1, u64::MAX, "(instructions for one call)");

/// A plugin name: 1 to 64 of `a-z`, `0-9`, `-`; not starting with `-`, so
/// it never reads as a command-line option.
pub(crate) fn parse_name(s: &str) -> Result<String, String> {
    let charset = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !charset || s.is_empty() || s.len() > NAME_CHARS_MAX || s.starts_with('-') {
        return Err(format!(
            "{s:?} is not a plugin name: use 1 to {NAME_CHARS_MAX} of a-z, 0-9 and -, not starting with -"
        ));
    }
    Ok(s.to_string())
}

fn parse_version(s: &str) -> Result<Version, String> {
    let v = Version::parse(s)
        .map_err(|e| format!("{s:?} is not a semantic version ({e}); write MAJOR.MINOR.PATCH, such as 1.2.0"))?;
    if !v.build.is_empty() {
        // Two versions differing only by build metadata are the same
        // version to semver, so a chain could not choose between them.
        return Err(format!("{s:?} has build metadata (+{}); remove it, or bump the version", v.build));
    }
    Ok(v)
}

fn parse_req(s: &str) -> Result<VersionReq, String> {
    VersionReq::parse(s)
        .map_err(|e| format!("{s:?} is not a version requirement ({e}); write one such as \"^1.2\" or \">=1.0, <3\""))
}

fn parse_abi(s: &str) -> Result<VersionReq, String> {
    let req = parse_req(s)?;
    if !req.matches(&Version::new(u64::from(ABI_VERSION), 0, 0)) {
        return Err(format!(
            "abi: {s:?} does not accept ABI {ABI_VERSION}, the one this appliance runs; \
             rebuild the plugin against plugin ABI {ABI_VERSION} and write abi: \"^{ABI_VERSION}\""
        ));
    }
    Ok(req)
}

fn parse_description(s: &str) -> Result<String, String> {
    let chars = s.trim().chars().count();
    if chars == 0 || chars > DESCRIPTION_CHARS_MAX {
        return Err(format!(
            "description: {chars} characters; write what the plugin does in 1 to {DESCRIPTION_CHARS_MAX}"
        ));
    }
    Ok(s.trim().to_string())
}

fn parse_counter(s: &str) -> Result<String, String> {
    let charset = s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !charset || s.is_empty() || s.len() > NAME_CHARS_MAX {
        return Err(format!("counters: {s:?} is not a counter name: use 1 to {NAME_CHARS_MAX} of a-z, 0-9 and _"));
    }
    Ok(s.to_string())
}
