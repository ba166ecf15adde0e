//! `catch_up`: restore the arena's tick-0 snapshot and catch up over 36,000 buffered
//! ticks (10 minutes at 60 Hz) at 1k and 10k entities. Throughput is in ticks, so the
//! report reads directly as catch-up ticks per second (divide by 60 for × real time).
//!
//! `cargo bench --bench catch_up` (slow: one 10k iteration is ~40 s).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaConfig};
use tickstep_engine::{MAX_CAPACITY, TickInputs};
use tickstep_replay::{CatchUp, InputLog};
use tickstep_snapshot as snapshot;

const TICKS: u64 = 36_000;

fn catch_up(c: &mut Criterion) {
    let mut group = c.benchmark_group("catch_up");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(TICKS));
    for units in [1_000u32, 10_000] {
        let config = ArenaConfig {
            units,
            players: 4,
            seed: 1,
        };
        let mut log = InputLog::new(4, TICKS);
        let mut inputs = TickInputs::new(4).unwrap();
        for tick in 1..=TICKS {
            arena::fill_bot_inputs(config.seed, tick, &mut inputs);
            log.push(&inputs).unwrap();
        }
        let mut initial = Vec::new();
        snapshot::encode(&arena::new_frame(&config).unwrap(), &mut initial);
        let mut sim = arena::simulation();
        group.bench_function(BenchmarkId::from_parameter(units), |b| {
            b.iter_batched(
                || snapshot::restore_new(&initial, arena::schema(), MAX_CAPACITY).unwrap(),
                |mut frame| {
                    let mut runner = CatchUp::new(4, 0, 0).unwrap();
                    while !runner
                        .run_slice(&mut sim, &mut frame, &log, 1024)
                        .unwrap()
                        .caught_up
                    {}
                    frame
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, catch_up);
criterion_main!(benches);
