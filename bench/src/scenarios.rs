//! The runs a [`Generator`] drives: a plain run at one rate
//! ([`Generator::run`]), the overload ([`Generator::overload`]) and the
//! million-stream memory cycle ([`Generator::million`]).

use crate::generator::{rdtsc, Generator, Load, Outcome, Phase, Session, NORMAL_CLASS, PUB_PORT_BASE};
use crate::monitor::{rss_bytes, Monitor, Sample, Totals};
use hdrhistogram::Histogram;
use ms_proto::ProtoCounter;
use ms_wire::publish::PublishBuilder;
use ms_wire::FrameType;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the overload scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct OverloadSpec {
    /// The sustainable rate S, msg/s (measured by the caller).
    pub sustainable: u64,
    /// Offered load as a multiple of the sustainable rate.
    pub factor: f64,
    /// Seconds of overload.
    pub seconds: f64,
    /// Longest wait for normal service after the load stops.
    pub recovery_limit_s: f64,
}

/// What the overload scenario saw.
#[derive(Debug)]
pub struct OverloadOutcome {
    /// Subscriptions acknowledged.
    pub subscribed: bool,
    /// The overload phase.
    pub overload: Phase,
    /// Samples every 100 ms during the overload phase.
    pub samples: Vec<Sample>,
    /// Samples every 10 ms from the end of the load until service
    /// resumed (`t_ms` since the end of the load).
    pub recovery_samples: Vec<Sample>,
    /// VmRSS when the overload started.
    pub rss_load_start: u64,
    /// VmRSS after the run settled.
    pub rss_after: u64,
    /// Counters when the overload phase started.
    pub at_start: Option<Totals>,
    /// Counters when the overload phase ended.
    pub at_stop: Option<Totals>,
    /// Time from the end of the load until a probe reached every
    /// subscriber and nothing was queued; `None` if not within the limit.
    pub recovery_ms: Option<u64>,
    /// Probe messages sent after the load.
    pub probes_sent: u64,
    /// Counters stopped changing and nothing was queued before the end.
    pub settled: bool,
    /// Messages received by all subscribers, over the whole run.
    pub received: u64,
    /// Messages the generator scheduled over the whole run, probes
    /// included.
    pub offered_total: u64,
    /// Messages the ring took over the whole run.
    pub sent_total: u64,
    /// Datagrams the generator could not send over the whole run.
    pub gen_dropped_packets_total: u64,
    /// Messages in them.
    pub gen_dropped_messages_total: u64,
    /// CREDIT entries sent.
    pub credit_entries: u64,
}

/// What the million-stream scenario saw.
#[derive(Debug)]
pub struct MillionOutcome {
    /// VmRSS with the dataplane ready (tables and pool allocated), before
    /// any subscription.
    pub rss_before: u64,
    /// VmRSS once every stream was subscribed.
    pub rss_subscribed: u64,
    /// VmRSS after the load.
    pub rss_loaded: u64,
    /// VmRSS after every subscription was removed.
    pub rss_unsubscribed: u64,
    /// VmRSS after subscribing and unsubscribing every stream once more.
    pub rss_second_round: u64,
    /// Seconds to subscribe (all ACKs in).
    pub subscribe_seconds: f64,
    /// Subscriptions acknowledged.
    pub subscribed: bool,
    /// Unsubscriptions (and the second round) acknowledged and the gauges
    /// back to zero streams and nothing queued each time.
    pub freed: bool,
    /// Gauge streams_active after subscribing.
    pub streams_active: u64,
    /// The load phase.
    pub load: Phase,
    /// CREDIT entries sent.
    pub credit_entries: u64,
}

/// What the closed-loop round trips saw.
#[derive(Debug)]
pub struct RoundTrips {
    /// Subscriptions acknowledged before the first round trip.
    pub subscribed: bool,
    /// Round trips measured (after the warm-up).
    pub round_trips: u64,
    /// Messages whose DELIVER did not come back within the timeout.
    pub timeouts: u64,
    /// Round-trip time, ns: from writing the PUBLISH to reading its DELIVER.
    pub rtt_ns: Histogram<u64>,
    /// Seconds the measured round trips took.
    pub seconds: f64,
}

/// Round trips made before measuring (caches, branch predictors, the
/// appliance's adaptive burst settle).
pub const ROUND_TRIP_WARMUP: u64 = 10_000;

/// A round trip that takes longer than this counts as a timeout.
const ROUND_TRIP_TIMEOUT_S: f64 = 0.1;

