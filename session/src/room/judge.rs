//! `Judge`: the desync judge. It keeps the checksums players report (the
//! [`ChecksumBook`]), decides each tick by majority once everyone expected has reported
//! or a grace period passed, and for the first desync gathers evidence: the snapshots
//! of that tick from the disagreeing players and one agreeing player.

use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};
use tickstep_snapshot::Chunk;

use super::checksums::{ChecksumBook, Verdict};
use crate::protocol::ServerMessage;
use crate::transfer::Upload;

/// Checksum ticks remembered.
const CHECKSUM_TICKS_KEPT: usize = 64;

/// Reported checksums, verdicts and evidence.
#[derive(Debug)]
pub(crate) struct Judge {
    book: ChecksumBook,
    first_desync: Option<Tick>,
    evidence: Vec<Upload>,
}

impl Judge {
    /// A judge for `players` slots.
    pub(super) fn new(players: usize) -> Judge {
        Judge {
            book: ChecksumBook::new(players, CHECKSUM_TICKS_KEPT),
            first_desync: None,
            evidence: Vec::new(),
        }
    }

    /// The first tick a desync was found at.
    pub(super) fn first_desync(&self) -> Option<Tick> {
        self.first_desync
    }

    /// Whether a snapshot of `tick` with `checksum` agrees with what the peers
    /// reported: their consensus when the tick was decided; anything otherwise.
    pub(super) fn allows(&self, tick: Tick, checksum: Checksum) -> bool {
        match self.book.verdict(tick) {
            Some(verdict) => verdict.consensus == Some(checksum),
            None => true,
        }
    }

    /// The newest decided tick with a consensus, and the players who reported it.
    pub(super) fn newest_consensus(&self) -> Option<(Tick, Checksum, u64)> {
        self.book.newest_consensus()
    }

    /// Records `player`'s report; a report that contradicts a decided tick comes back
    /// as a desync naming that player.
    pub(super) fn report(
        &mut self,
        player: PlayerId,
        tick: Tick,
        checksum: Checksum,
    ) -> Option<Verdict> {
        self.book.record(tick, player, checksum)
    }

    /// Decides the ticks up to `settled` and those every `expected(tick)` player
    /// reported; returns the desyncs among them.
    pub(super) fn decide(&mut self, settled: Tick, expected: impl Fn(Tick) -> u64) -> Vec<Verdict> {
        let mut verdicts = self.book.decide(settled, expected);
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
    use tickstep_snapshot::split;

    fn sum(n: u8) -> Checksum {
        Checksum::from(blake3::hash(&[n]))
    }

    #[test]
    fn the_first_desync_names_witnesses_from_both_sides_once() {
        let mut judge = Judge::new(3);
        for (p, n) in [(0, 1), (1, 2), (2, 1)] {
            assert_eq!(judge.report(PlayerId(p), 30, sum(n)), None);
        }
        let desyncs = judge.decide(0, |_| 0b111);
        assert_eq!(desyncs.len(), 1);
        assert_eq!(judge.witnesses(&desyncs[0]), vec![PlayerId(1), PlayerId(0)]);
        assert_eq!(judge.first_desync(), Some(30));
        assert!(judge.allows(30, sum(1)) && !judge.allows(30, sum(2)));
        assert!(judge.allows(60, sum(9)), "undecided ticks allow anything");
        for (p, n) in [(0, 1), (1, 3), (2, 1)] {
            judge.report(PlayerId(p), 60, sum(n));
        }
        let later = judge.decide(60, |_| 0b111);
        assert_eq!(
            judge.witnesses(&later[0]),
            vec![],
            "evidence only for the first"
        );
    }

    #[test]
    fn evidence_arrives_in_chunks_and_stalls_are_chased() {
        let mut judge = Judge::new(2);
        let sec = Duration::from_secs(1);
        judge.expect_evidence(Upload::new(7, PlayerId(1), 30, 1 << 20, Duration::ZERO));
        let bytes: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let chunks: Vec<_> = split(&bytes, 60_000).collect();
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
