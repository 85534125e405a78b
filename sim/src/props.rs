//! The properties, checked as the appliance sends and as clients hand
//! messages over. What the protocol promises (docs/protocol.md): from the
//! appliance's side each message reaches a subscriber at most once and in
//! order, never past the subscriber's grant (but for one message after a
//! policy's skip); the network may then lose,
//! repeat and reorder DELIVERs, so at the subscriber the promise is only
//! what the client makes of them (here: each message handed once, in
//! order, by sequence number).
//!
//! PUBLISH datagrams are checked where they leave a publisher: every
//! message intact, and a publisher's messages of a stream in the order it
//! published them (the library's: each one, none dropped).
//!
//! DELIVERs are checked where they leave the appliance (`Io::send`):
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
//!   grant the owning worker could have seen (the initial credit, the one
//!   the SUBSCRIBE asked for capped by the engines' default, from the
//!   stream's position when the subscription appeared; or a CREDIT that
//!   reached that worker), but for the one message a policy's skip allows
//!   past it: after a gap in sequence numbers, once until the grant rises;
//! * a DELIVER carries as many messages as `Io::send` was told (what the
//!   dataplane counts delivered or dropped).
//!
//! And at the subscribers: a handed message was sent to that subscriber.
//! The simulator's model hands each once, in order. The client library
//! does not drop duplicates: it hands over every message that arrives, as
//! it arrives, and counts it out of order when its sequence number is at
//! or below one already seen. So for a library subscriber:
//!
//! * it hands over exactly the messages of the DELIVERs that reached it,
//!   in the order they arrived, each as often as it arrived (nothing
//!   dropped, made up, held back or reordered);
//! * its `received`, `out_of_order` and `lost` counts are exactly those of
//!   the messages it handed over: a message is out of order when its
//!   sequence number is below the next one expected (since the stream's
//!   state last started again: an answered or repeated SUBSCRIBE), and
//!   `lost` is the sum of forward jumps. Every message not counted out of
//!   order is handed in order; and since the appliance's side never sends
//!   one twice or out of order (above), every one counted is the
//!   network's doing.
//!
//! Of every subscriber's grants: a CREDIT never grants a stream more than
//! its window past the end of the last message of it handed over, and a
//! SUBSCRIBE never asks for more initial credit than the window.

use crate::clients::{parse_payload, Handed, Handing, Id, SeqCounts};
use ms_streams::Peer;
use ms_wire::control::{Control, RangeRequest};
use ms_wire::{Frame, FrameType};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap as StdMap, HashSet as StdSet, VecDeque};
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
    /// Per (publisher, stream): the number of the message expected next.
    publish_next: HashMap<(u16, u64), u64>,
    /// Per stream: sequence number -> (position, payload length, message).
    streams: HashMap<u64, BTreeMap<u64, (u64, u64, Id)>>,
    /// Per (subscriber, stream): last (sequence, position) sent.
    last_sent: HashMap<(Peer, u64), (u64, u64)>,
    sent: HashSet<(Peer, u64, u64)>,
    /// Per subscriber: the initial credit its SUBSCRIBEs ask for.
    asked: HashMap<Peer, u32>,
    /// Per (subscriber, stream): the largest grant the owner could know.
    grants: HashMap<(Peer, u64), u64>,
    /// Per (subscriber, stream): sent a message past its grant (the one a
    /// policy's skip allows) since its grant last rose.
    owed_used: HashSet<(Peer, u64)>,
    /// Per (client, stream): last sequence number handed.
    handed: HashMap<(usize, u64), u64>,
    /// Per (subscriber, stream): the largest end position handed.
    consumed: HashMap<(usize, u64), u64>,
    /// Per library subscriber: messages that reached it, not yet handed.
    arrived: HashMap<usize, VecDeque<Handed>>,
    /// Per (library subscriber, stream): the sequence number expected next.
    next_seq: HashMap<(usize, u64), u64>,
    /// Per library subscriber: the counts of the messages it handed.
    counts: HashMap<usize, SeqCounts>,
    /// Messages checked at the appliance's side.
    pub delivered: u64,
    /// Messages handed by subscribers.
    pub handed_total: u64,
}

