//! A guarded call allocates nothing once its thread has used the registry.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use finally::with_cleanup;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts, per thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn cleanup() {}

#[with_cleanup(cleanup)]
fn guarded(depth: u32) -> u32 {
    if depth == 0 {
        0
    } else {
        guarded(depth - 1) + 1
    }
}

#[test]
fn guarded_calls_do_not_allocate() {
    // The thread's first guarded call takes its slot and installs the handlers; its thousandth
    // sets up the fast fences (once per process, maybe on a thread of its own).
    for _ in 0..100 {
        guarded(10);
    }
    let before = ALLOCATIONS.with(Cell::get);
    assert!(before > 0, "the counter sees the slot's allocation");
    for _ in 0..1000 {
        assert_eq!(guarded(10), 10);
    }
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
}
