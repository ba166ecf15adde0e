//! `tickstep_engine::parallel::keep_warm`, which a catch-up, `run_to`, `record` and
//! `replay verify` run their steps in: it hands back what the work returns or its panic,
//! lets its waiting threads go either way, and nests (a parallel section may start a
//! burst of its own). Each case runs on a thread of its own and fails if it has not
//! finished in a minute: the failure these guard against is a pool that never returns.

use std::sync::mpsc;
use std::time::Duration;
use tickstep_engine::parallel::keep_warm;

/// Runs `f` on a pool of `threads` threads, on a thread of its own; panics if it has
/// not returned within a minute.
fn on_pool_within_a_minute<T: Send + 'static>(
    threads: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool");
        let _ = send.send(pool.install(f));
    });
    receive
        .recv_timeout(Duration::from_secs(60))
        .expect("the pool returned within a minute")
}

#[test]
fn a_panic_inside_reaches_the_caller_and_the_pool_works_on() {
    for threads in [1, 2, 3] {
        let (caught, after) = on_pool_within_a_minute(threads, || {
            let caught =
                std::panic::catch_unwind(|| keep_warm(|| -> u32 { panic!("a step failed") }));
            (caught.is_err(), rayon::join(|| 1, || 2))
        });
        assert!(caught, "{threads} threads: the panic reached the caller");
        assert_eq!(after, (1, 2), "{threads} threads");
    }
}

#[test]
fn bursts_nest_inside_parallel_sections_and_each_other() {
    for threads in [1, 2, 3, 8] {
        let total = on_pool_within_a_minute(threads, || {
            keep_warm(|| {
                let (a, (b, c)) = rayon::join(
                    || keep_warm(|| (0..1000u64).sum::<u64>()),
                    || keep_warm(|| rayon::join(|| 1u64, || keep_warm(|| 2u64))),
                );
                a + b + c
            })
        });
        assert_eq!(total, 499_500 + 1 + 2, "{threads} threads");
    }
}

#[test]
fn outside_any_pool_it_just_runs_the_work() {
    assert_eq!(keep_warm(|| 7), 7);
}
