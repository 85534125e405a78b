//! The stats segment: a file in shared memory (`/dev/shm`) that the
//! dataplane writes and the control plane maps read-only, in the manner of
//! VPP's stats segment and Aeron's counters file.
//!
//! ```text
//! header     (256 B)  magic, version, sizes, pid, start time, heartbeat
//! directory  (slots x 512 B)  name, kind, bucket bound, unit, labels, help
//! blocks     (lcores x block_bytes, 128-byte aligned)
//!            seq (seqlock) | lcore | values[slots] (u64)
//! ```
//!
//! The directory describes every slot as data: its base name, what one
//! unit counts, and up to [`LABELS_MAX`] `key=value` labels (a port, a
//! priority class, a rank), so readers never parse names. Its entries have
//! a fixed size; their layout is `mod field` below.
//!
//! Each block has exactly one writer (its worker lcore), which publishes a
//! burst's updates between two increments of `seq` (odd while writing). A
//! reader copies the block and retries while `seq` is odd or changed, so it
//! never sees a torn or half-updated block, and never blocks the writer.

#![warn(missing_docs)]

mod declare;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// "MSSTATS\0".
pub const MAGIC: u64 = u64::from_le_bytes(*b"MSSTATS\0");
/// Layout version; readers refuse others. 3: directory entries of 512 B
/// carry the unit and the labels as fields (2: 128 B, labels inside names).
pub const VERSION: u32 = 3;
const HEADER_BYTES: usize = 256;

/// One directory entry. Text fields are UTF-8, NUL-padded (a value as long
/// as its field has no NUL); numbers are little-endian.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..48;
    /// Kind code (u32).
    pub const KIND: Range<usize> = NAME.end..NAME.end + 4;
    /// Labels in use (u32, at most `LABELS_MAX`).
    pub const LABELS: Range<usize> = KIND.end..KIND.end + 4;
    /// Upper bound of a histogram bucket (u64).
    pub const BUCKET_LE: Range<usize> = LABELS.end..LABELS.end + 8;
    pub const UNIT: Range<usize> = BUCKET_LE.end..BUCKET_LE.end + 32;
    pub const LABEL0_KEY: Range<usize> = UNIT.end..UNIT.end + 16;
    pub const LABEL0_VALUE: Range<usize> = LABEL0_KEY.end..LABEL0_KEY.end + 32;
    pub const LABEL1_KEY: Range<usize> = LABEL0_VALUE.end..LABEL0_VALUE.end + 16;
    pub const LABEL1_VALUE: Range<usize> = LABEL1_KEY.end..LABEL1_KEY.end + 32;
    pub const HELP: Range<usize> = LABEL1_VALUE.end..512;
}

/// Bytes of one directory entry: up to the end of its last field.
const ENTRY_BYTES: usize = field::HELP.end;
/// (key, value) fields of each label, in order.
const LABEL_FIELDS: [(std::ops::Range<usize>, std::ops::Range<usize>); LABELS_MAX] =
    [(field::LABEL0_KEY, field::LABEL0_VALUE), (field::LABEL1_KEY, field::LABEL1_VALUE)];

const fn width(f: std::ops::Range<usize>) -> usize {
    f.end - f.start
}

/// Longest slot name, in bytes.
pub const NAME_MAX: usize = width(field::NAME);
/// Longest unit, in bytes.
pub const UNIT_MAX: usize = width(field::UNIT);
/// Most labels per slot.
pub const LABELS_MAX: usize = 2;
/// Longest label key, in bytes.
pub const LABEL_KEY_MAX: usize = width(field::LABEL0_KEY);
/// Longest label value, in bytes (a port name: the config allows 24).
pub const LABEL_VALUE_MAX: usize = width(field::LABEL0_VALUE);
/// Longest help kept, in bytes; longer help is cut at a character boundary.
pub const HELP_MAX: usize = width(field::HELP);

