//! The session under hostile input: scripts of messages from arbitrary peers, with
//! arbitrary time steps, fed to a server and to a client. Nothing may panic, and the
//! invariants hold after every step: a client id holds at most one slot, the room's
//! tick never goes back, the server tracks no more connections than exist, every
//! message either side sends fits the wire limit, no timer is left in the past after
//! its timeout ran (a driver would spin), and decoding any bytes either fails cleanly
//! or round-trips.
//!
//! Scripts are decoded from raw bytes by a small reader ([`Script`]), so the fuzz
//! targets and their proptest twins share them exactly; most bytes still make
//! well-formed messages (right schema, plausible ticks), so the fuzzer gets deep.

use std::collections::BTreeSet;
use std::time::Duration;

use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_engine::MAX_COMMAND_LEN;
use tickstep_engine::{Checksum, Frame, PlayerId, checksum};
use tickstep_session::{
    Client, ClientConfig, ClientId, ClientMessage, ClientTransmit, Command, ConnId, Echo, Entry,
    Hello, MAX_MESSAGE_LEN, PROTOCOL_VERSION, ReconnectInfo, Refusal, ResumeToken, RoomConfig,
    RoomInfo, Server, ServerConfig, ServerMessage, ServerTransmit, SnapshotSource, TickCommand,
    Timing, VerifiedTicks, decode, encode,
};
use tickstep_snapshot::{Chunk, split};

/// Reads script values from bytes; past the end everything reads as zero.
pub struct Script<'a> {
    bytes: &'a [u8],
}

impl<'a> Script<'a> {
    /// A script over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Script<'a> {
        Script { bytes }
    }

    /// Whether bytes are left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn u8(&mut self) -> u8 {
        let (first, rest) = self
            .bytes
            .split_first()
            .map_or((0, &[][..]), |(f, r)| (*f, r));
        self.bytes = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `max` bytes, length first.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.u8() as usize).min(max).min(self.bytes.len());
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        taken.to_vec()
    }
}

const CONNS: u64 = 6;
const ROOM: &str = "fuzz";

fn game() -> ArenaConfig {
    ArenaConfig {
        units: 12,
        players: 3,
        seed: 9,
    }
}

fn initial() -> Frame<ArenaGlobals> {
    // Cannot fail: a small arena within every limit.
    arena::new_frame(&game()).unwrap_or_else(|e| panic!("fuzz arena: {e}"))
}

/// Short timers so a short script reaches joins, entries, snapshots and expiry.
fn room_config(frame: &Frame<ArenaGlobals>) -> RoomConfig {
    let mut room = RoomConfig::new(3, "fuzz", frame);
    room.start_players = 1;
    room.start_window = Duration::from_millis(500);
    room.snapshot_timeout = Duration::from_secs(2);
    room.player_ttl = Duration::from_secs(3);
    room.empty_room_ttl = Duration::from_secs(5);
    room.history = Duration::from_secs(30);
    room.max_snapshot_len = 1 << 20;
    room.max_seats_per_address = Some(2);
    room.checksum_every = 4;
    room
}

/// A chunk of a real snapshot of `frame` or a mangled one.
fn chunk(script: &mut Script, frame: &Frame<ArenaGlobals>) -> Chunk {
    let mut bytes = Vec::new();
    tickstep_snapshot::encode(frame, &mut bytes);
    let size = tickstep_snapshot::MIN_CHUNK_SIZE as usize + script.u16() as usize;
    let chunks: Vec<Chunk> = split(&bytes, size).collect();
    let mut chunk = chunks[script.u8() as usize % chunks.len()].clone();
    match script.u8() % 6 {
        0 => chunk.data = script.bytes(64),
        1 => chunk.total_len = script.u16() as u64 * 4096,
        2 => chunk.count = script.u8() as u32,
        _ => {}
    }
    chunk
}

