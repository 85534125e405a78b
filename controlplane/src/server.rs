//! The daemon: serves `msctl` on a Unix socket (mode 0660) and Prometheus
//! on a TCP address (loopback by default). Each request opens the stats
//! segment afresh, so a restarted dataplane (a new segment) is picked up
//! without any state to repair, and a restarted daemon simply attaches.

use crate::api::{self, done, refused, AffectedStream, CliRequest, ConfigDiff, ConfigText, ControlRequest, TopStream};
use crate::metrics;
use crate::text;
use anyhow::Context;
use ms_config::Config;
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Interval over which `status` measures rates.
const RATE_WINDOW: Duration = Duration::from_millis(250);
/// How long a request to the dataplane may take.
const DATAPLANE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request accepted on the CLI socket.
const REQUEST_BYTES_MAX: u64 = 1 << 20;

/// Changes the daemon's own log filter.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The daemon's state.
pub struct Daemon {
    running: Mutex<Config>,
    origin: String,
    set_log_level: SetLogLevel,
    log_level: Mutex<String>,
}

fn unix_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Whether the segment's writer is alive: its process exists and its
/// heartbeat is fresh (`text::liveness`).
fn alive(seg: &ms_stats::Segment) -> Result<(), String> {
    let age_s = unix_s() - seg.heartbeat_unix_ns() as f64 / 1e9;
    text::liveness(seg.pid(), text::pid_alive(seg.pid()), age_s)
}

impl Daemon {
    /// A daemon for `config` (read from `origin`).
    pub fn new(config: Config, origin: String, set_log_level: SetLogLevel, log_level: String) -> Daemon {
        Daemon { running: Mutex::new(config), origin, set_log_level, log_level: Mutex::new(log_level) }
    }

