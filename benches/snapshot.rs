//! `snapshot`: encode, verify and restore against memcpy and blake3 over the same bytes,
//! and against a checksummed serde+postcard snapshot of the same world, at 1k, 10k and
//! 100k entities. Throughput is per byte of the in-memory world for every row.
//!
//! `cargo bench --bench snapshot`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tickstep_arena::serde_snapshot::SerdeWorld;
use tickstep_arena::{self as arena, ArenaConfig, ArenaRun};
use tickstep_snapshot as snapshot;

fn snapshot_bench(c: &mut Criterion) {
    for units in [1_000u32, 10_000, 100_000] {
        let mut game = ArenaRun::new(&ArenaConfig {
            units,
            players: 4,
            seed: 1,
        })
        .unwrap();
        game.run_to(60, |_| {}).unwrap();
        let frame = game.frame();
        let bytes = frame.image_len();
        let schema = arena::schema();
        let mut group = c.benchmark_group(format!("snapshot/{units}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        if units >= 100_000 {
            group.sample_size(20);
        }

        let source = vec![0x5au8; bytes];
        let mut target = vec![0u8; bytes];
        group.bench_function("memcpy", |b| {
            b.iter(|| target.copy_from_slice(black_box(&source)))
        });
        group.bench_function("blake3", |b| b.iter(|| blake3::hash(black_box(&source))));

        let mut encoded = Vec::new();
        group.bench_function("encode", |b| {
            b.iter(|| snapshot::encode(black_box(frame), &mut encoded))
        });
        group.bench_function("verify", |b| {
            b.iter(|| snapshot::verify(black_box(&encoded), &schema).is_ok())
        });
        let mut restored = frame.clone();
        group.bench_function("restore", |b| {
            b.iter(|| snapshot::restore(black_box(&encoded), &mut restored).is_ok())
        });

        let world = SerdeWorld::from_frame(frame);
        let (mut postcard, hash) = world.encode_checked(Vec::new()).unwrap();
        group.bench_function("postcard_encode_blake3", |b| {
            b.iter(|| {
                let (out, hash) = world.encode_checked(std::mem::take(&mut postcard)).unwrap();
                postcard = out;
                hash
            })
        });
        group.bench_function("blake3_postcard_decode", |b| {
            b.iter(|| SerdeWorld::decode_checked(black_box(&postcard), &hash))
        });
        group.finish();
    }
}

criterion_group!(benches, snapshot_bench);
criterion_main!(benches);
