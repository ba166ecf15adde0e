//! Bot input: every player's input as a pure function of (seed, tick, player), so the
//! CLI, tests and benches can replay any game without recording it.

use tickstep_engine::{PlayerId, Tick, TickInputs, mix64};

use super::{ArenaCommand, ArenaInput};

/// Ticks a bot holds one heading before picking another.
const SEGMENT_TICKS: u64 = 40;

/// The bot input of `player` at `tick` in the game seeded with `seed`.
pub fn bot_input(seed: u64, tick: Tick, player: PlayerId) -> ArenaInput {
    let segment = mix64(seed ^ mix64(((player.0 as u64) << 48) ^ (tick / SEGMENT_TICKS)));
    let moment = mix64(segment ^ tick);
    let sweep = (tick % SEGMENT_TICKS) as u8;
    ArenaInput {
        move_x: segment as i8,
        move_y: (segment >> 8) as i8,
        aim: ((segment >> 16) as u8).wrapping_add(sweep.wrapping_mul(3)),
        fire: (moment & 3 == 0) as u8,
    }
}

/// Ticks between a bot's novas, on average.
const NOVA_EVERY: u64 = 240;

/// The command a bot `player` sends at `tick` in the game seeded with `seed`, if any:
/// now and then a nova.
pub fn bot_command(seed: u64, tick: Tick, player: PlayerId) -> Option<ArenaCommand> {
    let roll = mix64(seed ^ 0x6e6f7661 ^ mix64(((player.0 as u64) << 40) ^ tick));
    roll.is_multiple_of(NOVA_EVERY)
        .then_some(ArenaCommand::NOVA)
}

/// Fills `inputs` with every player's bot input and commands for `tick`, all players
/// present.
pub fn fill_bot_inputs(seed: u64, tick: Tick, inputs: &mut TickInputs<ArenaInput>) {
    inputs.reset(tick);
    for player in 0..inputs.players() {
        let player = PlayerId(player as u8);
        // Cannot fail: `player` is below `inputs.players()`, a command is one byte.
        let _ = inputs.set(player, bot_input(seed, tick, player));
        if let Some(command) = bot_command(seed, tick, player) {
            let _ = inputs.push_command(player, bytemuck::bytes_of(&command));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_input_is_a_pure_function_that_varies() {
        assert_eq!(bot_input(1, 10, PlayerId(0)), bot_input(1, 10, PlayerId(0)));
        let over_time: std::collections::BTreeSet<_> =
            (0..400).map(|t| bot_input(1, t, PlayerId(0))).collect();
        assert!(over_time.len() > 100);
        assert_ne!(bot_input(1, 10, PlayerId(0)), bot_input(1, 10, PlayerId(1)));
        assert_ne!(bot_input(1, 10, PlayerId(0)), bot_input(2, 10, PlayerId(0)));
        let fires = (0..400)
            .filter(|&t| bot_input(1, t, PlayerId(0)).fire != 0)
            .count();
        assert!(
            (50..150).contains(&fires),
            "about a quarter of ticks fire: {fires}"
        );
    }
}
