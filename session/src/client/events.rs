//! What a client tells its host: where it stands ([`ClientState`]), what happened
//! ([`ClientEvent`]), why it stopped ([`DisconnectReason`]), and what the transport
//! should do ([`ClientTransmit`]).

use std::time::Duration;
use tickstep_engine::{PlayerId, Tick};
use tickstep_snapshot::Progress;

use crate::SessionError;
use crate::protocol::{ClientMessage, Entry, SnapshotSource};

/// Why a client stopped for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The player left ([`crate::Client::leave`]).
    Quit,
    /// Reconnection was cancelled ([`crate::Client::cancel`]).
    Cancelled,
    /// The game reached its end.
    GameEnded,
    /// Refused, removed, or lost beyond what reconnection could mend.
    Error(SessionError),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::Quit => f.write_str("left the game"),
            DisconnectReason::Cancelled => f.write_str("reconnection cancelled"),
            DisconnectReason::GameEnded => f.write_str("the game ended"),
            DisconnectReason::Error(error) => error.fmt(f),
        }
    }
}

/// A snapshot on its way to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownloadProgress {
    /// The snapshot's tick.
    pub tick: Tick,
    /// Where it comes from.
    pub source: SnapshotSource,
    /// Chunks received of all.
    pub chunks: Progress,
}

/// Where a client stands, with what is worth knowing in each state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Not started yet: call [`crate::Client::connect`].
    Idle,
    /// Saying hello.
    Connecting {
        /// The reconnection attempt this is (0 for the first connection).
        attempt: u32,
    },
    /// In the room, waiting for the game to start.
    Lobby,
    /// Waiting for a snapshot; simulation and clock paused.
    WaitingForSnapshot {
        /// The snapshot, once it is on its way.
        download: Option<DownloadProgress>,
    },
    /// Running buffered verified input to reach live.
    CatchingUp {
        /// The tick the frame entered the game at.
        from: Tick,
        /// The live tick being chased.
        target: Tick,
    },
    /// In step with the room.
    Running,
    /// Lost the connection; the next attempt starts after a backoff.
    Reconnecting {
        /// The attempt coming up (1-based).
        attempt: u32,
        /// When it starts.
        retry_at: Duration,
    },
    /// Stopped for good.
    Disconnected(DisconnectReason),
}

impl ClientState {
    /// Stopped for good.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, ClientState::Disconnected(_))
    }
}

/// What the host game hears about. Events from before a (re)join are not replayed:
/// the game view polls [`crate::Client::frame`] to set itself up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Took (or retook) a slot.
    Joined {
        /// The slot.
        player: PlayerId,
        /// How the game will be entered.
        entry: Entry,
    },
    /// Taken in to watch, without a seat.
    Watching {
        /// How the game will be entered.
        entry: Entry,
    },
    /// The game was entered from tick 0.
    Started,
    /// Waiting for a snapshot; the simulation is paused.
    WaitingForSnapshot,
    /// The game was entered from a snapshot (instead of `Started`).
    Resynced {
        /// The snapshot's tick.
        tick: Tick,
        /// Where it came from.
        source: SnapshotSource,
        /// Its size.
        bytes: u64,
    },
    /// Catch-up progress (after each [`crate::Client::advance`] that stepped while
    /// catching up).
    CatchUpProgress {
        /// Ticks simulated since the game was entered.
        done: u64,
        /// The live tick being chased.
        target: Tick,
    },
    /// Caught up with live after simulating `ticks` ticks.
    CaughtUp {
        /// Ticks simulated to get there.
        ticks: u64,
    },
    /// Own input reached the room late by `by`: the tick waited for it (or filled it
    /// in, see [`ClientEvent::OwnInputReplaced`]). The input lead grows to match.
    InputLate {
        /// How late.
        by: Duration,
    },
    /// The room filled in this player's input for `tick`: it came too late, or not at
    /// all. The verified input flags it `Replaced`.
    OwnInputReplaced {
        /// The tick.
        tick: Tick,
    },
    /// The room found peers disagreeing at `tick`.
    Desync {
        /// The tick.
        tick: Tick,
        /// Who disagrees with the majority.
        disagreeing: Vec<PlayerId>,
    },
    /// The connection was lost unexpectedly; another attempt follows after `after`.
    Reconnecting {
        /// The attempt coming up.
        attempt: u32,
        /// The wait before it.
        after: Duration,
        /// What was lost.
        reason: SessionError,
    },
    /// Stopped for good.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// A system failed stepping `tick`: the frame is poisoned (a bug in the game) and
    /// the client steps, reports and uploads nothing from that tick on.
    StepFailed {
        /// The tick whose step failed.
        tick: Tick,
        /// What the step said.
        error: String,
    },
}

/// One line for a log or a timeline (a host adds its own timings).
impl std::fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientEvent::Joined { player, entry } => {
                write!(f, "joined as player {}, {}", player.0, entering(entry))
            }
            ClientEvent::Watching { entry } => write!(f, "watching, {}", entering(entry)),
            ClientEvent::Started => f.write_str("game started"),
            ClientEvent::WaitingForSnapshot => f.write_str("paused, waiting for a snapshot"),
            ClientEvent::Resynced {
                tick,
                source,
                bytes,
            } => write!(
                f,
                "resynced at tick {tick} from a {source} snapshot of {bytes} bytes"
            ),
            ClientEvent::CatchUpProgress { done, target } => {
                write!(f, "catching up: {done} ticks, live at {target}")
            }
            ClientEvent::CaughtUp { ticks } => write!(f, "caught up {ticks} ticks"),
            ClientEvent::InputLate { by } => {
                write!(f, "own input late by {} ms", by.as_millis())
            }
            ClientEvent::OwnInputReplaced { tick } => {
                write!(f, "own input for tick {tick} filled in")
            }
            ClientEvent::Desync { tick, disagreeing } => {
                let who: Vec<String> = disagreeing.iter().map(|p| p.0.to_string()).collect();
                write!(
                    f,
                    "desync at tick {tick}: player {} disagrees",
                    who.join(", ")
                )
            }
            ClientEvent::Reconnecting {
                attempt,
                after,
                reason,
            } => write!(
                f,
                "{reason}; reconnect attempt {attempt} in {} ms",
                after.as_millis()
            ),
            ClientEvent::Disconnected { reason } => write!(f, "stopped: {reason}"),
            ClientEvent::StepFailed { tick, error } => {
                write!(f, "step of tick {tick} failed: {error}")
            }
        }
    }
}

/// What the client wants the transport to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTransmit {
    /// Open a fresh connection to the server (closing any old one); messages that
    /// follow go on it.
    Connect,
    /// Send a message on the current connection.
    Send(ClientMessage),
    /// Close the current connection.
    Close,
}

/// How a welcome said the game will be entered, for [`ClientEvent`]'s lines.
fn entering(entry: &Entry) -> String {
    match entry {
        Entry::Lobby => "in the lobby".to_string(),
        Entry::FromStart => "from tick 0".to_string(),
        Entry::LocalSnapshot { tick } => format!("from its own snapshot of tick {tick}"),
        Entry::AwaitSnapshot => "a snapshot to come".to_string(),
    }
}
