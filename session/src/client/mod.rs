//! `Client`: one player's side of a room. It joins (or rejoins with its secret id),
//! enters the game from tick 0, its own local snapshot or a buddy's, catches up over
//! the verified input it missed, then steps its frame on verified input as it comes,
//! sends its own input and reports checksums. After an unexpected loss it keeps a
//! snapshot of its last verified frame and reconnects with backoff; after a quit, a
//! kick, a refusal or the end of the game it does not.
//!
//! The state machine lives in [`state`] (each state carries its data), the deadlines
//! in one timer table ([`timers`]), the room's clock and the input lead in [`clock`],
//! own input and commands in [`input`], stepping in [`stepping`], entering the game in
//! [`entry`] and losing and regaining the connection in [`reconnecting`].

mod clock;
mod config;
mod entry;
mod events;
mod input;
mod reconnecting;
mod state;
mod stats;
mod stepping;
mod timers;

pub use config::ClientConfig;
pub use events::{ClientEvent, ClientState, ClientTransmit, DisconnectReason, DownloadProgress};
pub use input::CommandError;
pub use stats::{ClientStats, LatencyHistogram};
pub use stepping::Playout;

use bytemuck::Pod;
use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::{Checksum, Frame, Game, Input, PlayerId, Simulation, Tick, checksum};

use crate::protocol::{
    ClientMessage, Command, MAX_LIST, RoomInfo, ServerMessage, Timing, VerifiedTicks,
};
use crate::reconnect::{LocalSnapshot, ReconnectInfo};
use crate::{SessionError, transfer::Outgoing};
use clock::{RoomClock, Slack};
use state::{Attempts, InRoom, Stage, State};
use timers::{Timer, Timers};

/// The shortest any configured interval is taken to be (a zero would make a host spin).
const MIN_TIMER: Duration = Duration::from_millis(1);
/// A stalled snapshot download asks for its missing chunks after this.
const DOWNLOAD_STALL: Duration = Duration::from_millis(300);

/// One player's lockstep client for a game with globals `G` and input `I`.
///
/// Sans-IO, like the [`crate::Server`]: the host feeds it what the transport received
/// and the time, and does what it asks. Its methods, by kind:
///
/// - **`handle_*`**, for what happened: [`Client::handle_message`] (a message from
///   the server), [`Client::handle_connection_lost`] (the transport failed),
///   [`Client::handle_timeout`] (the time [`Client::poll_timeout`] named came).
/// - **commands** from the game: [`Client::connect`], [`Client::advance`] (step the
///   frame over verified input), [`Client::send_input`] (for each
///   [`Client::next_input_tick`]), [`Client::send_command`], [`Client::leave`],
///   [`Client::cancel`], [`Client::join_as_new`].
/// - **`poll_*`**, for what to do: [`Client::poll_transmit`] (connect, send, close),
///   [`Client::poll_event`] (what the game should hear), [`Client::poll_timeout`]
///   (when to call `handle_timeout` next).
/// - **getters**: [`Client::state`], [`Client::frame`], [`Client::player`],
///   [`Client::live`], [`Client::room`], [`Client::reconnect_info`],
///   [`Client::stats`], [`Client::playout`] (how far a render loop steps),
///   [`Client::read_verified`] (the input, flags and commands of a stepped tick).
///
/// A host loop, each time round: hand over what arrived (`handle_message` or
/// `handle_connection_lost`), call `handle_timeout` when its time came, `advance`,
/// send the input due (`next_input_tick`, `send_input`), then drain `poll_transmit`
/// and `poll_event`, render [`Client::frame`], and sleep until the next message or
/// [`Client::poll_timeout`]. The crate docs show it over the simulated network.
pub struct Client<G, I> {
    config: ClientConfig,
    info: ReconnectInfo,
    simulation: Simulation<G, I>,
    initial: Frame<G>,
    initial_checksum: Checksum,
    frame: Frame<G>,
    state: State<I>,
    attempts: Attempts,
    timers: Timers,
    /// An update is owed: progress, input or reports changed, or a heartbeat is due.
    update_due: bool,
    /// The room's clock, the round trip and the input lead.
    clock: RoomClock,
    /// Commands the room has not confirmed taking (kept across reconnections).
    commands: VecDeque<Command>,
    /// The number of the newest command sent.
    command_seq: u32,
    /// Own commands were counted on the ticks up to here.
    applied_through: Tick,
    stats: ClientStats,
    out: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
}

