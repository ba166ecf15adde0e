//! The wire protocol: every message client and server exchange, and their encoding
//! (postcard, capped at [`MAX_MESSAGE_LEN`]). Every message is safe to lose, repeat or
//! reorder: state travels redundantly (a client resends its unconfirmed input and
//! commands, the server resends unconfirmed verified input, chunk gaps are asked for
//! again), so the session runs over datagrams as well as streams. Every server message
//! to a joined client carries [`Timing`]: the room's clock and the echo of the client's
//! clock, from which the client keeps its estimate of the room's tick and its RTT.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, Frame, PlayerId, SchemaHash, Tick, TickInputs, checksum};
use tickstep_replay::InputLog;
use tickstep_snapshot::Chunk;

use super::{ClientId, Refusal, ResumeToken};

/// The protocol version this build speaks; a handshake with another is refused.
pub const PROTOCOL_VERSION: u32 = 5;

/// Largest encoded message either side sends or accepts. A snapshot chunk (60 KiB) and
/// a batch of verified ticks fit with room to spare.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Most entries a list in a message may usefully carry; receivers ignore the rest.
pub const MAX_LIST: usize = 64;

/// A client's opening message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the client.
    pub protocol: u32,
    /// The game build, compared verbatim with the room's.
    pub app_version: String,
    /// The client's schema hash.
    pub schema: SchemaHash,
    /// Checksum of the client's tick-0 frame: the room's game configuration.
    pub initial: Checksum,
    /// The room to join.
    pub room: String,
    /// The client's secret id.
    pub client_id: ClientId,
    /// The client held a slot in this room before and wants it back (refused with
    /// `PlayerTtlExpired` if the slot was freed meanwhile).
    pub rejoin: bool,
    /// Tick and checksum of a snapshot the client kept from before it dropped, offered
    /// so it can re-enter without a transfer.
    pub local_snapshot: Option<(Tick, Checksum)>,
    /// The client's clock (µs since its own epoch) when this left: echoed back.
    pub sent_at: u64,
    /// The token its last welcome into this slot gave, when coming back.
    pub resume: Option<ResumeToken>,
    /// Watch without a seat: the client gets the verified input (and a snapshot to
    /// enter on) but sends no input, commands or checksums, and no tick waits for it.
    /// `rejoin` and `resume` are ignored.
    pub watch: bool,
}

impl Hello {
    /// A first hello: `client_id` joins `room` of a game whose tick-0 frame is
    /// `initial`, built as `app_version` (this protocol version, no rejoin, snapshot,
    /// token or clock reading; set those fields to rejoin, or `watch` to watch).
    pub fn new<G: bytemuck::Pod>(
        app_version: impl Into<String>,
        initial: &Frame<G>,
        room: impl Into<String>,
        client_id: ClientId,
    ) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            app_version: app_version.into(),
            schema: initial.schema().hash(),
            initial: checksum(initial),
            room: room.into(),
            client_id,
            rejoin: false,
            local_snapshot: None,
            sent_at: 0,
            resume: None,
            watch: false,
        }
    }
}

/// The room's clock and what it saw of one client's timing. Every server message to a
/// joined client carries one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// µs since tick 0 was due when this message left (negative before it), or `None`
    /// while the game has not been scheduled. Tick T is due at `T / tick_rate` s.
    pub room_us: Option<i64>,
    /// The latest `sent_at` the room heard from this client, and the µs between
    /// hearing it and sending this (the client's round trip is its clock now, less the
    /// echo, less the hold).
    pub echo: Option<Echo>,
    /// The smallest slack, in µs, of this client's input first heard since the last
    /// report: how long before its tick was due it arrived (negative: late, the tick
    /// waited or was filled).
    pub slack_us: Option<i32>,
    /// The newest command number the room has taken from this client.
    pub commands_taken: u32,
}

/// A reading of a session clock (time since the driver's epoch) in whole µs, as the
/// protocol carries clocks.
pub(crate) fn micros(time: Duration) -> u64 {
    time.as_micros().min(u64::MAX as u128) as u64
}

/// A client clock reading echoed back by the room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The client's `sent_at`, µs.
    pub client_us: u64,
    /// µs the room held it before replying.
    pub held_us: u32,
}

/// A discrete action a client sends reliably: numbered so the room takes each exactly
/// once, for the tick the client asked (or the first open tick, when that is final).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Numbers the client's commands, from 1, without gaps.
    pub seq: u32,
    /// The tick asked for (past the room's input window, the window's last tick).
    pub tick: Tick,
    /// The game's bytes (at most `tickstep_engine::MAX_COMMAND_LEN`).
    pub bytes: Vec<u8>,
}

