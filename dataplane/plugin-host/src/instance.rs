//! One plugin instance for one core: the ABI's calls, imports and limits.

use crate::batch::{Decision, Records};
use crate::{Fault, LoadError};
use ms_plugin_abi::{
    export, import, EmitStatus, ABI_VERSION, BUFFER_LEN, COUNTERS_MAX, EMITS_PER_BATCH_MAX, LOG_LINE_MAX, PAYLOAD_MAX,
};
use wasmtime::{Caller, Engine, Linker, Memory, Module, ResourceLimiter, Store, Trap, TypedFunc};

/// Limits of one instance, beyond the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, at most (at most the engine's maximum).
    pub memory_bytes: usize,
    /// Epoch ticks a call may run (see [`crate::Ticker`]).
    pub deadline_ticks: u64,
    /// Fuel per call, when the engine meters fuel.
    pub fuel_per_call: Option<u64>,
    /// Bytes of one emitted message, at most (at most the ABI's
    /// payload maximum).
    pub emit_bytes_max: usize,
    /// Log lines kept per call; later ones are counted and dropped.
    pub log_lines_per_call: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 4 << 20,
            deadline_ticks: 10,
            fuel_per_call: None,
            emit_bytes_max: PAYLOAD_MAX,
            log_lines_per_call: 4,
        }
    }
}

/// A message a plugin emitted during the last call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    /// Its stream.
    pub stream: u64,
    /// Its class.
    pub class: u8,
    at: u32,
    len: u32,
}

/// A line a plugin logged during the last call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine {
    /// Its level (`ms_plugin_abi::level`).
    pub level: i32,
    len: u16,
    text: [u8; LOG_LINE_MAX],
}

impl LogLine {
    /// Its text (cut at the ABI's line maximum; invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.text[..usize::from(self.len)])
    }
}

/// What the imports and the limiter reach: everything sized at creation.
struct State {
    limits: Limits,
    memory: Option<Memory>,
    memory_cap_hit: bool,
    now_ns: u64,
    emits: Vec<Emitted>,
    emit_bytes: Vec<u8>,
    emits_refused: u64,
    counters: [i64; COUNTERS_MAX],
    counters_unknown: u64,
    logs: Vec<LogLine>,
    logs_dropped: u64,
}

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            // A trap rather than a failed grow: a guest that cannot get
            // memory has nothing sensible left to do, and the fault is
            // named for what it is.
            self.memory_cap_hit = true;
            return Err(wasmtime::format_err!("memory cap of {} bytes", self.limits.memory_bytes));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1024)
    }
}

/// The hooks, looked up once.
struct Hooks {
    init: TypedFunc<i32, i32>,
    start: TypedFunc<(), i32>,
    on_batch: TypedFunc<i32, i32>,
    on_config: TypedFunc<i32, i32>,
    drain: TypedFunc<(), i32>,
    snapshot: TypedFunc<(), i32>,
    restore: TypedFunc<i32, i32>,
    stop: TypedFunc<(), i32>,
}

/// Writes a batch's messages into the guest's buffer.
pub struct BatchWriter<'a> {
    buf: &'a mut [u8],
    records: &'a mut Records,
}

impl BatchWriter<'_> {
    /// Adds a message; false, and nothing added, when the batch is full
    /// (`ms_plugin_abi::BATCH_MAX` messages, or no room for this one).
    pub fn push(&mut self, stream: u64, class: u8, arrival_ns: u64, payload: &[u8]) -> bool {
        self.records.push(self.buf, stream, class, arrival_ns, payload)
    }
}

/// A running plugin instance.
pub struct Instance {
    store: Store<State>,
    memory: Memory,
    buffer: usize,
    hooks: Hooks,
    records: Records,
    decided: bool,
}