impl Checker {
    /// Records the messages of a PUBLISH a client sent: intact, and per
    /// (publisher, stream) in the order published; with `every` (the
    /// library, which batches but never drops), each one, none skipped.
    pub fn on_publish_sent(&mut self, bytes: &[u8], every: bool) -> Result<(), String> {
        let Ok(Frame::Publish(p)) = ms_wire::parse(bytes) else { return Ok(()) };
        for m in p.messages() {
            let Some(id) = parse_payload(m.payload).filter(|id| id.stream == m.stream) else {
                return Err(format!("a publisher sent a corrupt message on stream {}", m.stream));
            };
            let next = self.publish_next.entry((id.publisher, id.stream)).or_default();
            if id.seq < *next || (every && id.seq != *next) {
                return Err(format!(
                    "publisher {} sent its message {} of stream {} after {}",
                    id.publisher,
                    id.seq,
                    id.stream,
                    *next - 1
                ));
            }
            *next = id.seq + 1;
            self.published.insert(id);
        }
        Ok(())
    }

    /// `peer` sent a SUBSCRIBE: the initial credit it asks for.
    pub fn on_subscribe(&mut self, peer: Peer, ranges: impl Iterator<Item = RangeRequest>) {
        for r in ranges {
            self.asked.insert(peer, r.initial_credit);
        }
    }

    /// A subscription of `peer` to `stream` exists, made when the stream
    /// was at `position`; `default` is the engines' initial credit, which
    /// is what a subscriber asking for 0 gets and the most any gets. Its
    /// initial grant is noted (no-op when it was seen before).
    pub fn on_subscription(&mut self, peer: Peer, stream: u64, position: u64, default: u32) {
        // Called for every subscription after every turn: one lookup when seen.
        if let Entry::Vacant(v) = self.grants.entry((peer, stream)) {
            let initial = match self.asked.get(&peer).copied().unwrap_or(0) {
                0 => default,
                asked => asked.min(default),
            };
            v.insert(position + u64::from(initial));
        }
    }

