//! MemoryStreamer's YAML config (the dataplane's and the control plane's):
//! strict (unknown keys are errors), every value checked while it is read
//! so errors carry file:line:column, and cross-field checks named by their
//! path in the file. Plain values only: the dataplane turns them into its
//! own types (`ms_dataplane::settings`), so the control plane reads YAML
//! without compiling the dataplane's crates.
//!
//! `schema` is the file's shape and defaults, `values` the string-typed
//! values, `check` the cross-field checks, `keys` the one table of keys
//! (live or restart), `diff` what changes between two files.

use std::path::Path;

mod check;
mod diff;
mod errors;
pub mod examples;
pub mod host;
pub mod keys;
mod schema;
mod values;

pub use diff::Diff;
pub use errors::ConfigError;
pub use host::Host;
pub use schema::*;
pub use values::{Cidr, Device, Ip, Mac};

// The bounds the checks hold values to, defined once with their relations
// asserted at compile time.
pub use ms_limits::{LCORE_ID_MAX, POLICY_RANGES_MAX, PORTS_MAX, ROUTES_MAX, RX_BURST_MAX, WORKERS_MAX};
/// Largest `memory.budget_bytes`: 1 TiB.
pub const MEMORY_BUDGET_MAX: u64 = 1 << 40;
/// Smallest share of `memory.budget_bytes` a worker may get: 1 MiB.
pub const WORKER_SHARE_MIN: u64 = 1 << 20;
/// Largest `scheduler.quantum_bytes`, `scheduler.tx_budget_max`.
const SCHEDULER_LIMIT: u32 = 65_536;
/// The largest message payload, which every credit and queue limit must hold.
const PAYLOAD_MAX: u64 = ms_wire::PAYLOAD_MAX as u64;

impl Config {
    /// Reads, parses and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&Self::read_text(path)?, &path.display().to_string())
    }

    /// A config file's text: refused when unreadable, over
    /// `errors::FILE_BYTES_MAX` or not UTF-8.
    fn read_text(path: &Path) -> Result<String, ConfigError> {
        let file = path.display().to_string();
        let unreadable = |message: String| ConfigError { file: file.clone(), at: None, message };
        let len = std::fs::metadata(path)
            .map_err(|e| unreadable(format!("cannot read config: {e}; check the path and its permissions")))?
            .len();
        if len > errors::FILE_BYTES_MAX as u64 {
            return Err(unreadable(format!(
                "the file is {len} bytes; a config is a few KiB and at most {} (is this the right file?)",
                errors::FILE_BYTES_MAX
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| unreadable(format!("cannot read config: {e}; check the path and its permissions")))?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(errors::not_utf8(&file, e.as_bytes(), &e.utf8_error())),
        }
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_saphyr::from_str_with_options(text, errors::parse_options()).map_err(|e| {
            let (at, msg) = errors::describe(&e, text);
            ConfigError::at(origin, at, msg)
        })?;
        cfg.check().map_err(|e| e.located(origin, "", Some(text)))?;
        Ok(cfg)
    }

    /// The running config `self` with every live key taken from `new` (a
    /// checked config read from `origin`): what is in force after a live
    /// apply until the next restart. Checked again as a whole, because
    /// `new`'s live values were checked against its own restart-only ones
    /// (e.g. `memory.stream_queue_bytes_max` against `memory.budget_bytes`
    /// and `workers`), and the running ones stay until a restart.
    pub fn with_live(&self, new: &Config, origin: &str) -> Result<Config, ConfigError> {
        let mut c = self.clone();
        c.take_live(new);
        c.check().map_err(|e| {
            e.located(
                origin,
                " (checked against the running workers and memory.budget_bytes, which change only at a restart: \
                 restart with the new file, or apply the live keys in a step of their own)",
                None,
            )
        })?;
        Ok(c)
    }

    /// One worker's share of `memory.budget_bytes`.
    pub fn worker_queue_bytes(&self) -> u64 {
        self.memory.budget_bytes.value / self.workers.lcores.value.len().max(1) as u64
    }

    /// The ports, in config order.
    pub fn ports(&self) -> &[PortConfig] {
        &self.ports.value
    }

    /// The worker lcores, in config order.
    pub fn worker_lcores(&self) -> &[u32] {
        &self.workers.lcores.value
    }

    /// Every PCI device the config names.
    pub fn pci_devices(&self) -> impl Iterator<Item = &str> {
        self.ports.value.iter().filter_map(|p| match &p.device {
            Device::Pci(a) => Some(a.as_str()),
            Device::Vdev { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests;