impl Instance {
    /// Instantiates `module`, checks its ABI version and buffer, and runs
    /// `ms_init(config)` then `ms_start`.
    pub fn start(
        engine: &Engine,
        module: &Module,
        limits: Limits,
        config: &[u8],
        now_ns: u64,
    ) -> Result<Instance, LoadError> {
        let state = State {
            limits,
            memory: None,
            memory_cap_hit: false,
            now_ns,
            emits: Vec::with_capacity(EMITS_PER_BATCH_MAX),
            emit_bytes: Vec::with_capacity(EMITS_PER_BATCH_MAX * limits.emit_bytes_max.min(PAYLOAD_MAX)),
            emits_refused: 0,
            counters: [0; COUNTERS_MAX],
            counters_unknown: 0,
            logs: Vec::with_capacity(limits.log_lines_per_call),
            logs_dropped: 0,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store.epoch_deadline_trap();
        let linker =
            linker(engine).map_err(|source| LoadError::Wasmtime { what: "linking the host imports", source })?;
        store.set_epoch_deadline(limits.deadline_ticks);
        refuel(&mut store);
        let instance = linker.instantiate(&mut store, module).map_err(|e| LoadError::Start(fault(&store, e)))?;
        let abi = |what| LoadError::Start(Fault::Abi(what));
        let memory = instance.get_memory(&mut store, export::MEMORY).ok_or_else(|| abi("no exported memory".into()))?;
        store.data_mut().memory = Some(memory);
        let typed = |store: &mut Store<State>, name: &'static str| {
            instance.get_func(&mut *store, name).ok_or_else(|| abi(format!("no export {name}")))
        };
        macro_rules! hook {
            ($name:expr) => {
                typed(&mut store, $name)?.typed(&store).map_err(|e| abi(format!("{}: {e}", $name)))?
            };
        }
        let version: TypedFunc<(), i32> = hook!(export::ABI_VERSION);
        let buffer_fn: TypedFunc<(), i32> = hook!(export::BUFFER);
        let hooks = Hooks {
            init: hook!(export::INIT),
            start: hook!(export::START),
            on_batch: hook!(export::ON_BATCH),
            on_config: hook!(export::ON_CONFIG),
            drain: hook!(export::DRAIN),
            snapshot: hook!(export::SNAPSHOT),
            restore: hook!(export::RESTORE),
            stop: hook!(export::STOP),
        };
        let got = version.call(&mut store, ()).map_err(|e| LoadError::Start(fault(&store, e)))?;
        if got as u32 != ABI_VERSION {
            return Err(abi(format!("ABI version {got}, the host speaks {ABI_VERSION}")));
        }
        let buffer = buffer_fn.call(&mut store, ()).map_err(|e| LoadError::Start(fault(&store, e)))? as u32 as usize;
        if buffer % 8 != 0 || buffer + BUFFER_LEN > memory.data_size(&store) {
            return Err(abi(format!("buffer at {buffer} is unaligned or outside the memory")));
        }
        let mut me = Instance { store, memory, buffer, hooks, records: Records::new(), decided: false };
        me.pass_blob(export::INIT, config, |h| &h.init)?;
        me.call0(export::START, |h| &h.start)?;
        Ok(me)
    }

