//! Batching publisher: [`PublisherState`] batches with no I/O,
//! [`Publisher`] sends its datagrams from one UDP socket per shard group.

mod state;

pub use state::{PublisherState, Transmit};

use crate::ClientError;
use ms_wire::DATAGRAM_MAX;
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
    state: PublisherState,
    /// The datagram being sent.
    out: Vec<u8>,
    rbuf: Vec<u8>,
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
        Ok(Publisher {
            target,
            sockets: socks,
            state: PublisherState::new(n),
            out: vec![0; DATAGRAM_MAX],
            rbuf: vec![0; DATAGRAM_MAX + 64],
        })
    }

    /// The appliance address.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The batching state (read only: the methods here drive it).
    pub fn state(&self) -> &PublisherState {
        &self.state
    }

    /// Socket index a stream is sent from.
    pub fn socket_of(&self, stream: u64) -> usize {
        self.state.socket_of(stream)
    }

    /// Queues a message, sending its shard's datagram first if it is full.
    pub fn publish(&mut self, stream: u64, class: u8, payload: &[u8]) -> Result<(), ClientError> {
        self.state.publish(stream, class, payload)?;
        self.send_out()
    }

    /// Sends the datagrams the state made ready. A transient error (the
    /// appliance or the route to it is gone for now) loses the datagram:
    /// its messages are counted as unsent and publishing goes on, so a
    /// publisher outlives an appliance restart.
    fn send_out(&mut self) -> Result<(), ClientError> {
        while let Some(t) = self.state.poll_transmit(&mut self.out) {
            if let Err(e) = self.sockets[t.socket].send(&self.out[..t.len]) {
                let transient = crate::is_transient(&e);
                self.state.transmit_failed(&t, transient);
                if !transient {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Messages whose datagram could not be sent (a transient socket
    /// error: the appliance or the route to it was gone), and how many
    /// sends failed so.
    pub fn unsent(&self) -> (u64, u64) {
        self.state.unsent()
    }

    /// Sends every partly filled datagram.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.state.flush();
        self.send_out()
    }

    /// (messages queued, datagrams sent) so far.
    pub fn counts(&self) -> (u64, u64) {
        self.state.counts()
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
            *refused += self.state.handle_datagram(&self.rbuf[..n]);
        }
    }

    /// Messages refused in the BACKPRESSURE frames read so far.
    pub fn refused(&self) -> u64 {
        self.state.refused()
    }

    /// BACKPRESSURE frames read so far.
    pub fn backpressure_frames(&self) -> u64 {
        self.state.backpressure_frames()
    }

    /// Other datagrams [`Publisher::poll_backpressure`] read (ERRORs such
    /// as MixedShards, or anything unparsable).
    pub fn other_frames(&self) -> u64 {
        self.state.other_frames()
    }

    /// Sends raw bytes from the first socket (for tests of malformed input).
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.sockets[0].send(bytes)?;
        Ok(())
    }
}
