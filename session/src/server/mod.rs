//! `Server`: hosts rooms, routes each connection's messages to its room, and collects
//! what the rooms want sent and want the host to know.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{PlayerId, Tick};
use tickstep_replay::InputLog;

use crate::ids::TokenMint;
use crate::outbox::{Outbox, ServerTransmit};
use crate::protocol::{ClientMessage, PROTOCOL_VERSION, ServerMessage};
use crate::room::{
    Liveness, Room, RoomConfig, RoomConfigError, RoomEvent, RoomPhase, RoomStats, SlotHolder,
};
use crate::{ConnId, Refusal};

mod schedule;
mod stats;

use schedule::Schedule;
pub use stats::ServerStats;

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
    /// The server is draining: it opens no new rooms.
    #[error("the server is draining: it opens no new rooms")]
    Draining,
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
    /// Connections held at most (default 10,000); more are refused with
    /// `TooManyConnections`.
    pub max_connections: usize,
    /// Connections held at most from one address (default 1,000: a LAN party, a NAT
    /// or a test on loopback never meets it).
    pub max_connections_per_address: usize,
    /// A connection that has not said hello this long after it opened is closed
    /// (default 5 s). Traffic before the hello does not extend it.
    pub hello_timeout: Duration,
    /// Bytes all unfinished uploads (buddy snapshots, evidence) may hold together
    /// (default 64 MiB); a chunk past it is dropped, and the upload times out.
    pub upload_budget: u64,
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
            max_connections: 10_000,
            max_connections_per_address: 1_000,
            hello_timeout: Duration::from_secs(5),
            upload_budget: 64 << 20,
        }
    }
}

/// Shows nothing of the secret.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("peer_timeout", &self.peer_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("hello_timeout", &self.hello_timeout)
            .field("upload_budget", &self.upload_budget)
            .finish_non_exhaustive()
    }
}

/// The address a host's connections, seats and watchers are counted under: an IPv4
/// address as it is (an IPv4-mapped IPv6 one as IPv4), an IPv6 address's /64 (a host
/// gets a whole /64, so counting single addresses would let it take any number).
pub fn host_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The lockstep server: rooms of one game whose input type is `I`. Sans-IO: feed it
/// connections' messages and the time, and poll what to send. Its methods, by kind:
///
/// - **`handle_*`**, for what happened: [`Server::handle_connection`] (the transport
///   opened a connection from an address: connection caps, the hello deadline and
///   seat limits per address apply to connections announced this way),
///   [`Server::handle_message`] (a message on a connection, numbered by the
///   transport), [`Server::handle_disconnect`] (the transport lost a connection),
///   [`Server::handle_timeout`] (the time [`Server::poll_timeout`] named came).
/// - **commands** from the host: [`Server::open_room`], [`Server::kick`],
///   [`Server::drain`].
/// - **`poll_*`**, for what to do: [`Server::poll_transmit`] (send, close; hand each
///   back through [`Server::recycle`] once sent, so that its buffers are reused),
///   [`Server::poll_event`] (what happened in the rooms, tagged with the room),
///   [`Server::poll_timeout`].
/// - **getters**: [`Server::room_tick`], [`Server::room_stats`],
///   [`Server::room_inputs`], [`Server::room_slots`], [`Server::room_first_desync`],
///   [`Server::room_phase`], [`Server::connections`], [`Server::games_in_play`],
///   [`Server::stats`].
///
/// A host loop: hand over each message and lost connection as it comes, call
/// `handle_timeout` at `poll_timeout`, then drain `poll_transmit` (recycling each) and
/// `poll_event`.
#[derive(Debug)]
pub struct Server<I> {
    config: ServerConfig,
    rooms: BTreeMap<Arc<str>, Room<I>>,
    /// When each room next needs driving.
    schedule: Schedule,
    /// The upload bytes of each room holding any, as of its last settling (see
    /// [`Server::count_uploads`]), and their sum, which the upload budget bounds.
    uploads: BTreeMap<Arc<str>, u64>,
    uploads_held: u64,
    /// The rooms being driven by `handle_timeout` (kept for its buffer).
    due: Vec<Arc<str>>,
    /// The room each connection said hello to.
    conns: BTreeMap<ConnId, Arc<str>>,
    /// Connections the transport announced: their address, and until their hello, its
    /// deadline.
    opened: BTreeMap<ConnId, Opened>,
    /// Announced connections per address.
    per_address: BTreeMap<IpAddr, usize>,
    /// When each announced connection without its hello yet must have said it.
    hello_due: BTreeSet<(Duration, ConnId)>,
    tokens: TokenMint,
    out: Outbox,
    events: VecDeque<ServerEvent>,
    /// Counters so far (the gauges are filled in when asked).
    counted: ServerStats,
    /// What rooms that were replaced by a new room of their name had done.
    retired: RoomStats,
}

