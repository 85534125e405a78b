//! The world: the appliance's workers, the clients, the network and the
//! clock, advanced one pseudo-random event per step. A worker's turn is the
//! dataplane loop's: mail (bounded), received datagrams (a burst), expiry,
//! `end_turn`. After every engine call what it sent is checked and put on
//! the network; after every turn the worker's accounting is checked.

use crate::clients::SimClient;
use crate::io::{Buffers, IoStats, Item, Sent, TurnIo};
use crate::net::{Dest, Net, Packet};
use crate::props::Checker;
use crate::report::Event;
pub use crate::report::{Failure, Summary};
use crate::{library, Rng, Scenario};
use ms_proto::{Addr, Disposition, Engine, EngineConfig, From, Ipv4Addr, Mail, Now, ProtoCounter as C};
use ms_streams::Peer;
use ms_wire::control::Control;
use ms_wire::shard::owner;
use ms_wire::{Frame, FrameType, DATAGRAM_MAX};
use std::collections::{HashMap, VecDeque};

/// The appliance's service address.
const SERVICE: Addr = Addr { ip: Ipv4Addr::new(198, 18, 0, 1), port: 9000, via: 0 };
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// Events kept for a failure's report.
const TRACE: usize = 20;

/// `messages_published` is the sum of these (as in ms-bench).
const PUBLISHED_PARTS: [C; 6] = [
    C::MessagesNoSubscriber,
    C::MessagesQueued,
    C::RefusedBackpressure,
    C::ShedBulk,
    C::ShedBestEffort,
    C::RefusedPoolFull,
];
/// `deliveries_queued` is these, plus what was sent or failed to leave,
/// plus what is still queued (as in ms-bench).
const DROPPED_PARTS: [C; 5] =
    [C::DroppedOldest, C::DroppedConflated, C::DroppedDisconnected, C::DroppedUnsubscribed, C::DroppedExpired];

/// Runs `sc`; `verbose` prints every event.
pub fn run(sc: &Scenario, verbose: bool) -> Result<Summary, Failure> {
    let mut w = World::new(sc.clone(), verbose);
    match w.run_all() {
        Ok(s) => Ok(s),
        Err(what) => Err(Failure {
            seed: sc.seed,
            step: w.step,
            what,
            trace: w.trace.iter().map(|(s, ms, e)| format!("step {s:>5} {ms:>5} ms  {e}")).collect(),
        }),
    }
}

struct World {
    sc: Scenario,
    rng: Rng,
    io_rng: Rng,
    step: u64,
    now: Now,
    draining: bool,
    engines: Vec<Engine<usize>>,
    bufs: Vec<Buffers>,
    mail: Vec<VecDeque<Item>>,
    rx: Vec<VecDeque<(From, Vec<u8>)>>,
    stats: Vec<IoStats>,
    totals: Vec<Vec<u64>>,
    /// PUBLISH messages each worker's engine was given.
    msgs_in: Vec<u64>,
    sent: Vec<Sent>,
    net: Net,
    clients: Vec<Box<dyn SimClient>>,
    /// Each client's credit window (0: a publisher).
    windows: Vec<u64>,
    addrs: Vec<Addr>,
    by_port: HashMap<u16, usize>,
    checker: Checker,
    trace: VecDeque<(u64, u64, Event)>,
    verbose: bool,
}

fn peer(a: Addr) -> Peer {
    Peer { ip: u32::from(a.ip), port: a.port }
}

/// The type its header names (the trace's label: the body is parsed where
/// it is used, and every event is labelled, traced or not).
fn kind(bytes: &[u8]) -> &'static str {
    match ms_wire::Header::parse(bytes).map(|h| h.frame_type) {
        Ok(FrameType::Publish) => "PUBLISH",
        Ok(FrameType::Deliver) => "DELIVER",
        Ok(FrameType::Subscribe) => "SUBSCRIBE",
        Ok(FrameType::Unsubscribe) => "UNSUBSCRIBE",
        Ok(FrameType::Heartbeat) => "HEARTBEAT",
        Ok(FrameType::Ack) => "ACK",
        Ok(FrameType::Error) => "ERROR",
        Ok(FrameType::Credit) => "CREDIT",
        Ok(FrameType::Backpressure) => "BACKPRESSURE",
        Ok(FrameType::Unknown(_)) | Err(_) => "garbage",
    }
}

fn publish_count(bytes: &[u8]) -> u64 {
    match ms_wire::parse(bytes) {
        Ok(Frame::Publish(p)) => p.len() as u64,
        _ => 0,
    }
}

