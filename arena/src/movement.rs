//! Movement: every body moves by its velocity and bounces off the arena's walls. A
//! unit moves in the units' own parallel pass, right after it steers (see
//! `UnitAi`); the other bodies (ships and projectiles) move here, after the shots of
//! the tick are fired.

use tickstep_engine::query::Without;
use tickstep_engine::{Fp, Frame, SystemResult, Vec2};

use super::{ArenaGlobals, Body, Unit};

/// Reflects a coordinate that left `0..=max` back inside and flips its velocity.
fn bounce(pos: &mut Fp, vel: &mut Fp, max: Fp) {
    if *pos < Fp::ZERO {
        *pos = -*pos;
        *vel = -*vel;
    } else if *pos > max {
        *pos = max.mul_int(2) - *pos;
        *vel = -*vel;
    }
    *pos = (*pos).clamp(Fp::ZERO, max);
}

/// Moves `body` one tick by its velocity, bouncing off the walls of an arena of `size`.
pub fn move_body(body: &mut Body, size: Vec2) {
    body.pos += body.vel;
    bounce(&mut body.pos.x, &mut body.vel.x, size.x);
    bounce(&mut body.pos.y, &mut body.vel.y, size.y);
}

/// Moves every body but the units' (they moved as they steered) one tick.
pub fn move_the_rest(frame: &mut Frame<ArenaGlobals>) -> SystemResult {
    let (globals, world) = frame.split_mut();
    let size = globals.size;
    for (_, body) in world.query_filtered_mut::<&mut Body, Without<Unit>>()? {
        move_body(body, size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_reflects_position_and_velocity() {
        let (mut pos, mut vel) = (Fp::from_int(-2), Fp::from_int(-3));
        bounce(&mut pos, &mut vel, Fp::from_int(10));
        assert_eq!((pos, vel), (Fp::from_int(2), Fp::from_int(3)));
        let (mut pos, mut vel) = (Fp::from_int(12), Fp::from_int(3));
        bounce(&mut pos, &mut vel, Fp::from_int(10));
        assert_eq!((pos, vel), (Fp::from_int(8), Fp::from_int(-3)));
        let (mut pos, mut vel) = (Fp::from_int(100), Fp::from_int(3));
        bounce(&mut pos, &mut vel, Fp::from_int(10));
        assert_eq!(pos, Fp::ZERO, "far outside is clamped inside");
    }
}
