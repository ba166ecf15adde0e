//! `ArenaRun`: an arena frame stepped offline with bot input.

use tickstep_engine::{Frame, StepError, Tick, TickInputs};

use super::{
    ArenaConfig, ArenaError, ArenaGlobals, ArenaInput, fill_bot_inputs, new_frame, simulation,
};
use tickstep_engine::Simulation;

/// A frame, the arena's systems and a reused input buffer: steps the game with every
/// player's bot input, the way `tickstep run` does.
pub struct ArenaRun {
    /// The current state.
    pub frame: Frame<ArenaGlobals>,
    simulation: Simulation<ArenaGlobals, ArenaInput>,
    inputs: TickInputs<ArenaInput>,
    seed: u64,
}

impl ArenaRun {
    /// A new game at tick 0.
    pub fn new(config: &ArenaConfig) -> Result<ArenaRun, ArenaError> {
        Ok(ArenaRun::from_frame(new_frame(config)?, config.seed))
    }

    /// Continues the game in `frame` (e.g. restored from a snapshot) with the bots of `seed`.
    pub fn from_frame(frame: Frame<ArenaGlobals>, seed: u64) -> ArenaRun {
        let players = (frame.globals().players as usize).min(super::MAX_ARENA_PLAYERS);
        ArenaRun {
            frame,
            simulation: simulation(),
            // Cannot fail: at most MAX_ARENA_PLAYERS (16) < MAX_PLAYERS (64).
            inputs: TickInputs::new(players).unwrap_or_else(|_| unreachable!()),
            seed,
        }
    }

    /// The input of the last tick stepped (bot input for every player).
    pub fn inputs(&self) -> &TickInputs<ArenaInput> {
        &self.inputs
    }

    /// Advances one tick with bot input.
    pub fn step(&mut self) -> Result<(), StepError> {
        fill_bot_inputs(self.seed, self.frame.tick() + 1, &mut self.inputs);
        self.simulation.step(&mut self.frame, &self.inputs)
    }

    /// Steps until the frame reaches `tick`, calling `progress` after each tick.
    pub fn run_to(&mut self, tick: Tick, mut progress: impl FnMut(Tick)) -> Result<(), StepError> {
        while self.frame.tick() < tick {
            self.step()?;
            progress(self.frame.tick());
        }
        Ok(())
    }
}