impl<G: Pod, I: Input> Client<G, I> {
    /// A client that will join `info.room` as `info.client_id`, playing the game whose
    /// tick-0 frame is `initial`, stepped by `simulation`. Pass saved [`ReconnectInfo`]
    /// to come back to a slot after an app restart.
    pub fn new(
        config: ClientConfig,
        info: ReconnectInfo,
        initial: Frame<G>,
        simulation: Simulation<G, I>,
    ) -> Client<G, I> {
        Client {
            initial_checksum: checksum(&initial),
            frame: initial.clone(),
            initial,
            simulation,
            info,
            state: State::Idle,
            attempts: Attempts::default(),
            timers: Timers::default(),
            update_due: false,
            clock: RoomClock::default(),
            commands: VecDeque::new(),
            command_seq: 0,
            applied_through: 0,
            stats: ClientStats::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        }
    }

    /// A client of `game` with [`ClientConfig::for_game`]'s settings, joining
    /// `info.room` as `info.client_id`.
    pub fn for_game<Ga>(game: &Ga, info: ReconnectInfo) -> Result<Client<G, I>, Ga::Error>
    where
        Ga: Game<Globals = G, Input = I>,
    {
        let config = ClientConfig::for_game(game);
        Ok(Client::new(
            config,
            info,
            game.initial_frame()?,
            game.simulation(),
        ))
    }

    // Getters.

    /// The current frame: the game state to render (meaningful once entered).
    pub fn frame(&self) -> &Frame<G> {
        &self.frame
    }

    /// Where the client stands.
    pub fn state(&self) -> ClientState {
        match &self.state {
            State::Idle => ClientState::Idle,
            State::Connecting => ClientState::Connecting {
                attempt: self.attempts.count,
            },
            State::InRoom(in_room) => match &in_room.stage {
                Stage::Lobby => ClientState::Lobby,
                Stage::WaitingForSnapshot => ClientState::WaitingForSnapshot { download: None },
                Stage::Downloading { download, .. } => ClientState::WaitingForSnapshot {
                    download: Some(download.progress()),
                },
                Stage::CatchingUp { input, .. } => ClientState::CatchingUp {
                    from: input.base,
                    target: in_room.live,
                },
                Stage::Running { .. } => ClientState::Running,
            },
            State::Reconnecting { attempt } => ClientState::Reconnecting {
                attempt: *attempt,
                retry_at: self.timers.get(Timer::Retry).unwrap_or_default(),
            },
            State::Disconnected(reason) => ClientState::Disconnected(reason.clone()),
        }
    }

    /// The slot held, once welcomed (kept across reconnections); never while watching.
    pub fn player(&self) -> Option<PlayerId> {
        self.info.player
    }

    /// Whether the client watches without a seat ([`ClientConfig::watch`]).
    pub fn is_watching(&self) -> bool {
        self.config.watch
    }

    /// The newest verified tick the room has announced (0 outside the room).
    pub fn live(&self) -> Tick {
        self.in_room().map_or(0, |r| r.live)
    }

    /// The room's parameters, once welcomed.
    pub fn room(&self) -> Option<&RoomInfo> {
        self.in_room().map(|r| &r.room)
    }

    /// What to save to rejoin after an app restart; its local snapshot is the newest
    /// checksum tick's (or the one kept at the last loss).
    pub fn reconnect_info(&self) -> ReconnectInfo {
        let mut info = self.info.clone();
        if let Some(newest) = self.in_room().and_then(|r| r.snapshots.back())
            && info
                .local_snapshot
                .as_ref()
                .is_none_or(|s| s.tick < newest.tick)
        {
            info.local_snapshot = Some(LocalSnapshot {
                tick: newest.tick,
                checksum: newest.checksum,
                bytes: newest.bytes.clone(),
            });
        }
        info
    }

