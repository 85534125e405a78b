//! What [`export_plugin!`](crate::export_plugin) expands to calls into
//! here: the buffer, the one instance, and the hooks.
//!
//! WebAssembly without threads runs one call at a time, so the statics
//! below are never touched concurrently; natively they are used only by
//! single-threaded tests of one plugin.

use crate::abi::{self, record, BUFFER_LEN};
use crate::{Message, Plugin};
use core::cell::UnsafeCell;

/// Codes the exports return for failures of the ABI itself (a plugin's own
/// errors are small positive numbers).
pub mod code {
    /// A hook ran before `ms_init` succeeded.
    pub const NOT_INITIALISED: i32 = -1;
    /// A length argument is negative or beyond the buffer.
    pub const BAD_LENGTH: i32 = -2;
    /// A record's room runs past the buffer.
    pub const BAD_LAYOUT: i32 = -3;
}

/// A value of one single-threaded module instance.
pub struct Shared<T>(UnsafeCell<T>);

// SAFETY: see the module's documentation: one call at a time.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Wraps `v`.
    pub const fn new(v: T) -> Shared<T> {
        Shared(UnsafeCell::new(v))
    }

    /// The value.
    ///
    /// # Safety
    /// No other reference to it may be live: call it once per export call.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller guarantees exclusive access.
        unsafe { &mut *self.0.get() }
    }
}

/// The shared buffer, 8-byte aligned.
#[repr(C, align(8))]
pub struct Buffer(pub [u8; BUFFER_LEN]);

/// The module's one buffer.
pub static BUFFER: Shared<Buffer> = Shared::new(Buffer([0; BUFFER_LEN]));

/// The buffer's address, as the ABI passes it.
pub fn buffer_addr() -> i32 {
    BUFFER.0.get() as usize as i32
}

/// The module's one plugin instance, once `ms_init` succeeded.
pub type Slot<P> = Shared<Option<P>>;

fn blob(len: i32) -> Option<&'static [u8]> {
    let len = usize::try_from(len).ok().filter(|&n| n <= BUFFER_LEN)?;
    // SAFETY: one call at a time; the host wrote `len` bytes before calling.
    Some(unsafe { &BUFFER.get().0[..len] })
}

fn status(r: Result<(), crate::Error>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// `ms_init`.
pub fn init<P: Plugin>(slot: &Slot<P>, len: i32) -> i32 {
    let Some(config) = blob(len) else { return code::BAD_LENGTH };
    match P::init(config) {
        Ok(p) => {
            // SAFETY: one call at a time.
            unsafe { *slot.get() = Some(p) };
            0
        }
        Err(e) => e.0,
    }
}

/// Runs `f` on the instance, or answers [`code::NOT_INITIALISED`].
pub fn with<P: Plugin>(slot: &Slot<P>, f: impl FnOnce(&mut P) -> i32) -> i32 {
    // SAFETY: one call at a time.
    match unsafe { slot.get() } {
        Some(p) => f(p),
        None => code::NOT_INITIALISED,
    }
}

/// `ms_start`.
pub fn start<P: Plugin>(slot: &Slot<P>) -> i32 {
    with(slot, |p| status(p.start()))
}

/// `ms_on_batch`.
pub fn on_batch<P: Plugin>(slot: &Slot<P>, count: i32) -> i32 {
    let Ok(count) = usize::try_from(count) else { return code::BAD_LENGTH };
    // SAFETY: one call at a time.
    let buf = unsafe { &mut BUFFER.get().0[..] };
    with(slot, |p| run_batch(p, buf, count))
}

/// Decides `count` records laid out from the start of `buf`.
pub fn run_batch<P: Plugin>(p: &mut P, buf: &mut [u8], count: usize) -> i32 {
    let mut at = 0;
    for _ in 0..count {
        let Some(header) = buf.get(at..at + record::HEADER_LEN) else { return code::BAD_LAYOUT };
        let room = usize::from(abi::get16(header, record::ROOM));
        let Some(rec) = buf.get_mut(at..record::next(at, room)) else { return code::BAD_LAYOUT };
        let verdict = p.on_message(&mut Message::over(rec));
        rec[record::VERDICT] = verdict as u8;
        at = record::next(at, room);
    }
    0
}

/// `ms_on_config`.
pub fn on_config<P: Plugin>(slot: &Slot<P>, len: i32) -> i32 {
    let Some(config) = blob(len) else { return code::BAD_LENGTH };
    with(slot, |p| status(p.on_config(config)))
}

/// `ms_drain`.
pub fn drain<P: Plugin>(slot: &Slot<P>) -> i32 {
    with(slot, |p| {
        p.drain();
        0
    })
}

/// `ms_snapshot_state`.
pub fn snapshot<P: Plugin>(slot: &Slot<P>) -> i32 {
    // SAFETY: one call at a time.
    let buf = unsafe { &mut BUFFER.get().0[..] };
    with(slot, |p| match p.snapshot(buf) {
        Ok(n) if n <= BUFFER_LEN => n as i32,
        Ok(_) => -crate::Error::STATE_TOO_LARGE.0,
        Err(e) => -e.0.abs().max(1),
    })
}

/// `ms_restore_state`.
pub fn restore<P: Plugin>(slot: &Slot<P>, len: i32) -> i32 {
    let Some(state) = blob(len) else { return code::BAD_LENGTH };
    with(slot, |p| status(p.restore(state)))
}

/// `ms_stop`.
pub fn stop<P: Plugin>(slot: &Slot<P>) -> i32 {
    with(slot, |p| {
        p.stop();
        0
    })
}

/// Writes the module's exports for plugin type `$plugin`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        static __MS_PLUGIN: $crate::export::Slot<$plugin> = $crate::export::Shared::new(None);

        #[no_mangle]
        pub extern "C" fn ms_abi_version() -> i32 {
            $crate::abi::ABI_VERSION as i32
        }
        #[no_mangle]
        pub extern "C" fn ms_buffer() -> i32 {
            $crate::export::buffer_addr()
        }
        #[no_mangle]
        pub extern "C" fn ms_init(len: i32) -> i32 {
            $crate::export::init(&__MS_PLUGIN, len)
        }
        #[no_mangle]
        pub extern "C" fn ms_start() -> i32 {
            $crate::export::start(&__MS_PLUGIN)
        }
        #[no_mangle]
        pub extern "C" fn ms_on_batch(count: i32) -> i32 {
            $crate::export::on_batch(&__MS_PLUGIN, count)
        }
        #[no_mangle]
        pub extern "C" fn ms_on_config(len: i32) -> i32 {
            $crate::export::on_config(&__MS_PLUGIN, len)
        }
        #[no_mangle]
        pub extern "C" fn ms_drain() -> i32 {
            $crate::export::drain(&__MS_PLUGIN)
        }
        #[no_mangle]
        pub extern "C" fn ms_snapshot_state() -> i32 {
            $crate::export::snapshot(&__MS_PLUGIN)
        }
        #[no_mangle]
        pub extern "C" fn ms_restore_state(len: i32) -> i32 {
            $crate::export::restore(&__MS_PLUGIN, len)
        }
        #[no_mangle]
        pub extern "C" fn ms_stop() -> i32 {
            $crate::export::stop(&__MS_PLUGIN)
        }
    };
}

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // A trap: the host applies the plugin's failure policy.
    core::arch::wasm32::unreachable()
}
