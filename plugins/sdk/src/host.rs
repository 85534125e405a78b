//! The host's four imports, with safe wrappers; natively, recorders that
//! stand in for the host in a plugin's unit tests.

use crate::abi::EmitStatus;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "ms")]
    extern "C" {
        #[link_name = "emit"]
        pub fn emit(stream: i64, class: i32, ptr: i32, len: i32) -> i32;
        #[link_name = "log"]
        pub fn log(level: i32, ptr: i32, len: i32);
        #[link_name = "counter_add"]
        pub fn counter_add(id: i32, delta: i64);
        #[link_name = "now"]
        pub fn now() -> i64;
    }
}

/// Publishes a new message to `stream` once the batch commits (a trap
/// later in the batch discards it). At most
/// [`EMITS_PER_BATCH_MAX`](crate::abi::EMITS_PER_BATCH_MAX) per batch.
pub fn emit(stream: u64, class: u8, payload: &[u8]) -> EmitStatus {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the host reads `len` bytes at `ptr` from this module's
    // memory and checks the range itself; nothing is kept after the call.
    let code = unsafe { imports::emit(stream as i64, i32::from(class), payload.as_ptr() as i32, payload.len() as i32) };
    #[cfg(not(target_arch = "wasm32"))]
    let code = testing::emit(stream, class, payload);
    match code {
        0 => EmitStatus::Accepted,
        1 => EmitStatus::Full,
        _ => EmitStatus::Invalid,
    }
}

/// Logs a line at `level` ([`crate::abi::level`]); the host rate-limits
/// and cuts lines at [`LOG_LINE_MAX`](crate::abi::LOG_LINE_MAX) bytes.
pub fn log(level: i32, line: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: as for emit: the host copies the bytes and checks the range.
    unsafe {
        imports::log(level, line.as_ptr() as i32, line.len() as i32)
    };
    #[cfg(not(target_arch = "wasm32"))]
    testing::log(level, line);
}

/// Adds `delta` to this plugin's counter `id` (0..8; the manifest names
/// them; others are ignored and counted by the host).
pub fn counter_add(id: u32, delta: i64) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: plain values.
    unsafe {
        imports::counter_add(id as i32, delta)
    };
    #[cfg(not(target_arch = "wasm32"))]
    testing::counter_add(id, delta);
}

/// The host's time, ns: the same clock as a message's arrival.
pub fn now_ns() -> u64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: no arguments.
    let ns = unsafe { imports::now() } as u64;
    #[cfg(not(target_arch = "wasm32"))]
    let ns = testing::now();
    ns
}

/// Native stand-ins for the host, per thread: what a plugin emitted,
/// logged and counted, and a clock the test sets.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use crate::abi::{COUNTERS_MAX, EMITS_PER_BATCH_MAX, PAYLOAD_MAX};
    use std::cell::RefCell;
    use std::string::String;
    use std::vec::Vec;

    /// What the plugin did through the imports since the last [`take`].
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub struct Recorded {
        /// Emitted messages: stream, class, payload.
        pub emitted: Vec<(u64, u8, Vec<u8>)>,
        /// Log lines with their levels.
        pub logs: Vec<(i32, String)>,
        /// Counters.
        pub counters: [i64; COUNTERS_MAX],
    }

    std::thread_local! {
        static RECORDED: RefCell<Recorded> = RefCell::new(Recorded::default());
        static NOW: RefCell<u64> = const { RefCell::new(0) };
    }

    /// What was recorded, leaving nothing.
    pub fn take() -> Recorded {
        RECORDED.with(|r| r.take())
    }

    /// Sets what `now_ns` returns.
    pub fn set_now(ns: u64) {
        NOW.with(|n| *n.borrow_mut() = ns);
    }

    /// A batch laid out as the host lays it out, for running a plugin's
    /// `on_message` natively.
    #[derive(Debug, Default)]
    pub struct Batch {
        buf: Vec<u8>,
        starts: Vec<usize>,
    }

    /// What the plugin decided for one message of a [`Batch`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Outcome {
        /// The verdict.
        pub verdict: crate::Verdict,
        /// Where it goes: its own stream, or the route's.
        pub stream: u64,
        /// Its payload after the plugin.
        pub payload: Vec<u8>,
    }

    impl Batch {
        /// An empty batch.
        pub fn new() -> Batch {
            Batch::default()
        }

        /// Adds a message. A test helper: it panics on a payload over the
        /// ABI's maximum, which the host would never hand a plugin.
        pub fn push(&mut self, stream: u64, class: u8, arrival_ns: u64, payload: &[u8]) -> &mut Batch {
            let at = self.buf.len();
            self.buf.resize(at + crate::abi::record::len(crate::abi::record::room_for(payload.len())), 0);
            crate::abi::write_record(&mut self.buf, at, stream, class, arrival_ns, payload).expect("room was made");
            self.starts.push(at);
            self
        }

        /// Runs `p` over the batch as the exports would.
        pub fn run<P: crate::Plugin>(&mut self, p: &mut P) -> Vec<Outcome> {
            assert_eq!(crate::export::run_batch(p, &mut self.buf, self.starts.len()), 0);
            let rec = crate::abi::record::HEADER_LEN;
            self.starts
                .iter()
                .map(|&at| {
                    let d = crate::abi::read_decision(&self.buf, at);
                    let verdict = d.verdict.expect("the SDK writes defined verdicts");
                    let own = crate::abi::get64(&self.buf[at..], crate::abi::record::STREAM);
                    let len = d.len.expect("the SDK keeps lengths within the room");
                    Outcome {
                        verdict,
                        stream: if verdict == crate::Verdict::Route { d.route } else { own },
                        payload: self.buf[at + rec..at + rec + len].to_vec(),
                    }
                })
                .collect()
        }
    }

    pub(super) fn now() -> u64 {
        NOW.with(|n| *n.borrow())
    }

    pub(super) fn emit(stream: u64, class: u8, payload: &[u8]) -> i32 {
        RECORDED.with(|r| {
            let mut r = r.borrow_mut();
            if payload.len() > PAYLOAD_MAX || class > 3 {
                2
            } else if r.emitted.len() >= EMITS_PER_BATCH_MAX {
                1
            } else {
                r.emitted.push((stream, class, payload.to_vec()));
                0
            }
        })
    }

    pub(super) fn log(level: i32, line: &str) {
        RECORDED.with(|r| r.borrow_mut().logs.push((level, String::from(line))));
    }

    pub(super) fn counter_add(id: u32, delta: i64) {
        RECORDED.with(|r| {
            if let Some(c) = r.borrow_mut().counters.get_mut(id as usize) {
                *c += delta;
            }
        });
    }
}
