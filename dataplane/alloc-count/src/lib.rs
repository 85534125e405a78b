//! A counting global allocator: heap allocations made by threads that
//! asked (worker lcores once their loop runs, `ms-cost`'s measured loop)
//! are counted, so a test can prove the data path allocates nothing
//! (docs/architecture.md, bounds). A binary installs it with
//! `#[global_allocator]`; the dataplane reports the count at exit as
//! `worker_heap_allocations`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static WORKER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting allocations on threads that asked.
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only a const-initialised thread-local and an atomic,
// neither of which allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[inline]
fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        WORKER_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts or stops counting this thread's allocations (a worker calls it
/// when its loop starts and ends).
pub fn count_this_thread(on: bool) {
    let _ = COUNTING.try_with(|c| c.set(on));
}

/// Allocations counted so far (only meaningful when the binary installed
/// [`CountingAlloc`]).
pub fn worker_allocations() -> u64 {
    WORKER_ALLOCS.load(Ordering::Relaxed)
}
