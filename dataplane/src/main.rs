//! `ms-dataplane`: the DPDK dataplane process.

use anyhow::Context;
use clap::Parser;
use ms_dataplane::config::{Config, Host};
use ms_dataplane::dpdk::eal;
use ms_dataplane::stop::Stop;
use ms_dataplane::{app, report};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::{prelude::*, reload, EnvFilter};

/// Counts heap allocations on worker lcores (reported at exit; tests
/// require zero in steady state).
#[global_allocator]
static ALLOC: ms_dataplane::alloc::CountingAlloc = ms_dataplane::alloc::CountingAlloc;

/// MemoryStreamer dataplane: polls DPDK ports on worker lcores.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Path to the YAML config.
    #[arg(short, long, default_value = "/etc/memorystreamer/memorystreamer.yaml")]
    config: PathBuf,
    /// Check the config and exit (including that every lcore's CPU is
    /// online on this machine, unless --for-other-host).
    #[arg(long)]
    check: bool,
    /// With --check or --print-eal-args: the file is for another machine,
    /// so do not check it against this machine's CPUs.
    #[arg(long)]
    for_other_host: bool,
    /// Print the EAL arguments the config produces and exit.
    #[arg(long)]
    print_eal_args: bool,
    /// Print the final counters as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Log filter (tracing syntax), e.g. `info` or `ms_dataplane=debug`;
    /// changeable at run time through the control plane (`msctl log-level`).
    #[arg(long, env = "MS_LOG", default_value = "info")]
    log_level: String,
}

use ms_dataplane::control::SetLogLevel as SetLevel;

/// JSON logs on stderr through a non-blocking writer (a slow terminal or
/// journal never stalls the main lcore), with a reloadable filter.
fn init_logging(filter: &str) -> (SetLevel, tracing_appender::non_blocking::WorkerGuard) {
    let initial = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("ms-dataplane: bad --log-level {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let (layer, handle) = reload::Layer::new(initial);
    tracing_subscriber::registry().with(layer).with(tracing_subscriber::fmt::layer().json().with_writer(writer)).init();
    let set: SetLevel = Box::new(move |level: &str| {
        let f = EnvFilter::try_new(level).map_err(|e| format!("invalid log filter {level:?}: {e}"))?;
        handle.reload(f).map_err(|e| e.to_string())
    });
    (set, guard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (set_level, _guard) = init_logging(&cli.log_level);
    match run(&cli, set_level) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ms-dataplane: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, set_log_level: SetLevel) -> anyhow::Result<()> {
    // Printing arguments for another machine needs no check of this one;
    // running here, and checking for here, do.
    let host = if cli.for_other_host || cli.print_eal_args { Host::Other } else { Host::This };
    let cfg = Config::load_for(&cli.config, host)?;
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
    let stop = Stop::new().context("create the stop wake-up")?;
    stop.on_signals().context("install the SIGINT/SIGTERM handlers")?;
    let eal = eal::Eal::init(&args)?;
    let ctx = app::RunContext {
        stop,
        origin: cli.config.display().to_string(),
        set_log_level,
        log_level: cli.log_level.clone(),
    };
    let report = match app::run(&eal, &cfg, ctx) {
        Ok(r) => r,
        Err(e) => {
            eal.cleanup();
            return Err(e);
        }
    };
    if cli.json {
        println!("{}", report::json(&report));
    } else {
        print!("{}", report::table(&report));
    }
    if report.workers_stuck {
        // A worker still runs: no EAL cleanup and no exit handlers, which
        // could wait for it; the report above is what the run leaves.
        let e = report.failure.as_ref().map(|e| format!("{e:#}")).unwrap_or_default();
        eprintln!("ms-dataplane: error: {e}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        // SAFETY: ends the process at once; nothing after it runs.
        unsafe { libc::_exit(1) };
    }
    eal.cleanup();
    match report.failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
