//! `Judge`: the desync judge. It keeps the checksums players report (the
//! [`ChecksumBook`]), decides each tick by majority once everyone expected has reported,
//! the missing reports could not overturn the majority, or a grace period passed, and for the first desync gathers evidence: the snapshots
//! of that tick from the disagreeing players and one agreeing player.
//!
//! It also remembers which ticks are *vouched*: decided, and their consensus reported
//! by at least a quorum of distinct players. Only a vouched state may reach another
//! player (a buddy's snapshot, a returning player's local one): no single peer can
//! choose what someone else plays on.

use std::collections::BTreeMap;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};
use tickstep_snapshot::Chunk;

use super::checksums::{ChecksumBook, Verdict};
use crate::protocol::ServerMessage;
use crate::transfer::Upload;

/// Checksum ticks remembered with every report.
const CHECKSUM_TICKS_KEPT: usize = 64;

/// Reported checksums, verdicts, vouched ticks and evidence.
#[derive(Debug)]
pub(crate) struct Judge {
    book: ChecksumBook,
    quorum: usize,
    /// Vouched ticks and their checksums, one per report tick the history covers (the
    /// room takes reports only of verified ticks every `checksum_every`, and forgets
    /// those the history left behind: `forget_vouched_unless`).
    vouched: BTreeMap<Tick, Checksum>,
    first_desync: Option<Tick>,
    evidence: Vec<Upload>,
}

impl Judge {
    /// A judge for `players` slots whose ticks are vouched once `quorum` players
    /// agree (or every slot, in rooms with fewer).
    pub(super) fn new(players: usize, quorum: usize) -> Judge {
        Judge {
            book: ChecksumBook::new(players, CHECKSUM_TICKS_KEPT),
            quorum: quorum.clamp(1, players.max(1)),
            vouched: BTreeMap::new(),
            first_desync: None,
            evidence: Vec::new(),
        }
    }

    /// Players who must agree for a tick to be vouched.
    pub(super) fn quorum(&self) -> usize {
        self.quorum
    }

    /// Whether a frame of `tick` with `checksum` is vouched for.
    pub(super) fn vouches(&self, tick: Tick, checksum: Checksum) -> bool {
        self.vouched.get(&tick) == Some(&checksum)
    }

    /// The newest vouched tick still in the book that someone still in their seat
    /// reported, its checksum, and those players (the possible buddies).
    pub(super) fn newest_vouched(&self) -> Option<(Tick, Checksum, u64)> {
        self.book.newest_vouched(self.quorum)
    }

    fn note_if_vouched(&mut self, tick: Tick) {
        let Some((checksum, _)) = self.book.vouched(tick, self.quorum) else {
            return;
        };
        self.vouched.insert(tick, checksum);
    }

    /// Forgets the oldest vouched ticks until one is `covered` (a frame there can
    /// still catch up from the history; coverage only ever moves forward): nobody can
    /// be let in on the others, so their checksums are never asked for again.
    pub(super) fn forget_vouched_unless(&mut self, covered: impl Fn(Tick) -> bool) {
        while self
            .vouched
            .first_key_value()
            .is_some_and(|(&t, _)| !covered(t))
        {
            self.vouched.pop_first();
        }
    }

    /// The first tick a desync was found at.
    pub(super) fn first_desync(&self) -> Option<Tick> {
        self.first_desync
    }

    /// Records `player`'s report, as a vote or not (its holder took the seat after
    /// `tick` was verified); a report that contradicts a decided tick comes back as a
    /// desync naming that player, or, where a single vote decided it (a player alone
    /// while the others were away) and the late report is a vote too, naming both
    /// sides still seated, with no consensus: one word against another tells nobody
    /// who is right.
    pub(super) fn report(
        &mut self,
        player: PlayerId,
        tick: Tick,
        checksum: Checksum,
        vote: bool,
    ) -> Option<Verdict> {
        let desync = self.book.record(tick, player, checksum, vote);
        self.note_if_vouched(tick);
        let desync = desync?;
        let Some(consensus) = desync.consensus else {
            return Some(desync);
        };
        if !vote || self.book.vouched(tick, 2).is_some() {
            return Some(desync);
        }
        let disagreeing = (0..self.book.players())
            .map(|p| PlayerId(p as u8))
            .filter(|&p| p == player || self.book.reported(tick, p) == Some(consensus))
            .collect();
        Some(Verdict {
            tick,
            consensus: None,
            disagreeing,
        })
    }

