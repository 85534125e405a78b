//! `msctl`: operate a MemoryStreamer appliance through its control plane.

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use ms_controlplane::api;
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
    /// Print JSON instead of text (read commands).
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
enum ConfigOp {
    /// Check a file; errors carry file:line:column.
    Validate {
        /// The YAML file.
        file: PathBuf,
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
}

fn call(cli: &Cli, req: Value) -> anyhow::Result<Value> {
    let r = api::call(&cli.socket, &req, Duration::from_secs(10))
        .context("is ms-controlplane running? (systemctl status ms-controlplane)")?;
    if r["ok"] != true {
        bail!("{}", r["error"].as_str().unwrap_or("request failed"));
    }
    Ok(r)
}

fn file_req(cmd: &str, file: &PathBuf) -> anyhow::Result<Value> {
    let yaml = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    Ok(json!({ "cmd": cmd, "yaml": yaml, "origin": file.display().to_string() }))
}

fn main() {
    // Die quietly on a closed pipe (`msctl stats | head`) like other tools.
    // SAFETY: setting a signal disposition to the default before any thread
    // exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("msctl: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::Status => {
            let r = call(cli, json!({ "cmd": "status" }))?;
            print_or(cli, &r, print_status)
        }
        Cmd::Stats { watch: None } => {
            let r = call(cli, json!({ "cmd": "stats" }))?;
            print_or(cli, &r, |r| print_stats(r, None))
        }
        Cmd::Stats { watch: Some(secs) } => watch(cli, *secs),
        Cmd::Config { op } => config(cli, op),
        Cmd::Streams { op: StreamsOp::Top } => {
            let r = call(cli, json!({ "cmd": "streams_top" }))?;
            print_or(cli, &r, |r| {
                println!("{:>20} {:>14} {:>14}", "stream", "messages (est)", "at least");
                for e in r["top"].as_array().into_iter().flatten() {
                    println!("{:>20} {:>14} {:>14}", e["stream"], e["messages"], e["at_least"]);
                }
            })
        }
        Cmd::Streams { op: StreamsOp::Affected } => {
            let r = call(cli, json!({ "cmd": "streams_affected" }))?;
            print_or(cli, &r, |r| {
                println!("{:>20} {:>24} {:>14}", "stream", "subscriber", "messages lost");
                for e in r["affected"].as_array().into_iter().flatten() {
                    let who = e["subscriber"].as_str().unwrap_or("?");
                    println!("{:>20} {:>24} {:>14}", e["stream"], who, e["messages_lost"]);
                }
            })
        }
        Cmd::LogLevel { level } => {
            let r = call(cli, json!({ "cmd": "log_level", "level": level }))?;
            print_or(cli, &r, |r| {
                println!("log level: control plane {}, dataplane {}", r["controlplane"], r["dataplane"]["ok"])
            })
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "msctl", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn config(cli: &Cli, op: &ConfigOp) -> anyhow::Result<()> {
    match op {
        ConfigOp::Validate { file } => {
            call(cli, file_req("config_validate", file)?)?;
            println!("{}: ok", file.display());
        }
        ConfigOp::Diff { file } => {
            let r = call(cli, file_req("config_diff", file)?)?;
            print_or(cli, &r, |r| {
                println!("changes live:           {}", list(&r["live"]));
                println!("changes needing restart: {}", list(&r["restart"]));
                if r["controlplane_restart"] == true {
                    println!("changes needing a control-plane restart: controlplane");
                }
            })?;
        }
        ConfigOp::Apply { file } => {
            let r = call(cli, file_req("config_apply", file)?)?;
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
    if dp["ok"] == true {
        println!(
            "dataplane: pid {}, up {:.0} s, workers on lcores {}, log level {}",
            dp["pid"],
            dp["uptime_s"].as_f64().unwrap_or(0.0),
            dp["workers"],
            dp["log_level"]
        );
        for p in dp["ports"].as_array().into_iter().flatten() {
            println!(
                "  port {}: {} {} link {} {} Mbit/s",
                p["name"],
                p["driver"],
                p["mac"],
                if p["link_up"] == true { "up" } else { "down" },
                p["speed_mbps"]
            );
        }
        for (k, v) in dp["live"].as_object().into_iter().flatten() {
            println!("  {k} = {v}");
        }
    } else {
        println!("dataplane: not reachable ({})", dp["error"].as_str().unwrap_or("?"));
    }
    let st = &r["stats"];
    let t = &st["totals"];
    let rt = &st["rates"];
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "rates: rx {:.0} pkt/s, tx {:.0} pkt/s, published {:.0} msg/s, delivered {:.0} msg/s",
        f(&rt["rx_packets_per_s"]),
        f(&rt["tx_packets_per_s"]),
        f(&rt["messages_published_per_s"]),
        f(&rt["messages_delivered_per_s"])
    );
    println!(
        "stats: {} , rx {} pkts, tx {} pkts, published {} msgs, delivered {} msgs",
        if st["up"] == true { "live" } else { "stale" },
        t["rx_packets"],
        t["tx_packets"],
        t["messages_published"],
        t["deliver_messages"]
    );
    println!(
        "control plane: pid {}, config {}, log level {}",
        r["controlplane"]["pid"], r["controlplane"]["config"], r["controlplane"]["log_level"]
    );
}

fn print_stats(r: &Value, prev: Option<&Value>) {
    let total = &r["total"];
    let dt =
        prev.map(|p| r["time_s"].as_f64().unwrap_or(0.0) - p["time_s"].as_f64().unwrap_or(0.0)).filter(|d| *d > 0.0);
    println!("{:<34}{:>16}{:>14}", "counter", "total", if dt.is_some() { "per second" } else { "" });
    for (k, v) in total.as_object().into_iter().flatten() {
        let v = v.as_u64().unwrap_or(0);
        // Zero drop reasons, histogram buckets and the top-N sketch
        // (`msctl streams top`) would drown the table; --json has them all.
        if (v == 0 && k.starts_with("drop_"))
            || k.contains("_bucket:")
            || k.starts_with("top_")
            || k.starts_with("affected_")
            || k.ends_with("port=")
        {
            continue;
        }
        match (dt, prev) {
            (Some(dt), Some(p)) => {
                let before = p["total"][k].as_u64().unwrap_or(0);
                println!("{k:<34}{v:>16}{:>14.0}", v.saturating_sub(before) as f64 / dt);
            }
            _ => println!("{k:<34}{v:>16}"),
        }
    }
}

fn watch(cli: &Cli, secs: f64) -> anyhow::Result<()> {
    let mut prev: Option<Value> = None;
    loop {
        let r = call(cli, json!({ "cmd": "stats" }))?;
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
