//! Runs WebAssembly plugins on a worker core.
//!
//! * [`engine`]: the one engine configuration (no signal handlers, epoch
//!   interruption, a pooling allocator sized at startup), precompiling,
//!   and loading a precompiled module only after its SHA-256 matches what
//!   the control plane announced.
//! * [`Instance`]: one plugin instance for one core, with the batch ABI of
//!   `ms-plugin-abi`, its lifecycle hooks and its limits. A batch's
//!   verdicts and emits take effect only when the guest returns; a trap,
//!   an overrun deadline, a memory cap or a misbehaving verdict is a
//!   [`Fault`] and changes nothing.
//!   A batch's records are written straight into the guest's buffer and
//!   its decisions read from there.
//!
//! * [`Supervisor`]: what a fault leads to (fail-open, fail-closed,
//!   reload with backoff and a crash-loop breaker), on a fake clock.

mod batch;
mod chain;
mod engine;
mod instance;
mod policy;
mod publish;

pub use batch::Decision;
pub use chain::{Chain, Link, LinkCounts, Out};
pub use engine::{engine, load, precompile, sha256, EngineSettings, Ticker};
pub use instance::{BatchWriter, Emitted, Instance, Limits, LogLine};
pub use policy::{Bypass, FailurePolicy, Health, Supervisor};
pub use publish::{Chains, RangeError};

/// Why a plugin call did not complete. Nothing of the call took effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The guest trapped (a panic, unreachable code, a bad memory access,
    /// division by zero); the trap's message.
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// It ran past its deadline (epoch interruption).
    #[error("the plugin ran past its deadline")]
    Timeout,
    /// It used up its fuel for the call.
    #[error("the plugin ran out of fuel")]
    OutOfFuel,
    /// It tried to grow its memory past the cap.
    #[error("the plugin reached its memory cap")]
    MemoryCap,
    /// Its call stack overflowed.
    #[error("the plugin overflowed its stack")]
    StackOverflow,
    /// A hook returned an error code.
    #[error("the plugin's {hook} returned error {code}")]
    Returned {
        /// The export.
        hook: &'static str,
        /// Its return value.
        code: i32,
    },
    /// It broke the ABI: an undefined verdict, a length past a record's
    /// room, a buffer outside its memory.
    #[error("the plugin broke the ABI: {0}")]
    Abi(String),
}

/// Why a module could not be loaded or instantiated. Nothing was attached.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The precompiled artifact's hash is not the one announced.
    #[error("the precompiled plugin's SHA-256 is {found}, not the announced {expected}: refusing to load it (precompile it again through the control plane)")]
    HashMismatch {
        /// What was announced, hex.
        expected: String,
        /// What the bytes hash to, hex.
        found: String,
    },
    /// Wasmtime refused the engine settings, the module or the artifact.
    #[error("{what}: {source}")]
    Wasmtime {
        /// What was being done.
        what: &'static str,
        /// Wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// Instantiating failed or a lifecycle hook faulted.
    #[error("starting the plugin: {0}")]
    Start(#[from] Fault),
}