    /// Starts a new batch: the writer puts messages straight into the
    /// guest's buffer.
    pub fn batch(&mut self) -> BatchWriter<'_> {
        self.records.clear();
        self.decided = false;
        let buf = &mut self.memory.data_mut(&mut self.store)[self.buffer..self.buffer + BUFFER_LEN];
        BatchWriter { buf, records: &mut self.records }
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.records.len() == 0
    }

    /// Runs the plugin over the batch. On `Ok` every message has a checked
    /// [`Instance::decision`] and [`Instance::emitted`] lists the messages
    /// to publish; on a fault there is no decision and nothing was emitted,
    /// and the caller handles the batch's messages as they arrived.
    pub fn run(&mut self, now_ns: u64) -> Result<(), Fault> {
        self.begin_call(now_ns);
        self.decided = false;
        if self.records.len() == 0 {
            return Ok(());
        }
        let result = self.call_batch();
        match result {
            Ok(()) => self.decided = true,
            // Nothing of a faulted call takes effect.
            Err(_) => self.store.data_mut().emits.clear(),
        }
        result
    }

    fn call_batch(&mut self) -> Result<(), Fault> {
        let count = self.records.len() as i32;
        let code = self.hooks.on_batch.call(&mut self.store, count).map_err(|e| fault(&self.store, e))?;
        if code != 0 {
            return Err(self.failed(export::ON_BATCH, code));
        }
        let buf = self.memory.data(&self.store).get(self.buffer..self.buffer + BUFFER_LEN);
        self.records.check(buf.ok_or_else(|| Fault::Abi("the buffer is outside the memory".into()))?)
    }

    fn guest_buffer(&self) -> Result<&[u8], Fault> {
        let range = self.buffer..self.buffer + BUFFER_LEN;
        self.memory.data(&self.store).get(range).ok_or_else(|| Fault::Abi("the buffer is outside the memory".into()))
    }

    /// What the plugin decided, message by message, in the batch's order;
    /// `None` unless the last [`Instance::run`] returned `Ok`.
    pub fn decisions(&self) -> Option<impl Iterator<Item = Decision<'_>> + '_> {
        if !self.decided {
            return None;
        }
        let buf = self.guest_buffer().ok()?;
        Some((0..self.records.len()).map(move |i| self.records.decision(buf, i)))
    }

    /// The messages the last call emitted, with their payloads.
    pub fn emitted(&self) -> impl Iterator<Item = (Emitted, &[u8])> + '_ {
        let s = self.store.data();
        s.emits.iter().map(|e| (*e, &s.emit_bytes[e.at as usize..(e.at + e.len) as usize]))
    }

    /// The plugin's counters (`counter_add`), cumulative.
    pub fn counters(&self) -> &[i64; COUNTERS_MAX] {
        &self.store.data().counters
    }

    /// The lines the last call logged.
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// Emits refused (cap or bad arguments), log lines dropped and
    /// unknown counter ids, cumulative.
    pub fn refusals(&self) -> (u64, u64, u64) {
        let s = self.store.data();
        (s.emits_refused, s.logs_dropped, s.counters_unknown)
    }

    /// A live configuration change; on a fault the old one stays.
    pub fn reconfigure(&mut self, config: &[u8], now_ns: u64) -> Result<(), Fault> {
        self.begin_call(now_ns);
        self.pass_blob(export::ON_CONFIG, config, |h| &h.on_config).map_err(start_fault)
    }

    /// No more batches: the plugin emits what it holds back.
    pub fn drain(&mut self, now_ns: u64) -> Result<(), Fault> {
        self.begin_call(now_ns);
        self.call0(export::DRAIN, |h| &h.drain).map_err(start_fault)
    }

    /// The state to hand to the next version.
    pub fn snapshot(&mut self, now_ns: u64) -> Result<Vec<u8>, Fault> {
        self.begin_call(now_ns);
        let n = self.hooks.snapshot.call(&mut self.store, ()).map_err(|e| fault(&self.store, e))?;
        let len = usize::try_from(n).map_err(|_| self.failed(export::SNAPSHOT, n))?;
        if len > BUFFER_LEN {
            return Err(Fault::Abi(format!("state of {len} bytes is larger than the buffer")));
        }
        let mut state = vec![0; len];
        self.memory.read(&self.store, self.buffer, &mut state).map_err(|e| Fault::Abi(e.to_string()))?;
        Ok(state)
    }

    /// Takes over the previous version's state.
    pub fn restore(&mut self, state: &[u8], now_ns: u64) -> Result<(), Fault> {
        self.begin_call(now_ns);
        self.pass_blob(export::RESTORE, state, |h| &h.restore).map_err(start_fault)
    }

    /// The instance is about to be freed.
    pub fn stop(&mut self, now_ns: u64) -> Result<(), Fault> {
        self.begin_call(now_ns);
        self.call0(export::STOP, |h| &h.stop).map_err(start_fault)
    }

    fn begin_call(&mut self, now_ns: u64) {
        let limits = self.store.data().limits;
        self.store.set_epoch_deadline(limits.deadline_ticks);
        refuel(&mut self.store);
        let s = self.store.data_mut();
        s.now_ns = now_ns;
        s.emits.clear();
        s.emit_bytes.clear();
        s.logs.clear();
    }

    fn failed(&self, hook: &'static str, code: i32) -> Fault {
        Fault::Returned { hook, code }
    }

    fn pass_blob(
        &mut self,
        hook: &'static str,
        blob: &[u8],
        f: impl Fn(&Hooks) -> &TypedFunc<i32, i32>,
    ) -> Result<(), LoadError> {
        if blob.len() > BUFFER_LEN {
            return Err(Fault::Abi(format!("{} bytes do not fit the buffer", blob.len())).into());
        }
        self.memory.write(&mut self.store, self.buffer, blob).map_err(|e| Fault::Abi(e.to_string()))?;
        let code = f(&self.hooks).call(&mut self.store, blob.len() as i32).map_err(|e| fault(&self.store, e))?;
        if code != 0 {
            return Err(self.failed(hook, code).into());
        }
        Ok(())
    }

    fn call0(&mut self, hook: &'static str, f: impl Fn(&Hooks) -> &TypedFunc<(), i32>) -> Result<(), LoadError> {
        let code = f(&self.hooks).call(&mut self.store, ()).map_err(|e| fault(&self.store, e))?;
        if code != 0 {
            return Err(self.failed(hook, code).into());
        }
        Ok(())
    }
}

