//! The control socket: a Unix socket (mode 0600) served by its own
//! thread, one JSON request per connection, typed as
//! [`ms_api::ControlRequest`]: `{"cmd":"status"}`,
//! `{"cmd":"log_level","level":"debug"}`,
//! `{"cmd":"apply","yaml":"...","origin":"file.yaml"}`. Answers are one
//! JSON object with `"ok": true|false`.

use super::Live;
use crate::config::Config;
use ms_api::{done, refused, Applied, ControlRequest, DataplaneStatus, LogLevelSet, PortStatus};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections handled per call, so the thread checks `stop` often.
const CONNECTIONS_PER_POLL: usize = 4;
/// Time one connection may take in all (read, handle, write), so a client
/// trickling bytes cannot hold the control thread.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(1);
/// Largest request accepted (a config file fits easily).
const REQUEST_BYTES_MAX: u64 = 1 << 20;

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
    pub drops: Box<dyn Fn(u16) -> crate::dpdk::port::PortDrops + Send>,
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
        Ok(line) => answer(&line, st),
        Err(e) => refused(e),
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

/// One request line -> one answer (shared by the socket and the tests).
pub fn answer(line: &str, st: &mut ControlState) -> Value {
    match ControlRequest::from_line(line) {
        Ok(req) => handle(req, st),
        Err(e) => refused(e),
    }
}

/// One request -> one answer.
pub fn handle(req: ControlRequest, st: &mut ControlState) -> Value {
    match req {
        ControlRequest::Status => done(&status(st)),
        ControlRequest::LogLevel { level } => log_level(level, st),
        ControlRequest::Apply { yaml, origin } => apply(&yaml, &origin, st),
    }
}

fn log_level(level: String, st: &mut ControlState) -> Value {
    match (st.set_log_level)(&level) {
        Ok(()) => {
            tracing::info!(level, "log level changed");
            st.log_level = level.clone();
            done(&LogLevelSet { log_level: level })
        }
        Err(e) => refused(e),
    }
}

fn status(st: &ControlState) -> DataplaneStatus {
    let ports = st
        .ports
        .iter()
        .map(|p| {
            let (link_up, speed_mbps) = (st.link)(p.id);
            let driver_drops = (st.drops)(p.id).fields().iter().map(|(k, v)| (k.to_string(), *v)).collect();
            PortStatus {
                name: p.name.clone(),
                driver: p.driver.clone(),
                mac: p.mac.clone(),
                link_up,
                speed_mbps,
                driver_drops,
            }
        })
        .collect();
    DataplaneStatus {
        pid: std::process::id(),
        instance: format!("{:016x}", st.live.instance),
        uptime_s: st.started.elapsed().as_secs_f64(),
        config_origin: st.origin.clone(),
        log_level: st.log_level.clone(),
        ports,
        workers: st.running.worker_lcores().to_vec(),
        live: live_values(&st.live),
    }
}

