//! What a demo plays and what it does to its players: the options, the schedule of
//! drops, rejoins and restarts, and the room and clients every demo builds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tickstep_engine::{Frame, Tick};

use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_session::sim::LinkConfig;
use tickstep_session::{Client, ClientConfig, ClientId, ReconnectInfo, RoomConfig};

/// The app version demo rooms and clients agree on.
pub(crate) const APP_VERSION: &str = concat!("tickstep-demo ", env!("CARGO_PKG_VERSION"));

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
    /// The link was asked for (over QUIC, a UDP relay then shapes every client's link;
    /// otherwise they are loopback as it is).
    pub shaped: bool,
    /// Cut this player's connection and take it offline at this tick.
    pub drops: Vec<PlayerAt>,
    /// Bring this player back online at this tick (it rejoins on its own).
    pub rejoins: Vec<PlayerAt>,
    /// Tear this player's client down at this tick and rebuild it from its saved
    /// `ReconnectInfo`, as after an app restart.
    pub restarts: Vec<PlayerAt>,
}

impl DemoOptions {
    /// Checks the schedule names existing players and ticks inside the game.
    pub fn validate(&self) -> Result<(), String> {
        for at in self.drops.iter().chain(&self.rejoins).chain(&self.restarts) {
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
    pub(crate) fn time_limit(&self) -> Duration {
        Duration::from_secs(self.ticks / self.tick_rate.max(1) as u64 + 180)
    }
}

/// What the demo does to a player at a scheduled tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    /// Cut its connection and take its network down.
    Drop,
    /// Bring its network back.
    Rejoin,
    /// Rebuild its client from its saved reconnect info.
    Restart,
}

impl Action {
    /// The timeline's words for it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Action::Drop => "connection cut, offline (--drop)",
            Action::Rejoin => "back online (--rejoin)",
            Action::Restart => "app restarted from its saved ReconnectInfo (--restart)",
        }
    }
}

/// The drops, rejoins and restarts still to come, by room tick.
pub(crate) struct Schedule {
    pending: Vec<(Tick, Action, u8)>,
}

impl Schedule {
    pub(crate) fn new(options: &DemoOptions) -> Schedule {
        let tagged = |list: &[PlayerAt], action: Action| {
            list.iter()
                .map(move |at| (at.tick, action, at.player))
                .collect::<Vec<_>>()
        };
        let mut pending = tagged(&options.drops, Action::Drop);
        pending.extend(tagged(&options.rejoins, Action::Rejoin));
        pending.extend(tagged(&options.restarts, Action::Restart));
        // Latest first, so the next one is popped from the end.
        pending.sort_by(|a, b| b.cmp(a));
        Schedule { pending }
    }

    /// The tick of the next action.
    pub(crate) fn next_tick(&self) -> Option<Tick> {
        self.pending.last().map(|(tick, _, _)| *tick)
    }

    /// Takes the actions due at `tick`, in order.
    pub(crate) fn due(&mut self, tick: Tick) -> Vec<(u8, Action)> {
        let mut due = Vec::new();
        while let Some(&(at, action, player)) = self.pending.last()
            && at <= tick
        {
            self.pending.pop();
            due.push((player, action));
        }
        due
    }
}

/// The demo's tick-0 frame and its room's rules.
pub(crate) fn demo_room(
    options: &DemoOptions,
) -> Result<(Frame<ArenaGlobals>, RoomConfig), String> {
    let game = &options.game;
    let initial = arena::new_frame(game).map_err(|e| e.to_string())?;
    let mut room = RoomConfig::new(game.players, APP_VERSION, &initial);
    room.tick_rate = options.tick_rate;
    room.end_tick = Some(options.ticks);
    // Every page watching a local demo comes from one address.
    room.max_watchers_per_address = u8::MAX;
    Ok((initial, room))
}

/// Player `player`'s secret id, derived from the seed so runs repeat.
pub(crate) fn demo_client_id(options: &DemoOptions, player: u8) -> ClientId {
    ClientId::from_seed(options.game.seed ^ ((player as u64 + 1) << 56))
}

/// A demo client with `info`, playing from `initial`.
pub(crate) fn demo_client(
    initial: &Frame<ArenaGlobals>,
    info: ReconnectInfo,
) -> Client<ArenaGlobals, ArenaInput> {
    let config = ClientConfig {
        app_version: APP_VERSION.into(),
        ..ClientConfig::default()
    };
    Client::new(config, info, initial.clone(), arena::simulation())
}
