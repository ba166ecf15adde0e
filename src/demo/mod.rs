//! The demo: an arena room with bot players over a network, with players dropped and
//! rejoined on a schedule, reported as a timeline and a verdict on whether every client
//! ended on the same checksum. [`run_over_sim`] runs it over the deterministic
//! simulated network.

mod over_sim;
mod report;

pub use over_sim::run_over_sim;
pub use report::{ClientReport, DemoReport, DesyncReport, Resync, TimelineEntry};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tickstep_engine::Tick;

use crate::arena::ArenaConfig;
use crate::session::sim::LinkConfig;

/// The room every demo plays in.
pub const DEMO_ROOM: &str = "demo";

/// A player and a tick: `P@TICK` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerAt {
    /// The player slot.
    pub player: u8,
    /// The room tick.
    pub tick: Tick,
}

/// Why `P@TICK` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected PLAYER@TICK (like 1@200), got {0:?}")]
pub struct ParsePlayerAtError(String);

impl FromStr for PlayerAt {
    type Err = ParsePlayerAtError;

    fn from_str(text: &str) -> Result<PlayerAt, ParsePlayerAtError> {
        let bad = || ParsePlayerAtError(text.chars().take(40).collect());
        let (player, tick) = text.split_once('@').ok_or_else(bad)?;
        Ok(PlayerAt {
            player: player.trim().parse().map_err(|_| bad())?,
            tick: tick.trim().parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for PlayerAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.player, self.tick)
    }
}

/// What to play and what to do to the players.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// The arena (players, units, seed).
    pub game: ArenaConfig,
    /// The game ends after this tick.
    pub ticks: Tick,
    /// Ticks per second.
    pub tick_rate: u32,
    /// Every client's link.
    pub link: LinkConfig,
    /// Cut this player's connection and take it offline at this tick.
    pub drops: Vec<PlayerAt>,
    /// Bring this player back online at this tick (it rejoins on its own).
    pub rejoins: Vec<PlayerAt>,
}

impl DemoOptions {
    /// Checks the schedule names existing players and ticks inside the game.
    pub fn validate(&self) -> Result<(), String> {
        for at in self.drops.iter().chain(&self.rejoins) {
            if at.player >= self.game.players {
                return Err(format!(
                    "{at}: there are only players 0..{}",
                    self.game.players
                ));
            }
            if at.tick == 0 || at.tick >= self.ticks {
                return Err(format!("{at}: the tick must be inside 1..{}", self.ticks));
            }
        }
        if self.tick_rate == 0 || self.tick_rate > 10_000 {
            return Err(format!("tick rate {} is outside 1..=10000", self.tick_rate));
        }
        Ok(())
    }

    /// Virtual time the run may take before it is declared stuck: the game's length
    /// plus three minutes for timeouts and reconnection.
    fn time_limit(&self) -> Duration {
        Duration::from_secs(self.ticks / self.tick_rate.max(1) as u64 + 180)
    }
}
