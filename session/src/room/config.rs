//! `RoomConfig`: a room's rules, with the defaults named on each field, and the typed
//! error for rules no room can run by.

use bytemuck::Pod;
use std::time::Duration;
use tickstep_engine::{Checksum, Frame, MAX_PLAYERS, SchemaHash, Tick};

/// How a room fills the input of a present player whose input missed its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillPolicy {
    /// The player's previous verified input (a held key stays held).
    RepeatLast,
    /// Zeroed input.
    Default,
}

/// A room's rules. [`RoomConfig::new`] gives the defaults named on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// Player slots (1..=64).
    pub players: u8,
    /// The game starts once this many players joined (default: every slot).
    pub start_players: u8,
    /// Ticks per second (default 60, at most 10,000).
    pub tick_rate: u32,
    /// Clients stamp input at least this many ticks past their estimate of the room's
    /// tick; each client's lead grows from there with its own round trip (default 1).
    pub min_lead: u32,
    /// How long past its due time a tick waits for a connected player's late input
    /// before filling it in (default 40 ms, at most [`MAX_HOLD`]). Absent and silent players are not waited
    /// for.
    pub hold: Duration,
    /// A connected player none of whose input arrived for this long is silent: ticks
    /// stop waiting for it and fill its input until it speaks again (default 500 ms).
    pub silence: Duration,
    /// Tick 0 falls due this long after the room fills, so that every client hears of
    /// the start and gets its first input in on time (default 1 s).
    pub start_delay: Duration,
    /// How missing input is filled (default: repeat the last).
    pub fill: FillPolicy,
    /// Clients report their checksum every this many ticks (default 30).
    pub checksum_every: u32,
    /// Verified input goes out every this many ticks (default 1: every tick; at most
    /// [`MAX_SEND_EVERY`]). 2 at 60 Hz halves the messages a room sends, each carrying
    /// two ticks, for up to a tick more of input latency. The end tick goes out at
    /// once.
    pub send_every: u32,
    /// Verified input kept for (re)joiners (default 10 minutes).
    pub history: Duration,
    /// A game younger than this is joined from tick 0 over the input history
    /// (default 5 s).
    pub start_window: Duration,
    /// A vouched local snapshot older than this (default 10 s) is used only when no
    /// buddy can send a newer vouched one: the catch-up from it is longer.
    pub local_snapshot_max_age: Duration,
    /// An inactive player's slot is kept this long (default 20 s).
    pub player_ttl: Duration,
    /// A room whose players are all inactive stays open this long (default 20 s).
    pub empty_room_ttl: Duration,
    /// Players whose matching checksum reports make a tick *vouched* (default 2, or
    /// every slot in smaller rooms). Only vouched states reach other players: a buddy's
    /// snapshot, a returning player's local one. Raise it so that no group smaller
    /// than this can choose another player's state.
    pub snapshot_quorum: u8,
    /// The most seats (active or kept) one network address may hold (default: no
    /// limit, so players behind one NAT or on one machine can play). Set it to 1 with
    /// a quorum of 2 and one address cannot vouch for a state alone. The address comes
    /// from the transport ([`crate::Server::handle_connection`]).
    pub max_seats_per_address: Option<u8>,
    /// The most watchers (connections following the game without a seat) the room
    /// takes at once (default 16, at most [`MAX_WATCHERS`]; 0 refuses every watcher).
    /// Each costs the room what a player's verified input and entry snapshot cost,
    /// never a tick's wait.
    pub max_watchers: u16,
    /// The most watchers one network address may have in the room at once (default 2;
    /// 0 refuses every watcher whose address the transport gave), so one peer cannot
    /// take every place. Behind a reverse proxy every browser shares its address.
    pub max_watchers_per_address: u8,
    /// A buddy that has not delivered its snapshot after this is given up (default 15 s).
    pub snapshot_timeout: Duration,
    /// Largest snapshot accepted from a buddy (default: the largest a frame of the
    /// game's schema and entity capacity can have, [`tickstep_snapshot::max_len`]).
    /// Uploads hold only the bytes that arrived.
    pub max_snapshot_len: u64,
    /// The game ends after this tick (default: never).
    pub end_tick: Option<Tick>,
    /// The game build players must run.
    pub app_version: String,
    /// The game's schema hash.
    pub schema: SchemaHash,
    /// Checksum of the game's tick-0 frame (its configuration).
    pub initial: Checksum,
}

