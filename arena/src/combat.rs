//! Combat: projectiles are fired, fizzle out, hit units and ships; units die and respawn,
//! ships go down for a while.

use std::ops::ControlFlow;
use tickstep_engine::{Entity, Frame, System, SystemResult, TickInputs, Vec2, World};

use super::grid::{GridEntry, SpatialGrid};
use super::rules::*;
use super::{ArenaGlobals, ArenaInput, Body, Projectile, Ship, Unit, clear_scratch, spawn_unit};

/// A projectile to create: gathered while a query runs, spawned after it.
#[derive(Clone, Copy, Debug)]
pub struct Shot {
    /// Where it starts.
    pub pos: Vec2,
    /// Its velocity.
    pub vel: Vec2,
    /// Who fired it.
    pub owner: Entity,
    /// Player slot + 1 for a ship, 0 for a unit.
    pub shooter: u32,
}

/// Spawns `shots` in order. A shot that finds the frame full is dropped (the same way on
/// every peer).
pub fn fire(frame: &mut Frame<ArenaGlobals>, shots: &[Shot]) {
    let (globals, world) = frame.split_mut();
    for shot in shots {
        let body = Body {
            pos: shot.pos,
            vel: shot.vel,
        };
        let projectile = Projectile {
            owner: shot.owner,
            shooter: shot.shooter,
            ttl: PROJECTILE_TTL,
        };
        if world.spawn_with((body, projectile)).is_ok() {
            globals.shots = globals.shots.wrapping_add(1);
        }
    }
}

/// A projectile that struck something this tick.
#[derive(Clone, Copy, Debug)]
struct Hit {
    projectile: Entity,
    target: Entity,
    shooter: u32,
}

/// Ages projectiles and resolves their hits.
pub struct Combat {
    units: SpatialGrid,
    ships: Vec<GridEntry>,
    expired: Vec<Entity>,
    hits: Vec<Hit>,
}

impl Default for Combat {
    fn default() -> Self {
        Combat {
            units: SpatialGrid::new(CELL_LOG2),
            ships: Vec::new(),
            expired: Vec::new(),
            hits: Vec::new(),
        }
    }
}

fn within_hit_radius(a: Vec2, b: Vec2) -> bool {
    (a - b).length_squared() <= HIT_RADIUS * HIT_RADIUS
}

impl Combat {
    /// What the projectile at `pos` fired by `shooter` strikes, if anything.
    fn target_at(&self, pos: Vec2, shooter: u32) -> Option<Entity> {
        if shooter == 0 {
            return self
                .ships
                .iter()
                .find(|ship| within_hit_radius(ship.pos, pos))
                .map(|ship| ship.entity);
        }
        let mut struck = None;
        self.units.for_each_near(pos, |unit| {
            if within_hit_radius(unit.pos, pos) {
                struck = Some(unit.entity);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        struck
    }

    fn gather(&mut self, globals: &ArenaGlobals, world: &mut World) -> SystemResult {
        clear_scratch(&mut self.expired, world.slots());
        clear_scratch(&mut self.hits, world.slots());
        self.units.rebuild_with_units(world, globals.size)?;
        clear_scratch(&mut self.ships, world.slots());
        let ships = world
            .query::<(&Ship, &Body)>()?
            .filter(|(_, (s, _))| s.hp > 0);
        self.ships
            .extend(ships.map(|(entity, (_, body))| GridEntry {
                entity,
                pos: body.pos,
            }));
        for (projectile, (shot, body)) in world.query_mut::<(&mut Projectile, &Body)>()? {
            shot.ttl = shot.ttl.saturating_sub(1);
            if shot.ttl <= 0 {
                self.expired.push(projectile);
            } else if let Some(target) = self.target_at(body.pos, shot.shooter) {
                let shooter = shot.shooter;
                self.hits.push(Hit {
                    projectile,
                    target,
                    shooter,
                });
            }
        }
        Ok(())
    }
}

impl System<ArenaGlobals, ArenaInput> for Combat {
    fn run(&mut self, frame: &mut Frame<ArenaGlobals>, _: &TickInputs<ArenaInput>) -> SystemResult {
        let (globals, world) = frame.split_mut();
        self.gather(globals, world)?;
        for &projectile in &self.expired {
            let _ = world.despawn(projectile);
        }
        for hit in &self.hits {
            let _ = world.despawn(hit.projectile);
            if let Ok(unit) = world.get_mut::<Unit>(hit.target) {
                unit.hp = unit.hp.saturating_sub(1);
                if unit.hp == 0 {
                    let player = (hit.shooter as usize).wrapping_sub(1);
                    if let Some(kills) = globals.kills.get_mut(player) {
                        *kills = kills.wrapping_add(1);
                    }
                    let _ = world.despawn(hit.target);
                    let _ = spawn_unit(world, &mut globals.rng, globals.size);
                }
            } else if let Ok(ship) = world.get_mut::<Ship>(hit.target)
                && ship.hp > 0
            {
                ship.hp = ship.hp.saturating_sub(1);
                if ship.hp == 0 {
                    ship.respawn_in = SHIP_RESPAWN_TICKS;
                    if let Some(deaths) = globals.deaths.get_mut(ship.player as usize) {
                        *deaths = deaths.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}
