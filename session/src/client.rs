//! `Client`: one player's side of a room. It joins (or rejoins with its secret id),
//! enters the game from tick 0, its own local snapshot or a buddy's, catches up over
//! the verified input it missed, then steps its frame on verified input as it comes,
//! sends its own input and reports checksums. After an unexpected loss it keeps a
//! snapshot of its last verified frame and reconnects with backoff; after a quit, a
//! kick, a refusal or the end of the game it does not.

use bytemuck::Pod;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::{Checksum, Frame, PlayerId, Schema, Simulation, Tick, TickInputs, checksum};
use tickstep_replay::InputLog;

use super::SessionError;
use super::protocol::{
    ClientMessage, Entry, Hello, MAX_LIST, PROTOCOL_VERSION, RoomInfo, ServerMessage,
    SnapshotSource, VerifiedTicks,
};
use super::reconnect::{LocalSnapshot, ReconnectInfo, ReconnectPolicy};
use super::transfer::{Incoming, Outgoing};

/// A client's timing and limits. `Default` gives the values named on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The game build, compared with the room's (default: empty).
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
    /// Largest snapshot accepted (default 64 MiB).
    pub max_snapshot_len: u64,
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
        }
    }
}

/// Why a client stopped for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The player left ([`Client::leave`]).
    Quit,
    /// Reconnection was cancelled ([`Client::cancel`]).
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

/// Where a client stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Not started yet: call [`Client::connect`].
    Idle,
    /// Saying hello.
    Connecting,
    /// In the room, waiting for the game to start.
    Lobby,
    /// Waiting for a snapshot; simulation and clock paused.
    WaitingForSnapshot,
    /// Running buffered verified input to reach live.
    CatchingUp,
    /// In step with the room.
    Running,
    /// Lost the connection; the next attempt starts after a backoff.
    Reconnecting {
        /// The attempt coming up (1-based).
        attempt: u32,
    },
    /// Stopped for good.
    Disconnected(DisconnectReason),
}

