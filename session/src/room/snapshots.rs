//! The room's snapshot traffic, and the verdicts that cause some of it: carrying out
//! the broker's plans (asking buddies, sending joiners the checked snapshot, refusing
//! them when nobody can help), resending what was lost, and asking for evidence of a
//! desync.

use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{PlayerId, Tick};
use tickstep_snapshot::Chunk;

use super::broker::{Broker, BuddyChunk, Chase, Checked, Plan};
use super::checksums::Verdict;
use super::feed::Feed;
use super::seats::{Member, Stage};
use super::{Room, RoomEvent};
use crate::Refusal;
use crate::outbox::Outbox;
use crate::protocol::{Entry, ServerMessage, SnapshotSource};
use crate::transfer::{Download, Upload};

/// A download is resent whole after this long (plus its time on a slow link) without
/// the joiner entering or naming a missing chunk.
const DOWNLOAD_RESEND: Duration = Duration::from_secs(2);
/// Missing upload chunks are asked for after this stall.
const UPLOAD_STALL: Duration = Duration::from_millis(500);

impl<I: Input> Room<I> {
    pub(super) fn upload_chunk(
        &mut self,
        now: Duration,
        player: PlayerId,
        id: u32,
        chunk: &Chunk,
        out: &mut Outbox,
    ) {
        let schema = self.config.schema;
        match self.broker.buddy_chunk(now, player, id, chunk, schema) {
            BuddyChunk::More => {}
            BuddyChunk::Checked => self.serve_waiting(now, out),
            BuddyChunk::Rejected { tick } => {
                self.events.push_back(RoomEvent::BuddySnapshotRejected {
                    buddy: player,
                    tick,
                });
                self.serve_waiting(now, out);
            }
            BuddyChunk::NotBuddy => {
                if let Some(Some((tick, snapshot))) =
                    self.judge.evidence_chunk(now, player, id, chunk)
                {
                    self.events.push_back(RoomEvent::Evidence {
                        tick,
                        player,
                        snapshot,
                    });
                }
            }
        }
    }

    /// A joiner names chunks of its snapshot that did not arrive. An empty list would
    /// mean everything: the room resends that on its own timer, never on request, and
    /// a named chunk goes again at most once per interval within the download's
    /// budget, so a joiner cannot make the room repeat itself.
    pub(super) fn resend_chunks(
        &mut self,
        now: Duration,
        member: Member,
        transfer: u32,
        chunks: &[u32],
        out: &mut Outbox,
    ) {
        let live = self.clock.finalized();
        let Some(active) = self.seats.member_mut(member) else {
            return;
        };
        let Stage::Receiving { download, .. } = &mut active.stage else {
            return;
        };
        if download.transfer != transfer {
            return;
        }
        let messages = download.resend(now, chunks, live);
        if !messages.is_empty() {
            active.last_sent = now;
        }
        for message in messages {
            out.send(active.conn, message);
        }
    }

    pub(super) fn judge_checksums(&mut self, now: Duration, out: &mut Outbox) {
        let grace = self.config.ticks_in(Duration::from_secs(2));
        let settled = self.clock.finalized().saturating_sub(grace);
        let seats = &self.seats;
        let expected = |tick: Tick| seats.mask(|a| a.stage.entered().is_some_and(|e| e <= tick));
        for verdict in self.judge.decide(settled, expected) {
            self.desync(now, verdict, out);
        }
        // Waiting members: the search goes on, and watchers the budget held back
        // may now have their turn.
        if self.seats.awaiting_snapshot() {
            self.serve_waiting(now, out);
        }
    }

    /// Reports a desync to the host and the clients, and asks for evidence of the
    /// first one.
    pub(super) fn desync(&mut self, now: Duration, verdict: Verdict, out: &mut Outbox) {
        let tick = verdict.tick;
        self.events.push_back(RoomEvent::Desync {
            tick,
            disagreeing: verdict.disagreeing.clone(),
        });
        let message = ServerMessage::Desync {
            tick,
            disagreeing: verdict.disagreeing.clone(),
        };
        self.seats.broadcast(out, now, &message);
        for witness in self.judge.witnesses(&verdict) {
            let upload = self.ask_upload(now, witness, tick, out);
            self.judge.expect_evidence(upload);
        }
    }

    /// Asks `from` for its snapshot of `tick`.
    pub(super) fn ask_upload(
        &mut self,
        now: Duration,
        from: PlayerId,
        tick: Tick,
        out: &mut Outbox,
    ) -> Upload {
        let id = self.new_id();
        let message = ServerMessage::UploadRequest { upload: id, tick };
        self.seats.send(out, now, from, message);
        Upload::new(id, from, tick, self.config.max_snapshot_len, now)
    }