    /// The worker owning `stream` takes a CREDIT grant (ignored when the
    /// subscription does not exist, as the engine does).
    pub fn on_credit(&mut self, peer: Peer, stream: u64, position: u64) {
        if let Some(g) = self.grants.get_mut(&(peer, stream)) {
            if position > *g {
                *g = position;
                self.owed_used.remove(&(peer, stream));
            }
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
            let prev = self.last_sent.insert((to, x.stream), (x.seq, x.position));
            if let Some((seq, pos)) = prev {
                if x.seq <= seq || x.position <= pos {
                    return Err(format!("{}: after seq {seq} position {pos} (duplicate or out of order)", what()));
                }
            }
            match self.grants.get(&(to, x.stream)) {
                None => return Err(format!("{}: no subscription was seen", what())),
                // Past the grant: only the one message a policy's skip
                // allows (after a gap), once per grant.
                Some(g) if x.position > *g => {
                    let after_gap = prev.is_none_or(|(seq, _)| x.seq > seq + 1);
                    if !after_gap || !self.owed_used.insert((to, x.stream)) {
                        return Err(format!("{}: past the grant {g}", what()));
                    }
                }
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

    /// Checks what subscriber `client` (address `peer`) handed over; a
    /// `library` one hands every copy that arrives.
    pub fn on_handing(&mut self, client: usize, peer: Peer, h: &Handing, library: bool) -> Result<(), String> {
        let h = match h {
            Handing::Message(h) => h,
            Handing::Restart { first, last } => {
                (*first..=*last).for_each(|s| _ = self.next_seq.remove(&(client, s)));
                return Ok(());
            }
        };
        self.handed_total += 1;
        let what = || format!("client {client} handed stream {} seq {}", h.stream, h.seq);
        if !self.sent.contains(&(peer, h.stream, h.seq)) {
            return Err(format!("{}: never sent to it", what()));
        }
        let c = self.consumed.entry((client, h.stream)).or_default();
        *c = (*c).max(h.position);
        if library {
            self.library_handed(client, h).map_err(|e| format!("{}: {e}", what()))
        } else {
            self.model_handed(client, h).map_err(|e| format!("{}: {e}", what()))
        }
    }

    /// The model hands each message once, in order.
    fn model_handed(&mut self, client: usize, h: &Handed) -> Result<(), String> {
        if let Some(last) = self.handed.insert((client, h.stream), h.seq) {
            if h.seq <= last {
                return Err(format!("after seq {last}"));
            }
        }
        Ok(())
    }

    /// The library hands what arrived, in order, and counts it.
    fn library_handed(&mut self, client: usize, h: &Handed) -> Result<(), String> {
        match self.arrived.get_mut(&client).and_then(VecDeque::pop_front) {
            Some(a) if a == *h => {}
            a => return Err(format!("the next message that arrived was {a:?}")),
        }
        let n = self.counts.entry(client).or_default();
        n.received += 1;
        match self.next_seq.get_mut(&(client, h.stream)) {
            Some(next) if h.seq < *next => n.out_of_order += 1,
            Some(next) => {
                n.lost += h.seq - *next;
                *next = h.seq + 1;
            }
            None => _ = self.next_seq.insert((client, h.stream), h.seq + 1),
        }
        Ok(())
    }

    /// Messages library subscribers handed over out of order.
    pub fn out_of_order(&self) -> u64 {
        self.counts.values().map(|c| c.out_of_order).sum()
    }

    /// A DELIVER reached library subscriber `client`.
    pub fn on_arrived(&mut self, client: usize, bytes: &[u8]) {
        if let Ok(Frame::Deliver(d)) = ms_wire::parse(bytes) {
            let q = self.arrived.entry(client).or_default();
            q.extend(d.deliveries().map(|x| Handed { stream: x.stream, seq: x.seq, position: x.position }));
        }
    }

    /// Once library subscriber `client` handed what it has: everything
    /// that arrived was handed, and its counts are those of what it handed.
    pub fn check_counts(&self, client: usize, counts: SeqCounts) -> Result<(), String> {
        if let Some(a) = self.arrived.get(&client).and_then(|q| q.front()) {
            return Err(format!("client {client} did not hand over {a:?}, which arrived"));
        }
        let want = self.counts.get(&client).copied().unwrap_or_default();
        if counts != want {
            return Err(format!("client {client} counts {counts:?}, but what it handed makes {want:?}"));
        }
        Ok(())
    }

    /// Checks a datagram client `client`, granting `window` bytes, sends:
    /// no grant past the window.
    pub fn on_client_sent(&self, client: usize, window: u64, bytes: &[u8]) -> Result<(), String> {
        // Most are PUBLISH: not parsed twice.
        if ms_wire::Header::parse(bytes).is_ok_and(|h| h.frame_type == FrameType::Publish) {
            return Ok(());
        }
        match ms_wire::parse(bytes) {
            Ok(Frame::Control(Control::Credit(credits))) => {
                for c in credits {
                    let consumed = self.consumed.get(&(client, c.stream)).copied().unwrap_or(0);
                    if c.position > consumed.saturating_add(window) {
                        return Err(format!(
                            "client {client} grants stream {} up to {}: past its window {window} from {consumed}",
                            c.stream, c.position
                        ));
                    }
                }
            }
            Ok(Frame::Control(Control::Subscribe(ranges))) => {
                if let Some(r) = ranges.into_iter().find(|r| u64::from(r.initial_credit) > window) {
                    return Err(format!(
                        "client {client} asks for {} B initial credit: window {window}",
                        r.initial_credit
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