    /// Decides the ticks up to `settled`, those every `expected(tick)` player reported
    /// and those whose majority the missing reports could not overturn; returns the
    /// desyncs among them.
    pub(super) fn decide(&mut self, settled: Tick, expected: impl Fn(Tick) -> u64) -> Vec<Verdict> {
        let mut verdicts = self.book.decide(settled, expected);
        for verdict in &verdicts {
            self.note_if_vouched(verdict.tick);
        }
        verdicts.retain(Verdict::is_desync);
        verdicts
    }

    /// The players to ask for evidence of `verdict`: for the first desync only, the
    /// disagreeing players and one that agreed.
    pub(super) fn witnesses(&mut self, verdict: &Verdict) -> Vec<PlayerId> {
        if self.first_desync.is_some() {
            return Vec::new();
        }
        self.first_desync = Some(verdict.tick);
        let agreeing = verdict.consensus.and_then(|consensus| {
            (0..self.book.players())
                .map(|p| PlayerId(p as u8))
                .find(|&p| self.book.reported(verdict.tick, p) == Some(consensus))
        });
        verdict
            .disagreeing
            .iter()
            .copied()
            .chain(agreeing)
            .collect()
    }

    /// Bytes the evidence uploads under way hold.
    pub(super) fn evidence_held(&self) -> u64 {
        self.evidence.iter().map(|u| u.incoming.held()).sum()
    }

    /// Tracks an evidence upload.
    pub(super) fn expect_evidence(&mut self, upload: Upload) {
        self.evidence.push(upload);
    }

    /// A chunk of upload `id` from `player`. Returns whether it was evidence, and with
    /// it the finished snapshot and its tick. Broken evidence is dropped: it is best
    /// effort.
    pub(super) fn evidence_chunk(
        &mut self,
        now: Duration,
        player: PlayerId,
        id: u32,
        chunk: &Chunk,
    ) -> Option<Option<(Tick, Vec<u8>)>> {
        let at = self
            .evidence
            .iter()
            .position(|u| u.id == id && u.from == player)?;
        match self.evidence[at].incoming.add(now, chunk) {
            Ok(false) => Some(None),
            Ok(true) => {
                let done = self.evidence.swap_remove(at);
                Some(done.incoming.finish().ok().map(|bytes| (done.tick, bytes)))
            }
            Err(_) => {
                self.evidence.swap_remove(at);
                Some(None)
            }
        }
    }

    /// Drops evidence `player` cannot or will not send.
    pub(super) fn forget(&mut self, player: PlayerId, id: Option<u32>) {
        self.evidence
            .retain(|u| u.from != player || id.is_some_and(|id| u.id != id));
    }

    /// After `player`'s seat was freed for good: its reports that were votes still
    /// count toward majorities and quorums, but the seat's next holder is never named, taken for a
    /// witness or asked as a buddy for ticks it never had.
    pub(super) fn vacate(&mut self, player: PlayerId) {
        self.book.vacate(player);
    }