    /// Asks again for stalled uploads; gives up on them past the snapshot timeout.
    pub(super) fn chase_uploads(&mut self, now: Duration, out: &mut Outbox) {
        let timeout = self.config.snapshot_timeout;
        for (player, message) in self.judge.chase(now, timeout, UPLOAD_STALL) {
            self.seats.send(out, now, player, message);
        }
        match self.broker.chase(now, timeout, UPLOAD_STALL) {
            Chase::Nothing => {}
            Chase::Resend(player, message) => self.seats.send(out, now, player, message),
            Chase::TimedOut => self.serve_waiting(now, out),
        }
    }

    /// Sends downloads whole again to joiners silent for a while; gives up on those
    /// whose download spent its budget.
    pub(super) fn resend_downloads(&mut self, now: Duration, out: &mut Outbox) {
        let live = self.clock.finalized();
        let mut spent = Vec::new();
        for (_, active) in self.seats.members_mut() {
            let Stage::Receiving { download, .. } = &mut active.stage else {
                continue;
            };
            if download.exhausted() {
                spent.push(active.conn);
                continue;
            }
            if !download.whole_due(now, DOWNLOAD_RESEND) {
                continue;
            }
            for message in download.send_whole(now, live) {
                out.send(active.conn, message);
            }
            active.last_sent = now;
        }
        for conn in spent {
            out.send(conn, ServerMessage::Refused(Refusal::DownloadFailed));
            out.close(conn);
            self.disconnect(now, conn, "snapshot download failed", out);
        }
    }

    /// Carries out the broker's plan for the players waiting for a snapshot.
    pub(super) fn serve_waiting(&mut self, now: Duration, out: &mut Outbox) {
        let clock = &self.clock;
        let plan = self.broker.plan(
            now,
            &self.config,
            &self.seats,
            &self.judge,
            clock.finalized(),
            |tick| clock.holds_after(tick),
        );
        let waiting: Vec<Member> = self
            .seats
            .members()
            .filter(|(_, a)| matches!(a.stage, Stage::AwaitingSnapshot { .. }))
            .map(|(m, _)| m)
            .collect();
        match plan {
            Plan::Wait => {}
            Plan::Give(checked) => {
                for member in waiting {
                    // A watcher past the budget waits for a later turn.
                    if let Member::Watcher(_) = member
                        && !self.watcher_snapshots.spend(now)
                    {
                        continue;
                    }
                    self.give_snapshot(now, member, &checked, out);
                }
            }
            Plan::Ask {
                buddy,
                tick,
                checksum,
            } => {
                self.events.push_back(RoomEvent::BuddyAsked { buddy, tick });
                let upload = self.ask_upload(now, buddy, tick, out);
                self.broker.asked(upload, checksum);
            }
            Plan::Refuse(error) => {
                for member in waiting {
                    self.enter_without_buddy(now, member, &error, out);
                }
            }
        }
    }

    /// The buddy search failed for `member`: it enters by its fallback (its own
    /// vouched snapshot, or tick 0), told in a second welcome, or is refused with
    /// `error` when it has none.
    fn enter_without_buddy(
        &mut self,
        now: Duration,
        member: Member,
        error: &Refusal,
        out: &mut Outbox,
    ) {
        let clock = &self.clock;
        let Some(active) = self.seats.member_mut(member) else {
            return;
        };
        let Stage::AwaitingSnapshot { offered } = active.stage else {
            return;
        };
        let fallback = Broker::fallback(&self.judge, offered, clock.finalized(), |tick| {
            clock.covers(tick)
        });
        let Some(entry) = fallback else {
            let conn = active.conn;
            out.send(conn, ServerMessage::Refused(error.clone()));
            out.close(conn);
            self.disconnect(now, conn, "no snapshot", out);
            return;
        };
        let entered = match entry {
            Entry::LocalSnapshot { tick } => tick,
            _ => 0,
        };
        active.stage = super::playing(entered, now);
        self.welcome(now, member, entry, out);
    }

    pub(super) fn give_snapshot(
        &mut self,
        now: Duration,
        member: Member,
        checked: &Checked,
        out: &mut Outbox,
    ) {
        let transfer = self.new_id();
        let live = self.clock.finalized();
        let Some(active) = self.seats.member_mut(member) else {
            return;
        };
        let mut download = Box::new(Download::new(
            transfer,
            (checked.tick, checked.checksum),
            SnapshotSource::Buddy,
            checked.snapshot.clone(),
            now,
        ));
        for message in download.send_whole(now, live) {
            out.send(active.conn, message);
        }
        active.last_sent = now;
        let bytes = download.len();
        active.stage = Stage::Receiving {
            feed: Feed::new(checked.tick, now),
            download,
        };
        let player = match member {
            Member::Player(player) => Some(player),
            Member::Watcher(_) => None,
        };
        self.events.push_back(RoomEvent::SnapshotSent {
            player,
            tick: checked.tick,
            bytes,
        });
    }
}
