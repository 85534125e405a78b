//! The dataplane's control socket: a Unix socket (mode 0600) served by its
//! own thread, one JSON request per connection.
//! The control plane uses it; the dataplane never depends on it.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"log_level","level":"debug"}`,
//! `{"cmd":"apply","yaml":"...","origin":"file.yaml"}`. Responses are one
//! JSON object with `"ok": true|false`.

use crate::config::Config;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections handled per call, so the thread checks `stop` often.
const CONNECTIONS_PER_POLL: usize = 4;
/// Time one connection may take in all (read, handle, write), so a client
/// trickling bytes cannot hold the control thread.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(1);
/// Largest request accepted (a config file fits easily).
const REQUEST_BYTES_MAX: u64 = 1 << 20;

/// Settings workers read at run time (relaxed loads, once per loop turn).
#[derive(Debug)]
pub struct Live {
    /// `streams.subscription_lifetime_ms`.
    pub lifetime_ms: AtomicU64,
}

impl Live {
    /// The live settings of `cfg`.
    pub fn new(cfg: &Config) -> Live {
        Live { lifetime_ms: AtomicU64::new(u64::from(cfg.streams.subscription_lifetime_ms)) }
    }
}

/// Changes the log filter at run time; returns why a filter was refused.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// Port facts for `status`.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Port name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// MAC in use.
    pub mac: String,
    /// DPDK port id, for link queries.
    pub id: u16,
}

/// What the control socket works on.
pub struct ControlState {
    /// The config in force (live changes applied).
    pub running: Config,
    /// Where it came from.
    pub origin: String,
    /// Live settings shared with workers.
    pub live: Arc<Live>,
    /// Ports.
    pub ports: Vec<PortInfo>,
    /// Changes the log filter; returns an error text if refused.
    pub set_log_level: SetLogLevel,
    /// Link state of a port id: (up, speed Mbit/s).
    pub link: Box<dyn Fn(u16) -> (bool, u32) + Send>,
    /// The current log filter.
    pub log_level: String,
    /// When the dataplane started.
    pub started: Instant,
}

