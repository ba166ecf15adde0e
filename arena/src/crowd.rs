//! The crowd: the units' AI, movement and combat, which share one grid of the units a
//! tick. The grid is built as the tick's units stand, the units steer through it and
//! move, the other bodies move, and the projectiles look through it again for the
//! units they hit.

use tickstep_engine::{Frame, System, SystemResult, TickInputs};

use super::combat::Combat;
use super::grid::SpatialGrid;
use super::movement::move_the_rest;
use super::rules::CELL_LOG2;
use super::units::UnitAi;
use super::{ArenaGlobals, ArenaInput};

/// The units' AI (which moves each unit as it steers), the other bodies' movement
/// ([`move_the_rest`]) and combat, in that order, over one grid of the units built at
/// the start of each tick.
pub struct Crowd {
    units: SpatialGrid,
    ai: UnitAi,
    combat: Combat,
}

impl Default for Crowd {
    fn default() -> Self {
        Crowd {
            units: SpatialGrid::new(CELL_LOG2),
            ai: UnitAi::default(),
            combat: Combat::default(),
        }
    }
}

impl System<ArenaGlobals, ArenaInput> for Crowd {
    fn run(
        &mut self,
        frame: &mut Frame<ArenaGlobals>,
        _inputs: &TickInputs<ArenaInput>,
    ) -> SystemResult {
        let (globals, world) = frame.split_mut();
        self.units.rebuild_with_units(world, globals.size)?;
        self.ai.run(frame, &self.units)?;
        move_the_rest(frame)?;
        self.combat.run(frame, &self.units)
    }
}
