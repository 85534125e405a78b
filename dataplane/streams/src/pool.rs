//! The bounded store of queued messages: fixed-size descriptors and
//! 64-byte payload chunks, both allocated (and touched) once at startup
//! from the worker's share of the memory budget. A message is stored once
//! per stream, whatever its fan-out, and freed when every subscription has
//! sent or skipped it.

use crate::NIL;

/// Payload bytes per chunk.
pub const CHUNK_BYTES: usize = 64;

/// A queued message's descriptor (40 bytes).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct Msg {
    pub seq: u64,
    /// Stream position at the end of this message.
    pub end_pos: u64,
    pub timestamp_ns: u64,
    /// Next message of the stream's queue (or free-list link), or NIL.
    pub next: u32,
    /// Subscriptions that have yet to send or skip this message.
    pub refs: u32,
    /// First payload chunk, or NIL for an empty payload.
    pub chunk: u32,
    pub len: u16,
    pub class: u8,
    pub flags: u8,
}

const _: () = assert!(std::mem::size_of::<Msg>() == 40);

/// Bytes of budget one message slot and one chunk cost together.
pub const SLOT_BYTES: u64 = (std::mem::size_of::<Msg>() + CHUNK_BYTES + 4) as u64;

/// The pool. Every operation is O(chunks of the message), no allocation.
#[derive(Debug)]
pub(crate) struct Pool {
    msgs: Vec<Msg>,
    msg_free: u32,
    msgs_used: u32,
    chunks: Vec<[u8; CHUNK_BYTES]>,
    chunk_next: Vec<u32>,
    chunk_free: u32,
    chunks_used: u32,
}

const FREE_MSG: Msg =
    Msg { seq: 0, end_pos: 0, timestamp_ns: 0, next: NIL, refs: 0, chunk: NIL, len: 0, class: 0, flags: 0 };

impl Pool {
    /// A pool that fits `budget_bytes`: as many message slots as chunks,
    /// so a budget of only small messages is not limited by descriptors.
    pub fn with_budget(budget_bytes: u64) -> Pool {
        let n = (budget_bytes / SLOT_BYTES).min(u64::from(NIL - 1)) as u32;
        let link = |i: u32| if i + 1 < n { i + 1 } else { NIL };
        let msgs: Vec<Msg> = (0..n).map(|i| Msg { next: link(i), ..FREE_MSG }).collect();
        let mut chunks = vec![[0u8; CHUNK_BYTES]; n as usize];
        crate::resident(&mut chunks);
        let chunk_next: Vec<u32> = (0..n).map(link).collect();
        let head = if n > 0 { 0 } else { NIL };
        // `alloc` checks chunk room against `capacity()` (the descriptor
        // count) and follows chunk links into `chunks`: the three tables
        // must be the same length. Once, at startup.
        assert!(msgs.len() == chunks.len() && chunk_next.len() == chunks.len(), "pool tables differ in length");
        Pool { msgs, msg_free: head, msgs_used: 0, chunks, chunk_next, chunk_free: head, chunks_used: 0 }
    }

    /// Message slots (and chunks) in the pool.
    pub fn capacity(&self) -> u32 {
        self.msgs.len() as u32
    }

    /// Bytes the pool takes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.capacity()) * SLOT_BYTES
    }

    /// Bytes of the pool in use.
    pub fn used_bytes(&self) -> u64 {
        u64::from(self.msgs_used) * std::mem::size_of::<Msg>() as u64
            + u64::from(self.chunks_used) * (CHUNK_BYTES as u64 + 4)
    }

    /// Messages stored.
    pub fn messages(&self) -> u32 {
        self.msgs_used
    }

    /// How full the pool is, 0..=100 (the fuller of slots and chunks).
    pub fn fill_percent(&self) -> u32 {
        let cap = u64::from(self.capacity());
        if cap == 0 {
            return 100;
        }
        (u64::from(self.msgs_used.max(self.chunks_used)) * 100 / cap) as u32
    }

    /// Stores a message; `None` when the pool cannot hold it (nothing taken).
    pub fn alloc(&mut self, payload: &[u8]) -> Option<u32> {
        if !self.has_room(payload.len()) {
            return None;
        }
        let need = payload.len().div_ceil(CHUNK_BYTES) as u32;
        let m = self.msg_free;
        self.msg_free = self.msgs[m as usize].next;
        self.msgs_used += 1;
        let (mut first, mut last) = (NIL, NIL);
        for part in payload.chunks(CHUNK_BYTES) {
            let c = self.chunk_free;
            self.chunk_free = self.chunk_next[c as usize];
            self.chunks[c as usize][..part.len()].copy_from_slice(part);
            self.chunk_next[c as usize] = NIL;
            match last {
                NIL => first = c,
                l => self.chunk_next[l as usize] = c,
            }
            last = c;
        }
        self.chunks_used += need;
        self.msgs[m as usize] = Msg { chunk: first, len: payload.len() as u16, ..FREE_MSG };
        Some(m)
    }

    /// Whether [`Pool::alloc`] of a `len`-byte payload would succeed now.
    #[inline]
    pub fn has_room(&self, len: usize) -> bool {
        self.msg_free != NIL && self.capacity() - self.chunks_used >= len.div_ceil(CHUNK_BYTES) as u32
    }

    /// Returns message `m` and its chunks to the pool.
    pub fn free(&mut self, m: u32) {
        let mut c = self.msgs[m as usize].chunk;
        while c != NIL {
            let next = self.chunk_next[c as usize];
            self.chunk_next[c as usize] = self.chunk_free;
            self.chunk_free = c;
            self.chunks_used -= 1;
            c = next;
        }
        self.msgs[m as usize] = Msg { next: self.msg_free, ..FREE_MSG };
        self.msg_free = m;
        self.msgs_used -= 1;
    }

    #[inline]
    pub fn get(&self, m: u32) -> &Msg {
        &self.msgs[m as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, m: u32) -> &mut Msg {
        &mut self.msgs[m as usize]
    }

    /// Copies message `m`'s payload into `out` (exactly its length).
    pub fn copy_payload(&self, m: u32, out: &mut [u8]) {
        let msg = &self.msgs[m as usize];
        debug_assert_eq!(out.len(), usize::from(msg.len));
        let mut c = msg.chunk;
        for part in out.chunks_mut(CHUNK_BYTES) {
            part.copy_from_slice(&self.chunks[c as usize][..part.len()]);
            c = self.chunk_next[c as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_space_returns() {
        let mut p = Pool::with_budget(SLOT_BYTES * 8);
        assert_eq!(p.capacity(), 8);
        let a: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let m = p.alloc(&a).unwrap();
        let e = p.alloc(&[]).unwrap();
        assert_eq!(p.fill_percent(), 4 * 100 / 8, "4 chunks of 8");
        let mut out = vec![0; 200];
        p.copy_payload(m, &mut out);
        assert_eq!(out, a);
        p.copy_payload(e, &mut []);
        assert!(p.alloc(&[0; 64 * 5]).is_none(), "5 chunks do not fit in 4");
        assert_eq!(p.messages(), 2, "a refusal takes nothing");
        p.free(m);
        p.free(e);
        assert_eq!((p.used_bytes(), p.messages(), p.fill_percent()), (0, 0, 0));
        assert!(p.alloc(&[7; 64 * 8]).is_some(), "all chunks usable again");
    }

    #[test]
    fn an_empty_budget_refuses() {
        let mut p = Pool::with_budget(SLOT_BYTES - 1);
        assert!(p.alloc(&[]).is_none());
        assert_eq!(p.fill_percent(), 100);
    }
}