impl World {
    fn new(sc: Scenario, verbose: bool) -> World {
        let mut rng = Rng::new(sc.seed);
        let n = sc.workers as usize;
        let engines = (0..sc.workers)
            .map(|me| {
                let cfg =
                    EngineConfig { limits: sc.limits, workers: sc.workers, me, instance: 0x5eed, service_port: 9000 };
                let mut e = Engine::new(cfg);
                e.set_tunables(sc.tunables);
                e
            })
            .collect();
        let now = Now { ms: 1, ns: 1_700_000_000_000_000_000 };
        let (clients, windows): (Vec<_>, Vec<_>) = library::clients(&sc, &mut rng, now).into_iter().unzip();
        let addrs: Vec<Addr> =
            (0..clients.len()).map(|i| Addr { ip: CLIENT_IP, port: 20_000 + i as u16, via: 0 }).collect();
        World {
            io_rng: rng.fork(),
            rng,
            step: 0,
            now,
            draining: false,
            engines,
            bufs: (0..n).map(|_| Buffers::new(sc.buffers)).collect(),
            mail: vec![VecDeque::new(); n],
            rx: vec![VecDeque::new(); n],
            stats: vec![IoStats::default(); n],
            totals: vec![vec![0; C::ALL.len()]; n],
            msgs_in: vec![0; n],
            sent: Vec::new(),
            net: Net::new(sc.net),
            by_port: addrs.iter().enumerate().map(|(i, a)| (a.port, i)).collect(),
            addrs,
            clients,
            windows,
            checker: Checker::default(),
            trace: VecDeque::with_capacity(TRACE),
            verbose,
            sc,
        }
    }

    fn log(&mut self, e: Event) {
        if self.verbose {
            println!("step {:>5} {:>5} ms  {e}", self.step, self.now.ms);
        }
        if self.trace.len() == TRACE {
            self.trace.pop_front();
        }
        self.trace.push_back((self.step, self.now.ms, e));
    }

    fn run_all(&mut self) -> Result<Summary, String> {
        for _ in 0..self.sc.publish_steps {
            self.one_step()?;
        }
        self.draining = true;
        self.net.heal();
        self.log(Event::Heal);
        for _ in 0..self.sc.drain_steps {
            self.one_step()?;
        }
        self.finish()
    }

    fn one_step(&mut self) -> Result<(), String> {
        self.step += 1;
        if self.rng.chance(0.5) {
            self.now.ms += 1;
            self.now.ns += 1_000_000;
            // Every client's timers, starting from a random one.
            let n = self.clients.len();
            let first = self.rng.below(n as u64) as usize;
            for i in 0..n {
                self.client_turn((first + i) % n)?;
            }
        }
        for p in self.net.take_due(&mut self.rng, self.step) {
            self.arrive(p)?;
        }
        // Workers run concurrently: each takes a turn or not, in random order.
        let n = self.sc.workers as usize;
        let first = self.rng.below(n as u64) as usize;
        for i in 0..n {
            if self.rng.chance(0.5) {
                self.worker_turn((first + i) % n)?;
            }
        }
        self.check_memory()
    }

    fn client_turn(&mut self, c: usize) -> Result<(), String> {
        // Draining: publishers send what they hold but publish no more.
        if !(self.draining && c < self.sc.publishers) {
            self.clients[c].on_tick(self.now);
        }
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut sent = 0;
        while sent < 16 {
            let Some(n) = self.clients[c].poll_transmit(self.now, &mut buf) else { break };
            let bytes = buf[..n].to_vec();
            self.checker.on_client_sent(c, self.windows[c], &bytes)?;
            self.checker.on_publish_sent(&bytes, self.sc.real[c])?;
            // RSS: any worker may receive any datagram.
            let w = self.rng.below(u64::from(self.sc.workers)) as u32;
            self.net.send(&mut self.rng, self.step, Dest::Worker(w), self.addrs[c], bytes);
            sent += 1;
        }
        if sent > 0 {
            self.log(Event::Tick { client: c, sent });
        }
        self.take_handed(c)
    }

    fn take_handed(&mut self, c: usize) -> Result<(), String> {
        let library = self.clients[c].counts().is_some();
        while let Some(h) = self.clients[c].poll_handed() {
            self.checker.on_handing(c, peer(self.addrs[c]), &h, library)?;
        }
        match self.clients[c].counts() {
            Some(n) => self.checker.check_counts(c, n),
            None => Ok(()),
        }
    }

    fn arrive(&mut self, p: Packet) -> Result<(), String> {
        match p.dest {
            Dest::Worker(w) => {
                self.log(Event::ToWorker { worker: w, port: p.from.port, kind: kind(&p.bytes) });
                let ring = &mut self.rx[w as usize];
                if ring.len() >= self.sc.rx_ring {
                    self.log(Event::RingFull { worker: w });
                } else {
                    ring.push_back((From { addr: p.from, mac: CLIENT_MAC }, p.bytes));
                }
            }
            Dest::Client(c) => {
                self.log(Event::ToClient { client: c, kind: kind(&p.bytes) });
                if self.clients[c].counts().is_some() {
                    self.checker.on_arrived(c, &p.bytes);
                }
                self.clients[c].on_datagram(self.now, &p.bytes);
                self.take_handed(c)?;
            }
        }
        Ok(())
    }

