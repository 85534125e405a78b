//! The one engine configuration, compiling and hash-checked loading.

use crate::LoadError;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

/// What the engine is sized and built for. The control plane precompiles
/// with the same settings: a module compiled under others does not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// Instances alive at once, all plugins and cores together (the
    /// pooling allocator reserves their slots at startup).
    pub instances_max: u32,
    /// A plugin's linear memory, at most, in bytes.
    pub memory_bytes_max: usize,
    /// The guest's stack, at most, in bytes.
    pub stack_bytes_max: usize,
    /// Fuel metering (an instruction budget per call) on top of the
    /// deadline; it costs time on every call.
    pub fuel: bool,
}

impl Default for EngineSettings {
    fn default() -> EngineSettings {
        EngineSettings { instances_max: 64, memory_bytes_max: 16 << 20, stack_bytes_max: 256 << 10, fuel: false }
    }
}

/// The engine for `s`.
///
/// Traps are explicit checks, not signals (`signals_based_traps(false)`):
/// a trap costs ~160 ns instead of ~17 us, and no signal handler competes
/// with DPDK's. Time limits come from epoch interruption (see [`Ticker`]).
/// Only the core WebAssembly features a plugin needs are on: no threads,
/// no GC, no component model, no exceptions, no stack switching.
pub fn engine(s: &EngineSettings) -> Result<Engine, LoadError> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(s.instances_max)
        .total_memories(s.instances_max)
        .total_tables(s.instances_max)
        .total_component_instances(0)
        .max_memory_size(s.memory_bytes_max)
        .max_memories_per_module(1)
        .max_tables_per_module(1);
    let mut c = Config::new();
    c.signals_based_traps(false)
        .epoch_interruption(true)
        .consume_fuel(s.fuel)
        .max_wasm_stack(s.stack_bytes_max)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .memory_reservation(s.memory_bytes_max as u64)
        .memory_guard_size(0)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c).map_err(|source| LoadError::Wasmtime { what: "building the plugin engine", source })
}

/// Compiles `wasm` for `engine` (the control plane's side).
pub fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>, LoadError> {
    engine.precompile_module(wasm).map_err(|source| LoadError::Wasmtime { what: "compiling the plugin", source })
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads a precompiled module whose SHA-256 must be `expected` (announced
/// by the control plane with the artifact).
pub fn load(engine: &Engine, artifact: &[u8], expected: &[u8; 32]) -> Result<Module, LoadError> {
    let found = sha256(artifact);
    if &found != expected {
        return Err(LoadError::HashMismatch { expected: hex(expected), found: hex(&found) });
    }
    // SAFETY: deserializing runs machine code from `artifact`. Its hash was
    // just checked against the one the control plane announced for the
    // module it validated and compiled with this engine's settings, so
    // these are those bytes; wasmtime itself refuses an artifact built by
    // another version or with other settings.
    unsafe { Module::deserialize(engine, artifact) }
        .map_err(|source| LoadError::Wasmtime { what: "loading the precompiled plugin", source })
}

/// Advances the engine's epoch every `tick` on a thread of its own, until
/// dropped. A call's deadline is a number of ticks.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("ms-plugin-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
        Ok(Ticker { stop, thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