/// A client message; ticks mostly land near `tick` (the room's newest) so they matter.
fn client_message(
    script: &mut Script,
    frame: &Frame<ArenaGlobals>,
    tick: u64,
) -> Option<ClientMessage> {
    let hash = frame.schema().hash();
    let near = |script: &mut Script| match script.u8() % 4 {
        0 => script.u16() as u64,
        _ => (tick + script.u8() as u64 % 12).saturating_sub(4),
    };
    Some(match script.u8() % 10 {
        0..=2 => {
            let wrong = script.u8();
            let field = |bit: u8| wrong & bit != 0 && wrong & 0x80 != 0;
            ClientMessage::Hello(Box::new(Hello {
                protocol: PROTOCOL_VERSION + field(1) as u32,
                app_version: if field(2) {
                    "other".into()
                } else {
                    "fuzz".into()
                },
                schema: if field(4) { Checksum::default() } else { hash },
                initial: if field(8) {
                    Checksum::default()
                } else {
                    checksum(frame)
                },
                room: if field(16) {
                    "elsewhere".into()
                } else {
                    ROOM.into()
                },
                client_id: ClientId::from_seed(script.u8() as u64 % 5),
                rejoin: script.u8().is_multiple_of(4),
                local_snapshot: script.bool().then(|| (near(script), checksum(frame))),
                sent_at: script.u16() as u64 * 1000,
                resume: script.bool().then(|| ResumeToken([script.u8(); 16])),
                watch: script.u8().is_multiple_of(4),
            }))
        }
        3..=6 => ClientMessage::Update {
            sent_at: script.u16() as u64 * 1000,
            received: near(script),
            stepped: near(script),
            first_input: near(script),
            inputs: script.bytes(48),
            commands: (0..script.u8() % 3)
                .map(|_| Command {
                    seq: script.u8() as u32 % 6,
                    tick: near(script),
                    bytes: match script.u8() % 8 {
                        0 => vec![7; MAX_COMMAND_LEN + 1],
                        _ => script.bytes(16),
                    },
                })
                .collect(),
            checksums: (0..script.u8() % 4)
                .map(|_| {
                    let sum = if script.bool() {
                        checksum(frame)
                    } else {
                        Checksum::default()
                    };
                    (near(script) & !3, sum)
                })
                .collect(),
        },
        7 => ClientMessage::UploadChunk {
            upload: script.u8() as u32 % 8,
            chunk: chunk(script, frame),
        },
        8 => match script.bool() {
            true => ClientMessage::UploadUnavailable {
                upload: script.u8() as u32 % 8,
            },
            false => ClientMessage::ResendChunks {
                transfer: script.u8() as u32 % 8,
                chunks: script.bytes(8).into_iter().map(u32::from).collect(),
            },
        },
        _ => match script.u8() % 4 {
            0 => ClientMessage::Leave,
            _ => return decode(&script.bytes(255)).ok(),
        },
    })
}

/// After a timeout ran and its output was drained, the next wake is in the future: a
/// timer left in the past would make a driver spin.
fn check_wake(timed_out: bool, wake: Option<Duration>, now: Duration) {
    if timed_out {
        assert!(
            wake.is_none_or(|at| at > now),
            "a timer in the past would spin: {wake:?} at {now:?}"
        );
    }
}

fn check_transmit_size(message: &impl serde::Serialize) {
    let len = encode(message).len();
    assert!(
        len <= MAX_MESSAGE_LEN,
        "a {len}-byte message exceeds the wire limit"
    );
}

/// Drives a server with a script of connections from two addresses (under tight caps),
/// messages from up to six connections, disconnects, kicks and time steps, checking the
/// invariants after every step.
pub fn check_server_script(bytes: &[u8]) {
    let frame = initial();
    let mut server = Server::<ArenaInput>::new(ServerConfig {
        max_connections: 5,
        max_connections_per_address: 3,
        hello_timeout: Duration::from_secs(2),
        upload_budget: 256 << 10,
        ..ServerConfig::default()
    });
    server
        .open_room(ROOM, room_config(&frame))
        .unwrap_or_else(|e| panic!("room: {e}"));
    let mut script = Script::new(bytes);
    let mut now = Duration::ZERO;
    let mut newest_tick = 0;
    let mut open: BTreeSet<ConnId> = BTreeSet::new();
    while !script.is_empty() {
        let conn = ConnId(script.u8() as u64 % CONNS);
        let mut timed_out = false;
        match script.u8() % 16 {
            0..=3 => {
                now += Duration::from_millis(script.u8() as u64 * 10);
                server.handle_timeout(now);
                timed_out = true;
            }
            4 => {
                open.remove(&conn);
                server.handle_disconnect(now, conn);
            }
            5 => server.kick(now, ROOM, PlayerId(script.u8() % 4)),
            6 => {
                let address = std::net::IpAddr::from([10, 0, 0, script.u8() % 2]);
                if server.handle_connection(now, conn, address).is_ok() {
                    open.insert(conn);
                }
            }
            _ => {
                if let Some(message) = client_message(&mut script, &frame, newest_tick) {
                    open.insert(conn);
                    server.handle_message(now, conn, message);
                }
            }
        }
        while let Some(transmit) = server.poll_transmit() {
            match &transmit {
                ServerTransmit::Send { to, message } => {
                    assert!(to.0 < CONNS, "sent to a connection that never existed");
                    check_transmit_size(message);
                }
                ServerTransmit::Close { conn } => {
                    open.remove(conn);
                }
            }
            // As a network loop does: a sent message's buffers are reused.
            server.recycle(transmit);
        }
        while server.poll_event().is_some() {}
        check_wake(timed_out, server.poll_timeout(), now);
        let tick = server.room_tick(ROOM).unwrap_or(0);
        assert!(
            tick >= newest_tick,
            "the room's tick went back from {newest_tick} to {tick}"
        );
        newest_tick = tick;
        assert!(
            server.connections() <= CONNS as usize,
            "more connections tracked than exist"
        );
        if let Some(slots) = server.room_slots(ROOM) {
            let ids: Vec<ClientId> = slots.iter().flatten().map(|(id, _)| *id).collect();
            let distinct: BTreeSet<_> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len(), "a client id holds two slots");
            let conns: Vec<ConnId> = slots
                .iter()
                .flatten()
                .filter_map(|(_, conn)| *conn)
                .collect();
            let distinct: BTreeSet<_> = conns.iter().collect();
            assert_eq!(distinct.len(), conns.len(), "a connection holds two slots");
        }
        if let Some(wake) = server.poll_timeout() {
            assert!(
                wake <= now + Duration::from_secs(3600),
                "a timer a hour away: {wake:?}"
            );
        }
    }
}