/// What the host game hears about. Events from before a (re)join are not replayed:
/// the game view polls [`Client::frame`] to set itself up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Took (or retook) a slot.
    Joined {
        /// The slot.
        player: PlayerId,
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
    /// Catch-up progress (after each [`Client::advance`] that stepped while catching up).
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

/// Checksum reports repeated in every update (they may be lost).
const REPORTS_KEPT: usize = 8;
/// Own input kept unconfirmed at most.
const MAX_UNCONFIRMED: usize = 256;
/// A stalled snapshot download asks for its missing chunks after this.
const DOWNLOAD_STALL: Duration = Duration::from_millis(300);

/// One player's lockstep client for a game with globals `G` and input `I`.
pub struct Client<G, I> {
    config: ClientConfig,
    info: ReconnectInfo,
    schema: Arc<Schema>,
    simulation: Simulation<G, I>,
    initial: Frame<G>,
    initial_checksum: Checksum,
    frame: Frame<G>,
    state: ClientState,
    room: Option<RoomInfo>,
    /// The tick verified input continues from, once known (the entry tick).
    base: Option<Tick>,
    /// Whether `frame` holds game state (entered).
    entered_at: Option<Tick>,
    log: InputLog<I>,
    scratch: TickInputs<I>,
    live: Tick,
    next_input: Tick,
    unconfirmed: VecDeque<(Tick, I)>,
    snapshots: VecDeque<(Tick, Checksum, Vec<u8>)>,
    reports: VecDeque<(Tick, Checksum)>,
    download: Option<(u32, Tick, Checksum, SnapshotSource, Incoming)>,
    upload: Option<(u32, Outgoing)>,
    end_at: Option<Tick>,
    attempt: u32,
    retry_at: Option<Duration>,
    began: Duration,
    last_heard: Duration,
    last_sent: Duration,
    last_hello: Duration,
    dirty: bool,
    /// The latest time any call brought.
    now: Duration,
    out: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
}

impl<G: Pod, I: Pod + PartialEq> Client<G, I> {
    /// A client that will join `info.room` as `info.client_id`, playing the game whose
    /// tick-0 frame is `initial`, stepped by `simulation`. Pass saved [`ReconnectInfo`]
    /// to come back to a slot after an app restart.
    pub fn new(
        config: ClientConfig,
        info: ReconnectInfo,
        initial: Frame<G>,
        simulation: Simulation<G, I>,
    ) -> Client<G, I> {
        let initial_checksum = checksum(&initial);
        let history = config.history.max(1);
        Client {
            schema: initial.schema().clone(),
            frame: initial.clone(),
            initial,
            initial_checksum,
            simulation,
            info,
            state: ClientState::Idle,
            room: None,
            base: None,
            entered_at: None,
            log: InputLog::new(0, history),
            // Zero slots cannot exceed the maximum.
            scratch: TickInputs::new(0).unwrap_or_else(|_| unreachable!()),
            live: 0,
            next_input: 1,
            unconfirmed: VecDeque::new(),
            snapshots: VecDeque::new(),
            reports: VecDeque::new(),
            download: None,
            upload: None,
            end_at: None,
            attempt: 0,
            retry_at: None,
            began: Duration::ZERO,
            last_heard: Duration::ZERO,
            last_sent: Duration::ZERO,
            last_hello: Duration::ZERO,
            dirty: false,
            now: Duration::ZERO,
            out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        }
    }

    /// The current frame: the game state to render (meaningful once entered).
    pub fn frame(&self) -> &Frame<G> {
        &self.frame
    }

    /// Where the client stands.
    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// The slot held, once welcomed (kept across reconnections).
    pub fn player(&self) -> Option<PlayerId> {
        self.info.player
    }

    /// The newest verified tick the room has announced.
    pub fn live(&self) -> Tick {
        self.live
    }

    /// The room's parameters, once welcomed.
    pub fn room(&self) -> Option<&RoomInfo> {
        self.room.as_ref()
    }

    /// What to save to rejoin after an app restart; its local snapshot is the newest
    /// checksum tick's (or the one kept at the last loss).
    pub fn reconnect_info(&self) -> ReconnectInfo {
        let mut info = self.info.clone();
        if let Some((tick, checksum, bytes)) = self.snapshots.back() {
            let newer = info.local_snapshot.as_ref().is_none_or(|s| s.tick < *tick);
            if newer {
                info.local_snapshot = Some(LocalSnapshot {
                    tick: *tick,
                    checksum: *checksum,
                    bytes: bytes.clone(),
                });
            }
        }
        info
    }

    /// Starts joining (or rejoining, when the info names a slot held before).
    pub fn connect(&mut self, now: Duration) {
        self.attempt = 0;
        self.began = now;
        self.begin_attempt(now);
    }

    /// After `PlayerTtlExpired`: forgets the old slot and joins as a new player.
    pub fn join_as_new(&mut self, now: Duration) {
        self.info.player = None;
        self.info.local_snapshot = None;
        self.connect(now);
    }

    /// The player quits: tells the room to free the slot; no reconnection follows.
    /// (While reconnecting there is no connection to tell: the room then keeps the
    /// slot until PlayerTTL.)
    pub fn leave(&mut self, _now: Duration) {
        if matches!(self.state, ClientState::Disconnected(_) | ClientState::Idle) {
            return;
        }
        if !matches!(self.state, ClientState::Reconnecting { .. }) {
            self.out
                .push_back(ClientTransmit::Send(ClientMessage::Leave));
        }
        self.stop(DisconnectReason::Quit);
    }

    /// Stops whatever is under way (a reconnection in particular) for good.
    pub fn cancel(&mut self) {
        if !matches!(self.state, ClientState::Disconnected(_)) {
            self.stop(DisconnectReason::Cancelled);
        }
    }

    fn stop(&mut self, reason: DisconnectReason) {
        self.keep_local_snapshot();
        self.out.push_back(ClientTransmit::Close);
        self.retry_at = None;
        self.state = ClientState::Disconnected(reason.clone());
        self.events.push_back(ClientEvent::Disconnected { reason });
    }

    /// One attempt from a clean state: only the reconnect info carries over.
    fn begin_attempt(&mut self, now: Duration) {
        self.frame.clone_from(&self.initial);
        self.room = None;
        self.base = None;
        self.entered_at = None;
        self.live = 0;
        self.unconfirmed.clear();
        self.snapshots.clear();
        self.reports.clear();
        self.download = None;
        self.upload = None;
        self.end_at = None;
        self.retry_at = None;
        self.last_heard = now;
        self.state = ClientState::Connecting;
        self.out.push_back(ClientTransmit::Connect);
        self.send_hello(now);
    }

    fn send_hello(&mut self, now: Duration) {
        self.last_hello = now;
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            app_version: self.config.app_version.clone(),
            schema: self.schema.hash(),
            initial: self.initial_checksum,
            room: self.info.room.clone(),
            client_id: self.info.client_id,
            rejoin: self.info.player.is_some(),
            local_snapshot: self
                .info
                .local_snapshot
                .as_ref()
                .map(|s| (s.tick, s.checksum)),
        };
        self.transmit(now, ClientMessage::Hello(hello));
    }

    fn transmit(&mut self, now: Duration, message: ClientMessage) {
        self.last_sent = now;
        self.out.push_back(ClientTransmit::Send(message));
    }

    /// The transport lost the connection (or could not open it).
    pub fn handle_connection_lost(&mut self, now: Duration, what: &str) {
        if matches!(
            self.state,
            ClientState::Idle | ClientState::Disconnected(_) | ClientState::Reconnecting { .. }
        ) {
            return;
        }
        self.lost(now, SessionError::ConnectionLost(what.to_string()));
    }

    /// An unexpected loss: keep a local snapshot, then retry after a backoff.
    fn lost(&mut self, now: Duration, reason: SessionError) {
        self.keep_local_snapshot();
        self.out.push_back(ClientTransmit::Close);
        self.attempt += 1;
        if self.attempt > self.config.reconnect.attempts {
            let tries = self.attempt - 1;
            self.stop(DisconnectReason::Error(SessionError::ReconnectFailed(
                tries,
            )));
            return;
        }
        if matches!(self.state, ClientState::Running | ClientState::CatchingUp) {
            self.began = now;
        } else if now >= self.began + self.config.start_timeout {
            // Still not in the game and out of time: give up now, not at the next call.
            self.stop(DisconnectReason::Error(SessionError::StartTimeout));
            return;
        }
        let after = self.config.reconnect.backoff(self.attempt);
        self.retry_at = Some(now + after);
        self.state = ClientState::Reconnecting {
            attempt: self.attempt,
        };
        self.events.push_back(ClientEvent::Reconnecting {
            attempt: self.attempt,
            after,
            reason,
        });
    }

    /// Keeps the newest verified frame it has a snapshot of for a rejoin: the last
    /// checksum tick's (at most `checksum_every` ticks old, and one the peers reported
    /// on, so the room can check it), or else the current frame.
    fn keep_local_snapshot(&mut self) {
        if self.entered_at.is_none() {
            return;
        }
        let kept = self.reconnect_info().local_snapshot;
        let local = kept
            .filter(|s| s.tick >= self.entered_at.unwrap_or(0))
            .unwrap_or_else(|| {
                let mut bytes = Vec::new();
                let checksum = tickstep_snapshot::encode(&self.frame, &mut bytes);
                LocalSnapshot {
                    tick: self.frame.tick(),
                    checksum,
                    bytes,
                }
            });
        self.info.local_snapshot = Some(local);
    }

    /// A message from the server.
    pub fn handle_message(&mut self, now: Duration, message: ServerMessage) {
        if matches!(
            self.state,
            ClientState::Idle | ClientState::Disconnected(_) | ClientState::Reconnecting { .. }
        ) {
            return;
        }
        self.last_heard = now;
        match message {
            ServerMessage::Welcome {
                player,
                room,
                entry,
                live,
            } => {
                self.live = self.live.max(live);
                self.welcome(now, player, room, entry);
            }
            ServerMessage::Refused(error) => self.refused(now, error),
            ServerMessage::Start => self.start_if_lobby(),
            ServerMessage::Verified { live, ticks } => {
                self.live = self.live.max(live);
                self.start_if_lobby();
                self.take_verified(&ticks);
            }
            ServerMessage::SnapshotChunk {
                transfer,
                tick,
                checksum,
                source,
                live,
                chunk,
            } => {
                self.live = self.live.max(live);
                self.snapshot_chunk(now, transfer, tick, checksum, source, &chunk);
            }
            ServerMessage::UploadRequest { upload, tick } => {
                self.upload_requested(now, upload, tick)
            }
            ServerMessage::ResendUpload { upload, chunks } => {
                let resend: Vec<_> = match &self.upload {
                    Some((id, outgoing)) if *id == upload => {
                        outgoing.select(&chunks).cloned().collect()
                    }
                    _ => Vec::new(),
                };
                for chunk in resend {
                    self.transmit(now, ClientMessage::UploadChunk { upload, chunk });
                }
            }
            ServerMessage::Desync { tick, disagreeing } => {
                self.events
                    .push_back(ClientEvent::Desync { tick, disagreeing });
            }
            ServerMessage::Heartbeat { live } => {
                self.live = self.live.max(live);
                if live > 0 {
                    self.start_if_lobby();
                }
            }
            ServerMessage::End { tick } => {
                self.end_at = Some(tick);
                self.check_end();
            }
        }
        self.now = self.now.max(now);
    }

    fn welcome(&mut self, now: Duration, player: PlayerId, room: RoomInfo, entry: Entry) {
        if self.state != ClientState::Connecting {
            return;
        }
        let players = self.scratch_players(&room);
        if room.input_size as usize != size_of::<I>()
            || players.is_none()
            || player.0 >= room.players
        {
            self.stop(DisconnectReason::Error(SessionError::ProtocolViolation(
                "the room's input size, player count or slot does not fit this game".into(),
            )));
            return;
        }
        let players = players.unwrap_or_default();
        self.info.player = Some(player);
        self.room = Some(room);
        self.log = InputLog::new(players, self.config.history.max(1));
        // Checked above: at most 64 slots.
        self.scratch = TickInputs::new(players).unwrap_or_else(|_| unreachable!());
        self.events.push_back(ClientEvent::Joined { player, entry });
        match entry {
            Entry::Lobby => self.state = ClientState::Lobby,
            Entry::FromStart => self.enter_from_start(),
            Entry::LocalSnapshot { tick } => {
                let local = self.info.local_snapshot.take().filter(|s| s.tick == tick);
                // The bytes must be the snapshot offered (its checksum) and restore cleanly.
                let restored = local.as_ref().is_some_and(|s| {
                    tickstep_snapshot::format::read_header(&s.bytes)
                        .is_ok_and(|h| h.checksum == s.checksum)
                        && tickstep_snapshot::restore(&s.bytes, &mut self.frame).is_ok()
                });
                match local {
                    Some(local) if restored => {
                        let bytes = local.bytes.len() as u64;
                        self.info.local_snapshot = Some(local);
                        self.entered(tick, SnapshotSource::Local, bytes);
                    }
                    _ => self.lost(now, SessionError::SnapshotRejected),
                }
            }
            Entry::AwaitSnapshot => {
                self.state = ClientState::WaitingForSnapshot;
                self.events.push_back(ClientEvent::WaitingForSnapshot);
            }
        }
    }

    fn scratch_players(&self, room: &RoomInfo) -> Option<usize> {
        (room.players as usize <= tickstep_engine::MAX_PLAYERS && room.players > 0)
            .then_some(room.players as usize)
    }

    fn refused(&mut self, now: Duration, error: SessionError) {
        let rejoining = self.info.player.is_some();
        match error {
            // The room still sees our old connection: retry until it times it out.
            SessionError::DuplicateClientId
                if rejoining && self.state == ClientState::Connecting =>
            {
                self.out.push_back(ClientTransmit::Close);
                let after = self.config.reconnect.backoff(self.attempt.max(1) + 1);
                self.retry_at = Some(now + after);
                self.state = ClientState::Reconnecting {
                    attempt: self.attempt.max(1),
                };
                self.events.push_back(ClientEvent::Reconnecting {
                    attempt: self.attempt.max(1),
                    after,
                    reason: error,
                });
            }
            error if error.is_unexpected_loss() => self.lost(now, error),
            error => {
                if matches!(error, SessionError::Kicked | SessionError::PlayerTtlExpired) {
                    // The slot is gone: a later connect is a new join.
                    self.info.player = None;
                    self.info.local_snapshot = None;
                }
                self.stop(DisconnectReason::Error(error));
            }
        }
    }

    /// A lobby client enters at tick 0 once it hears the game started: from `Start`,
    /// or (when that was lost) from verified input or a live tick past 0.
    fn start_if_lobby(&mut self) {
        if self.state == ClientState::Lobby {
            self.enter_from_start();
        }
    }

    fn enter_from_start(&mut self) {
        self.frame.clone_from(&self.initial);
        self.base = Some(0);
        self.entered_at = Some(0);
        self.events.push_back(ClientEvent::Started);
        self.after_entry();
    }

    fn entered(&mut self, tick: Tick, source: SnapshotSource, bytes: u64) {
        if self.base != Some(tick) {
            self.base = Some(tick);
            self.log = InputLog::new(self.scratch.players(), self.config.history.max(1));
        }
        self.entered_at = Some(tick);
        self.events.push_back(ClientEvent::Resynced {
            tick,
            source,
            bytes,
        });
        self.after_entry();
    }

    fn after_entry(&mut self) {
        let tick = self.frame.tick();
        self.next_input = tick + 1;
        self.state = ClientState::CatchingUp;
        self.dirty = true;
        self.update_running();
    }

    /// CatchingUp becomes Running within `close_enough` of live.
    fn update_running(&mut self) {
        if self.state == ClientState::CatchingUp
            && self.frame.tick() + self.config.close_enough >= self.live
        {
            let ticks = self.frame.tick() - self.entered_at.unwrap_or(0);
            self.state = ClientState::Running;
            self.attempt = 0;
            self.next_input = self.next_input.max(self.live.saturating_add(1));
            self.dirty = true;
            if ticks > 0 {
                self.events.push_back(ClientEvent::CaughtUp { ticks });
            }
        }
    }

    fn take_verified(&mut self, ticks: &VerifiedTicks) {
        let Some(base) = self.base else { return };
        let players = self.scratch.players();
        let row = players * size_of::<I>();
        if row == 0 || ticks.inputs.len() != ticks.presence.len() * row {
            return;
        }
        for (i, (&present, bytes)) in ticks
            .presence
            .iter()
            .zip(ticks.inputs.chunks_exact(row))
            .enumerate()
        {
            let Some(tick) = ticks.first.checked_add(i as u64) else {
                return;
            };
            if tick != self.log.newest().unwrap_or(base).saturating_add(1) {
                continue;
            }
            self.scratch.reset(tick);
            for (p, input) in bytes.chunks_exact(size_of::<I>()).enumerate() {
                if present & (1 << p) != 0 {
                    // Cannot fail: `p` is below the slot count.
                    let _ = self
                        .scratch
                        .set(PlayerId(p as u8), bytemuck::pod_read_unaligned(input));
                }
            }
            // Cannot fail: in order, and the slot count matches.
            let _ = self.log.push(&self.scratch);
            self.dirty = true;
        }
        let confirmed = self.log.newest().unwrap_or(base);
        while self
            .unconfirmed
            .front()
            .is_some_and(|(t, _)| *t <= confirmed)
        {
            self.unconfirmed.pop_front();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn snapshot_chunk(
        &mut self,
        now: Duration,
        transfer: u32,
        tick: Tick,
        checksum: Checksum,
        source: SnapshotSource,
        chunk: &tickstep_snapshot::Chunk,
    ) {
        if self.state != ClientState::WaitingForSnapshot {
            return;
        }
        if self.download.as_ref().is_none_or(|d| d.0 != transfer) {
            let incoming = Incoming::new(self.config.max_snapshot_len, now);
            self.download = Some((transfer, tick, checksum, source, incoming));
            self.base = Some(tick);
            self.log = InputLog::new(self.scratch.players(), self.config.history.max(1));
        }
        let Some((_, _, _, _, incoming)) = self.download.as_mut() else {
            return;
        };
        match incoming.add(now, chunk) {
            Ok(false) => {}
            Ok(true) => {
                let Some((_, tick, checksum, source, incoming)) = self.download.take() else {
                    return;
                };
                let restored = incoming.finish().ok().filter(|bytes| {
                    tickstep_snapshot::format::read_header(bytes)
                        .is_ok_and(|h| h.checksum == checksum && h.tick == tick)
                        && tickstep_snapshot::restore(bytes, &mut self.frame).is_ok()
                });
                match restored {
                    Some(bytes) => self.entered(tick, source, bytes.len() as u64),
                    None => self.lost(now, SessionError::SnapshotRejected),
                }
            }
            Err(_) => self.lost(now, SessionError::SnapshotRejected),
        }
    }

    fn upload_requested(&mut self, now: Duration, upload: u32, tick: Tick) {
        if self.upload.as_ref().is_none_or(|(id, _)| *id != upload) {
            let held = self
                .snapshots
                .iter()
                .find(|(t, _, _)| *t == tick)
                .map(|(_, _, bytes)| Outgoing::new(bytes));
            let held = held.or_else(|| {
                (self.entered_at.is_some() && self.frame.tick() == tick).then(|| {
                    let mut bytes = Vec::new();
                    tickstep_snapshot::encode(&self.frame, &mut bytes);
                    Outgoing::new(&bytes)
                })
            });
            let Some(outgoing) = held else {
                self.transmit(now, ClientMessage::UploadUnavailable { upload });
                return;
            };
            self.upload = Some((upload, outgoing));
        }
        let chunks: Vec<_> = self
            .upload
            .as_ref()
            .map(|(_, o)| o.chunks().to_vec())
            .unwrap_or_default();
        for chunk in chunks {
            self.transmit(now, ClientMessage::UploadChunk { upload, chunk });
        }
    }

    /// Steps the frame over buffered verified input, at most `max_ticks` ticks (the
    /// host's budget for this call); returns the ticks stepped. Every `checksum_every`
    /// ticks the frame is snapshotted and its checksum reported.
    pub fn advance(&mut self, now: Duration, max_ticks: u64) -> u64 {
        if !matches!(self.state, ClientState::CatchingUp | ClientState::Running) {
            return 0;
        }
        let every = self.room.map_or(0, |r| r.checksum_every as u64);
        let mut stepped = 0;
        while stepped < max_ticks
            && self
                .log
                .read(self.frame.tick() + 1, &mut self.scratch)
                .is_ok()
        {
            if self
                .simulation
                .step(&mut self.frame, &self.scratch)
                .is_err()
            {
                break;
            }
            stepped += 1;
            let tick = self.frame.tick();
            if every > 0 && tick.is_multiple_of(every) {
                self.record_checksum(tick);
            }
        }
        if stepped > 0 {
            self.dirty = true;
            if self.state == ClientState::CatchingUp {
                let done = self.frame.tick() - self.entered_at.unwrap_or(0);
                self.events.push_back(ClientEvent::CatchUpProgress {
                    done,
                    target: self.live,
                });
            }
            self.update_running();
            self.check_end();
        }
        self.now = self.now.max(now);
        stepped
    }

    fn record_checksum(&mut self, tick: Tick) {
        let mut bytes = if self.snapshots.len() >= self.config.snapshots_kept.max(1) {
            self.snapshots
                .pop_front()
                .map(|(_, _, b)| b)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let sum = tickstep_snapshot::encode(&self.frame, &mut bytes);
        self.snapshots.push_back((tick, sum, bytes));
        if self.reports.len() >= REPORTS_KEPT {
            self.reports.pop_front();
        }
        self.reports.push_back((tick, sum));
    }

    fn check_end(&mut self) {
        if self.end_at.is_some_and(|end| self.frame.tick() >= end) {
            self.out
                .push_back(ClientTransmit::Send(ClientMessage::Leave));
            self.stop(DisconnectReason::GameEnded);
        }
    }

    /// The tick the next [`Client::send_input`] is for, when input is due (running,
    /// and less than the input delay ahead of live).
    pub fn next_input_tick(&self) -> Option<Tick> {
        let room = self.room.as_ref()?;
        let tick = self.next_input.max(self.live.saturating_add(1));
        let due = self.state == ClientState::Running
            && tick <= self.live.saturating_add(room.input_delay as u64)
            && self.unconfirmed.len() < MAX_UNCONFIRMED;
        due.then_some(tick)
    }

    /// Sends own input for [`Client::next_input_tick`]; returns that tick (`None`
    /// when no input is due, and the input is dropped).
    pub fn send_input(&mut self, now: Duration, input: I) -> Option<Tick> {
        let tick = self.next_input_tick()?;
        if tick != self.next_input {
            // Live moved past the input still unconfirmed: those ticks are final, and the
            // update must carry consecutive ticks.
            self.unconfirmed.clear();
        }
        self.unconfirmed.push_back((tick, input));
        self.next_input = tick.saturating_add(1);
        self.dirty = true;
        self.now = self.now.max(now);
        Some(tick)
    }

    /// Time passed: retries, timeouts, heartbeats and stalled downloads.
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.state {
            ClientState::Idle | ClientState::Disconnected(_) => return,
            ClientState::Reconnecting { .. } => {
                if now >= self.began + self.config.start_timeout {
                    self.stop(DisconnectReason::Error(SessionError::StartTimeout));
                } else if self.retry_at.is_some_and(|at| now >= at) {
                    self.begin_attempt(now);
                }
                return;
            }
            _ => {}
        }
        if now >= self.last_heard + self.config.server_timeout {
            self.lost(
                now,
                SessionError::ConnectionLost("the server fell silent".into()),
            );
            return;
        }
        let starting = matches!(
            self.state,
            ClientState::Connecting | ClientState::WaitingForSnapshot
        );
        if starting && now >= self.began + self.config.start_timeout {
            self.stop(DisconnectReason::Error(SessionError::StartTimeout));
            return;
        }
        if self.state == ClientState::Connecting && now >= self.last_hello + self.config.hello_retry
        {
            self.send_hello(now);
        }
        if let Some((transfer, _, _, _, incoming)) = self.download.as_mut()
            && incoming.stalled(now, DOWNLOAD_STALL)
        {
            incoming.last_progress = now;
            let message = ClientMessage::ResendChunks {
                transfer: *transfer,
                chunks: incoming.missing(),
            };
            self.transmit(now, message);
        }
        self.now = self.now.max(now);
    }

    /// Sends an update when something changed or a heartbeat is due.
    fn flush(&mut self, now: Duration) {
        let Some(base) = self.base else {
            // In the lobby or waiting for a snapshot: only a heartbeat, so the room
            // keeps hearing from us.
            let waiting = matches!(
                self.state,
                ClientState::Lobby | ClientState::WaitingForSnapshot
            );
            if waiting && now >= self.last_sent + self.config.heartbeat {
                self.transmit(now, self.update(0));
            }
            return;
        };
        if !matches!(
            self.state,
            ClientState::CatchingUp | ClientState::Running | ClientState::WaitingForSnapshot
        ) {
            return;
        }
        if self.dirty || now >= self.last_sent + self.config.heartbeat {
            self.dirty = false;
            let received = self.log.newest().unwrap_or(base);
            self.transmit(now, self.update(received));
        }
    }

    fn update(&self, received: Tick) -> ClientMessage {
        let first_input = self.unconfirmed.front().map_or(0, |(t, _)| *t);
        let inputs = self
            .unconfirmed
            .iter()
            .flat_map(|(_, i)| bytemuck::bytes_of(i).iter().copied())
            .collect();
        let stepped = if self.entered_at.is_some() {
            self.frame.tick()
        } else {
            0
        };
        ClientMessage::Update {
            received,
            stepped,
            first_input,
            inputs,
            checksums: self.reports.iter().rev().take(MAX_LIST).copied().collect(),
        }
    }

    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            ClientState::Idle | ClientState::Disconnected(_) => None,
            ClientState::Reconnecting { .. } => {
                let give_up = self.began + self.config.start_timeout;
                Some(self.retry_at.map_or(give_up, |at| at.min(give_up)))
            }
            _ => {
                let mut next = self.last_heard + self.config.server_timeout;
                // Connecting, the repeated hello is the only thing sent.
                if self.state != ClientState::Connecting {
                    next = next.min(self.last_sent + self.config.heartbeat);
                }
                if matches!(
                    self.state,
                    ClientState::Connecting | ClientState::WaitingForSnapshot
                ) {
                    next = next.min(self.began + self.config.start_timeout);
                }
                if self.state == ClientState::Connecting {
                    next = next.min(self.last_hello + self.config.hello_retry);
                }
                if let Some((_, _, _, _, incoming)) = &self.download {
                    next = next.min(incoming.last_progress + DOWNLOAD_STALL);
                }
                Some(next)
            }
        }
    }

    /// The next thing for the transport to do.
    ///
    /// Progress, own input and checksum reports go out as one update per drain, however
    /// many calls changed them since the last.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        if self.out.is_empty() {
            self.flush(self.now);
        }
        self.out.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientId;
    use crate::test_game;

    /// Regression: a welcome into a slot outside the room was accepted.
    #[test]
    fn a_welcome_into_a_slot_outside_the_room_is_a_protocol_violation() {
        let frame = test_game::frame(1);
        let info = ReconnectInfo::new("s", "r", ClientId::from_seed(1));
        let mut client = Client::new(
            ClientConfig::default(),
            info,
            frame,
            test_game::simulation(),
        );
        client.connect(Duration::ZERO);
        let room = RoomInfo {
            players: 3,
            tick_rate: 60,
            input_size: 4,
            input_delay: 3,
            checksum_every: 30,
            end_tick: None,
        };
        let welcome = ServerMessage::Welcome {
            player: PlayerId(3),
            room,
            entry: Entry::FromStart,
            live: 0,
        };
        client.handle_message(Duration::ZERO, welcome);
        assert!(matches!(
            client.state(),
            ClientState::Disconnected(DisconnectReason::Error(SessionError::ProtocolViolation(_)))
        ));
        assert_eq!(client.player(), None);
    }
}
