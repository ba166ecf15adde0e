//! `Room`: one game on the server, in four parts, each its own module:
//!
//! - [`seats`]: player slots keyed by the secret `ClientId`, PlayerTTL, EmptyRoomTTL,
//!   and the watchers (connections without a seat, [`watching`]);
//! - [`clock`]: tick deadlines, input collection and fill, the verified history;
//! - [`broker`]: how a (re)joiner enters, buddy search, checked snapshots;
//! - [`judge`]: checksum reports, majority verdicts, desync evidence.
//!
//! The room routes messages to its parts, carries out what they decide (snapshot
//! traffic in [`snapshots`]), streams verified input ([`feed`]) and raises
//! [`RoomEvent`]s; the server tags them with the room.

mod broker;
mod checksums;
mod clock;
mod config;
mod events;
mod feed;
mod judge;
mod seats;
mod snapshots;
mod watching;

pub use clock::RoomStats;
pub use config::{
    FillPolicy, MAX_HOLD, MAX_SEND_EVERY, MAX_TICK_RATE, MAX_WATCHERS, RoomConfig, RoomConfigError,
};
pub use events::RoomEvent;
pub use seats::SlotHolder;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, PlayerId, Tick};
use tickstep_replay::InputLog;

use crate::ids::TokenMint;
use crate::outbox::Outbox;
use crate::protocol::{
    ClientMessage, Command, Entry, Hello, MAX_LIST, PROTOCOL_VERSION, RoomInfo, ServerMessage,
};
use crate::{ConnId, Refusal};
use broker::Broker;
use clock::Clock;
use feed::Feed;
use judge::Judge;
use seats::{Admission, Member, Seats, Sending, Stage};
use tickstep_engine::MAX_COMMAND_LEN;

/// Verified ticks are sent in messages of about this many bytes at most (well within
/// `MAX_MESSAGE_LEN`, whatever commands the ticks carry).
const VERIFIED_BATCH_BYTES: usize = 60_000;
/// Housekeeping (timeouts, resends, heartbeats) runs at least this often.
const HOUSEKEEPING: Duration = Duration::from_millis(50);

/// Where a room's game is, as its host sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomPhase {
    /// Seating players; the game has not started.
    Lobby,
    /// The game is running.
    Running,
    /// The game reached its end tick; players finish and leave.
    Ended,
    /// The room closed for good.
    Closed,
}

/// Where the room's game is.
#[derive(Debug)]
enum Phase {
    /// Seating players until `start_players` joined.
    Lobby,
    /// Ticking; tick 0 was (or will be) due at `zero`.
    Running { zero: Duration },
    /// The end tick was verified (at `at`); players finish and leave.
    Ended { at: Duration },
    /// Gone for good.
    Closed,
}

/// Server-wide liveness rules a room is driven with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    /// A player silent this long is taken as lost.
    pub peer_timeout: Duration,
    /// A player sent nothing this long gets a heartbeat.
    pub heartbeat: Duration,
}

/// One game and its players. Owned and driven by a [`crate::Server`].
#[derive(Debug)]
pub(crate) struct Room<I> {
    config: RoomConfig,
    phase: Phase,
    seats: Seats,
    clock: Clock<I>,
    broker: Broker,
    judge: Judge,
    /// Snapshots the room may still hand to watchers.
    watcher_snapshots: watching::SnapshotBudget,
    events: VecDeque<RoomEvent>,
    next_id: u32,
    housekept: Duration,
    /// The time of the last drive.
    driven: Duration,
}

impl<I: Input> Room<I> {
    /// A room in its lobby, by `config`'s rules.
    pub(crate) fn new(config: RoomConfig) -> Result<Room<I>, RoomConfigError> {
        config.validate()?;
        let players = config.players as usize;
        Ok(Room {
            phase: Phase::Lobby,
            seats: Seats::new(players),
            clock: Clock::new(&config)?,
            broker: Broker::new(players),
            judge: Judge::new(players, config.snapshot_quorum.into()),
            watcher_snapshots: watching::SnapshotBudget::default(),
            events: VecDeque::new(),
            next_id: 1,
            housekept: Duration::ZERO,
            driven: Duration::ZERO,
            config,
        })
    }