/// Input is accepted at most this many ticks ahead of the newest verified tick.
pub(crate) const MAX_AHEAD: u64 = 256;

/// The highest tick rate a room runs at.
pub const MAX_TICK_RATE: u32 = 10_000;

/// The most ticks a room batches into one verified message ([`RoomConfig::send_every`]).
pub const MAX_SEND_EVERY: u32 = 16;

/// The most watchers a room can be set to take.
pub const MAX_WATCHERS: u16 = 256;

/// Why a [`RoomConfig`] cannot run a room.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoomConfigError {
    /// The slot count is outside 1..=64.
    #[error("a room has 1..=64 player slots, not {0}")]
    Players(u8),
    /// The start threshold is outside 1..=players.
    #[error("a game starts with 1..={players} players, not {start}")]
    StartPlayers {
        /// The configured threshold.
        start: u8,
        /// The room's slots.
        players: u8,
    },
    /// The tick rate is 0 or above [`MAX_TICK_RATE`].
    #[error("a room ticks 1..={MAX_TICK_RATE} times a second, not {0}")]
    TickRate(u32),
    /// A quorum of 0 would vouch for states nobody reported.
    #[error("a snapshot quorum is at least 1 player")]
    SnapshotQuorum,
    /// Clients could not send input that far ahead.
    #[error("the minimum input lead must be below {MAX_AHEAD} ticks, not {0}")]
    MinLead(u32),
    /// Verified input would go out never, or too rarely.
    #[error("verified input goes out every 1..={MAX_SEND_EVERY} ticks, not {0}")]
    SendEvery(u32),
    /// Clients stop resending input long before a tick would stop waiting for it.
    #[error("a tick waits for late input at most {} ms, not {} ms", MAX_HOLD.as_millis(), .0.as_millis())]
    Hold(Duration),
    /// More watchers than a room can take.
    #[error("a room takes at most {MAX_WATCHERS} watchers, not {0}")]
    MaxWatchers(u16),
}

/// The longest a due tick waits for late input: well within the half second clients
/// keep resending it (see `FINAL_AFTER` in the client; at most 256 ticks of it, so
/// above 512 Hz less).
pub const MAX_HOLD: Duration = Duration::from_millis(250);

impl RoomConfig {
    /// A room for `players` of the game whose tick-0 frame is `initial` (it gives the
    /// schema, the initial checksum and the snapshot size limit), with the defaults
    /// documented on each field.
    pub fn new<G: Pod>(players: u8, app_version: &str, initial: &Frame<G>) -> RoomConfig {
        let schema = initial.schema();
        RoomConfig {
            players,
            start_players: players,
            tick_rate: 60,
            min_lead: 1,
            hold: Duration::from_millis(40),
            silence: Duration::from_millis(500),
            start_delay: Duration::from_secs(1),
            fill: FillPolicy::RepeatLast,
            checksum_every: 30,
            send_every: 1,
            history: Duration::from_secs(600),
            start_window: Duration::from_secs(5),
            local_snapshot_max_age: Duration::from_secs(10),
            player_ttl: Duration::from_secs(20),
            empty_room_ttl: Duration::from_secs(20),
            snapshot_quorum: 2,
            max_seats_per_address: None,
            max_watchers: 16,
            max_watchers_per_address: 2,
            snapshot_timeout: Duration::from_secs(15),
            max_snapshot_len: tickstep_snapshot::max_len(schema, initial.world().capacity()),
            end_tick: None,
            app_version: app_version.to_string(),
            schema: schema.hash(),
            initial: tickstep_engine::checksum(initial),
        }
    }

    /// A room for `players` of `game`, with the defaults documented on each field: the
    /// schema, initial checksum, snapshot limit and app version come from the game.
    pub fn for_game<Ga: tickstep_engine::Game>(
        players: u8,
        game: &Ga,
    ) -> Result<RoomConfig, Ga::Error> {
        let initial = game.initial_frame()?;
        Ok(RoomConfig::new(players, &game.app_version(), &initial))
    }

