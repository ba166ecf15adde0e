//! Losing and regaining the connection: each attempt starts from a clean state (only
//! the reconnect info carries over), an unexpected loss keeps a local snapshot and
//! retries with backoff, a refusal or a quit stops for good.

use bytemuck::Pod;
use std::time::Duration;
use tickstep_engine::Input;

use super::clock::RoomClock;
use super::state::{Stage, State};
use super::timers::Timer;
use super::{Client, ClientEvent, ClientTransmit, DisconnectReason, MIN_TIMER};
use crate::protocol::{ClientMessage, Hello, PROTOCOL_VERSION};
use crate::reconnect::LocalSnapshot;
use crate::{Refusal, SessionError};

impl<G: Pod, I: Input> Client<G, I> {
    /// The transport lost the connection (or could not open it).
    pub fn handle_connection_lost(&mut self, now: Duration, what: &str) {
        if matches!(self.state, State::Connecting | State::InRoom(_)) {
            self.lost(now, SessionError::ConnectionLost(what.to_string()));
        }
    }

    /// One attempt from a clean state: only the reconnect info carries over.
    pub(super) fn begin_attempt(&mut self, now: Duration) {
        self.frame.clone_from(&self.initial);
        self.state = State::Connecting;
        self.clock = RoomClock::default();
        self.update_due = false;
        self.timers.stop_all();
        let give_up = self.attempts.began + self.config.start_timeout;
        self.timers.set(Timer::Start, give_up);
        self.timers
            .set(Timer::ServerSilent, now + self.config.server_timeout);
        self.out.push_back(ClientTransmit::Connect);
        self.send_hello(now);
    }

    /// Says hello, and again on the `Hello` timer until welcomed.
    pub(super) fn send_hello(&mut self, now: Duration) {
        if !matches!(self.state, State::Connecting) {
            return;
        }
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            app_version: self.config.app_version.clone(),
            schema: self.initial.schema().hash(),
            initial: self.initial_checksum,
            room: self.info.room.clone(),
            client_id: self.info.client_id,
            rejoin: self.info.player.is_some() && !self.config.watch,
            local_snapshot: self
                .info
                .local_snapshot
                .as_ref()
                .map(|s| (s.tick, s.checksum)),
            sent_at: crate::protocol::micros(now),
            resume: self.info.resume.filter(|_| !self.config.watch),
            watch: self.config.watch,
        };
        let retry = self.config.hello_retry.max(MIN_TIMER);
        self.timers.set(Timer::Hello, now + retry);
        self.transmit(now, ClientMessage::Hello(Box::new(hello)));
    }

    /// An unexpected loss: keep a local snapshot, then retry after a backoff.
    pub(super) fn lost(&mut self, now: Duration, reason: SessionError) {
        self.keep_local_snapshot();
        self.out.push_back(ClientTransmit::Close);
        self.attempts.count += 1;
        let attempt = self.attempts.count;
        if attempt > self.config.reconnect.attempts {
            let error = SessionError::ReconnectFailed(attempt - 1);
            return self.stop(DisconnectReason::Error(error));
        }
        // In the game, or waiting in its lobby (where no start timeout runs): the
        // attempts to come back get a fresh start timeout.
        let seated = self
            .in_room()
            .is_some_and(|r| r.stage.entered().is_some() || matches!(r.stage, Stage::Lobby));
        if seated {
            self.attempts.began = now;
        } else if now >= self.attempts.began + self.config.start_timeout {
            // Still not in the game and out of time: give up now, not at the next call.
            return self.stop(DisconnectReason::Error(SessionError::StartTimeout));
        }
        self.retry_after(now, attempt, self.config.reconnect.backoff(attempt), reason);
    }

    /// Waits `after`, then makes attempt `attempt`.
    fn retry_after(&mut self, now: Duration, attempt: u32, after: Duration, reason: SessionError) {
        self.state = State::Reconnecting { attempt };
        self.timers.stop_all();
        self.timers.set(Timer::Retry, now + after);
        self.timers.set(
            Timer::Start,
            self.attempts.began + self.config.start_timeout,
        );
        self.events.push_back(ClientEvent::Reconnecting {
            attempt,
            after,
            reason,
        });
    }

    /// The room refused us, or put us out.
    pub(super) fn refused(&mut self, now: Duration, refusal: Refusal) {
        let rejoining = self.info.player.is_some();
        match refusal {
            // The room still sees our old connection: retry until it times it out.
            Refusal::DuplicateClientId if rejoining && matches!(self.state, State::Connecting) => {
                self.out.push_back(ClientTransmit::Close);
                let attempt = self.attempts.count.max(1);
                let after = self.config.reconnect.backoff(attempt + 1);
                self.retry_after(now, attempt, after, refusal.into());
            }
            refusal => {
                if matches!(
                    refusal,
                    Refusal::Kicked | Refusal::PlayerTtlExpired | Refusal::ResumeRejected
                ) {
                    // The slot is gone: a later connect is a new join.
                    self.info.forget_slot();
                }
                self.stop(DisconnectReason::Error(refusal.into()));
            }
        }
    }

    /// Stops for good.
    pub(super) fn stop(&mut self, reason: DisconnectReason) {
        self.keep_local_snapshot();
        self.out.push_back(ClientTransmit::Close);
        self.timers.stop_all();
        self.state = State::Disconnected(reason.clone());
        self.events.push_back(ClientEvent::Disconnected { reason });
    }

    /// Keeps the newest verified frame it has a snapshot of for a rejoin: the last
    /// checksum tick's (at most `checksum_every` ticks old, and one the peers reported
    /// on, so the room can check it), or else the current frame.
    fn keep_local_snapshot(&mut self) {
        let Some(entered) = self.in_room().and_then(|r| r.stage.entered()) else {
            return;
        };
        let kept = self.reconnect_info().local_snapshot;
        let local = kept.filter(|s| s.tick >= entered).unwrap_or_else(|| {
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
}
