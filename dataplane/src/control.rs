//! The dataplane's control socket: a Unix socket (mode 0600) served by its
//! own thread, one JSON request per connection.
//! The control plane uses it; the dataplane never depends on it.
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"log_level","level":"debug"}`,
//! `{"cmd":"apply","yaml":"...","origin":"file.yaml"}`. Responses are one
//! JSON object with `"ok": true|false`.

use crate::config::Config;
use ms_streams::Tunables;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
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
    /// The `scheduler`, `flow` and live `memory` keys; written by the
    /// control thread, copied out by workers between bursts.
    tunables: Mutex<Tunables>,
    /// Bumped (under the lock) each time `tunables` is replaced; starts at
    /// 1, so a worker whose `seen` starts at 0 takes the first set too.
    generation: AtomicU64,
    /// Workers that finished building their tables and entered their loop.
    pub workers_started: std::sync::atomic::AtomicUsize,
    /// This run's instance identity, sent to clients in every ACK so they
    /// can tell a restarted appliance (which holds none of their
    /// subscriptions) from the one they subscribed to.
    pub instance: u64,
}

/// A random nonzero instance identity: from the kernel's random source, or
/// (should it be unreadable) from the clock and the process id, which also
/// differ between two runs.
fn new_instance() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    let x = if random {
        u64::from_le_bytes(b)
    } else {
        let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        ms_wire::shard::mix(ns ^ u64::from(std::process::id()) << 32)
    };
    x.max(1)
}

impl Live {
    /// The live settings of `cfg`.
    pub fn new(cfg: &Config) -> Live {
        Live {
            lifetime_ms: AtomicU64::new(u64::from(cfg.streams.subscription_lifetime_ms)),
            tunables: Mutex::new(cfg.tunables()),
            generation: AtomicU64::new(1),
            workers_started: std::sync::atomic::AtomicUsize::new(0),
            instance: new_instance(),
        }
    }

    /// The tunables, if they changed since generation `*seen` (which is
    /// then updated). For workers, between bursts: one atomic load when
    /// nothing changed, else a `try_lock` and a copy; never allocates or
    /// blocks. `None` also when the control thread holds the lock at that
    /// moment: `*seen` stays, so the next call tries again.
    pub fn tunables_if_changed(&self, seen: &mut u64) -> Option<Tunables> {
        if self.generation.load(Ordering::Acquire) == *seen {
            return None;
        }
        let t = match self.tunables.try_lock() {
            Ok(t) => t,
            // The writer only stores a Copy value: what it left is whole.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        // Read under the lock, so generation and values belong together.
        *seen = self.generation.load(Ordering::Relaxed);
        Some(*t)
    }

    /// The tunables in force (locks; for the control thread).
    pub fn tunables(&self) -> Tunables {
        *self.tunables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the tunables and bumps the generation, so every worker
    /// takes them at its next check.
    fn set_tunables(&self, t: Tunables) {
        let mut cur = self.tunables.lock().unwrap_or_else(|p| p.into_inner());
        *cur = t;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times the tunables were set (1 at start).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
    /// The driver's drop counters of a port id.
    pub drops: Box<dyn Fn(u16) -> crate::port::PortDrops + Send>,
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
            let drops: serde_json::Map<String, Value> =
                (st.drops)(p.id).fields().iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
            json!({ "name": p.name, "driver": p.driver, "mac": p.mac, "link_up": up, "speed_mbps": speed, "driver_drops": drops })
        })
        .collect();
    json!({
        "ok": true,
        "pid": std::process::id(),
        "instance": format!("{:016x}", st.live.instance),
        "uptime_s": st.started.elapsed().as_secs_f64(),
        "config_origin": st.origin,
        "log_level": st.log_level,
        "ports": ports,
        "workers": st.running.worker_lcores(),
        "live": live_values(&st.live),
    })
}

/// The live settings in force, keyed as in the config file.
fn live_values(live: &Live) -> Value {
    let t = live.tunables();
    let policies: Vec<Value> =
        t.policies().iter().map(|r| json!({ "first": r.first, "last": r.last, "policy": r.policy.name() })).collect();
    json!({
        "streams.subscription_lifetime_ms": live.lifetime_ms.load(Ordering::Relaxed),
        "scheduler.quantum_bytes": t.quantum_bytes,
        "scheduler.starvation_guard": t.starvation_guard,
        "scheduler.rx_burst_min": t.rx_burst_min,
        "scheduler.tx_budget_min": t.tx_budget_min,
        "scheduler.tx_budget_max": t.tx_budget_max,
        "flow.initial_credit_bytes": t.initial_credit_bytes,
        "flow.default_policy": t.default_policy.name(),
        "flow.policies": policies,
        "memory.stream_queue_bytes_max": t.stream_queue_bytes_max,
        "memory.shrink_grants_at_percent": t.shrink_grants_at_percent,
        "memory.shed_bulk_at_percent": t.shed_bulk_at_percent,
        "memory.drop_newest_at_percent": t.drop_newest_at_percent,
    })
}

/// Validates `yaml`; on success applies what can change live, all at once,
/// and reports what needs a restart. A refused config changes nothing.
fn apply(yaml: &str, origin: &str, st: &mut ControlState) -> Value {
    let new = match Config::parse(yaml, origin) {
        Ok(c) => c,
        Err(e) => return json!({ "ok": false, "error": format!("{e:#}") }),
    };
    // The live keys of `new` with the running restart-only ones: checked
    // before anything changes.
    let next = match st.running.with_live(&new, origin) {
        Ok(c) => c,
        Err(e) => return json!({ "ok": false, "error": format!("{e:#}") }),
    };
    let diff = st.running.diff(&new);
    let (live, restart) = (diff.live, diff.restart);
    st.live.lifetime_ms.store(u64::from(next.streams.subscription_lifetime_ms), Ordering::Relaxed);
    let tunables = next.tunables();
    if tunables != st.running.tunables() {
        st.live.set_tunables(tunables);
    }
    st.running = next;
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
            drops: Box::new(|_| crate::port::PortDrops::default()),
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
        assert_eq!(st.live.generation(), 1);
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
    fn live_tunables_reach_workers_once() {
        let mut st = state();
        let mut seen = 0;
        let first = st.live.tunables_if_changed(&mut seen).expect("a new worker takes the first set");
        assert_eq!(first, Tunables::default());
        assert_eq!(st.live.tunables_if_changed(&mut seen), None);
        let yaml = format!(
            "{CFG}flow: {{ default_policy: conflate, policies: [{{ first: 0, last: 9, policy: block }}] }}\n\
             memory: {{ stream_queue_bytes_max: 131072, budget_bytes: 536870912 }}\n"
        );
        let r = handle(&json!({"cmd": "apply", "yaml": yaml}), &mut st);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["applied"], json!(["flow", "memory.stream_queue_bytes_max"]));
        assert_eq!(r["restart_needed"], json!(["memory.budget_bytes"]));
        assert_eq!(st.live.generation(), 2);
        let t = st.live.tunables_if_changed(&mut seen).expect("changed");
        assert_eq!((t.default_policy, t.stream_queue_bytes_max), (ms_streams::Policy::Conflate, 131_072));
        assert_eq!(t.policy_of(5), ms_streams::Policy::Block);
        assert_eq!(seen, 2);
        assert_eq!(st.live.tunables_if_changed(&mut seen), None);
        let live = &status(&st)["live"];
        assert_eq!(live["flow.default_policy"], "conflate");
        assert_eq!(live["flow.policies"], json!([{ "first": 0, "last": 9, "policy": "block" }]));
        assert_eq!(live["memory.stream_queue_bytes_max"], 131_072);
        assert_eq!(live["scheduler.quantum_bytes"], 1500);
        // The budget is a restart key: the running one stays.
        assert_eq!(st.running.memory.budget_bytes.value, 256 << 20);

        // The same again: nothing changes, the generation stays.
        let r = handle(&json!({"cmd": "apply", "yaml": yaml}), &mut st);
        assert_eq!(r["applied"], json!([]), "{r}");
        assert_eq!(st.live.generation(), 2);
        assert_eq!(st.live.tunables_if_changed(&mut seen), None);
    }

    #[test]
    fn busy_lock_means_try_again() {
        let st = state();
        let mut seen = 0;
        {
            let _held = st.live.tunables.lock().unwrap();
            assert_eq!(st.live.tunables_if_changed(&mut seen), None);
            assert_eq!(seen, 0, "not taken: the next turn tries again");
        }
        assert!(st.live.tunables_if_changed(&mut seen).is_some());
        assert_eq!(seen, 1);
    }

    #[test]
    fn live_values_are_checked_against_the_running_budget() {
        let mut st = state();
        // Valid on its own (512 MiB under a 1 GiB budget), but the running
        // budget of 256 MiB stays until a restart.
        let yaml = format!("{CFG}memory: {{ budget_bytes: 1073741824, stream_queue_bytes_max: 536870912 }}\n");
        let r = handle(&json!({"cmd": "apply", "yaml": yaml, "origin": "new.yaml"}), &mut st);
        assert_eq!(r["ok"], false, "{r}");
        let e = r["error"].as_str().unwrap();
        assert!(
            e.starts_with("new.yaml:5:") && e.contains("memory.stream_queue_bytes_max") && e.contains("restart"),
            "{e}"
        );
        assert_eq!(st.live.generation(), 1);
        assert_eq!(st.running.memory.stream_queue_bytes_max.value, 65_536);
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
