//! `ClientConfig`: a client's timing and limits, with the defaults named on each field.

use std::time::Duration;

use crate::ReconnectPolicy;

/// A client's timing and limits. `Default` gives the values named on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The game build, compared with the room's (default: empty;
    /// [`ClientConfig::for_game`] takes the game's).
    pub app_version: String,
    /// Automatic reconnection after an unexpected loss.
    pub reconnect: ReconnectPolicy,
    /// Give up (`StartTimeout`) when not in the game this long after (re)connecting
    /// began (default 30 s).
    pub start_timeout: Duration,
    /// The server is taken as lost after this silence (default 10 s).
    pub server_timeout: Duration,
    /// An update is sent at least this often (default 250 ms).
    pub heartbeat: Duration,
    /// An unanswered hello is repeated this often (default 500 ms).
    pub hello_retry: Duration,
    /// Catch-up is over within this many ticks of live (default 2).
    pub close_enough: u64,
    /// Verified input kept (default 36 000 ticks: 10 minutes at 60 Hz).
    pub history: u64,
    /// Snapshots of recent checksum ticks kept for buddies and evidence (default 4).
    pub snapshots_kept: usize,
    /// Largest snapshot accepted (default 64 MiB; never more than a frame of the game's
    /// schema and capacity can have).
    pub max_snapshot_len: u64,
    /// Watch the room without a seat (default: false, play): the client enters and
    /// steps the game as a player does, and sends no input, commands or checksums.
    pub watch: bool,
}

impl ClientConfig {
    /// The defaults, with the app version of `game` (see `Game::app_version`).
    pub fn for_game(game: &impl tickstep_engine::Game) -> ClientConfig {
        ClientConfig {
            app_version: game.app_version(),
            ..ClientConfig::default()
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            app_version: String::new(),
            reconnect: ReconnectPolicy::default(),
            start_timeout: Duration::from_secs(30),
            server_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_millis(250),
            hello_retry: Duration::from_millis(500),
            close_enough: 2,
            history: 36_000,
            snapshots_kept: 4,
            max_snapshot_len: 64 << 20,
            watch: false,
        }
    }
}
