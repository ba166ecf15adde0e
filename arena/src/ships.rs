//! Ships: each player's input steers their ship and fires, a nova command fires a ring
//! of shots; downed ships respawn.

use tickstep_engine::{Fp, Frame, PlayerId, System, SystemResult, TickInputs, Vec2};

use super::combat::{Shot, fire};
use super::rules::*;
use super::{ArenaCommand, ArenaGlobals, ArenaInput, Body, Ship, clear_scratch, random_position};

/// Applies each present player's thrust and fire button, and its novas, to their ship.
#[derive(Default)]
pub struct ShipControl {
    shots: Vec<Shot>,
}

/// The thrust an input asks for, per tick.
fn thrust(input: &ArenaInput) -> Vec2 {
    let axis = |v: i8| Fp::from_int(v.max(-127) as i64);
    Vec2::new(axis(input.move_x), axis(input.move_y)) * SHIP_ACCEL.div_int(127)
}

/// The unit vector an input aims along.
fn aim(input: &ArenaInput) -> Vec2 {
    Vec2::from_angle(Fp::TAU.mul_int(input.aim as i64).div_int(256))
}

impl System<ArenaGlobals, ArenaInput> for ShipControl {
    fn run(
        &mut self,
        frame: &mut Frame<ArenaGlobals>,
        inputs: &TickInputs<ArenaInput>,
    ) -> SystemResult {
        let novas = inputs
            .commands_as::<ArenaCommand>()
            .filter(|(_, command)| *command == ArenaCommand::NOVA)
            .fold(0u64, |mask, (player, _)| mask | 1 << player.0);
        let (globals, world) = frame.split_mut();
        clear_scratch(&mut self.shots, world.slots());
        for (entity, (ship, body)) in world.query_mut::<(&mut Ship, &mut Body)>()? {
            ship.cooldown = ship.cooldown.saturating_sub(1).max(0);
            if ship.hp <= 0 {
                body.vel = Vec2::ZERO;
                ship.respawn_in = ship.respawn_in.saturating_sub(1);
                if ship.respawn_in <= 0 {
                    ship.hp = SHIP_HP;
                    ship.respawn_in = 0;
                    body.pos = random_position(&mut globals.rng, globals.size);
                }
                continue;
            }
            let input = u8::try_from(ship.player)
                .ok()
                .and_then(|p| inputs.get(PlayerId(p)));
            let push = input.map_or(Vec2::ZERO, thrust);
            body.vel = ((body.vel + push) * SHIP_DRAG).clamp_length(SHIP_MAX_SPEED);
            if ship.player < 64 && novas & (1 << ship.player) != 0 {
                for k in 0..NOVA_SHOTS {
                    let angle = Fp::TAU.mul_int(k).div_int(NOVA_SHOTS);
                    self.shots.push(Shot {
                        pos: body.pos,
                        vel: Vec2::from_angle(angle) * PROJECTILE_SPEED + body.vel,
                        owner: entity,
                        shooter: ship.player.saturating_add(1),
                    });
                }
            }
            if let Some(input) = input.filter(|i| i.fire != 0 && ship.cooldown == 0) {
                ship.cooldown = SHIP_FIRE_COOLDOWN;
                self.shots.push(Shot {
                    pos: body.pos,
                    vel: aim(input) * PROJECTILE_SPEED + body.vel,
                    owner: entity,
                    shooter: ship.player.saturating_add(1),
                });
            }
        }
        fire(frame, &self.shots);
        Ok(())
    }
}
