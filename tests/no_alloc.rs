//! A warm `step` and a warm `clone_from` allocate nothing.
//!
//! The counting allocator below is the one place tickstep uses `unsafe`: implementing
//! `GlobalAlloc` requires it. It only counts, per thread, and delegates to `System`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tickstep_arena::{ArenaConfig, ArenaRun};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

// SAFETY: delegates every call unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn warm_step_allocates_nothing() {
    let config = ArenaConfig {
        units: 2000,
        players: 4,
        seed: 5,
    };
    let mut game = ArenaRun::new(&config).unwrap();
    game.run_to(400, |_| {}).unwrap();
    let count = allocations_during(|| game.run_to(600, |_| {}).unwrap());
    assert_eq!(count, 0, "allocations in 200 warm ticks");
}

#[test]
fn warm_clone_from_allocates_nothing() {
    let config = ArenaConfig {
        units: 2000,
        players: 4,
        seed: 6,
    };
    let mut game = ArenaRun::new(&config).unwrap();
    game.run_to(100, |_| {}).unwrap();
    let mut copy = game.frame.clone();
    game.run_to(150, |_| {}).unwrap();
    let count = allocations_during(|| copy.clone_from(&game.frame));
    assert_eq!(count, 0);
    assert_eq!(copy.tick(), 150);
}

#[test]
fn warm_snapshot_encode_and_restore_allocate_nothing() {
    let config = ArenaConfig {
        units: 2000,
        players: 2,
        seed: 8,
    };
    let mut game = ArenaRun::new(&config).unwrap();
    game.run_to(50, |_| {}).unwrap();
    let mut buffer = Vec::new();
    tickstep_snapshot::encode(&game.frame, &mut buffer);
    let mut target = game.frame.clone();
    tickstep_snapshot::restore(&buffer, &mut target).unwrap();
    let count = allocations_during(|| {
        tickstep_snapshot::encode(&game.frame, &mut buffer);
        tickstep_snapshot::restore(&buffer, &mut target).unwrap();
    });
    assert_eq!(count, 0);
}