// The entry is what the version says: fixed size, numbers aligned, every
// label the same shape, and entries keep the blocks 8-byte aligned.
const _: () = assert!(ENTRY_BYTES == 512);
const _: () = assert!(field::KIND.start % 4 == 0 && field::LABELS.start % 4 == 0);
const _: () = assert!(field::BUCKET_LE.start % 8 == 0);
const _: () = assert!(width(field::LABEL1_KEY) == LABEL_KEY_MAX && width(field::LABEL1_VALUE) == LABEL_VALUE_MAX);
const _: () = assert!(LABEL_FIELDS.len() == LABELS_MAX);
const _: () = assert!(HELP_MAX >= 256, "help fits unabridged");
const _: () = assert!(HEADER_BYTES % 8 == 0 && ENTRY_BYTES % 8 == 0);
const BLOCK_HEADER_BYTES: usize = 16;
/// Blocks are aligned so two lcores never share a cache line (or an
/// adjacent-line prefetch pair).
pub const BLOCK_ALIGN: usize = 128;
/// Most values per block.
pub const SLOTS_MAX: usize = 4096;
/// Most lcores.
pub const LCORES_MAX: usize = 128;

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count.
    Counter,
    /// Current value.
    Gauge,
    /// Histogram bucket: count of observations below `le` (the slot's
    /// upper bound, in the unit the name says), non-cumulative.
    Bucket {
        /// Upper bound of the bucket.
        le: u64,
    },
    /// Free-form value exported as-is (e.g. top-N stream ids).
    Info,
}

impl Kind {
    fn code(self) -> (u32, u64) {
        match self {
            Kind::Counter => (1, 0),
            Kind::Gauge => (2, 0),
            Kind::Bucket { le } => (3, le),
            Kind::Info => (4, 0),
        }
    }

    fn from_code(c: u32, arg: u64) -> Option<Kind> {
        Some(match c {
            1 => Kind::Counter,
            2 => Kind::Gauge,
            3 => Kind::Bucket { le: arg },
            4 => Kind::Info,
            _ => return None,
        })
    }
}

/// One slot's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Base name (`[a-z0-9_]`, 1 to [`NAME_MAX`] bytes); slots that differ
    /// only in their labels share it.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// What one unit of the value counts (`packets`, `bytes`, `nanoseconds`;
    /// `[a-z0-9_]`, at most [`UNIT_MAX`] bytes, may be empty).
    pub unit: String,
    /// `(key, value)` labels that tell apart slots of the same name, at most
    /// [`LABELS_MAX`]: keys `[a-z_][a-z0-9_]*` of at most [`LABEL_KEY_MAX`]
    /// bytes, values any text without NUL of at most [`LABEL_VALUE_MAX`]
    /// bytes (an empty value marks a slot readers leave out, e.g. an
    /// absent port).
    pub labels: Vec<(String, String)>,
    /// One-line help (cut to [`HELP_MAX`] bytes in the directory).
    pub help: String,
}

/// Why a [`Slot`] does not fit the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The name is empty, too long, or not `[a-z0-9_]`.
    #[error("name {0:?}: expected 1 to {NAME_MAX} bytes of a-z 0-9 _ (labels go in `labels`, not in the name)")]
    Name(String),
    /// The unit is too long or not `[a-z0-9_]`.
    #[error("unit {0:?}: expected at most {UNIT_MAX} bytes of a-z 0-9 _")]
    Unit(String),
    /// More labels than an entry holds.
    #[error("{0} labels: at most {LABELS_MAX}")]
    TooManyLabels(usize),
    /// A label key is empty, too long, or not `[a-z_][a-z0-9_]*`.
    #[error("label key {0:?}: expected 1 to {LABEL_KEY_MAX} bytes of a-z 0-9 _, not starting with a digit")]
    LabelKey(String),
    /// A label value is too long or holds a NUL.
    #[error("label value {0:?}: expected at most {LABEL_VALUE_MAX} bytes without NUL")]
    LabelValue(String),
}

