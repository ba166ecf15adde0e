//! tickstep-arena: tickstep's sample game, used by the CLI, the tests, the benches and the
//! fuzzers.
//!
//! Each player steers a ship that shoots, and now and then sends a nova command (a ring
//! of shots); `units` autonomous units wander, keep apart
//! from their neighbours through a fixed-point spatial grid, chase the nearest ship and
//! shoot at it. Projectiles spawn and despawn, units die and respawn at places drawn
//! from the frame's RNG, ships go down and come back. The entity count scales from a
//! handful to 100k+, with the arena's area growing to keep the density constant.
//!
//! Systems run in this order each tick: [`ShipControl`], then the [`Crowd`]: the units'
//! AI (each unit moves as it steers), the other bodies' movement ([`move_the_rest`])
//! and combat over one grid of the units.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bot;
mod combat;
mod components;
mod crowd;
mod fields;
mod grid;
mod movement;
mod recording;
pub mod rules;
mod run;
pub mod serde_snapshot;
mod ships;
mod units;

use std::sync::{Arc, OnceLock};
use tickstep_engine::{
    Entity, Fp, Frame, FrameError, Rng, Schema, Simulation, Vec2, World, WorldError, mix64,
};

pub use bot::{bot_command, bot_input, fill_bot_inputs};
pub use components::{
    ArenaCommand, ArenaGlobals, ArenaInput, Body, MAX_ARENA_PLAYERS, Projectile, Ship, Unit,
};
pub use crowd::Crowd;
pub use grid::{GridEntry, SpatialGrid};
pub use movement::{move_body, move_the_rest};
pub use recording::{DEFAULT_TICK_RATE, RecordError, RecordOptions, record};
pub use run::ArenaRun;
pub use ships::ShipControl;

/// The arena's data version: bump when a component's meaning changes.
pub const SCHEMA_VERSION: u32 = 1;

/// What an arena game is made of. Replays store it as JSON in their header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArenaConfig {
    /// Autonomous units (the bulk of the entities).
    pub units: u32,
    /// Players, one ship each, `1..=MAX_ARENA_PLAYERS`.
    pub players: u8,
    /// Seeds the frame's RNG (and, by convention, the bots' input).
    pub seed: u64,
}

/// Why an arena could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// Player count outside `1..=MAX_ARENA_PLAYERS`.
    #[error("an arena has 1 to {MAX_ARENA_PLAYERS} players, not {0}")]
    Players(u8),
    /// The frame could not be created.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// An entity could not be created.
    #[error(transparent)]
    World(#[from] WorldError),
    /// A step was refused (input for the wrong tick: a bug).
    #[error("step refused: {0}")]
    Step(String),
}

/// The arena's schema (built once, shared by every frame).
pub fn schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| {
        Schema::builder::<ArenaGlobals>("tickstep-arena", SCHEMA_VERSION)
            .globals_fields(&fields::GLOBALS)
            .component_with_fields::<Body>("body", &fields::BODY)
            .component_with_fields::<Unit>("unit", &fields::UNIT)
            .component_with_fields::<Ship>("ship", &fields::SHIP)
            .component_with_fields::<Projectile>("projectile", &fields::PROJECTILE)
            .build()
            .expect("the arena schema is valid")
    }))
}

/// The arena's systems in their fixed order.
pub fn simulation() -> Simulation<ArenaGlobals, ArenaInput> {
    Simulation::new()
        .with_system(ShipControl::default())
        .with_system(Crowd::default())
}

/// The arena as one value: what the session, the sync test and the offline run take.
impl tickstep_engine::Game for ArenaConfig {
    type Globals = ArenaGlobals;
    type Input = ArenaInput;
    type Error = ArenaError;

    fn schema(&self) -> Arc<Schema> {
        schema()
    }

    fn initial_frame(&self) -> Result<Frame<ArenaGlobals>, ArenaError> {
        new_frame(self)
    }

    fn simulation(&self) -> Simulation<ArenaGlobals, ArenaInput> {
        simulation()
    }
}

/// Entity capacity of an arena: every unit and ship, with as much room again for shots.
pub fn capacity(config: &ArenaConfig) -> u32 {
    config
        .units
        .saturating_mul(2)
        .saturating_add(64 * config.players as u32 + 256)
}

/// Empties a system's scratch buffer and makes room for `bound` items: the frame's
/// entity slots, which bound every per-entity list a system gathers. Slots only grow when
/// the game reaches a new peak, so once warm a tick never reallocates. (Not the capacity:
/// a snapshot could claim a huge one and make every tick reserve gigabytes.)
pub(crate) fn clear_scratch<T>(buffer: &mut Vec<T>, bound: usize) {
    buffer.clear();
    buffer.reserve(bound);
}

/// A uniformly random point inside an arena of `size`.
pub(crate) fn random_position(rng: &mut Rng, size: Vec2) -> Vec2 {
    Vec2::new(rng.range(Fp::ZERO, size.x), rng.range(Fp::ZERO, size.y))
}

/// Spawns a fresh unit at a random place with a random heading.
pub(crate) fn spawn_unit(
    world: &mut World,
    rng: &mut Rng,
    size: Vec2,
) -> Result<Entity, WorldError> {
    let body = Body {
        pos: random_position(rng, size),
        vel: Vec2::ZERO,
    };
    let unit = Unit {
        heading: rng.range(Fp::ZERO, Fp::TAU),
        hp: rules::UNIT_HP,
        cooldown: rng.below(rules::UNIT_FIRE_COOLDOWN as u32) as i32,
    };
    world.spawn_with((body, unit))
}

/// The arena at tick 0: one ship per player and `units` units, placed by the seeded RNG.
pub fn new_frame(config: &ArenaConfig) -> Result<Frame<ArenaGlobals>, ArenaError> {
    if config.players == 0 || config.players as usize > MAX_ARENA_PLAYERS {
        return Err(ArenaError::Players(config.players));
    }
    let side = ((config.units as u64).isqrt() as i64 * rules::SPACING).max(rules::MIN_SIDE);
    let globals = ArenaGlobals {
        rng: Rng::new(mix64(config.seed)),
        size: Vec2::from_ints(side, side),
        players: config.players as u32,
        units: config.units,
        ..ArenaGlobals::default()
    };
    let mut frame = Frame::new(schema(), capacity(config), globals)?;
    let (globals, world) = frame.split_mut();
    for player in 0..config.players as u32 {
        let body = Body {
            pos: random_position(&mut globals.rng, globals.size),
            vel: Vec2::ZERO,
        };
        let ship = Ship {
            player,
            hp: rules::SHIP_HP,
            ..Ship::default()
        };
        world.spawn_with((body, ship))?;
    }
    for _ in 0..config.units {
        spawn_unit(world, &mut globals.rng, globals.size)?;
    }
    Ok(frame)
}
