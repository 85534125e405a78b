//! What a run reports: the events it went through (the trace), and how it
//! ended, held or broken.

use std::fmt;

/// A run that broke a property.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The scenario's seed.
    pub seed: u64,
    /// The step it broke at.
    pub step: u64,
    /// What broke.
    pub what: String,
    /// The last events before it.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ms-sim: seed {} failed at step {}: {}", self.seed, self.step, self.what)?;
        writeln!(f, "replay: MS_SIM_SEED={} cargo test -p ms-sim --release replay -- --nocapture", self.seed)?;
        writeln!(f, "last events:")?;
        self.trace.iter().try_for_each(|t| writeln!(f, "  {t}"))
    }
}

/// What a run that held every property did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Steps run.
    pub steps: u64,
    /// Messages the publishers sent (counted by the engines on arrival).
    pub published: u64,
    /// Messages sent in DELIVERs (checked at the appliance's side).
    pub delivered: u64,
    /// Messages subscribers handed over.
    pub handed: u64,
    /// Of those, handed over by the library's subscribers out of order
    /// (network duplicates and stragglers, which the library counts and
    /// hands over).
    pub out_of_order: u64,
    /// Deliveries still queued at the end: no credit left to send them
    /// (their subscriber lost the DELIVERs that would have made it grant more).
    pub stranded: u64,
    /// Datagrams the network lost.
    pub net_dropped: u64,
    /// Subscriptions left with messages queued past their grant, though
    /// their subscriber consumed everything it was sent:
    /// "port P stream S (policy): grant G, last sent L, stream at T".
    pub stalled: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    Tick { client: usize, sent: u32 },
    ToWorker { worker: u32, port: u16, kind: &'static str },
    RingFull { worker: u32 },
    ToClient { client: usize, kind: &'static str },
    Turn { worker: usize, mail: u32, rx: u32, sent: usize },
    HandOffFull { to: u32 },
    Heal,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Tick { client, sent } => write!(f, "client {client} ticks, sends {sent}"),
            Event::ToWorker { worker, port, kind } => write!(f, "{kind} from port {port} reaches worker {worker}"),
            Event::RingFull { worker } => write!(f, "worker {worker}'s receive ring is full: dropped"),
            Event::ToClient { client, kind } => write!(f, "{kind} reaches client {client}"),
            Event::Turn { worker, mail, rx, sent } => {
                write!(f, "worker {worker} turn: {mail} mail, {rx} datagrams in, {sent} out")
            }
            Event::HandOffFull { to } => write!(f, "hand-off to worker {to}: mailbox full, dropped"),
            Event::Heal => write!(f, "network healed; publishers stop"),
        }
    }
}