    fn cfg(&self) -> Config {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The config in force: the file's, with the live values the dataplane
    /// reports (either process may have restarted since the last apply).
    fn running(&self) -> Config {
        let mut c = self.cfg();
        if let Ok(st) = self.dataplane(&ControlRequest::Status) {
            // Every live key the dataplane reports (`ms_config::keys`); a
            // value that does not parse leaves the file's.
            for (key, v) in st["live"].as_object().into_iter().flatten() {
                let _ = c.set_live(key, &v.to_string());
            }
        }
        c
    }

    fn stats(&self) -> anyhow::Result<ms_stats::Segment> {
        let path = self.cfg().telemetry.stats_path;
        Ok(ms_stats::Segment::open(&path)?)
    }

    fn dataplane(&self, req: &ControlRequest) -> anyhow::Result<Value> {
        api::call(&self.cfg().telemetry.control_socket, req, DATAPLANE_TIMEOUT)
    }

    /// The Prometheus text for the current stats.
    pub fn metrics_text(&self) -> String {
        match self.stats() {
            Ok(seg) => {
                let (dir, blocks) = metrics::snapshot(&seg);
                let up = alive(&seg).is_ok();
                metrics::render(&dir, &blocks, up, seg.start_unix_ns() as f64 / 1e9)
            }
            Err(_) => metrics::render(&[], &[], false, 0.0),
        }
    }

    /// One `msctl` request line -> its answer.
    pub fn answer(&self, line: &str) -> Value {
        match CliRequest::from_line(line) {
            Ok(req) => self.handle(req),
            Err(e) => refused(e),
        }
    }

    /// One `msctl` request.
    pub fn handle(&self, req: CliRequest) -> Value {
        let result = match req {
            CliRequest::Status => Ok(self.status()),
            CliRequest::Stats => self.stats_json(),
            CliRequest::StreamsTop => self.stats().map(|seg| {
                let (dir, blocks) = metrics::snapshot(&seg);
                let top: Vec<TopStream> = metrics::top_streams(&dir, &blocks)
                    .into_iter()
                    .map(|(stream, messages, at_least)| TopStream { stream, messages, at_least })
                    .collect();
                done(&json!({ "top": top }))
            }),
            CliRequest::StreamsAffected => self.stats().map(|seg| {
                let (dir, blocks) = metrics::snapshot(&seg);
                let rows: Vec<AffectedStream> = metrics::affected(&dir, &blocks)
                    .into_iter()
                    .map(|(stream, subscriber, messages_lost)| AffectedStream { stream, subscriber, messages_lost })
                    .collect();
                done(&json!({ "affected": rows }))
            }),
            CliRequest::ConfigValidate(t) => parse(&t).map(|_| done(&())),
            CliRequest::ConfigDiff(t) => parse(&t).map(|new| {
                let d = self.running().diff(&new);
                let names = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect();
                done(&ConfigDiff {
                    live: names(d.live),
                    restart: names(d.restart),
                    controlplane_restart: d.controlplane_restart,
                })
            }),
            CliRequest::ConfigApply(t) => self.apply(t),
            CliRequest::LogLevel { level } => self.log_level(level),
        };
        result.unwrap_or_else(|e| refused(format!("{e:#}")))
    }

    fn status(&self) -> Value {
        let dataplane = self.dataplane(&ControlRequest::Status).unwrap_or_else(|e| refused(format!("{e:#}")));
        let stats = match self.stats() {
            Ok(seg) => {
                // Rates from two snapshots a short interval apart.
                let (dir, before) = metrics::snapshot(&seg);
                let t0 = std::time::Instant::now();
                std::thread::sleep(RATE_WINDOW);
                let (_, blocks) = metrics::snapshot(&seg);
                let secs = t0.elapsed().as_secs_f64();
                let (t_before, t_now) = (metrics::totals(&dir, &before), metrics::totals(&dir, &blocks));
                let rate = |name: &str| {
                    let get = |t: &[(String, u64)]| t.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
                    get(&t_now).saturating_sub(get(&t_before)) as f64 / secs
                };
                let rates = json!({
                    "rx_packets_per_s": rate("rx_packets"), "tx_packets_per_s": rate("tx_packets"),
                    "messages_published_per_s": rate("messages_published"), "messages_delivered_per_s": rate("deliver_messages"),
                });
                let ports: Map<String, Value> = metrics::labelled(&dir, "port_rx_packets", "port")
                    .into_iter()
                    .map(|(port, key)| (port, rate(&key).into()))
                    .collect();
                let totals: Map<String, Value> = t_now.into_iter().map(|(k, v)| (k, v.into())).collect();
                let age_s = unix_s() - seg.heartbeat_unix_ns() as f64 / 1e9;
                let live = alive(&seg);
                json!({
                    "up": live.is_ok(), "down_reason": live.err(), "pid": seg.pid(), "heartbeat_age_s": age_s,
                    "workers": seg.lcores(), "rates": rates, "port_rx_packets_per_s": ports, "totals": totals,
                })
            }
            Err(e) => json!({ "up": false, "error": format!("{e:#}") }),
        };
        let mut dataplane = dataplane;
        describe_links(&mut dataplane, &stats);
        json!({
            "ok": true,
            "dataplane_up": dataplane["ok"] == true && stats["up"] == true,
            "controlplane": { "pid": std::process::id(), "config": self.origin, "log_level": *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) },
            "dataplane": dataplane,
            "stats": stats,
        })
    }

    fn stats_json(&self) -> anyhow::Result<Value> {
        let seg = self.stats()?;
        let (dir, blocks) = metrics::snapshot(&seg);
        let workers: Vec<Value> = blocks
            .iter()
            .enumerate()
            .map(|(w, b)| {
                let m: Map<String, Value> =
                    dir.iter().zip(b).map(|(s, v)| (metrics::slot_key(s), (*v).into())).collect();
                json!({ "worker": w, "counters": m })
            })
            .collect();
        let total: Map<String, Value> =
            metrics::totals(&dir, &blocks).into_iter().map(|(k, v)| (k, v.into())).collect();
        let slots = metrics::slots_json(&dir);
        Ok(json!({ "ok": true, "time_s": unix_s(), "workers": workers, "total": total, "slots": slots }))
    }

    /// Validates here (so errors carry file:line:column even if the
    /// dataplane is down), then has the dataplane apply what is live.
    fn apply(&self, t: ConfigText) -> anyhow::Result<Value> {
        let new = parse(&t)?;
        let controlplane_restart = self.cfg().diff(&new).controlplane_restart;
        let origin = t.origin.clone();
        let fwd = ControlRequest::Apply { yaml: t.yaml, origin: t.origin };
        let mut r = self.dataplane(&fwd).context(
            "no answer from the dataplane: it may or may not have applied the live changes; check `msctl status`",
        )?;
        if r["ok"] == true {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            // The dataplane took the live keys (and checked them against what
            // it runs); keep the rest as it is until a restart.
            if let Ok(next) = running.with_live(&new, &origin) {
                *running = next;
            }
            r["controlplane_restart"] = controlplane_restart.into();
        }
        Ok(r)
    }

