//! The stats segment: a file in shared memory (`/dev/shm`) that the
//! dataplane writes and the control plane maps read-only, in the manner of
//! VPP's stats segment and Aeron's counters file.
//!
//! ```text
//! header     (256 B)  magic, version, sizes, pid, start time, heartbeat
//! directory  (slots x 128 B)  name, kind, help of every slot
//! blocks     (lcores x block_bytes, 128-byte aligned)
//!            seq (seqlock) | lcore | values[slots] (u64)
//! ```
//!
//! Each block has exactly one writer (its worker lcore), which publishes a
//! burst's updates between two increments of `seq` (odd while writing). A
//! reader copies the block and retries while `seq` is odd or changed, so it
//! never sees a torn or half-updated block, and never blocks the writer.

#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// "MSSTATS\0".
pub const MAGIC: u64 = u64::from_le_bytes(*b"MSSTATS\0");
/// Layout version; readers refuse others.
pub const VERSION: u32 = 2;
const HEADER_BYTES: usize = 256;
const ENTRY_BYTES: usize = 128;
const NAME_BYTES: usize = 48;
/// Directory entry: name (48), kind code (8), bucket bound (8), help (64).
const HELP_OFFSET: usize = NAME_BYTES + 16;
const HELP_BYTES: usize = ENTRY_BYTES - HELP_OFFSET;
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
    fn code(self) -> (u8, u64) {
        match self {
            Kind::Counter => (1, 0),
            Kind::Gauge => (2, 0),
            Kind::Bucket { le } => (3, le),
            Kind::Info => (4, 0),
        }
    }

    fn from_code(c: u8, arg: u64) -> Option<Kind> {
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
    /// Name (`[a-z0-9_]`, at most 47 bytes).
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// One-line help (truncated to fit the directory entry).
    pub help: String,
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
    /// Not a stats segment of this version.
    #[error("{path} is not a MemoryStreamer stats segment of version {VERSION} (magic {magic:#x}, version {version}); is the dataplane the same release as the control plane?")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Magic found.
        magic: u64,
        /// Version found.
        version: u32,
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
            let e = self.bytes_mut(dir_off + i * ENTRY_BYTES, ENTRY_BYTES);
            let name = truncate_utf8(&slot.name, NAME_BYTES - 1).as_bytes();
            e[..name.len()].copy_from_slice(name);
            let (code, arg) = slot.kind.code();
            e[NAME_BYTES..NAME_BYTES + 8].copy_from_slice(&u64::from(code).to_le_bytes());
            e[NAME_BYTES + 8..NAME_BYTES + 16].copy_from_slice(&arg.to_le_bytes());
            let help = truncate_utf8(&slot.help, HELP_BYTES - 1).as_bytes();
            e[HELP_OFFSET..HELP_OFFSET + help.len()].copy_from_slice(help);
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
        if magic != MAGIC || version != VERSION {
            return Err(StatsError::BadHeader { path: path.to_path_buf(), magic, version });
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
        (0..self.slots)
            .map(|i| {
                let e = self.bytes(dir + i * ENTRY_BYTES, ENTRY_BYTES);
                let text = |b: &[u8]| String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).into_owned();
                let code = u64::from_le_bytes(e[NAME_BYTES..NAME_BYTES + 8].try_into().expect("8"));
                let arg = u64::from_le_bytes(e[NAME_BYTES + 8..NAME_BYTES + 16].try_into().expect("8"));
                let kind = u8::try_from(code).ok().and_then(|c| Kind::from_code(c, arg)).unwrap_or(Kind::Info);
                Slot { name: text(&e[..NAME_BYTES]), kind, help: text(&e[HELP_OFFSET..]) }
            })
            .collect()
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
