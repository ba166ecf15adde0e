//! The bots the CLI plays with: the arena's bot input and commands (pure functions of
//! seed, tick and player, so an offline run plays the same game), handed to a session
//! client for every tick it asks input for.

use std::time::Duration;
use tickstep_arena::{self as arena, ArenaGlobals, ArenaInput};
use tickstep_session::Client;

/// Sends the bot's input, and its command when it has one, for every tick `client`
/// wants input for now.
pub fn play(client: &mut Client<ArenaGlobals, ArenaInput>, now: Duration, seed: u64) {
    let Some(player) = client.player() else {
        return;
    };
    while let Some(tick) = client.next_input_tick(now) {
        client.send_input(now, arena::bot_input(seed, tick, player));
        if let Some(command) = arena::bot_command(seed, tick, player) {
            // Refused only with a backlog the room has not confirmed yet: that nova is
            // lost, as a key pressed too often would be.
            let _ = client.send_command(now, bytemuck::bytes_of(&command));
        }
    }
}