/// A server message; ticks mostly land just past `next` (the client's next tick).
fn server_message(
    script: &mut Script,
    frame: &Frame<ArenaGlobals>,
    next: u64,
) -> Option<ServerMessage> {
    let tick = |script: &mut Script| match script.u8() % 4 {
        0 => script.u16() as u64 % 512,
        _ => next + script.u8() as u64 % 3,
    };
    Some(match script.u8() % 16 {
        2 if script.bool() => ServerMessage::Watching {
            room: RoomInfo {
                players: 4,
                tick_rate: 60,
                input_size: 4,
                min_lead: 1,
                checksum_every: 30,
                end_tick: script.bool().then(|| tick(script)),
            },
            entry: match script.u8() % 3 {
                0 => Entry::Lobby,
                1 => Entry::AwaitSnapshot,
                _ => Entry::FromStart,
            },
            live: tick(script),
            timing: timing(script),
        },
        0..=2 => ServerMessage::Welcome {
            player: PlayerId(script.u8() % 4),
            room: RoomInfo {
                players: match script.u8() % 16 {
                    0 => 0,
                    1 => 64,
                    2 => 200,
                    _ => 3,
                },
                tick_rate: 60,
                input_size: if !script.u8().is_multiple_of(16) {
                    4
                } else {
                    script.u8() as u32
                },
                min_lead: script.u8() as u32 % 8,
                checksum_every: script.u8() as u32 % 8,
                end_tick: script.bool().then(|| tick(script)),
            },
            entry: match script.u8() % 5 {
                0 => Entry::Lobby,
                1 => Entry::LocalSnapshot { tick: tick(script) },
                2 => Entry::AwaitSnapshot,
                _ => Entry::FromStart,
            },
            live: tick(script),
            timing: timing(script),
            resume: ResumeToken([script.u8(); 16]),
        },
        3 if script.u8().is_multiple_of(4) => ServerMessage::Refused(match script.u8() % 4 {
            0 => Refusal::DuplicateClientId,
            1 => Refusal::PlayerTtlExpired,
            2 => Refusal::Kicked,
            _ => Refusal::ProtocolViolation("fuzz".into()),
        }),
        3 => ServerMessage::Start {
            timing: timing(script),
        },
        4..=9 => {
            let count = script.u8() as usize % 8;
            let row = if !script.u8().is_multiple_of(8) {
                12
            } else {
                script.u8() as usize % 16
            };
            let first = tick(script);
            ServerMessage::Verified {
                live: tick(script),
                timing: timing(script),
                ticks: VerifiedTicks {
                    first,
                    presence: (0..count).map(|_| script.u8() as u64).collect(),
                    replaced: (0..count).map(|_| script.u8() as u64 & 3).collect(),
                    inputs: (0..count * row).map(|i| i as u8).collect(),
                    commands: (0..script.u8() % 3)
                        .map(|_| TickCommand {
                            tick: first + script.u8() as u64 % 8,
                            player: PlayerId(script.u8() % 4),
                            bytes: script.bytes(8),
                        })
                        .collect(),
                },
            }
        }
        10 => ServerMessage::SnapshotChunk {
            transfer: script.u8() as u32 % 4,
            tick: 0,
            checksum: if script.bool() {
                checksum(frame)
            } else {
                Checksum::default()
            },
            source: SnapshotSource::Buddy,
            live: tick(script),
            chunk: chunk(script, frame),
        },
        11 => ServerMessage::UploadRequest {
            upload: script.u8() as u32 % 4,
            tick: tick(script),
        },
        12 => ServerMessage::ResendUpload {
            upload: script.u8() as u32 % 4,
            chunks: script.bytes(8).into_iter().map(u32::from).collect(),
        },
        13 => ServerMessage::Desync {
            tick: tick(script),
            disagreeing: vec![PlayerId(script.u8())],
        },
        14 => ServerMessage::Heartbeat {
            live: tick(script),
            timing: timing(script),
        },
        15 if script.bool() => ServerMessage::End { tick: tick(script) },
        _ => return decode(&script.bytes(255)).ok(),
    })
}

