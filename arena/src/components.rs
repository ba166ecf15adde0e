//! The arena's components, globals and per-player input: all `Pod`, all fixed-point.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use tickstep_engine::{Entity, Fp, Rng, Vec2};

/// Most players an arena holds (per-player counters live in fixed arrays in the globals).
pub const MAX_ARENA_PLAYERS: usize = 16;

/// Position and velocity: every moving thing has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Body {
    /// Position in arena units; `0..size` on each axis.
    pub pos: Vec2,
    /// Displacement per tick.
    pub vel: Vec2,
}

/// An autonomous unit: wanders, flocks apart from its neighbours, chases and shoots ships.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Unit {
    /// Wander direction in radians.
    pub heading: Fp,
    /// Hit points; the unit dies at 0.
    pub hp: i32,
    /// Ticks until it may fire again.
    pub cooldown: i32,
}

/// A player's ship, steered by that player's input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Ship {
    /// The owning player's slot.
    pub player: u32,
    /// Hit points; at 0 the ship is down until `respawn_in` runs out.
    pub hp: i32,
    /// Ticks until it may fire again.
    pub cooldown: i32,
    /// Ticks until a downed ship comes back (0 while it is up).
    pub respawn_in: i32,
}

/// A shot in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct Projectile {
    /// Who fired it (a ship or a unit; may have died since).
    pub owner: Entity,
    /// Player slot + 1 for a ship's shot (it hits units), 0 for a unit's (it hits ships).
    pub shooter: u32,
    /// Ticks left before it fizzles.
    pub ttl: i32,
}

/// State of the arena as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[repr(C)]
pub struct ArenaGlobals {
    /// The game's random numbers: respawn places, wandering, fire timing.
    pub rng: Rng,
    /// Width and height of the arena.
    pub size: Vec2,
    /// Units destroyed, per player.
    pub kills: [u32; MAX_ARENA_PLAYERS],
    /// Times each player's ship went down.
    pub deaths: [u32; MAX_ARENA_PLAYERS],
    /// Player count.
    pub players: u32,
    /// Unit count (kept constant: every dead unit respawns).
    pub units: u32,
    /// Projectiles fired so far.
    pub shots: u64,
}

/// A player's discrete action, sent as a command: reliable, it lands on one tick for
/// every peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct ArenaCommand {
    /// What to do: [`ArenaCommand::NOVA`].
    pub kind: u8,
}

impl ArenaCommand {
    /// The ship fires a ring of shots all around it, whatever its cooldown.
    pub const NOVA: ArenaCommand = ArenaCommand { kind: 1 };
}

/// One player's input for one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
#[repr(C)]
pub struct ArenaInput {
    /// Thrust, -127..=127 on each axis.
    pub move_x: i8,
    /// Thrust, -127..=127 on each axis.
    pub move_y: i8,
    /// Aim direction in 256ths of a turn.
    pub aim: u8,
    /// Non-zero to fire.
    pub fire: u8,
}
