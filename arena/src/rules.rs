//! The arena's tuning constants, in one place.

use tickstep_engine::Fp;

/// Arena units of side per `sqrt(unit)`: keeps unit density constant as the count grows.
pub const SPACING: i64 = 8;
/// Smallest arena side.
pub const MIN_SIDE: i64 = 64;
/// Grid cells are `2^CELL_LOG2` units wide.
pub const CELL_LOG2: u32 = 3;

/// Unit cruising speed per tick.
pub const UNIT_SPEED: Fp = Fp::from_ratio(1, 2);
/// Unit top speed per tick: how far a unit inside the arena moves at most in one tick
/// (one outside it, which only a crafted snapshot holds, is put back inside at once).
pub const UNIT_MAX_SPEED: Fp = UNIT_SPEED.mul_int(2);
/// Units flock apart within this distance.
pub const SEPARATION_RADIUS: Fp = Fp::from_int(4);
/// `SEPARATION_RADIUS²`, for comparing squared distances.
pub const SEPARATION_RADIUS_SQ: Fp =
    Fp::from_bits((SEPARATION_RADIUS.to_bits() * SEPARATION_RADIUS.to_bits()) >> Fp::FRAC_BITS);
/// `1 / SEPARATION_RADIUS²`: multiplying by it replaces a 128-bit division per neighbour.
pub const INVERSE_SEPARATION_RADIUS_SQ: Fp =
    Fp::from_ratio(1 << Fp::FRAC_BITS, SEPARATION_RADIUS_SQ.to_bits());
/// Half a grid cell: neighbour searches find everything within this.
const HALF_CELL: Fp = Fp::from_int(1 << (CELL_LOG2 - 1));
const _: () = assert!(SEPARATION_RADIUS.to_bits() <= HALF_CELL.to_bits());
// Combat searches the grid built before units moved, so it reaches a step further (and
// a little more: a clamped velocity can exceed its limit by a few 1/65536ths).
const _: () = assert!(
    HIT_RADIUS.to_bits() + UNIT_MAX_SPEED.to_bits() + Fp::from_ratio(1, 256).to_bits()
        <= HALF_CELL.to_bits()
);
/// Units examine at most this many grid neighbours per tick (bounds the cost in crowds).
pub const MAX_NEIGHBOURS: usize = 24;
/// Units chase ships within this distance.
pub const AGGRO_RANGE: Fp = Fp::from_int(48);
/// Units fire at ships within this distance.
pub const UNIT_FIRE_RANGE: Fp = Fp::from_int(24);
/// Base ticks between a unit's shots (plus up to `UNIT_FIRE_JITTER` more).
pub const UNIT_FIRE_COOLDOWN: i32 = 90;
/// Random extra ticks between a unit's shots.
pub const UNIT_FIRE_JITTER: u32 = 30;
/// A unit's hit points.
pub const UNIT_HP: i32 = 3;

/// Ship acceleration at full thrust, per tick.
pub const SHIP_ACCEL: Fp = Fp::from_ratio(1, 5);
/// Ship top speed per tick.
pub const SHIP_MAX_SPEED: Fp = Fp::from_ratio(3, 2);
/// Velocity kept per tick (drag).
pub const SHIP_DRAG: Fp = Fp::from_ratio(63, 64);
/// Ticks between a ship's shots.
pub const SHIP_FIRE_COOLDOWN: i32 = 6;
/// A ship's hit points.
pub const SHIP_HP: i32 = 20;
/// Ticks a downed ship waits before it respawns.
pub const SHIP_RESPAWN_TICKS: i32 = 120;

/// Projectile speed per tick.
pub const PROJECTILE_SPEED: Fp = Fp::from_int(3);
/// Shots in a nova ring.
pub const NOVA_SHOTS: i64 = 12;
/// Projectile lifetime in ticks.
pub const PROJECTILE_TTL: i32 = 60;
/// A projectile hits within this distance.
pub const HIT_RADIUS: Fp = Fp::from_int(2);