/// The listening socket.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (replacing a stale socket), mode 0600, non-blocking.
    pub fn bind(path: &Path) -> anyhow::Result<ControlSocket> {
        use anyhow::Context;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .with_context(|| format!("bind the control socket {} (telemetry.control_socket)", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket { listener, path: path.to_path_buf() })
    }

    /// Serves waiting connections (a bounded number).
    pub fn poll(&self, st: &mut ControlState) {
        for _ in 0..CONNECTIONS_PER_POLL {
            match self.listener.accept() {
                Ok((conn, _)) => serve(conn, st),
                Err(_) => return,
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(mut conn: UnixStream, st: &mut ControlState) {
    let _ = conn.set_nonblocking(false);
    let response = match read_request(&mut conn) {
        Ok(line) => match serde_json::from_str::<Value>(&line) {
            Ok(req) => handle(&req, st),
            Err(e) => json!({ "ok": false, "error": format!("request is not JSON: {e}") }),
        },
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let _ = conn.set_write_timeout(Some(CONNECTION_DEADLINE));
    let _ = writeln!(conn, "{response}");
}

/// Reads one line within CONNECTION_DEADLINE in all (not per read, so a
/// client trickling bytes cannot hold the thread) and REQUEST_BYTES_MAX.
fn read_request(conn: &mut UnixStream) -> Result<String, String> {
    use std::io::Read;
    let deadline = Instant::now() + CONNECTION_DEADLINE;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while !buf.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || buf.len() as u64 > REQUEST_BYTES_MAX {
            return Err("request too slow or too large".into());
        }
        let _ = conn.set_read_timeout(Some(left));
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("cannot read the request: {e}")),
        }
    }
    let end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).map_err(|_| "request is not UTF-8".to_string())
}

/// One request -> one response (shared by the socket and the tests).
pub fn handle(req: &Value, st: &mut ControlState) -> Value {
    match req["cmd"].as_str() {
        Some("status") => status(st),
        Some("log_level") => match req["level"].as_str() {
            Some(level) => match (st.set_log_level)(level) {
                Ok(()) => {
                    st.log_level = level.to_string();
                    tracing::info!(level, "log level changed");
                    json!({ "ok": true, "log_level": level })
                }
                Err(e) => json!({ "ok": false, "error": e }),
            },
            None => json!({ "ok": false, "error": "log_level needs \"level\"" }),
        },
        Some("apply") => apply(req["yaml"].as_str().unwrap_or(""), req["origin"].as_str().unwrap_or("request"), st),
        _ => json!({ "ok": false, "error": "unknown cmd; expected status, log_level or apply" }),
    }
}

fn status(st: &ControlState) -> Value {
    let ports: Vec<Value> = st
        .ports
        .iter()
        .map(|p| {
            let (up, speed) = (st.link)(p.id);
            json!({ "name": p.name, "driver": p.driver, "mac": p.mac, "link_up": up, "speed_mbps": speed })
        })
        .collect();
    json!({
        "ok": true,
        "pid": std::process::id(),
        "uptime_s": st.started.elapsed().as_secs_f64(),
        "config_origin": st.origin,
        "log_level": st.log_level,
        "ports": ports,
        "workers": st.running.worker_lcores(),
        "live": {
            "streams.subscription_lifetime_ms": st.live.lifetime_ms.load(Ordering::Relaxed),
        },
    })
}

/// Validates `yaml`; on success applies what can change live, all at once,
/// and reports what needs a restart. A refused config changes nothing.
fn apply(yaml: &str, origin: &str, st: &mut ControlState) -> Value {
    let new = match Config::parse(yaml, origin) {
        Ok(c) => c,
        Err(e) => return json!({ "ok": false, "error": format!("{e:#}") }),
    };
    let diff = st.running.diff(&new);
    let (live, restart) = (diff.live, diff.restart);
    st.live.lifetime_ms.store(u64::from(new.streams.subscription_lifetime_ms), Ordering::Relaxed);
    st.running.streams.subscription_lifetime_ms = new.streams.subscription_lifetime_ms;
    tracing::info!(origin, applied = ?live, restart_needed = ?restart, "config applied");
    json!({ "ok": true, "applied": live, "restart_needed": restart })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "eal: { hugepages: off }\nports:\n  - { name: p0, device: \"net_null0\", ipv4: \"198.18.0.1/24\" }\nworkers: { lcores: [1] }\n";

    fn state() -> ControlState {
        let running = Config::parse(CFG, "t").unwrap();
        ControlState {
            live: Arc::new(Live::new(&running)),
            running,
            origin: "t".into(),
            ports: vec![],
            set_log_level: Box::new(|l| if l == "bogus[" { Err("bad filter".into()) } else { Ok(()) }),
            link: Box::new(|_| (true, 0)),
            log_level: "info".into(),
            started: Instant::now(),
        }
    }

    #[test]
    fn refused_config_changes_nothing() {
        let mut st = state();
        let r = handle(
            &json!({"cmd": "apply", "yaml": CFG.replace("lcores: [1]", "lcores: [0]"), "origin": "new.yaml"}),
            &mut st,
        );
        assert_eq!(r["ok"], false);
        assert!(r["error"].as_str().unwrap().contains("new.yaml:4:"), "{r}");
        assert_eq!(st.live.lifetime_ms.load(Ordering::Relaxed), 10_000);
    }

    #[test]
    fn live_and_restart_changes_are_told_apart() {
        let mut st = state();
        let yaml = format!("{CFG}streams: {{ subscription_lifetime_ms: 2500 }}\narp: {{ entry_ttl_s: 30 }}\n");
        let r = handle(&json!({"cmd": "apply", "yaml": yaml}), &mut st);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["applied"], json!(["streams.subscription_lifetime_ms"]));
        assert_eq!(r["restart_needed"], json!(["arp"]));
        assert_eq!(st.live.lifetime_ms.load(Ordering::Relaxed), 2500);
        assert_eq!(status(&st)["live"]["streams.subscription_lifetime_ms"], 2500);
    }

    #[test]
    fn log_level_and_unknown_commands() {
        let mut st = state();
        assert_eq!(handle(&json!({"cmd": "log_level", "level": "debug"}), &mut st)["ok"], true);
        assert_eq!(st.log_level, "debug");
        assert_eq!(handle(&json!({"cmd": "log_level", "level": "bogus["}), &mut st)["ok"], false);
        assert_eq!(handle(&json!({"cmd": "nope"}), &mut st)["ok"], false);
    }
}
