//! What one seed means: the size of the world, how bad the network is,
//! how small the appliance's bounds are, and how long each phase runs.

use crate::net::NetConfig;
use crate::Rng;
use ms_streams::{Limits, Policy, PolicyRange, Tunables};

/// A deliberately broken sim-side component, to show the properties catch
/// the bug class it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Everything works.
    None,
    /// The workers' `Io::send` transmits every `n`th DELIVER twice (a
    /// driver that sends an mbuf and then also retries it).
    DuplicateDeliver(u32),
    /// The workers' `Io::send` adds one to the position of the first
    /// message of every `n`th DELIVER (a corrupted header field).
    CorruptPosition(u32),
    /// Every library subscriber, at every `n`th message it hands over, also
    /// grants that stream twice its window past the message (an
    /// application or driver granting credit its buffer cannot hold).
    GrantPastWindow(u32),
    /// Every library subscriber's application skips every `n`th message
    /// the library hands it without counting it (a driver losing a
    /// message between the library and the application).
    SkipDelivery(u32),
}

/// One simulated run, all drawn from `seed`.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The seed everything below and every later event comes from.
    pub seed: u64,
    /// Appliance workers (engines), 1..=4.
    pub workers: u32,
    /// Publisher clients.
    pub publishers: usize,
    /// Subscriber clients.
    pub subscribers: usize,
    /// Stream ids used: `0..streams`.
    pub streams: u64,
    /// The network while publishers publish (healed for the drain).
    pub net: NetConfig,
    /// Items each worker's mailbox holds (post fails when full).
    pub mailbox: usize,
    /// Mailbox items a worker takes per loop turn.
    pub mail_per_turn: usize,
    /// Datagrams a worker takes from its receive ring per loop turn.
    pub rx_burst: usize,
    /// Datagrams a worker's receive ring holds (more are dropped).
    pub rx_ring: usize,
    /// Transmit buffers per worker (`Io::alloc` fails when all are out).
    pub buffers: usize,
    /// Probability that `Io::send` cannot get a datagram out.
    pub tx_fail: f64,
    /// The engines' bounds.
    pub limits: Limits,
    /// The engines' tunables (policies, queue limits, budgets).
    pub tunables: Tunables,
    /// Subscribers' credit windows are drawn from this range (bytes).
    pub window: (u64, u64),
    /// Subscribers' heartbeat interval (ms).
    pub heartbeat_ms: u64,
    /// Subscribers' SUBSCRIBE retry interval (ms).
    pub retry_ms: u64,
    /// Steps while publishers publish.
    pub publish_steps: u64,
    /// Steps of the drain (healed network, no publishing) after that.
    pub drain_steps: u64,
    /// Per client (publishers first, then subscribers): true when it is
    /// the client library's state machine (`ms_client`), false for the
    /// simulator's own model.
    pub real: Vec<bool>,
    /// Library subscribers' receive buffers (bytes) are drawn from this
    /// range; a small one caps their credit window below the one set.
    pub rcvbuf: (u64, u64),
    /// A planted bug, or none.
    pub mutation: Mutation,
}

impl Scenario {
    /// One paragraph for a human replaying the seed.
    pub fn describe(&self) -> String {
        let t = &self.tunables;
        format!(
            "seed {}: {} workers, {} publishers, {} subscribers, streams 0..{}; network {:?}; mailbox {} \
             ({}/turn), rx burst {} ring {}, {} buffers, tx fail {}; pool {} B, stream queue max {} B, \
             initial credit {} B, policy {} (ranges {:?}), tx budget {}..={}; windows {:?} B, heartbeat {} ms, \
             retry {} ms; {} + {} steps; library clients {:?} (rcvbuf {:?} B); mutation {:?}",
            self.seed,
            self.workers,
            self.publishers,
            self.subscribers,
            self.streams,
            self.net,
            self.mailbox,
            self.mail_per_turn,
            self.rx_burst,
            self.rx_ring,
            self.buffers,
            self.tx_fail,
            self.limits.queue_bytes,
            t.stream_queue_bytes_max,
            t.initial_credit_bytes,
            t.default_policy.name(),
            t.policies(),
            t.tx_budget_min,
            t.tx_budget_max,
            self.window,
            self.heartbeat_ms,
            self.retry_ms,
            self.publish_steps,
            self.drain_steps,
            self.real.iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i).collect::<Vec<_>>(),
            self.rcvbuf,
            self.mutation
        )
    }

    /// The scenario of `seed`.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut r = Rng::new(seed ^ 0x5eed_5eed_5eed_5eed);
        let streams = r.range(4, 48);
        let net = NetConfig {
            drop: r.below(20) as f64 / 100.0,
            duplicate: r.below(10) as f64 / 100.0,
            max_delay: r.range(0, 8) as u32,
        };
        let limits = Limits {
            streams: 128,
            subscribers: 64,
            subscriptions: 2048,
            // Long: nobody expires, so a stream's sequence never restarts.
            lifetime_ms: 3_600_000,
            queue_bytes: r.range(8, 128) << 10,
        };
        let mut tunables = Tunables {
            initial_credit_bytes: r.range(1_500, 16_384) as u32,
            stream_queue_bytes_max: r.range(1_600, 16_384) as u32,
            default_policy: policy(&mut r),
            tx_budget_min: r.range(1, 64) as u32,
            ..Tunables::default()
        };
        tunables.tx_budget_max = tunables.tx_budget_min * r.range(1, 8) as u32;
        let cut = r.below(streams);
        let ranges = [PolicyRange { first: 0, last: cut, policy: policy(&mut r) }];
        let n = r.below(2) as usize;
        tunables.set_policies(&ranges[..n]).expect("one range fits");
        let (publishers, subscribers) = (r.range(2, 8) as usize, r.range(4, 32) as usize);
        // Mostly the library's clients, and the models still run.
        let real = (0..publishers + subscribers).map(|_| r.chance(0.75)).collect();
        Scenario {
            seed,
            workers: r.range(1, 4) as u32,
            publishers,
            subscribers,
            streams,
            net,
            mailbox: r.range(2, 64) as usize,
            mail_per_turn: r.range(1, 16) as usize,
            rx_burst: r.range(4, 32) as usize,
            rx_ring: r.range(16, 256) as usize,
            buffers: r.range(4, 64) as usize,
            tx_fail: r.below(5) as f64 / 100.0,
            limits,
            tunables,
            window: (r.range(1_500, 4_096), r.range(4_096, 16_384)),
            heartbeat_ms: r.range(20, 100),
            retry_ms: r.range(10, 40),
            publish_steps: r.range(150, 400),
            drain_steps: 400,
            real,
            rcvbuf: (r.range(8 << 10, 64 << 10), 1 << 20),
            mutation: Mutation::None,
        }
    }
}

/// Every policy but `disconnect`: a removed subscription would end its
/// stream and restart its sequence numbers, which the subscriber model
/// does not follow.
fn policy(r: &mut Rng) -> Policy {
    [Policy::Block, Policy::DropOldest, Policy::Conflate][r.below(3) as usize]
}
