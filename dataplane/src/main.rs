//! `ms-dataplane`: the DPDK dataplane process.

use anyhow::Context;
use clap::Parser;
use ms_dataplane::{app, config::Config, eal, report};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// MemoryStreamer dataplane: polls DPDK ports on worker lcores.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Path to the YAML config.
    #[arg(short, long, default_value = "/etc/memorystreamer/memorystreamer.yaml")]
    config: PathBuf,
    /// Check the config and exit.
    #[arg(long)]
    check: bool,
    /// Print the EAL arguments the config produces and exit.
    #[arg(long)]
    print_eal_args: bool,
    /// Print the final counters as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Log filter (tracing syntax), e.g. `info` or `ms_dataplane=debug`.
    #[arg(long, env = "MS_LOG", default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ms-dataplane: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("ms-dataplane: bad --log-level {filter:?} ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let cfg = Config::load(&cli.config)?;
    let args = eal::eal_args(&cfg);
    tracing::debug!(args = ?args, "EAL arguments");
    if cli.check {
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    if cli.print_eal_args {
        println!("{}", args[1..].join(" "));
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("install signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    let eal = eal::Eal::init(&args)?;
    let result = app::run(&eal, &cfg, &stop);
    eal.cleanup();
    let reports = result?;
    if cli.json {
        println!("{}", report::json(&reports));
    } else {
        print!("{}", report::table(&reports));
    }
    Ok(())
}
