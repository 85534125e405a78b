//! Subscriber: subscriptions with acknowledgement, heartbeats, per-stream
//! gap and order checking, and flow control (CREDIT grants).
//!
//! [`SubscriberState`] holds the protocol with no I/O; [`Subscriber`]
//! drives it with a UDP socket and the clock.

mod grants;
mod outbox;
mod request;
mod state;
#[cfg(test)]
mod tests;
mod types;

pub use request::{RequestKind, RequestOutcome};
pub use state::{SubscriberState, DEFAULT_CREDIT_WINDOW};
pub use types::{Delivery, StreamState, SubscriberStats};

use crate::ClientError;
use ms_wire::DATAGRAM_MAX;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The receive buffer a subscriber asks the kernel for. Linux grants at
/// most `net.core.rmem_max` (as root, `SO_RCVBUFFORCE` goes past it).
pub const RCVBUF_WANT_BYTES: usize = 32 << 20;

/// A subscriber on one UDP socket (its address is the subscription's).
///
/// Flow control (docs/protocol.md, "Flow control"): by default the
/// subscriber grants credit by itself as [`Subscriber::recv`] hands
/// messages over, a window of [`DEFAULT_CREDIT_WINDOW`] bytes past the last
/// message returned of each stream (see [`Subscriber::set_credit_window`]),
/// and re-sends recent grants, and grants not yet followed by a delivery,
/// with its heartbeats so a lost CREDIT cannot stall a stream (see
/// [`Subscriber::heartbeat`]).
///
/// A datagram whose send fails with an error that is not transient is
/// lost (the error is returned); heartbeats re-send the grants it carried.
pub struct Subscriber {
    sock: UdpSocket,
    target: SocketAddr,
    /// Time zero of the state's clock.
    start: Instant,
    state: SubscriberState,
    /// Received datagrams.
    buf: Vec<u8>,
    /// The datagram being sent.
    out: Vec<u8>,
}

impl Subscriber {
    /// Binds `bind` and talks to the appliance at `target`. Heartbeats go
    /// out every `heartbeat_every` from [`Subscriber::recv`].
    pub fn new(target: SocketAddr, bind: SocketAddr, heartbeat_every: Duration) -> Result<Subscriber, ClientError> {
        let sock = UdpSocket::bind(bind)?;
        sock.connect(target)?;
        let rcvbuf_bytes = grow_rcvbuf(&sock, RCVBUF_WANT_BYTES);
        Ok(Subscriber {
            sock,
            target,
            start: Instant::now(),
            state: SubscriberState::new(Duration::ZERO, heartbeat_every, rcvbuf_bytes),
            buf: vec![0; DATAGRAM_MAX + 64],
            out: vec![0; DATAGRAM_MAX],
        })
    }

    /// The protocol state (read only: the methods here drive it).
    pub fn state(&self) -> &SubscriberState {
        &self.state
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The appliance instance the subscriptions were made with (from its
    /// ACKs), if any answered yet.
    pub fn instance(&self) -> Option<u64> {
        self.state.instance()
    }

    /// The heartbeat interval in use: the one asked for, at most a third of
    /// the subscription lifetime the appliance reports in its ACKs.
    pub fn heartbeat_every(&self) -> Duration {
        self.state.heartbeat_every()
    }

    /// Bytes the kernel gave this subscriber's receive buffer.
    pub fn rcvbuf_bytes(&self) -> usize {
        self.state.rcvbuf_bytes()
    }

    /// Streams subscribed (as made; the appliance may hold fewer).
    pub fn subscribed_streams(&self) -> u64 {
        self.state.subscribed_streams()
    }

    /// The credit window each stream is granted with: the window set (see
    /// [`Subscriber::set_credit_window`]), but no more than this stream's
    /// share of what the receive buffer holds, so that credit never
    /// promises more than the subscriber can hold while it is not reading
    /// (what does not fit is lost in the kernel). Never below one largest
    /// message, or a stream could not move at all: with more streams than
    /// the buffer holds largest messages, a paused subscriber can still
    /// overflow it. `None` in manual mode.
    pub fn effective_window(&self) -> Option<u64> {
        self.state.effective_window()
    }

    /// Sets automatic flow control. With `Some(w)` (the default is
    /// `Some(`[`DEFAULT_CREDIT_WINDOW`]`)`), once [`Subscriber::recv`] has
    /// returned a message of stream S ending at position P, the subscriber
    /// grants S up to `P + w` whenever that is at least `w / 2` beyond its
    /// last grant for S (or S has none yet; see [`crate::CreditRule`]).
    /// Grants are batched into CREDIT datagrams, sent before `recv`
    /// returns with nothing more buffered or waits for the network. `None`
    /// (or `Some(0)`) is manual: the subscriber grants nothing by itself,
    /// beyond the appliance's initial credit a stream only moves on
    /// [`Subscriber::grant`].
    pub fn set_credit_window(&mut self, window: Option<u64>) {
        self.state.set_credit_window(window);
    }

    /// The automatic credit window (`None` = manual).
    pub fn credit_window(&self) -> Option<u64> {
        self.state.credit_window()
    }

    /// Grants `stream` credit up to `position` now (one CREDIT datagram)
    /// and records it as the stream's latest grant, which the following
    /// heartbeats re-send like automatic ones. Grants are absolute and the
    /// appliance keeps the largest it has seen: a grant below an earlier
    /// one changes nothing there.
    pub fn grant(&mut self, stream: u64, position: u64) -> Result<(), ClientError> {
        self.grant_many(&[(stream, position)])
    }

    /// Like [`Subscriber::grant`] for several `(stream, position)` grants,
    /// batched into as few CREDIT datagrams as they fit.
    pub fn grant_many(&mut self, grants: &[(u64, u64)]) -> Result<(), ClientError> {
        self.state.grant(grants);
        self.send_out()
    }

    /// End position of the last message of `stream` that
    /// [`Subscriber::recv`] returned.
    pub fn last_position(&self, stream: u64) -> Option<u64> {
        self.state.last_position(stream)
    }

    /// The latest grant for `stream` (automatic or manual; the appliance
    /// may still hold an earlier, larger one).
    pub fn last_grant(&self, stream: u64) -> Option<u64> {
        self.state.last_grant(stream)
    }

    /// Streams whose subscription the appliance removed with an ERROR
    /// `SlowConsumer` (this subscriber fell behind under the `disconnect`
    /// policy), in arrival order. At most 1024 are kept;
    /// [`SubscriberStats::slow_consumer`] counts them all.
    pub fn slow_consumer_notices(&self) -> &[u64] {
        self.state.slow_consumer_notices()
    }

    /// The local address (the one the appliance delivers to).
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.sock.local_addr()?)
    }

