//! `ArenaRun`: the arena played offline with bot input, an [`OfflineRun`] whose every
//! player is a bot.

use tickstep_engine::parallel::keep_warm;
use tickstep_engine::{Frame, OfflineError, OfflineRun, Tick, TickInputs};

use super::{
    ArenaConfig, ArenaError, ArenaGlobals, ArenaInput, fill_bot_inputs, new_frame, simulation,
};

/// The arena's frame and systems stepped with every player's bot input, the way
/// `tickstep run` does.
pub struct ArenaRun {
    run: OfflineRun<ArenaGlobals, ArenaInput>,
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
        // Cannot fail: at most MAX_ARENA_PLAYERS (16) < MAX_PLAYERS (64).
        let run =
            OfflineRun::new(frame, simulation(), players as u8).unwrap_or_else(|_| unreachable!());
        ArenaRun { run, seed }
    }

    /// The current state.
    pub fn frame(&self) -> &Frame<ArenaGlobals> {
        self.run.frame()
    }

    /// The current state, mutably.
    pub fn frame_mut(&mut self) -> &mut Frame<ArenaGlobals> {
        self.run.frame_mut()
    }

    /// The frame, giving up the run.
    pub fn into_frame(self) -> Frame<ArenaGlobals> {
        self.run.into_frame()
    }

    /// The input of the last tick stepped (bot input for every player).
    pub fn inputs(&self) -> &TickInputs<ArenaInput> {
        self.run.inputs()
    }

    /// Advances one tick with bot input.
    pub fn step(&mut self) -> Result<(), OfflineError> {
        let seed = self.seed;
        self.run.step(|frame, inputs| {
            fill_bot_inputs(seed, frame.tick() + 1, inputs);
            Ok(())
        })
    }

    /// Steps until the frame reaches `tick`, calling `progress` after each tick, in
    /// [`tickstep_engine::parallel::keep_warm`] (a burst: the pool's other threads wait
    /// for chunks actively until it returns).
    pub fn run_to(
        &mut self,
        tick: Tick,
        mut progress: impl FnMut(Tick),
    ) -> Result<(), OfflineError> {
        keep_warm(|| {
            while self.run.tick() < tick {
                self.step()?;
                progress(self.run.tick());
            }
            Ok(())
        })
    }
}