/// The live settings in force, keyed as in the config file.
fn live_values(live: &Live) -> BTreeMap<String, Value> {
    let t = live.tunables();
    let policies: Vec<Value> =
        t.policies().iter().map(|r| json!({ "first": r.first, "last": r.last, "policy": r.policy.name() })).collect();
    let values = json!({
        "streams.subscription_lifetime_ms": live.lifetime_ms.load(Ordering::Relaxed),
        "scheduler.quantum_bytes": t.quantum_bytes,
        "scheduler.starvation_guard": t.starvation_guard,
        "scheduler.rx_burst_min": t.rx_burst_min,
        "scheduler.tx_budget_min": t.tx_budget_min,
        "scheduler.tx_budget_max": t.tx_budget_max,
        "scheduler.cut_through": t.cut_through,
        "flow.initial_credit_bytes": t.initial_credit_bytes,
        "flow.default_policy": t.default_policy.name(),
        "flow.policies": policies,
        "memory.stream_queue_bytes_max": t.stream_queue_bytes_max,
        "memory.shrink_grants_at_percent": t.shrink_grants_at_percent,
        "memory.shed_bulk_at_percent": t.shed_bulk_at_percent,
        "memory.drop_newest_at_percent": t.drop_newest_at_percent,
    });
    match values {
        Value::Object(m) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// Validates `yaml`; on success applies what can change live, all at once,
/// and reports what needs a restart. A refused config changes nothing.
fn apply(yaml: &str, origin: &str, st: &mut ControlState) -> Value {
    let new = match Config::parse(yaml, origin) {
        Ok(c) => c,
        Err(e) => return refused(format!("{e:#}")),
    };
    // The live keys of `new` with the running restart-only ones: checked
    // before anything changes.
    let next = match st.running.with_live(&new, origin) {
        Ok(c) => c,
        Err(e) => return refused(format!("{e:#}")),
    };
    let diff = st.running.diff(&new);
    let (live, restart) = (diff.live, diff.restart);
    st.live.lifetime_ms.store(u64::from(next.streams.subscription_lifetime_ms), Ordering::Relaxed);
    let tunables = crate::settings::tunables(&next);
    if tunables != crate::settings::tunables(&st.running) {
        st.live.set_tunables(tunables);
    }
    st.running = next;
    tracing::info!(origin, applied = ?live, restart_needed = ?restart, "config applied");
    let names = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
    done(&Applied { applied: names(live), restart_needed: names(restart) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ms_streams::Tunables;

    fn ask(req: Value, st: &mut ControlState) -> Value {
        answer(&req.to_string(), st)
    }

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
            drops: Box::new(|_| crate::dpdk::port::PortDrops::default()),
            log_level: "info".into(),
            started: Instant::now(),
        }
    }

    #[test]
    fn refused_config_changes_nothing() {
        let mut st = state();
        let r = ask(
            json!({"cmd": "apply", "yaml": CFG.replace("lcores: [1]", "lcores: [0]"), "origin": "new.yaml"}),
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
        let r = ask(json!({"cmd": "apply", "yaml": yaml}), &mut st);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["applied"], json!(["streams.subscription_lifetime_ms"]));
        assert_eq!(r["restart_needed"], json!(["arp"]));
        assert_eq!(st.live.lifetime_ms.load(Ordering::Relaxed), 2500);
        assert_eq!(done(&status(&st))["live"]["streams.subscription_lifetime_ms"], 2500);
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
        let r = ask(json!({"cmd": "apply", "yaml": yaml}), &mut st);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["applied"], json!(["flow", "memory.stream_queue_bytes_max"]));
        assert_eq!(r["restart_needed"], json!(["memory.budget_bytes"]));
        assert_eq!(st.live.generation(), 2);
        let t = st.live.tunables_if_changed(&mut seen).expect("changed");
        assert_eq!((t.default_policy, t.stream_queue_bytes_max), (ms_streams::Policy::Conflate, 131_072));
        assert_eq!(t.policy_of(5), ms_streams::Policy::Block);
        assert_eq!(seen, 2);
        assert_eq!(st.live.tunables_if_changed(&mut seen), None);
        let live = &done(&status(&st))["live"];
        assert_eq!(live["flow.default_policy"], "conflate");
        assert_eq!(live["flow.policies"], json!([{ "first": 0, "last": 9, "policy": "block" }]));
        assert_eq!(live["memory.stream_queue_bytes_max"], 131_072);
        assert_eq!(live["scheduler.quantum_bytes"], 1500);
        // The budget is a restart key: the running one stays.
        assert_eq!(st.running.memory.budget_bytes.value, 256 << 20);

        // The same again: nothing changes, the generation stays.
        let r = ask(json!({"cmd": "apply", "yaml": yaml}), &mut st);
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
        let r = ask(json!({"cmd": "apply", "yaml": yaml, "origin": "new.yaml"}), &mut st);
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
    fn live_values_are_the_live_keys_of_the_table() {
        let st = state();
        let shown: Vec<String> = live_values(&st.live).into_keys().collect();
        let mut table: Vec<String> = ms_config::keys::live_keys().map(|k| k.path.to_string()).collect();
        table.sort();
        assert_eq!(shown, table);
    }

    #[test]
    fn log_level_and_unknown_commands() {
        let mut st = state();
        assert_eq!(ask(json!({"cmd": "log_level", "level": "debug"}), &mut st)["ok"], true);
        assert_eq!(st.log_level, "debug");
        assert_eq!(ask(json!({"cmd": "log_level", "level": "bogus["}), &mut st)["ok"], false);
        assert_eq!(ask(json!({"cmd": "nope"}), &mut st), json!({"ok": false, "error": ms_api::CONTROL_UNKNOWN}));
        let r = ask(json!({"cmd": "log_level"}), &mut st);
        assert_eq!(r, json!({"ok": false, "error": "log_level needs \"level\""}));
        assert!(answer("{", &mut st)["error"].as_str().unwrap().starts_with("request is not JSON"));
    }
}