impl Generator {
    /// Closed loop, one message in flight, like Aeron's ping/pong: publishes
    /// one message (one per datagram) on stream 0, polls until its DELIVER
    /// is back, records the time, and repeats `n` times after a warm-up;
    /// stops early after `limit_s` seconds. The latency is the whole loop:
    /// the generator's frame building and ring, the worker's poll, the
    /// appliance's work, and the way back. `done` is set at the end.
    pub fn round_trips(&self, load: Load, n: u64, limit_s: f64, done: &AtomicBool) -> RoundTrips {
        let mut s = Session::new(self, load, 0, done);
        let subscribed = s.ranges(FrameType::Subscribe, 0, 0);
        let src = PUB_PORT_BASE + (ms_wire::shard::shard(0) % 16) as u16;
        let mut payload = vec![0u8; load.payload.max(16)];
        let (mut timeouts, mut measured) = (0u64, 0u64);
        let deadline = rdtsc() + (limit_s * self.tsc_hz as f64) as u64;
        let mut t0 = rdtsc();
        for i in 0..ROUND_TRIP_WARMUP + n {
            if i == ROUND_TRIP_WARMUP {
                s.hist.reset();
                t0 = rdtsc();
            }
            if rdtsc() >= deadline || done.load(Ordering::Relaxed) {
                break;
            }
            let before = s.received;
            payload[8..16].copy_from_slice(&i.to_le_bytes());
            let sent = s.send_one(src, |b| {
                // Stamped last, right before the frame is handed to the ring.
                payload[..8].copy_from_slice(&rdtsc().to_le_bytes());
                let mut w = PublishBuilder::new(b)?;
                w.push(0, NORMAL_CLASS, &payload).then_some(())?;
                Some(w.len())
            });
            if !sent || !s.drain_until(ROUND_TRIP_TIMEOUT_S, |s| s.received > before) {
                timeouts += 1;
            } else if i >= ROUND_TRIP_WARMUP {
                measured += 1;
            }
        }
        let seconds = (rdtsc() - t0) as f64 / self.tsc_hz as f64;
        done.store(true, Ordering::Relaxed);
        RoundTrips { subscribed, round_trips: measured, timeouts, rtt_ns: s.hist, seconds }
    }

    /// Runs the load; `done` is set when it is over.
    pub fn run(&self, load: Load, done: &AtomicBool) -> Outcome {
        let mut s = Session::new(self, load, 0, done);
        let subscribed = s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        let phase = s.offer(load.rate, load.seconds, |_| {});
        // Wait for what is still on its way, at most 200 ms.
        let expected = (phase.offered - phase.gen_dropped_messages) * u64::from(load.subscribers);
        s.drain_until(0.2, |s| s.received >= expected);
        done.store(true, Ordering::Relaxed);
        Outcome {
            sent: phase.offered,
            sent_packets: phase.sent_packets,
            gen_dropped_packets: phase.gen_dropped_packets,
            gen_dropped_messages: phase.gen_dropped_messages,
            received: s.received,
            received_packets: s.received_packets,
            seconds: phase.seconds,
            latency_ns: s.hist,
            subscribed,
            credit_entries: s.grants.entries_sent,
            credit_datagrams: s.grants.datagrams_sent,
        }
    }

    /// The overload scenario: offer `factor` times the sustainable rate, sampling RSS and the memory gauges
    /// every 100 ms, then probe until normal service resumes, and wait
    /// until the counters settle. Stream `load.streams` is the probe
    /// stream; the load itself never publishes to it. `done` is set at the
    /// end. Errors only if the stats segment cannot be read.
    pub fn overload(
        &self,
        load: Load,
        spec: OverloadSpec,
        stats: &Path,
        done: &AtomicBool,
    ) -> anyhow::Result<OverloadOutcome> {
        let result = self.overload_inner(load, spec, stats, done);
        done.store(true, Ordering::Relaxed);
        result
    }

