//! Combat: projectiles are fired, fizzle out, hit units and ships; units die and respawn,
//! ships go down for a while.

use std::ops::ControlFlow;
use tickstep_engine::{Entity, Frame, SystemResult, Vec2, World};

use super::grid::{GridEntry, SpatialGrid};
use super::rules::*;
use super::{ArenaGlobals, Body, Projectile, Ship, Unit, clear_scratch, spawn_unit};

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

/// A projectile still flying once aged: where it is and who fired it.
#[derive(Clone, Copy, Debug)]
struct Flying {
    projectile: Entity,
    pos: Vec2,
    shooter: u32,
}

/// Ages projectiles and resolves their hits.
#[derive(Default)]
pub(crate) struct Combat {
    ships: Vec<GridEntry>,
    expired: Vec<Entity>,
    flying: Vec<Flying>,
    hits: Vec<Hit>,
}

fn within_hit_radius(a: Vec2, b: Vec2) -> bool {
    (a - b).length_squared() <= HIT_RADIUS * HIT_RADIUS
}

impl Combat {
    /// What the projectile at `pos` fired by `shooter` strikes, if anything. `units` is
    /// the grid of units from before they moved this tick: each moved at most
    /// `UNIT_MAX_SPEED` (if it was inside the arena), so a search that finds everything
    /// within half a cell finds every unit now within the hit radius, and where it is
    /// now decides.
    fn target_at(
        &self,
        world: &World,
        units: &SpatialGrid,
        pos: Vec2,
        shooter: u32,
    ) -> Option<Entity> {
        if shooter == 0 {
            return self
                .ships
                .iter()
                .find(|ship| within_hit_radius(ship.pos, pos))
                .map(|ship| ship.entity);
        }
        let mut struck = None;
        units.for_each_near(pos, |unit| {
            let now = world.get::<Body>(unit.entity).map(|body| body.pos);
            if now.is_ok_and(|now| within_hit_radius(now, pos)) {
                struck = Some(unit.entity);
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        struck
    }

    fn gather(&mut self, world: &mut World, units: &SpatialGrid) -> SystemResult {
        clear_scratch(&mut self.expired, world.slots());
        clear_scratch(&mut self.flying, world.slots());
        clear_scratch(&mut self.hits, world.slots());
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
            } else {
                self.flying.push(Flying {
                    projectile,
                    pos: body.pos,
                    shooter: shot.shooter,
                });
            }
        }
        // Targets are found once the ageing is done: they are read from the world.
        let flying = std::mem::take(&mut self.flying);
        for shot in &flying {
            if let Some(target) = self.target_at(world, units, shot.pos, shot.shooter) {
                self.hits.push(Hit {
                    projectile: shot.projectile,
                    target,
                    shooter: shot.shooter,
                });
            }
        }
        self.flying = flying;
        Ok(())
    }

    /// Ages projectiles and resolves their hits, finding units through `units` (see
    /// `target_at`).
    pub(crate) fn run(
        &mut self,
        frame: &mut Frame<ArenaGlobals>,
        units: &SpatialGrid,
    ) -> SystemResult {
        let (globals, world) = frame.split_mut();
        self.gather(world, units)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tickstep_engine::Fp;

    /// A ship's shot at `shot` (in tenths) with `ttl` ticks to live and a unit now at
    /// `now` whose grid entry, from before it moved, is at `then`: after combat, the
    /// unit's hit points and the shot's ttl if it is still flying.
    fn strike(shot: (i64, i64), ttl: i32, then: (i64, i64), now: (i64, i64)) -> (i32, Option<i32>) {
        let at = |(x, y): (i64, i64)| Vec2::new(Fp::from_ratio(x, 10), Fp::from_ratio(y, 10));
        let globals = ArenaGlobals {
            size: Vec2::from_ints(64, 64),
            ..ArenaGlobals::default()
        };
        let mut frame = Frame::new(crate::schema(), 16, globals).unwrap();
        let world = frame.world_mut();
        let body = Body {
            pos: at(now),
            vel: Vec2::ZERO,
        };
        let unit = Unit {
            hp: UNIT_HP,
            ..Unit::default()
        };
        let target = world.spawn_with((body, unit)).unwrap();
        let body = Body {
            pos: at(shot),
            vel: Vec2::ZERO,
        };
        let projectile = Projectile {
            owner: Entity::NONE,
            shooter: 1,
            ttl,
        };
        let flying = world.spawn_with((body, projectile)).unwrap();
        let mut units = SpatialGrid::new(CELL_LOG2);
        let entry = GridEntry {
            entity: target,
            pos: at(then),
        };
        units.rebuild(Vec2::from_ints(64, 64), 1, [entry].into_iter());
        Combat::default().run(&mut frame, &units).unwrap();
        let world = frame.world();
        (
            world.get::<Unit>(target).unwrap().hp,
            world.get::<Projectile>(flying).ok().map(|shot| shot.ttl),
        )
    }

    #[test]
    fn where_a_unit_is_after_moving_decides_a_hit_not_its_place_in_the_grid() {
        // Out of reach in the grid (2.8 away), within it now (1.9): struck.
        assert_eq!(
            strike((119, 100), 10, (91, 100), (100, 100)),
            (UNIT_HP - 1, None)
        );
        // Within reach in the grid (0.1 away), out of it now (2.6): missed.
        assert_eq!(
            strike((119, 100), 10, (120, 100), (145, 100)),
            (UNIT_HP, Some(9))
        );
        // Across a cell border (the shot's cell is not the grid entry's): struck.
        assert_eq!(
            strike((81, 81), 10, (75, 79), (80, 80)),
            (UNIT_HP - 1, None)
        );
    }

    #[test]
    fn a_shot_strikes_until_its_last_tick_and_then_fizzles() {
        let (shot, unit) = ((100, 100), (110, 100));
        assert_eq!(
            strike(shot, 2, unit, unit),
            (UNIT_HP - 1, None),
            "one tick left"
        );
        assert_eq!(
            strike(shot, 1, unit, unit),
            (UNIT_HP, None),
            "none left: fizzles"
        );
        assert_eq!(strike(shot, 0, unit, unit), (UNIT_HP, None));
        assert_eq!(strike(shot, i32::MIN, unit, unit), (UNIT_HP, None));
        let far = (300, 300);
        assert_eq!(strike(shot, 2, far, far), (UNIT_HP, Some(1)), "aged by one");
    }

    #[test]
    fn a_projectile_without_a_body_is_left_alone() {
        let mut frame = Frame::new(crate::schema(), 4, ArenaGlobals::default()).unwrap();
        let projectile = Projectile {
            owner: Entity::NONE,
            shooter: 1,
            ttl: 1,
        };
        let shot = frame.world_mut().spawn_with((projectile,)).unwrap();
        Combat::default()
            .run(&mut frame, &SpatialGrid::new(CELL_LOG2))
            .unwrap();
        assert_eq!(frame.world().get::<Projectile>(shot).unwrap().ttl, 1);
    }
}
