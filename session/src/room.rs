//! `Room`: one game on the server. It owns the tick clock, collects input and
//! broadcasts it verified, keeps a bounded input history, compares checksums, keeps
//! player slots for returning clients, and brokers the snapshot a (re)joiner enters
//! from: from tick 0 while the game is young, the joiner's own local snapshot if fresh
//! and matching, or a buddy's, checked against the checksums peers reported.

use bytemuck::Pod;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, SchemaHash, Tick, TickInputs};
use tickstep_replay::InputLog;

use super::checksums::{ChecksumBook, Verdict, mask};
use super::protocol::{
    ClientMessage, Entry, Hello, MAX_LIST, PROTOCOL_VERSION, RoomInfo, ServerMessage,
    SnapshotSource, VerifiedTicks,
};
use super::server::{Outbox, ServerEvent};
use super::transfer::{Incoming, Outgoing};
use super::{ClientId, ConnId, SessionError};

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
    /// Ticks per second (default 60).
    pub tick_rate: u32,
    /// Clients send input this many ticks ahead of the newest verified tick (default 3).
    pub input_delay: u32,
    /// How long past its due time a tick waits for late input before filling it
    /// (default 100 ms).
    pub input_tolerance: Duration,
    /// How missing input is filled (default: repeat the last).
    pub fill: FillPolicy,
    /// Clients report their checksum every this many ticks (default 30).
    pub checksum_every: u32,
    /// Verified input kept for (re)joiners (default 10 minutes).
    pub history: Duration,
    /// A game younger than this is joined from tick 0 over the input history
    /// (default 5 s).
    pub start_window: Duration,
    /// The oldest local snapshot accepted (default 10 s); when no other player is
    /// online, up to `empty_room_ttl` capped at 2 minutes.
    pub local_snapshot_max_age: Duration,
    /// An inactive player's slot is kept this long (default 20 s).
    pub player_ttl: Duration,
    /// A room whose players are all inactive stays open this long (default 20 s).
    pub empty_room_ttl: Duration,
    /// A buddy that has not delivered its snapshot after this is given up (default 15 s).
    pub snapshot_timeout: Duration,
    /// Largest snapshot accepted from a buddy (default 64 MiB; an upload allocates its
    /// announced size, up to this, when its first chunk arrives).
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

impl RoomConfig {
    /// A room for `players` of the game with `schema` starting from the frame whose
    /// checksum is `initial`, with the defaults documented on each field.
    pub fn new(
        players: u8,
        app_version: &str,
        schema: SchemaHash,
        initial: Checksum,
    ) -> RoomConfig {
        RoomConfig {
            players,
            start_players: players,
            tick_rate: 60,
            input_delay: 3,
            input_tolerance: Duration::from_millis(100),
            fill: FillPolicy::RepeatLast,
            checksum_every: 30,
            history: Duration::from_secs(600),
            start_window: Duration::from_secs(5),
            local_snapshot_max_age: Duration::from_secs(10),
            player_ttl: Duration::from_secs(20),
            empty_room_ttl: Duration::from_secs(20),
            snapshot_timeout: Duration::from_secs(15),
            max_snapshot_len: 64 << 20,
            end_tick: None,
            app_version: app_version.to_string(),
            schema,
            initial,
        }
    }

    fn ticks_in(&self, span: Duration) -> u64 {
        (span.as_millis() as u64).saturating_mul(self.tick_rate as u64) / 1000
    }
}

/// Who holds a slot: the client id and, while the player is active, its connection.
pub type SlotHolder = (ClientId, Option<ConnId>);

/// Input accepted at most this many ticks ahead of the newest verified tick.
const MAX_AHEAD: u64 = 256;
/// Unacknowledged verified ticks in flight to one client.
const SEND_WINDOW: u64 = 1024;
/// Verified ticks are resent from the client's acknowledgement after this silence.
const RESEND_AFTER: Duration = Duration::from_millis(300);
/// A download is resent whole after this long without the joiner entering.
const DOWNLOAD_RESEND: Duration = Duration::from_secs(2);
/// Missing upload chunks are asked for after this stall.
const UPLOAD_STALL: Duration = Duration::from_millis(500);
/// Housekeeping (timeouts, resends, heartbeats) runs at least this often.
const HOUSEKEEPING: Duration = Duration::from_millis(50);
/// Checksum ticks remembered.
const CHECKSUM_TICKS_KEPT: usize = 64;
/// Longest local-snapshot age allowed when nobody else is online.
const LONELY_LOCAL_CAP: Duration = Duration::from_secs(120);

/// The snapshot a joiner is being sent.
#[derive(Debug)]
struct Download {
    transfer: u32,
    tick: Tick,
    checksum: Checksum,
    source: SnapshotSource,
    snapshot: Arc<Outgoing>,
    sent_at: Duration,
}

impl Download {
    /// The messages carrying `chunks` of this snapshot, with the live tick.
    fn messages<'a>(
        &self,
        chunks: impl Iterator<Item = &'a tickstep_snapshot::Chunk>,
        live: Tick,
    ) -> Vec<ServerMessage> {
        chunks
            .map(|chunk| ServerMessage::SnapshotChunk {
                transfer: self.transfer,
                tick: self.tick,
                checksum: self.checksum,
                source: self.source,
                live,
                chunk: chunk.clone(),
            })
            .collect()
    }
}

