//! The publisher's batching and BACKPRESSURE accounting, without sockets.

use crate::ClientError;
use ms_wire::control::Control;
use ms_wire::publish::PublishBuilder;
use ms_wire::shard::{shard, SHARDS};
use ms_wire::{Frame, DATAGRAM_MAX, HEADER_LEN, PAYLOAD_MAX};
use std::collections::VecDeque;

/// A datagram to send, taken from [`PublisherState::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The socket (source port) it must leave through.
    pub socket: usize,
    /// Its length in the caller's buffer.
    pub len: usize,
    /// Messages it carries.
    pub messages: u32,
}

/// Per-shard PUBLISH batching and the counts of a publisher with
/// `sockets` sockets, with no I/O.
///
/// A PUBLISH datagram never mixes shards, and each shard always leaves
/// through the same socket ([`PublisherState::socket_of`]), so the
/// messages of a stream arrive in order through one UDP flow and the
/// appliance's RSS spreads streams over its cores. The caller sends what
/// [`PublisherState::poll_transmit`] yields, in order, from the socket it
/// names, and feeds datagrams received on any socket to
/// [`PublisherState::handle_datagram`].
#[derive(Debug)]
pub struct PublisherState {
    sockets: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    /// Shards listed in `dirty` (each at most once).
    queued: Vec<bool>,
    dirty: Vec<u32>,
    /// Messages in each shard's datagram being filled.
    pending: Vec<u32>,
    /// Datagrams ready to send, back to back, and what each is.
    ready: Vec<u8>,
    ready_list: VecDeque<Transmit>,
    ready_head: usize,
    datagrams: u64,
    messages: u64,
    unsent_messages: u64,
    send_errors: u64,
    refused: u64,
    backpressure_frames: u64,
    other_frames: u64,
}

impl PublisherState {
    /// A publisher sending from `sockets` sockets (at least 1).
    pub fn new(sockets: usize) -> PublisherState {
        let shards = SHARDS as usize;
        PublisherState {
            sockets: sockets.max(1),
            bufs: vec![0; shards * DATAGRAM_MAX],
            lens: vec![0; shards],
            queued: vec![false; shards],
            dirty: Vec::with_capacity(shards),
            pending: vec![0; shards],
            ready: Vec::with_capacity(2 * DATAGRAM_MAX),
            ready_list: VecDeque::new(),
            ready_head: 0,
            datagrams: 0,
            messages: 0,
            unsent_messages: 0,
            send_errors: 0,
            refused: 0,
            backpressure_frames: 0,
            other_frames: 0,
        }
    }

    /// Sockets the state spreads shards over.
    pub fn sockets(&self) -> usize {
        self.sockets
    }

    /// Socket index a stream is sent from.
    pub fn socket_of(&self, stream: u64) -> usize {
        socket_of_shard(shard(stream) as usize, self.sockets)
    }

    /// Queues a message, making its shard's datagram ready to send first if
    /// it is full.
    pub fn publish(&mut self, stream: u64, class: u8, payload: &[u8]) -> Result<(), ClientError> {
        if payload.len() > PAYLOAD_MAX {
            return Err(ClientError::PayloadTooLarge { len: payload.len(), max: PAYLOAD_MAX });
        }
        if class > ms_wire::publish::CLASS_MAX {
            return Err(ClientError::BadClass { class });
        }
        let sh = shard(stream) as usize;
        if !self.append(sh, stream, class, payload) {
            self.close(sh);
            let ok = self.append(sh, stream, class, payload);
            debug_assert!(ok, "an empty datagram holds any valid message");
        }
        self.messages += 1;
        Ok(())
    }

    fn append(&mut self, sh: usize, stream: u64, class: u8, payload: &[u8]) -> bool {
        let buf = &mut self.bufs[sh * DATAGRAM_MAX..(sh + 1) * DATAGRAM_MAX];
        let len = self.lens[sh];
        let mut w = if len == 0 {
            if !self.queued[sh] {
                self.queued[sh] = true;
                self.dirty.push(sh as u32);
            }
            PublishBuilder::new(buf).expect("buffer holds a header")
        } else {
            PublishBuilder::resume(buf, len).expect("our own datagram")
        };
        let ok = w.push(stream, class, payload);
        self.lens[sh] = w.len();
        self.pending[sh] += u32::from(ok);
        ok
    }

