//! Timestamps in payloads, latency histograms, the process's own CPU cost, and the output.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use serde_json::{Map, Value};

/// Bytes at the start of every payload that carry the send time.
pub const STAMP_BYTES: usize = 8;

/// Highest latency the histograms hold (60 s in ns); longer ones are clamped to it.
const HIST_MAX_NS: u64 = 60_000_000_000;

/// Time base shared by sender and receiver (same process), so a stamp is plain nanoseconds.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since the process's time base.
pub fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A payload of `len` bytes whose first 8 are `stamp_ns` (little-endian).
pub fn stamped_payload(template: &[u8], stamp_ns: u64) -> Bytes {
    let mut buf = BytesMut::from(template);
    buf[..STAMP_BYTES].copy_from_slice(&stamp_ns.to_le_bytes());
    buf.freeze()
}

/// The send time a payload carries, if it is long enough to carry one.
pub fn stamp_of(payload: &[u8]) -> Option<u64> {
    let head: [u8; STAMP_BYTES] = payload.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).context("creating the latency histogram")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(hist: &mut Histogram<u64>, ns: u64) {
    // Clamped, so the only failure (out of range) cannot happen.
    let _ = hist.record(ns.clamp(1, HIST_MAX_NS));
}

/// Adds the P50/P99/P99.9/max of `hist` in microseconds as `<prefix>_p50_us`, ... (flat keys keep
/// the JSON greppable by the shell script).
pub fn add_percentiles(out: &mut Map<String, Value>, prefix: &str, hist: &Histogram<u64>) {
    let us = |ns: u64| ns as f64 / 1000.0;
    let fields = [
        ("p50", hist.value_at_quantile(0.50)),
        ("p99", hist.value_at_quantile(0.99)),
        ("p999", hist.value_at_quantile(0.999)),
        ("max", hist.max()),
    ];
    for (name, ns) in fields {
        out.insert(format!("{prefix}_{name}_us"), Value::from(us(ns)));
    }
    out.insert(format!("{prefix}_samples"), Value::from(hist.len()));
}

/// CPU time and context switches of this process (all threads), from `getrusage`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    cpu: Duration,
    voluntary: i64,
    involuntary: i64,
}

impl Usage {
    /// The process's usage so far.
    pub fn now() -> Self {
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage`; RUSAGE_SELF cannot fail with such a pointer.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return Self::default();
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Self { cpu: tv(ru.ru_utime) + tv(ru.ru_stime), voluntary: ru.ru_nvcsw, involuntary: ru.ru_nivcsw }
    }

    /// Adds `client_cpu_s` and `client_ctx_switches` for the time since `start`.
    pub fn add_since(&self, start: &Usage, out: &mut Map<String, Value>) {
        let cpu = self.cpu.saturating_sub(start.cpu).as_secs_f64();
        let switches = (self.voluntary - start.voluntary) + (self.involuntary - start.involuntary);
        out.insert("client_cpu_s".into(), Value::from(cpu));
        out.insert("client_ctx_switches".into(), Value::from(switches));
    }
}

/// Connection events worth reporting: a slow consumer drops messages, a disconnect loses them.
#[derive(Debug, Default)]
pub struct Events {
    slow_consumer: AtomicU64,
    disconnected: AtomicU64,
}

impl Events {
    /// Counts `event` if it is one of the lossy ones.
    pub fn count(&self, event: &async_nats::Event) {
        match event {
            async_nats::Event::SlowConsumer(_) => self.slow_consumer.fetch_add(1, Ordering::Relaxed),
            async_nats::Event::Disconnected => self.disconnected.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Adds the counts as `client_slow_consumer_events` and `disconnects`.
    pub fn add_to(&self, out: &mut Map<String, Value>) {
        out.insert("client_slow_consumer_events".into(), Value::from(self.slow_consumer.load(Ordering::Relaxed)));
        out.insert("disconnects".into(), Value::from(self.disconnected.load(Ordering::Relaxed)));
    }
}

/// Connects with an event callback that counts lossy events into `events`.
pub async fn connect(url: &str, subscription_capacity: usize, events: &Arc<Events>) -> Result<async_nats::Client> {
    let events = Arc::clone(events);
    async_nats::ConnectOptions::new()
        .subscription_capacity(subscription_capacity)
        .event_callback(move |event| {
            events.count(&event);
            async {}
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to the NATS server at {url}"))
}

/// A finished run: one JSON line and a human summary.
pub struct Report {
    /// One JSON object, flat keys.
    pub json: Value,
    /// A few lines for a person.
    pub human: String,
}
