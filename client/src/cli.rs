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
    fn chunking() {
        let c: Vec<_> = chunks(0..=150_000).collect();
        assert_eq!(c, [(0, 65_535), (65_536, 131_071), (131_072, 150_000)]);
        assert_eq!(chunks(3..=3).collect::<Vec<_>>(), [(3, 3)]);
        assert_eq!(chunks(u64::MAX - 10..=u64::MAX).collect::<Vec<_>>(), [(u64::MAX - 10, u64::MAX)]);
    }
}
