//! A warm `step`, a warm `clone_from`, a warm snapshot encode and restore, and encoding a
//! message into a warm buffer allocate nothing.
//!
//! The counting allocator below is the one place tickstep uses `unsafe`: implementing
//! `GlobalAlloc` requires it. It only counts, and delegates to `System`. It counts the
//! measuring thread while it measures and the rayon pools' workers (a step's parallel
//! chunks and a snapshot's hashing run there), not the test harness's own threads (a
//! finished test's report allocates); the tests take turns, so they never count each
//! other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use tickstep_arena::{ArenaConfig, ArenaRun};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread's allocations count.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A rayon pool builder whose workers count.
fn counted_pool(threads: usize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| COUNTED.with(|counted| counted.set(true)))
}

/// A pool of two counting workers, built once and kept: a dropped pool's workers wind
/// down (and allocate) while the next test measures.
fn two_workers() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| counted_pool(2).build().expect("a pool of two threads"))
}

/// This test's turn, with the global pool's workers counting (built here, before any
/// test uses it).
fn take_turn() -> MutexGuard<'static, ()> {
    static GLOBAL_POOL: Once = Once::new();
    GLOBAL_POOL.call_once(|| {
        counted_pool(0)
            .build_global()
            .expect("the global pool is built here first")
    });
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

struct CountingAllocator;

// SAFETY: delegates every call unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The allocations `f` makes on this thread and the pools' workers.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.with(|counted| counted.set(true));
    f();
    COUNTED.with(|counted| counted.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn warm_step_allocates_nothing() {
    let config = ArenaConfig {
        units: 2000,
        players: 4,
        seed: 5,
    };
    let _turn = take_turn();
    // On a pool of two threads, so the parallel chunks run on both.
    let pool = two_workers();
    let mut game = ArenaRun::new(&config).unwrap();
    pool.install(|| game.run_to(400, |_| {}).unwrap());
    let count = allocations_during(|| pool.install(|| game.run_to(600, |_| {}).unwrap()));
    assert_eq!(count, 0, "allocations in 200 warm ticks");
}

#[test]
fn warm_clone_from_allocates_nothing() {
    let config = ArenaConfig {
        units: 2000,
        players: 4,
        seed: 6,
    };
    let _turn = take_turn();
    let mut game = ArenaRun::new(&config).unwrap();
    game.run_to(100, |_| {}).unwrap();
    let mut copy = game.frame().clone();
    game.run_to(150, |_| {}).unwrap();
    let count = allocations_during(|| copy.clone_from(game.frame()));
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
    let _turn = take_turn();
    let mut game = ArenaRun::new(&config).unwrap();
    game.run_to(50, |_| {}).unwrap();
    let mut buffer = Vec::new();
    tickstep_snapshot::encode(game.frame(), &mut buffer);
    let mut target = game.frame().clone();
    tickstep_snapshot::restore(&buffer, &mut target).unwrap();
    let count = allocations_during(|| {
        tickstep_snapshot::encode(game.frame(), &mut buffer);
        tickstep_snapshot::restore(&buffer, &mut target).unwrap();
    });
    assert_eq!(count, 0);
}

#[test]
fn encoding_into_a_warm_buffer_allocates_nothing() {
    use tickstep_session::{ClientMessage, encode_into};
    let _turn = take_turn();
    let update = ClientMessage::Update {
        sent_at: 1 << 40,
        received: 900,
        stepped: 899,
        first_input: 901,
        inputs: vec![7; 200],
        commands: Vec::new(),
        checksums: Vec::new(),
    };
    let mut buffer = Vec::new();
    encode_into(&update, &mut buffer);
    let count = allocations_during(|| {
        for _ in 0..100 {
            encode_into(&ClientMessage::Leave, &mut buffer);
            encode_into(&update, &mut buffer);
        }
    });
    assert_eq!(count, 0, "allocations in 200 warm encodes");
}
