//! `peers`: one movement-and-bounce workload over fixed-point position and velocity, on
//! tickstep's frame and on hecs, side by side at 1k, 10k and 100k entities (the
//! workload is `tickstep bench peers`'s, which prints the ratio).
//!
//! `cargo bench --bench peers`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "../src/bench/peers/workload.rs"]
mod workload;

fn peers(c: &mut Criterion) {
    for n in [1_000u32, 10_000, 100_000] {
        let mut group = c.benchmark_group("move_and_bounce");
        group.throughput(Throughput::Elements(n as u64));
        let mut frame = workload::tickstep_world(n).unwrap();
        group.bench_function(BenchmarkId::new("tickstep", n), |b| {
            b.iter(|| workload::tickstep_pass(&mut frame))
        });
        let mut world = workload::hecs_world(n);
        group.bench_function(BenchmarkId::new("hecs", n), |b| {
            b.iter(|| workload::hecs_pass(&mut world))
        });
        group.finish();
    }
}

criterion_group!(benches, peers);
criterion_main!(benches);