    /// Subscribes to `first..=last`; returns the number of streams the
    /// appliance added, once every core has acknowledged. Each core
    /// applies its share all or nothing: when one refuses (a table is
    /// full), the error says how many streams the other cores added
    /// ([`ClientError::Refused`]`::applied`), and those stay subscribed.
    pub fn subscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        let now = self.now();
        self.state.subscribe(now, first, last, timeout)?;
        let r = self.wait_answer();
        if let Err(ClientError::Refused { applied, .. }) = &r {
            if *applied > 0 {
                self.roll_back(first, last, timeout);
            }
        }
        r
    }

    /// Undoes what the cores that accepted their share of a refused range
    /// subscribed: the streams of `first..=last` not subscribed before.
    /// Best effort (a lost UNSUBSCRIBE leaves them to expire).
    fn roll_back(&mut self, first: u64, last: u64, timeout: Duration) {
        for (a, b) in self.state.uncovered(first, last) {
            let now = self.now();
            self.state.request(now, RequestKind::Unsubscribe, a, b, timeout);
            let _ = self.wait_answer();
        }
    }

    /// Unsubscribes from `first..=last`; returns the number removed.
    pub fn unsubscribe(&mut self, first: u64, last: u64, timeout: Duration) -> Result<u32, ClientError> {
        let now = self.now();
        self.state.unsubscribe(now, first, last, timeout)?;
        self.wait_answer()
    }

    /// Sends the waiting request, and again at its timeouts, reading until
    /// it is answered (deliveries read meanwhile wait for
    /// [`Subscriber::recv`]).
    fn wait_answer(&mut self) -> Result<u32, ClientError> {
        loop {
            if let Err(e) = self.send_out() {
                self.state.abandon_request();
                return Err(e);
            }
            if let Some((request, answer)) = self.state.poll_answer() {
                return answer.into_result(request, self.target);
            }
            let now = self.now();
            match self.state.poll_timeout() {
                Some(due) if now < due => {
                    if let Err(e) = self.read_one(due - now) {
                        self.state.abandon_request();
                        return Err(e);
                    }
                }
                _ => self.state.handle_timeout(now),
            }
        }
    }

    /// Sends everything the state has queued. A transient error loses the
    /// datagram and is counted; any other is returned.
    fn send_out(&mut self) -> Result<(), ClientError> {
        while let Some(n) = self.state.poll_transmit(&mut self.out) {
            if let Err(e) = self.sock.send(&self.out[..n]) {
                self.state.transmit_failed(&self.out[..n]);
                self.transient(e)?;
            }
        }
        Ok(())
    }

    /// Counts a transient socket error and carries on; returns any other.
    fn transient(&mut self, e: std::io::Error) -> Result<(), ClientError> {
        if crate::is_transient(&e) {
            self.state.socket_error();
            Ok(())
        } else {
            Err(e.into())
        }
    }

    /// Sends a HEARTBEAT now, then CREDITs re-sending the latest grant of
    /// every stream whose grant changed since the previous heartbeat or the
    /// one before (at most 4 datagrams, 364 grants; the oldest changes
    /// first), so a lost grant delays a stream by one heartbeat period
    /// instead of stalling it.
    ///
    /// Every copy of a grant may still be lost, and then the stream stops
    /// at an earlier grant, possibly below where the subscriber would grant
    /// again. So a latest grant is also re-sent with every later heartbeat
    /// until a delivery ending past the stream's previous grant arrives
    /// (only a stream's first grant waits for a later one instead), which
    /// shows that the appliance holds it: at most 4 more datagrams, the
    /// streams taking turns over the heartbeats when there are more.
    /// Deliveries that the appliance sent under the earlier grant do not
    /// count, so streams that keep receiving are not re-sent this way.
    ///
    /// Before sending, it checks the answers to the previous HEARTBEAT
    /// (docs/protocol.md, "HEARTBEAT"): when the cores together hold fewer
    /// subscriptions than were made (they expired, or the appliance
    /// restarted, or the answers were lost), it makes them all again
    /// ([`SubscriberStats::resubscribes`]), without waiting for the ACKs.
    pub fn heartbeat(&mut self) -> Result<(), ClientError> {
        let now = self.now();
        self.state.heartbeat(now);
        self.send_out()
    }

    /// Sets the heartbeat interval asked for (tests stop heartbeats with a
    /// long one to let subscriptions expire); the one used stays at most a
    /// third of the lifetime the appliance reports.
    pub fn set_heartbeat_every(&mut self, every: Duration) {
        self.state.set_heartbeat_every(every);
    }

    /// The next message, waiting up to `timeout`; `None` only after the
    /// socket was read at least once (so a zero timeout takes what already
    /// waits). Sends a heartbeat when one is due, and the grants automatic
    /// flow control queued (see [`Subscriber::set_credit_window`]).
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Delivery>, ClientError> {
        let deadline = Instant::now() + timeout;
        // The socket is looked at at least once: a short timeout that runs
        // out during the bookkeeping below (a busy machine preempts) must
        // not answer "nothing" while a datagram waits.
        let mut looked = false;
        loop {
            // Answers to the last HEARTBEAT may still wait unread in the
            // socket (the application was busy): the check wants two short
            // heartbeats in a row, and answers read late count for the next
            // one, so no read-ahead is needed here (one held every message
            // back for tens of milliseconds).
            self.state.handle_timeout(self.now());
            self.send_out()?;
            if let Some(d) = self.state.poll_delivery() {
                // A failed send loses those grants: heartbeats re-send them.
                let _ = self.send_out();
                return Ok(Some(d));
            }
            self.state.flush_credits();
            self.send_out()?;
            let now = Instant::now();
            if now >= deadline && looked {
                return Ok(None);
            }
            let wait = deadline.saturating_duration_since(now).min(self.state.heartbeat_every());
            self.read_one(wait)?;
            looked = true;
        }
    }

    /// Reads one datagram within `wait` into the state, and sends what it
    /// answers with (subscriptions made again after a restart).
    fn read_one(&mut self, wait: Duration) -> Result<(), ClientError> {
        self.sock.set_read_timeout(Some(wait.max(Duration::from_micros(100))))?;
        match self.sock.recv(&mut self.buf) {
            Ok(n) => {
                let now = self.now();
                self.state.handle_datagram(now, &self.buf[..n]);
                self.send_out()
            }
            // Nothing in time, a signal (the process was stopped and
            // continued), or an ICMP error from when the appliance was away.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(()),
            Err(e) => self.transient(e),
        }
    }

    /// Totals so far.
    pub fn stats(&self) -> SubscriberStats {
        self.state.stats()
    }

    /// Per-stream state so far.
    pub fn stream(&self, id: u64) -> Option<StreamState> {
        self.state.stream(id)
    }

    /// Every stream seen, with its state.
    pub fn streams(&self) -> impl Iterator<Item = (u64, StreamState)> + '_ {
        self.state.streams()
    }
}

/// Asks the kernel for a receive buffer of `want` bytes (past
/// `net.core.rmem_max` when the process may) and returns what it gave.
fn grow_rcvbuf(sock: &UdpSocket, want: usize) -> usize {
    let fd = sock.as_raw_fd();
    let want = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
    let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: fd is a live socket owned by `sock`; the option value is a
        // c_int on the stack and `size` is its size.
        let rc = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, (&raw const want).cast(), size) };
        if rc == 0 {
            break; // SO_RCVBUFFORCE needs CAP_NET_ADMIN; else the capped one
        }
    }
    let mut got: libc::c_int = 0;
    let mut len = size;
    // SAFETY: as above; `got` and `len` are valid for writes of their size.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&raw mut got).cast(), &mut len) };
    if rc == 0 {
        usize::try_from(got).unwrap_or(0)
    } else {
        0
    }
}