impl<I: Input> Server<I> {
    /// A server with no rooms.
    pub fn new(config: ServerConfig) -> Server<I> {
        Server {
            tokens: TokenMint::new(config.token_secret),
            config,
            rooms: BTreeMap::new(),
            schedule: Schedule::default(),
            uploads: BTreeMap::new(),
            uploads_held: 0,
            due: Vec::new(),
            conns: BTreeMap::new(),
            opened: BTreeMap::new(),
            per_address: BTreeMap::new(),
            hello_due: BTreeSet::new(),
            out: Outbox::default(),
            events: VecDeque::new(),
            counted: ServerStats::default(),
            retired: RoomStats::default(),
        }
    }

    /// Opens a room (its game starts once `config.start_players` have joined).
    pub fn open_room(&mut self, name: &str, config: RoomConfig) -> Result<(), OpenRoomError> {
        if self.counted.draining {
            return Err(OpenRoomError::Draining);
        }
        if self.rooms.get(name).is_some_and(|room| !room.is_closed()) {
            return Err(OpenRoomError::AlreadyOpen(name.to_string()));
        }
        let name: Arc<str> = name.into();
        if let Some(old) = self.rooms.insert(Arc::clone(&name), Room::new(config)?) {
            self.retired = add(self.retired, old.stats());
        }
        self.settle(&name);
        Ok(())
    }