fn is_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Slot {
    /// A slot without labels.
    pub fn new(name: impl Into<String>, kind: Kind, unit: impl Into<String>, help: impl Into<String>) -> Slot {
        Slot { name: name.into(), kind, unit: unit.into(), labels: Vec::new(), help: help.into() }
    }

    /// The same slot with one more label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Slot {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// The value of label `key`, if the slot has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Checks the bounds the directory entry imposes (help excepted: it is
    /// cut to fit).
    pub fn check(&self) -> Result<(), SlotError> {
        if self.name.is_empty() || self.name.len() > NAME_MAX || !is_word(&self.name) {
            return Err(SlotError::Name(self.name.clone()));
        }
        if self.unit.len() > UNIT_MAX || !is_word(&self.unit) {
            return Err(SlotError::Unit(self.unit.clone()));
        }
        if self.labels.len() > LABELS_MAX {
            return Err(SlotError::TooManyLabels(self.labels.len()));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > LABEL_KEY_MAX || !is_word(k) || k.as_bytes()[0].is_ascii_digit() {
                return Err(SlotError::LabelKey(k.clone()));
            }
            if v.len() > LABEL_VALUE_MAX || v.contains('\0') {
                return Err(SlotError::LabelValue(v.clone()));
            }
        }
        Ok(())
    }
}

/// Errors creating or opening a segment.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// File or mmap error.
    #[error("stats segment {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a stats segment.
    #[error("{path} is not a MemoryStreamer stats segment (magic {magic:#x}, version {version})")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Magic found.
        magic: u64,
        /// Version found.
        version: u32,
    },
    /// A stats segment of another layout version: the dataplane that wrote
    /// it and this reader are different releases.
    #[error(
        "{path} has stats layout version {found}, this reader understands version {VERSION}: \
         the dataplane and the control plane are different releases; upgrade the older one, \
         then restart the dataplane so it writes the segment anew"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u32,
    },
    /// A slot of the directory does not fit its entry.
    #[error("stats slot {index} ({name:?}): {source}")]
    Slot {
        /// Its position in the directory.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        source: SlotError,
    },
    /// Sizes out of range.
    #[error("stats segment layout out of range: {0}")]
    Layout(String),
}

mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const SLOTS: usize = 12;
    pub const LCORES: usize = 16;
    pub const BLOCK_BYTES: usize = 20;
    pub const PID: usize = 24;
    pub const START_NS: usize = 32;
    pub const HEARTBEAT_NS: usize = 40;
    pub const DIRECTORY: usize = 48;
    pub const BLOCKS: usize = 56;
    pub const TOTAL: usize = 64;
}

/// A mapped segment (read-write for the dataplane, read-only for readers).
pub struct Segment {
    base: *mut u8,
    len: usize,
    path: PathBuf,
    slots: usize,
    lcores: usize,
    block_bytes: usize,
    blocks: usize,
    writable: bool,
}

// SAFETY: the mapping is plain shared memory; all concurrent access goes
// through atomics (values, seq, heartbeat) and the directory is written
// once before the segment is shared.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

/// Creates `dir` (0755) if needed and checks nobody else can plant files in
/// it: a real directory (not a symlink), owned by us, not writable by group
/// or others. /dev/shm is world-writable, so a directory another user made
/// there first must be refused.
fn secure_dir(dir: &Path) -> Result<(), StatsError> {
    let io = |source| StatsError::Io { path: dir.to_path_buf(), source };
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io)?;
    }
    let m = std::fs::symlink_metadata(dir).map_err(io)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(StatsError::Layout(format!(
            "refusing {}: it must be a directory owned by uid {me} and not writable by group or others (remove it, or set telemetry.stats_path elsewhere)",
            dir.display()
        )));
    }
    Ok(())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes `s` into the NUL-padded text field `f` of entry `e`, cut to fit
/// (only help is ever cut: [`Slot::check`] bounds the rest).
fn put_text(e: &mut [u8], f: std::ops::Range<usize>, s: &str) {
    let b = truncate_utf8(s, f.end - f.start).as_bytes();
    e[f.start..f.start + b.len()].copy_from_slice(b);
}

/// A text field: up to its first NUL (or its end).
fn get_text(e: &[u8], f: std::ops::Range<usize>) -> String {
    let b = &e[f];
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).into_owned()
}

/// Encodes a checked slot into a zeroed directory entry.
fn write_entry(e: &mut [u8], slot: &Slot) {
    put_text(e, field::NAME, &slot.name);
    let (code, le) = slot.kind.code();
    e[field::KIND].copy_from_slice(&code.to_le_bytes());
    e[field::LABELS].copy_from_slice(&(slot.labels.len() as u32).to_le_bytes());
    e[field::BUCKET_LE].copy_from_slice(&le.to_le_bytes());
    put_text(e, field::UNIT, &slot.unit);
    for ((k, v), (kf, vf)) in slot.labels.iter().zip(LABEL_FIELDS) {
        put_text(e, kf, k);
        put_text(e, vf, v);
    }
    put_text(e, field::HELP, &slot.help);
}