    /// The room's verified input history.
    pub(crate) fn inputs(&self) -> &InputLog<I> {
        self.clock.log()
    }

    /// The newest verified tick.
    pub(crate) fn finalized(&self) -> Tick {
        self.clock.finalized()
    }

    /// Whether the room has closed for good.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Where the game is.
    pub(crate) fn phase(&self) -> RoomPhase {
        match self.phase {
            Phase::Lobby => RoomPhase::Lobby,
            Phase::Running { .. } => RoomPhase::Running,
            Phase::Ended { .. } => RoomPhase::Ended,
            Phase::Closed => RoomPhase::Closed,
        }
    }

    /// Closes the room if its game has not started, refusing the players waiting in
    /// its lobby (`RoomClosed`); a server that drains starts no new games.
    pub(crate) fn close_lobby(&mut self, out: &mut Outbox) {
        if !matches!(self.phase, Phase::Lobby) {
            return;
        }
        self.close(out);
    }

    /// Bytes the uploads under way hold (a buddy's snapshot, evidence).
    pub(crate) fn uploads_held(&self) -> u64 {
        self.broker.upload_held() + self.judge.evidence_held()
    }

    /// The first tick a desync was found at.
    pub(crate) fn first_desync(&self) -> Option<Tick> {
        self.judge.first_desync()
    }

    /// Connections watching without a seat.
    pub(crate) fn watcher_count(&self) -> usize {
        self.seats.watcher_count()
    }

    /// Players connected to their seat.
    pub(crate) fn player_count(&self) -> usize {
        self.seats.active_count()
    }

    /// Who holds each slot.
    pub(crate) fn holders(&self) -> Vec<Option<SlotHolder>> {
        self.seats.holders()
    }

    /// What the room has done so far.
    pub(crate) fn stats(&self) -> RoomStats {
        self.clock.stats()
    }

    /// The next thing that happened in the room.
    pub(crate) fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// A fresh transfer or upload number (never 0).
    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn info(&self) -> RoomInfo {
        RoomInfo {
            players: self.config.players,
            tick_rate: self.config.tick_rate,
            input_size: size_of::<I>() as u32,
            min_lead: self.config.min_lead,
            checksum_every: self.config.checksum_every,
            end_tick: self.config.end_tick,
        }
    }

    /// A connection says hello: refuse it with a reason, or seat it and say how it
    /// enters the game.
    pub(crate) fn hello(
        &mut self,
        now: Duration,
        (conn, address): (ConnId, Option<IpAddr>),
        hello: &Hello,
        mint: &mut TokenMint,
        out: &mut Outbox,
    ) -> Result<(), Refusal> {
        self.check_compatible(hello)?;
        if hello.watch {
            return self.watch(now, (conn, address), hello, out);
        }
        if let Some(Member::Watcher(_)) = self.seats.member_of(conn) {
            let problem = "a connection plays or watches, not both";
            return Err(Refusal::ProtocolViolation(problem.into()));
        }
        let open = !matches!(self.phase, Phase::Ended { .. } | Phase::Closed);
        let seat_limit = address.zip(self.config.max_seats_per_address);
        let (player, rejoined) = match self.seats.admit(conn, hello, open, seat_limit)? {
            Admission::Repeated(player) => {
                // Its welcome was lost: say the same again, from where the seat stands.
                let member = Member::Player(player);
                self.welcome(now, member, self.entry_of(member), out);
                return Ok(());
            }
            Admission::Seat { player, rejoined } => (player, rejoined),
        };
        let stage = self.entering(now, hello);
        if !rejoined {
            self.broker.seat_taken(player);
        }
        let id = (hello.client_id, mint.mint(hello.client_id));
        // A new holder votes only on ticks verified from now on.
        let votes_from = match self.phase {
            Phase::Lobby => 0,
            _ => self.clock.finalized() + 1,
        };
        self.seats.seat(now, player, id, conn, (stage, votes_from));
        if let Some(seat) = self.seats.get_mut(player) {
            seat.address = address;
        }
        if matches!(self.phase, Phase::Lobby)
            && self.seats.active_count() >= self.config.start_players as usize
        {
            // This join fills the room: the others hear `Start`, the joiner's welcome
            // says the same (so no reordering can leave it waiting in the lobby).
            self.start(now, Some(Member::Player(player)), out);
        }
        let entry = self.entry_of(Member::Player(player));
        self.welcome(now, Member::Player(player), entry, out);
        self.events.push_back(RoomEvent::PlayerJoined {
            player,
            rejoined,
            entry,
        });
        if entry == Entry::AwaitSnapshot {
            self.serve_waiting(now, out);
        }
        Ok(())
    }

