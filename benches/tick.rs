//! `tick`: the arena's tick cost, and frame clone and checksum against their bounds
//! (memcpy and raw blake3 over the same byte count, measured in the same run).
//!
//! `cargo bench --bench tick`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickstep_arena::{ArenaConfig, ArenaRun};
use tickstep_engine::checksum;

const SIZES: [u32; 3] = [1_000, 10_000, 100_000];

fn warmed_game(units: u32) -> ArenaRun {
    let mut game = ArenaRun::new(&ArenaConfig {
        units,
        players: 4,
        seed: 1,
    })
    .unwrap();
    game.run_to(30, |_| {}).unwrap();
    game
}

fn arena_tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("arena_tick");
    for units in SIZES {
        if units >= 100_000 {
            group.sample_size(10);
        }
        let mut game = warmed_game(units);
        group.throughput(Throughput::Elements(units as u64));
        group.bench_function(BenchmarkId::from_parameter(units), |b| {
            b.iter(|| game.step().unwrap())
        });
    }
    group.finish();
}

fn clone_and_checksum(c: &mut Criterion) {
    for units in SIZES {
        let game = warmed_game(units);
        let bytes = game.frame().image_len();
        let source = vec![7u8; bytes];
        let mut target = vec![0u8; bytes];
        let mut copy = game.frame().clone();

        let mut group = c.benchmark_group(format!("frame_clone/{units}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("memcpy", |b| {
            b.iter(|| target.copy_from_slice(black_box(&source)))
        });
        group.bench_function("clone_from", |b| {
            b.iter(|| copy.clone_from(black_box(game.frame())))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("checksum/{units}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("blake3", |b| b.iter(|| blake3::hash(black_box(&source))));
        group.bench_function("checksum", |b| b.iter(|| checksum(black_box(game.frame()))));
        group.finish();
    }
}

criterion_group!(benches, arena_tick, clone_and_checksum);
criterion_main!(benches);
