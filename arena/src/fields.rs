//! Field layouts of the arena's components and globals, so `tickstep snapshot diff`
//! names `body.pos.x` and prints `12.5` instead of a byte range.

use std::mem::offset_of;
use tickstep_engine::{Field, FieldKind, Vec2};

use super::{ArenaGlobals, Body, Projectile, Ship, Unit};

const X: usize = offset_of!(Vec2, x);
const Y: usize = offset_of!(Vec2, y);

/// `Body`: position and velocity.
pub static BODY: [Field; 4] = [
    Field::new("pos.x", offset_of!(Body, pos) + X, FieldKind::Fp),
    Field::new("pos.y", offset_of!(Body, pos) + Y, FieldKind::Fp),
    Field::new("vel.x", offset_of!(Body, vel) + X, FieldKind::Fp),
    Field::new("vel.y", offset_of!(Body, vel) + Y, FieldKind::Fp),
];

/// `Unit`.
pub static UNIT: [Field; 3] = [
    Field::new("heading", offset_of!(Unit, heading), FieldKind::Fp),
    Field::new("hp", offset_of!(Unit, hp), FieldKind::I32),
    Field::new("cooldown", offset_of!(Unit, cooldown), FieldKind::I32),
];

/// `Ship`.
pub static SHIP: [Field; 4] = [
    Field::new("player", offset_of!(Ship, player), FieldKind::U32),
    Field::new("hp", offset_of!(Ship, hp), FieldKind::I32),
    Field::new("cooldown", offset_of!(Ship, cooldown), FieldKind::I32),
    Field::new("respawn_in", offset_of!(Ship, respawn_in), FieldKind::I32),
];

/// `Projectile`.
pub static PROJECTILE: [Field; 3] = [
    Field::new("owner", offset_of!(Projectile, owner), FieldKind::Entity),
    Field::new("shooter", offset_of!(Projectile, shooter), FieldKind::U32),
    Field::new("ttl", offset_of!(Projectile, ttl), FieldKind::I32),
];

/// One `Field` per element of a per-player `u32` array of the globals.
macro_rules! per_player {
    ($array:ident: $($i:literal)*) => {[$(
        Field::new(
            concat!(stringify!($array), "[", stringify!($i), "]"),
            offset_of!(ArenaGlobals, $array) + 4 * $i,
            FieldKind::U32,
        ),
    )*]};
}

const KILLS: [Field; 16] = per_player!(kills: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
const DEATHS: [Field; 16] = per_player!(deaths: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// `ArenaGlobals`.
pub static GLOBALS: [Field; 38] = {
    let mut all = [Field::new("rng.state", offset_of!(ArenaGlobals, rng), FieldKind::U64); 38];
    all[1] = Field::new("size.x", offset_of!(ArenaGlobals, size) + X, FieldKind::Fp);
    all[2] = Field::new("size.y", offset_of!(ArenaGlobals, size) + Y, FieldKind::Fp);
    all[3] = Field::new("players", offset_of!(ArenaGlobals, players), FieldKind::U32);
    all[4] = Field::new("units", offset_of!(ArenaGlobals, units), FieldKind::U32);
    all[5] = Field::new("shots", offset_of!(ArenaGlobals, shots), FieldKind::U64);
    let mut i = 0;
    while i < 16 {
        all[6 + i] = KILLS[i];
        all[22 + i] = DEATHS[i];
        i += 1;
    }
    all
};
