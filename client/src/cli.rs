//! Small helpers shared by the command-line tools.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

/// The options every tool shares: where the appliance is, where to bind,
/// which streams.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoint {
    /// Appliance address (its IPv4 and service port).
    #[arg(long, default_value = "198.18.0.1:9000")]
    pub target: SocketAddr,
    /// Local address to bind (port 0 = ephemeral).
    #[arg(long, default_value = "0.0.0.0:0")]
    pub bind: SocketAddr,
    /// Streams: `A..B`, `A..=B` or one id.
    #[arg(long, default_value = "0..1", value_parser = parse_streams)]
    pub streams: RangeInclusive<u64>,
}

/// Parses `A..B` (exclusive), `A..=B` or a single id.
pub fn parse_streams(s: &str) -> Result<RangeInclusive<u64>, String> {
    let bad = || format!("invalid stream range {s:?}: expected A..B, A..=B or N");
    if let Some((a, b)) = s.split_once("..=") {
        let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        return if a <= b { Ok(a..=b) } else { Err(bad()) };
    }
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        return if a < b { Ok(a..=b - 1) } else { Err(bad()) };
    }
    let n = s.parse().map_err(|_| bad())?;
    Ok(n..=n)
}

/// Parses a duration in seconds: a finite decimal number >= 0 (`10`,
/// `0.5`), or `inf` for no limit (`None`).
pub fn parse_seconds(s: &str) -> Result<Option<std::time::Duration>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity") {
        return Ok(None);
    }
    let bad = || format!("{s:?} is not a duration: expected seconds as a number >= 0 (e.g. 10 or 0.5), or inf");
    let secs: f64 = t.parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad());
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|_| format!("{s:?} seconds is too long; use inf for no limit"))
}

/// Bytes at the start of an `ms-pub` payload: the publisher's message
/// index over all streams, then the message's index within its stream
/// (both u64, little-endian).
pub const PAYLOAD_COUNTERS_LEN: usize = 16;

/// Writes `ms-pub`'s counters at the start of `payload` (at least
/// [`PAYLOAD_COUNTERS_LEN`] bytes).
pub fn write_counters(payload: &mut [u8], index: u64, in_stream: u64) {
    payload[..8].copy_from_slice(&index.to_le_bytes());
    payload[8..16].copy_from_slice(&in_stream.to_le_bytes());
}

/// Messages missed by the publisher's per-stream counter in `ms-pub`
/// payloads: unlike sequence numbers, it runs on across an appliance
/// restart, so it also counts what was published while the appliance was
/// away.
#[derive(Debug, Default)]
pub struct PayloadCounters {
    last: std::collections::HashMap<u64, u64>,
    missed: u64,
}

impl PayloadCounters {
    /// Notes a received message; payloads without counters are ignored.
    pub fn saw(&mut self, stream: u64, payload: &[u8]) {
        let Some(b) = payload.get(8..16) else { return };
        let k = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let last = self.last.entry(stream).or_insert(k);
        if k > *last {
            self.missed += k - *last - 1;
            *last = k;
        }
    }

    /// Messages skipped between the first and the last one received of
    /// each stream.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

/// Splits a range into protocol-sized chunks (at most RANGE_IDS_MAX ids).
pub fn chunks(r: RangeInclusive<u64>) -> impl Iterator<Item = (u64, u64)> {
    let max = ms_wire::control::RANGE_IDS_MAX;
    let end = *r.end();
    let mut next = Some(*r.start()).filter(|s| *s <= end);
    std::iter::from_fn(move || {
        let a = next?;
        let b = a.saturating_add(max - 1).min(end);
        next = b.checked_add(1).filter(|n| *n <= end);
        Some((a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_streams("0..10"), Ok(0..=9));
        assert_eq!(parse_streams("5..=5"), Ok(5..=5));
        assert_eq!(parse_streams("7"), Ok(7..=7));
        assert!(parse_streams("10..5").is_err() && parse_streams("x").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("10"), Ok(Some(std::time::Duration::from_secs(10))));
        assert_eq!(parse_seconds("0.5"), Ok(Some(std::time::Duration::from_millis(500))));
        assert_eq!(parse_seconds("inf"), Ok(None));
        for bad in ["nan", "-1", "1e20", "x", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_counters_count_gaps_per_stream() {
        let mut c = PayloadCounters::default();
        let mut p = [0u8; 16];
        for k in [0, 1, 2, 6, 7, 5, 8] {
            write_counters(&mut p, k * 2, k);
            c.saw(1, &p);
        }
        write_counters(&mut p, 0, 3);
        c.saw(2, &p);
        c.saw(2, &[0; 8]);
        assert_eq!(c.missed(), 3, "3, 4 and 5 of stream 1 (5 came late and is not counted again)");
    }

    #[test]
    fn chunking() {
        let c: Vec<_> = chunks(0..=150_000).collect();
        assert_eq!(c, [(0, 65_535), (65_536, 131_071), (131_072, 150_000)]);
        assert_eq!(chunks(3..=3).collect::<Vec<_>>(), [(3, 3)]);
        assert_eq!(chunks(u64::MAX - 10..=u64::MAX).collect::<Vec<_>>(), [(u64::MAX - 10, u64::MAX)]);
    }
}
