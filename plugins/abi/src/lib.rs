//! The batch ABI between the dataplane and a plugin, version 1.
//!
//! A plugin is a core WebAssembly module (no WASI, no component model).
//! The host and the guest share one buffer in the guest's memory, whose
//! address the guest gives once ([`export::BUFFER`]). For a batch the host
//! writes up to [`BATCH_MAX`] message records into it and calls
//! [`export::ON_BATCH`] once; the guest sets each record's verdict (and may
//! rewrite its payload in place, within the record's room); the host reads
//! the verdicts back when the call returns, and only then: a trap leaves no
//! partial effect. Every number is little-endian.
//!
//! A record (8-byte aligned; the next starts at [`record::next`]):
//!
//! | bytes | field | who writes |
//! |---|---|---|
//! | 0..8 | stream id | host |
//! | 8..16 | route: the stream id for [`Verdict::Route`] | guest |
//! | 16..18 | payload length (the guest may change it, up to room) | both |
//! | 18..20 | room: bytes reserved for the payload | host |
//! | 20 | class (0..=3) | host |
//! | 21 | verdict, [`Verdict::Pass`] on entry | guest |
//! | 22..24 | zero | host |
//! | 24..32 | arrival time, ns on the host's clock | host |
//! | 32..32+room | payload | both |
//!
//! `docs/plugins.md` is the authoring guide; this crate is the definition
//! the host, the guest SDK and the control plane's validator share.

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The ABI's major version. A plugin's manifest asks for it (`abi: "^1"`)
/// and its module says it ([`export::ABI_VERSION`]).
pub const ABI_VERSION: u32 = 1;

/// Messages in one batch, at most.
pub const BATCH_MAX: usize = 256;

/// Bytes a rewrite may add to a message's payload (the record's room is
/// the payload's length plus this, up to [`PAYLOAD_MAX`]).
pub const REWRITE_GROWTH_MAX: usize = 64;

/// The largest payload of a message: what one DELIVER entry can carry.
pub const PAYLOAD_MAX: usize = ms_limits::PAYLOAD_MAX;

/// Bytes of the shared buffer: a full batch of the largest messages fits.
pub const BUFFER_LEN: usize = BATCH_MAX * record::len(PAYLOAD_MAX);

/// Messages a plugin may emit during one batch; later emits are refused.
pub const EMITS_PER_BATCH_MAX: usize = 64;

/// Plugin-defined counters (`counter_add` ids `0..COUNTERS_MAX`).
pub const COUNTERS_MAX: usize = 8;

/// Bytes of one `log` line; longer lines are cut.
pub const LOG_LINE_MAX: usize = 256;

/// The largest configuration or state blob passed through the buffer.
pub const BLOB_MAX: usize = BUFFER_LEN;

const _: () = assert!(BUFFER_LEN % 8 == 0);
const _: () = assert!(PAYLOAD_MAX <= u16::MAX as usize);
const _: () = assert!(BUFFER_LEN <= 1 << 20, "the buffer stays a small part of a plugin's memory");

/// Names the module exports.
pub mod export {
    /// The linear memory the buffer lives in.
    pub const MEMORY: &str = "memory";
    /// `() -> i32`: [`crate::ABI_VERSION`].
    pub const ABI_VERSION: &str = "ms_abi_version";
    /// `() -> i32`: the buffer's address, 8-byte aligned, with
    /// [`crate::BUFFER_LEN`] bytes.
    pub const BUFFER: &str = "ms_buffer";
    /// `(len: i32) -> i32`: the configuration (`len` bytes at the buffer's
    /// start); 0 or an error code.
    pub const INIT: &str = "ms_init";
    /// `() -> i32`: traffic is about to flow; 0 or an error code.
    pub const START: &str = "ms_start";
    /// `(count: i32) -> i32`: `count` records are in the buffer; 0 when
    /// their verdicts are set, else an error code (the batch faults).
    pub const ON_BATCH: &str = "ms_on_batch";
    /// `(len: i32) -> i32`: a new configuration, as for `ms_init`.
    pub const ON_CONFIG: &str = "ms_on_config";
    /// `() -> i32`: no more batches will come to this instance (a swap or
    /// a stop follows); emit what is held back.
    pub const DRAIN: &str = "ms_drain";
    /// `() -> i32`: writes the state to hand to the next version into the
    /// buffer; its length, or a negative error code.
    pub const SNAPSHOT: &str = "ms_snapshot_state";
    /// `(len: i32) -> i32`: the previous version's state (`len` bytes at
    /// the buffer's start); 0 or an error code.
    pub const RESTORE: &str = "ms_restore_state";
    /// `() -> i32`: the instance is about to be freed.
    pub const STOP: &str = "ms_stop";

    /// Every function export, in lifecycle order.
    pub const FUNCTIONS: &[&str] =
        &[ABI_VERSION, BUFFER, INIT, START, ON_BATCH, ON_CONFIG, DRAIN, SNAPSHOT, RESTORE, STOP];
}

