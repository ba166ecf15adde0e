//! The two kinds of failure, by name, each with a message that says what to do:
//! [`Refusal`], what a room tells a client when it refuses or removes it (it travels
//! in [`crate::ServerMessage::Refused`]), and [`SessionError`], why a client lost or
//! could not keep its place (a local outcome; a refusal is one of them).

use serde::{Deserialize, Serialize};

/// Why a room refused a client, or put it out. Sent to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// Client and server speak different protocol versions.
    #[error(
        "protocol version {client} is not the server's {server}: update the client or the server"
    )]
    VersionMismatch {
        /// The client's protocol version.
        client: u32,
        /// The server's.
        server: u32,
    },
    /// The client was built from a different release of the game than the room runs.
    #[error(
        "app version {client:?} differs from the room's {room:?}: players must run the same build"
    )]
    AppVersionMismatch {
        /// The client's app version.
        client: String,
        /// The room's.
        room: String,
    },
    /// The client's components differ from the room's: the builds would desync.
    #[error("the game's schema differs from the room's: players must run the same build")]
    SchemaMismatch,
    /// The client would start from a different initial frame (another game
    /// configuration) than the room.
    #[error(
        "the game's configuration differs from the room's initial frame: check the room's settings"
    )]
    GameMismatch,
    /// The server hosts no room of that name.
    #[error("no room is named {0:?}: check the room name")]
    NoSuchRoom(String),
    /// Every player slot is taken.
    #[error("the room is full: try another room or wait for a slot")]
    RoomFull,
    /// The room closed (it stayed empty past its EmptyRoomTTL, or its game ended).
    #[error("the room has closed: join or create another room")]
    RoomClosed,
    /// Another connection with this client id is still active in the room. After an
    /// unexpected loss this clears once the server times the old connection out; the
    /// client retries on its own until then.
    #[error(
        "this client id is already playing in the room: wait for the old connection to time out"
    )]
    DuplicateClientId,
    /// The client came back without the slot's latest resume token: someone else
    /// holding its id and an older token (a copied reconnect file) took it back first,
    /// or it is that copy.
    #[error(
        "this slot's resume token has moved on: its owner came back from elsewhere; join as a new player"
    )]
    ResumeRejected,
    /// The slot kept for this client id was freed after PlayerTTL.
    #[error("the slot kept for this player expired (PlayerTTL): join the room as a new player")]
    PlayerTtlExpired,
    /// No state of the running game is vouched for (its checksum reported by the
    /// room's quorum of players) that a player online could send, the joiner holds no
    /// vouched local snapshot, and the input history no longer reaches back to tick 0.
    #[error(
        "no state of the running game is vouched for by enough players to rejoin on: try again when other players are online"
    )]
    NoVouchedSnapshot,
    /// Every buddy asked for a snapshot was silent or left before it arrived.
    #[error("no buddy delivered a snapshot in time: try joining again")]
    SnapshotRequestTimedOut,
    /// The server removed this player.
    #[error("the server removed this player from the room")]
    Kicked,
    /// The client broke the protocol (a message it may not send, or impossible content).
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// The room sent the joiner's snapshot several times over and it still did not
    /// arrive.
    #[error(
        "the snapshot was sent several times over without arriving: check the connection and join again"
    )]
    DownloadFailed,
    /// The room limits the seats one network address may hold, and this address holds
    /// that many.
    #[error("this network address already holds as many seats as the room allows")]
    TooManySeatsFromAddress,
    /// The server holds as many connections as it allows, in all or from this address.
    #[error("the server has no room for another connection: try again later")]
    TooManyConnections,
    /// The connection did not say hello in time.
    #[error("no hello arrived in time")]
    HelloTimeout,
    /// The room has as many watchers as it allows (`RoomConfig::max_watchers`).
    #[error("the room has as many watchers as it allows: try again later")]
    TooManyWatchers,
}

/// Why a client lost its place or could not take it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The room refused the client or put it out.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The snapshot the client was given failed verification.
    #[error("the snapshot received failed verification: try joining again")]
    SnapshotRejected,
    /// The client did not enter the game within its start timeout.
    #[error("the game did not start in time: check the connection and join again")]
    StartTimeout,
    /// The connection was lost: the transport failed or the peer fell silent.
    #[error("the connection to the server was lost ({0})")]
    ConnectionLost(String),
    /// Automatic reconnection gave up after its attempts.
    #[error("could not reconnect after {0} attempts: check the connection and join again")]
    ReconnectFailed(u32),
    /// The server sent something this client cannot use (another game, or a broken
    /// server).
    #[error("the server broke the protocol: {0}")]
    UnexpectedMessage(String),
}