/// A command as verified: the tick it landed on and who sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickCommand {
    /// The tick.
    pub tick: Tick,
    /// The sender.
    pub player: PlayerId,
    /// The game's bytes.
    pub bytes: Vec<u8>,
}

/// What a client must know about the room's game.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Player slots.
    pub players: u8,
    /// Ticks per second.
    pub tick_rate: u32,
    /// Bytes of one player's input.
    pub input_size: u32,
    /// Clients stamp input at least this many ticks past their estimate of the room's
    /// tick (their lead grows from there with their round trip).
    pub min_lead: u32,
    /// Clients report their checksum every this many ticks.
    pub checksum_every: u32,
    /// The tick the game ends at, if it has an end.
    pub end_tick: Option<Tick>,
}

/// How a welcomed client enters the game.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The game has not started: wait for [`ServerMessage::Start`].
    Lobby,
    /// Start from the initial frame at tick 0; verified input follows from tick 1.
    FromStart,
    /// Restore the local snapshot offered in the hello (taken at `tick`).
    LocalSnapshot {
        /// The snapshot's tick.
        tick: Tick,
    },
    /// Wait (simulation and clock paused) for a snapshot the room is fetching.
    AwaitSnapshot,
}

/// Where the snapshot a client entered from came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotSource {
    /// No snapshot: the game was entered from tick 0.
    Start,
    /// The client's own snapshot from before it dropped.
    Local,
    /// Another client's, relayed and checked by the room.
    Buddy,
}

impl fmt::Display for SnapshotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotSource::Start => "start",
            SnapshotSource::Local => "local",
            SnapshotSource::Buddy => "buddy",
        })
    }
}

/// Consecutive verified ticks: per tick the presence and replaced masks, every slot's
/// input bytes (absent slots zeroed), `players * input_size` bytes per tick, and the
/// commands that landed on them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedTicks {
    /// The first tick carried.
    pub first: Tick,
    /// Presence mask per tick.
    pub presence: Vec<u64>,
    /// Mask of inputs the room filled in, per tick.
    pub replaced: Vec<u64>,
    /// Input bytes, tick after tick.
    pub inputs: Vec<u8>,
    /// The commands of these ticks, in tick order.
    pub commands: Vec<TickCommand>,
}

impl ClientMessage {
    /// The message's kind, by name (for logs, metrics and network tests).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Hello(_) => "Hello",
            ClientMessage::Update { .. } => "Update",
            ClientMessage::UploadChunk { .. } => "UploadChunk",
            ClientMessage::UploadUnavailable { .. } => "UploadUnavailable",
            ClientMessage::ResendChunks { .. } => "ResendChunks",
            ClientMessage::Leave => "Leave",
        }
    }
}

impl ServerMessage {
    /// The message's kind, by name (for logs, metrics and network tests).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "Welcome",
            ServerMessage::Refused(_) => "Refused",
            ServerMessage::Start { .. } => "Start",
            ServerMessage::Verified { .. } => "Verified",
            ServerMessage::SnapshotChunk { .. } => "SnapshotChunk",
            ServerMessage::UploadRequest { .. } => "UploadRequest",
            ServerMessage::ResendUpload { .. } => "ResendUpload",
            ServerMessage::Desync { .. } => "Desync",
            ServerMessage::Heartbeat { .. } => "Heartbeat",
            ServerMessage::End { .. } => "End",
            ServerMessage::Watching { .. } => "Watching",
        }
    }
}

impl VerifiedTicks {
    /// The ticks of `log` from `first` to `last`, as far as it holds them and as many
    /// as fit in about `max_bytes` encoded (at least one), read through `scratch`.
    pub fn from_log<I: Input>(
        log: &InputLog<I>,
        first: Tick,
        last: Tick,
        max_bytes: usize,
        scratch: &mut TickInputs<I>,
    ) -> VerifiedTicks {
        let mut ticks = VerifiedTicks::default();
        ticks.refill_from_log(log, first, last, max_bytes, scratch);
        ticks
    }

    /// The number of ticks held.
    pub fn len(&self) -> usize {
        self.presence.len()
    }

    /// Whether no tick is held.
    pub fn is_empty(&self) -> bool {
        self.presence.is_empty()
    }

