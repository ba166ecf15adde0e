//! The peers workload: one movement-and-bounce pass over fixed-point position and
//! velocity, on tickstep's frame and on hecs, over the same bodies. Shared by
//! `tickstep bench peers` and `cargo bench --bench peers`.

use bytemuck::{Pod, Zeroable};
use tickstep_engine::{Fp, Frame, Rng, Schema, Vec2};

/// A body's position.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Pos(pub Vec2);

/// A body's velocity.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub struct Vel(pub Vec2);

/// The box the bodies bounce in.
const SIDE: Fp = Fp::from_int(1000);

/// Moves a body, then bounces it off the walls of a SIDE × SIDE box.
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

/// `n` bodies, the same for both worlds.
fn bodies(n: u32) -> impl Iterator<Item = (Pos, Vel)> {
    let mut rng = Rng::new(9);
    (0..n).map(move |_| {
        let pos = Vec2::new(rng.range(Fp::ZERO, SIDE), rng.range(Fp::ZERO, SIDE));
        let vel = Vec2::new(rng.range(-Fp::ONE, Fp::ONE), rng.range(-Fp::ONE, Fp::ONE));
        (Pos(pos), Vel(vel))
    })
}

/// A tickstep frame holding `n` bodies.
pub fn tickstep_world(n: u32) -> Result<Frame<u64>, String> {
    let schema = Schema::builder::<u64>("peers", 1)
        .component::<Pos>("pos")
        .component::<Vel>("vel")
        .build()
        .map_err(|e| e.to_string())?;
    let mut frame = Frame::new(schema, n, 0u64).map_err(|e| e.to_string())?;
    for body in bodies(n) {
        frame
            .world_mut()
            .spawn_with(body)
            .map_err(|e| e.to_string())?;
    }
    Ok(frame)
}

/// One pass over a tickstep frame.
pub fn tickstep_pass(frame: &mut Frame<u64>) {
    if let Ok(query) = frame.world_mut().query_mut::<(&mut Pos, &mut Vel)>() {
        for (_, (pos, vel)) in query {
            move_and_bounce(pos, vel);
        }
    }
}

/// A hecs world holding the same `n` bodies.
pub fn hecs_world(n: u32) -> hecs::World {
    let mut world = hecs::World::new();
    world.spawn_batch(bodies(n));
    world
}

/// One pass over a hecs world.
pub fn hecs_pass(world: &mut hecs::World) {
    for (_, (pos, vel)) in world.query_mut::<(&mut Pos, &mut Vel)>() {
        move_and_bounce(pos, vel);
    }
}
