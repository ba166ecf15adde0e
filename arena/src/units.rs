//! Units: wander, keep apart from neighbours (through the spatial grid), chase the
//! nearest ship in range and shoot at it.

use tickstep_engine::parallel::CHUNK_SLOTS;
use tickstep_engine::{Entity, Forks, Fp, Frame, Rng, SystemResult, Vec2};

use super::combat::{Shot, fire};
use super::grid::SpatialGrid;
use super::movement::move_body;
use super::rules::*;
use super::{ArenaGlobals, Body, Ship, Unit, clear_scratch};

/// The unit AI's stream of forked random numbers (see `Rng::fork`).
const UNIT_AI_STREAM: u64 = 1;

/// Steers, moves and fires every unit, in parallel chunks of units (see
/// [`tickstep_engine::parallel`]): each unit's random draws are forked from the frame's
/// RNG by tick and entity, and the shots of each chunk are fired in chunk order.
#[derive(Default)]
pub(crate) struct UnitAi {
    ships: Vec<Vec2>,
    shots: Vec<Shot>,
    /// Each chunk's shots, merged in slot order.
    chunk_shots: Vec<Vec<Shot>>,
}

/// The push away from neighbours closer than the separation radius: each contributes
/// its offset weighted by how deep inside the radius it is. The first
/// `MAX_NEIGHBOURS` in the grid's near rows count, taken a row at a time so the loop
/// tests no limit per neighbour.
fn separation(grid: &SpatialGrid, pos: Vec2) -> Vec2 {
    let mut push = Vec2::ZERO;
    let mut left = MAX_NEIGHBOURS;
    for row in grid.near(pos) {
        let taken = &row[..row.len().min(left)];
        left -= taken.len();
        for other in taken {
            push += neighbour_push(pos - other.pos);
        }
    }
    push
}

/// One neighbour's push, from its offset (zero for the unit itself, which is among its
/// neighbours). Written out in 64-bit multiplies for offsets short enough that every
/// product fits, as a neighbour's always is unless a snapshot put it far outside the
/// arena: the same bits as `Fp`'s 128-bit `*`, which the general case uses.
fn neighbour_push(offset: Vec2) -> Vec2 {
    const SHORT: u64 = 1 << 31;
    let (dx, dy) = (offset.x.to_bits(), offset.y.to_bits());
    if dx.unsigned_abs() >= SHORT || dy.unsigned_abs() >= SHORT {
        let dist_sq = offset.length_squared();
        if dist_sq >= SEPARATION_RADIUS_SQ {
            return Vec2::ZERO;
        }
        return offset * ((SEPARATION_RADIUS_SQ - dist_sq) * INVERSE_SEPARATION_RADIUS_SQ);
    }
    // |dx|, |dy| < 2^31, the depth ≤ 2^20 and its weight ≤ 2^16: no product reaches 2^63.
    let mul = |a: i64, b: i64| (a * b) >> Fp::FRAC_BITS;
    let dist_sq = mul(dx, dx) + mul(dy, dy);
    // Beyond the radius the depth is 0, and so is the push: no branch to mispredict.
    let depth = (SEPARATION_RADIUS_SQ.to_bits() - dist_sq).max(0);
    let weight = mul(depth, INVERSE_SEPARATION_RADIUS_SQ.to_bits());
    Vec2::new(
        Fp::from_bits(mul(dx, weight)),
        Fp::from_bits(mul(dy, weight)),
    )
}

/// The nearest live ship and the squared distance to it.
fn nearest_ship(ships: &[Vec2], pos: Vec2) -> Option<(Vec2, Fp)> {
    ships
        .iter()
        .map(|&ship| (ship, (ship - pos).length_squared()))
        .min_by_key(|&(_, dist_sq)| dist_sq)
}