/// What the host offers (module [`import::MODULE`]); nothing else links.
pub mod import {
    /// The import module's name.
    pub const MODULE: &str = "ms";
    /// `(stream: i64, class: i32, ptr: i32, len: i32) -> i32`: publish a
    /// new message after the batch commits; [`crate::EmitStatus`].
    pub const EMIT: &str = "emit";
    /// `(level: i32, ptr: i32, len: i32)`: a log line (rate-limited).
    pub const LOG: &str = "log";
    /// `(id: i32, delta: i64)`: adds to plugin counter `id`.
    pub const COUNTER_ADD: &str = "counter_add";
    /// `() -> i64`: the host's time in ns (the batch's turn).
    pub const NOW: &str = "now";

    /// Every import.
    pub const FUNCTIONS: &[&str] = &[EMIT, LOG, COUNTER_ADD, NOW];
}

/// What the guest decides for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Delivered as it arrived (or as rewritten: the record's payload and
    /// length are taken in every verdict but drop).
    Pass = 0,
    /// Not delivered.
    Drop = 1,
    /// Delivered to the record's route stream instead of its own.
    Route = 2,
}

impl Verdict {
    /// The verdict a record's byte holds; `None` for a value the ABI does
    /// not define (the batch faults).
    pub const fn from_byte(b: u8) -> Option<Verdict> {
        match b {
            0 => Some(Verdict::Pass),
            1 => Some(Verdict::Drop),
            2 => Some(Verdict::Route),
            _ => None,
        }
    }
}

/// What `emit` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum EmitStatus {
    /// Taken; published when the batch commits.
    Accepted = 0,
    /// Refused: this batch already emitted [`EMITS_PER_BATCH_MAX`].
    Full = 1,
    /// Refused: longer than [`PAYLOAD_MAX`], a class over 3, or outside
    /// the guest's memory.
    Invalid = 2,
}

/// Log levels of the `log` import.
pub mod level {
    /// Something failed.
    pub const ERROR: i32 = 0;
    /// Something is wrong but handled.
    pub const WARN: i32 = 1;
    /// Normal, rare events.
    pub const INFO: i32 = 2;
    /// Details.
    pub const DEBUG: i32 = 3;
}

/// The record layout (see the crate's documentation).
pub mod record {
    /// Stream id.
    pub const STREAM: core::ops::Range<usize> = 0..8;
    /// Route target.
    pub const ROUTE: core::ops::Range<usize> = 8..16;
    /// Payload length.
    pub const LEN: core::ops::Range<usize> = 16..18;
    /// Payload room.
    pub const ROOM: core::ops::Range<usize> = 18..20;
    /// Class.
    pub const CLASS: usize = 20;
    /// Verdict.
    pub const VERDICT: usize = 21;
    /// Arrival time, ns.
    pub const ARRIVAL: core::ops::Range<usize> = 24..32;
    /// Where the payload starts.
    pub const HEADER_LEN: usize = 32;

    /// Bytes a record with `room` bytes of payload takes, padding included.
    pub const fn len(room: usize) -> usize {
        (HEADER_LEN + room + 7) & !7
    }

    /// Where the record after one at `at` with `room` starts.
    pub const fn next(at: usize, room: usize) -> usize {
        at + len(room)
    }

    /// The room a message of `len` bytes gets.
    pub const fn room_for(len: usize) -> usize {
        let room = len + crate::REWRITE_GROWTH_MAX;
        if room < crate::PAYLOAD_MAX {
            room
        } else {
            crate::PAYLOAD_MAX
        }
    }

    const _: () = assert!(ARRIVAL.end == HEADER_LEN);
    const _: () = assert!(HEADER_LEN % 8 == 0);
}

/// Reads a little-endian u16 at `r` (which holds 2 bytes).
pub fn get16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    let mut x = [0; 2];
    x.copy_from_slice(&b[r]);
    u16::from_le_bytes(x)
}

/// Reads a little-endian u64 at `r` (which holds 8 bytes).
pub fn get64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[r]);
    u64::from_le_bytes(x)
}

/// Writes a little-endian u16 at `r`.
pub fn put16(b: &mut [u8], r: core::ops::Range<usize>, v: u16) {
    b[r].copy_from_slice(&v.to_le_bytes());
}

/// Writes a little-endian u64 at `r`.
pub fn put64(b: &mut [u8], r: core::ops::Range<usize>, v: u64) {
    b[r].copy_from_slice(&v.to_le_bytes());
}