    /// Stops starting games: rooms still in their lobby close (their waiting players
    /// are refused with `RoomClosed`) and no room opens any more; running games play
    /// on, and their players may still rejoin. The host stops once
    /// [`Server::games_in_play`] is zero (or its own deadline passes).
    pub fn drain(&mut self) {
        self.counted.draining = true;
        let lobbies: Vec<Arc<str>> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.phase() == RoomPhase::Lobby)
            .map(|(name, _)| Arc::clone(name))
            .collect();
        for name in lobbies {
            if let Some(room) = self.rooms.get_mut(&name) {
                room.close_lobby(&mut self.out);
            }
            self.settle(&name);
        }
    }

    /// Whether [`Server::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.counted.draining
    }

    /// Rooms whose game is running or has ended with players still finishing.
    pub fn games_in_play(&self) -> usize {
        self.rooms
            .values()
            .filter(|room| matches!(room.phase(), RoomPhase::Running | RoomPhase::Ended))
            .count()
    }

    /// Where a room's game is.
    pub fn room_phase(&self, room: &str) -> Option<RoomPhase> {
        self.rooms.get(room).map(Room::phase)
    }

    /// What the server has done and holds, for metrics. Walks every room: call it when
    /// asked (a scrape), not every round.
    pub fn stats(&self) -> ServerStats {
        let mut stats = self.counted.clone();
        let mut ticks = self.retired;
        for room in self.rooms.values() {
            ticks = add(ticks, room.stats());
            stats.watchers_connected += room.watcher_count() as u64;
            stats.players_connected += room.player_count() as u64;
            stats.input_history_bytes += room.inputs().heap_bytes() as u64;
            match room.phase() {
                RoomPhase::Closed => {}
                RoomPhase::Running => {
                    stats.rooms_open += 1;
                    stats.rooms_playing += 1;
                }
                RoomPhase::Lobby | RoomPhase::Ended => stats.rooms_open += 1,
            }
        }
        stats.ticks = ticks.tick;
        stats.late_ticks = ticks.late_ticks;
        stats.filled_ticks = ticks.filled_ticks;
        stats.connections = self.opened.len() as u64;
        stats
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
        let Some(name) = self.name_of(room) else {
            return;
        };
        if let Some(room) = self.rooms.get_mut(&name) {
            room.kick(now, player, &mut self.out);
        }
        self.settle(&name);
    }

    /// The transport opened `conn` from `address`. Past a connection cap it is refused
    /// (`TooManyConnections`, queued with its close) and the error returned, so the
    /// transport can stop reading it at once.
    pub fn handle_connection(
        &mut self,
        now: Duration,
        conn: ConnId,
        address: IpAddr,
    ) -> Result<(), Refusal> {
        // Every per-address limit (connections, seats, watchers) counts hosts.
        let address = host_address(address);
        let from_address = self.per_address.get(&address).copied().unwrap_or(0);
        if self.opened.len() >= self.config.max_connections
            || from_address >= self.config.max_connections_per_address
        {
            self.counted.count_refusal(&Refusal::TooManyConnections);
            self.out
                .send(conn, ServerMessage::Refused(Refusal::TooManyConnections));
            self.out.close(conn);
            return Err(Refusal::TooManyConnections);
        }
        if self.opened.contains_key(&conn) {
            return Ok(());
        }
        *self.per_address.entry(address).or_default() += 1;
        // Saturating: a host's absurd timeout means no deadline, not a panic.
        let hello_by = now.saturating_add(self.config.hello_timeout);
        self.hello_due.insert((hello_by, conn));
        let hello_by = Some(hello_by);
        self.opened.insert(conn, Opened { address, hello_by });
        Ok(())
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Duration, conn: ConnId, message: ClientMessage) {
        if let ClientMessage::UploadChunk { chunk, .. } = &message
            && self.uploads_held + chunk.data.len() as u64 > self.config.upload_budget
        {
            // Over the server's upload budget: dropped, as if lost; the room asks again
            // later or gives the upload up.
            return;
        }
        let bound = self.conns.get(&conn).cloned();
        let room = match (&message, bound) {
            (ClientMessage::Hello(hello), Some(room)) if *room != *hello.room => {
                let problem = "a connection joins one room";
                self.refuse(now, conn, Refusal::ProtocolViolation(problem.into()));
                return;
            }
            (ClientMessage::Hello(hello), _) => {
                let found = self.name_of(&hello.room).and_then(|name| {
                    let room = self.rooms.get_mut(&name)?;
                    Some((name, room))
                });
                let Some((name, room)) = found else {
                    let name = hello.room.chars().take(64).collect();
                    self.refuse(now, conn, Refusal::NoSuchRoom(name));
                    return;
                };
                let opened = self.opened.get_mut(&conn);
                let address = opened.as_ref().map(|o| o.address);
                let result = if room.is_closed() {
                    Err(Refusal::RoomClosed)
                } else {
                    let at = (conn, address);
                    room.hello(now, at, hello, &mut self.tokens, &mut self.out)
                };
                if result.is_ok()
                    && let Some(by) = opened.and_then(|o| o.hello_by.take())
                {
                    self.hello_due.remove(&(by, conn));
                }
                self.settle(&name);
                if let Err(error) = result {
                    self.refuse(now, conn, error);
                    return;
                }
                self.conns.insert(conn, Arc::clone(&name));
                name
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
        self.counted.count_refusal(&error);
        self.out.send(conn, ServerMessage::Refused(error));
        self.out.close(conn);
        self.handle_disconnect(now, conn);
    }

    /// For a message on `conn` that did not decode: when it is a hello of another
    /// protocol version (see [`crate::hello_protocol`]) on a connection not in a room
    /// yet, refuses the connection with `VersionMismatch` (queued with its close) and
    /// returns the refusal. Otherwise does nothing: the host cuts the connection as
    /// malformed (a garbled message from a member is not a version mismatch).
    pub fn refuse_other_version(
        &mut self,
        now: Duration,
        conn: ConnId,
        bytes: &[u8],
    ) -> Option<Refusal> {
        if self.conns.contains_key(&conn) {
            return None;
        }
        let client = crate::hello_protocol(bytes).filter(|&v| v != PROTOCOL_VERSION)?;
        let refusal = Refusal::VersionMismatch {
            client,
            server: PROTOCOL_VERSION,
        };
        self.refuse(now, conn, refusal.clone());
        Some(refusal)
    }

    /// The transport lost `conn` (closed by the peer, or failed).
    pub fn handle_disconnect(&mut self, now: Duration, conn: ConnId) {
        self.forget_connection(conn);
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

    fn drive_room(&mut self, now: Duration, name: &Arc<str>) {
        let liveness = self.liveness();
        if let Some(room) = self.rooms.get_mut(name) {
            room.drive(now, liveness, &mut self.out);
        }
        self.settle(name);
    }

    /// After anything happened in a room: moves its events to the server's, tagged
    /// with its name, and files when it next needs driving.
    fn settle(&mut self, name: &Arc<str>) {
        let (wake, held) = match self.rooms.get_mut(name) {
            Some(room) => {
                take_events(room, name, &mut self.events, &mut self.counted);
                (room.next_wake(), room.uploads_held())
            }
            None => (None, 0),
        };
        self.schedule.file(name, wake);
        self.count_uploads(name, held);
    }

    /// Notes that the room called `name` holds `held` bytes of uploads, keeping their
    /// sum over every room current without adding them up per message.
    fn count_uploads(&mut self, name: &Arc<str>, held: u64) {
        let before = match held {
            0 => self.uploads.remove(name),
            _ => self.uploads.insert(Arc::clone(name), held),
        };
        self.uploads_held = self.uploads_held - before.unwrap_or(0) + held;
        debug_assert_eq!(
            self.uploads_held,
            self.rooms.values().map(Room::uploads_held).sum::<u64>(),
            "a room's uploads changed without the room being settled"
        );
    }

    /// The room called `name`, as the server's own key (cloning it allocates nothing).
    fn name_of(&self, name: &str) -> Option<Arc<str>> {
        self.rooms
            .get_key_value(name)
            .map(|(key, _)| Arc::clone(key))
    }

    fn forget_connection(&mut self, conn: ConnId) {
        let Some(opened) = self.opened.remove(&conn) else {
            return;
        };
        if let Some(by) = opened.hello_by {
            self.hello_due.remove(&(by, conn));
        }
        if let Some(count) = self.per_address.get_mut(&opened.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&opened.address);
            }
        }
    }

    /// Time passed: drives the rooms due by `now` (finalising due ticks, running their
    /// timeouts) and closes connections that did not say hello in time. A room not due
    /// is left alone: call this at [`Server::poll_timeout`]; calling it more often does
    /// no more work.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(&(by, conn)) = self.hello_due.first()
            && by <= now
        {
            // Refusing forgets the connection, its deadline with it.
            self.hello_due.pop_first();
            self.refuse(now, conn, Refusal::HelloTimeout);
        }
        // Only the rooms due: each is driven once, and filed again with its next wake.
        let mut due = std::mem::take(&mut self.due);
        self.schedule.take_due(now, &mut due);
        for name in due.drain(..) {
            self.drive_room(now, &name);
        }
        self.due = due;
    }

    /// When [`Server::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let hello_by = self.hello_due.first().map(|&(by, _)| by);
        self.schedule.next().into_iter().chain(hello_by).min()
    }

    /// Hands back a transmit from [`Server::poll_transmit`] once it is sent (encoded):
    /// a `Verified` message's buffers are reused for a later one, so a warm room-tick
    /// allocates no verified-tick lists. Optional: a transmit may simply be dropped.
    pub fn recycle(&mut self, transmit: ServerTransmit) {
        self.out.recycle(transmit);
    }

    /// The next thing to send or close.
    pub fn poll_transmit(&mut self) -> Option<ServerTransmit> {
        let transmit = self.out.pop()?;
        if let ServerTransmit::Close { conn } = transmit {
            self.conns.remove(&conn);
            self.forget_connection(conn);
        }
        Some(transmit)
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The server-wide settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Connections that said hello to a room (bounded by the transport's open
    /// connections).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

/// Moves `room`'s events to `events`, tagged with its `name`, counting them.
fn take_events<I: Input>(
    room: &mut Room<I>,
    name: &str,
    events: &mut VecDeque<ServerEvent>,
    counted: &mut ServerStats,
) {
    while let Some(event) = room.poll_event() {
        counted.count_event(&event);
        events.push_back(ServerEvent {
            room: name.to_string(),
            event,
        });
    }
}

/// Two rooms' work together.
fn add(a: RoomStats, b: RoomStats) -> RoomStats {
    RoomStats {
        tick: a.tick + b.tick,
        filled_ticks: a.filled_ticks + b.filled_ticks,
        late_ticks: a.late_ticks + b.late_ticks,
    }
}

/// A connection the transport announced.
#[derive(Debug)]
struct Opened {
    address: IpAddr,
    /// Until its hello is accepted: when it must have come.
    hello_by: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_game::{self, Input};
    use crate::{ClientId, Hello, PROTOCOL_VERSION};

    fn hello(n: u64) -> ClientMessage {
        let frame = test_game::frame(1);
        ClientMessage::Hello(Box::new(Hello::new(
            "t",
            &frame,
            "r",
            ClientId::from_seed(n),
        )))
    }

    fn server(config: ServerConfig, change: impl FnOnce(&mut RoomConfig)) -> Server<Input> {
        let mut server = Server::<Input>::new(config);
        let mut room = RoomConfig::new(3, "t", &test_game::frame(1));
        change(&mut room);
        server.open_room("r", room).unwrap();
        server
    }

    fn held_slots(server: &Server<Input>) -> usize {
        let slots = server.room_slots("r").expect("the room");
        slots.into_iter().flatten().count()
    }

    fn refusals(server: &mut Server<Input>) -> Vec<(ConnId, Refusal)> {
        std::iter::from_fn(|| server.poll_transmit())
            .filter_map(|t| match t {
                ServerTransmit::Send {
                    to,
                    message: ServerMessage::Refused(refusal),
                } => Some((to, refusal)),
                _ => None,
            })
            .collect()
    }

    /// A hello as protocol version 4 wrote it: without the `watch` field version 5
    /// added at its end.
    fn hello_of_version_4() -> Vec<u8> {
        let ClientMessage::Hello(mut hello) = hello(1) else {
            panic!("hello() makes a hello")
        };
        hello.protocol = 4;
        let mut bytes = crate::encode(&ClientMessage::Hello(hello));
        bytes.pop();
        bytes
    }

    #[test]
    fn a_hello_of_another_protocol_version_is_refused_as_such_though_it_does_not_decode() {
        let mut server = server(ServerConfig::default(), |_| {});
        let t = Duration::ZERO;
        let old = hello_of_version_4();
        assert!(
            crate::decode::<ClientMessage>(&old).is_err(),
            "it does not decode"
        );
        assert_eq!(crate::hello_protocol(&old), Some(4));
        let mismatch = Refusal::VersionMismatch {
            client: 4,
            server: PROTOCOL_VERSION,
        };
        assert_eq!(
            server.refuse_other_version(t, ConnId(1), &old),
            Some(mismatch.clone())
        );
        let closed = std::iter::from_fn(|| server.poll_transmit()).collect::<Vec<_>>();
        assert_eq!(
            closed,
            vec![
                ServerTransmit::Send {
                    to: ConnId(1),
                    message: ServerMessage::Refused(mismatch),
                },
                ServerTransmit::Close { conn: ConnId(1) },
            ]
        );
        // This version's hello cut short, another message, or noise: not a version
        // mismatch, nothing queued (the host cuts them as malformed).
        let ClientMessage::Hello(current) = hello(2) else {
            panic!("hello() makes a hello")
        };
        let mut cut = crate::encode(&ClientMessage::Hello(current));
        cut.pop();
        let leave = crate::encode(&ClientMessage::Leave);
        for bytes in [&cut[..], &leave[..], &[0xff; 3][..], &[]] {
            assert_eq!(server.refuse_other_version(t, ConnId(2), bytes), None);
        }
        assert_eq!(server.poll_transmit(), None);
        // A member's garbled message that happens to look like one: cut, not refused.
        server.handle_message(t, ConnId(3), hello(3));
        while server.poll_transmit().is_some() {}
        assert_eq!(server.refuse_other_version(t, ConnId(3), &old), None);
        assert_eq!(server.poll_transmit(), None);
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let v6 =
            |high: u128, low: u64| IpAddr::from(std::net::Ipv6Addr::from(high << 64 | low as u128));
        let host = 0x2001_0db8_0000_0001;
        assert_eq!(host_address(v6(host, 1)), host_address(v6(host, u64::MAX)));
        assert_eq!(host_address(v6(host, 7)), v6(host, 0));
        assert_ne!(host_address(v6(host, 1)), host_address(v6(host + 1, 1)));
        let v4 = std::net::Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(
            host_address(IpAddr::from(v4.to_ipv6_mapped())),
            IpAddr::from(v4)
        );
        assert_eq!(host_address(IpAddr::from(v4)), IpAddr::from(v4));
        // The server's caps count a /64 as one address.
        let config = ServerConfig {
            max_connections_per_address: 2,
            ..ServerConfig::default()
        };
        let mut server = server(config, |_| {});
        let t = Duration::ZERO;
        assert_eq!(server.handle_connection(t, ConnId(1), v6(host, 1)), Ok(()));
        assert_eq!(server.handle_connection(t, ConnId(2), v6(host, 2)), Ok(()));
        let full = Err(Refusal::TooManyConnections);
        assert_eq!(server.handle_connection(t, ConnId(3), v6(host, 3)), full);
        assert_eq!(
            server.handle_connection(t, ConnId(4), v6(host + 1, 3)),
            Ok(())
        );
    }

    #[test]
    fn connections_are_capped_in_all_and_per_address() {
        let config = ServerConfig {
            max_connections: 3,
            max_connections_per_address: 2,
            ..ServerConfig::default()
        };
        let mut server = server(config, |_| {});
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t = Duration::ZERO;
        assert_eq!(server.handle_connection(t, ConnId(1), a), Ok(()));
        assert_eq!(server.handle_connection(t, ConnId(2), a), Ok(()));
        let full = Err(Refusal::TooManyConnections);
        assert_eq!(server.handle_connection(t, ConnId(3), a), full);
        assert_eq!(server.handle_connection(t, ConnId(4), b), Ok(()));
        assert_eq!(server.handle_connection(t, ConnId(5), b), full, "3 in all");
        assert_eq!(
            refusals(&mut server),
            vec![
                (ConnId(3), Refusal::TooManyConnections),
                (ConnId(5), Refusal::TooManyConnections)
            ]
        );
        server.handle_disconnect(t, ConnId(1));
        assert_eq!(
            server.handle_connection(t, ConnId(6), a),
            Ok(()),
            "room again"
        );
        let stats = server.stats();
        assert_eq!((stats.refusals, stats.refused_by_limit), (2, 2));
        assert_eq!(stats.connections, 3, "2, 4 and 6");
    }

    #[test]
    fn draining_closes_lobbies_and_lets_running_games_play_on() {
        let mut server = server(ServerConfig::default(), |_| {});
        server
            .open_room("lobby", RoomConfig::new(3, "t", &test_game::frame(1)))
            .unwrap();
        let t = Duration::ZERO;
        for conn in 1..=3 {
            server.handle_message(t, ConnId(conn), hello(conn));
        }
        let mut waiting = hello(4);
        if let ClientMessage::Hello(hello) = &mut waiting {
            hello.room = "lobby".into();
        }
        server.handle_message(t, ConnId(4), waiting.clone());
        assert_eq!(refusals(&mut server), vec![]);
        assert_eq!(server.room_phase("r"), Some(RoomPhase::Running));
        assert_eq!(server.room_phase("lobby"), Some(RoomPhase::Lobby));
        let before = server.stats();
        assert_eq!((before.rooms_open, before.rooms_playing), (2, 1));
        assert_eq!((before.joins, before.games_started), (4, 1));
        assert_eq!(before.players_connected, 4);

        server.drain();
        assert_eq!(
            refusals(&mut server),
            vec![(ConnId(4), Refusal::RoomClosed)],
            "the lobby's player is told"
        );
        assert_eq!(server.room_phase("lobby"), Some(RoomPhase::Closed));
        assert_eq!(server.room_phase("r"), Some(RoomPhase::Running));
        assert_eq!(server.games_in_play(), 1);
        let config = RoomConfig::new(3, "t", &test_game::frame(1));
        assert_eq!(
            server.open_room("new", config),
            Err(OpenRoomError::Draining)
        );
        server.handle_message(t, ConnId(5), waiting);
        assert_eq!(
            refusals(&mut server),
            vec![(ConnId(5), Refusal::RoomClosed)]
        );
        server.handle_disconnect(t, ConnId(2));
        let after = server.stats();
        assert!(after.draining);
        assert_eq!((after.rooms_open, after.rooms_playing), (1, 1));
        assert_eq!((after.players_connected, after.drops), (2, 1));
        assert_eq!((after.refusals, after.refused_by_limit), (1, 0));
    }

    /// The next wake as the server found it before it kept a schedule: the earliest of
    /// every room's own next wake and the hello deadlines.
    fn scanned_timeout(server: &Server<Input>) -> Option<Duration> {
        let hello_by = server.hello_due.first().map(|&(by, _)| by);
        server
            .rooms
            .values()
            .filter_map(Room::next_wake)
            .chain(hello_by)
            .min()
    }

    /// Every room's filed wake is its own next wake, and the next timeout the earliest.
    fn assert_schedule_current(server: &Server<Input>, now: Duration) {
        for (name, room) in &server.rooms {
            let filed = server.schedule.wake_of(name);
            assert_eq!(filed, room.next_wake(), "{name} at {now:?}");
        }
        assert_eq!(server.poll_timeout(), scanned_timeout(server), "at {now:?}");
    }

    /// Input for the three ticks after the one due at `now` in a game whose tick 0 was
    /// due at 1 s (60 Hz), as a client two ticks ahead sends it.
    fn input_at(now: Duration) -> ClientMessage {
        let due = now.saturating_sub(Duration::from_secs(1)).as_millis() as u64 * 60 / 1000;
        ClientMessage::Update {
            sent_at: 0,
            received: due,
            stepped: due,
            first_input: due + 1,
            inputs: [7u32; 3].iter().flat_map(|i| i.to_le_bytes()).collect(),
            commands: Vec::new(),
            checksums: Vec::new(),
        }
    }

    #[test]
    fn the_schedule_holds_every_rooms_next_wake_as_games_run() {
        let mut server = server(ServerConfig::default(), |_| {});
        let mut slow = RoomConfig::new(2, "t", &test_game::frame(1));
        (slow.tick_rate, slow.hold) = (20, Duration::from_millis(100));
        slow.end_tick = Some(30);
        server.open_room("slow", slow).unwrap();
        let lobby = RoomConfig::new(3, "t", &test_game::frame(1));
        server.open_room("lobby", lobby).unwrap();
        let to = |n: u64, room: &str| {
            let mut message = hello(n);
            if let ClientMessage::Hello(hello) = &mut message {
                hello.room = room.into();
            }
            message
        };
        let joins = [
            (1, "r"),
            (2, "r"),
            (3, "r"),
            (4, "slow"),
            (5, "slow"),
            (6, "lobby"),
        ];
        let mut handled = 0;
        for step in 0..1_000u64 {
            let now = Duration::from_millis(step * 3);
            match step {
                0 => {
                    for (n, room) in joins {
                        let address = [10, 0, 0, n as u8].into();
                        server.handle_connection(now, ConnId(n), address).unwrap();
                        server.handle_message(now, ConnId(n), to(n, room));
                    }
                }
                // Room r's third player goes silent at 1.5 s: its ticks wait out their
                // hold until the silence runs out (500 ms). "slow" hears nothing after
                // its hellos: only the timer ticks it, past a kick, to its end tick.
                600 => server.kick(now, "slow", PlayerId(1)),
                800 => server.handle_disconnect(now, ConnId(3)),
                900 => server.drain(),
                _ if step % 5 == 0 => {
                    for n in [1, 2, 3] {
                        if n != 2 || step < 500 {
                            server.handle_message(now, ConnId(n), input_at(now));
                        }
                    }
                }
                _ => {}
            }
            assert_schedule_current(&server, now);
            if server.poll_timeout().is_some_and(|at| at <= now) {
                server.handle_timeout(now);
                handled += 1;
                assert_schedule_current(&server, now);
                assert!(
                    server.poll_timeout().is_some_and(|at| at > now),
                    "every room due was driven at {now:?}"
                );
            }
            while server.poll_transmit().is_some() {}
        }
        assert!(handled > 100, "timers ran ({handled})");
        // Ticks 1..=120 fell due from 1 s to 3 s, each final within its 40 ms hold.
        assert!(
            server.room_tick("r").unwrap() >= 117,
            "{:?}",
            server.room_tick("r")
        );
        assert_eq!(
            server.room_tick("slow"),
            Some(30),
            "ticked by the timer alone"
        );
        assert_eq!(server.room_phase("slow"), Some(RoomPhase::Ended));
        assert_eq!(server.room_phase("lobby"), Some(RoomPhase::Closed));
        assert!(
            server.room_stats("r").unwrap().filled_ticks > 0,
            "the silence filled"
        );
    }

    #[test]
    fn a_connection_without_hello_is_closed_at_its_deadline() {
        let addr: IpAddr = [10, 0, 0, 1].into();
        let ms = Duration::from_millis;
        let mut roomless = Server::<Input>::new(ServerConfig::default());
        roomless.handle_connection(ms(0), ConnId(1), addr).unwrap();
        assert_eq!(
            roomless.poll_timeout(),
            Some(ms(5000)),
            "the host wakes for it"
        );

        let mut server = server(ServerConfig::default(), |_| {});
        server.handle_connection(ms(0), ConnId(1), addr).unwrap();
        server.handle_connection(ms(100), ConnId(2), addr).unwrap();
        server.handle_message(ms(200), ConnId(2), hello(2));
        refusals(&mut server);
        server.handle_timeout(ms(4999));
        assert_eq!(refusals(&mut server), vec![]);
        server.handle_timeout(ms(5000));
        assert_eq!(
            refusals(&mut server),
            vec![(ConnId(1), Refusal::HelloTimeout)]
        );
        server.handle_timeout(ms(9000));
        assert!(
            !refusals(&mut server).iter().any(|(c, _)| *c == ConnId(2)),
            "it said hello"
        );
    }

    #[test]
    fn an_address_holds_at_most_the_rooms_limit_of_seats() {
        let mut server = server(ServerConfig::default(), |room| {
            room.max_seats_per_address = Some(1)
        });
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t = Duration::ZERO;
        for (conn, addr) in [(1, a), (2, a), (3, b)] {
            server.handle_connection(t, ConnId(conn), addr).unwrap();
            server.handle_message(t, ConnId(conn), hello(conn));
        }
        assert_eq!(
            refusals(&mut server),
            vec![(ConnId(2), Refusal::TooManySeatsFromAddress)]
        );
        let held = held_slots(&server);
        assert_eq!(held, 2);
    }

    /// Regression: one connection saying hello as two clients held two slots.
    #[test]
    fn a_connection_cannot_hold_two_slots() {
        let mut server = server(ServerConfig::default(), |_| {});
        server.handle_message(Duration::ZERO, ConnId(1), hello(1));
        server.handle_message(Duration::ZERO, ConnId(1), hello(2));
        assert!(matches!(
            refusals(&mut server).as_slice(),
            [(ConnId(1), Refusal::ProtocolViolation(_))]
        ));
        let held = held_slots(&server);
        assert_eq!(held, 1);
    }
}
