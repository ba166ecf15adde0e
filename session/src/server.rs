//! `Server`: hosts rooms, routes each connection's messages to its room, and collects
//! what the rooms want sent and want the host to know.

use bytemuck::Pod;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tickstep_engine::{PlayerId, Tick};
use tickstep_replay::InputLog;

use crate::ids::TokenMint;
use crate::outbox::{Outbox, ServerTransmit};
use crate::protocol::{ClientMessage, ServerMessage};
use crate::room::{Liveness, Room, RoomConfig, RoomConfigError, RoomEvent, RoomStats, SlotHolder};
use crate::{ConnId, Refusal};

/// What happened in one of the server's rooms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    /// The room's name.
    pub room: String,
    /// What happened.
    pub event: RoomEvent,
}

/// Why a room could not be opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenRoomError {
    /// A room of that name is open.
    #[error("room {0:?} is already open")]
    AlreadyOpen(String),
    /// The rules cannot run a room.
    #[error(transparent)]
    Config(#[from] RoomConfigError),
}

/// Server-wide settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// A client silent this long is taken as lost (default 10 s).
    pub peer_timeout: Duration,
    /// A client that was sent nothing this long gets a heartbeat (default 1 s).
    pub heartbeat: Duration,
    /// Keys the resume tokens the server hands out (default: from the operating
    /// system's random source; set it only to make a simulated run repeatable).
    pub token_secret: [u8; 32],
}

impl Default for ServerConfig {
    fn default() -> Self {
        // Without OS randomness, the standard library's randomly keyed hasher (itself
        // seeded from the OS where it can be) still keys the tokens unpredictably.
        let token_secret = crate::ids::random_bytes().unwrap_or_else(|_| {
            use std::hash::{BuildHasher, Hasher};
            let mut secret = [0u8; 32];
            for part in secret.chunks_exact_mut(8) {
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u64(0x746f_6b65_6e73);
                part.copy_from_slice(&hasher.finish().to_le_bytes());
            }
            secret
        });
        ServerConfig {
            peer_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            token_secret,
        }
    }
}

/// Shows nothing of the secret.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("peer_timeout", &self.peer_timeout)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

/// The lockstep server: rooms of one game whose input type is `I`. Sans-IO: feed it
/// connections' messages and the time, and poll what to send. Its methods, by kind:
///
/// - **`handle_*`**, for what happened: [`Server::handle_message`] (a message on a
///   connection, numbered by the transport), [`Server::handle_disconnect`] (the
///   transport lost a connection), [`Server::handle_timeout`] (the time
///   [`Server::poll_timeout`] named came).
/// - **commands** from the host: [`Server::open_room`], [`Server::kick`].
/// - **`poll_*`**, for what to do: [`Server::poll_transmit`] (send, close),
///   [`Server::poll_event`] (what happened in the rooms, tagged with the room),
///   [`Server::poll_timeout`].
/// - **getters**: [`Server::room_tick`], [`Server::room_stats`],
///   [`Server::room_inputs`], [`Server::room_slots`], [`Server::room_first_desync`],
///   [`Server::connections`].
///
/// A host loop: hand over each message and lost connection as it comes, call
/// `handle_timeout` at `poll_timeout`, then drain `poll_transmit` and `poll_event`.
#[derive(Debug)]
pub struct Server<I> {
    config: ServerConfig,
    rooms: BTreeMap<String, Room<I>>,
    /// The room each connection said hello to.
    conns: BTreeMap<ConnId, String>,
    tokens: TokenMint,
    out: Outbox,
    events: VecDeque<ServerEvent>,
}

impl<I: Pod + PartialEq> Server<I> {
    /// A server with no rooms.
    pub fn new(config: ServerConfig) -> Server<I> {
        Server {
            tokens: TokenMint::new(config.token_secret),
            config,
            rooms: BTreeMap::new(),
            conns: BTreeMap::new(),
            out: Outbox::default(),
            events: VecDeque::new(),
        }
    }

    /// Opens a room (its game starts once `config.start_players` have joined).
    pub fn open_room(&mut self, name: &str, config: RoomConfig) -> Result<(), OpenRoomError> {
        if self.rooms.get(name).is_some_and(|room| !room.is_closed()) {
            return Err(OpenRoomError::AlreadyOpen(name.to_string()));
        }
        self.rooms.insert(name.to_string(), Room::new(config)?);
        Ok(())
    }

    /// A room's verified input so far (for recording it), if the room exists.
    pub fn room_inputs(&self, room: &str) -> Option<&InputLog<I>> {
        self.rooms.get(room).map(Room::inputs)
    }

    /// A room's newest verified tick.
    pub fn room_tick(&self, room: &str) -> Option<Tick> {
        self.rooms.get(room).map(Room::finalized)
    }

    /// What a room has done: its tick, ticks with input filled in, late ticks.
    pub fn room_stats(&self, room: &str) -> Option<RoomStats> {
        self.rooms.get(room).map(Room::stats)
    }

    /// Who holds each slot of a room: the client id and, while active, its connection.
    pub fn room_slots(&self, room: &str) -> Option<Vec<Option<SlotHolder>>> {
        self.rooms.get(room).map(Room::holders)
    }

