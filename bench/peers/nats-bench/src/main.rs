//! `nats-bench`: the ms-bench scenarios against a NATS server, so MemoryStreamer's numbers have a
//! peer measured on the same machine with the same CPU arrangement (run it through `nats.sh`).
//!
//! Everything runs on one tokio current-thread runtime, like ms-bench's generator runs on one
//! lcore: publishing, receiving and timing share one CPU.

mod report;
mod rtt;
mod throughput;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

/// Which ms-bench scenario to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One publisher, `--subscribers` subscribers (default 1) on one subject, as fast as possible.
    Throughput,
    /// Throughput with 8 subscribers unless `--subscribers` says otherwise.
    Fanout,
    /// One message in flight: publish, receive it back on the same connection, repeat.
    Rtt,
}

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    /// NATS server URL.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    /// Subscribers on the subject (throughput: default 1, fanout: default 8).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// How long the throughput scenarios publish.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Payload bytes per message; the first 8 carry the send time.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Counted round trips of the rtt scenario (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    pub round_trips: u64,
    /// Round trips before counting starts.
    #[arg(long, default_value_t = 10_000)]
    pub warmup: u64,
    /// Upper bound on messages one throughput run publishes.
    #[arg(long, default_value_t = 500_000_000)]
    pub max_messages: u64,
    /// Messages a subscription buffers in the client before it drops (async-nats' default).
    #[arg(long, default_value_t = 65_536)]
    pub subscription_capacity: usize,
    /// Hard limit on a whole run, whatever the counts say.
    #[arg(long, default_value_t = 600.0)]
    pub time_limit: f64,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    fn subscriber_count(&self) -> usize {
        match (self.subscribers, self.scenario) {
            (Some(n), _) => n,
            (None, Scenario::Fanout) => 8,
            (None, _) => 1,
        }
    }

    fn check(&self) -> Result<()> {
        if self.payload < report::STAMP_BYTES {
            bail!("--payload must be at least {} bytes (the send timestamp)", report::STAMP_BYTES);
        }
        if !(self.seconds > 0.0 && self.seconds.is_finite()) {
            bail!("--seconds must be a positive number");
        }
        if !(self.time_limit > 0.0 && self.time_limit.is_finite()) {
            bail!("--time-limit must be a positive number");
        }
        if self.subscription_capacity == 0 {
            bail!("--subscription-capacity must be at least 1");
        }
        if self.scenario != Scenario::Rtt && self.subscriber_count() == 0 {
            bail!("--subscribers must be at least 1");
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    args.check()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio current-thread runtime")?;
    let time_limit = Duration::from_secs_f64(args.time_limit);
    let report = runtime.block_on(async {
        match args.scenario {
            Scenario::Throughput | Scenario::Fanout => {
                throughput::run(&args, args.subscriber_count(), time_limit).await
            }
            Scenario::Rtt => rtt::run(&args, time_limit).await,
        }
    })?;
    if args.json {
        println!("{}", report.json);
    } else {
        println!("{}", report.human);
    }
    Ok(())
}