    /// Gives up on evidence older than `timeout`; returns what to send to evidence
    /// uploads stalled for `patience`.
    pub(super) fn chase(
        &mut self,
        now: Duration,
        timeout: Duration,
        patience: Duration,
    ) -> Vec<(PlayerId, ServerMessage)> {
        self.evidence.retain(|u| now < u.asked_at + timeout);
        self.evidence
            .iter_mut()
            .filter_map(|u| Some((u.from, u.chase(now, patience)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::wire_chunks;

    fn sum(n: u8) -> Checksum {
        Checksum::from(blake3::hash(&[n]))
    }

    #[test]
    fn the_first_desync_names_witnesses_from_both_sides_once() {
        let mut judge = Judge::new(3, 2);
        for (p, n) in [(0, 1), (1, 2), (2, 1)] {
            assert_eq!(judge.report(PlayerId(p), 30, sum(n), true), None);
        }
        let desyncs = judge.decide(0, |_| 0b111);
        assert_eq!(desyncs.len(), 1);
        assert_eq!(judge.witnesses(&desyncs[0]), vec![PlayerId(1), PlayerId(0)]);
        assert_eq!(judge.first_desync(), Some(30));
        assert!(judge.vouches(30, sum(1)) && !judge.vouches(30, sum(2)));
        assert!(
            !judge.vouches(60, sum(9)),
            "undecided ticks vouch for nothing"
        );
        for (p, n) in [(0, 1), (1, 3), (2, 1)] {
            judge.report(PlayerId(p), 60, sum(n), true);
        }
        let later = judge.decide(60, |_| 0b111);
        assert_eq!(
            judge.witnesses(&later[0]),
            vec![],
            "evidence only for the first"
        );
    }

    #[test]
    fn vouched_ticks_before_the_history_are_forgotten() {
        let mut judge = Judge::new(2, 2);
        for tick in [30, 60, 90] {
            judge.report(PlayerId(0), tick, sum(1), true);
            judge.report(PlayerId(1), tick, sum(1), true);
        }
        judge.decide(90, |_| 0b11);
        assert!(judge.vouches(30, sum(1)));
        judge.forget_vouched_unless(|t| t >= 60);
        assert!(!judge.vouches(30, sum(1)), "before the history: forgotten");
        assert!(judge.vouches(60, sum(1)) && judge.vouches(90, sum(1)));
        judge.forget_vouched_unless(|_| true);
        assert!(
            judge.vouches(60, sum(1)),
            "forgetting nothing keeps the rest"
        );
    }

    #[test]
    fn a_long_history_keeps_every_vouched_tick_it_covers() {
        let mut long = Judge::new(2, 2);
        for tick in 1..=4106 {
            long.report(PlayerId(0), tick, sum(1), true);
            long.report(PlayerId(1), tick, sum(1), true);
            long.decide(tick, |_| 0b11);
        }
        assert!(long.vouches(1, sum(1)), "a longer history keeps them all");
        long.forget_vouched_unless(|t| t > 4000);
        assert!(!long.vouches(4000, sum(1)) && long.vouches(4001, sum(1)));
    }

    #[test]
    fn vouched_ticks_need_a_quorum_and_outlive_the_book() {
        let mut judge = Judge::new(2, 2);
        judge.report(PlayerId(0), 30, sum(1), true);
        judge.report(PlayerId(1), 30, sum(1), true);
        judge.decide(0, |_| 0b11);
        assert!(judge.vouches(30, sum(1)));
        // Later only player 1 reports: its word alone vouches for nothing.
        for tick in (60..=3000).step_by(30) {
            judge.report(PlayerId(1), tick, sum(2), true);
        }
        judge.decide(3000, |_| 0b10);
        assert_eq!(judge.newest_vouched(), None, "tick 30 left the book");
        assert!(
            judge.vouches(30, sum(1)),
            "but is still remembered as vouched"
        );
        assert!(!judge.vouches(3000, sum(2)));

        let mut alone = Judge::new(1, 2);
        alone.report(PlayerId(0), 30, sum(3), true);
        alone.decide(30, |_| 0b1);
        assert!(
            alone.vouches(30, sum(3)),
            "a one-player room's quorum is one"
        );
    }

    #[test]
    fn a_late_report_against_one_players_word_names_both() {
        // A 1v1 while player 1 is away: player 0's report decides tick 30 alone.
        let mut judge = Judge::new(2, 2);
        judge.report(PlayerId(0), 30, sum(1), true);
        assert!(judge.decide(0, |_| 0b01).is_empty());
        // Back and caught up, player 1 disagrees: nobody can say who is right.
        let late = judge
            .report(PlayerId(1), 30, sum(2), true)
            .expect("a desync");
        assert_eq!(late.consensus, None);
        assert_eq!(late.disagreeing, vec![PlayerId(0), PlayerId(1)]);
        // Where a quorum backed the decision, the late one alone is named.
        let mut three = Judge::new(3, 2);
        for p in 0..2 {
            three.report(PlayerId(p), 30, sum(1), true);
        }
        three.decide(0, |_| 0b011);
        let late = three
            .report(PlayerId(2), 30, sum(2), true)
            .expect("a desync");
        assert_eq!(
            (late.consensus, late.disagreeing),
            (Some(sum(1)), vec![PlayerId(2)])
        );
        // The same under a quorum of three: two votes are more than one word.
        let mut strict = Judge::new(3, 3);
        for p in 0..2 {
            strict.report(PlayerId(p), 30, sum(1), true);
        }
        strict.decide(0, |_| 0b111);
        let late = strict.report(PlayerId(2), 30, sum(2), true);
        let late = late.expect("a desync");
        assert_eq!(late.consensus, Some(sum(1)));
        assert_eq!(late.disagreeing, vec![PlayerId(2)]);
        // A report that is no vote (its holder came later) is named alone.
        let mut judge = Judge::new(2, 2);
        judge.report(PlayerId(0), 30, sum(1), true);
        judge.decide(0, |_| 0b01);
        let late = judge.report(PlayerId(1), 30, sum(2), false);
        let late = late.expect("a desync");
        assert_eq!(late.consensus, Some(sum(1)));
        assert_eq!(late.disagreeing, vec![PlayerId(1)]);
    }

    #[test]
    fn a_vacated_seats_reports_count_but_name_no_one() {
        let mut judge = Judge::new(3, 2);
        for p in 0..3 {
            judge.report(PlayerId(p), 30, sum(1), true);
        }
        judge.decide(30, |_| 0b111);
        for (p, n) in [(0, 2), (1, 3), (2, 2)] {
            judge.report(PlayerId(p), 60, sum(n), true);
        }
        judge.vacate(PlayerId(0));
        judge.vacate(PlayerId(1));
        assert_eq!(
            judge.newest_vouched(),
            Some((30, sum(1), 0b100)),
            "quorum from all three reports; only player 2 still had the frame"
        );
        // Tick 60: departed 0 and seated 2 agree, departed 1 disagrees: no one here
        // is out of sync, and the agreeing witness is one still seated.
        assert!(judge.decide(60, |_| 0b100).is_empty());
        assert_eq!(judge.newest_vouched(), Some((60, sum(2), 0b100)));
        assert!(judge.vouches(60, sum(2)));
        // Seat 0's next holder reports tick 60 for itself: it disagrees, and is named.
        let late = judge
            .report(PlayerId(0), 60, sum(4), true)
            .expect("a desync");
        assert_eq!(late.disagreeing, vec![PlayerId(0)]);
        assert_eq!(judge.witnesses(&late), vec![PlayerId(0), PlayerId(2)]);
        judge.vacate(PlayerId(2));
        assert_eq!(
            judge.newest_vouched(),
            None,
            "no one here has tick 60's frame"
        );
        assert!(judge.vouches(30, sum(1)) && judge.vouches(60, sum(2)));
    }

    #[test]
    fn a_seat_votes_once_however_often_it_changes_hands() {
        let mut judge = Judge::new(4, 2);
        judge.report(PlayerId(0), 30, sum(1), true);
        judge.decide(30, |_| 0b0001);
        assert_eq!(judge.newest_vouched(), None, "one seat is not a quorum");
        // Its holder leaves, comes back into the same seat and reports again.
        for _ in 0..3 {
            judge.vacate(PlayerId(0));
            assert_eq!(judge.report(PlayerId(0), 30, sum(1), true), None);
        }
        assert_eq!(judge.newest_vouched(), None, "still one seat's vote");
        assert!(!judge.vouches(30, sum(1)));
        // Undecided ticks too: one seat cannot outvote two.
        for _ in 0..3 {
            judge.report(PlayerId(0), 60, sum(2), true);
            judge.vacate(PlayerId(0));
        }
        judge.report(PlayerId(1), 60, sum(3), true);
        judge.report(PlayerId(2), 60, sum(3), true);
        let desyncs = judge.decide(60, |_| 0b0110);
        assert!(desyncs.is_empty(), "{desyncs:?}");
        assert!(judge.vouches(60, sum(3)));
    }

    #[test]
    fn evidence_arrives_in_chunks_and_stalls_are_chased() {
        let mut judge = Judge::new(2, 2);
        let sec = Duration::from_secs(1);
        judge.expect_evidence(Upload::new(7, PlayerId(1), 30, 1 << 20, Duration::ZERO));
        let bytes: Vec<u8> = (0..100_000u64)
            .map(|i| tickstep_engine::mix64(i) as u8)
            .collect();
        let chunks = wire_chunks(&bytes, 60_000);
        assert_eq!(
            judge.evidence_chunk(sec, PlayerId(0), 7, &chunks[0]),
            None,
            "not theirs"
        );
        assert_eq!(
            judge.evidence_chunk(sec, PlayerId(1), 7, &chunks[0]),
            Some(None)
        );
        let chased = judge.chase(2 * sec, 15 * sec, sec / 2);
        assert!(matches!(
            chased.as_slice(),
            [(PlayerId(1), ServerMessage::ResendUpload { upload: 7, chunks })] if chunks == &[1]
        ));
        let done = judge.evidence_chunk(3 * sec, PlayerId(1), 7, &chunks[1]);
        assert_eq!(done, Some(Some((30, bytes))));
        judge.expect_evidence(Upload::new(8, PlayerId(1), 30, 1 << 20, Duration::ZERO));
        assert!(judge.chase(16 * sec, 15 * sec, sec).is_empty(), "timed out");
        assert_eq!(
            judge.evidence_chunk(16 * sec, PlayerId(1), 8, &chunks[0]),
            None
        );
    }
}