/// A player slot.
#[derive(Debug)]
struct Slot<I> {
    client_id: ClientId,
    /// `Some` while the player is active.
    conn: Option<ConnId>,
    inactive_since: Duration,
    last_heard: Duration,
    last_sent: Duration,
    /// The tick the player's frame started from, once known; `None` while in the
    /// lobby or waiting for a snapshot.
    entered: Option<Tick>,
    awaiting_snapshot: bool,
    /// Verified input the client holds, and its frame's tick.
    received: Tick,
    stepped: Tick,
    sent_up_to: Tick,
    ack_moved: Duration,
    /// The player sends input, so ticks wait (up to the tolerance) for it.
    plays: bool,
    last_input: I,
    /// Snapshot uploads this player served as a buddy (load balancing).
    served: u32,
    download: Option<Download>,
}

/// Why a snapshot upload was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// For joiners waiting to enter.
    Buddy,
    /// As evidence of a desync.
    Evidence,
}

#[derive(Debug)]
struct Upload {
    id: u32,
    from: PlayerId,
    tick: Tick,
    /// What the snapshot's checksum must be (buddy uploads).
    expected: Option<Checksum>,
    purpose: Purpose,
    incoming: Incoming,
    asked_at: Duration,
}

#[derive(Debug)]
enum Phase {
    Lobby,
    Running { started_at: Duration },
    Ended,
    Closed,
}

/// One game and its players. Owned and driven by a [`super::Server`].
#[derive(Debug)]
pub(crate) struct Room<I> {
    name: String,
    config: RoomConfig,
    phase: Phase,
    slots: Vec<Option<Slot<I>>>,
    finalized: Tick,
    log: InputLog<I>,
    pending: VecDeque<(u64, Vec<I>)>,
    scratch: TickInputs<I>,
    book: ChecksumBook,
    first_desync: Option<Tick>,
    /// A buddy snapshot checked against the peers' checksums, reusable by joiners.
    ready: Option<(Tick, Checksum, Arc<Outgoing>)>,
    /// The buddy upload in progress and the evidence uploads.
    uploads: Vec<Upload>,
    /// Players already asked (and failed) in the current buddy search.
    buddies_tried: u64,
    search_began: Option<Duration>,
    next_id: u32,
    empty_since: Option<Duration>,
    housekept: Duration,
    /// The time of the last drive.
    driven: Duration,
    stats: RoomStats,
}

/// What a room has done, for hosts, tools and load tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// The newest verified tick.
    pub tick: Tick,
    /// Ticks finalised without every slot's own input: some input filled in, or a
    /// slot absent (empty or its player inactive). With none, the game equals an
    /// offline run of every player's input.
    pub filled_ticks: u64,
    /// Ticks finalised more than one tick period after their deadline (due time plus
    /// input tolerance): the server fell behind its own clock.
    pub late_ticks: u64,
}

impl<I: Pod + PartialEq> Room<I> {
    /// A room named `name` in its lobby.
    pub fn new(name: &str, config: RoomConfig) -> Result<Room<I>, String> {
        if config.players == 0 || config.players as usize > tickstep_engine::MAX_PLAYERS {
            return Err(format!(
                "a room has 1..=64 player slots, not {}",
                config.players
            ));
        }
        if config.tick_rate == 0
            || config.start_players == 0
            || config.start_players > config.players
        {
            return Err("tick rate and start players must be at least 1 (and start players at most players)".into());
        }
        if config.input_delay as u64 >= MAX_AHEAD {
            return Err(format!("input delay must be below {MAX_AHEAD} ticks"));
        }
        let players = config.players as usize;
        let history = config.ticks_in(config.history).max(1);
        Ok(Room {
            name: name.to_string(),
            phase: Phase::Lobby,
            slots: (0..players).map(|_| None).collect(),
            finalized: 0,
            log: InputLog::new(players, history),
            pending: (0..MAX_AHEAD)
                .map(|_| (0, vec![I::zeroed(); players]))
                .collect(),
            scratch: TickInputs::new(players).map_err(|e| e.to_string())?,
            book: ChecksumBook::new(players, CHECKSUM_TICKS_KEPT),
            first_desync: None,
            ready: None,
            uploads: Vec::new(),
            buddies_tried: 0,
            search_began: None,
            next_id: 1,
            empty_since: None,
            housekept: Duration::ZERO,
            driven: Duration::ZERO,
            stats: RoomStats::default(),
            config,
        })
    }

    /// A fresh transfer or upload number (never 0).
    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// The room's verified input history.
    pub fn inputs(&self) -> &InputLog<I> {
        &self.log
    }

    /// The newest verified tick.
    pub fn finalized(&self) -> Tick {
        self.finalized
    }

    /// Whether the room has closed for good.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The first tick a desync was found at.
    pub fn first_desync(&self) -> Option<Tick> {
        self.first_desync
    }