    fn overload_inner(
        &self,
        load: Load,
        spec: OverloadSpec,
        stats: &Path,
        done: &AtomicBool,
    ) -> anyhow::Result<OverloadOutcome> {
        let probe = load.streams;
        let mut s = Session::new(self, load, 1, done);
        let subscribed = s.ranges(FrameType::Subscribe, 0, probe);
        let mut mon = Monitor::open(stats)?;
        let mut samples = Vec::with_capacity((spec.seconds * 10.0) as usize + 16);
        let rate = (spec.sustainable as f64 * spec.factor) as u64;
        let at_start = mon.read();
        let rss_load_start = rss_bytes();
        let every = self.tsc_hz / 10;
        let t0 = rdtsc();
        let mut next = t0;
        let overload = s.offer(rate, spec.seconds, |now| {
            if now >= next && samples.len() < samples.capacity() {
                next = now + every;
                let t_ms = (now - t0) * 1000 / self.tsc_hz;
                if let Some(x) = mon.sample(t_ms) {
                    samples.push(x);
                }
            }
        });
        let stop = rdtsc();
        let at_stop = mon.read();
        // Probes: one normal-class message every 10 ms on the probe stream
        // until one reached every subscriber and nothing is queued. Normal
        // class is what degradation level 3 sheds, so its delivery means
        // the pool is below that step and the higher classes' backlog is
        // gone.
        s.probe_stream = Some(probe);
        let probe_every = self.tsc_hz / 100;
        let mut next_probe = stop;
        let mut probes_sent = 0u64;
        let mut check_next = stop;
        let mut recovery_samples = Vec::with_capacity((spec.recovery_limit_s * 100.0) as usize + 16);
        let mut sample_next = stop;
        let recovered = s.drain_until(spec.recovery_limit_s, |s| {
            let now = rdtsc();
            if now >= sample_next && recovery_samples.len() < recovery_samples.capacity() {
                sample_next = now + self.tsc_hz / 100;
                if let Some(x) = mon.sample((now - stop) * 1000 / self.tsc_hz) {
                    recovery_samples.push(x);
                }
            }
            if !s.probe_seen.iter().all(|&b| b) && now >= next_probe {
                next_probe = now + probe_every;
                let mut payload = [0u8; 16];
                payload[..8].copy_from_slice(&now.to_le_bytes());
                payload[8..].copy_from_slice(&probes_sent.to_le_bytes());
                let src = PUB_PORT_BASE + (ms_wire::shard::shard(probe) % 16) as u16;
                let sent = s.send_one(src, |b| {
                    let mut w = PublishBuilder::new(b)?;
                    w.push(probe, NORMAL_CLASS, &payload).then_some(())?;
                    Some(w.len())
                });
                probes_sent += 1;
                s.offered += 1;
                if sent {
                    s.sent += 1;
                } else {
                    s.dropped_packets += 1;
                    s.dropped_messages += 1;
                }
            }
            if !s.probe_seen.iter().all(|&b| b) || now < check_next {
                return false;
            }
            check_next = now + self.tsc_hz / 1000;
            mon.read().is_some_and(|t| t.get(ProtoCounter::QueuedMessages) == 0)
        });
        let recovery_ms = recovered.then(|| (rdtsc() - stop) * 1000 / self.tsc_hz);
        let settled = s.settle(&mut mon, 10.0);
        Ok(OverloadOutcome {
            subscribed,
            overload,
            samples,
            recovery_samples,
            rss_load_start,
            rss_after: rss_bytes(),
            at_start,
            at_stop,
            recovery_ms,
            probes_sent,
            settled,
            received: s.received,
            offered_total: s.offered,
            sent_total: s.sent,
            gen_dropped_packets_total: s.dropped_packets,
            gen_dropped_messages_total: s.dropped_messages,
            credit_entries: s.grants.entries_sent,
        })
    }

    /// The million-stream scenario: RSS with the dataplane ready, after
    /// subscribing every stream, after `load` (credit granted per stream),
    /// and after unsubscribing them all. `done` is set at the end.
    pub fn million(&self, load: Load, stats: &Path, done: &AtomicBool) -> anyhow::Result<MillionOutcome> {
        let result = self.million_inner(load, stats, done);
        done.store(true, Ordering::Relaxed);
        result
    }

    fn million_inner(&self, load: Load, stats: &Path, done: &AtomicBool) -> anyhow::Result<MillionOutcome> {
        let mut s = Session::new(self, load, 0, done);
        // A stream id past the table's: never subscribed.
        anyhow::ensure!(s.ping(load.streams + 1), "the dataplane did not answer");
        let mut mon = Monitor::open(stats)?;
        let rss_before = rss_bytes();
        let t = rdtsc();
        let subscribed = s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        let subscribe_seconds = (rdtsc() - t) as f64 / self.tsc_hz as f64;
        let streams_active = mon.read().map_or(0, |t| t.get(ProtoCounter::StreamsActive));
        let rss_subscribed = rss_bytes();
        let mut phase = s.offer(load.rate, load.seconds, |_| {});
        s.settle(&mut mon, 10.0);
        // What came in while settling belongs to the load too.
        phase.received = s.received;
        let rss_loaded = rss_bytes();
        let mut freed = s.ranges(FrameType::Unsubscribe, 0, load.streams - 1);
        let mut gone = |s: &mut Session<'_>| {
            s.drain_until(10.0, |_| {
                mon.read().is_some_and(|t| {
                    t.get(ProtoCounter::StreamsActive) == 0 && t.get(ProtoCounter::QueuedMessages) == 0
                })
            })
        };
        freed &= gone(&mut s);
        let rss_unsubscribed = rss_bytes();
        // A second round: whatever the first one made resident is reused,
        // so the process must not grow again.
        freed &= s.ranges(FrameType::Subscribe, 0, load.streams - 1);
        freed &= s.ranges(FrameType::Unsubscribe, 0, load.streams - 1);
        freed &= gone(&mut s);
        Ok(MillionOutcome {
            rss_before,
            rss_subscribed,
            rss_loaded,
            rss_unsubscribed,
            rss_second_round: rss_bytes(),
            subscribe_seconds,
            subscribed,
            freed,
            streams_active,
            load: phase,
            credit_entries: s.grants.entries_sent,
        })
    }
}
