//! `RoomEvent`: what happened in a room, for the host's log and tools. The server tags
//! each with the room's name ([`crate::ServerEvent`]).

use tickstep_engine::{PlayerId, Tick};

use crate::protocol::Entry;

/// What happened in a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomEvent {
    /// A player took or retook a slot.
    PlayerJoined {
        /// The slot.
        player: PlayerId,
        /// The client had this slot before.
        rejoined: bool,
        /// How it enters the game.
        entry: Entry,
    },
    /// A player became inactive (its connection ended for `reason`), left for good
    /// (`None`: it quit), or was kicked (`"kicked"`).
    PlayerLeft {
        /// The slot.
        player: PlayerId,
        /// Why the connection ended, when it was not a quit.
        reason: Option<String>,
    },
    /// A connection began watching the game without a seat.
    WatcherJoined {
        /// How it enters the game.
        entry: Entry,
    },
    /// A watcher's connection ended for `reason` (`None`: it left).
    WatcherLeft {
        /// Why the connection ended, when it was not a leave.
        reason: Option<String>,
    },
    /// An inactive player's slot was freed after PlayerTTL.
    SlotFreed {
        /// The slot.
        player: PlayerId,
    },
    /// The game started: tick 0 falls due after `delay` (the room's start delay).
    GameStarted {
        /// From now until tick 0 is due.
        delay: std::time::Duration,
    },
    /// A buddy was asked for the snapshot of `tick`.
    BuddyAsked {
        /// The buddy.
        buddy: PlayerId,
        /// The tick.
        tick: Tick,
    },
    /// A buddy's snapshot did not match the peers' checksums (or was broken).
    BuddySnapshotRejected {
        /// The buddy.
        buddy: PlayerId,
        /// The tick asked for.
        tick: Tick,
    },
    /// A checked snapshot is being sent to a joiner.
    SnapshotSent {
        /// The joiner: a player, or `None` for a watcher.
        player: Option<PlayerId>,
        /// The snapshot's tick.
        tick: Tick,
        /// Its size.
        bytes: u64,
    },
    /// Players disagree about the frame at `tick`.
    Desync {
        /// The tick.
        tick: Tick,
        /// The minority (everyone who reported, when there is no majority).
        disagreeing: Vec<PlayerId>,
    },
    /// A player's snapshot of a desynced tick, kept for diagnosis.
    Evidence {
        /// The tick.
        tick: Tick,
        /// Whose frame it is.
        player: PlayerId,
        /// The snapshot.
        snapshot: Vec<u8>,
    },
    /// The game reached its end tick.
    GameEnded {
        /// The last tick.
        tick: Tick,
    },
    /// The room closed (empty past EmptyRoomTTL, or ended and empty).
    RoomClosed,
}