    /// Runs `f` on worker `w`'s engine with its `Io`.
    fn with_io<R>(&mut self, w: usize, f: impl FnOnce(&mut Engine<usize>, &mut TurnIo<'_>, Now) -> R) -> R {
        let mut io = TurnIo {
            me: w,
            bufs: &mut self.bufs[w],
            mail: &mut self.mail,
            mailbox: self.sc.mailbox,
            sent: &mut self.sent,
            stats: &mut self.stats[w],
            rng: &mut self.io_rng,
            tx_fail: self.sc.tx_fail,
            mutation: self.sc.mutation,
        };
        f(&mut self.engines[w], &mut io, self.now)
    }

    fn worker_turn(&mut self, w: usize) -> Result<(), String> {
        let (mut mail, mut rx, mut sent) = (0, 0, 0);
        // As the dataplane does: expiry first, while no DELIVER is pending.
        self.engines[w].expire(self.now, self.sc.limits.lifetime_ms);
        while mail < self.sc.mail_per_turn {
            let Some(item) = self.mail[w].pop_front() else { break };
            mail += 1;
            match item {
                Item::Mail(m) => {
                    self.with_io(w, |e, io, now| e.on_mail(io, now, m));
                    // The engine sends what cut-through filled before it
                    // applies a grant: check those DELIVERs first.
                    sent += self.take_sent(w)?;
                    if let Mail::Credit { addr, stream, position } = m {
                        self.checker.on_credit(peer(addr), stream, position);
                    }
                    if let Mail::Range(_) = m {
                        self.scan(w);
                    }
                }
                Item::Publish(from, bytes) => {
                    self.msgs_in[w] += publish_count(&bytes);
                    self.with_io(w, |e, io, now| e.on_handed_publish(io, now, from, &bytes));
                }
            }
            sent += self.take_sent(w)?;
        }
        while rx < self.sc.rx_burst {
            let Some((from, bytes)) = self.rx[w].pop_front() else { break };
            rx += 1;
            sent += self.receive(w, from, bytes)?;
        }
        self.with_io(w, |e, io, now| e.end_turn(io, now));
        // Subscriptions a paused range job finished in end_turn.
        self.scan(w);
        sent += self.take_sent(w)?;
        self.log(Event::Turn { worker: w, mail: mail as u32, rx: rx as u32, sent });
        self.check_turn(w)
    }

    /// One received datagram on worker `w`; checks and sends what it made
    /// the engine send, and returns how many datagrams that was.
    fn receive(&mut self, w: usize, from: From, bytes: Vec<u8>) -> Result<usize, String> {
        let frame = ms_wire::parse(&bytes);
        let subscribe = matches!(frame, Ok(Frame::Control(Control::Subscribe(_))));
        // Noted after the engine's sends are checked (below).
        let mut credits = Vec::new();
        match frame {
            Ok(Frame::Control(Control::Subscribe(ranges))) => self.checker.on_subscribe(peer(from.addr), ranges),
            Ok(Frame::Control(Control::Credit(list))) => {
                let mine = list.filter(|c| owner(c.stream, self.sc.workers) == w as u32);
                credits.extend(mine.map(|c| (c.stream, c.position)));
            }
            _ => {}
        }
        match self.with_io(w, |e, io, now| e.on_datagram(io, now, from, &bytes)) {
            Disposition::HandOff { worker } => {
                let q = &mut self.mail[worker as usize];
                if q.len() < self.sc.mailbox {
                    q.push_back(Item::Publish(from.addr, bytes));
                } else {
                    self.log(Event::HandOffFull { to: worker });
                }
            }
            Disposition::Done => self.msgs_in[w] += publish_count(&bytes),
        }
        // The engine sends what cut-through filled before it applies a
        // CREDIT: check those DELIVERs under the grants they went out under.
        let sent = self.take_sent(w)?;
        for (stream, position) in credits {
            self.checker.on_credit(peer(from.addr), stream, position);
        }
        if subscribe {
            self.scan(w);
        }
        Ok(sent)
    }

    /// Notes the subscriptions worker `w` holds that the checker has not
    /// seen, with their initial grant: the stream's position now (nothing
    /// was published since they appeared) plus the initial credit.
    fn scan(&mut self, w: usize) {
        let st = self.engines[w].streams();
        let default = st.tunables().initial_credit_bytes;
        for s in (0..self.sc.streams).filter(|s| owner(*s, self.sc.workers) == w as u32) {
            let Some(pos) = st.position(s) else { continue };
            let checker = &mut self.checker;
            st.subscribers_of(s, |slot| checker.on_subscription(st.peer(slot), s, pos, default));
        }
    }

    /// Checks what worker `w` sent and puts it on the network.
    fn take_sent(&mut self, w: usize) -> Result<usize, String> {
        let n = self.sent.len();
        for s in std::mem::take(&mut self.sent) {
            let Some(&c) = self.by_port.get(&s.to.port).filter(|_| s.to.ip == CLIENT_IP) else {
                return Err(format!("worker {w} sent to an address no client has: {:?}", s.to));
            };
            if s.messages > 0 {
                self.checker.on_deliver(peer(s.to), &s.bytes, s.messages)?;
            }
            if s.ok {
                self.net.send(&mut self.rng, self.step, Dest::Client(c), SERVICE, s.bytes);
            }
        }
        Ok(n)
    }

    fn check_memory(&self) -> Result<(), String> {
        for (w, e) in self.engines.iter().enumerate() {
            let used = e.streams().gauges().pool_used_bytes;
            if used > self.sc.limits.queue_bytes {
                return Err(format!("worker {w}: pool uses {used} bytes of {}", self.sc.limits.queue_bytes));
            }
        }
        Ok(())
    }

    /// After a turn: no buffer held, every message and delivery accounted for.
    fn check_turn(&mut self, w: usize) -> Result<(), String> {
        if !self.bufs[w].all_free() {
            return Err(format!("worker {w} holds transmit buffers across turns"));
        }
        let totals = &mut self.totals[w];
        self.engines[w].counts().take(|c| {
            for k in C::ALL {
                let i = *k as usize;
                totals[i] = if k.is_gauge() { c.values[i] } else { totals[i] + c.values[i] };
            }
        });
        let t = |c: C| totals[c as usize];
        let parts: u64 = PUBLISHED_PARTS.iter().map(|c| t(*c)).sum();
        if t(C::MessagesPublished) != parts {
            return Err(format!(
                "worker {w}: messages_published {} but its parts sum to {parts}",
                t(C::MessagesPublished)
            ));
        }
        let pending = self.engines[w].streams().pending_deliveries();
        let io = self.stats[w];
        let out = io.deliver_messages + io.deliver_dropped + DROPPED_PARTS.iter().map(|c| t(*c)).sum::<u64>() + pending;
        if t(C::DeliveriesQueued) != out {
            return Err(format!(
                "worker {w}: deliveries_queued {} but sent {} + failed {} + dropped by policy + {pending} queued = {out}",
                t(C::DeliveriesQueued),
                io.deliver_messages,
                io.deliver_dropped
            ));
        }
        Ok(())
    }

    fn stalled(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (w, e) in self.engines.iter().enumerate() {
            let st = e.streams();
            for s in (0..self.sc.streams).filter(|s| owner(*s, self.sc.workers) == w as u32) {
                let (Some(pos), true) = (st.position(s), st.queued_bytes(s) > 0) else { continue };
                st.subscribers_of(s, |slot| {
                    let p = st.peer(slot);
                    let g = self.checker.grant(p, s).unwrap_or(0);
                    if pos > g {
                        let last = self.checker.last_sent(p, s);
                        let policy = st.tunables().policy_of(s).name();
                        let sub = st.subscription(p, s);
                        out.push(format!(
                            "port {} stream {s} ({policy}): grant {g}, last sent {last:?}, stream at {pos}; engine: {sub:?}",
                            p.port
                        ));
                    }
                });
            }
        }
        out
    }

    /// After the drain: every subscriber settled, every message the
    /// engines were given counted, the scenario's assumptions held.
    fn finish(&mut self) -> Result<Summary, String> {
        if let Some(c) = (0..self.clients.len()).find(|c| !self.clients[*c].is_settled()) {
            return Err(format!("client {c} is still waiting for its SUBSCRIBE to be acknowledged"));
        }
        let total = |c: C| self.totals.iter().map(|t| t[c as usize]).sum::<u64>();
        let given: u64 = self.msgs_in.iter().sum();
        if given != total(C::MessagesPublished) + total(C::MixedShards) {
            return Err(format!("engines were given {given} messages but counted {}", total(C::MessagesPublished)));
        }
        for c in [C::MixedShards, C::SubscribersExpired, C::DroppedDisconnected, C::DroppedExpired] {
            if total(c) != 0 {
                return Err(format!("scenario assumption broken: {} = {}", c.name(), total(c)));
            }
        }
        Ok(Summary {
            stalled: self.stalled(),
            steps: self.step,
            published: total(C::MessagesPublished),
            delivered: self.checker.delivered,
            handed: self.checker.handed_total,
            out_of_order: self.checker.out_of_order(),
            stranded: self.engines.iter().map(|e| e.streams().pending_deliveries()).sum(),
            net_dropped: self.net.dropped,
        })
    }
}
