//! Watching: a connection that follows the game without a seat. It enters as a
//! joining player would (from tick 0, its own vouched local snapshot, or a buddy's
//! checked snapshot) and receives the verified input, but sends no input, commands or
//! checksums: no tick waits for it, nothing it says is judged, and it is never asked
//! for a snapshot.
//!
//! What strangers can make the room spend is bounded: `RoomConfig::max_watchers` in
//! all and `max_watchers_per_address` from one address, and snapshots handed to
//! watchers by a [`SnapshotBudget`] (a watcher over it waits for the next one), so
//! connecting, taking a snapshot and leaving over and over costs little.

use std::net::IpAddr;
use std::time::Duration;
use tickstep_engine::Input;

use super::seats::Member;
use super::{Phase, Room, RoomEvent};
use crate::outbox::Outbox;
use crate::protocol::{ClientMessage, Entry, Hello};
use crate::{ConnId, Refusal};

/// Snapshots a room hands to watchers in a burst at most.
const SNAPSHOT_BURST: u32 = 4;
/// One more snapshot may go to a watcher this often.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// The snapshots a room may still hand to watchers: a bucket of [`SNAPSHOT_BURST`],
/// refilled by one every [`SNAPSHOT_EVERY`].
#[derive(Debug)]
pub(super) struct SnapshotBudget {
    left: u32,
    /// When the bucket was last refilled.
    at: Duration,
}

impl Default for SnapshotBudget {
    fn default() -> Self {
        SnapshotBudget {
            left: SNAPSHOT_BURST,
            at: Duration::ZERO,
        }
    }
}

impl SnapshotBudget {
    /// Spends one snapshot at `now`, if the budget allows. A full bucket does not
    /// fill further; a partial one keeps the time towards its next snapshot.
    pub(super) fn spend(&mut self, now: Duration) -> bool {
        if self.left == SNAPSHOT_BURST {
            self.at = now;
        }
        let refills = now.saturating_sub(self.at).as_nanos() / SNAPSHOT_EVERY.as_nanos();
        if refills > 0 {
            let refills = refills.min(u128::from(SNAPSHOT_BURST)) as u32;
            self.left = (self.left + refills).min(SNAPSHOT_BURST);
            self.at = match self.left {
                SNAPSHOT_BURST => now,
                _ => self.at + SNAPSHOT_EVERY * refills,
            };
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

impl<I: Input> Room<I> {
    /// A hello with `watch` on `conn` from `address`: take it in as a watcher and say
    /// how it enters, or say why not. The same client id watching on another
    /// connection (its old one, not yet timed out) gives its place up to this one.
    pub(super) fn watch(
        &mut self,
        now: Duration,
        (conn, address): (ConnId, Option<IpAddr>),
        hello: &Hello,
        out: &mut Outbox,
    ) -> Result<(), Refusal> {
        let member = Member::Watcher(conn);
        let old = self.seats.watcher_conn(hello.client_id);
        if old == Some(conn) {
            // Its answer was lost: say the same again, from where it stands.
            self.welcome(now, member, self.entry_of(member), out);
            return Ok(());
        }
        if self.seats.member_of(conn).is_some() {
            let problem = "one connection plays or watches once; it said hello as another";
            return Err(Refusal::ProtocolViolation(problem.into()));
        }
        if matches!(self.phase, Phase::Ended { .. } | Phase::Closed) {
            return Err(Refusal::RoomClosed);
        }
        // The limits, not counting the place the new connection takes over.
        let (mut all, mut here) = (
            self.seats.watcher_count(),
            address.map_or(0, |a| self.seats.watchers_from(a)),
        );
        if let Some(old) = old {
            all -= 1;
            here -= usize::from(address.is_some() && self.seats.watcher_address(old) == address);
        }
        let per_address = usize::from(self.config.max_watchers_per_address);
        if all >= usize::from(self.config.max_watchers) || address.is_some() && here >= per_address
        {
            return Err(Refusal::TooManyWatchers);
        }
        if let Some(old) = old {
            self.seats.unwatch(old);
            out.close(old);
            let reason = Some("replaced by a new connection".into());
            self.events.push_back(RoomEvent::WatcherLeft { reason });
        }
        let stage = self.entering(now, hello);
        self.seats
            .watch(now, (hello.client_id, conn, address), stage);
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
            } => self.heard_update(now, member, sent_at, (received, stepped)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_budget_allows_a_burst_then_one_a_second() {
        let mut budget = SnapshotBudget::default();
        let ms = Duration::from_millis(1);
        let spent = (0..10).filter(|_| budget.spend(900 * ms)).count();
        assert_eq!(spent, SNAPSHOT_BURST as usize);
        assert!(
            !budget.spend(1000 * ms),
            "idle time while full earns nothing"
        );
        assert!(!budget.spend(1800 * ms));
        assert!(budget.spend(2600 * ms), "one a second after the burst");
        assert!(!budget.spend(2700 * ms));
        // The time past the last whole second counts towards the next one.
        assert!(budget.spend(2900 * ms));
        // A long quiet spell refills the burst, no more.
        let spent = (0..10).filter(|_| budget.spend(60_000 * ms)).count();
        assert_eq!(spent, SNAPSHOT_BURST as usize);
    }
}
