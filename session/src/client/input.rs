//! The player's own input and commands on their way to the room. Input is stamped for
//! the room's estimated tick plus the client's lead (see [`super::clock`]), so it
//! arrives before its tick is due; when the lead grows the ticks in between are asked
//! for too (the host samples its current controls for each), when it shrinks no tick
//! is asked for until the room's clock catches up: nothing sampled is dropped or sent
//! twice. Commands are numbered and resent until the room confirms taking them.

use bytemuck::Pod;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{MAX_COMMAND_LEN, Tick};

use super::Client;
use super::state::Stage;
use super::timers::Timer;
use crate::protocol::{Command, MAX_LIST};

/// Own input kept unconfirmed at most (the oldest goes first): above 512 Hz, less
/// than [`FINAL_AFTER`].
const MAX_UNCONFIRMED: usize = 256;
/// Own input awaiting its step kept at most for the latency histogram (the oldest
/// goes first), however long verified input stalls.
const MAX_HANDED: usize = 1024;
/// Own input this long past its tick's turn (on the room's estimated clock) is final
/// in the room, taken or filled in (the room waits for late input far less: see
/// `RoomConfig::hold`), and no longer resent or asked for: so a stall in the verified
/// input the client receives (which confirms its input) does not stop the player's.
const FINAL_AFTER: Duration = Duration::from_millis(500);

/// Why a command was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The client is not in a running game.
    #[error("commands are sent only while the game runs")]
    NotRunning,
    /// The client watches without a seat.
    #[error("a watcher sends no commands")]
    Watching,
    /// Longer than `tickstep_engine::MAX_COMMAND_LEN`.
    #[error("a command of {0} bytes is longer than the {MAX_COMMAND_LEN} allowed")]
    TooLong(usize),
    /// As many commands as one update carries are still unconfirmed: try again later.
    #[error("{MAX_LIST} commands are still on their way: try again in a moment")]
    Backlog,
    /// The seat's commands are numbered in 32 bits and every number is spent (the
    /// room said it took the last one).
    #[error("this seat has sent all the commands it can number")]
    Exhausted,
}

impl<G: Pod, I: Input> Client<G, I> {
    /// The newest tick input stamped now can reach the room in time for: the room's
    /// estimated tick plus the lead (`None` before the room's clock is known).
    pub(super) fn input_target(&self, now: Duration) -> Option<Tick> {
        let tick = self.clock.room_tick(now)?;
        let target = tick.saturating_add(self.clock.lead() as i64);
        Some(target.max(0) as Tick)
    }

    /// The newest tick surely final in the room by its estimated clock at `now`
    /// ([`FINAL_AFTER`] past its turn), once the clock is known.
    fn last_final_tick(&self, now: Duration) -> Option<Tick> {
        let rate = u64::from(self.in_room()?.room.tick_rate);
        let past = (FINAL_AFTER.as_millis() as u64 * rate).div_ceil(1000) as i64;
        let tick = self.clock.room_tick(now)?.saturating_sub(past);
        Some(tick.max(0) as Tick)
    }

    /// Arms the `Input` timer for when the room's clock reaches its next tick, so the
    /// host is called to sample input as each tick's turn comes; drops own input
    /// whose tick is final from what is resent.
    pub(super) fn arm_input_timer(&mut self, now: Duration) {
        if let Some(last_final) = self.last_final_tick(now)
            && let Some(in_room) = self.in_room_mut()
        {
            while in_room
                .unconfirmed
                .front()
                .is_some_and(|&(t, _)| t <= last_final)
            {
                in_room.unconfirmed.pop_front();
            }
        }
        // A watcher is never asked for input: no timer wakes it for each tick.
        let running = !self.config.watch
            && self
                .in_room()
                .is_some_and(|r| matches!(r.stage, Stage::Running { .. }));
        let next = self
            .clock
            .room_tick(now)
            .filter(|_| running)
            .and_then(|tick| self.clock.tick_starts_at(tick.saturating_add(1)));
        match next {
            Some(at) => self
                .timers
                .set(Timer::Input, at.max(now + Duration::from_micros(1))),
            None => self.timers.stop(Timer::Input),
        }
    }

