//! A tiny game for the session's own tests, so `cargo test -p tickstep-session` needs
//! no sample game: every tick each present player's input is folded into a running
//! total in the globals and into one marker entity. Any lost, repeated or reordered
//! input changes the checksum.

use bytemuck::{Pod, Zeroable};
use tickstep_engine::{Frame, Schema, Simulation, TickInputs, WorldError};

/// The game's whole state that is not an entity: a running fold of every input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct Tally {
    pub total: u64,
}

/// One entity's component: how many ticks it has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct Age(pub u64);

/// A player's input.
pub(crate) type Input = u32;

/// The tick-0 frame; `seed` picks the game configuration.
pub(crate) fn frame(seed: u64) -> Frame<Tally> {
    let schema = Schema::builder::<Tally>("session-test-game", 1)
        .component::<Age>("age")
        .build()
        .expect("schema");
    let mut frame = Frame::new(schema, 4, Tally { total: seed }).expect("frame");
    frame.world_mut().spawn_with((Age(0),)).expect("spawn");
    frame
}

/// The one system: fold each present player's input, in slot order.
pub(crate) fn simulation() -> Simulation<Tally, Input> {
    Simulation::new().with_system(|frame: &mut Frame<Tally>, inputs: &TickInputs<Input>| {
        let tick = frame.tick();
        let mut total = frame.globals().total;
        for (player, &input) in inputs.iter() {
            total = total
                .rotate_left(7)
                .wrapping_add(u64::from(input) ^ (u64::from(player.0) << 40) ^ tick);
        }
        frame.globals_mut().total = total;
        for (_, age) in frame.world_mut().query_mut::<&mut Age>()? {
            age.0 += 1;
        }
        Ok::<(), WorldError>(())
    })
}