/// Decodes a directory entry; an unknown kind reads as [`Kind::Info`] and a
/// label count above [`LABELS_MAX`] as the labels an entry holds.
fn read_entry(e: &[u8]) -> Slot {
    let u32_at = |f: std::ops::Range<usize>| u32::from_le_bytes(e[f].try_into().expect("4"));
    let le = u64::from_le_bytes(e[field::BUCKET_LE].try_into().expect("8"));
    let kind = Kind::from_code(u32_at(field::KIND), le).unwrap_or(Kind::Info);
    let labels = (u32_at(field::LABELS) as usize).min(LABELS_MAX);
    Slot {
        name: get_text(e, field::NAME),
        kind,
        unit: get_text(e, field::UNIT),
        labels: LABEL_FIELDS[..labels].iter().map(|(k, v)| (get_text(e, k.clone()), get_text(e, v.clone()))).collect(),
        help: get_text(e, field::HELP),
    }
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Segment {
    /// Creates (replacing any old file) a segment for `lcores` blocks of
    /// the slots in `directory`.
    pub fn create(
        path: &Path,
        directory: &[Slot],
        lcores: usize,
        pid: u32,
        start_unix_ns: u64,
    ) -> Result<Segment, StatsError> {
        let slots = directory.len();
        if slots == 0 || slots > SLOTS_MAX || lcores == 0 || lcores > LCORES_MAX {
            return Err(StatsError::Layout(format!("{slots} slots, {lcores} lcores")));
        }
        for (index, slot) in directory.iter().enumerate() {
            slot.check().map_err(|source| StatsError::Slot { index, name: slot.name.clone(), source })?;
        }
        let block_bytes = round_up(BLOCK_HEADER_BYTES + 8 * slots, BLOCK_ALIGN);
        let dir_off = HEADER_BYTES;
        let blocks_off = round_up(dir_off + slots * ENTRY_BYTES, 4096);
        let len = blocks_off + lcores * block_bytes;
        let io = |source| StatsError::Io { path: path.to_path_buf(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        secure_dir(dir)?;
        // Write a new file under a unique name and rename it, so a reader
        // never maps a half-initialised segment; never follow a symlink.
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("stats"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io)?;
        file.set_len(len as u64).map_err(io)?;
        let mut seg = Segment::map(&file, &tmp, len, true)?;
        seg.slots = slots;
        seg.lcores = lcores;
        seg.block_bytes = block_bytes;
        seg.blocks = blocks_off;
        seg.write_header(directory, pid, start_unix_ns, dir_off);
        std::fs::rename(&tmp, path).map_err(io)?;
        seg.path = path.to_path_buf();
        Ok(seg)
    }

    fn write_header(&mut self, directory: &[Slot], pid: u32, start_unix_ns: u64, dir_off: usize) {
        let (lcores, block_bytes, blocks, len) = (self.lcores, self.block_bytes, self.blocks, self.len);
        let h = self.bytes_mut(0, HEADER_BYTES);
        h[hdr::VERSION..hdr::VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        h[hdr::SLOTS..hdr::SLOTS + 4].copy_from_slice(&(directory.len() as u32).to_le_bytes());
        h[hdr::LCORES..hdr::LCORES + 4].copy_from_slice(&(lcores as u32).to_le_bytes());
        h[hdr::BLOCK_BYTES..hdr::BLOCK_BYTES + 4].copy_from_slice(&(block_bytes as u32).to_le_bytes());
        h[hdr::PID..hdr::PID + 4].copy_from_slice(&pid.to_le_bytes());
        h[hdr::START_NS..hdr::START_NS + 8].copy_from_slice(&start_unix_ns.to_le_bytes());
        h[hdr::DIRECTORY..hdr::DIRECTORY + 8].copy_from_slice(&(dir_off as u64).to_le_bytes());
        h[hdr::BLOCKS..hdr::BLOCKS + 8].copy_from_slice(&(blocks as u64).to_le_bytes());
        h[hdr::TOTAL..hdr::TOTAL + 8].copy_from_slice(&(len as u64).to_le_bytes());
        for (i, slot) in directory.iter().enumerate() {
            write_entry(self.bytes_mut(dir_off + i * ENTRY_BYTES, ENTRY_BYTES), slot);
        }
        for l in 0..self.lcores {
            let b = self.blocks + l * self.block_bytes;
            self.bytes_mut(b + 8, 4).copy_from_slice(&(l as u32).to_le_bytes());
        }
        // The magic last: a reader that sees it sees everything above.
        fence(Ordering::Release);
        self.bytes_mut(0, 8).copy_from_slice(&MAGIC.to_le_bytes());
    }

    fn map(file: &File, path: &Path, len: usize, writable: bool) -> Result<Segment, StatsError> {
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: mapping a regular file we opened, shared, for `len` bytes
        // (its size); the pointer is checked against MAP_FAILED.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if base == libc::MAP_FAILED {
            return Err(StatsError::Io { path: path.to_path_buf(), source: std::io::Error::last_os_error() });
        }
        Ok(Segment {
            base: base.cast(),
            len,
            path: path.to_path_buf(),
            slots: 0,
            lcores: 0,
            block_bytes: 0,
            blocks: 0,
            writable,
        })
    }

    /// Maps an existing segment read-only and checks its header.
    pub fn open(path: &Path) -> Result<Segment, StatsError> {
        let io = |source| StatsError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me && meta.uid() != 0 {
            return Err(StatsError::Layout(format!(
                "{} is owned by uid {}, not by root or us",
                path.display(),
                meta.uid()
            )));
        }
        let len = meta.len() as usize;
        if len < HEADER_BYTES {
            return Err(StatsError::BadHeader { path: path.to_path_buf(), magic: 0, version: 0 });
        }
        let mut seg = Segment::map(&file, path, len, false)?;
        let rd = |at: usize, n: usize| -> u64 {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(seg.bytes(at, n));
            u64::from_le_bytes(b)
        };
        let (magic, version) = (rd(hdr::MAGIC, 8), rd(hdr::VERSION, 4) as u32);
        if magic != MAGIC {
            return Err(StatsError::BadHeader { path: path.to_path_buf(), magic, version });
        }
        if version != VERSION {
            return Err(StatsError::Version { path: path.to_path_buf(), found: version });
        }
        let (slots, lcores, block_bytes) =
            (rd(hdr::SLOTS, 4) as usize, rd(hdr::LCORES, 4) as usize, rd(hdr::BLOCK_BYTES, 4) as usize);
        let (blocks, dir) = (rd(hdr::BLOCKS, 8) as usize, rd(hdr::DIRECTORY, 8) as usize);
        // Every offset the accessors will use is checked here, once, so a
        // crafted or damaged file is refused instead of read out of bounds.
        let fits = slots <= SLOTS_MAX
            && lcores <= LCORES_MAX
            && block_bytes >= BLOCK_HEADER_BYTES + 8 * slots
            && block_bytes % BLOCK_ALIGN == 0
            && blocks % BLOCK_ALIGN == 0
            && dir >= HEADER_BYTES
            && dir.checked_add(slots * ENTRY_BYTES).is_some_and(|end| end <= blocks)
            && blocks.checked_add(lcores * block_bytes).is_some_and(|end| end <= len);
        if !fits {
            return Err(StatsError::Layout(format!("{}: header does not match the file size", path.display())));
        }
        (seg.slots, seg.lcores, seg.block_bytes, seg.blocks) = (slots, lcores, block_bytes, blocks);
        Ok(seg)
    }

    fn bytes(&self, at: usize, n: usize) -> &[u8] {
        assert!(at.checked_add(n).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds of the live mapping (asserted).
        unsafe { std::slice::from_raw_parts(self.base.add(at), n) }
    }

    fn bytes_mut(&mut self, at: usize, n: usize) -> &mut [u8] {
        assert!(self.writable && at.checked_add(n).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds of a writable mapping (asserted); only called
        // before the segment is published (magic written last).
        unsafe { std::slice::from_raw_parts_mut(self.base.add(at), n) }
    }

    fn atomic(&self, at: usize) -> &AtomicU64 {
        assert!(at % 8 == 0 && at.checked_add(8).is_some_and(|end| end <= self.len));
        // SAFETY: 8-byte aligned (mapping is page aligned, offsets are
        // multiples of 8), in bounds, and only ever accessed atomically
        // once published.
        unsafe { &*(self.base.add(at) as *const AtomicU64) }
    }

    /// The segment's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Values per block.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Blocks (lcores).
    pub fn lcores(&self) -> usize {
        self.lcores
    }

    /// The writer's pid.
    pub fn pid(&self) -> u32 {
        self.atomic(hdr::PID & !7).load(Ordering::Relaxed) as u32
    }

    /// When the writer started (ns since the Unix epoch).
    pub fn start_unix_ns(&self) -> u64 {
        self.atomic(hdr::START_NS).load(Ordering::Relaxed)
    }

    /// Last heartbeat of the writer (ns since the Unix epoch).
    pub fn heartbeat_unix_ns(&self) -> u64 {
        self.atomic(hdr::HEARTBEAT_NS).load(Ordering::Acquire)
    }

    /// Records that the writer is alive (the dataplane's main lcore).
    pub fn beat(&self, unix_ns: u64) {
        assert!(self.writable);
        self.atomic(hdr::HEARTBEAT_NS).store(unix_ns, Ordering::Release);
    }

    /// The directory.
    pub fn directory(&self) -> Vec<Slot> {
        let dir = u64::from_le_bytes(self.bytes(hdr::DIRECTORY, 8).try_into().expect("8")) as usize;
        (0..self.slots).map(|i| read_entry(self.bytes(dir + i * ENTRY_BYTES, ENTRY_BYTES))).collect()
    }

    /// The writer for block `lcore`. Exactly one may exist per block; the
    /// dataplane hands each to its worker.
    pub fn writer(&self, lcore: usize) -> BlockWriter<'_> {
        assert!(self.writable && lcore < self.lcores);
        BlockWriter { seg: self, base: self.blocks + lcore * self.block_bytes }
    }

    /// A consistent copy of block `lcore`'s values, retrying while the
    /// writer is mid-update. The writer may be preempted inside an update
    /// (it is a thread like any other), so after a short spin the reader
    /// sleeps between tries; it gives up after `timeout`.
    pub fn read(&self, lcore: usize, out: &mut [u64], timeout: std::time::Duration) -> Option<u64> {
        assert!(lcore < self.lcores && out.len() >= self.slots);
        let base = self.blocks + lcore * self.block_bytes;
        let seq = self.atomic(base);
        let deadline = std::time::Instant::now() + timeout;
        for attempt in 0u32.. {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                for (i, v) in out[..self.slots].iter_mut().enumerate() {
                    *v = self.atomic(base + BLOCK_HEADER_BYTES + 8 * i).load(Ordering::Relaxed);
                }
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == before {
                    return Some(before);
                }
            }
            if attempt < 64 {
                std::hint::spin_loop();
            } else if std::time::Instant::now() >= deadline {
                return None;
            } else {
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        }
        None
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`; no
        // references into it outlive `self` (they borrow it).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The single writer of one block.
pub struct BlockWriter<'a> {
    seg: &'a Segment,
    base: usize,
}

impl BlockWriter<'_> {
    fn value(&self, slot: usize) -> &AtomicU64 {
        assert!(slot < self.seg.slots);
        self.seg.atomic(self.base + BLOCK_HEADER_BYTES + 8 * slot)
    }

    /// Starts an update: readers retry until [`BlockWriter::end`].
    pub fn begin(&self) {
        let seq = self.seg.atomic(self.base);
        seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Ends an update started with [`BlockWriter::begin`].
    pub fn end(&self) {
        let seq = self.seg.atomic(self.base);
        seq.store(seq.load(Ordering::Relaxed) + 1, Ordering::Release);
    }

    /// Sets a value (between `begin` and `end`).
    pub fn set(&self, slot: usize, v: u64) {
        self.value(slot).store(v, Ordering::Relaxed);
    }

    /// Adds to a value (between `begin` and `end`); single writer, so a
    /// load and a store suffice (no locked instruction).
    pub fn add(&self, slot: usize, d: u64) {
        let a = self.value(slot);
        a.store(a.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
    }

    /// Reads a value (the writer's own view).
    pub fn get(&self, slot: usize) -> u64 {
        self.value(slot).load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
