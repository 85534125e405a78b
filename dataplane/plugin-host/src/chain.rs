//! A chain of plugins on one core: the messages of a stream range pass
//! through its links in order, each link one batch call.
//!
//! A link that faults is retired and its [`Supervisor`] says where the
//! batch (and later ones, until a new instance is attached) goes:
//! through, unprocessed, to the next link (`fail-open`), or to the
//! dead-letter stream, skipping the rest of the chain (`fail-closed`, and
//! `reload` while it waits). A message a link drops stops there; one it
//! routes goes on through the rest of the chain under its new stream;
//! what a link emits goes out after the batch's messages, without the
//! rest of the chain (so a chain cannot feed itself).

use crate::{Bypass, Fault, Health, Instance, Supervisor};
use ms_plugin_abi::{Verdict, BATCH_MAX};

/// What happened in one link, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Batch calls.
    pub batches: u64,
    /// Messages handed to the plugin.
    pub messages_in: u64,
    /// Messages it passed on (rewritten or not, routed included).
    pub messages_out: u64,
    /// Messages it dropped.
    pub dropped: u64,
    /// Messages it routed to another stream.
    pub rerouted: u64,
    /// Messages it emitted.
    pub emitted: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Of those, deadlines overrun.
    pub timeouts: u64,
    /// Messages that bypassed it (fail-open) or went to the dead-letter
    /// stream because of it.
    pub bypassed: u64,
    /// Instances attached (start, swaps, reloads).
    pub attached: u64,
}

/// One plugin of a chain.
pub struct Link {
    /// The plugin's name (for counters and logs).
    pub name: String,
    instance: Option<Instance>,
    supervisor: Supervisor,
    /// Its counters.
    pub counts: LinkCounts,
}

impl Link {
    /// A link running `instance` under `supervisor`'s policy.
    pub fn new(name: impl Into<String>, instance: Instance, supervisor: Supervisor) -> Link {
        let counts = LinkCounts { attached: 1, ..LinkCounts::default() };
        Link { name: name.into(), instance: Some(instance), supervisor, counts }
    }

    /// Its health.
    pub fn health(&self) -> Health {
        self.supervisor.health()
    }

    /// The running instance, if any.
    pub fn instance(&self) -> Option<&Instance> {
        self.instance.as_ref()
    }

    /// Attaches a new instance (built off this core) and returns the old
    /// one, if any, for the caller to free off this core.
    pub fn attach(&mut self, instance: Instance, by_operator: bool) -> Option<Instance> {
        self.supervisor.on_attached(by_operator);
        self.counts.attached += 1;
        self.instance.replace(instance)
    }

    /// True when a reload should be asked for now.
    pub fn reload_due(&mut self, now_ms: u64) -> bool {
        self.supervisor.reload_due(now_ms)
    }
}

/// A message as it travels the chain.
#[derive(Debug, Clone, Copy)]
struct Msg {
    stream: u64,
    class: u8,
    at: u32,
    len: u32,
}

/// Staging between links: the messages still in the chain and their
/// payloads. Sized at creation for a full batch.
struct Stage {
    msgs: Vec<Msg>,
    bytes: Vec<u8>,
}

impl Stage {
    fn with_capacity() -> Stage {
        Stage { msgs: Vec::with_capacity(BATCH_MAX), bytes: Vec::with_capacity(BATCH_MAX * ms_plugin_abi::PAYLOAD_MAX) }
    }

    fn clear(&mut self) {
        self.msgs.clear();
        self.bytes.clear();
    }

    fn push(&mut self, stream: u64, class: u8, payload: &[u8]) {
        let at = self.bytes.len() as u32;
        self.bytes.extend_from_slice(payload);
        self.msgs.push(Msg { stream, class, at, len: payload.len() as u32 });
    }

    fn payload(&self, m: &Msg) -> &[u8] {
        &self.bytes[m.at as usize..(m.at + m.len) as usize]
    }
}

/// The links of one stream range, in order.
pub struct Chain {
    links: Vec<Link>,
    stage: [Stage; 2],
}

