//! Entering the game: the welcome, the start, a local snapshot restored, or a
//! snapshot downloaded from the room (chased when chunks go missing), then catch-up.

use bytemuck::Pod;
use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, MAX_PLAYERS, PlayerId, Tick};
use tickstep_replay::CatchUp;
use tickstep_snapshot::Chunk;

use super::clock::MAX_LEAD;
use super::state::{Download, InRoom, Stage, State, VerifiedInput};
use super::timers::Timer;
use super::{Client, ClientEvent, DOWNLOAD_STALL, DisconnectReason, MIN_TIMER};
use crate::protocol::{ClientMessage, Entry, RoomInfo, SnapshotSource};
use crate::transfer::Incoming;
use crate::{MAX_TICK_RATE, SessionError};

impl<G: Pod, I: Input> Client<G, I> {
    /// The room seated us at `player` (`None`: took us in to watch): set up for `room`
    /// and enter as `entry` says.
    pub(super) fn welcome(
        &mut self,
        now: Duration,
        player: Option<PlayerId>,
        room: RoomInfo,
        entry: Entry,
        live: Tick,
    ) {
        let waiting = self.in_room().is_some_and(|r| {
            matches!(r.stage, Stage::WaitingForSnapshot) && self.info.player == player
        });
        if waiting {
            // The room's buddy search failed: it offers another way in.
            match entry {
                Entry::FromStart => self.enter_from_start(now),
                Entry::LocalSnapshot { tick } => self.enter_from_local(now, tick),
                Entry::Lobby | Entry::AwaitSnapshot => {}
            }
            return;
        }
        if !matches!(self.state, State::Connecting) {
            return;
        }
        let players = room.players as usize;
        if player.is_some() == self.config.watch {
            self.stop(DisconnectReason::Error(SessionError::UnexpectedMessage(
                "the room answered a player as a watcher, or a watcher as a player".into(),
            )));
            return;
        }
        if room.input_size as usize != size_of::<I>()
            || players == 0
            || players > MAX_PLAYERS
            || player.is_some_and(|p| p.0 >= room.players)
            || !(1..=MAX_TICK_RATE).contains(&room.tick_rate)
            || room.min_lead > MAX_LEAD
        {
            self.stop(DisconnectReason::Error(SessionError::UnexpectedMessage(
                "the room's input size, player count, slot, rate or lead does not fit this game"
                    .into(),
            )));
            return;
        }
        self.clock.set_room(room.tick_rate, room.min_lead);
        self.info.player = player;
        self.state = State::InRoom(Box::new(InRoom {
            room,
            live,
            stage: Stage::Lobby,
            next_input: 1,
            unconfirmed: VecDeque::new(),
            handed: VecDeque::new(),
            reports: VecDeque::new(),
            snapshots: VecDeque::new(),
            upload: None,
            end_at: None,
        }));
        self.timers.stop(Timer::Hello);
        self.timers
            .set(Timer::Heartbeat, now + self.config.heartbeat.max(MIN_TIMER));
        self.events.push_back(match player {
            Some(player) => ClientEvent::Joined { player, entry },
            None => ClientEvent::Watching { entry },
        });
        match entry {
            Entry::Lobby => self.timers.stop(Timer::Start),
            Entry::FromStart => self.enter_from_start(now),
            Entry::LocalSnapshot { tick } => self.enter_from_local(now, tick),
            Entry::AwaitSnapshot => {
                self.set_stage(Stage::WaitingForSnapshot);
                self.events.push_back(ClientEvent::WaitingForSnapshot);
            }
        }
    }

    fn set_stage(&mut self, stage: Stage<I>) {
        if let Some(in_room) = self.in_room_mut() {
            in_room.stage = stage;
        }
    }

    fn players(&self) -> usize {
        self.room().map_or(0, |r| r.players as usize)
    }

    /// A lobby client enters at tick 0 once it hears the game started: from `Start`,
    /// or (when that was lost) from verified input or a live tick past 0.
    pub(super) fn start_if_lobby(&mut self, now: Duration) {
        if self
            .in_room()
            .is_some_and(|r| matches!(r.stage, Stage::Lobby))
        {
            self.enter_from_start(now);
        }
    }

    fn enter_from_start(&mut self, now: Duration) {
        self.frame.clone_from(&self.initial);
        self.events.push_back(ClientEvent::Started);
        self.entered(
            now,
            VerifiedInput::new(0, self.players(), self.config.history),
        );
    }