fn start_fault(e: LoadError) -> Fault {
    match e {
        LoadError::Start(f) => f,
        other => Fault::Abi(other.to_string()),
    }
}

fn refuel(store: &mut Store<State>) {
    if let Some(fuel) = store.data().limits.fuel_per_call {
        // Fails only when the engine does not meter fuel: then there is
        // nothing to refill.
        let _ = store.set_fuel(fuel);
    }
}

/// What an error from a call means.
fn fault(store: &Store<State>, e: wasmtime::Error) -> Fault {
    if store.data().memory_cap_hit {
        return Fault::MemoryCap;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Timeout,
        Some(Trap::OutOfFuel) => Fault::OutOfFuel,
        Some(Trap::StackOverflow) => Fault::StackOverflow,
        Some(t) => Fault::Trap(t.to_string()),
        None => Fault::Trap(e.to_string()),
    }
}

/// The four imports: nothing else links.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    let mut l = Linker::new(engine);
    l.func_wrap(import::MODULE, import::EMIT, emit)?;
    l.func_wrap(import::MODULE, import::LOG, log)?;
    l.func_wrap(import::MODULE, import::COUNTER_ADD, |mut c: Caller<'_, State>, id: i32, delta: i64| {
        let s = c.data_mut();
        match usize::try_from(id).ok().and_then(|i| s.counters.get_mut(i)) {
            Some(v) => *v = v.wrapping_add(delta),
            None => s.counters_unknown += 1,
        }
    })?;
    l.func_wrap(import::MODULE, import::NOW, |c: Caller<'_, State>| c.data().now_ns as i64)?;
    Ok(l)
}

fn emit(mut c: Caller<'_, State>, stream: i64, class: i32, ptr: i32, len: i32) -> i32 {
    let s = c.data();
    let (Ok(class), Ok(ptr), Ok(len)) = (u8::try_from(class), u32::try_from(ptr), u32::try_from(len)) else {
        c.data_mut().emits_refused += 1;
        return EmitStatus::Invalid as i32;
    };
    if class > 3 || len as usize > s.limits.emit_bytes_max.min(PAYLOAD_MAX) {
        c.data_mut().emits_refused += 1;
        return EmitStatus::Invalid as i32;
    }
    if s.emits.len() == EMITS_PER_BATCH_MAX {
        c.data_mut().emits_refused += 1;
        return EmitStatus::Full as i32;
    }
    let Some(memory) = s.memory else { return EmitStatus::Invalid as i32 };
    let (data, s) = memory.data_and_store_mut(&mut c);
    let Some(bytes) = data.get(ptr as usize..ptr as usize + len as usize) else {
        s.emits_refused += 1;
        return EmitStatus::Invalid as i32;
    };
    let at = s.emit_bytes.len() as u32;
    s.emit_bytes.extend_from_slice(bytes);
    s.emits.push(Emitted { stream: stream as u64, class, at, len });
    EmitStatus::Accepted as i32
}

fn log(mut c: Caller<'_, State>, level: i32, ptr: i32, len: i32) {
    let Some(memory) = c.data().memory else { return };
    let (data, s) = memory.data_and_store_mut(&mut c);
    if s.logs.len() >= s.limits.log_lines_per_call {
        s.logs_dropped += 1;
        return;
    }
    let (ptr, len) = (ptr.max(0) as usize, (len.max(0) as usize).min(LOG_LINE_MAX));
    let Some(bytes) = data.get(ptr..ptr + len) else {
        s.logs_dropped += 1;
        return;
    };
    let mut text = [0; LOG_LINE_MAX];
    text[..len].copy_from_slice(bytes);
    s.logs.push(LogLine { level, len: len as u16, text });
}
