//! Watching: a connection that follows the game without a seat. It enters as a
//! joining player would (from tick 0, its own vouched local snapshot, or a buddy's
//! checked snapshot) and receives the verified input, but sends no input, commands or
//! checksums: no tick waits for it, nothing it says is judged, and it is never asked
//! for a snapshot. The room takes at most `RoomConfig::max_watchers`.

use std::time::Duration;
use tickstep_engine::Input;

use super::seats::Member;
use super::{Phase, Room, RoomEvent};
use crate::outbox::Outbox;
use crate::protocol::{ClientMessage, Entry, Hello};
use crate::{ConnId, Refusal};

impl<I: Input> Room<I> {
    /// A hello with `watch` on `conn`: take it in as a watcher and say how it enters,
    /// or say why not.
    pub(super) fn watch(
        &mut self,
        now: Duration,
        conn: ConnId,
        hello: &Hello,
        out: &mut Outbox,
    ) -> Result<(), Refusal> {
        let member = Member::Watcher(conn);
        if self.seats.watches(conn, hello.client_id) {
            // Its answer was lost: say the same again, from where it stands.
            self.welcome(now, member, self.entry_of(member), out);
            return Ok(());
        }
        if self.seats.member_of(conn).is_some() {
            let problem = "one connection plays or watches once; it said hello as another";
            return Err(Refusal::ProtocolViolation(problem.into()));
        }
        if matches!(self.phase, Phase::Ended | Phase::Closed) {
            return Err(Refusal::RoomClosed);
        }
        if self.seats.watcher_count() >= usize::from(self.config.max_watchers) {
            return Err(Refusal::TooManyWatchers);
        }
        let stage = self.entering(now, hello);
        self.seats.watch(now, hello.client_id, conn, stage);
        let entry = self.entry_of(member);
        self.welcome(now, member, entry, out);
        self.events.push_back(RoomEvent::WatcherJoined { entry });
        if entry == Entry::AwaitSnapshot {
            self.serve_waiting(now, out);
        }
        Ok(())
    }

    /// A message from the watcher on `conn`: its progress, the snapshot chunks it
    /// lacks, or its leave. Input, commands, checksums and uploads are not a
    /// watcher's to send, and are ignored.
    pub(super) fn watcher_message(
        &mut self,
        now: Duration,
        conn: ConnId,
        message: ClientMessage,
        out: &mut Outbox,
    ) {
        let member = Member::Watcher(conn);
        match message {
            ClientMessage::Update {
                sent_at,
                received,
                stepped,
                ..
            } => {
                if let Some(active) = self.seats.member_mut(member) {
                    active.echo = Some((sent_at, now));
                }
                self.progress(now, member, received, stepped);
            }
            ClientMessage::ResendChunks { transfer, chunks } => {
                self.resend_chunks(now, member, transfer, &chunks, out)
            }
            ClientMessage::Leave => {
                self.seats.unwatch(conn);
                out.close(conn);
                self.events
                    .push_back(RoomEvent::WatcherLeft { reason: None });
            }
            ClientMessage::Hello(_)
            | ClientMessage::UploadChunk { .. }
            | ClientMessage::UploadUnavailable { .. } => {}
        }
    }
}
