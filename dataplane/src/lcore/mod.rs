//! What a worker lcore owns besides its service: the per-turn context
//! ([`turn::Turn`]: time, TX batches, egress through routes and ARP, the
//! buffer pool), the mailboxes between workers and the clock. Services
//! receive the turn context; they never see the worker.

pub mod clock;
pub mod mailbox;
pub mod realtime;
pub mod turn;
