//! What the process and the dataplane look like while the load runs: the
//! resident set ([`rss_bytes`]) and the workers' counters and gauges from
//! the stats segment ([`Monitor`]).

use crate::generator::{rdtsc, Session};
use ms_dataplane::counters::{self, Counter, Metric, COUNTERS_LEN};
use ms_proto::ProtoCounter;
use std::io::Read;
use std::path::Path;

/// The process's resident set (VmRSS), in bytes; 0 if unreadable. Reads
/// into a stack buffer: it runs on the generator's lcore during the load.
pub fn rss_bytes() -> u64 {
    let mut buf = [0u8; 8192];
    let Ok(mut f) = std::fs::File::open("/proc/self/status") else { return 0 };
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let text = std::str::from_utf8(&buf[..len]).unwrap_or("");
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sums of the workers' blocks in the stats segment, read while the
/// dataplane runs; the degradation level is the highest of any worker.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    /// Every counter and gauge, summed over workers.
    pub v: [u64; COUNTERS_LEN],
    /// Highest degradation level of any worker.
    pub level: u64,
}

impl Totals {
    /// One counter or gauge.
    pub fn get(&self, c: impl Into<Metric>) -> u64 {
        self.v[counters::slot(c)]
    }
}

/// One sample of the process and the memory gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Milliseconds since the phase started.
    pub t_ms: u64,
    /// VmRSS.
    pub rss_bytes: u64,
    /// Gauges, summed over workers (level: the highest).
    pub pool_used_bytes: u64,
    /// Pool bytes.
    pub pool_bytes: u64,
    /// Degradation level.
    pub degradation_level: u64,
    /// Messages queued.
    pub queued_messages: u64,
}

/// Reads the stats segment the dataplane in this process writes.
pub struct Monitor {
    seg: ms_stats::Segment,
    buf: Vec<u64>,
}

impl Monitor {
    /// Maps the segment at `path` (the dataplane must have created it).
    pub fn open(path: &Path) -> anyhow::Result<Monitor> {
        let seg = ms_stats::Segment::open(path)?;
        let buf = vec![0; seg.slots()];
        Ok(Monitor { seg, buf })
    }

    /// Current totals; `None` if a worker's block stayed mid-update.
    pub fn read(&mut self) -> Option<Totals> {
        let mut t = Totals { v: [0; COUNTERS_LEN], level: 0 };
        for block in 0..self.seg.lcores() {
            self.seg.read(block, &mut self.buf, std::time::Duration::from_millis(50))?;
            for (s, v) in t.v.iter_mut().zip(&self.buf) {
                *s += v;
            }
            t.level = t.level.max(self.buf[counters::slot(ProtoCounter::DegradationLevel)]);
        }
        Some(t)
    }

    pub(crate) fn sample(&mut self, t_ms: u64) -> Option<Sample> {
        let t = self.read()?;
        Some(Sample {
            t_ms,
            rss_bytes: rss_bytes(),
            pool_used_bytes: t.get(ProtoCounter::PoolUsedBytes),
            pool_bytes: t.get(ProtoCounter::PoolBytes),
            degradation_level: t.level,
            queued_messages: t.get(ProtoCounter::QueuedMessages),
        })
    }
}

impl Session<'_> {
    /// Receives until nothing is queued in the appliance and neither its
    /// counters nor what the subscribers received changed for 150 ms
    /// (bounded by `limit_s`); true if that happened.
    pub(crate) fn settle(&mut self, mon: &mut Monitor, limit_s: f64) -> bool {
        let every = self.g.tsc_hz / 20;
        let mut next = rdtsc();
        let mut last = None;
        let mut stable = 0;
        self.drain_until(limit_s, |s| {
            let now = rdtsc();
            if now < next {
                return false;
            }
            next = now + every;
            let Some(t) = mon.read() else { return false };
            let key = (
                s.received,
                t.get(Counter::DeliverMessages),
                t.get(ProtoCounter::DeliveriesQueued),
                t.get(ProtoCounter::MessagesPublished),
                t.get(ProtoCounter::CreditsReceived),
            );
            if t.get(ProtoCounter::QueuedMessages) == 0 && last == Some(key) {
                stable += 1;
            } else {
                stable = 0;
            }
            last = Some(key);
            stable >= 3
        })
    }
}
