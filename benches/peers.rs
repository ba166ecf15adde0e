//! `peers`: one movement-and-bounce workload over fixed-point position and velocity, on
//! tickstep's frame and on hecs, side by side at 1k, 10k and 100k entities.
//!
//! `cargo bench --bench peers`

use bytemuck::{Pod, Zeroable};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickstep_engine::{Fp, Frame, Rng, Schema, Vec2};

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Pos(Vec2);

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Vel(Vec2);

const SIDE: Fp = Fp::from_int(1000);

/// The shared workload: move, then bounce off the walls of a SIDE × SIDE box.
#[inline(always)]
fn move_and_bounce(pos: &mut Pos, vel: &mut Vel) {
    pos.0 += vel.0;
    if pos.0.x < Fp::ZERO || pos.0.x > SIDE {
        vel.0.x = -vel.0.x;
        pos.0.x = pos.0.x.clamp(Fp::ZERO, SIDE);
    }
    if pos.0.y < Fp::ZERO || pos.0.y > SIDE {
        vel.0.y = -vel.0.y;
        pos.0.y = pos.0.y.clamp(Fp::ZERO, SIDE);
    }
}

fn bodies(n: u32) -> impl Iterator<Item = (Pos, Vel)> {
    let mut rng = Rng::new(9);
    (0..n).map(move |_| {
        let pos = Vec2::new(rng.range(Fp::ZERO, SIDE), rng.range(Fp::ZERO, SIDE));
        let vel = Vec2::new(rng.range(-Fp::ONE, Fp::ONE), rng.range(-Fp::ONE, Fp::ONE));
        (Pos(pos), Vel(vel))
    })
}

fn peers(c: &mut Criterion) {
    for n in [1_000u32, 10_000, 100_000] {
        let mut group = c.benchmark_group("move_and_bounce");
        group.throughput(Throughput::Elements(n as u64));

        let schema = Schema::builder::<u64>("peers", 1)
            .component::<Pos>("pos")
            .component::<Vel>("vel")
            .build()
            .unwrap();
        let mut frame = Frame::new(schema, n, 0u64).unwrap();
        for body in bodies(n) {
            frame.world_mut().spawn_with(body).unwrap();
        }
        group.bench_function(BenchmarkId::new("tickstep", n), |b| {
            b.iter(|| {
                for (_, (pos, vel)) in frame
                    .world_mut()
                    .query_mut::<(&mut Pos, &mut Vel)>()
                    .expect("registered")
                {
                    move_and_bounce(pos, vel);
                }
            })
        });

        let mut world = hecs::World::new();
        world.spawn_batch(bodies(n));
        group.bench_function(BenchmarkId::new("hecs", n), |b| {
            b.iter(|| {
                for (_, (pos, vel)) in world.query_mut::<(&mut Pos, &mut Vel)>() {
                    move_and_bounce(pos, vel);
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, peers);
criterion_main!(benches);