/// Where a message leaving the chain goes: stream, class, payload.
pub type Out<'a> = &'a mut dyn FnMut(u64, u8, &[u8]);

impl Chain {
    /// A chain of `links`, in order (startup or attach, off the hot path).
    pub fn new(links: Vec<Link>) -> Chain {
        Chain { links, stage: [Stage::with_capacity(), Stage::with_capacity()] }
    }

    /// Its links.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Its links, to attach instances or ask for reloads.
    pub fn links_mut(&mut self) -> &mut [Link] {
        &mut self.links
    }

    /// Runs up to [`BATCH_MAX`] messages (stream, class, payload) through
    /// the chain at `now_ns`; every message that leaves it, and every
    /// emit, goes to `out`, in order. Returns how many were taken (the
    /// rest are the caller's to send again).
    pub fn run<'m>(
        &mut self,
        now_ns: u64,
        input: impl IntoIterator<Item = (u64, u8, &'m [u8])>,
        out: Out<'_>,
    ) -> usize {
        let Chain { links, stage } = self;
        let (a, b) = stage.split_at_mut(1);
        let (mut cur, mut next) = (&mut a[0], &mut b[0]);
        cur.clear();
        for (stream, class, payload) in input.into_iter().take(BATCH_MAX) {
            cur.push(stream, class, payload);
        }
        let taken = cur.msgs.len();
        for link in links.iter_mut() {
            if cur.msgs.is_empty() {
                break;
            }
            next.clear();
            if !link.run(now_ns, cur, next, out) {
                // Dead-lettered: nothing goes on through the chain.
                cur.clear();
                break;
            }
            std::mem::swap(&mut cur, &mut next);
        }
        for m in &cur.msgs {
            out(m.stream, m.class, cur.payload(m));
        }
        taken
    }
}

impl Link {
    /// Runs this link over `cur` into `next`; false when the batch was
    /// dead-lettered (already sent to `out`).
    fn run(&mut self, now_ns: u64, cur: &Stage, next: &mut Stage, out: Out<'_>) -> bool {
        let Some(instance) = self.instance.as_mut().filter(|_| self.supervisor.health() == Health::Running) else {
            return self.bypass(cur, next, out);
        };
        let mut w = instance.batch();
        for m in &cur.msgs {
            w.push(m.stream, m.class, now_ns, cur.payload(m));
        }
        self.counts.batches += 1;
        self.counts.messages_in += cur.msgs.len() as u64;
        match instance.run(now_ns) {
            Ok(()) => {
                self.take(next, out);
                true
            }
            Err(f) => {
                self.counts.faults += 1;
                self.counts.timeouts += u64::from(f == Fault::Timeout);
                self.supervisor.on_fault(now_ns / 1_000_000);
                self.bypass(cur, next, out)
            }
        }
    }

    /// Copies the decisions into `next` and the emits to `out`.
    fn take(&mut self, next: &mut Stage, out: Out<'_>) {
        let Some(instance) = self.instance.as_ref() else { return };
        if let Some(decisions) = instance.decisions() {
            for d in decisions {
                match d.verdict {
                    Verdict::Drop => self.counts.dropped += 1,
                    Verdict::Route | Verdict::Pass => {
                        self.counts.rerouted += u64::from(d.verdict == Verdict::Route);
                        self.counts.messages_out += 1;
                        next.push(d.stream, d.class, d.payload);
                    }
                }
            }
        }
        for (e, payload) in instance.emitted() {
            self.counts.emitted += 1;
            out(e.stream, e.class, payload);
        }
    }

    /// The policy's bypass for a batch this link cannot run.
    fn bypass(&mut self, cur: &Stage, next: &mut Stage, out: Out<'_>) -> bool {
        self.counts.bypassed += cur.msgs.len() as u64;
        match self.supervisor.health() {
            Health::Failed { bypass: Bypass::DeadLetter(dead), .. } => {
                for m in &cur.msgs {
                    out(dead, m.class, cur.payload(m));
                }
                false
            }
            _ => {
                for m in &cur.msgs {
                    next.push(m.stream, m.class, cur.payload(m));
                }
                true
            }
        }
    }
}