    /// Replaces what `self` holds with [`VerifiedTicks::from_log`]'s ticks, keeping its
    /// buffers: refilling one as large as the last allocates nothing (but for the
    /// commands' bytes).
    pub fn refill_from_log<I: Input>(
        &mut self,
        log: &InputLog<I>,
        first: Tick,
        last: Tick,
        max_bytes: usize,
        scratch: &mut TickInputs<I>,
    ) {
        // Room for the ticks asked for, as many as can fit (each costs 20 bytes or more).
        let asked = last.saturating_sub(first).saturating_add(1).min(1 << 16) as usize;
        let count = asked.min(max_bytes / 20 + 1);
        self.first = first;
        for buffer in [&mut self.presence, &mut self.replaced] {
            buffer.clear();
            buffer.reserve(count);
        }
        self.inputs.clear();
        self.inputs
            .reserve(count * scratch.players() * size_of::<I>());
        self.commands.clear();
        let mut bytes = 0;
        for tick in first..=last {
            if log.read(tick, scratch).is_err() {
                break;
            }
            // Two masks of at most 10 bytes, the inputs, and each command's bytes with
            // its tick (10), player (1) and length (2).
            let size = 20
                + size_of_val(scratch.raw())
                + scratch.commands().map(|(_, b)| 13 + b.len()).sum::<usize>();
            if bytes > 0 && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            self.presence.push(scratch.present_mask());
            self.replaced.push(scratch.replaced_mask());
            self.inputs
                .extend_from_slice(bytemuck::cast_slice(scratch.raw()));
            self.commands
                .extend(scratch.commands().map(|(player, bytes)| TickCommand {
                    tick,
                    player,
                    bytes: bytes.to_vec(),
                }));
        }
    }
}

/// Client to server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Join or rejoin a room (repeated until answered).
    Hello(Box<Hello>),
    /// The client's progress, its unconfirmed input and commands and its recent
    /// checksums; sent whenever something changes and as a heartbeat.
    Update {
        /// The client's clock (µs since its own epoch) when this left: echoed back.
        sent_at: u64,
        /// Verified input held up to this tick.
        received: Tick,
        /// The frame's tick.
        stepped: Tick,
        /// The tick of the first input in `inputs`.
        first_input: Tick,
        /// Own input for consecutive ticks, `input_size` bytes each.
        inputs: Vec<u8>,
        /// Commands the room has not confirmed taking, oldest first.
        commands: Vec<Command>,
        /// Recent (tick, checksum) reports.
        checksums: Vec<(Tick, Checksum)>,
    },
    /// A piece of a snapshot the server asked for.
    UploadChunk {
        /// The request it answers.
        upload: u32,
        /// The piece.
        chunk: Chunk,
    },
    /// The snapshot asked for is no longer held.
    UploadUnavailable {
        /// The request it answers.
        upload: u32,
    },
    /// Chunks of a snapshot being received that have not arrived.
    ResendChunks {
        /// The transfer.
        transfer: u32,
        /// Missing chunk indices (at most [`MAX_LIST`] are honoured).
        chunks: Vec<u32>,
    },
    /// The player quits: free the slot, do not wait for a reconnection.
    Leave,
}

/// Server to client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerMessage {
    /// Joined: the slot, the game's parameters and how to enter it.
    Welcome {
        /// The player slot.
        player: PlayerId,
        /// The game's parameters.
        room: RoomInfo,
        /// How to enter the game.
        entry: Entry,
        /// The newest verified tick.
        live: Tick,
        /// The room's clock.
        timing: Timing,
        /// The token to show when coming back to this slot (a new one every welcome).
        resume: ResumeToken,
    },
    /// Refused or put out; the connection closes after this.
    Refused(Refusal),
    /// The game is scheduled: enter from tick 0, due when `timing.room_us` reaches 0.
    Start {
        /// The room's clock.
        timing: Timing,
    },
    /// Verified input, and the newest verified tick.
    Verified {
        /// The newest tick the room has verified.
        live: Tick,
        /// The room's clock.
        timing: Timing,
        /// Consecutive verified ticks.
        ticks: VerifiedTicks,
    },
    /// A piece of the snapshot to enter the game from.
    SnapshotChunk {
        /// Numbers this transfer.
        transfer: u32,
        /// The snapshot's tick.
        tick: Tick,
        /// The checksum the peers reported for that tick (the snapshot must match it).
        checksum: Checksum,
        /// Where it came from.
        source: SnapshotSource,
        /// The newest verified tick.
        live: Tick,
        /// The piece.
        chunk: Chunk,
    },
    /// Send the snapshot of this verified tick (as a buddy, or as desync evidence).
    UploadRequest {
        /// Numbers the request.
        upload: u32,
        /// The tick wanted.
        tick: Tick,
    },
    /// Chunks of an upload that have not arrived.
    ResendUpload {
        /// The request.
        upload: u32,
        /// Missing chunk indices.
        chunks: Vec<u32>,
    },
    /// Peers disagree about the frame at `tick`.
    Desync {
        /// The first tick found to differ.
        tick: Tick,
        /// The players whose checksum differs from the majority's (all reporters when
        /// there is no majority).
        disagreeing: Vec<PlayerId>,
    },
    /// Nothing else to say; proves the server is alive.
    Heartbeat {
        /// The newest verified tick.
        live: Tick,
        /// The room's clock.
        timing: Timing,
    },
    /// The game ended normally at `tick`.
    End {
        /// The last tick.
        tick: Tick,
    },
    /// Watching, without a seat (last, so the other
    /// messages keep their bytes): the game's parameters and how to enter it (the
    /// answer to a hello with `watch`).
    Watching {
        /// The game's parameters.
        room: RoomInfo,
        /// How to enter the game.
        entry: Entry,
        /// The newest verified tick.
        live: Tick,
        /// The room's clock.
        timing: Timing,
    },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLong(usize),
    /// Not a valid encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A valid message followed by extra bytes.
    #[error("{0} bytes follow the message")]
    TrailingBytes(usize),
}