    /// Moves shard `sh`'s datagram, if it holds a message, to the ready
    /// ones.
    fn close(&mut self, sh: usize) {
        let len = std::mem::take(&mut self.lens[sh]);
        let messages = std::mem::take(&mut self.pending[sh]);
        if len <= HEADER_LEN {
            return;
        }
        let at = sh * DATAGRAM_MAX;
        self.ready.extend_from_slice(&self.bufs[at..at + len]);
        self.ready_list.push_back(Transmit { socket: socket_of_shard(sh, self.sockets), len, messages });
    }

    /// Makes every partly filled datagram ready to send.
    pub fn flush(&mut self) {
        while let Some(sh) = self.dirty.pop() {
            self.queued[sh as usize] = false;
            self.close(sh as usize);
        }
    }

    /// The next datagram to send, moved into `buf` (which must hold
    /// [`DATAGRAM_MAX`] bytes); counted as sent.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        let t = self.ready_list.pop_front()?;
        buf[..t.len].copy_from_slice(&self.ready[self.ready_head..self.ready_head + t.len]);
        self.ready_head += t.len;
        if self.ready_list.is_empty() {
            self.ready.clear();
            self.ready_head = 0;
        }
        self.datagrams += 1;
        Some(t)
    }

    /// `t` could not be sent: not counted as sent, and with a `transient`
    /// error (the appliance or the route to it gone for now) its messages
    /// are counted as unsent.
    pub fn transmit_failed(&mut self, t: &Transmit, transient: bool) {
        self.datagrams = self.datagrams.saturating_sub(1);
        if transient {
            self.send_errors += 1;
            self.unsent_messages += u64::from(t.messages);
        }
    }

    /// Takes a datagram from the appliance; returns the messages a
    /// BACKPRESSURE frame says were refused (0 for anything else, which is
    /// counted in [`PublisherState::other_frames`]).
    pub fn handle_datagram(&mut self, datagram: &[u8]) -> u64 {
        match ms_wire::parse(datagram) {
            Ok(Frame::Control(Control::Backpressure(entries))) => {
                self.backpressure_frames += 1;
                let refused = entries.map(|b| u64::from(b.refused)).sum::<u64>();
                self.refused += refused;
                refused
            }
            _ => {
                self.other_frames += 1;
                0
            }
        }
    }

    /// Messages whose datagram could not be sent, and how many sends failed.
    pub fn unsent(&self) -> (u64, u64) {
        (self.unsent_messages, self.send_errors)
    }

    /// (messages queued, datagrams sent) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.messages, self.datagrams)
    }

    /// Messages refused in the BACKPRESSURE frames read so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// BACKPRESSURE frames read so far.
    pub fn backpressure_frames(&self) -> u64 {
        self.backpressure_frames
    }

    /// Other datagrams read (ERRORs such as MixedShards, or anything
    /// unparsable).
    pub fn other_frames(&self) -> u64 {
        self.other_frames
    }
}

/// The socket, of `sockets`, that shard `sh` always leaves through.
pub fn socket_of_shard(sh: usize, sockets: usize) -> usize {
    sh % sockets.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_batch_apart_and_full_datagrams_go_first() {
        let mut p = PublisherState::new(2);
        let (a, b) = (0..).map(|s| (0u64, s)).find(|&(_, s)| shard(s) != shard(0)).expect("two shards");
        let payload = [7u8; 700];
        p.publish(a, 1, &payload).unwrap();
        p.publish(b, 1, &payload).unwrap();
        p.publish(a, 1, &payload).unwrap();
        let mut buf = [0u8; DATAGRAM_MAX];
        assert_eq!(p.poll_transmit(&mut buf), None, "nothing full yet");
        p.publish(a, 1, &payload).unwrap(); // the third does not fit
        let t = p.poll_transmit(&mut buf).expect("the full one");
        assert_eq!((t.socket, t.messages), (p.socket_of(a), 2));
        assert!(matches!(ms_wire::parse(&buf[..t.len]), Ok(Frame::Publish(_))));
        p.flush();
        let rest: Vec<_> = std::iter::from_fn(|| p.poll_transmit(&mut buf)).map(|t| (t.socket, t.messages)).collect();
        assert_eq!(rest.len(), 2);
        assert!(rest.contains(&(p.socket_of(a), 1)) && rest.contains(&(p.socket_of(b), 1)));
        p.transmit_failed(&Transmit { socket: 0, len: 0, messages: 1 }, true);
        assert_eq!((p.counts(), p.unsent()), ((4, 2), (1, 1)));
        assert!(matches!(p.publish(a, 9, b""), Err(ClientError::BadClass { class: 9 })));
    }
}
