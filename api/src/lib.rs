//! The requests and answers of MemoryStreamer's two control sockets, one
//! JSON object per line each way:
//!
//! - [`CliRequest`]: `msctl` to `ms-controlplane` (`controlplane.socket`);
//! - [`ControlRequest`]: `ms-controlplane` to the dataplane
//!   (`telemetry.control_socket`).
//!
//! Requests are tagged by `"cmd"`. Every answer is an object with
//! `"ok": true` and its fields ([`done`]), or `{"ok": false, "error": ..}`
//! ([`refused`]). Serde types only: both sides use them without DPDK.

#![warn(missing_docs)]

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Where a config text came from when the request does not say.
pub const ORIGIN_DEFAULT: &str = "request";

fn origin_default() -> String {
    ORIGIN_DEFAULT.to_string()
}

/// A string field that older clients may send as anything: a string is
/// taken, anything else (or nothing) is `None`, never an error.
fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().map(str::to_owned)))
}

/// `lenient`, defaulting to [`ORIGIN_DEFAULT`].
fn lenient_origin<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient(d)?.unwrap_or_else(origin_default))
}

/// `lenient`, defaulting to the empty string.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(lenient(d)?.unwrap_or_default())
}

/// A request to the dataplane's control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Ports, workers, uptime, the live settings in force.
    Status,
    /// Changes the log filter.
    LogLevel {
        /// A tracing filter (`debug`, `info,ms_dataplane=debug`).
        level: String,
    },
    /// Checks a config and applies its live keys, all or nothing.
    Apply {
        /// The YAML text (a missing one is an empty, refused, config).
        #[serde(default, deserialize_with = "lenient_text")]
        yaml: String,
        /// Names the text in errors.
        #[serde(default = "origin_default", deserialize_with = "lenient_origin")]
        origin: String,
    },
}

/// The answer to a [`ControlRequest`] that is not one.
pub const CONTROL_UNKNOWN: &str = "unknown cmd; expected status, log_level or apply";

impl ControlRequest {
    /// Parses one request line; `Err` is the text to refuse it with.
    pub fn from_line(line: &str) -> Result<ControlRequest, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("request is not JSON: {e}"))?;
        let cmd = v.get("cmd").and_then(Value::as_str).map(str::to_owned);
        serde_json::from_value(v).map_err(|_| match cmd.as_deref() {
            Some("log_level") => "log_level needs \"level\"".to_string(),
            _ => CONTROL_UNKNOWN.to_string(),
        })
    }
}

/// A config text sent to the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigText {
    /// The YAML.
    pub yaml: String,
    /// Names the text in errors (the file's path, for `msctl`).
    #[serde(default = "origin_default", deserialize_with = "lenient_origin")]
    pub origin: String,
}

/// A request from `msctl` to the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum CliRequest {
    /// Both processes, rates, totals.
    Status,
    /// Every counter, per worker and in total.
    Stats,
    /// The busiest streams.
    StreamsTop,
    /// Streams and subscribers that lost the most messages.
    StreamsAffected,
    /// Checks a config.
    ConfigValidate(ConfigText),
    /// What applying a config would change.
    ConfigDiff(ConfigText),
    /// Applies a config's live keys.
    ConfigApply(ConfigText),
    /// Changes both processes' log filter.
    LogLevel {
        /// A tracing filter.
        level: String,
    },
}

impl CliRequest {
    /// Parses one request line; `Err` is the text to refuse it with.
    pub fn from_line(line: &str) -> Result<CliRequest, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("request is not JSON: {e}"))?;
        let Some(cmd) = v.get("cmd").and_then(Value::as_str).map(str::to_owned) else {
            return Err("request has no \"cmd\"".into());
        };
        serde_json::from_value(v).map_err(|_| match cmd.as_str() {
            "config_validate" | "config_diff" | "config_apply" => "request has no \"yaml\"".to_string(),
            "log_level" => "request has no \"level\"".to_string(),
            other => format!("unknown command {other:?}"),
        })
    }
}

/// `{"ok": true}` with `body`'s fields (a body that is not an object, as
/// `"body"`).
pub fn done<T: Serialize>(body: &T) -> Value {
    let mut obj = match serde_json::to_value(body) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => Map::new(),
        Ok(other) => Map::from_iter([("body".to_string(), other)]),
        Err(e) => return refused(format!("cannot encode the answer: {e}")),
    };
    obj.insert("ok".into(), true.into());
    Value::Object(obj)
}

/// `{"ok": false, "error": why}`.
pub fn refused(why: impl std::fmt::Display) -> Value {
    serde_json::json!({ "ok": false, "error": why.to_string() })
}

/// The answer to [`ControlRequest::LogLevel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevelSet {
    /// The filter now in force.
    pub log_level: String,
}

/// The answer to [`ControlRequest::Apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Keys (or whole sections) applied live.
    pub applied: Vec<String>,
    /// Keys (or sections) that differ but need a dataplane restart.
    pub restart_needed: Vec<String>,
}

/// One port in [`DataplaneStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    /// The config's name for it.
    pub name: String,
    /// The DPDK driver.
    pub driver: String,
    /// The MAC in use.
    pub mac: String,
    /// Link state as the driver reports it.
    pub link_up: bool,
    /// Link speed, Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// The driver's own drop counters, by name.
    pub driver_drops: BTreeMap<String, u64>,
}

/// The answer to [`ControlRequest::Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataplaneStatus {
    /// The dataplane's process id.
    pub pid: u32,
    /// This run's identity, 16 hex digits.
    pub instance: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Where the config came from.
    pub config_origin: String,
    /// The log filter in force.
    pub log_level: String,
    /// Ports in config order.
    pub ports: Vec<PortStatus>,
    /// Worker lcores.
    pub workers: Vec<u32>,
    /// The live settings in force, by config key (`ms_config::keys`).
    pub live: BTreeMap<String, Value>,
}

/// The answer to [`CliRequest::ConfigDiff`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDiff {
    /// What would change live.
    pub live: Vec<String>,
    /// What would need a dataplane restart.
    pub restart: Vec<String>,
    /// Whether the control plane would need a restart.
    pub controlplane_restart: bool,
}

/// One row of [`CliRequest::StreamsTop`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopStream {
    /// Stream id.
    pub stream: u64,
    /// Messages published (an estimate).
    pub messages: u64,
    /// The estimate's lower bound.
    pub at_least: u64,
}

/// One row of [`CliRequest::StreamsAffected`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedStream {
    /// Stream id.
    pub stream: u64,
    /// The subscriber's address.
    pub subscriber: String,
    /// Messages it lost.
    pub messages_lost: u64,
}

#[cfg(test)]
mod tests;