    /// The first tick a room found a desync at.
    pub fn room_first_desync(&self, room: &str) -> Option<Tick> {
        self.rooms.get(room).and_then(Room::first_desync)
    }

    /// Removes `player` from `room` for good; the client is told it was kicked.
    pub fn kick(&mut self, now: Duration, room: &str, player: PlayerId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.kick(now, player, &mut self.out);
        }
        self.collect_events(room);
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Duration, conn: ConnId, message: ClientMessage) {
        let bound = self.conns.get(&conn).cloned();
        let room = match (&message, bound) {
            (ClientMessage::Hello(hello), Some(room)) if room != hello.room => {
                let problem = "a connection joins one room";
                self.refuse(now, conn, Refusal::ProtocolViolation(problem.into()));
                return;
            }
            (ClientMessage::Hello(hello), _) => {
                let Some(room) = self.rooms.get_mut(&hello.room) else {
                    let name = hello.room.chars().take(64).collect();
                    self.refuse(now, conn, Refusal::NoSuchRoom(name));
                    return;
                };
                let result = if room.is_closed() {
                    Err(Refusal::RoomClosed)
                } else {
                    room.hello(now, conn, hello, &mut self.tokens, &mut self.out)
                };
                self.collect_events(&hello.room);
                if let Err(error) = result {
                    self.refuse(now, conn, error);
                    return;
                }
                self.conns.insert(conn, hello.room.clone());
                hello.room.clone()
            }
            (_, Some(room)) => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.message(now, conn, message, &mut self.out);
                }
                room
            }
            (_, None) => {
                let problem = "say hello first";
                self.refuse(now, conn, Refusal::ProtocolViolation(problem.into()));
                return;
            }
        };
        self.drive_room(now, &room);
    }

    /// Refuses `conn` with `error` and closes it; a slot it held goes inactive.
    fn refuse(&mut self, now: Duration, conn: ConnId, error: Refusal) {
        self.out.send(conn, ServerMessage::Refused(error));
        self.out.close(conn);
        self.handle_disconnect(now, conn);
    }

    /// The transport lost `conn` (closed by the peer, or failed).
    pub fn handle_disconnect(&mut self, now: Duration, conn: ConnId) {
        if let Some(name) = self.conns.remove(&conn)
            && let Some(room) = self.rooms.get_mut(&name)
        {
            room.disconnect(now, conn, "connection lost", &mut self.out);
            self.drive_room(now, &name);
        }
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            peer_timeout: self.config.peer_timeout,
            heartbeat: self.config.heartbeat,
        }
    }

    fn drive_room(&mut self, now: Duration, name: &str) {
        let liveness = self.liveness();
        if let Some(room) = self.rooms.get_mut(name) {
            room.drive(now, liveness, &mut self.out);
        }
        self.collect_events(name);
    }

    /// Moves a room's events to the server's, tagged with its name.
    fn collect_events(&mut self, name: &str) {
        if let Some(room) = self.rooms.get_mut(name) {
            while let Some(event) = room.poll_event() {
                self.events.push_back(ServerEvent {
                    room: name.to_string(),
                    event,
                });
            }
        }
    }

    /// Time passed: finalise due ticks, run timeouts.
    pub fn handle_timeout(&mut self, now: Duration) {
        let liveness = self.liveness();
        for (name, room) in &mut self.rooms {
            room.drive(now, liveness, &mut self.out);
            while let Some(event) = room.poll_event() {
                self.events.push_back(ServerEvent {
                    room: name.clone(),
                    event,
                });
            }
        }
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.rooms.values().filter_map(Room::next_wake).min()
    }

    /// The next thing to send or close.
    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        let transmit = self.out.pop()?;
        if let ServerTransmit::Close { conn } = transmit {
            self.conns.remove(&conn);
        }
        Some(transmit)
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Connections the server knows (bounded by the transport's open connections).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_game::{self, Input};
    use crate::{ClientId, Hello, PROTOCOL_VERSION};
    use tickstep_engine::checksum;

    /// Regression: one connection saying hello as two clients held two slots.
    #[test]
    fn a_connection_cannot_hold_two_slots() {
        let frame = test_game::frame(1);
        let mut server = Server::<Input>::new(ServerConfig::default());
        let room = RoomConfig::new(3, "t", &frame);
        server.open_room("r", room).unwrap();
        let hello = |n| {
            ClientMessage::Hello(Box::new(Hello {
                protocol: PROTOCOL_VERSION,
                app_version: "t".into(),
                schema: frame.schema().hash(),
                initial: checksum(&frame),
                room: "r".into(),
                client_id: ClientId::from_seed(n),
                rejoin: false,
                local_snapshot: None,
                sent_at: 0,
                resume: None,
            }))
        };
        server.handle_message(Duration::ZERO, ConnId(1), hello(1));
        server.handle_message(Duration::ZERO, ConnId(1), hello(2));
        let refused = std::iter::from_fn(|| server.poll_transmit()).any(|t| {
            matches!(
                t,
                ServerTransmit::Send {
                    message: ServerMessage::Refused(Refusal::ProtocolViolation(_)),
                    ..
                }
            )
        });
        assert!(refused);
        let held = server
            .room_slots("r")
            .unwrap()
            .into_iter()
            .flatten()
            .count();
        assert_eq!(held, 1);
    }
}
