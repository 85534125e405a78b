//! Batching publisher.

use crate::ClientError;
use ms_wire::control::Control;
use ms_wire::publish::PublishBuilder;
use ms_wire::shard::{shard, SHARDS};
use ms_wire::{Frame, DATAGRAM_MAX, PAYLOAD_MAX};
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

/// Publishes messages to the appliance.
///
/// Messages are batched per shard (a PUBLISH datagram never mixes shards)
/// and each shard always leaves through the same socket, so messages of a
/// stream arrive in order through one UDP flow. Batches go out when full
/// or on [`Publisher::flush`].
///
/// The appliance answers a PUBLISH whose messages a full stream under the
/// `block` policy refused with a BACKPRESSURE frame; call
/// [`Publisher::poll_backpressure`] now and then (it never blocks) to read
/// them and slow down.
pub struct Publisher {
    target: SocketAddr,
    sockets: Vec<UdpSocket>,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    /// Shards listed in `dirty` (each at most once).
    queued: Vec<bool>,
    dirty: Vec<u32>,
    datagrams: u64,
    messages: u64,
    /// Messages in each shard's datagram being filled.
    pending: Vec<u32>,
    unsent_messages: u64,
    send_errors: u64,
    rbuf: Vec<u8>,
    refused: u64,
    backpressure_frames: u64,
    other_frames: u64,
}

impl Publisher {
    /// Opens `sockets` UDP sockets bound to `bind` (port 0 = ephemeral)
    /// that publish to the appliance at `target`.
    pub fn new(target: SocketAddr, bind: SocketAddr, sockets: usize) -> Result<Publisher, ClientError> {
        let n = sockets.max(1);
        let mut socks = Vec::with_capacity(n);
        for _ in 0..n {
            let s = UdpSocket::bind(bind)?;
            s.connect(target)?;
            socks.push(s);
        }
        let shards = SHARDS as usize;
        Ok(Publisher {
            target,
            sockets: socks,
            bufs: vec![0; shards * DATAGRAM_MAX],
            lens: vec![0; shards],
            queued: vec![false; shards],
            dirty: Vec::with_capacity(shards),
            datagrams: 0,
            messages: 0,
            pending: vec![0; shards],
            unsent_messages: 0,
            send_errors: 0,
            rbuf: vec![0; DATAGRAM_MAX + 64],
            refused: 0,
            backpressure_frames: 0,
            other_frames: 0,
        })
    }

    /// The appliance address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Socket index a stream is sent from.
    pub fn socket_of(&self, stream: u64) -> usize {
        shard(stream) as usize % self.sockets.len()
    }

    /// Queues a message, sending its shard's datagram first if it is full.
    pub fn publish(&mut self, stream: u64, class: u8, payload: &[u8]) -> Result<(), ClientError> {
        if payload.len() > PAYLOAD_MAX {
            return Err(ClientError::PayloadTooLarge { len: payload.len(), max: PAYLOAD_MAX });
        }
        if class > ms_wire::publish::CLASS_MAX {
            return Err(ClientError::BadClass { class });
        }
        let sh = shard(stream) as usize;
        if !self.append(sh, stream, class, payload) {
            self.flush_shard(sh)?;
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

    /// Sends shard `sh`'s datagram. A transient error (the appliance or
    /// the route to it is gone for now) loses the datagram: its messages
    /// are counted as unsent and publishing goes on, so a publisher
    /// outlives an appliance restart.
    fn flush_shard(&mut self, sh: usize) -> Result<(), ClientError> {
        let len = std::mem::take(&mut self.lens[sh]);
        let msgs = std::mem::take(&mut self.pending[sh]);
        if len <= ms_wire::HEADER_LEN {
            return Ok(());
        }
        let sock = &self.sockets[sh % self.sockets.len()];
        match sock.send(&self.bufs[sh * DATAGRAM_MAX..sh * DATAGRAM_MAX + len]) {
            Ok(_) => self.datagrams += 1,
            Err(e) if crate::is_transient(&e) => {
                self.send_errors += 1;
                self.unsent_messages += u64::from(msgs);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Messages whose datagram could not be sent (a transient socket
    /// error: the appliance or the route to it was gone), and how many
    /// sends failed so.
    pub fn unsent(&self) -> (u64, u64) {
        (self.unsent_messages, self.send_errors)
    }

    /// Sends every partly filled datagram.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(sh) = self.dirty.pop() {
            self.queued[sh as usize] = false;
            self.flush_shard(sh as usize)?;
        }
        Ok(())
    }

    /// (messages queued, datagrams sent) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.messages, self.datagrams)
    }

    /// Reads, without blocking, every datagram waiting on the publisher's
    /// sockets; returns the messages refused in the BACKPRESSURE frames
    /// among them. A BACKPRESSURE entry `(stream, refused)` says the last
    /// `refused` messages of `stream` in the PUBLISH it answers were not
    /// accepted (no sequence number): the stream's queue is full because a
    /// subscriber is behind; they may be published again later. Anything
    /// else (an ERROR such as MixedShards, an unparsable datagram) is only
    /// counted ([`Publisher::other_frames`]).
    pub fn poll_backpressure(&mut self) -> Result<u64, ClientError> {
        let mut refused = 0;
        for i in 0..self.sockets.len() {
            self.sockets[i].set_nonblocking(true)?;
            let drained = self.drain(i, &mut refused);
            self.sockets[i].set_nonblocking(false)?;
            drained?;
        }
        self.refused += refused;
        Ok(refused)
    }

    fn drain(&mut self, i: usize, refused: &mut u64) -> Result<(), ClientError> {
        loop {
            let n = match self.sockets[i].recv(&mut self.rbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // An ICMP error queued on the socket (the appliance was
                // away): reported once, then the socket reads on.
                Err(e) if crate::is_transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            match ms_wire::parse(&self.rbuf[..n]) {
                Ok(Frame::Control(Control::Backpressure(entries))) => {
                    self.backpressure_frames += 1;
                    *refused += entries.map(|b| u64::from(b.refused)).sum::<u64>();
                }
                _ => self.other_frames += 1,
            }
        }
    }

    /// Messages refused in the BACKPRESSURE frames read so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// BACKPRESSURE frames read so far.
    pub fn backpressure_frames(&self) -> u64 {
        self.backpressure_frames
    }

    /// Other datagrams [`Publisher::poll_backpressure`] read (ERRORs such
    /// as MixedShards, or anything unparsable).
    pub fn other_frames(&self) -> u64 {
        self.other_frames
    }

    /// Sends raw bytes from the first socket (for tests of malformed input).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.sockets[0].send(bytes)?;
        Ok(())
    }
}