    /// The stage a joiner saying `hello` starts at: how it enters the game now.
    fn entering(&self, now: Duration, hello: &Hello) -> Stage {
        let entry = match self.phase {
            Phase::Running { .. } => {
                let clock = &self.clock;
                self.broker.entry(
                    (&self.config, &self.seats, &self.judge),
                    hello,
                    clock.finalized(),
                    |tick| clock.covers(tick),
                )
            }
            _ => Entry::Lobby,
        };
        match entry {
            Entry::Lobby => Stage::Lobby,
            Entry::AwaitSnapshot => Stage::AwaitingSnapshot {
                offered: hello.local_snapshot,
            },
            Entry::FromStart => playing(0, now),
            Entry::LocalSnapshot { tick } => playing(tick, now),
        }
    }

    /// Tells `member` it is in, and how it enters: a player its seat and token, a
    /// watcher that it watches.
    fn welcome(&mut self, now: Duration, member: Member, entry: Entry, out: &mut Outbox) {
        let (room, live) = (self.info(), self.clock.finalized());
        let room_us = self.room_us(now);
        // A player's seat gives its resume token; a watcher has none.
        let seat = match member {
            Member::Player(player) => match self.seats.get(player) {
                Some(seat) => Some((player, seat.resume)),
                None => return,
            },
            Member::Watcher(_) => None,
        };
        self.seats
            .send_timed(out, now, member, room_us, |timing| match seat {
                Some((player, resume)) => ServerMessage::Welcome {
                    player,
                    room,
                    entry,
                    live,
                    timing,
                    resume,
                },
                None => ServerMessage::Watching {
                    room,
                    entry,
                    live,
                    timing,
                },
            });
    }