    fn log_level(&self, level: String) -> anyhow::Result<Value> {
        text::check_log_level(&level).map_err(|e| anyhow::anyhow!(e))?;
        (self.set_log_level)(&level).map_err(|e| anyhow::anyhow!(e))?;
        *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) = level.clone();
        let dp = self
            .dataplane(&ControlRequest::LogLevel { level: level.clone() })
            .unwrap_or_else(|e| refused(format!("{e:#}")));
        tracing::info!(level, "log level changed");
        Ok(done(&json!({ "controlplane": level, "dataplane": dp })))
    }
}

/// Parses and checks a config sent by `msctl`.
fn parse(t: &ConfigText) -> anyhow::Result<Config> {
    Ok(Config::parse(&t.yaml, &t.origin)?)
}

/// Adds to each port of the dataplane's status a `link` in words: the
/// driver's view, overridden by traffic seen in the rate window.
fn describe_links(dataplane: &mut Value, stats: &Value) {
    for p in dataplane["ports"].as_array_mut().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let rx = stats["port_rx_packets_per_s"][&name].as_f64().unwrap_or(0.0);
        let words = text::link_words(p["link_up"] == true, p["driver"].as_str().unwrap_or_default(), rx);
        p["link"] = words.into();
    }
}

/// Binds the CLI socket (mode 0660, replacing a stale one).
pub fn bind_cli(path: &PathBuf) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).with_context(|| format!("bind {} (controlplane.socket)", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Connections served at once; more are closed at once (the sockets are
/// local and permission-checked, so this only bounds a misbehaving client).
const CONNECTIONS_MAX: usize = 32;
/// Per read and per write on a client connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `serve` for each connection on its own thread, at most
/// CONNECTIONS_MAX at once, so one slow client cannot stall the others.
fn spawn_bounded<C: Send + 'static>(conn: C, active: &Arc<AtomicUsize>, serve: impl FnOnce(C) + Send + 'static) {
    if active.fetch_add(1, Ordering::AcqRel) >= CONNECTIONS_MAX {
        active.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let active = Arc::clone(active);
    let spawned = std::thread::Builder::new().name("client".into()).spawn(move || {
        serve(conn);
        active.fetch_sub(1, Ordering::AcqRel);
    });
    if spawned.is_err() {
        // The closure (and its decrement) was dropped unrun.
        tracing::warn!("cannot spawn a client thread");
    }
}

/// Serves `msctl` forever.
pub fn serve_cli(listener: UnixListener, daemon: Arc<Daemon>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                let d = Arc::clone(&daemon);
                spawn_bounded(conn, &active, move |c| serve_one(c, &d));
            }
            // EMFILE and friends: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn serve_one(conn: UnixStream, daemon: &Daemon) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut line = String::new();
    let resp = match BufReader::new((&conn).take(REQUEST_BYTES_MAX)).read_line(&mut line) {
        Ok(_) => daemon.answer(&line),
        Err(e) => refused(format!("cannot read the request: {e}")),
    };
    let mut conn = conn;
    let _ = writeln!(conn, "{resp}");
}

/// Serves `GET /metrics` forever.
pub fn serve_prometheus(listener: TcpListener, daemon: Arc<Daemon>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                let d = Arc::clone(&daemon);
                spawn_bounded(conn, &active, move |c| serve_http(c, &d));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Largest HTTP request head read.
const HTTP_HEAD_BYTES_MAX: u64 = 8192;

fn serve_http(mut conn: std::net::TcpStream, daemon: &Daemon) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = String::new();
    {
        let mut reader = BufReader::new((&conn).take(HTTP_HEAD_BYTES_MAX));
        if reader.read_line(&mut head).is_err() {
            return;
        }
        // Drain the request headers.
        let mut l = String::new();
        while reader.read_line(&mut l).map(|n| n > 2).unwrap_or(false) {
            l.clear();
        }
        let (status, ctype, body) = if head.starts_with("GET /metrics") {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", daemon.metrics_text())
        } else {
            ("404 Not Found", "text/plain", "try /metrics\n".to_string())
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}
