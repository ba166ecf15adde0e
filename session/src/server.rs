//! `Server`: hosts rooms, routes each connection's messages to its room, and collects
//! what the rooms want sent and want the host to know.

use bytemuck::Pod;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tickstep_engine::{PlayerId, Tick};
use tickstep_replay::InputLog;

use super::protocol::{ClientMessage, Entry, ServerMessage};
use super::room::{Room, RoomConfig, RoomStats, SlotHolder};
use super::{ConnId, SessionError};

/// What the server wants the transport to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTransmit {
    /// Send a message on a connection.
    Send {
        /// The connection.
        to: ConnId,
        /// The message.
        message: ServerMessage,
    },
    /// Close a connection (after sending what was queued before this).
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// What happened in a room, for the host's log and tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A player took or retook a slot.
    PlayerJoined {
        /// The room.
        room: String,
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
        /// The room.
        room: String,
        /// The slot.
        player: PlayerId,
        /// Why the connection ended, when it was not a quit.
        reason: Option<String>,
    },
    /// An inactive player's slot was freed after PlayerTTL.
    SlotFreed {
        /// The room.
        room: String,
        /// The slot.
        player: PlayerId,
    },
    /// The game started at tick 0.
    GameStarted {
        /// The room.
        room: String,
    },
    /// A buddy was asked for the snapshot of `tick`.
    BuddyAsked {
        /// The room.
        room: String,
        /// The buddy.
        buddy: PlayerId,
        /// The tick.
        tick: Tick,
    },
    /// A buddy's snapshot did not match the peers' checksums (or was broken).
    BuddySnapshotRejected {
        /// The room.
        room: String,
        /// The buddy.
        buddy: PlayerId,
        /// The tick asked for.
        tick: Tick,
    },
    /// A checked snapshot is being sent to a joiner.
    SnapshotSent {
        /// The room.
        room: String,
        /// The joiner.
        player: PlayerId,
        /// The snapshot's tick.
        tick: Tick,
        /// Its size.
        bytes: u64,
    },
    /// Players disagree about the frame at `tick`.
    Desync {
        /// The room.
        room: String,
        /// The tick.
        tick: Tick,
        /// The minority (everyone who reported, when there is no majority).
        disagreeing: Vec<PlayerId>,
    },
    /// A player's snapshot of a desynced tick, kept for diagnosis.
    Evidence {
        /// The room.
        room: String,
        /// The tick.
        tick: Tick,
        /// Whose frame it is.
        player: PlayerId,
        /// The snapshot.
        snapshot: Vec<u8>,
    },
    /// The game reached its end tick.
    GameEnded {
        /// The room.
        room: String,
        /// The last tick.
        tick: Tick,
    },
    /// The room closed (empty past EmptyRoomTTL, or ended and empty).
    RoomClosed {
        /// The room.
        room: String,
    },
}

/// Server-wide timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// A client silent this long is taken as lost (default 10 s).
    pub peer_timeout: Duration,
    /// A client that was sent nothing this long gets a heartbeat (default 1 s).
    pub heartbeat: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            peer_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// Messages and events waiting to be polled.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub transmits: VecDeque<ServerTransmit>,
    pub events: VecDeque<ServerEvent>,
}

impl Outbox {
    pub fn send(&mut self, to: ConnId, message: ServerMessage) {
        self.transmits
            .push_back(ServerTransmit::Send { to, message });
    }

    pub fn close(&mut self, conn: ConnId) {
        self.transmits.push_back(ServerTransmit::Close { conn });
    }
}

/// The lockstep server: rooms of one game whose input type is `I`. Sans-IO: feed it
/// connections' messages and the time, and poll what to send.
#[derive(Debug)]
pub struct Server<I> {
    config: ServerConfig,
    rooms: BTreeMap<String, Room<I>>,
    /// The room each connection said hello to.
    conns: BTreeMap<ConnId, String>,
    out: Outbox,
}

impl<I: Pod + PartialEq> Server<I> {
    /// A server with no rooms.
    pub fn new(config: ServerConfig) -> Server<I> {
        Server {
            config,
            rooms: BTreeMap::new(),
            conns: BTreeMap::new(),
            out: Outbox::default(),
        }
    }

    /// Opens a room (its game starts once `config.start_players` have joined).
    pub fn open_room(&mut self, name: &str, config: RoomConfig) -> Result<(), String> {
        if self.rooms.get(name).is_some_and(|room| !room.is_closed()) {
            return Err(format!("room {name:?} is already open"));
        }
        self.rooms
            .insert(name.to_string(), Room::new(name, config)?);
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
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Duration, conn: ConnId, message: ClientMessage) {
        let bound = self.conns.get(&conn).cloned();
        let room = match (&message, bound) {
            (ClientMessage::Hello(hello), Some(room)) if room != hello.room => {
                let problem = "a connection joins one room";
                self.refuse(now, conn, SessionError::ProtocolViolation(problem.into()));
                return;
            }
            (ClientMessage::Hello(hello), _) => {
                let Some(room) = self.rooms.get_mut(&hello.room) else {
                    let name = hello.room.chars().take(64).collect();
                    self.refuse(now, conn, SessionError::NoSuchRoom(name));
                    return;
                };
                let result = if room.is_closed() {
                    Err(SessionError::RoomClosed)
                } else {
                    room.hello(now, conn, hello, &mut self.out)
                };
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
                self.refuse(now, conn, SessionError::ProtocolViolation(problem.into()));
                return;
            }
        };
        self.drive_room(now, &room);
    }

    /// Refuses `conn` with `error` and closes it; a slot it held goes inactive.
    fn refuse(&mut self, now: Duration, conn: ConnId, error: SessionError) {
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

    fn drive_room(&mut self, now: Duration, name: &str) {
        let (peer_timeout, heartbeat) = (self.config.peer_timeout, self.config.heartbeat);
        if let Some(room) = self.rooms.get_mut(name) {
            room.drive(now, peer_timeout, heartbeat, &mut self.out);
        }
    }

    /// Time passed: finalise due ticks, run timeouts.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.drive(now);
    }

    fn drive(&mut self, now: Duration) {
        let (peer_timeout, heartbeat) = (self.config.peer_timeout, self.config.heartbeat);
        for room in self.rooms.values_mut() {
            room.drive(now, peer_timeout, heartbeat, &mut self.out);
        }
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.rooms.values().filter_map(Room::next_wake).min()
    }

    /// The next thing to send or close.
    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        let transmit = self.out.transmits.pop_front()?;
        if let ServerTransmit::Close { conn } = transmit {
            self.conns.remove(&conn);
        }
        Some(transmit)
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.out.events.pop_front()
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
        let room = RoomConfig::new(3, "t", frame.schema().hash(), checksum(&frame));
        server.open_room("r", room).unwrap();
        let hello = |n| {
            ClientMessage::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                app_version: "t".into(),
                schema: frame.schema().hash(),
                initial: checksum(&frame),
                room: "r".into(),
                client_id: ClientId::from_seed(n),
                rejoin: false,
                local_snapshot: None,
            })
        };
        server.handle_message(Duration::ZERO, ConnId(1), hello(1));
        server.handle_message(Duration::ZERO, ConnId(1), hello(2));
        let refused = std::iter::from_fn(|| server.poll_transmit()).any(|t| {
            matches!(
                t,
                ServerTransmit::Send {
                    message: ServerMessage::Refused(SessionError::ProtocolViolation(_)),
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