    /// Restores the snapshot kept from before the loss, which the room accepted.
    fn enter_from_local(&mut self, now: Duration, tick: Tick) {
        let local = self.info.local_snapshot.take().filter(|s| s.tick == tick);
        let schema = self.initial.schema().hash();
        // The bytes must be the snapshot offered (its checksum) and restore cleanly.
        let restored = local.as_ref().is_some_and(|s| {
            tickstep_snapshot::check_vouched(&s.bytes, tick, s.checksum, schema).is_ok()
                && tickstep_snapshot::restore(&s.bytes, &mut self.frame).is_ok()
        });
        match local {
            Some(local) if restored => {
                let bytes = local.bytes.len() as u64;
                self.info.local_snapshot = Some(local);
                self.events.push_back(ClientEvent::Resynced {
                    tick,
                    source: SnapshotSource::Local,
                    bytes,
                });
                let input = VerifiedInput::new(tick, self.players(), self.config.history);
                self.entered(now, input);
            }
            _ => self.lost(now, SessionError::SnapshotRejected),
        }
    }

    /// The frame holds game state at `input.base`: catch up from there.
    fn entered(&mut self, now: Duration, input: Option<VerifiedInput<I>>) {
        let tick = self.frame.tick();
        let players = self.players();
        let close_enough = self.config.close_enough;
        let Some(in_room) = self.in_room_mut() else {
            return;
        };
        let runner = CatchUp::new(players, tick, close_enough).ok();
        let (Some(input), Some(runner)) = (input, runner) else {
            // Cannot happen: the welcome checked the slot count.
            return self.lost(now, SessionError::SnapshotRejected);
        };
        in_room.stage = Stage::CatchingUp { input, runner };
        in_room.next_input = tick + 1;
        self.timers.stop(Timer::Start);
        self.timers.stop(Timer::DownloadStall);
        self.update_due = true;
        self.update_running(now);
    }

    /// A chunk of the snapshot to enter from; a new transfer replaces an older one.
    pub(super) fn snapshot_chunk(
        &mut self,
        now: Duration,
        transfer: u32,
        tick: Tick,
        checksum: Checksum,
        source: SnapshotSource,
        chunk: &Chunk,
    ) {
        let largest =
            tickstep_snapshot::max_len(self.frame.schema(), self.frame.world().capacity());
        let (players, history, limit) = (
            self.players(),
            self.config.history,
            self.config.max_snapshot_len.min(largest),
        );
        let Some(in_room) = self.in_room_mut() else {
            return;
        };
        let current = match &in_room.stage {
            Stage::WaitingForSnapshot => false,
            Stage::Downloading { download, .. } => download.transfer == transfer,
            _ => return,
        };
        if !current {
            let Some(input) = VerifiedInput::new(tick, players, history) else {
                return;
            };
            let download = Download {
                transfer,
                tick,
                checksum,
                source,
                incoming: Incoming::new(limit, now),
            };
            in_room.stage = Stage::Downloading { download, input };
        }
        let Stage::Downloading { download, .. } = &mut in_room.stage else {
            return;
        };
        match download.incoming.add(now, chunk) {
            Ok(false) => {
                let at = download.incoming.last_progress + DOWNLOAD_STALL;
                self.timers.set(Timer::DownloadStall, at);
            }
            Ok(true) => self.downloaded(now),
            Err(_) => self.lost(now, SessionError::SnapshotRejected),
        }
    }

    /// Every chunk is in: check the snapshot against what the peers vouched for,
    /// restore it and enter.
    fn downloaded(&mut self, now: Duration) {
        let Some(in_room) = self.in_room_mut() else {
            return;
        };
        let Stage::Downloading { download, input } =
            std::mem::replace(&mut in_room.stage, Stage::WaitingForSnapshot)
        else {
            return;
        };
        let Download {
            tick,
            checksum,
            source,
            incoming,
            ..
        } = download;
        let schema = self.initial.schema().hash();
        let restored = incoming.finish().ok().filter(|bytes| {
            tickstep_snapshot::check_vouched(bytes, tick, checksum, schema).is_ok()
                && tickstep_snapshot::restore(bytes, &mut self.frame).is_ok()
        });
        match restored {
            Some(bytes) => {
                self.events.push_back(ClientEvent::Resynced {
                    tick,
                    source,
                    bytes: bytes.len() as u64,
                });
                self.entered(now, Some(input));
            }
            None => self.lost(now, SessionError::SnapshotRejected),
        }
    }

    /// The download stalled: ask for what is missing.
    pub(super) fn chase_download(&mut self, now: Duration) {
        let Some(Stage::Downloading { download, .. }) = self.in_room_mut().map(|r| &mut r.stage)
        else {
            return;
        };
        download.incoming.last_progress = now;
        let message = ClientMessage::ResendChunks {
            transfer: download.transfer,
            chunks: download.incoming.missing(),
        };
        self.timers.set(Timer::DownloadStall, now + DOWNLOAD_STALL);
        self.transmit(now, message);
    }
}
