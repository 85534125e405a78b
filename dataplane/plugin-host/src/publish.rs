//! The plugin stage of the streams protocol: the chains of one core,
//! applied to each PUBLISH datagram before the engine handles it.
//!
//! The engine sees what the chains made of a datagram as ordinary PUBLISH
//! datagrams: messages outside every chain's range unchanged, the others
//! as their chain decided, in the datagram's order, emits after the
//! messages of their batch. Rewrites and emits can make more than one
//! datagram of one. A datagram with no message in a chain's range is not
//! touched at all (the caller checks [`Chains::covers`] first).

use crate::Chain;
use ms_wire::publish::{Publish, PublishBuilder};
use ms_wire::DATAGRAM_MAX;

/// Chains by stream range (inclusive, not overlapping).
pub struct Chains {
    ranges: Vec<(u64, u64, Chain)>,
    out: Box<[u8]>,
}

/// Why chains could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// Two chains' ranges share streams.
    #[error("the plugin chains for streams {0}..={1} and {2}..={3} overlap: give each stream at most one chain")]
    Overlap(u64, u64, u64, u64),
    /// A range ends before it starts.
    #[error("the plugin chain range {0}..={1} is empty: write it as first..=last")]
    Empty(u64, u64),
}

/// Builds PUBLISH datagrams from messages, handing each full one on.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    emit: &'a mut dyn FnMut(&[u8]),
}

impl Writer<'_> {
    fn push(&mut self, stream: u64, class: u8, payload: &[u8]) {
        if self.try_push(stream, class, payload) {
            return;
        }
        self.flush();
        // One message always fits an empty PUBLISH (the ABI bounds a
        // payload by what a datagram carries).
        let fits = self.try_push(stream, class, payload);
        debug_assert!(fits, "a message of {} bytes does not fit an empty PUBLISH", payload.len());
    }

    fn try_push(&mut self, stream: u64, class: u8, payload: &[u8]) -> bool {
        let builder = match self.len {
            0 => PublishBuilder::new(self.buf),
            len => PublishBuilder::resume(self.buf, len),
        };
        let Some(mut b) = builder else { return false };
        let pushed = b.push(stream, class, payload);
        self.len = b.len();
        pushed
    }

    fn flush(&mut self) {
        if self.len > ms_wire::HEADER_LEN {
            (self.emit)(&self.buf[..self.len]);
        }
        self.len = 0;
    }
}

impl Chains {
    /// The chains of `ranges` (startup or attach, off the hot path).
    pub fn new(mut ranges: Vec<(u64, u64, Chain)>) -> Result<Chains, RangeError> {
        ranges.sort_by_key(|r| r.0);
        for r in &ranges {
            if r.1 < r.0 {
                return Err(RangeError::Empty(r.0, r.1));
            }
        }
        for w in ranges.windows(2) {
            if w[1].0 <= w[0].1 {
                return Err(RangeError::Overlap(w[0].0, w[0].1, w[1].0, w[1].1));
            }
        }
        Ok(Chains { ranges, out: vec![0; DATAGRAM_MAX].into_boxed_slice() })
    }

    /// The chains, by range.
    pub fn chains_mut(&mut self) -> impl Iterator<Item = (u64, u64, &mut Chain)> {
        self.ranges.iter_mut().map(|(a, b, c)| (*a, *b, c))
    }

    fn chain_of(&self, stream: u64) -> Option<usize> {
        // Few chains per core: a scan beats a search.
        self.ranges.iter().position(|r| (r.0..=r.1).contains(&stream))
    }

    /// True when some message of `p` is in a chain's range.
    pub fn covers(&self, p: &Publish<'_>) -> bool {
        !self.ranges.is_empty() && p.messages().any(|m| self.chain_of(m.stream).is_some())
    }

    /// Runs `p`'s messages through their chains at `now_ns`; each PUBLISH
    /// datagram that results goes to `emit`.
    pub fn apply(&mut self, now_ns: u64, p: &Publish<'_>, emit: &mut dyn FnMut(&[u8])) {
        let Chains { ranges, out } = self;
        let mut w = Writer { buf: out, len: 0, emit };
        let mut messages = p.messages().peekable();
        while let Some(first) = messages.peek().copied() {
            let Some(c) = ranges.iter().position(|r| (r.0..=r.1).contains(&first.stream)) else {
                w.push(first.stream, first.class, first.payload);
                messages.next();
                continue;
            };
            let (lo, hi) = (ranges[c].0, ranges[c].1);
            // The run of messages in this chain's range, as one batch (a
            // chain takes at most a batch; the rest make another).
            let run = std::iter::from_fn(|| messages.next_if(|m| (lo..=hi).contains(&m.stream)));
            let mut sink = |stream, class, payload: &[u8]| w.push(stream, class, payload);
            ranges[c].2.run(now_ns, run.map(|m| (m.stream, m.class, m.payload)), &mut sink);
        }
        w.flush();
    }
}
