//! Units: wander, keep apart from neighbours (through the spatial grid), chase the
//! nearest ship in range and shoot at it.

use std::ops::ControlFlow;
use tickstep_engine::parallel::CHUNK_SLOTS;
use tickstep_engine::{Entity, Fp, Frame, Rng, System, SystemResult, TickInputs, Vec2};

use super::combat::{Shot, fire};
use super::grid::{GridEntry, SpatialGrid};
use super::rules::*;
use super::{ArenaGlobals, ArenaInput, Body, Ship, Unit, clear_scratch};

/// The unit AI's stream of forked random numbers (see `Rng::fork`).
const UNIT_AI_STREAM: u64 = 1;

/// Steers and fires every unit, in parallel chunks of units (see
/// [`tickstep_engine::parallel`]): each unit's random draws are forked from the frame's
/// RNG by tick and entity, and the shots of each chunk are fired in chunk order.
pub struct UnitAi {
    grid: SpatialGrid,
    ships: Vec<Vec2>,
    shots: Vec<Shot>,
    /// Each chunk's shots, merged in slot order.
    chunk_shots: Vec<Vec<Shot>>,
}

impl Default for UnitAi {
    fn default() -> Self {
        UnitAi {
            grid: SpatialGrid::new(CELL_LOG2),
            ships: Vec::new(),
            shots: Vec::new(),
            chunk_shots: Vec::new(),
        }
    }
}

/// The push away from neighbours closer than the separation radius: each contributes
/// its offset weighted by how deep inside the radius it is.
fn separation(grid: &SpatialGrid, me: &GridEntry) -> Vec2 {
    let mut push = Vec2::ZERO;
    let mut examined = 0;
    grid.for_each_near(me.pos, |other| {
        examined += 1;
        let offset = me.pos - other.pos;
        let dist_sq = offset.length_squared();
        if dist_sq < SEPARATION_RADIUS_SQ && other.entity != me.entity {
            let depth = SEPARATION_RADIUS_SQ - dist_sq;
            push += offset * (depth * INVERSE_SEPARATION_RADIUS_SQ);
        }
        if examined == MAX_NEIGHBOURS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    push
}

/// The nearest live ship and the squared distance to it.
fn nearest_ship(ships: &[Vec2], pos: Vec2) -> Option<(Vec2, Fp)> {
    ships
        .iter()
        .map(|&ship| (ship, (ship - pos).length_squared()))
        .min_by_key(|&(_, dist_sq)| dist_sq)
}

impl System<ArenaGlobals, ArenaInput> for UnitAi {
    fn run(&mut self, frame: &mut Frame<ArenaGlobals>, _: &TickInputs<ArenaInput>) -> SystemResult {
        let tick = frame.tick();
        let (globals, world) = frame.split_mut();
        clear_scratch(&mut self.ships, world.slots());
        let ships = world.query::<(&Ship, &Body)>()?;
        self.ships.extend(
            ships
                .filter(|(_, (s, _))| s.hp > 0)
                .map(|(_, (_, b))| b.pos),
        );
        self.grid.rebuild_with_units(world, globals.size)?;
        // One buffer per chunk, each with room for a shot per slot: never regrown.
        let chunks = world.slots().div_ceil(CHUNK_SLOTS);
        self.chunk_shots.resize_with(chunks, Vec::new);
        for shots in &mut self.chunk_shots {
            clear_scratch(shots, CHUNK_SLOTS);
        }
        let (grid, ships, rng) = (&self.grid, &self.ships, globals.rng);
        world.par_for_each_mut::<(&mut Unit, &mut Body), _>(
            &mut self.chunk_shots,
            |shots, entity, (unit, body)| {
                // This unit's own draws: the same whichever chunk or thread runs it.
                let mut rng = rng.fork(tick, entity, UNIT_AI_STREAM);
                steer(grid, ships, &mut rng, entity, unit, body, shots);
            },
        )?;
        clear_scratch(&mut self.shots, world.slots());
        for shots in &mut self.chunk_shots {
            self.shots.append(shots);
        }
        fire(frame, &self.shots);
        Ok(())
    }
}

/// One unit's tick: chase or wander, keep apart, and fire at a ship in range.
fn steer(
    grid: &SpatialGrid,
    ships: &[Vec2],
    rng: &mut Rng,
    entity: Entity,
    unit: &mut Unit,
    body: &mut Body,
    shots: &mut Vec<Shot>,
) {
    let wander = Fp::from_ratio(1, 4);
    let target = nearest_ship(ships, body.pos);
    let desired = match target {
        Some((ship, dist_sq)) if dist_sq <= AGGRO_RANGE * AGGRO_RANGE => {
            (ship - body.pos).normalize_or_zero() * UNIT_SPEED
        }
        _ => {
            unit.heading += rng.range(-wander, wander);
            Vec2::from_angle(unit.heading) * UNIT_SPEED.div_int(2)
        }
    };
    let me = GridEntry {
        entity,
        pos: body.pos,
    };
    let push = separation(grid, &me);
    let steer = (desired - body.vel) * Fp::from_ratio(1, 8) + push * Fp::from_ratio(1, 4);
    body.vel = (body.vel + steer).clamp_length(UNIT_SPEED.mul_int(2));

    unit.cooldown = unit.cooldown.saturating_sub(1).max(0);
    if let Some((ship, dist_sq)) = target
        && unit.cooldown == 0
        && dist_sq <= UNIT_FIRE_RANGE * UNIT_FIRE_RANGE
    {
        unit.cooldown = UNIT_FIRE_COOLDOWN + rng.below(UNIT_FIRE_JITTER) as i32;
        shots.push(Shot {
            pos: body.pos,
            vel: (ship - body.pos).normalize_or_zero() * PROJECTILE_SPEED,
            owner: entity,
            shooter: 0,
        });
    }
}
