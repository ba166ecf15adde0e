//! A warm `step`, a warm `clone_from`, a warm snapshot encode and restore, encoding a
//! message into a warm buffer and a warm server room-tick allocate nothing.
//!
//! The counting allocator below is the one place tickstep uses `unsafe`: implementing
//! `GlobalAlloc` requires it. It only counts, and delegates to `System`. It counts the
//! measuring thread while it measures and the rayon pools' workers (a step's parallel
//! chunks run there, and a burst's waiting thread), not the test harness's own threads (a
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
    /// The allocations counted on this thread.
    static COUNTED_HERE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        COUNTED_HERE.with(|here| here.set(here.get() + 1));
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

/// How far the counter `total` moved while `f` ran with this thread counting.
fn counted_during(f: impl FnOnce(), total: impl Fn() -> u64) -> u64 {
    let before = total();
    COUNTED.with(|counted| counted.set(true));
    f();
    COUNTED.with(|counted| counted.set(false));
    total() - before
}

/// The allocations `f` makes on this thread and the pools' workers.
fn allocations_during(f: impl FnOnce()) -> u64 {
    counted_during(f, || ALLOCATIONS.load(Ordering::SeqCst))
}

/// The allocations `f` makes on this thread alone (for work that uses no pool: a pool's
/// worker starting up meanwhile does not count).
fn allocations_here_during(f: impl FnOnce()) -> u64 {
    counted_during(f, || COUNTED_HERE.with(Cell::get))
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
    let count = allocations_during(|| {
        pool.install(|| {
            for _ in 400..600 {
                game.step().unwrap();
            }
        })
    });
    assert_eq!(count, 0, "allocations in 200 warm ticks");
    // A burst (`run_to`, a catch-up's slice) keeps the pool's other thread waiting for
    // chunks: one small job for it, however many ticks the burst steps.
    let short = allocations_during(|| pool.install(|| game.run_to(610, |_| {}).unwrap()));
    let long = allocations_during(|| pool.install(|| game.run_to(810, |_| {}).unwrap()));
    assert_eq!(short, long, "allocations in a burst of 10 ticks and of 200");
    assert!(long <= 1, "{long} allocations in a burst of 200 warm ticks");
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

/// A server's rooms in play (20 of them, so the server's schedule of wakes holds many),
/// driven the way a host loop does: decoded messages in (each player's input two ticks
/// ahead), due ticks finalized, `Verified` messages out and handed back. Warm, a second
/// of it allocates nothing (the messages are built before, as a transport's decoder
/// would have built them).
#[test]
fn a_warm_server_room_tick_allocates_nothing() {
    use std::collections::VecDeque;
    use std::time::Duration;
    use tickstep_arena::ArenaInput;
    use tickstep_session::{
        ClientId, ClientMessage, ConnId, Hello, RoomConfig, Server, ServerConfig,
    };
    let game = ArenaConfig {
        units: 30,
        players: 2,
        seed: 3,
    };
    let frame = tickstep_arena::new_frame(&game).unwrap();
    const ROOMS: u64 = 20;
    let mut room = RoomConfig::new(2, "t", &frame);
    room.start_delay = Duration::ZERO;
    let mut server = Server::<ArenaInput>::new(ServerConfig::default());
    let name = |n: u64| format!("room-{}", n / 2);
    for r in 0..ROOMS {
        server.open_room(&name(2 * r), room.clone()).unwrap();
    }
    for n in 0..2 * ROOMS {
        let conn = ConnId(n);
        let address = [10, 0, (n >> 8) as u8, n as u8].into();
        server
            .handle_connection(Duration::ZERO, conn, address)
            .unwrap();
        let hello = Hello::new("t", &frame, name(n), ClientId::from_seed(n));
        server.handle_message(Duration::ZERO, conn, ClientMessage::Hello(Box::new(hello)));
    }
    // Each player's input for tick k + 2 half a tick after tick k fell due (60 Hz): the
    // ticks fall due between messages, on the server's timer.
    let input = vec![0u8; std::mem::size_of::<ArenaInput>()];
    let mut messages = VecDeque::new();
    for k in 0..180u64 {
        let at = Duration::from_nanos((2 * k + 1) * 1_000_000_000 / 120);
        for n in 0..2 * ROOMS {
            let update = ClientMessage::Update {
                sent_at: at.as_micros() as u64,
                received: k.saturating_sub(1),
                stepped: k.saturating_sub(1),
                first_input: k + 2,
                inputs: input.clone(),
                commands: Vec::new(),
                checksums: Vec::new(),
            };
            messages.push_back((at, ConnId(n), update));
        }
    }
    let mut play = |server: &mut Server<ArenaInput>, from: Duration, to: Duration| {
        let mut now = from;
        while now < to {
            now += Duration::from_millis(1);
            while messages.front().is_some_and(|(at, _, _)| *at <= now) {
                if let Some((_, conn, message)) = messages.pop_front() {
                    server.handle_message(now, conn, message);
                }
            }
            if server.poll_timeout().is_some_and(|at| at <= now) {
                server.handle_timeout(now);
            }
            while let Some(transmit) = server.poll_transmit() {
                server.recycle(transmit);
            }
            while server.poll_event().is_some() {}
        }
    };
    let _turn = take_turn();
    play(&mut server, Duration::ZERO, Duration::from_secs(2));
    let played = server.room_tick("room-0").unwrap();
    assert!(played >= 110, "the game is running ({played} ticks)");
    let second = (Duration::from_secs(2), Duration::from_secs(3));
    let count = allocations_here_during(|| play(&mut server, second.0, second.1));
    let after = server.room_tick("room-0").unwrap();
    let last = server.room_tick(&name(2 * ROOMS - 1)).unwrap();
    assert_eq!(last, after, "every room ticks");
    assert!(
        after >= played + 55,
        "a second of ticks: {played} -> {after}"
    );
    let room_ticks = (after - played) * ROOMS;
    assert_eq!(count, 0, "allocations in {room_ticks} warm room-ticks");
}
