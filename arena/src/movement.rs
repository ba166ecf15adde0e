//! Movement: every body moves by its velocity and bounces off the arena's walls.

use tickstep_engine::{Fp, Frame, SystemResult, TickInputs};

use super::{ArenaGlobals, ArenaInput, Body};

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

/// Moves every body one tick.
pub fn movement(frame: &mut Frame<ArenaGlobals>, _inputs: &TickInputs<ArenaInput>) -> SystemResult {
    let (globals, world) = frame.split_mut();
    let size = globals.size;
    // In parallel chunks; nothing to merge (a `Vec<()>` never allocates).
    world.par_for_each_mut::<(&mut Body,), ()>(&mut Vec::new(), |_, _, (body,)| {
        body.pos += body.vel;
        bounce(&mut body.pos.x, &mut body.vel.x, size.x);
        bounce(&mut body.pos.y, &mut body.vel.y, size.y);
    })?;
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
