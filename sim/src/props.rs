//! The properties, checked as the appliance sends and as clients hand
//! messages over. What the protocol promises (docs/protocol.md): from the
//! appliance's side each message reaches a subscriber at most once and in
//! order, never past the subscriber's grant; the network may then lose,
//! repeat and reorder DELIVERs, so at the subscriber the promise is only
//! what the client makes of them (here: each message handed once, in
//! order, by sequence number).
//!
//! So DELIVERs are checked where they leave the appliance (`Io::send`):
//!
//! * every message was published: its payload names a (publisher, stream,
//!   number) some client sent in a PUBLISH, intact, on the stream it names;
//! * a stream's sequence numbers and positions are the stream's: two
//!   subscribers sent sequence `n` of a stream got the same message at the
//!   same position, positions grow with sequence numbers, and consecutive
//!   numbers differ in position by exactly the later payload's length;
//! * per (subscriber, stream), sequence numbers strictly increase: no
//!   duplicate, no reordering;
//! * never past the grant: a message's end position is at most the largest
//!   grant the owning worker could have seen (the initial credit from the
//!   stream's position when the subscription appeared, or a CREDIT that
//!   reached that worker);
//! * a DELIVER carries as many messages as `Io::send` was told (what the
//!   dataplane counts delivered or dropped).
//!
//! And at the subscribers: a handed message was sent to that subscriber,
//! each once, in order.

use crate::clients::{parse_payload, Handed, Id};
use ms_streams::Peer;
use ms_wire::Frame;
use std::collections::{BTreeMap, HashMap as StdMap, HashSet as StdSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's): keys here are small integers, not attacker-chosen, and
/// SipHash dominated the debug build's run time.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.write_u64(u64::from(*b)));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type HashMap<K, V> = StdMap<K, V, BuildHasherDefault<Fx>>;
type HashSet<K> = StdSet<K, BuildHasherDefault<Fx>>;

/// What the properties remember.
#[derive(Debug, Default)]
pub struct Checker {
    published: HashSet<Id>,
    /// Per stream: sequence number -> (position, payload length, message).
    streams: HashMap<u64, BTreeMap<u64, (u64, u64, Id)>>,
    /// Per (subscriber, stream): last (sequence, position) sent.
    last_sent: HashMap<(Peer, u64), (u64, u64)>,
    sent: HashSet<(Peer, u64, u64)>,
    /// Per (subscriber, stream): the largest grant the owner could know.
    grants: HashMap<(Peer, u64), u64>,
    /// Per (client, stream): last sequence number handed.
    handed: HashMap<(usize, u64), u64>,
    /// Messages checked at the appliance's side.
    pub delivered: u64,
    /// Messages handed by subscribers.
    pub handed_total: u64,
}

impl Checker {
    /// Records the messages of a PUBLISH a client sent.
    pub fn on_publish_sent(&mut self, bytes: &[u8]) {
        if let Ok(Frame::Publish(p)) = ms_wire::parse(bytes) {
            self.published.extend(p.messages().filter_map(|m| parse_payload(m.payload)));
        }
    }

    /// A subscription of `peer` to `stream` exists, whose initial grant is
    /// at most `grant` (no-op when it was seen before).
    pub fn on_subscription(&mut self, peer: Peer, stream: u64, grant: u64) {
        self.grants.entry((peer, stream)).or_insert(grant);
    }

    /// The worker owning `stream` takes a CREDIT grant (ignored when the
    /// subscription does not exist, as the engine does).
    pub fn on_credit(&mut self, peer: Peer, stream: u64, position: u64) {
        if let Some(g) = self.grants.get_mut(&(peer, stream)) {
            *g = (*g).max(position);
        }
    }

    /// The largest grant the owner of `stream` could know from `peer`.
    pub fn grant(&self, peer: Peer, stream: u64) -> Option<u64> {
        self.grants.get(&(peer, stream)).copied()
    }

    /// The end position of the last message of `stream` sent to `peer`.
    pub fn last_sent(&self, peer: Peer, stream: u64) -> Option<u64> {
        self.last_sent.get(&(peer, stream)).map(|x| x.1)
    }

    /// Checks a DELIVER the appliance sends to `to`, said to carry `messages`.
    pub fn on_deliver(&mut self, to: Peer, bytes: &[u8], messages: u32) -> Result<(), String> {
        let Ok(Frame::Deliver(d)) = ms_wire::parse(bytes) else {
            return Err("a DELIVER the appliance sent does not parse".into());
        };
        if d.len() != messages as usize {
            return Err(format!("DELIVER carries {} messages, Io::send was told {messages}", d.len()));
        }
        for x in d.deliveries() {
            self.delivered += 1;
            let what = || format!("stream {} seq {} position {} to port {}", x.stream, x.seq, x.position, to.port);
            let Some(id) = parse_payload(x.payload) else {
                return Err(format!("{}: payload corrupt", what()));
            };
            if id.stream != x.stream || !self.published.contains(&id) {
                return Err(format!("{}: never published ({id:?})", what()));
            }
            let len = x.payload.len() as u64;
            self.stream_order(x.stream, x.seq, x.position, len, id).map_err(|e| format!("{}: {e}", what()))?;
            if let Some((seq, pos)) = self.last_sent.insert((to, x.stream), (x.seq, x.position)) {
                if x.seq <= seq || x.position <= pos {
                    return Err(format!("{}: after seq {seq} position {pos} (duplicate or out of order)", what()));
                }
            }
            match self.grants.get(&(to, x.stream)) {
                None => return Err(format!("{}: no subscription was seen", what())),
                Some(g) if x.position > *g => return Err(format!("{}: past the grant {g}", what())),
                Some(_) => {}
            }
            self.sent.insert((to, x.stream, x.seq));
        }
        Ok(())
    }

    /// Sequence number `seq` of `stream` is the same message at the same
    /// position for everyone, and positions add up.
    fn stream_order(&mut self, stream: u64, seq: u64, pos: u64, len: u64, id: Id) -> Result<(), String> {
        let s = self.streams.entry(stream).or_default();
        if let Some(&(p, _, i)) = s.get(&seq) {
            return if (p, i) == (pos, id) { Ok(()) } else { Err(format!("also sent as position {p} ({i:?})")) };
        }
        if let Some((&ps, &(pp, _, _))) = s.range(..seq).next_back() {
            if pp >= pos || (ps + 1 == seq && pos - pp != len) {
                return Err(format!("seq {ps} was at position {pp}, this one is {len} bytes"));
            }
        }
        if let Some((&ns, &(np, nlen, _))) = s.range(seq + 1..).next() {
            if np <= pos || (ns == seq + 1 && np - pos != nlen) {
                return Err(format!("seq {ns} is at position {np}"));
            }
        }
        s.insert(seq, (pos, len, id));
        Ok(())
    }

    /// Checks a message subscriber `client` (address `peer`) handed over.
    pub fn on_handed(&mut self, client: usize, peer: Peer, h: &Handed) -> Result<(), String> {
        self.handed_total += 1;
        let what = || format!("client {client} handed stream {} seq {}", h.stream, h.seq);
        if !self.sent.contains(&(peer, h.stream, h.seq)) {
            return Err(format!("{}: never sent to it", what()));
        }
        if let Some(last) = self.handed.insert((client, h.stream), h.seq) {
            if h.seq <= last {
                return Err(format!("{}: after seq {last}", what()));
            }
        }
        Ok(())
    }
}