    /// Checks that a room can run by these rules.
    pub fn validate(&self) -> Result<(), RoomConfigError> {
        if self.players == 0 || self.players as usize > MAX_PLAYERS {
            return Err(RoomConfigError::Players(self.players));
        }
        if self.start_players == 0 || self.start_players > self.players {
            return Err(RoomConfigError::StartPlayers {
                start: self.start_players,
                players: self.players,
            });
        }
        if self.tick_rate == 0 || self.tick_rate > MAX_TICK_RATE {
            return Err(RoomConfigError::TickRate(self.tick_rate));
        }
        if self.snapshot_quorum == 0 {
            return Err(RoomConfigError::SnapshotQuorum);
        }
        if self.min_lead as u64 >= MAX_AHEAD {
            return Err(RoomConfigError::MinLead(self.min_lead));
        }
        if !(1..=MAX_SEND_EVERY).contains(&self.send_every) {
            return Err(RoomConfigError::SendEvery(self.send_every));
        }
        if self.hold > MAX_HOLD {
            return Err(RoomConfigError::Hold(self.hold));
        }
        if self.max_watchers > MAX_WATCHERS {
            return Err(RoomConfigError::MaxWatchers(self.max_watchers));
        }
        Ok(())
    }

    /// Whole ticks in `span`.
    pub(crate) fn ticks_in(&self, span: Duration) -> u64 {
        (span.as_millis() as u64).saturating_mul(self.tick_rate as u64) / 1000
    }

    /// When `tick` is due in a game whose tick 0 was due at `zero`.
    pub(crate) fn due(&self, zero: Duration, tick: Tick) -> Duration {
        let nanos = (tick as u128 * 1_000_000_000) / self.tick_rate.max(1) as u128;
        zero + Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    /// One tick's length.
    pub(crate) fn period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / self.tick_rate.max(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RoomConfig {
        RoomConfig::new(4, "t", &crate::test_game::frame(1))
    }

    #[test]
    fn rules_no_room_can_run_by_are_named() {
        assert_eq!(config().validate(), Ok(()));
        let with = |change: fn(&mut RoomConfig)| {
            let mut c = config();
            change(&mut c);
            c.validate()
        };
        assert_eq!(with(|c| c.players = 0), Err(RoomConfigError::Players(0)));
        assert_eq!(with(|c| c.players = 65), Err(RoomConfigError::Players(65)));
        assert_eq!(
            with(|c| c.start_players = 5),
            Err(RoomConfigError::StartPlayers {
                start: 5,
                players: 4
            })
        );
        assert_eq!(with(|c| c.tick_rate = 0), Err(RoomConfigError::TickRate(0)));
        assert_eq!(
            with(|c| c.snapshot_quorum = 0),
            Err(RoomConfigError::SnapshotQuorum)
        );
        assert_eq!(
            with(|c| c.min_lead = 256),
            Err(RoomConfigError::MinLead(256))
        );
        assert_eq!(
            with(|c| c.send_every = 0),
            Err(RoomConfigError::SendEvery(0))
        );
        assert_eq!(
            with(|c| c.send_every = 17),
            Err(RoomConfigError::SendEvery(17))
        );
        assert_eq!(with(|c| c.hold = MAX_HOLD), Ok(()));
        assert_eq!(
            with(|c| c.hold = MAX_HOLD + Duration::from_millis(1)),
            Err(RoomConfigError::Hold(MAX_HOLD + Duration::from_millis(1)))
        );
    }

    #[test]
    fn ticks_fall_due_on_the_rate_grid() {
        let c = config();
        assert_eq!(c.ticks_in(Duration::from_secs(5)), 300);
        let start = Duration::from_secs(1);
        assert_eq!(c.due(start, 0), start);
        assert_eq!(c.due(start, 60), start + Duration::from_secs(1));
        assert_eq!(c.period(), Duration::from_nanos(16_666_666));
    }
}