    /// The active slot a connection plays in.
    fn player_of(&self, conn: ConnId) -> Option<PlayerId> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.conn == Some(conn)))
            .map(|p| PlayerId(p as u8))
    }

    /// Who holds each slot.
    pub fn holders(&self) -> Vec<Option<SlotHolder>> {
        self.slots
            .iter()
            .map(|s| s.as_ref().map(|s| (s.client_id, s.conn)))
            .collect()
    }

    fn info(&self) -> RoomInfo {
        RoomInfo {
            players: self.config.players,
            tick_rate: self.config.tick_rate,
            input_size: size_of::<I>() as u32,
            input_delay: self.config.input_delay,
            checksum_every: self.config.checksum_every,
            end_tick: self.config.end_tick,
        }
    }

    fn event(&self, out: &mut Outbox, make: impl FnOnce(String) -> ServerEvent) {
        out.events.push_back(make(self.name.clone()));
    }

    fn send(&mut self, out: &mut Outbox, player: PlayerId, now: Duration, message: ServerMessage) {
        if let Some(slot) = self.slots[player.0 as usize].as_mut()
            && let Some(conn) = slot.conn
        {
            slot.last_sent = now;
            out.send(conn, message);
        }
    }

    /// A connection says hello: refuse it with a reason, or seat it and say how it
    /// enters the game.
    pub fn hello(
        &mut self,
        now: Duration,
        conn: ConnId,
        hello: &Hello,
        out: &mut Outbox,
    ) -> Result<(), SessionError> {
        self.check_compatible(hello)?;
        let seated = self
            .player_of(conn)
            .and_then(|p| self.slots[p.0 as usize].as_ref());
        if seated.is_some_and(|slot| slot.client_id != hello.client_id) {
            let problem = "one connection plays one slot; it said hello as another client";
            return Err(SessionError::ProtocolViolation(problem.into()));
        }
        let existing = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.client_id == hello.client_id));
        let player = match existing {
            Some(p) => {
                let slot = self.slots[p].as_mut().unwrap_or_else(|| unreachable!());
                match slot.conn {
                    Some(active) if active == conn => {
                        // A repeated hello whose welcome was lost: answer again.
                        let entry = self.entry_of(p);
                        let player = PlayerId(p as u8);
                        let room = self.info();
                        self.send(
                            out,
                            player,
                            now,
                            ServerMessage::Welcome {
                                player,
                                room,
                                entry,
                                live: self.finalized,
                            },
                        );
                        return Ok(());
                    }
                    Some(_) => return Err(SessionError::DuplicateClientId),
                    None => p,
                }
            }
            None if hello.rejoin => return Err(SessionError::PlayerTtlExpired),
            None => {
                if matches!(self.phase, Phase::Ended | Phase::Closed) {
                    return Err(SessionError::RoomClosed);
                }
                let free = self
                    .slots
                    .iter()
                    .position(Option::is_none)
                    .ok_or(SessionError::RoomFull)?;
                self.slots[free] = Some(Slot {
                    client_id: hello.client_id,
                    conn: None,
                    inactive_since: now,
                    last_heard: now,
                    last_sent: now,
                    entered: None,
                    awaiting_snapshot: false,
                    received: 0,
                    stepped: 0,
                    sent_up_to: 0,
                    ack_moved: now,
                    plays: false,
                    last_input: I::zeroed(),
                    served: 0,
                    download: None,
                });
                free
            }
        };
        if matches!(self.phase, Phase::Ended | Phase::Closed) {
            return Err(SessionError::RoomClosed);
        }
        let rejoined = existing.is_some();
        let entry = self.choose_entry(hello);
        let slot = self.slots[player]
            .as_mut()
            .unwrap_or_else(|| unreachable!());
        slot.conn = Some(conn);
        slot.last_heard = now;
        slot.ack_moved = now;
        slot.plays = false;
        slot.download = None;
        slot.awaiting_snapshot = entry == Entry::AwaitSnapshot;
        slot.entered = match entry {
            Entry::FromStart => Some(0),
            Entry::LocalSnapshot { tick } => Some(tick),
            Entry::Lobby | Entry::AwaitSnapshot => None,
        };
        let base = slot.entered.unwrap_or(0);
        (slot.received, slot.stepped, slot.sent_up_to) = (base, base, base);
        self.empty_since = None;
        let id = PlayerId(player as u8);
        let room = self.info();
        self.send(
            out,
            id,
            now,
            ServerMessage::Welcome {
                player: id,
                room,
                entry,
                live: self.finalized,
            },
        );
        self.event(out, |room| ServerEvent::PlayerJoined {
            room,
            player: id,
            rejoined,
            entry,
        });
        if matches!(self.phase, Phase::Lobby)
            && self.active_count() >= self.config.start_players as usize
        {
            self.start(now, out);
        }
        if entry == Entry::AwaitSnapshot {
            self.serve_waiting(now, out);
        }
        Ok(())
    }

    fn check_compatible(&self, hello: &Hello) -> Result<(), SessionError> {
        if hello.protocol != PROTOCOL_VERSION {
            return Err(SessionError::VersionMismatch {
                client: hello.protocol,
                server: PROTOCOL_VERSION,
            });
        }
        if hello.app_version != self.config.app_version {
            return Err(SessionError::AppVersionMismatch {
                client: hello.app_version.chars().take(64).collect(),
                room: self.config.app_version.clone(),
            });
        }
        if hello.schema != self.config.schema {
            return Err(SessionError::SchemaMismatch);
        }
        if hello.initial != self.config.initial {
            return Err(SessionError::GameMismatch);
        }
        Ok(())
    }

    fn entry_of(&self, player: usize) -> Entry {
        match (&self.phase, self.slots[player].as_ref()) {
            (Phase::Lobby, _) => Entry::Lobby,
            (_, Some(slot)) if slot.awaiting_snapshot => Entry::AwaitSnapshot,
            (
                _,
                Some(Slot {
                    entered: Some(0), ..
                }),
            ) => Entry::FromStart,
            (
                _,
                Some(Slot {
                    entered: Some(tick),
                    ..
                }),
            ) => Entry::LocalSnapshot { tick: *tick },
            _ => Entry::AwaitSnapshot,
        }
    }

    fn choose_entry(&self, hello: &Hello) -> Entry {
        let Phase::Running { .. } = self.phase else {
            return Entry::Lobby;
        };
        let covers =
            |tick: Tick| tick >= self.finalized || self.log.oldest().is_some_and(|o| o <= tick + 1);
        if self.finalized < self.config.ticks_in(self.config.start_window) && covers(0) {
            return Entry::FromStart;
        }
        if let Some((tick, checksum)) = hello.local_snapshot
            && tick <= self.finalized
            && covers(tick)
            && self.finalized - tick <= self.local_snapshot_age_limit()
            && self.book_allows(tick, checksum)
        {
            return Entry::LocalSnapshot { tick };
        }
        Entry::AwaitSnapshot
    }

    /// Ticks a local snapshot may be behind: 10 s, or when nobody else is online the
    /// EmptyRoomTTL capped at 2 minutes.
    fn local_snapshot_age_limit(&self) -> Tick {
        let alone = self.active_count() == 0;
        let limit = if alone {
            self.config
                .empty_room_ttl
                .min(LONELY_LOCAL_CAP)
                .max(self.config.local_snapshot_max_age)
        } else {
            self.config.local_snapshot_max_age
        };
        self.config.ticks_in(limit)
    }

    /// A snapshot's checksum must match what peers reported for its tick, when they did.
    fn book_allows(&self, tick: Tick, checksum: Checksum) -> bool {
        match self.book.verdict(tick) {
            Some(verdict) => verdict.consensus == Some(checksum),
            None => true,
        }
    }

    fn active_count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.conn.is_some())
            .count()
    }

    fn start(&mut self, now: Duration, out: &mut Outbox) {
        self.phase = Phase::Running { started_at: now };
        for p in 0..self.slots.len() {
            if let Some(slot) = self.slots[p].as_mut()
                && slot.conn.is_some()
            {
                slot.entered = Some(0);
                slot.plays = true;
                self.send(out, PlayerId(p as u8), now, ServerMessage::Start);
            }
        }
        self.event(out, |room| ServerEvent::GameStarted { room });
    }

    /// A message from the player on `conn` (after its hello).
    pub fn message(
        &mut self,
        now: Duration,
        conn: ConnId,
        message: ClientMessage,
        out: &mut Outbox,
    ) {
        let Some(player) = self.player_of(conn) else {
            out.close(conn);
            return;
        };
        let p = player.0 as usize;
        if let Some(slot) = self.slots[p].as_mut() {
            slot.last_heard = now;
        }
        match message {
            // The server hands every hello to `Room::hello`.
            ClientMessage::Hello(_) => {}
            ClientMessage::Update {
                received,
                stepped,
                first_input,
                inputs,
                checksums,
            } => {
                self.update(
                    now,
                    player,
                    received,
                    stepped,
                    first_input,
                    &inputs,
                    &checksums,
                    out,
                );
            }
            ClientMessage::UploadChunk { upload, chunk } => {
                self.upload_chunk(now, player, upload, &chunk, out)
            }
            ClientMessage::UploadUnavailable { upload } => {
                if let Some(at) = self
                    .uploads
                    .iter()
                    .position(|u| u.id == upload && u.from == player)
                {
                    let failed = self.uploads.swap_remove(at);
                    if failed.purpose == Purpose::Buddy {
                        self.buddy_failed(now, player, None, out);
                    }
                }
            }
            ClientMessage::ResendChunks { transfer, chunks } => {
                // An empty list would mean everything: the room resends that on its own
                // timer, never on request, so a joiner cannot make it repeat itself.
                let live = self.finalized;
                let Some(slot) = self.slots[p].as_mut() else {
                    return;
                };
                let Some(download) = slot.download.as_ref().filter(|d| d.transfer == transfer)
                else {
                    return;
                };
                if chunks.is_empty() {
                    return;
                }
                let resend = download.messages(download.snapshot.select(&chunks), live);
                for message in resend {
                    self.send(out, player, now, message);
                }
            }
            ClientMessage::Leave => {
                if let Some(slot) = self.slots[p].take()
                    && let Some(conn) = slot.conn
                {
                    out.close(conn);
                }
                self.event(out, |room| ServerEvent::PlayerLeft {
                    room,
                    player,
                    reason: None,
                });
                self.after_departure(now, player, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        now: Duration,
        player: PlayerId,
        received: Tick,
        stepped: Tick,
        first_input: Tick,
        inputs: &[u8],
        checksums: &[(Tick, Checksum)],
        out: &mut Outbox,
    ) {
        let p = player.0 as usize;
        let finalized = self.finalized;
        let every = self.config.checksum_every.max(1) as u64;
        let Some(slot) = self.slots[p].as_mut() else {
            return;
        };
        let Some(entered) = slot.entered else { return };
        // A client cannot hold verified input the room has not made.
        let received = received.min(finalized);
        if received > slot.received {
            slot.received = received;
            slot.ack_moved = now;
        }
        slot.stepped = slot.stepped.max(stepped.min(received));
        // Only the joiner's own word that its frame reached the snapshot's tick (a client
        // reports 0 until it has a frame) ends the transfer.
        if slot.download.as_ref().is_some_and(|d| stepped >= d.tick) {
            slot.download = None;
        }
        let size = size_of::<I>();
        if !inputs.is_empty()
            && size > 0
            && inputs.len().is_multiple_of(size)
            && slot.download.is_none()
        {
            slot.plays = true;
            for (i, bytes) in inputs.chunks_exact(size).enumerate() {
                let Some(tick) = first_input.checked_add(i as u64) else {
                    break;
                };
                if tick <= finalized || tick > finalized + MAX_AHEAD {
                    continue;
                }
                let (mask, values) = &mut self.pending[(tick - finalized - 1) as usize];
                if *mask & (1 << p) == 0 {
                    values[p] = bytemuck::pod_read_unaligned(bytes);
                    *mask |= 1 << p;
                }
            }
        }
        for &(tick, checksum) in checksums.iter().take(MAX_LIST) {
            if tick % every != 0 || tick > finalized || tick < entered || tick > stepped {
                continue;
            }
            if let Some(verdict) = self.book.record(tick, player, checksum) {
                self.desync(now, verdict, out);
            }
        }
    }

    fn upload_chunk(
        &mut self,
        now: Duration,
        player: PlayerId,
        upload: u32,
        chunk: &tickstep_snapshot::Chunk,
        out: &mut Outbox,
    ) {
        let Some(at) = self
            .uploads
            .iter()
            .position(|u| u.id == upload && u.from == player)
        else {
            return;
        };
        match self.uploads[at].incoming.add(now, chunk) {
            Ok(false) => {}
            Ok(true) => {
                let done = self.uploads.swap_remove(at);
                let bytes = done.incoming.finish();
                match done.purpose {
                    Purpose::Evidence => {
                        if let Ok(snapshot) = bytes {
                            let tick = done.tick;
                            self.event(out, |room| ServerEvent::Evidence {
                                room,
                                tick,
                                player,
                                snapshot,
                            });
                        }
                    }
                    Purpose::Buddy => {
                        let checked = bytes.ok().filter(|b| {
                            snapshot_matches(b, done.tick, self.config.schema, done.expected)
                        });
                        match checked {
                            Some(bytes) => {
                                let checksum = done.expected.unwrap_or_default();
                                self.ready =
                                    Some((done.tick, checksum, Arc::new(Outgoing::new(&bytes))));
                            }
                            None => return self.buddy_failed(now, player, Some(done.tick), out),
                        }
                        self.serve_waiting(now, out);
                    }
                }
            }
            Err(_) => {
                // Broken chunks from a buddy: give up on it; evidence is best effort.
                let failed = self.uploads.swap_remove(at);
                if failed.purpose == Purpose::Buddy {
                    self.buddy_failed(now, player, Some(failed.tick), out);
                }
            }
        }
    }

    /// The transport lost the connection (or the player fell silent): the slot stays,
    /// inactive, for PlayerTTL.
    pub fn disconnect(&mut self, now: Duration, conn: ConnId, reason: &str, out: &mut Outbox) {
        let Some(player) = self.player_of(conn) else {
            return;
        };
        if let Some(slot) = self.slots[player.0 as usize].as_mut() {
            slot.conn = None;
            slot.inactive_since = now;
            slot.plays = false;
            slot.download = None;
            slot.awaiting_snapshot = false;
            slot.entered = None;
        }
        let reason = Some(reason.to_string());
        self.event(out, |room| ServerEvent::PlayerLeft {
            room,
            player,
            reason,
        });
        self.after_departure(now, player, out);
    }

    /// Removes a player for good, telling it why.
    pub fn kick(&mut self, now: Duration, player: PlayerId, out: &mut Outbox) {
        let Some(slot) = self.slots.get_mut(player.0 as usize).and_then(Option::take) else {
            return;
        };
        if let Some(conn) = slot.conn {
            out.send(conn, ServerMessage::Refused(SessionError::Kicked));
            out.close(conn);
        }
        self.event(out, |room| ServerEvent::PlayerLeft {
            room,
            player,
            reason: Some("kicked".into()),
        });
        self.after_departure(now, player, out);
    }

    /// A buddy did not deliver (with `rejected`: it delivered a snapshot of that tick
    /// that failed the checks): never ask it again in this search, and try another.
    fn buddy_failed(
        &mut self,
        now: Duration,
        buddy: PlayerId,
        rejected: Option<Tick>,
        out: &mut Outbox,
    ) {
        self.buddies_tried |= 1 << buddy.0;
        if let Some(tick) = rejected {
            self.event(out, |room| ServerEvent::BuddySnapshotRejected {
                room,
                buddy,
                tick,
            });
        }
        self.serve_waiting(now, out);
    }

    fn after_departure(&mut self, now: Duration, player: PlayerId, out: &mut Outbox) {
        let lost_buddy = self
            .uploads
            .iter()
            .any(|u| u.from == player && u.purpose == Purpose::Buddy);
        self.uploads.retain(|u| u.from != player);
        if lost_buddy {
            self.buddy_failed(now, player, None, out);
        }
        if self.active_count() == 0 && self.empty_since.is_none() {
            self.empty_since = Some(now);
        }
    }

    /// Advances the room to `now`: finalises due ticks, streams verified input, and
    /// runs timeouts, resends and heartbeats.
    pub fn drive(
        &mut self,
        now: Duration,
        peer_timeout: Duration,
        heartbeat: Duration,
        out: &mut Outbox,
    ) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.driven = self.driven.max(now);
        self.finalize_due(now, out);
        self.stream(now, out);
        if now >= self.housekept + HOUSEKEEPING {
            self.housekept = now;
            self.housekeeping(now, peer_timeout, heartbeat, out);
        }
    }

    /// When the room next needs driving.
    pub fn next_wake(&self) -> Option<Duration> {
        let housekeeping = self.housekept + HOUSEKEEPING;
        let tick = match self.phase {
            Phase::Running { started_at } if !self.ended_at_limit() => {
                let due = self.due(started_at, self.finalized + 1);
                // Already due and waiting for input: the tolerance deadline is next.
                Some(if due <= self.driven {
                    due + self.config.input_tolerance
                } else {
                    due
                })
            }
            Phase::Closed => return None,
            _ => None,
        };
        Some(tick.map_or(housekeeping, |t| t.min(housekeeping)))
    }

    fn ended_at_limit(&self) -> bool {
        self.config
            .end_tick
            .is_some_and(|end| self.finalized >= end)
    }

    /// One tick's length.
    fn period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / self.config.tick_rate as u64)
    }

    /// What the room has done so far.
    pub fn stats(&self) -> RoomStats {
        RoomStats {
            tick: self.finalized,
            ..self.stats
        }
    }

    fn due(&self, started_at: Duration, tick: Tick) -> Duration {
        let nanos = (tick as u128 * 1_000_000_000) / self.config.tick_rate as u128;
        started_at + Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    fn finalize_due(&mut self, now: Duration, out: &mut Outbox) {
        let Phase::Running { started_at } = self.phase else {
            return;
        };
        while !self.ended_at_limit() {
            let tick = self.finalized + 1;
            let due = self.due(started_at, tick);
            if now < due {
                break;
            }
            let expected = mask(
                self.slots
                    .iter()
                    .map(|s| s.as_ref().is_some_and(|s| s.conn.is_some() && s.plays)),
            );
            let (received, _) = &self.pending[0];
            let all_in = expected & !received == 0;
            if !all_in && now < due + self.config.input_tolerance {
                break;
            }
            let deadline = due + self.config.input_tolerance + self.period();
            self.stats.late_ticks += (now > deadline) as u64;
            self.finalize(tick);
        }
        if self.ended_at_limit() {
            self.phase = Phase::Ended;
            let tick = self.finalized;
            self.event(out, |room| ServerEvent::GameEnded { room, tick });
        }
    }

    fn finalize(&mut self, tick: Tick) {
        let (received, values) = self.pending.pop_front().unwrap_or_else(|| unreachable!());
        self.scratch.reset(tick);
        let mut filled = false;
        for (p, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot.as_mut().filter(|s| s.conn.is_some()) else {
                filled = true;
                continue;
            };
            let input = if received & (1 << p) != 0 {
                values[p]
            } else {
                filled = true;
                match self.config.fill {
                    FillPolicy::RepeatLast => slot.last_input,
                    FillPolicy::Default => I::zeroed(),
                }
            };
            slot.last_input = input;
            // Cannot fail: `p` is below the slot count the buffer was made with.
            let _ = self.scratch.set(PlayerId(p as u8), input);
        }
        let mut reused = values;
        reused.fill(I::zeroed());
        self.pending.push_back((0, reused));
        self.stats.filled_ticks += filled as u64;
        // Cannot fail: ticks are pushed in order and the player count matches.
        let _ = self.log.push(&self.scratch);
        self.finalized = tick;
    }

    /// Sends every entered player the verified ticks it lacks, within a window, going
    /// back to its acknowledgement when acknowledgements stall.
    fn stream(&mut self, now: Duration, out: &mut Outbox) {
        let players = self.slots.len();
        let per_tick = players * size_of::<I>() + 8;
        let per_message = (60_000 / per_tick).max(1) as u64;
        let live = self.finalized;
        for p in 0..players {
            let Some(slot) = self.slots[p].as_mut() else {
                continue;
            };
            let Some(conn) = slot.conn else { continue };
            if slot.entered.is_none() {
                continue;
            }
            if slot.sent_up_to > slot.received && now >= slot.ack_moved + RESEND_AFTER {
                slot.sent_up_to = slot.received;
                slot.ack_moved = now;
            }
            let oldest = self.log.oldest().unwrap_or(1);
            let mut from = slot
                .sent_up_to
                .max(slot.received)
                .max(oldest.saturating_sub(1))
                + 1;
            let to = live.min(slot.received + SEND_WINDOW);
            while from <= to {
                let last = to.min(from + per_message - 1);
                let mut ticks = VerifiedTicks {
                    first: from,
                    presence: Vec::with_capacity((last - from + 1) as usize),
                    inputs: Vec::with_capacity((last - from + 1) as usize * per_tick),
                };
                for tick in from..=last {
                    if self.log.read(tick, &mut self.scratch).is_err() {
                        break;
                    }
                    ticks.presence.push(self.scratch.present_mask());
                    ticks
                        .inputs
                        .extend_from_slice(bytemuck::cast_slice(self.scratch.raw()));
                }
                slot.sent_up_to = last;
                slot.last_sent = now;
                out.send(conn, ServerMessage::Verified { live, ticks });
                from = last + 1;
            }
        }
    }

    fn housekeeping(
        &mut self,
        now: Duration,
        peer_timeout: Duration,
        heartbeat: Duration,
        out: &mut Outbox,
    ) {
        // Silent players are gone; inactive slots past PlayerTTL are freed.
        for p in 0..self.slots.len() {
            let Some(slot) = self.slots[p].as_ref() else {
                continue;
            };
            match slot.conn {
                Some(conn) if now >= slot.last_heard + peer_timeout => {
                    out.close(conn);
                    self.disconnect(now, conn, "timed out", out);
                }
                None if now >= slot.inactive_since + self.config.player_ttl => {
                    self.slots[p] = None;
                    let player = PlayerId(p as u8);
                    self.event(out, |room| ServerEvent::SlotFreed { room, player });
                }
                Some(_) if now >= slot.last_sent + heartbeat => {
                    let live = self.finalized;
                    self.send(
                        out,
                        PlayerId(p as u8),
                        now,
                        ServerMessage::Heartbeat { live },
                    );
                }
                _ => {}
            }
        }
        if let Some(since) = self.empty_since
            && self.active_count() == 0
            && (now >= since + self.config.empty_room_ttl || matches!(self.phase, Phase::Ended))
        {
            self.phase = Phase::Closed;
            self.slots.iter_mut().for_each(|s| *s = None);
            self.uploads.clear();
            self.event(out, |room| ServerEvent::RoomClosed { room });
            return;
        }
        if let Phase::Ended = self.phase {
            let end = self.finalized;
            for p in 0..self.slots.len() {
                if self.slots[p]
                    .as_ref()
                    .is_some_and(|s| s.conn.is_some() && s.received >= end)
                {
                    self.send(
                        out,
                        PlayerId(p as u8),
                        now,
                        ServerMessage::End { tick: end },
                    );
                }
            }
        }
        self.judge_checksums(now, out);
        self.resend_downloads(now, out);
        self.chase_uploads(now, out);
    }

    fn judge_checksums(&mut self, now: Duration, out: &mut Outbox) {
        let grace = self.config.ticks_in(Duration::from_secs(2));
        let settled = self.finalized.saturating_sub(grace);
        let slots = &self.slots;
        let expected = |tick: Tick| {
            mask(slots.iter().map(|s| {
                s.as_ref()
                    .is_some_and(|s| s.conn.is_some() && s.entered.is_some_and(|e| e <= tick))
            }))
        };
        for verdict in self.book.decide(settled, expected) {
            if verdict.is_desync() {
                self.desync(now, verdict, out);
            }
        }
        if self.ready.as_ref().is_none() && self.slots.iter().flatten().any(|s| s.awaiting_snapshot)
        {
            self.serve_waiting(now, out);
        }
    }

    /// Reports a desync to the host and the clients, and asks the disagreeing players
    /// and one agreeing player for their snapshot of that tick as evidence.
    fn desync(&mut self, now: Duration, verdict: Verdict, out: &mut Outbox) {
        let tick = verdict.tick;
        let disagreeing = verdict.disagreeing.clone();
        self.event(out, |room| ServerEvent::Desync {
            room,
            tick,
            disagreeing: disagreeing.clone(),
        });
        for p in 0..self.slots.len() {
            let message = ServerMessage::Desync {
                tick,
                disagreeing: verdict.disagreeing.clone(),
            };
            self.send(out, PlayerId(p as u8), now, message);
        }
        if self.first_desync.is_some() {
            return;
        }
        self.first_desync = Some(tick);
        let agreeing = verdict.consensus.and_then(|consensus| {
            (0..self.slots.len())
                .find(|&p| self.book.reported(tick, PlayerId(p as u8)) == Some(consensus))
        });
        let witnesses = verdict
            .disagreeing
            .iter()
            .map(|p| p.0 as usize)
            .chain(agreeing);
        for p in witnesses.collect::<Vec<_>>() {
            self.request_upload(now, PlayerId(p as u8), tick, None, Purpose::Evidence, out);
        }
    }

    fn request_upload(
        &mut self,
        now: Duration,
        from: PlayerId,
        tick: Tick,
        expected: Option<Checksum>,
        purpose: Purpose,
        out: &mut Outbox,
    ) {
        let id = self.new_id();
        self.uploads.push(Upload {
            id,
            from,
            tick,
            expected,
            purpose,
            incoming: Incoming::new(self.config.max_snapshot_len, now),
            asked_at: now,
        });
        self.send(
            out,
            from,
            now,
            ServerMessage::UploadRequest { upload: id, tick },
        );
    }

    /// Asks again for stalled uploads; gives up on buddies past the snapshot timeout.
    fn chase_uploads(&mut self, now: Duration, out: &mut Outbox) {
        let mut gave_up = false;
        let timeout = self.config.snapshot_timeout;
        let mut i = 0;
        while i < self.uploads.len() {
            let upload = &self.uploads[i];
            if now >= upload.asked_at + timeout {
                let upload = self.uploads.swap_remove(i);
                if upload.purpose == Purpose::Buddy {
                    self.buddies_tried |= 1 << upload.from.0;
                    gave_up = true;
                }
                continue;
            }
            if upload.incoming.stalled(now, UPLOAD_STALL) {
                let (id, from, tick) = (upload.id, upload.from, upload.tick);
                let missing = upload.incoming.missing();
                self.uploads[i].incoming.last_progress = now;
                let message = if missing.is_empty() {
                    ServerMessage::UploadRequest { upload: id, tick }
                } else {
                    ServerMessage::ResendUpload {
                        upload: id,
                        chunks: missing,
                    }
                };
                self.send(out, from, now, message);
            }
            i += 1;
        }
        if gave_up {
            self.serve_waiting(now, out);
        }
    }

    fn resend_downloads(&mut self, now: Duration, out: &mut Outbox) {
        for p in 0..self.slots.len() {
            let Some(slot) = self.slots[p].as_mut() else {
                continue;
            };
            let Some(download) = slot.download.as_mut() else {
                continue;
            };
            if now < download.sent_at + DOWNLOAD_RESEND {
                continue;
            }
            download.sent_at = now;
            let messages = download.messages(download.snapshot.chunks().iter(), self.finalized);
            for message in messages {
                self.send(out, PlayerId(p as u8), now, message);
            }
        }
    }

    /// Gives every player waiting for a snapshot the checked buddy snapshot if it is
    /// fresh enough; otherwise makes sure a buddy is being asked, or refuses the
    /// waiting players when no buddy can help.
    fn serve_waiting(&mut self, now: Duration, out: &mut Outbox) {
        let waiting: Vec<usize> = (0..self.slots.len())
            .filter(|&p| {
                self.slots[p]
                    .as_ref()
                    .is_some_and(|s| s.conn.is_some() && s.awaiting_snapshot)
            })
            .collect();
        if waiting.is_empty() {
            self.search_began = None;
            self.buddies_tried = 0;
            return;
        }
        let max_age = self.config.ticks_in(self.config.local_snapshot_max_age);
        let usable = self.ready.as_ref().is_some_and(|(tick, _, _)| {
            self.finalized - tick <= max_age && self.log.oldest().is_some_and(|o| o <= tick + 1)
        });
        if usable {
            let (tick, checksum, snapshot) = self.ready.clone().unwrap_or_else(|| unreachable!());
            for p in waiting {
                self.give_snapshot(now, p, tick, checksum, snapshot.clone(), out);
            }
            return;
        }
        self.ready = None;
        if self.uploads.iter().any(|u| u.purpose == Purpose::Buddy) {
            return;
        }
        let began = *self.search_began.get_or_insert(now);
        let candidates = self.buddy_candidates();
        let Some((tick, checksum, agreeing)) = self.book.newest_consensus() else {
            // No agreed checksum yet: wait for reports, unless nobody could give one.
            if candidates == 0 {
                self.refuse_waiting(now, &waiting, self.search_error(), out);
            } else if now >= began + self.config.snapshot_timeout {
                self.refuse_waiting(now, &waiting, SessionError::SnapshotRequestTimedOut, out);
            }
            return;
        };
        let choice = (0..self.slots.len())
            .filter(|&p| candidates & agreeing & (1 << p) != 0)
            .min_by_key(|&p| (self.slots[p].as_ref().map_or(u32::MAX, |s| s.served), p));
        let Some(buddy) = choice else {
            self.refuse_waiting(now, &waiting, self.search_error(), out);
            return;
        };
        if let Some(slot) = self.slots[buddy].as_mut() {
            slot.served += 1;
        }
        let buddy = PlayerId(buddy as u8);
        self.event(out, |room| ServerEvent::BuddyAsked { room, buddy, tick });
        self.request_upload(now, buddy, tick, Some(checksum), Purpose::Buddy, out);
    }

    /// Connected, entered, caught-up players not yet tried.
    fn buddy_candidates(&self) -> u64 {
        let close = self.config.ticks_in(Duration::from_secs(1));
        let ready = mask(self.slots.iter().map(|s| {
            s.as_ref().is_some_and(|s| {
                s.conn.is_some()
                    && s.entered.is_some()
                    && s.download.is_none()
                    && s.stepped + close >= self.finalized
            })
        }));
        ready & !self.buddies_tried
    }

    fn search_error(&self) -> SessionError {
        if self.buddies_tried == 0 {
            SessionError::SnapshotRequestFailed
        } else {
            SessionError::SnapshotRequestTimedOut
        }
    }

    fn refuse_waiting(
        &mut self,
        now: Duration,
        waiting: &[usize],
        error: SessionError,
        out: &mut Outbox,
    ) {
        for &p in waiting {
            let Some(conn) = self.slots[p].as_ref().and_then(|s| s.conn) else {
                continue;
            };
            out.send(conn, ServerMessage::Refused(error.clone()));
            out.close(conn);
            self.disconnect(now, conn, "no snapshot", out);
        }
        self.search_began = None;
        self.buddies_tried = 0;
    }

    fn give_snapshot(
        &mut self,
        now: Duration,
        p: usize,
        tick: Tick,
        checksum: Checksum,
        snapshot: Arc<Outgoing>,
        out: &mut Outbox,
    ) {
        let transfer = self.new_id();
        let Some(slot) = self.slots[p].as_mut() else {
            return;
        };
        let download = Download {
            transfer,
            tick,
            checksum,
            source: SnapshotSource::Buddy,
            snapshot,
            sent_at: now,
        };
        let messages = download.messages(download.snapshot.chunks().iter(), self.finalized);
        let bytes = download.snapshot.len();
        slot.awaiting_snapshot = false;
        slot.entered = Some(tick);
        (slot.received, slot.sent_up_to) = (tick, tick);
        slot.download = Some(download);
        for message in messages {
            self.send(out, PlayerId(p as u8), now, message);
        }
        let player = PlayerId(p as u8);
        self.event(out, |room| ServerEvent::SnapshotSent {
            room,
            player,
            tick,
            bytes,
        });
    }
}

/// Whether buddy snapshot `bytes` is of `tick`, for `schema`, and really has the
/// checksum the peers agreed on (its payload is hashed here: the header alone could lie).
fn snapshot_matches(
    bytes: &[u8],
    tick: Tick,
    schema: SchemaHash,
    expected: Option<Checksum>,
) -> bool {
    let Ok(header) = tickstep_snapshot::format::read_header(bytes) else {
        return false;
    };
    let payload = &bytes[header.header_len().min(bytes.len())..];
    header.tick == tick
        && header.schema_hash == schema
        && Some(header.checksum) == expected
        && Checksum::from(blake3::hash(payload)) == header.checksum
}