    /// What the client measured of its play so far.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            input_lead: self.clock.lead(),
            rtt: self.clock.rtt(),
            jitter: self.clock.jitter(),
            ..self.stats.clone()
        }
    }

    fn in_room(&self) -> Option<&InRoom<I>> {
        match &self.state {
            State::InRoom(in_room) => Some(in_room),
            _ => None,
        }
    }

    fn in_room_mut(&mut self) -> Option<&mut InRoom<I>> {
        match &mut self.state {
            State::InRoom(in_room) => Some(in_room),
            _ => None,
        }
    }

    // Commands.

    /// Starts joining (or rejoining, when the info names a slot held before).
    pub fn connect(&mut self, now: Duration) {
        self.attempts = Attempts {
            count: 0,
            began: now,
        };
        self.begin_attempt(now);
    }

    /// After `PlayerTtlExpired`: forgets the old slot and joins as a new player.
    pub fn join_as_new(&mut self, now: Duration) {
        self.info.forget_slot();
        self.connect(now);
    }

    /// The player quits: tells the room to free the slot; no reconnection follows.
    /// (While reconnecting there is no connection to tell: the room then keeps the
    /// slot until PlayerTTL.) [`Client::player`] and [`Client::reconnect_info`] still
    /// name the slot played; an app that saves the info to start again later should
    /// [`ReconnectInfo::forget_slot`] first, or its hello asks for a freed slot.
    pub fn leave(&mut self, _now: Duration) {
        match self.state {
            State::Disconnected(_) | State::Idle => return,
            State::Reconnecting { .. } => {}
            State::Connecting | State::InRoom(_) => {
                self.out
                    .push_back(ClientTransmit::Send(ClientMessage::Leave));
            }
        }
        self.stop(DisconnectReason::Quit);
    }

    /// Stops whatever is under way (a reconnection in particular) for good.
    pub fn cancel(&mut self) {
        if !matches!(self.state, State::Disconnected(_)) {
            self.stop(DisconnectReason::Cancelled);
        }
    }

    // Handlers.

    /// A message from the server.
    pub fn handle_message(&mut self, now: Duration, message: ServerMessage) {
        if !matches!(self.state, State::Connecting | State::InRoom(_)) {
            return;
        }
        self.timers
            .set(Timer::ServerSilent, now + self.config.server_timeout);
        match message {
            ServerMessage::Welcome {
                player,
                room,
                entry,
                live,
                timing,
                resume,
            } => {
                if matches!(self.state, State::Connecting) {
                    self.info.resume = Some(resume);
                }
                self.welcome(now, Some(player), room, entry, live);
                self.observe(now, &timing);
            }
            ServerMessage::Watching {
                room,
                entry,
                live,
                timing,
            } => {
                self.welcome(now, None, room, entry, live);
                self.observe(now, &timing);
            }
            ServerMessage::Refused(error) => self.refused(now, error),
            ServerMessage::Start { timing } => {
                self.observe(now, &timing);
                self.start_if_lobby(now);
            }
            ServerMessage::Verified {
                live,
                timing,
                ticks,
            } => {
                self.observe(now, &timing);
                self.announce(live);
                self.start_if_lobby(now);
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
                self.announce(live);
                self.snapshot_chunk(now, transfer, tick, checksum, source, &chunk);
            }
            ServerMessage::UploadRequest { upload, tick } => {
                self.upload_requested(now, upload, tick)
            }
            ServerMessage::ResendUpload { upload, chunks } => {
                let resend: Vec<_> = match self.in_room().and_then(|r| r.upload.as_ref()) {
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
            ServerMessage::Heartbeat { live, timing } => {
                self.observe(now, &timing);
                self.announce(live);
                if live > 0 {
                    self.start_if_lobby(now);
                }
            }
            ServerMessage::End { tick } => {
                if let Some(in_room) = self.in_room_mut() {
                    in_room.end_at = Some(tick);
                }
                self.check_end();
            }
        }
    }

    /// What a server message says about timing: the room's clock, the round trip,
    /// the slack of own input (late input is the host's to hear of) and the commands
    /// the room took.
    fn observe(&mut self, now: Duration, timing: &Timing) {
        if self.in_room().is_none() {
            return;
        }
        if timing.room_us.is_some() {
            // The game is scheduled: a lobby client whose `Start` was lost enters.
            self.start_if_lobby(now);
        }
        if self.clock.observe(now, timing) == Slack::Late {
            let late = timing.slack_us.unwrap_or_default().unsigned_abs();
            let by = Duration::from_micros(late.into());
            self.events.push_back(ClientEvent::InputLate { by });
        }
        self.commands_taken(timing.commands_taken);
        // A restarted app, or one its room saw send more than it remembers: number new
        // commands past what the seat already took.
        self.command_seq = self.command_seq.max(timing.commands_taken);
        if self.timers.get(Timer::Input).is_none() {
            self.arm_input_timer(now);
        }
    }

    /// Verified input from the room: kept for stepping; own input it confirms is no
    /// longer resent; own input it had to fill in is counted and told.
    fn take_verified(&mut self, ticks: &VerifiedTicks) {
        let me = self.info.player;
        let frame_tick = self.frame.tick();
        let Some(in_room) = self.in_room_mut() else {
            return;
        };
        let taken = match &mut in_room.stage {
            // The frame is not the game's yet: it enters at the snapshot's tick.
            Stage::Downloading { input, .. } => input.take(ticks, me, input.base),
            Stage::CatchingUp { input, .. } | Stage::Running { input, .. } => {
                input.take(ticks, me, frame_tick)
            }
            Stage::Lobby | Stage::WaitingForSnapshot => return,
        };
        let confirmed = in_room.stage.input().map_or(0, |i| i.newest());
        while in_room
            .unconfirmed
            .front()
            .is_some_and(|(t, _)| *t <= confirmed)
        {
            in_room.unconfirmed.pop_front();
        }
        self.update_due |= taken.ticks > 0;
        self.stats.own_input_replaced += taken.replaced_own.len() as u64;
        for tick in taken.replaced_own {
            self.events
                .push_back(ClientEvent::OwnInputReplaced { tick });
        }
    }

    /// The room announced `live` as its newest verified tick.
    fn announce(&mut self, live: Tick) {
        if let Some(in_room) = self.in_room_mut() {
            in_room.live = in_room.live.max(live);
        }
    }

    /// Time passed: retries, timeouts, heartbeats and stalled downloads whose time came.
    pub fn handle_timeout(&mut self, now: Duration) {
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::Start => self.stop(DisconnectReason::Error(SessionError::StartTimeout)),
                Timer::Retry => self.begin_attempt(now),
                Timer::ServerSilent => self.lost(
                    now,
                    SessionError::ConnectionLost("the server fell silent".into()),
                ),
                Timer::Hello => self.send_hello(now),
                Timer::Heartbeat => self.update_due = true,
                Timer::DownloadStall => self.chase_download(now),
                Timer::Input => self.arm_input_timer(now),
            }
        }
    }

    // Polls.

    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.next()
    }

    /// The next thing for the transport to do. Progress, own input and checksum
    /// reports go out as one update per drain, however many calls changed them.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<ClientTransmit> {
        if self.out.is_empty() && self.update_due && self.in_room().is_some() {
            self.update_due = false;
            let update = self.update(now);
            self.transmit(now, update);
        }
        self.out.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    // Internals shared by the submodules.

    fn transmit(&mut self, now: Duration, message: ClientMessage) {
        if self.in_room().is_some() {
            self.timers
                .set(Timer::Heartbeat, now + self.config.heartbeat.max(MIN_TIMER));
        }
        self.out.push_back(ClientTransmit::Send(message));
    }

    /// The update: what verified input is held, the frame's tick, unconfirmed own
    /// input and recent checksum reports.
    fn update(&self, now: Duration) -> ClientMessage {
        let Some(in_room) = self.in_room() else {
            return ClientMessage::Leave;
        };
        let received = in_room.stage.input().map_or(0, |i| i.newest());
        let stepped = in_room.stage.entered().map_or(0, |_| self.frame.tick());
        ClientMessage::Update {
            sent_at: crate::protocol::micros(now),
            received,
            stepped,
            first_input: in_room.unconfirmed.front().map_or(0, |(t, _)| *t),
            inputs: in_room
                .unconfirmed
                .iter()
                .flat_map(|(_, i)| bytemuck::bytes_of(i).iter().copied())
                .collect(),
            commands: self.commands.iter().take(MAX_LIST).cloned().collect(),
            // A watcher's word is not judged: it reports nothing.
            checksums: match self.config.watch {
                true => Vec::new(),
                false => in_room
                    .reports
                    .iter()
                    .rev()
                    .take(MAX_LIST)
                    .copied()
                    .collect(),
            },
        }
    }

    /// The room asks for the snapshot of `tick` (as a buddy, or as evidence).
    fn upload_requested(&mut self, now: Duration, upload: u32, tick: Tick) {
        let frame = &self.frame;
        let State::InRoom(in_room) = &mut self.state else {
            return;
        };
        if in_room.upload.as_ref().is_none_or(|(id, _)| *id != upload) {
            let held = in_room
                .snapshots
                .iter()
                .find(|s| s.tick == tick)
                .map(|s| Outgoing::new(&s.bytes));
            let held = held.or_else(|| {
                let whole = !frame.is_poisoned();
                (whole && in_room.stage.entered().is_some() && frame.tick() == tick).then(|| {
                    let mut bytes = Vec::new();
                    tickstep_snapshot::encode(frame, &mut bytes);
                    Outgoing::new(&bytes)
                })
            });
            let Some(outgoing) = held else {
                self.transmit(now, ClientMessage::UploadUnavailable { upload });
                return;
            };
            in_room.upload = Some((upload, outgoing));
        }
        let chunks = in_room
            .upload
            .as_ref()
            .map(|(_, o)| o.chunks().to_vec())
            .unwrap_or_default();
        for chunk in chunks {
            self.transmit(now, ClientMessage::UploadChunk { upload, chunk });
        }
    }
}

#[cfg(test)]
mod tests;