/// The ABI in WebAssembly text, for tests that write modules by hand (the
/// host's and the validator's): the four imports, named `$emit`, `$log`,
/// `$counter_add` and `$now`, and every export but `ms_on_batch` and the
/// memory, with the buffer at 1024 (a memory of six pages holds it).
#[doc(hidden)]
pub mod wat {
    /// The imports.
    pub const IMPORTS: &str = r#"
  (import "ms" "emit" (func $emit (param i64 i32 i32 i32) (result i32)))
  (import "ms" "log" (func $log (param i32 i32 i32)))
  (import "ms" "counter_add" (func $counter_add (param i32 i64)))
  (import "ms" "now" (func $now (result i64)))
"#;

    /// Every function export but `ms_on_batch`, each answering 0 (the ABI
    /// version 1, the buffer 1024).
    pub const EXPORTS_BUT_ON_BATCH: &str = r#"
  (func (export "ms_abi_version") (result i32) i32.const 1)
  (func (export "ms_buffer") (result i32) i32.const 1024)
  (func (export "ms_init") (param i32) (result i32) i32.const 0)
  (func (export "ms_start") (result i32) i32.const 0)
  (func (export "ms_on_config") (param i32) (result i32) i32.const 0)
  (func (export "ms_drain") (result i32) i32.const 0)
  (func (export "ms_snapshot_state") (result i32) i32.const 0)
  (func (export "ms_restore_state") (param i32) (result i32) i32.const 0)
  (func (export "ms_stop") (result i32) i32.const 0)
"#;

    const _: () = assert!(1024 + crate::BUFFER_LEN <= 6 * 65536);
}

/// Writes a record for a message at `at` in `buf`, with verdict
/// [`Verdict::Pass`] and the room [`record::room_for`] gives; where the
/// next record starts, or `None` when it does not fit (nothing written).
pub fn write_record(
    buf: &mut [u8],
    at: usize,
    stream: u64,
    class: u8,
    arrival_ns: u64,
    payload: &[u8],
) -> Option<usize> {
    let room = record::room_for(payload.len());
    if payload.len() > PAYLOAD_MAX {
        return None;
    }
    let rec = buf.get_mut(at..record::next(at, room))?;
    rec[..record::HEADER_LEN].fill(0);
    put64(rec, record::STREAM, stream);
    put16(rec, record::LEN, payload.len() as u16);
    put16(rec, record::ROOM, room as u16);
    rec[record::CLASS] = class;
    put64(rec, record::ARRIVAL, arrival_ns);
    rec[record::HEADER_LEN..record::HEADER_LEN + payload.len()].copy_from_slice(payload);
    Some(record::next(at, room))
}

/// What the guest left in a record at `at` (which the host wrote, so its
/// room is known to fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The verdict byte, if the ABI defines it.
    pub verdict: Option<Verdict>,
    /// The route stream (meaningful for [`Verdict::Route`]).
    pub route: u64,
    /// The payload's length; `None` when the guest set it beyond the room.
    pub len: Option<usize>,
}

/// Reads back the guest's decision for the record at `at`.
pub fn read_decision(buf: &[u8], at: usize) -> Decided {
    let rec = &buf[at..at + record::HEADER_LEN];
    let (len, room) = (usize::from(get16(rec, record::LEN)), usize::from(get16(rec, record::ROOM)));
    Decided {
        verdict: Verdict::from_byte(rec[record::VERDICT]),
        route: get64(rec, record::ROUTE),
        len: (len <= room).then_some(len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_aligned_and_the_largest_batch_fits() {
        assert_eq!(record::len(0), 32);
        assert_eq!(record::len(1), 40);
        assert_eq!(record::len(64), 96);
        assert_eq!(record::room_for(64), 128);
        assert_eq!(record::room_for(PAYLOAD_MAX), PAYLOAD_MAX);
        assert!(BATCH_MAX * record::len(record::room_for(PAYLOAD_MAX)) <= BUFFER_LEN);
    }

    #[test]
    fn verdict_bytes_round_trip_and_others_are_refused() {
        for v in [Verdict::Pass, Verdict::Drop, Verdict::Route] {
            assert_eq!(Verdict::from_byte(v as u8), Some(v));
        }
        assert_eq!(Verdict::from_byte(3), None);
        assert_eq!(Verdict::from_byte(255), None);
    }

    #[test]
    fn a_written_record_reads_back_and_a_full_buffer_refuses() {
        let mut buf = [0xa5u8; 256];
        let next = write_record(&mut buf, 0, 7, 2, 99, b"hello").unwrap();
        assert_eq!(next, record::len(record::room_for(5)));
        assert_eq!(get64(&buf, record::STREAM), 7);
        assert_eq!(buf[record::CLASS], 2);
        assert_eq!(&buf[record::HEADER_LEN..record::HEADER_LEN + 5], b"hello");
        assert_eq!(read_decision(&buf, 0), Decided { verdict: Some(Verdict::Pass), route: 0, len: Some(5) });
        put16(&mut buf, record::LEN, 200);
        assert_eq!(read_decision(&buf, 0).len, None, "a length beyond the room is refused");
        assert_eq!(write_record(&mut buf, next, 1, 0, 0, &[0; 200]), None);
    }
}