    /// µs since tick 0 was due (negative before), once the game is scheduled.
    fn room_us(&self, now: Duration) -> Option<i64> {
        let Phase::Running { zero } = self.phase else {
            return None;
        };
        let micros = now.as_micros() as i128 - zero.as_micros() as i128;
        Some(micros.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    fn check_compatible(&self, hello: &Hello) -> Result<(), Refusal> {
        if hello.protocol != PROTOCOL_VERSION {
            return Err(Refusal::VersionMismatch {
                client: hello.protocol,
                server: PROTOCOL_VERSION,
            });
        }
        if hello.app_version != self.config.app_version {
            return Err(Refusal::AppVersionMismatch {
                client: hello.app_version.chars().take(64).collect(),
                room: self.config.app_version.clone(),
            });
        }
        if hello.schema != self.config.schema {
            return Err(Refusal::SchemaMismatch);
        }
        if hello.initial != self.config.initial {
            return Err(Refusal::GameMismatch);
        }
        Ok(())
    }

    /// How a member enters, as its welcome said: read from its stage.
    fn entry_of(&self, member: Member) -> Entry {
        let stage = self.seats.member(member).map(|a| &a.stage);
        match stage {
            Some(Stage::Lobby) => Entry::Lobby,
            Some(Stage::Playing { entered: 0, .. }) => Entry::FromStart,
            Some(Stage::Playing { entered, .. }) => Entry::LocalSnapshot { tick: *entered },
            // Waiting for a snapshot, or one is on the way (resent on its timer).
            Some(Stage::AwaitingSnapshot { .. } | Stage::Receiving { .. }) | None => {
                Entry::AwaitSnapshot
            }
        }
    }

    /// Schedules tick 0 a start delay from now, so every client hears of it and gets
    /// its first input in on time, and tells every player in the lobby (but
    /// `welcoming`, whose welcome says it).
    fn start(&mut self, now: Duration, welcoming: Option<Member>, out: &mut Outbox) {
        self.phase = Phase::Running {
            zero: now + self.config.start_delay,
        };
        for (_, active) in self.seats.members_mut() {
            active.stage = playing(0, now);
        }
        self.events.push_back(RoomEvent::GameStarted {
            delay: self.config.start_delay,
        });
        self.announce_start(now, welcoming, out);
    }

    /// Tells the players who entered at tick 0 and have sent no input yet that the game
    /// is on, repeated (on the housekeeping beat) until tick 0 is due: `Start` may be
    /// lost, and each tick a client misses from the start is a tick it is absent.
    fn announce_start(&mut self, now: Duration, except: Option<Member>, out: &mut Outbox) {
        let Phase::Running { zero } = self.phase else {
            return;
        };
        if now > zero {
            return;
        }
        let waiting: Vec<Member> = self
            .seats
            .members()
            .filter(|&(m, a)| {
                Some(m) != except
                    && matches!(
                        a.stage,
                        Stage::Playing {
                            entered: 0,
                            sending: None,
                            ..
                        }
                    )
            })
            .map(|(m, _)| m)
            .collect();
        let room_us = self.room_us(now);
        for member in waiting {
            self.seats
                .send_timed(out, now, member, room_us, |timing| ServerMessage::Start {
                    timing,
                });
        }
    }

    /// A message from the player on `conn` (after its hello).
    pub(crate) fn message(
        &mut self,
        now: Duration,
        conn: ConnId,
        message: ClientMessage,
        out: &mut Outbox,
    ) {
        let Some(member) = self.seats.member_of(conn) else {
            out.close(conn);
            return;
        };
        if let Some(active) = self.seats.member_mut(member) {
            active.last_heard = now;
        }
        let player = match member {
            Member::Player(player) => player,
            Member::Watcher(conn) => return self.watcher_message(now, conn, message, out),
        };
        match message {
            // The server hands every hello to `Room::hello`.
            ClientMessage::Hello(_) => {}
            ClientMessage::Update {
                sent_at,
                received,
                stepped,
                first_input,
                inputs,
                commands,
                checksums,
            } => {
                // Speaking after its welcome proves the client holds that welcome's token.
                if let Some(seat) = self.seats.get_mut(player) {
                    seat.confirmed = Some(seat.resume);
                }
                self.heard_update(now, member, sent_at, (received, stepped));
                self.take_input(now, player, first_input, &inputs);
                self.take_commands(player, &commands);
                self.take_reports(now, player, stepped, &checksums, out);
            }
            ClientMessage::UploadChunk { upload, chunk } => {
                self.upload_chunk(now, player, upload, &chunk, out)
            }
            ClientMessage::UploadUnavailable { upload } => {
                if self.broker.is_buddy(player, Some(upload)) {
                    self.broker.buddy_failed(player);
                    self.serve_waiting(now, out);
                } else {
                    self.judge.forget(player, Some(upload));
                }
            }
            ClientMessage::ResendChunks { transfer, chunks } => {
                self.resend_chunks(now, member, transfer, &chunks, out)
            }
            ClientMessage::Leave => {
                if let Some(seat) = self.free_seat(now, player)
                    && let seats::Link::Active(active) = seat.link
                {
                    out.close(active.conn);
                }
                self.left(now, player, None, out);
            }
        }
    }

    /// What any member's update says: its clock reading (echoed in its next
    /// [`Timing`]), the verified input it holds and its frame's tick.
    fn heard_update(&mut self, now: Duration, member: Member, sent_at: u64, held: (Tick, Tick)) {
        if let Some(active) = self.seats.member_mut(member) {
            active.echo = Some((sent_at, now));
        }
        self.progress(now, member, held.0, held.1);
    }

    /// A member's acknowledgement of verified input and its frame's tick. Only the
    /// joiner's own word that its frame reached the snapshot's tick ends its transfer.
    fn progress(&mut self, now: Duration, member: Member, received: Tick, stepped: Tick) {
        let finalized = self.clock.finalized();
        let Some(active) = self.seats.member_mut(member) else {
            return;
        };
        match &mut active.stage {
            Stage::Playing { feed, .. } => feed.acknowledge(now, received, stepped, finalized),
            Stage::Receiving { feed, download } => {
                feed.acknowledge(now, received, stepped, finalized);
                if stepped >= download.tick {
                    let entered = download.tick;
                    let feed = feed.clone();
                    active.stage = Stage::Playing {
                        entered,
                        feed,
                        sending: None,
                    };
                }
            }
            Stage::Lobby | Stage::AwaitingSnapshot { .. } => {}
        }
    }

    /// Input from a playing player: from the first tick it sends on, its input counts
    /// (ticks wait for it, up to the hold); its slack goes back in the next [`Timing`].
    fn take_input(&mut self, now: Duration, player: PlayerId, first: Tick, inputs: &[u8]) {
        let size = size_of::<I>();
        if inputs.is_empty() || size == 0 || !inputs.len().is_multiple_of(size) {
            return;
        }
        let Phase::Running { zero } = self.phase else {
            return;
        };
        let Some(active) = self.seats.active_mut(player) else {
            return;
        };
        let Stage::Playing { sending, .. } = &mut active.stage else {
            return;
        };
        let sending = sending.get_or_insert(Sending {
            from: first,
            last_heard: now,
        });
        let slack = self
            .clock
            .accept(&self.config, zero, now, player, first, inputs);
        // Only input that counts shows the player is not silent: a client whose input
        // all lands out of the window is not waited for.
        if slack.is_some() {
            sending.last_heard = now;
        }
        active.note_slack(slack);
    }

    /// Commands from a playing player, each taken once, in order: the ones numbered past
    /// what was taken land on their tick or the first open one.
    fn take_commands(&mut self, player: PlayerId, commands: &[Command]) {
        if !self
            .seats
            .active(player)
            .is_some_and(|a| matches!(a.stage, Stage::Playing { .. }))
        {
            return;
        }
        let Some(seat) = self.seats.get_mut(player) else {
            return;
        };
        let finalized = self.clock.finalized();
        let per_second = self.config.tick_rate as u64;
        for command in commands.iter().take(MAX_LIST) {
            // Numbered past what this seat took, in order: each is taken once, and a
            // client that joined a fresh seat, or restarted, still gets through.
            if command.seq <= seat.commands_taken {
                continue;
            }
            if command.bytes.len() > MAX_COMMAND_LEN {
                // A command no tick can hold is skipped, not retried forever.
                seat.commands_taken = command.seq;
                continue;
            }
            // Over the player's budget, or nowhere to land before the end: not taken,
            // so the client sends it again and it lands later.
            if !seat
                .command_budget
                .spend(finalized, per_second, command.bytes.len())
            {
                break;
            }
            let Some(landed) = self.clock.command(player, command.tick, &command.bytes) else {
                break;
            };
            if self.config.end_tick.is_some_and(|end| landed > end) {
                self.clock.withdraw_command(landed, player);
                break;
            }
            seat.commands_taken = command.seq;
        }
    }

    /// Checksum reports, for the ticks the player's frame has been through.
    fn take_reports(
        &mut self,
        now: Duration,
        player: PlayerId,
        stepped: Tick,
        reports: &[(Tick, Checksum)],
        out: &mut Outbox,
    ) {
        let Some(entered) = self.seats.active(player).and_then(|a| a.stage.entered()) else {
            return;
        };
        let votes_from = self
            .seats
            .get(player)
            .map_or(Tick::MAX, |seat| seat.votes_from);
        let finalized = self.clock.finalized();
        let every = self.config.checksum_every.max(1) as u64;
        for &(tick, checksum) in reports.iter().take(MAX_LIST) {
            if tick % every != 0 || tick > finalized || tick < entered || tick > stepped {
                continue;
            }
            let vote = tick >= votes_from;
            if let Some(verdict) = self.judge.report(player, tick, checksum, vote) {
                self.desync(now, verdict, out);
            }
        }
    }

    /// The transport lost the connection (or the player fell silent): the slot stays,
    /// inactive, for PlayerTTL.
    pub(crate) fn disconnect(
        &mut self,
        now: Duration,
        conn: ConnId,
        reason: &str,
        out: &mut Outbox,
    ) {
        let Some(player) = self.seats.player_of(conn) else {
            if self.seats.unwatch(conn) {
                let reason = Some(reason.to_string());
                self.events.push_back(RoomEvent::WatcherLeft { reason });
            }
            return;
        };
        self.seats.deactivate(now, player);
        self.left(now, player, Some(reason.to_string()), out);
    }

    /// Frees `player`'s seat for good (returning it, if it was held), and with it
    /// what it sent (see [`Room::forget_seat`]).
    fn free_seat(&mut self, now: Duration, player: PlayerId) -> Option<seats::Seat> {
        self.forget_seat(player);
        self.seats.free(now, player)
    }

    /// Forgets what `player`'s seat sent, once the seat is freed for good: its input
    /// for ticks not yet final, so the next to take the slot plays its own (see
    /// [`Clock::forget`]), and its checksum reports, so the next is not asked for
    /// frames it never had.
    fn forget_seat(&mut self, player: PlayerId) {
        self.clock.forget(player);
        self.judge.vacate(player);
    }

    /// Removes a player for good, telling it why.
    pub(crate) fn kick(&mut self, now: Duration, player: PlayerId, out: &mut Outbox) {
        let Some(seat) = self.free_seat(now, player) else {
            return;
        };
        match seat.link {
            seats::Link::Active(active) => {
                out.send(active.conn, ServerMessage::Refused(Refusal::Kicked));
                out.close(active.conn);
                self.left(now, player, Some("kicked".into()), out);
            }
            // It left when it went inactive: its slot is freed, as PlayerTTL would.
            seats::Link::Inactive { .. } => {
                self.events.push_back(RoomEvent::SlotFreed { player });
            }
        }
    }

    /// After `player` left its seat: its uploads are off; a buddy is replaced.
    fn left(&mut self, now: Duration, player: PlayerId, reason: Option<String>, out: &mut Outbox) {
        self.events
            .push_back(RoomEvent::PlayerLeft { player, reason });
        self.judge.forget(player, None);
        if self.broker.is_buddy(player, None) {
            self.broker.buddy_failed(player);
            self.serve_waiting(now, out);
        }
    }

    /// After the end (at `ended`): lets go of each member that has held no new
    /// verified input for EmptyRoomTTL since the later of the end and its last
    /// progress (one that holds the end and stays, or one that is stuck), so none can
    /// hold the room open for good; one still catching up stays.
    fn let_lingering_go(&mut self, now: Duration, ended: Duration, out: &mut Outbox) {
        let ttl = self.config.empty_room_ttl;
        let lingering: Vec<(ConnId, ServerMessage)> = self
            .seats
            .members()
            .filter(|(_, active)| {
                let progressed = active.stage.feed().map_or(ended, |f| f.progressed());
                now >= progressed.max(ended) + ttl
            })
            .map(|(_, active)| (active.conn, self.goodbye(active)))
            .collect();
        for (conn, goodbye) in lingering {
            out.send(conn, goodbye);
            out.close(conn);
            self.disconnect(now, conn, LET_GO_AFTER_THE_END, out);
        }
    }

    /// Advances the room to `now`: finalises due ticks, streams verified input, and
    /// runs timeouts, resends and heartbeats.
    pub(crate) fn drive(&mut self, now: Duration, liveness: Liveness, out: &mut Outbox) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.driven = self.driven.max(now);
        self.finalize_due(now);
        self.stream(now, out);
        if now >= self.housekept + HOUSEKEEPING {
            self.housekept = now;
            self.housekeeping(now, liveness, out);
        }
    }

    /// When the room next needs driving.
    pub(crate) fn next_wake(&self) -> Option<Duration> {
        let housekeeping = self.housekept + HOUSEKEEPING;
        let tick = match self.phase {
            Phase::Running { zero } => self.clock.next_deadline(&self.config, zero, self.driven),
            Phase::Closed => return None,
            Phase::Lobby | Phase::Ended { .. } => None,
        };
        Some(tick.map_or(housekeeping, |t| t.min(housekeeping)))
    }

    fn finalize_due(&mut self, now: Duration) {
        let Phase::Running { zero } = self.phase else {
            return;
        };
        let silence = self.config.silence;
        // Wait for the players sending input that have not fallen silent; a tick is
        // for every player whose input counts from it.
        let expected = self.seats.mask(|a| match a.stage {
            Stage::Playing {
                sending: Some(sending),
                ..
            } => now < sending.last_heard + silence,
            _ => false,
        });
        let mut present = [None; tickstep_engine::MAX_PLAYERS];
        for (player, active) in self.seats.actives() {
            if let Stage::Playing {
                sending: Some(sending),
                ..
            } = active.stage
            {
                present[player.0 as usize] = Some(sending.from);
            }
        }
        let present = &present[..self.seats.len()];
        self.clock
            .finalize_due(&self.config, now, zero, expected, present);
        if self
            .config
            .end_tick
            .is_some_and(|end| self.clock.finalized() >= end)
        {
            self.phase = Phase::Ended { at: now };
            let tick = self.clock.finalized();
            self.events.push_back(RoomEvent::GameEnded { tick });
        }
    }

    /// Sends every entered player the verified ticks it lacks.
    fn stream(&mut self, now: Duration, out: &mut Outbox) {
        let (live, oldest) = (self.announced(), self.clock.oldest());
        let batch = u64::from(self.config.send_every);
        let room_us = self.room_us(now);
        for index in 0..self.seats.member_slots() {
            let Some((taken, active)) = self.seats.member_at_mut(index) else {
                continue;
            };
            let feed = match &mut active.stage {
                Stage::Playing { feed, .. } | Stage::Receiving { feed, .. } => feed,
                Stage::Lobby | Stage::AwaitingSnapshot { .. } => continue,
            };
            let Some((from, to)) = feed.due(now, live, oldest, batch) else {
                continue;
            };
            // In messages of about VERIFIED_BATCH_BYTES, each in a recycled buffer.
            let mut first = from;
            while first <= to {
                let mut ticks = out.verified_buffer();
                self.clock
                    .verified_into(&mut ticks, first, to, VERIFIED_BATCH_BYTES);
                if ticks.is_empty() {
                    out.keep(ticks);
                    break;
                }
                first += ticks.len() as u64;
                active.send_timed(out, now, (room_us, taken), |timing| {
                    ServerMessage::Verified {
                        live,
                        timing,
                        ticks,
                    }
                });
            }
        }
    }

    /// The newest verified tick players are told of: verified input goes out every
    /// `send_every` ticks (the end at once), and heartbeats say no more than it.
    fn announced(&self) -> Tick {
        let finalized = self.clock.finalized();
        match self.phase {
            Phase::Ended { .. } => finalized,
            _ => finalized - finalized % u64::from(self.config.send_every),
        }
    }

    fn housekeeping(&mut self, now: Duration, liveness: Liveness, out: &mut Outbox) {
        let live = self.announced();
        let silent: Vec<ConnId> = self
            .seats
            .members()
            .filter(|(_, a)| now >= a.last_heard + liveness.peer_timeout)
            .map(|(_, a)| a.conn)
            .collect();
        for conn in silent {
            out.close(conn);
            self.disconnect(now, conn, "timed out", out);
        }
        self.announce_start(now, None, out);
        let room_us = self.room_us(now);
        let quiet: Vec<Member> = self
            .seats
            .members()
            .filter(|(_, a)| now >= a.last_sent + liveness.heartbeat)
            .map(|(m, _)| m)
            .collect();
        for member in quiet {
            self.seats.send_timed(out, now, member, room_us, |timing| {
                ServerMessage::Heartbeat { live, timing }
            });
        }
        // What no joiner can be let in on any more: vouched ticks before the history,
        // a checked buddy snapshot too old to give.
        let clock = &self.clock;
        self.judge.forget_vouched_unless(|t| clock.holds_after(t));
        self.broker
            .forget_stale(&self.config, clock.finalized(), |t| clock.holds_after(t));
        for player in self.seats.expire(now, self.config.player_ttl) {
            self.forget_seat(player);
            self.events.push_back(RoomEvent::SlotFreed { player });
        }
        let ended = match self.phase {
            Phase::Ended { at } => Some(at),
            _ => None,
        };
        if let Some(at) = ended {
            self.let_lingering_go(now, at, out);
        }
        // A room without players closes after EmptyRoomTTL; once its game ended, as
        // soon as its watchers left too (as players, they leave once they hold the
        // end, fall silent, or are let go).
        if let Some(since) = self.seats.empty_since()
            && (now >= since + self.config.empty_room_ttl
                || ended.is_some() && self.seats.watcher_count() == 0)
        {
            self.close(out);
            return;
        }
        if ended.is_some() {
            for (_, active) in self.seats.members_mut() {
                if active.stage.feed().is_some_and(|f| f.received >= live) {
                    active.last_sent = now;
                    out.send(active.conn, ServerMessage::End { tick: live });
                }
            }
        }
        self.judge_checksums(now, out);
        self.resend_downloads(now, out);
        self.chase_uploads(now, out);
    }

    /// What a member is told as the room lets it go: the end, once the game ended and
    /// it holds the end; else that the room is closed (to it).
    fn goodbye(&self, active: &seats::Active) -> ServerMessage {
        let live = self.announced();
        let ended = matches!(self.phase, Phase::Ended { .. });
        match ended && active.stage.feed().is_some_and(|f| f.received >= live) {
            true => ServerMessage::End { tick: live },
            false => ServerMessage::Refused(Refusal::RoomClosed),
        }
    }

    /// Closes the room for good; nothing reaches it any more (the verdicts stay). The
    /// connections still in it hear why (see [`Room::goodbye`]).
    fn close(&mut self, out: &mut Outbox) {
        for (member, active) in self.seats.members() {
            out.send(active.conn, self.goodbye(active));
            out.close(active.conn);
            if let Member::Watcher(_) = member {
                let reason = Some("the room closed".into());
                self.events.push_back(RoomEvent::WatcherLeft { reason });
            }
        }
        self.phase = Phase::Closed;
        self.seats.clear();
        self.events.push_back(RoomEvent::RoomClosed);
    }
}

/// Why a member a room let go after the end left (not a drop: see `let_lingering_go`).
pub(crate) const LET_GO_AFTER_THE_END: &str = "let go after the end";

/// The stage of a player whose frame runs from `entered` (it sends no input yet).
fn playing(entered: Tick, now: Duration) -> Stage {
    Stage::Playing {
        entered,
        feed: Feed::new(entered, now),
        sending: None,
    }
}

#[cfg(test)]
mod tests;
