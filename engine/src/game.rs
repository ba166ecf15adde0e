//! `Game`: one value that bundles a game's schema, tick-0 frame, systems and input type,
//! and `OfflineRun`, the loop that plays it without a network.
//!
//! The offline loop, the session (`RoomConfig::for_game`, `Client::for_game` in
//! `tickstep-session`), the sync test (`tickstep_snapshot::SyncTest`) and replays all
//! take a `Game`, so a game states what it is once.

use bytemuck::Pod;
use std::sync::Arc;

use crate::{
    Frame, FrameError, InputError, PlayerId, Schema, Simulation, StepError, Tick, TickInputs,
    WorldError,
};

/// What a player's input for one tick may be: plain bytes ([`Pod`], see
/// [`crate::pod`] for booleans and enums) that compare for equality (the session
/// checks what it sent against what the room verified). Every such type is an `Input`.
pub trait Input: Pod + PartialEq {}

impl<T: Pod + PartialEq> Input for T {}

/// A game: its globals and input types, its schema, its tick-0 frame and its systems.
///
/// Every peer builds the same tick-0 frame from the same value, and [`Game::simulation`]
/// builds a fresh set of systems each time it is called (a rejoining client, a replay
/// and a sync test each get their own).
pub trait Game {
    /// The frame's globals.
    type Globals: Pod;
    /// A player's input for one tick.
    type Input: Input;
    /// Why the tick-0 frame could not be built.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The game's schema (its name and version name the build; see [`Game::app_version`]).
    fn schema(&self) -> Arc<Schema>;

    /// The state at tick 0.
    fn initial_frame(&self) -> Result<Frame<Self::Globals>, Self::Error>;

    /// A fresh set of the game's systems, in order.
    fn simulation(&self) -> Simulation<Self::Globals, Self::Input>;

    /// Names this build of the game; peers and rooms with different ones refuse each
    /// other. Default: the schema's name and version, e.g. `"flags v1"`.
    fn app_version(&self) -> String {
        let schema = self.schema();
        format!("{} v{}", schema.game(), schema.version())
    }
}

/// Why an offline step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfflineError {
    /// Setting a player's input failed (e.g. a player out of range).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The step failed.
    #[error(transparent)]
    Step(#[from] StepError),
}

/// A game played without a network: a frame, the systems and each tick's input.
///
/// ```
/// # use bytemuck::{Pod, Zeroable};
/// # use tickstep_engine::{Frame, OfflineRun, PlayerId, Schema, Simulation, TickInputs};
/// # let schema = Schema::builder::<u64>("doc", 1).build()?;
/// let frame = Frame::new(schema, 4, 0u64)?;
/// let sum = Simulation::new().with_system(|f: &mut Frame<u64>, i: &TickInputs<u32>| {
///     *f.globals_mut() += i.iter().map(|(_, &v)| u64::from(v)).sum::<u64>();
/// });
/// let mut run = OfflineRun::new(frame, sum, 2)?;
/// for _ in 0..10 {
///     // Each tick, every player's input, chosen from what they see.
///     run.step(|frame, inputs| {
///         inputs.set(PlayerId(0), 1)?;
///         inputs.set(PlayerId(1), (frame.tick() % 2) as u32)
///     })?;
/// }
/// assert_eq!((run.frame().tick(), *run.frame().globals()), (10, 15));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OfflineRun<G, I> {
    frame: Frame<G>,
    simulation: Simulation<G, I>,
    inputs: TickInputs<I>,
}

impl<G: Pod, I: Input> OfflineRun<G, I> {
    /// A run of `players` players from `frame`, stepped by `simulation`.
    pub fn new(
        frame: Frame<G>,
        simulation: Simulation<G, I>,
        players: u8,
    ) -> Result<OfflineRun<G, I>, InputError> {
        Ok(OfflineRun {
            frame,
            simulation,
            inputs: TickInputs::new(players.into())?,
        })
    }

    /// A run of `game` from its tick-0 frame.
    pub fn for_game<Ga>(
        game: &Ga,
        players: u8,
    ) -> Result<OfflineRun<G, I>, GameSetupError<Ga::Error>>
    where
        Ga: Game<Globals = G, Input = I>,
    {
        let frame = game.initial_frame().map_err(GameSetupError::Game)?;
        Ok(OfflineRun::new(frame, game.simulation(), players)?)
    }

    /// The current frame.
    pub fn frame(&self) -> &Frame<G> {
        &self.frame
    }

    /// The current frame, mutably (e.g. to restore a snapshot into it).
    pub fn frame_mut(&mut self) -> &mut Frame<G> {
        &mut self.frame
    }

    /// The frame, giving up the run.
    pub fn into_frame(self) -> Frame<G> {
        self.frame
    }

    /// The input of the last tick stepped.
    pub fn inputs(&self) -> &TickInputs<I> {
        &self.inputs
    }

    /// The tick the run is at.
    pub fn tick(&self) -> Tick {
        self.frame.tick()
    }

    /// Plays one tick: `play` sets the input of the players present (seeing the frame
    /// as it stands), then every system runs.
    pub fn step(
        &mut self,
        play: impl FnOnce(&Frame<G>, &mut TickInputs<I>) -> Result<(), InputError>,
    ) -> Result<(), OfflineError> {
        self.inputs.reset(self.frame.tick() + 1);
        play(&self.frame, &mut self.inputs)?;
        self.simulation.step(&mut self.frame, &self.inputs)?;
        Ok(())
    }

    /// Plays until tick `end`, every present player's input from `input(player, frame)`
    /// (`None`: absent this tick). Runs in [`crate::parallel::keep_warm`]: with the
    /// `parallel` feature, inside a pool, the pool's other threads wait for chunks
    /// actively until it returns (for a loop that must not keep a core busy, call
    /// [`OfflineRun::step`] per tick).
    pub fn run_to(
        &mut self,
        end: Tick,
        mut input: impl FnMut(PlayerId, &Frame<G>) -> Option<I>,
    ) -> Result<(), OfflineError> {
        crate::parallel::keep_warm(|| {
            while self.frame.tick() < end {
                self.step(|frame, inputs| inputs.set_each(|player| input(player, frame)))?;
            }
            Ok(())
        })
    }
}

/// Why a tick-0 frame could not be built, for games that need no error type of their
/// own (`type Error = BuildError` in [`Game`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The frame could not be created.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An entity could not be created.
    #[error(transparent)]
    World(#[from] WorldError),
}

/// Why a game could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GameSetupError<E: std::error::Error + 'static> {
    /// The game could not build its tick-0 frame.
    #[error("the game's tick-0 frame: {0}")]
    Game(#[source] E),
    /// The player count is out of range.
    #[error(transparent)]
    Input(#[from] InputError),
}
