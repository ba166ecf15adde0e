//! The smallest game that embeds tickstep: one component, one system, one input type.
//!
//! Run it with `cargo run --example minimal` (`cargo test` runs it too).

use bytemuck::{Pod, Zeroable};
use tickstep_engine::{
    Fp, Frame, PlayerId, Schema, Simulation, SystemResult, TickInputs, Vec2, checksum,
};

/// Where a player's marble is and how fast it rolls.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Marble {
    pos: Vec2,
    vel: Vec2,
}

/// A player's input for one tick: which way to push.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Push {
    x: i8,
    y: i8,
}

/// The one system: present players push their marble, then every marble rolls.
fn roll(frame: &mut Frame<u64>, inputs: &TickInputs<Push>) -> SystemResult {
    for (entity, marble) in frame.world_mut().query_mut::<&mut Marble>()? {
        if let Some(push) = inputs.get(PlayerId(entity.index() as u8)) {
            marble.vel += Vec2::from_ints(push.x.into(), push.y.into()) * Fp::from_ratio(1, 10);
        }
        marble.pos += marble.vel;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Globals are a plain u64 here; a real game keeps its Rng and scores there.
    let schema = Schema::builder::<u64>("marbles", 1)
        .component::<Marble>("marble")
        .build()?;
    let mut frame = Frame::new(schema, 8, 0u64)?;
    for _ in 0..2 {
        let still = Marble {
            pos: Vec2::ZERO,
            vel: Vec2::ZERO,
        };
        frame.world_mut().spawn_with((still,))?;
    }
    let mut simulation = Simulation::new().with_system(roll);
    let mut inputs = TickInputs::new(2)?;
    for tick in 1..=60 {
        inputs.reset(tick);
        inputs.set(PlayerId(0), Push { x: 1, y: 0 })?;
        inputs.set(PlayerId(1), Push { x: 0, y: -1 })?;
        simulation.step(&mut frame, &inputs)?;
    }
    // Every peer that applied the same input prints the same line.
    println!("tick {} checksum {}", frame.tick(), checksum(&frame));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs_to_its_end() {
        super::main().unwrap();
    }
}
