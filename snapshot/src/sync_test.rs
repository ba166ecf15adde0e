//! `SyncTest`: plays a game while checking, every tick, that the state is all there is.
//!
//! Lockstep needs each tick to be a pure function of the frame and the input. A system
//! that keeps game state in its own fields, iterates a randomly seeded `HashMap`, or
//! reads anything outside the frame breaks that silently: peers agree until one of them
//! rejoins from a snapshot, then they desync. The sync test (GGRS's SyncTest session;
//! 0 A.D.'s `-rejointest`) finds it in development: after each tick of the real run it
//! restores the previous tick's snapshot into a second frame, steps it with freshly
//! built systems on the same input, and compares checksums. The first tick where they
//! differ is named, with the fields that differ.

use tickstep_engine::{
    Checksum, Frame, Game, GameSetupError, InputError, OfflineError, OfflineRun, PlayerId, Tick,
    TickInputs, checksum,
};

use crate::{FrameDiff, SnapshotError, diff, encode, restore};

/// Most field differences a divergence report lists.
const DIFF_LIMIT: usize = 16;

/// Why a sync test stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncTestError {
    /// The real run's step failed.
    #[error(transparent)]
    Step(#[from] OfflineError),
    /// The restored frame, stepped by fresh systems, differs from the real run: some
    /// state lives outside the frame, or a step is not a pure function of it.
    #[error(
        "tick {tick} diverged: the frame restored from tick {} and stepped by fresh systems \
         has checksum {restored}, the running game {running}; {}",
        tick - 1,
        describe(differences)
    )]
    Diverged {
        /// The first tick that differs.
        tick: Tick,
        /// The running game's checksum.
        running: Checksum,
        /// The restored frame's checksum.
        restored: Checksum,
        /// What differs: running game (A) against restored frame (B).
        differences: Box<FrameDiff>,
    },
    /// The restored frame's step failed where the running game's did not.
    #[error("tick {tick}: the restored frame's step failed: {error}")]
    RestoredStep {
        /// The tick.
        tick: Tick,
        /// The failure.
        error: tickstep_engine::StepError,
    },
    /// The game's own snapshot did not restore (a bug in tickstep).
    #[error("tick {tick}: the game's own snapshot did not restore: {error}")]
    Snapshot {
        /// The tick.
        tick: Tick,
        /// The failure.
        error: SnapshotError,
    },
}

fn describe(differences: &FrameDiff) -> String {
    let first: Vec<String> = differences
        .differences
        .iter()
        .take(3)
        .map(|d| {
            let place = [d.entity.as_deref(), d.component.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            format!("{place} {}: {} vs {}", d.field, d.a, d.b)
        })
        .collect();
    format!(
        "{} differences, first: {}",
        differences.total,
        first.join("; ")
    )
}

/// A game played offline with the sync test on: after each tick of the real run, the
/// previous tick's snapshot is restored into a second frame and stepped by freshly built
/// systems on the same input; the checksums must agree.
///
/// ```
/// # use tickstep_engine::{Frame, Game, PlayerId, Schema, Simulation, TickInputs};
/// # use std::sync::Arc;
/// struct Counter;
/// impl Game for Counter {
///     type Globals = u64;
///     type Input = u8;
///     type Error = tickstep_engine::FrameError;
///     fn schema(&self) -> Arc<Schema> {
///         Schema::builder::<u64>("counter", 1).build().expect("valid")
///     }
///     fn initial_frame(&self) -> Result<Frame<u64>, Self::Error> {
///         Frame::new(self.schema(), 4, 0)
///     }
///     fn simulation(&self) -> Simulation<u64, u8> {
///         // A hidden counter in the system: state the frame does not hold.
///         let mut calls = 0u64;
///         Simulation::new().with_system(move |f: &mut Frame<u64>, _: &TickInputs<u8>| {
///             calls += 1;
///             *f.globals_mut() = calls;
///         })
///     }
/// }
/// let mut test = tickstep_snapshot::SyncTest::new(Counter, 1)?;
/// let caught = test.run_to(10, |_, _| Some(0)).unwrap_err();
/// assert!(caught.to_string().starts_with("tick 2 diverged"), "{caught}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SyncTest<Ga: Game> {
    game: Ga,
    run: OfflineRun<Ga::Globals, Ga::Input>,
    /// The restored frame, stepped by fresh systems each tick.
    shadow: Frame<Ga::Globals>,
    inputs: TickInputs<Ga::Input>,
    /// The previous tick's snapshot.
    before: Vec<u8>,
    after: Vec<u8>,
}

impl<Ga: Game> SyncTest<Ga> {
    /// A sync test of `game` for `players` players from its tick-0 frame.
    pub fn new(game: Ga, players: u8) -> Result<SyncTest<Ga>, GameSetupError<Ga::Error>> {
        let run = OfflineRun::for_game(&game, players)?;
        Ok(SyncTest {
            shadow: run.frame().clone(),
            inputs: TickInputs::new(players.into())?,
            run,
            game,
            before: Vec::new(),
            after: Vec::new(),
        })
    }

    /// The running game's frame.
    pub fn frame(&self) -> &Frame<Ga::Globals> {
        self.run.frame()
    }

    /// Plays one tick (see [`OfflineRun::step`]) and checks it.
    pub fn step(
        &mut self,
        play: impl FnOnce(&Frame<Ga::Globals>, &mut TickInputs<Ga::Input>) -> Result<(), InputError>,
    ) -> Result<(), SyncTestError> {
        encode(self.run.frame(), &mut self.before);
        let tick = self.run.tick() + 1;
        let inputs = &mut self.inputs;
        self.run.step(|frame, tick_inputs| {
            play(frame, tick_inputs)?;
            inputs.clone_from(tick_inputs);
            Ok(())
        })?;
        restore(&self.before, &mut self.shadow)
            .map_err(|error| SyncTestError::Snapshot { tick, error })?;
        self.game
            .simulation()
            .step(&mut self.shadow, &self.inputs)
            .map_err(|error| SyncTestError::RestoredStep { tick, error })?;
        let (running, restored) = (checksum(self.run.frame()), checksum(&self.shadow));
        if running == restored {
            return Ok(());
        }
        encode(self.run.frame(), &mut self.before);
        encode(&self.shadow, &mut self.after);
        let schema = self.run.frame().schema();
        let differences = diff(&self.before, &self.after, schema, DIFF_LIMIT)
            .map_err(|error| SyncTestError::Snapshot { tick, error })?;
        Err(SyncTestError::Diverged {
            tick,
            running,
            restored,
            differences: Box::new(differences),
        })
    }

    /// Plays until tick `end` (see [`OfflineRun::run_to`]), checking every tick.
    pub fn run_to(
        &mut self,
        end: Tick,
        mut input: impl FnMut(PlayerId, &Frame<Ga::Globals>) -> Option<Ga::Input>,
    ) -> Result<(), SyncTestError> {
        while self.run.tick() < end {
            self.step(|frame, inputs| inputs.set_each(|player| input(player, frame)))?;
        }
        Ok(())
    }
}
