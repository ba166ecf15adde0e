//! What the page draws: every ship, unit and shot as a few numbers.

use tickstep_arena::{ArenaGlobals, Body, Projectile, Ship, Unit};
use tickstep_engine::{Entity, Fp, Frame};

/// Numbers per entity in [`crate::WebClient::view`]: index, generation, kind, x, y,
/// player.
pub const VIEW_STRIDE: usize = 6;

/// What an entity is, as the page colours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EntityKind {
    /// An autonomous unit.
    Unit = 1,
    /// A player's ship, up.
    Ship = 2,
    /// A player's ship, down until it respawns.
    DownedShip = 3,
    /// A unit's shot (it hits ships).
    UnitShot = 4,
    /// A ship's shot (it hits units).
    ShipShot = 5,
}

/// A position in 256ths of a unit.
fn coordinate(value: Fp) -> i32 {
    (value.to_bits() >> 8).clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

/// Every entity with a body, [`VIEW_STRIDE`] numbers each, in entity order.
pub fn view(frame: &Frame<ArenaGlobals>) -> Vec<i32> {
    let world = frame.world();
    let mut out = Vec::with_capacity(world.len() as usize * VIEW_STRIDE);
    let mut push = |entity: Entity, kind: EntityKind, body: &Body, player: i32| {
        out.extend_from_slice(&[
            entity.index() as i32,
            entity.generation() as i32,
            kind as i32,
            coordinate(body.pos.x),
            coordinate(body.pos.y),
            player,
        ]);
    };
    if let Ok(units) = world.query::<(&Unit, &Body)>() {
        for (entity, (_, body)) in units {
            push(entity, EntityKind::Unit, body, -1);
        }
    }
    if let Ok(shots) = world.query::<(&Projectile, &Body)>() {
        for (entity, (shot, body)) in shots {
            let kind = match shot.shooter {
                0 => EntityKind::UnitShot,
                _ => EntityKind::ShipShot,
            };
            push(entity, kind, body, -1);
        }
    }
    if let Ok(ships) = world.query::<(&Ship, &Body)>() {
        for (entity, (ship, body)) in ships {
            let kind = match ship.hp > 0 {
                true => EntityKind::Ship,
                false => EntityKind::DownedShip,
            };
            push(entity, kind, body, ship.player as i32);
        }
    }
    out
}