impl UnitAi {
    /// Steers, moves and fires every unit, finding neighbours through `grid` (the units
    /// where they stood before any moved: a unit that moves first changes no other's
    /// steering).
    pub(crate) fn run(
        &mut self,
        frame: &mut Frame<ArenaGlobals>,
        grid: &SpatialGrid,
    ) -> SystemResult {
        let tick = frame.tick();
        let (globals, world) = frame.split_mut();
        clear_scratch(&mut self.ships, world.slots());
        let ships = world.query::<(&Ship, &Body)>()?;
        self.ships.extend(
            ships
                .filter(|(_, (s, _))| s.hp > 0)
                .map(|(_, (_, b))| b.pos),
        );
        // One buffer per chunk, each with room for a shot per slot: never regrown.
        let chunks = world.slots().div_ceil(CHUNK_SLOTS);
        self.chunk_shots.resize_with(chunks, Vec::new);
        for shots in &mut self.chunk_shots {
            clear_scratch(shots, CHUNK_SLOTS);
        }
        let ships = &self.ships;
        let forks = globals.rng.forks(tick, UNIT_AI_STREAM);
        let size = globals.size;
        world.par_for_each_mut::<(&mut Unit, &mut Body), _>(
            &mut self.chunk_shots,
            |shots, entity, (unit, body)| {
                // This unit's own draws: the same whichever chunk or thread runs it.
                let mut draws = UnitDraws {
                    forks,
                    entity,
                    forked: None,
                };
                steer(grid, ships, &mut draws, unit, body, shots);
                // Moved here, not in a pass of its own: one fork and join a tick fewer.
                move_body(body, size);
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

/// A unit's random draws this tick: forked from the frame's RNG (see `Rng::forks`) on
/// the first draw, so a unit that chases without firing spends nothing on them.
struct UnitDraws {
    forks: Forks,
    entity: Entity,
    forked: Option<Rng>,
}

impl UnitDraws {
    fn rng(&mut self) -> &mut Rng {
        self.forked
            .get_or_insert_with(|| self.forks.for_entity(self.entity))
    }
}

/// One unit's tick: chase or wander, keep apart, and fire at a ship in range.
fn steer(
    grid: &SpatialGrid,
    ships: &[Vec2],
    draws: &mut UnitDraws,
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
            unit.heading += draws.rng().range(-wander, wander);
            Vec2::from_angle(unit.heading) * UNIT_SPEED.div_int(2)
        }
    };
    let push = separation(grid, body.pos);
    let steer = (desired - body.vel) * Fp::from_ratio(1, 8) + push * Fp::from_ratio(1, 4);
    body.vel = (body.vel + steer).clamp_length(UNIT_MAX_SPEED);

    unit.cooldown = unit.cooldown.saturating_sub(1).max(0);
    if let Some((ship, dist_sq)) = target
        && unit.cooldown == 0
        && dist_sq <= UNIT_FIRE_RANGE * UNIT_FIRE_RANGE
    {
        unit.cooldown = UNIT_FIRE_COOLDOWN + draws.rng().below(UNIT_FIRE_JITTER) as i32;
        shots.push(Shot {
            pos: body.pos,
            vel: (ship - body.pos).normalize_or_zero() * PROJECTILE_SPEED,
            owner: draws.entity,
            shooter: 0,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The push as `Fp` arithmetic writes it, which the 64-bit form must equal.
    fn push_in_fp(offset: Vec2) -> Vec2 {
        let dist_sq = offset.length_squared();
        if dist_sq < SEPARATION_RADIUS_SQ {
            offset * ((SEPARATION_RADIUS_SQ - dist_sq) * INVERSE_SEPARATION_RADIUS_SQ)
        } else {
            Vec2::ZERO
        }
    }

    fn check(dx: i64, dy: i64) -> Vec2 {
        let offset = Vec2::new(Fp::from_bits(dx), Fp::from_bits(dy));
        let push = neighbour_push(offset);
        assert_eq!(push, push_in_fp(offset), "offset {offset:?}");
        push
    }

    #[test]
    fn a_neighbours_push_equals_the_fixed_point_formula_near_and_on_the_radius() {
        let mut rng = Rng::new(11);
        let mut pushed = 0;
        // Half-unit and neighbour-sized offsets, any sign and odd bits.
        for span in [1 << 15, 16 << 16] {
            for _ in 0..20_000 {
                let mut coord = || rng.range(-Fp::from_bits(span), Fp::from_bits(span));
                pushed += usize::from(check(coord().to_bits(), coord().to_bits()) != Vec2::ZERO);
            }
        }
        assert!(pushed > 20_000, "most short offsets push ({pushed})");
        // Each side of the radius, a few 1/65536ths at a time, along and across the axes.
        let radius = SEPARATION_RADIUS.to_bits();
        for step in -300..=300 {
            for across in [0, 1, -1, 3 << 15, -(3 << 15) - 1] {
                check(radius + step, across);
                check(across, -(radius + step));
            }
        }
        assert_eq!(check(0, 0), Vec2::ZERO, "none from itself");
        assert_eq!(check(radius, 0), Vec2::ZERO, "none on the radius");
        assert_ne!(check(radius - 256, 0), Vec2::ZERO, "some a 256th inside");
    }

    /// Separation counts the first `MAX_NEIGHBOURS` entries of the near rows laid end to
    /// end: a full first row, then the head of the second (in the order they were
    /// inserted), never more. Every neighbour here pushes, so one too many or too few
    /// changes the sum.
    #[test]
    fn separation_takes_the_first_neighbours_row_by_row_up_to_its_limit() {
        use crate::grid::GridEntry;
        // 8-unit cells; from (6, 6) the near block is cells x 0..=1, y 0..=1.
        let at = Vec2::from_ints(6, 6);
        let neighbour = |i: i64, y: i64| GridEntry {
            entity: Entity::NONE,
            pos: Vec2::new(Fp::from_int(4) + Fp::from_ratio(i, 8), Fp::from_int(y)),
        };
        let push_of = |entries: &[GridEntry]| {
            assert!(entries.iter().all(|e| push_in_fp(at - e.pos) != Vec2::ZERO));
            let mut sum = Vec2::ZERO;
            for entry in entries {
                sum += push_in_fp(at - entry.pos);
            }
            sum
        };
        let mut grid = SpatialGrid::new(CELL_LOG2);
        let size = Vec2::from_ints(32, 32);
        for (low, high) in [(20, 10), (30, 3), (5, 5)] {
            let first_row: Vec<GridEntry> = (0..low).map(|i| neighbour(i, 5)).collect();
            let second_row: Vec<GridEntry> = (0..high).map(|i| neighbour(i + 1, 9)).collect();
            // The second row's units are inserted first: rows, not insertion, come first.
            let all = second_row.iter().chain(&first_row).copied();
            grid.rebuild(size, 64, all);
            let from_first = (low as usize).min(MAX_NEIGHBOURS);
            let from_second = (MAX_NEIGHBOURS - from_first).min(high as usize);
            let expected = push_of(&first_row[..from_first]) + push_of(&second_row[..from_second]);
            assert_eq!(separation(&grid, at), expected, "{low} + {high} neighbours");
        }
    }

    proptest::proptest! {
        /// Any offset, long ones (a crafted snapshot's) and those either side of the
        /// 64-bit form's limit included.
        #[test]
        fn a_neighbours_push_equals_the_fixed_point_formula_for_any_offset(
            dx in proptest::prelude::any::<i64>(),
            dy in proptest::prelude::any::<i64>(),
            near_limit in -(1i64 << 33)..(1i64 << 33),
        ) {
            check(dx, dy);
            check(near_limit, dy >> 40);
            check(dx >> 40, near_limit);
        }
    }
}
