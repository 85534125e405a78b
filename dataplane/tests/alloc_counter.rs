//! The counting allocator counts what a worker thread allocates once it
//! starts counting, and nothing from other threads: the zero in the
//! end-to-end tests ("worker_heap_allocations") is therefore meaningful.

use ms_dataplane::alloc::{count_this_thread, worker_allocations, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_only_counting_threads() {
    let before = worker_allocations();
    let other = std::thread::spawn(|| {
        let v: Vec<u64> = (0..100).collect();
        v.len()
    });
    assert_eq!(other.join().unwrap(), 100);
    assert_eq!(worker_allocations(), before, "threads that do not count are not counted");
    let worker = std::thread::spawn(|| {
        count_this_thread(true);
        let b = Box::new([7u8; 64]);
        let mut v = Vec::with_capacity(1);
        v.push(1u32);
        std::hint::black_box(&mut v).push(2);
        count_this_thread(false);
        let after = std::hint::black_box(String::from("not counted"));
        b[0] as usize + v.len() + after.len() - 11
    });
    assert_eq!(worker.join().unwrap(), 9);
    assert_eq!(worker_allocations() - before, 3, "Box, Vec::with_capacity, and the growing push");
}