    /// The tick the next [`Client::send_input`] is for, when input is due: while
    /// running and playing (a watcher is never asked), once a round trip was measured, for every tick that can still count
    /// up to the room's estimated tick plus the lead. (Before the round trip is known
    /// the lead could not cover it: a far client's first input would all arrive late,
    /// and be filled.)
    pub fn next_input_tick(&self, now: Duration) -> Option<Tick> {
        let in_room = self.in_room()?;
        if !matches!(in_room.stage, Stage::Running { .. })
            || !self.clock.has_round_trip()
            || self.config.watch
        {
            return None;
        }
        let open = self.last_final_tick(now).unwrap_or(0).saturating_add(1);
        let tick = in_room
            .next_input
            .max(in_room.live.saturating_add(1))
            .max(open);
        let fallback = in_room
            .live
            .saturating_add(in_room.room.min_lead as u64 + 2);
        let target = self.input_target(now).unwrap_or(fallback);
        // Input past the end of the game could not count.
        let last = in_room.room.end_tick.unwrap_or(Tick::MAX);
        (tick <= target && tick <= last).then_some(tick)
    }

    /// Sends own input for [`Client::next_input_tick`]; returns that tick, or `None`
    /// when no input is due (the input is not sent: nothing is reported sent that
    /// cannot count).
    pub fn send_input(&mut self, now: Duration, input: I) -> Option<Tick> {
        let tick = self.next_input_tick(now)?;
        let in_room = self.in_room_mut()?;
        if in_room
            .unconfirmed
            .back()
            .is_some_and(|&(last, _)| last + 1 != tick)
        {
            // Live moved past the input still unconfirmed: those ticks are final, and
            // the update must carry consecutive ticks.
            in_room.unconfirmed.clear();
        }
        if in_room.unconfirmed.len() >= MAX_UNCONFIRMED {
            in_room.unconfirmed.pop_front();
        }
        in_room.unconfirmed.push_back((tick, input));
        if in_room.handed.len() >= MAX_HANDED {
            in_room.handed.pop_front();
        }
        in_room.handed.push_back((tick, now));
        in_room.next_input = tick.saturating_add(1);
        self.update_due = true;
        Some(tick)
    }

    /// Sends a command — a discrete action, as bytes — reliably: it is resent until the
    /// room takes it, then lands on the tick of the input sent last (the player's
    /// present), or the first open tick after it if that closed meanwhile; every peer
    /// sees it on the same tick (in [`tickstep_engine::TickInputs::commands`]).
    /// Returns its number.
    pub fn send_command(&mut self, _now: Duration, bytes: &[u8]) -> Result<u32, CommandError> {
        if self.config.watch {
            return Err(CommandError::Watching);
        }
        if bytes.len() > MAX_COMMAND_LEN {
            return Err(CommandError::TooLong(bytes.len()));
        }
        if self.commands.len() >= MAX_LIST {
            return Err(CommandError::Backlog);
        }
        let Some(in_room) = self
            .in_room()
            .filter(|r| matches!(r.stage, Stage::Running { .. }))
        else {
            return Err(CommandError::NotRunning);
        };
        let tick = in_room
            .next_input
            .saturating_sub(1)
            .max(in_room.live.saturating_add(1));
        let Some(seq) = self.command_seq.checked_add(1) else {
            return Err(CommandError::Exhausted);
        };
        self.command_seq = seq;
        self.commands.push_back(Command {
            seq,
            tick,
            bytes: bytes.to_vec(),
        });
        self.stats.commands_sent += 1;
        self.update_due = true;
        Ok(self.command_seq)
    }

    /// The room took the commands numbered up to `taken`.
    pub(super) fn commands_taken(&mut self, taken: u32) {
        while self.commands.front().is_some_and(|c| c.seq <= taken) {
            self.commands.pop_front();
        }
    }
}
