//! Per-subscriber DELIVER datagrams being filled during a turn. Each
//! subscriber has at most one, in a buffer from the caller's pool; it is
//! sent when the next message does not fit or when the turn ends.

use crate::counts::{Counts, ProtoCounter};
use crate::{Addr, Io};
use ms_streams::Out;
use ms_wire::deliver::DeliverState;
use ms_wire::DATAGRAM_MAX;

/// A DELIVER being filled for one subscriber.
#[derive(Debug)]
struct Pending<B> {
    buf: Option<B>,
    st: DeliverState,
    messages: u32,
    /// In `dirty` (a full DELIVER is sent mid-turn and its slot refilled
    /// without being listed twice).
    listed: bool,
}

/// The DELIVERs of one worker, by subscriber slot.
pub(crate) struct Fanout<B> {
    pending: Vec<Pending<B>>,
    /// Slots with a DELIVER pending (at most one entry each).
    dirty: Vec<u32>,
    /// Where each subscriber slot's DELIVERs go, noted when it subscribes,
    /// so a DELIVER goes out without a table lookup.
    addr: Vec<Addr>,
}

/// The part of `buf`'s payload area a DELIVER may fill: what the Io
/// promises, never more than a datagram the appliance may send.
fn area<'a, I: Io>(io: &'a mut I, buf: &I::Buf) -> &'a mut [u8] {
    let b = io.payload(buf);
    let n = b.len().min(DATAGRAM_MAX);
    &mut b[..n]
}

const UNSET: Addr = Addr { ip: core::net::Ipv4Addr::UNSPECIFIED, port: 0, via: 0 };

impl<B> Fanout<B> {
    /// Room for `subscribers` slots, allocated now (startup only).
    pub(crate) fn new(subscribers: usize) -> Fanout<B> {
        let idle = || Pending { buf: None, st: DeliverState { len: 0, count: 0 }, messages: 0, listed: false };
        Fanout {
            pending: (0..subscribers).map(|_| idle()).collect(),
            dirty: Vec::with_capacity(subscribers),
            addr: vec![UNSET; subscribers],
        }
    }

    /// Notes where subscriber slot `sub` is served.
    pub(crate) fn set_addr(&mut self, sub: u32, addr: Addr) {
        self.addr[sub as usize] = addr;
    }

    /// Where subscriber slot `sub` was last served.
    pub(crate) fn addr(&self, sub: u32) -> Addr {
        self.addr[sub as usize]
    }

    /// True when no DELIVER is being filled.
    pub(crate) fn is_idle(&self) -> bool {
        self.dirty.is_empty()
    }

    /// Appends one scheduled message to subscriber `sub`'s DELIVER; false
    /// when no buffer is free (the message stays queued for the next turn).
    pub(crate) fn append<I: Io<Buf = B>>(&mut self, io: &mut I, sub: u32, out: &Out<'_>, c: &mut Counts) -> bool {
        let i = sub as usize;
        // The common case first: the pending DELIVER takes it (the push
        // checks the room itself, so it is checked once).
        let p = &mut self.pending[i];
        if let Some(buf) = p.buf.as_ref() {
            if p.st.push_with(area(io, buf), &out.meta, out.len, |dst| out.copy_payload(dst)) {
                p.messages += 1;
                return true;
            }
            self.flush_one(io, sub);
        }
        let Some(buf) = io.alloc() else {
            c.add(ProtoCounter::DeliverNoBuffer, 1);
            return false;
        };
        let mut st = DeliverState::start(area(io, &buf));
        // Refused only if one message cannot fit an empty DELIVER, which
        // PUBLISH's limits rule out; the message then stays queued, as
        // with no buffer.
        if !st.push_with(area(io, &buf), &out.meta, out.len, |dst| out.copy_payload(dst)) {
            io.free(buf);
            return false;
        }
        let listed = self.pending[i].listed;
        self.pending[i] = Pending { buf: Some(buf), st, messages: 1, listed: true };
        if !listed {
            // Each slot is listed at most once, so this never grows.
            assert!(self.dirty.len() < self.dirty.capacity(), "fan-out list overflow");
            self.dirty.push(sub);
        }
        true
    }

    /// Sends subscriber `sub`'s pending DELIVER, if any.
    fn flush_one<I: Io<Buf = B>>(&mut self, io: &mut I, sub: u32) {
        let p = &mut self.pending[sub as usize];
        let Some(buf) = p.buf.take() else {
            return;
        };
        // Counted delivered or dropped by the caller, once it knows.
        io.send(self.addr[sub as usize], buf, usize::from(p.st.len), p.messages);
    }

    /// Sends every pending DELIVER.
    pub(crate) fn flush_all<I: Io<Buf = B>>(&mut self, io: &mut I) {
        while let Some(sub) = self.dirty.pop() {
            self.pending[sub as usize].listed = false;
            self.flush_one(io, sub);
        }
    }
}