/// A room clock reading and timing report, plausible or wild.
fn timing(script: &mut Script) -> Timing {
    Timing {
        room_us: script.bool().then(|| (script.u16() as i64 - 8_000) * 1_000),
        echo: script.bool().then(|| Echo {
            client_us: script.u16() as u64 * 1_000,
            held_us: script.u16() as u32,
        }),
        slack_us: script.bool().then(|| (script.u16() as i32 - 30_000) * 4),
        commands_taken: script.u8() as u32 % 8,
    }
}

/// Drives a client with a script of hostile server messages, connection losses, host
/// calls (advance, input, leave, cancel, reconnect) and time steps.
pub fn check_client_script(bytes: &[u8]) {
    let frame = initial();
    let info = ReconnectInfo::new("fuzz", ROOM, ClientId::from_seed(1));
    let mut script = Script::new(bytes);
    let config = ClientConfig {
        app_version: "fuzz".into(),
        max_snapshot_len: 1 << 20,
        watch: script.u8().is_multiple_of(4),
        ..ClientConfig::default()
    };
    let mut client = Client::new(config, info, frame.clone(), arena::simulation());
    let mut now = Duration::ZERO;
    client.connect(now);
    while !script.is_empty() {
        let mut timed_out = false;
        match script.u8() % 32 {
            0..=4 => {
                now += Duration::from_millis(script.u8() as u64 * 10);
                client.handle_timeout(now);
                timed_out = true;
            }
            5 => client.handle_connection_lost(now, "fuzz"),
            6..=9 => {
                client.advance(now, 1 + script.u8() as u64 % 64);
            }
            10 => {
                client.send_input(
                    now,
                    ArenaInput {
                        move_x: 1,
                        move_y: 0,
                        aim: 2,
                        fire: 1,
                    },
                );
            }
            11 => {
                let _ = client.send_command(now, &script.bytes(8));
            }
            12 => match script.u8() % 8 {
                0 => client.leave(now),
                1 => client.cancel(),
                2 | 3 => client.join_as_new(now),
                _ => client.connect(now),
            },
            _ => {
                let next = client.frame().tick() + 1;
                if let Some(message) = server_message(&mut script, &frame, next) {
                    client.handle_message(now, message);
                }
            }
        }
        while let Some(transmit) = client.poll_transmit(now) {
            if let ClientTransmit::Send(message) = transmit {
                check_transmit_size(&message);
            }
        }
        while client.poll_event().is_some() {}
        check_wake(timed_out, client.poll_timeout(), now);
        if client.next_input_tick(now).is_some() {
            assert!(client.room().is_some(), "input due before joining");
        }
        let saved = client.reconnect_info().to_bytes();
        assert!(
            ReconnectInfo::from_bytes(&saved).is_ok(),
            "saved reconnect info reads back"
        );
    }
}

/// Decoding any bytes as a stream frame header, a client message, a server message or
/// saved reconnect data fails cleanly or gives a value that encodes back to the same;
/// reading a hello's declared version never panics and agrees with a decoded hello.
pub fn check_message_decoding(bytes: &[u8]) {
    if let Some(header) = bytes.first_chunk::<{ tickstep_net::frame::HEADER_LEN }>()
        && let Ok((_, len)) = tickstep_net::frame::parse_header(*header)
    {
        assert!(
            len <= tickstep_net::frame::MAX_FRAME_LEN,
            "a frame header passed a length over the cap"
        );
    }
    let declared = tickstep_session::hello_protocol(bytes);
    if let Ok(message) = decode::<ClientMessage>(bytes) {
        // A hello's version is read from its start alone, as decoding it reads it.
        let version = match &message {
            ClientMessage::Hello(hello) => Some(hello.protocol),
            _ => None,
        };
        assert_eq!(declared, version, "a decoded message's declared version");
        assert_eq!(
            decode::<ClientMessage>(&encode(&message)).ok(),
            Some(message)
        );
    }
    if let Ok(message) = decode::<ServerMessage>(bytes) {
        assert_eq!(
            decode::<ServerMessage>(&encode(&message)).ok(),
            Some(message)
        );
    }
    if let Ok(info) = ReconnectInfo::from_bytes(bytes) {
        assert_eq!(ReconnectInfo::from_bytes(&info.to_bytes()).ok(), Some(info));
    }
}
