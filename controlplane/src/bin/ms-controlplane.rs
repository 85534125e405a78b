//! `ms-controlplane`: the control-plane daemon.

use anyhow::Context;
use clap::Parser;
use ms_config::Config;
use ms_controlplane::server::{self, Daemon, SetLogLevel};
use std::path::PathBuf;
use std::sync::Arc;
use tracing_subscriber::{prelude::*, reload, EnvFilter};

/// MemoryStreamer control plane: config, stats, Prometheus, msctl API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Path to the YAML config (the same file the dataplane reads).
    #[arg(short, long, default_value = "/etc/memorystreamer/memorystreamer.yaml")]
    config: PathBuf,
    /// Start this ms-dataplane binary (with the same config) when no
    /// dataplane answers on telemetry.control_socket; otherwise attach.
    /// The dataplane outlives the control plane either way.
    #[arg(long, value_name = "PATH")]
    start_dataplane: Option<PathBuf>,
    /// Log filter (tracing syntax); changeable with `msctl log-level`.
    #[arg(long, env = "MS_LOG", default_value = "info")]
    log_level: String,
}

fn init_logging(filter: &str) -> (SetLogLevel, tracing_appender::non_blocking::WorkerGuard) {
    let initial = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let (layer, handle) = reload::Layer::new(initial);
    tracing_subscriber::registry().with(layer).with(tracing_subscriber::fmt::layer().json().with_writer(writer)).init();
    let set: SetLogLevel = Box::new(move |level: &str| {
        let f = EnvFilter::try_new(level).map_err(|e| format!("invalid log filter {level:?}: {e}"))?;
        handle.reload(f).map_err(|e| e.to_string())
    });
    (set, guard)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (set_level, _guard) = init_logging(&cli.log_level);
    let cfg = Config::load(&cli.config)?;
    if let Some(bin) = &cli.start_dataplane {
        start_or_attach(bin, &cli.config, &cfg.telemetry.control_socket)?;
    }
    let cli_socket = cfg.controlplane.socket.clone();
    let prometheus = cfg.controlplane.prometheus_listen;
    let daemon = Arc::new(Daemon::new(cfg, cli.config.display().to_string(), set_level, cli.log_level.clone()));
    let listener = server::bind_cli(&cli_socket)?;
    if let Some(addr) = prometheus {
        let tcp = std::net::TcpListener::bind(addr)
            .with_context(|| format!("bind the Prometheus endpoint {addr} (controlplane.prometheus_listen)"))?;
        let d = Arc::clone(&daemon);
        std::thread::Builder::new().name("prometheus".into()).spawn(move || server::serve_prometheus(tcp, d))?;
    }
    tracing::info!(socket = %cli_socket.display(), prometheus = ?prometheus, "ready");
    server::serve_cli(listener, daemon);
    Ok(())
}

/// Starts the dataplane unless one already answers on its control socket.
fn start_or_attach(bin: &std::path::Path, config: &std::path::Path, socket: &std::path::Path) -> anyhow::Result<()> {
    let status = ms_controlplane::api::ControlRequest::Status;
    let timeout = std::time::Duration::from_secs(1);
    if ms_controlplane::api::call(socket, &status, timeout).is_ok() {
        tracing::info!("attached to a running dataplane");
        return Ok(());
    }
    // Its own session: a signal to the control plane's group never reaches it.
    use std::os::unix::process::CommandExt;
    std::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    for _ in 0..300 {
        if ms_controlplane::api::call(socket, &status, timeout).is_ok() {
            tracing::info!(bin = %bin.display(), "started the dataplane");
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("started {} but it did not answer on {} within 30 s; see its log", bin.display(), socket.display())
}
