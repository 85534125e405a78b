//! `msctl`: operate a MemoryStreamer appliance through its control plane.

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use ms_config::{Config, ConfigError, Host};
use ms_controlplane::api::{self, CliRequest, ConfigText};
use ms_controlplane::text;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Operate a MemoryStreamer appliance (talks to ms-controlplane).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The control plane's socket (controlplane.socket in the config).
    #[arg(long, env = "MSCTL_SOCKET", default_value = "/run/memorystreamer/msctl.sock", global = true)]
    socket: PathBuf,
    /// Print JSON instead of text (every command; errors too, as
    /// {"ok":false,...}).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ports, link, workers, uptime, rates.
    Status,
    /// Every counter, per worker and in total.
    Stats {
        /// Refresh every N seconds until interrupted, with rates.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<f64>,
    },
    /// The busiest streams (per-worker space-saving estimates, merged).
    Streams {
        #[command(subcommand)]
        op: StreamsOp,
    },
    /// Validate, compare or apply a config file.
    Config {
        #[command(subcommand)]
        op: ConfigOp,
    },
    /// Plugins: keys, signatures, checks (offline; docs/plugins.md).
    Plugins {
        #[command(subcommand)]
        op: PluginsOp,
    },
    /// Change the log level of the control plane and the dataplane.
    LogLevel {
        /// A tracing filter, e.g. `debug` or `info,ms_dataplane=debug`.
        level: String,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum StreamsOp {
    /// Streams with the most published messages.
    Top,
    /// Streams and subscribers that lost the most messages to flow control
    /// and the memory budget (docs/flow-control.md).
    Affected,
}

#[derive(Debug, Subcommand)]
enum PluginsOp {
    /// Make a signing key pair: PREFIX.key (public: the key a verifier
    /// trusts) and PREFIX.secret (mode 0600, keep it private). Never
    /// overwrites.
    Keygen {
        /// Path and name of the two files, without extension.
        prefix: PathBuf,
    },
    /// Sign a plugin folder (manifest.yaml and plugin.wasm) with a secret
    /// key; writes FOLDER/signature. A plugin that fails its checks is not
    /// signed.
    Sign {
        /// The plugin's folder, <name>-<version>.
        folder: PathBuf,
        /// The secret key file (from keygen).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a plugin folder as the control plane will: manifest, module
    /// against the ABI, signature against the trusted keys.
    Verify {
        /// The plugin's folder, <name>-<version>.
        folder: PathBuf,
        /// A trusted public key file (repeat for several).
        #[arg(long = "trust", value_name = "KEY_FILE")]
        trust: Vec<PathBuf>,
        /// Accept a plugin without a signature (for development).
        #[arg(long)]
        allow_unsigned: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigOp {
    /// Check a file here, without a control plane; errors carry
    /// file:line:column. Checks the lcores against this machine's CPUs
    /// unless --for-other-host.
    Validate {
        /// The YAML file.
        file: PathBuf,
        /// The file is for another machine: skip the checks against this
        /// one (online CPUs).
        #[arg(long)]
        for_other_host: bool,
    },
    /// What applying a file would change, live or after a restart.
    Diff {
        /// The YAML file.
        file: PathBuf,
    },
    /// Apply what can change live; say what needs a restart.
    Apply {
        /// The YAML file.
        file: PathBuf,
    },
    /// Every config key: whether it changes live or needs a restart, and
    /// what it sets (offline).
    Keys,
}

fn call(cli: &Cli, req: CliRequest) -> anyhow::Result<Value> {
    let r = api::call(&cli.socket, &req, Duration::from_secs(10))
        .context("is ms-controlplane running? (systemctl status ms-controlplane)")?;
    if r["ok"] != true {
        bail!("{}", r["error"].as_str().unwrap_or("request failed"));
    }
    Ok(r)
}

fn file_text(file: &PathBuf) -> anyhow::Result<ConfigText> {
    let yaml = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    Ok(ConfigText { yaml, origin: file.display().to_string() })
}

/// What `run` failed with: a message, or a refused config file (its
/// errors carry their own place in the file).
enum Failure {
    Error(anyhow::Error),
    Invalid(ConfigError),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

fn main() {
    // Die quietly on a closed pipe (`msctl stats | head`) like other tools.
    // SAFETY: setting a signal disposition to the default before any thread
    // exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let failure = match run(&cli) {
        Ok(()) => return,
        Err(f) => f,
    };
    match (&failure, cli.json) {
        (Failure::Invalid(e), true) => {
            let (line, column) = e.at.map_or((None, None), |(l, c)| (Some(l), Some(c)));
            let err = json!({ "file": e.file, "line": line, "column": column, "message": e.message });
            println!("{}", json!({ "ok": false, "errors": [err] }));
        }
        (Failure::Invalid(e), false) => eprintln!("msctl: {e}"),
        (Failure::Error(e), true) => println!("{}", json!({ "ok": false, "error": format!("{e:#}") })),
        (Failure::Error(e), false) => eprintln!("msctl: {e:#}"),
    }
    std::process::exit(1);
}

fn run(cli: &Cli) -> Result<(), Failure> {
    match &cli.cmd {
        Cmd::Status => {
            let r = call(cli, CliRequest::Status)?;
            print_or(cli, &r, print_status)?;
            if r["dataplane_up"] != true {
                // The reason is in the output already (text or JSON).
                std::process::exit(2);
            }
            Ok(())
        }
        Cmd::Stats { watch: None } => {
            let r = call(cli, CliRequest::Stats)?;
            Ok(print_or(cli, &r, |r| print_stats(r, None))?)
        }
        Cmd::Stats { watch: Some(secs) } => Ok(watch(cli, *secs)?),
        Cmd::Config { op } => config(cli, op),
        Cmd::Plugins { op } => Ok(plugins(cli, op)?),
        Cmd::Streams { op: StreamsOp::Top } => {
            let r = call(cli, CliRequest::StreamsTop)?;
            Ok(print_or(cli, &r, |r| {
                let num = |v: &Value| v.as_u64().unwrap_or(0);
                let rows: Vec<(u64, u64, u64)> = r["top"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| (num(&e["stream"]), num(&e["messages"]), num(&e["at_least"])))
                    .collect();
                print!("{}", text::top_table(&rows));
            })?)
        }
        Cmd::Streams { op: StreamsOp::Affected } => {
            let r = call(cli, CliRequest::StreamsAffected)?;
            Ok(print_or(cli, &r, |r| {
                println!("{:>20} {:>24} {:>14}", "stream", "subscriber", "messages lost");
                for e in r["affected"].as_array().into_iter().flatten() {
                    let who = e["subscriber"].as_str().unwrap_or("?");
                    println!("{:>20} {:>24} {:>14}", e["stream"], who, e["messages_lost"]);
                }
            })?)
        }
        Cmd::LogLevel { level } => {
            text::check_log_level(level).map_err(|e| anyhow::anyhow!(e))?;
            let r = call(cli, CliRequest::LogLevel { level: level.clone() })?;
            print_or(cli, &r, |r| match r["dataplane"]["ok"] == true {
                true => println!("log level {level}: control plane, dataplane"),
                false => println!(
                    "log level {level}: control plane; dataplane NOT changed ({})",
                    r["dataplane"]["error"].as_str().unwrap_or("no answer")
                ),
            })?;
            if r["dataplane"]["ok"] != true {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "msctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn config(cli: &Cli, op: &ConfigOp) -> Result<(), Failure> {
    match op {
        ConfigOp::Validate { file, for_other_host } => {
            // Offline, like `nginx -t`: no control plane needed.
            let host = if *for_other_host { Host::Other } else { Host::This };
            Config::load_for(file, host).map_err(Failure::Invalid)?;
            let r = json!({ "ok": true, "file": file.display().to_string(), "for_other_host": for_other_host });
            print_or(cli, &r, |_| println!("{}: ok", file.display()))?;
        }
        ConfigOp::Diff { file } => {
            let r = call(cli, CliRequest::ConfigDiff(file_text(file)?))?;
            print_or(cli, &r, |r| {
                println!("changes live:           {}", list(&r["live"]));
                println!("changes needing restart: {}", list(&r["restart"]));
                if r["controlplane_restart"] == true {
                    println!("changes needing a control-plane restart: controlplane");
                }
            })?;
        }
        ConfigOp::Apply { file } => {
            let r = call(cli, CliRequest::ConfigApply(file_text(file)?))?;
            print_or(cli, &r, |r| {
                println!("applied live: {}", list(&r["applied"]));
                if r["restart_needed"].as_array().is_some_and(|a| !a.is_empty()) {
                    println!("not applied, need a dataplane restart: {}", list(&r["restart_needed"]));
                }
                if r["controlplane_restart"] == true {
                    println!("not applied, needs a control-plane restart: controlplane");
                }
            })?;
        }
        ConfigOp::Keys => {
            let keys: Vec<Value> = ms_config::keys::KEYS
                .iter()
                .map(|k| json!({ "key": k.path, "changes": k.effect.name(), "help": k.help }))
                .collect();
            let r = json!({ "ok": true, "keys": keys });
            print_or(cli, &r, |_| {
                for k in ms_config::keys::KEYS {
                    println!("{:<36} {:<20} {}", k.path, k.effect.name(), k.help);
                }
            })?;
        }
    }
    Ok(())
}

fn list(v: &Value) -> String {
    let items: Vec<&str> = v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn print_or(cli: &Cli, r: &Value, text: impl FnOnce(&Value)) -> anyhow::Result<()> {
    if cli.json {
        println!("{r}");
    } else {
        text(r);
    }
    Ok(())
}

fn print_status(r: &Value) {
    let dp = &r["dataplane"];
    let st = &r["stats"];
    if r["dataplane_up"] != true {
        let why = st["down_reason"].as_str().or(st["error"].as_str()).or(dp["error"].as_str()).unwrap_or("no answer");
        println!("dataplane: DOWN: {why}");
    }
    if dp["ok"] == true {
        println!(
            "dataplane: pid {}, up {:.0} s, workers on lcores {}, log level {}",
            dp["pid"],
            dp["uptime_s"].as_f64().unwrap_or(0.0),
            dp["workers"],
            dp["log_level"]
        );
        for p in dp["ports"].as_array().into_iter().flatten() {
            let speed = match p["speed_mbps"].as_u64() {
                Some(s) if s > 0 => format!(", {s} Mbit/s"),
                _ => String::new(),
            };
            let (name, driver, mac) = (str_of(&p["name"]), str_of(&p["driver"]), str_of(&p["mac"]));
            println!("  port {name}: {driver} {mac}, link {}{speed}", str_of(&p["link"]));
        }
        for (k, v) in dp["live"].as_object().into_iter().flatten() {
            println!("  {k} = {v}");
        }
    }
    let t = &st["totals"];
    let rt = &st["rates"];
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    if st["totals"].is_object() {
        println!(
            "rates: rx {:.0} pkt/s, tx {:.0} pkt/s, published {:.0} msg/s, delivered {:.0} msg/s",
            f(&rt["rx_packets_per_s"]),
            f(&rt["tx_packets_per_s"]),
            f(&rt["messages_published_per_s"]),
            f(&rt["messages_delivered_per_s"])
        );
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        println!(
            "stats ({}): rx {} pkts, tx {} pkts, published {} msgs, delivered {} msgs",
            if st["up"] == true { "live" } else { "stale: last values the dataplane wrote" },
            n(&t["rx_packets"]),
            n(&t["tx_packets"]),
            n(&t["messages_published"]),
            n(&t["deliver_messages"])
        );
    }
    let cp = &r["controlplane"];
    println!(
        "control plane: pid {}, config {}, log level {}",
        cp["pid"],
        str_of(&cp["config"]),
        str_of(&cp["log_level"])
    );
}

/// A JSON string without its quotes; anything else as JSON, "?" when absent.
fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

/// The table of `msctl stats`: rows in directory order, described by the
/// daemon's `slots` (a daemon too old to send them gets every counter of
/// `total`, without units).
fn print_stats(r: &Value, prev: Option<&Value>) {
    let total = &r["total"];
    let dt =
        prev.map(|p| r["time_s"].as_f64().unwrap_or(0.0) - p["time_s"].as_f64().unwrap_or(0.0)).filter(|d| *d > 0.0);
    let row = |key: &str, slot: Option<&Value>| {
        let value = total[key].as_u64().unwrap_or(0);
        let per_s = dt.zip(prev).map(|(dt, p)| value.saturating_sub(p["total"][key].as_u64().unwrap_or(0)) as f64 / dt);
        let field = |f: &str| slot.and_then(|s| s[f].as_str()).unwrap_or_default().to_string();
        let labels = slot.and_then(|s| s["labels"].as_object());
        text::StatRow {
            key: key.to_string(),
            name: slot.map_or_else(|| key.to_string(), |_| field("name")),
            kind: field("kind"),
            unit: field("unit"),
            absent: labels.is_some_and(|l| l.values().any(|v| v.as_str().is_some_and(str::is_empty))),
            value,
            per_s,
        }
    };
    let rows: Vec<text::StatRow> = match r["slots"].as_array() {
        Some(slots) => slots.iter().filter_map(|s| Some(row(s["key"].as_str()?, Some(s)))).collect(),
        None => total.as_object().into_iter().flatten().map(|(k, _)| row(k, None)).collect(),
    };
    print!("{}", text::stats_table(&rows));
}

fn watch(cli: &Cli, secs: f64) -> anyhow::Result<()> {
    let mut prev: Option<Value> = None;
    loop {
        let r = call(cli, CliRequest::Stats)?;
        if cli.json {
            println!("{r}");
        } else {
            print!("\x1b[2J\x1b[H");
            print_stats(&r, prev.as_ref());
        }
        prev = Some(r);
        std::thread::sleep(Duration::try_from_secs_f64(secs.clamp(0.1, 3600.0)).unwrap_or(Duration::from_secs(1)));
    }
}

fn plugins(cli: &Cli, op: &PluginsOp) -> anyhow::Result<()> {
    use ms_controlplane::plugins as p;
    let (r, line) = match op {
        PluginsOp::Keygen { prefix } => {
            let r = p::keygen(prefix)?;
            let line = format!("key {}: public {}, secret {}", r["key_id"], r["public"], r["secret"]);
            (r, line)
        }
        PluginsOp::Sign { folder, key } => {
            let r = p::sign(folder, key)?;
            let line = format!("signed with key {}: {}", r["key_id"], r["signature"]);
            (r, line)
        }
        PluginsOp::Verify { folder, trust, allow_unsigned } => {
            let r = p::verify(folder, trust, *allow_unsigned)?;
            let by =
                r["signed_by"]["key_id"].as_str().map_or("unsigned (allowed)".into(), |k| format!("signed by {k}"));
            let line = format!(
                "{} {}: ok, {by}, module {} bytes, sha256 {}",
                r["name"], r["version"], r["module_bytes"], r["module_sha256"]
            );
            (r, line)
        }
    };
    let r = json!({ "ok": true, "plugin": r });
    print_or(cli, &r, |_| println!("{}", line.replace('"', "")))
}