/// Encodes a message.
pub fn encode<M: Serialize>(message: &M) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_into(message, &mut bytes);
    bytes
}

/// Encodes a message into `buffer`, replacing what it held: a buffer reused from message
/// to message stops growing once it has held the largest, so a sender that keeps one
/// encodes without allocating.
pub fn encode_into<M: Serialize>(message: &M, buffer: &mut Vec<u8>) {
    buffer.clear();
    // Cannot fail: every message type serialises, and a `Vec` takes any length.
    if postcard::to_io(message, &mut *buffer).is_err() {
        buffer.clear();
    }
}

/// The protocol version a client's hello declares, read from the start of its
/// encoding alone (`None` when `bytes` does not start as a hello). A hello of another
/// protocol version may not decode as this version's (fields come and go), but it
/// still deserves a `VersionMismatch` rather than being cut as malformed.
pub fn hello_protocol(bytes: &[u8]) -> Option<u32> {
    // A `ClientMessage` is its variant's index (`Hello` is 0) and then the variant's
    // fields, of which a hello's first is its protocol version: both varints.
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    if variant != 0 {
        return None;
    }
    postcard::take_from_bytes::<u32>(rest)
        .ok()
        .map(|(protocol, _)| protocol)
}

/// Decodes a message, refusing oversized, malformed and trailing input.
pub fn decode<'a, M: Deserialize<'a>>(bytes: &'a [u8]) -> Result<M, DecodeError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    let (message, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_bytes_are_refused() {
        let hello = ClientMessage::Hello(Box::new(Hello {
            protocol: PROTOCOL_VERSION,
            app_version: "1".into(),
            schema: SchemaHash::default(),
            initial: Checksum::default(),
            room: "r".into(),
            client_id: ClientId::from_seed(1),
            rejoin: true,
            local_snapshot: Some((5, Checksum::default())),
            sent_at: 9,
            resume: Some(ResumeToken([3; 16])),
            watch: false,
        }));
        let bytes = encode(&hello);
        assert_eq!(decode::<ClientMessage>(&bytes), Ok(hello));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode::<ClientMessage>(&long),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            decode::<ClientMessage>(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert_eq!(
            decode::<ServerMessage>(&huge),
            Err(DecodeError::TooLong(MAX_MESSAGE_LEN + 1))
        );
        // A length prefix promising far more than is there fails without allocating it.
        assert!(decode::<ServerMessage>(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn a_reused_buffer_holds_each_message_alone_and_stops_growing() {
        let long = ClientMessage::Update {
            sent_at: u64::MAX,
            received: 1 << 40,
            stepped: 1 << 40,
            first_input: 7,
            inputs: vec![9; 300],
            commands: Vec::new(),
            checksums: Vec::new(),
        };
        let mut buffer = Vec::new();
        encode_into(&long, &mut buffer);
        assert_eq!(decode::<ClientMessage>(&buffer), Ok(long.clone()));
        let (grown, place) = (buffer.capacity(), buffer.as_ptr());
        encode_into(&ClientMessage::Leave, &mut buffer);
        assert_eq!(
            buffer,
            encode(&ClientMessage::Leave),
            "nothing of the longer one left"
        );
        encode_into(&long, &mut buffer);
        assert_eq!(buffer, encode(&long));
        let kept = (buffer.capacity(), buffer.as_ptr());
        assert_eq!(kept, (grown, place), "the same allocation throughout");
    }
}
