//! The in-process traffic generator of `ms-bench`: it sits on one end of a
//! crossed pair of ring ports, the real dataplane worker on the other, so
//! no kernel is in the path. Open loop: message `i` of a phase is scheduled
//! at `t0 + i / rate` and carries that TSC value; the generator's receive
//! side records latency from it into an HdrHistogram.
//!
//! Its subscribers grant credit like a real client, with the client
//! library's rule ([`ms_client::CreditRule`]): per (subscriber, stream) it
//! keeps the grant the appliance has been sent, and when a DELIVER's
//! `position` comes within half a window of it, grants
//! `position + CREDIT_WINDOW` in one CREDIT datagram per subscriber per
//! receive burst. Everything the load touches (grant table, Zipf table,
//! histogram, frame arrays, samples) is allocated before it starts.
//!
//! Besides a plain run ([`Generator::run`]) it drives two scenarios: an
//! overload with sampling of RSS and the memory gauges and a recovery probe
//! ([`Generator::overload`]), and a million-stream subscribe / load /
//! unsubscribe cycle with RSS at each step ([`Generator::million`]).
//!
//! Files by job: [`generator`] (the load and the link), [`grants`] (the
//! subscribers: subscriptions, receiving, credit), [`monitor`] (RSS and
//! the stats segment), [`scenarios`] (plain run, overload, million
//! streams). It uses only the dataplane's public API.

#![warn(missing_docs)]

pub mod generator;
pub mod grants;
pub mod monitor;
pub mod scenarios;

pub use generator::{Classes, Generator, Load, Outcome, Phase, Zipf};
pub use grants::{CREDIT_WINDOW, INITIAL_CREDIT};
pub use monitor::{rss_bytes, Monitor, Sample, Totals};
pub use scenarios::{MillionOutcome, OverloadOutcome, OverloadSpec, RoundTrips, ROUND_TRIP_WARMUP};
