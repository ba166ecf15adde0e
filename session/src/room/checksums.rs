//! `ChecksumBook`: the checksums clients reported, by tick, and the verdict on each
//! tick: the majority's checksum (the consensus) and who disagrees with it.

use std::collections::BTreeMap;
use tickstep_engine::{Checksum, PlayerId, Tick};

/// The decision about one tick's reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The tick.
    pub tick: Tick,
    /// The checksum more than half of the seats' votes agree on, if any (a seat whose
    /// holder left votes with that holder's report).
    pub consensus: Option<Checksum>,
    /// Reporters still in their seats whose checksum differs from the consensus (all of
    /// them when there is no majority and they do not all agree).
    pub disagreeing: Vec<PlayerId>,
}

impl Verdict {
    /// Whether the tick's reports show a desync.
    pub(super) fn is_desync(&self) -> bool {
        !self.disagreeing.is_empty()
    }
}

#[derive(Clone, Debug)]
struct Reports {
    /// The reports of each seat's current holder.
    by_player: Vec<Option<Checksum>>,
    /// Per seat, the first report of a holder that has since left it (empty until a
    /// seat is vacated): it is the seat's vote, but names no one.
    departed: Vec<Option<Checksum>>,
    /// Current holders whose report is no vote: they took their seat after the tick
    /// was verified (see `Seat::votes_from`).
    silent: u64,
    verdict: Option<Verdict>,
}

impl Reports {
    /// Each seat's vote: the first report of a holder that left it, else its current
    /// holder's unless that one is silent. One per seat, however often the seat
    /// changed hands.
    fn votes(&self) -> impl Iterator<Item = (usize, Checksum)> + '_ {
        self.by_player
            .iter()
            .enumerate()
            .filter_map(|(slot, current)| {
                let departed = self.departed.get(slot).copied().flatten();
                let current = current.filter(|_| self.silent & (1 << slot) == 0);
                Some((slot, departed.or(current)?))
            })
    }

    /// The seats voting for `checksum`.
    fn votes_for(&self, checksum: Checksum) -> usize {
        self.votes().filter(|&(_, vote)| vote == checksum).count()
    }

    /// The vote more than half of `out_of` seats cast, if any.
    fn majority_of(&self, out_of: usize) -> Option<Checksum> {
        self.votes()
            .map(|(_, vote)| vote)
            .find(|&candidate| 2 * self.votes_for(candidate) > out_of)
    }
}

/// Reported checksums of recent ticks (bounded) and their verdicts.
#[derive(Clone, Debug)]
pub(crate) struct ChecksumBook {
    players: usize,
    keep: usize,
    ticks: BTreeMap<Tick, Reports>,
}

impl ChecksumBook {
    /// A book for `players` slots that remembers the newest `keep` ticks (at least 1).
    pub(super) fn new(players: usize, keep: usize) -> ChecksumBook {
        ChecksumBook {
            players,
            keep: keep.max(1),
            ticks: BTreeMap::new(),
        }
    }

    /// Records `player`'s checksum of `tick`, as a vote or not (a repeated report is
    /// ignored; the first one counts). When the tick was already decided, a report
    /// that differs from the consensus comes back as a desync verdict naming just that
    /// player.
    pub(super) fn record(
        &mut self,
        tick: Tick,
        player: PlayerId,
        checksum: Checksum,
        vote: bool,
    ) -> Option<Verdict> {
        let slot = player.0 as usize;
        if slot >= self.players {
            return None;
        }
        if !self.ticks.contains_key(&tick) {
            let full = self.ticks.len() >= self.keep;
            if full
                && self
                    .ticks
                    .first_key_value()
                    .is_some_and(|(&old, _)| old >= tick)
            {
                return None;
            }
            let by_player = vec![None; self.players];
            self.ticks.insert(
                tick,
                Reports {
                    by_player,
                    departed: Vec::new(),
                    silent: 0,
                    verdict: None,
                },
            );
            if self.ticks.len() > self.keep {
                self.ticks.pop_first();
            }
        }
        let reports = self.ticks.get_mut(&tick)?;
        if reports.by_player[slot].is_some() {
            return None;
        }
        reports.by_player[slot] = Some(checksum);
        if !vote {
            reports.silent |= 1 << slot;
        }
        let verdict = reports.verdict.as_ref()?;
        (verdict.consensus.is_some() && verdict.consensus != Some(checksum)).then(|| Verdict {
            tick,
            consensus: verdict.consensus,
            disagreeing: vec![player],
        })
    }

    /// Decides every undecided tick at or before `settled` (its grace period is over),
    /// every other undecided tick that all `expected(tick)` players have reported, and
    /// every one whose majority the reports still missing could not overturn (so one
    /// player who never reports cannot hold every tick back to its grace period).
    /// Returns the new verdicts, oldest first.
    pub(super) fn decide(&mut self, settled: Tick, expected: impl Fn(Tick) -> u64) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        for (&tick, reports) in self.ticks.iter_mut() {
            if reports.verdict.is_some() {
                continue;
            }
            let reported = mask(reports.by_player.iter().map(Option::is_some));
            let voted = mask(
                (0..self.players)
                    .map(|slot| reports.departed.get(slot).copied().flatten().is_some()),
            );
            let missing = (expected(tick) & !reported & !voted).count_ones() as usize;
            let votes = reports.votes().count();
            let complete = votes > 0 && missing == 0;
            let assured = reports.majority_of(votes + missing).is_some();
            if tick <= settled || complete || assured {
                let verdict = judge(tick, reports);
                reports.verdict = Some(verdict.clone());
                verdicts.push(verdict);
            }
        }
        verdicts
    }

    /// Notes that `player`'s seat changed hands: its holder's reports stay the seat's
    /// votes (those that were votes), one per tick as before, but name no one, and the seat's next holder
    /// reports for itself (it never had those frames) without a second vote.
    pub(super) fn vacate(&mut self, player: PlayerId) {
        let (slot, players) = (player.0 as usize, self.players);
        for reports in self.ticks.values_mut() {
            let Some(checksum) = reports.by_player.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            let was_silent = reports.silent & (1 << slot) != 0;
            reports.silent &= !(1 << slot);
            if was_silent {
                // It was no vote here, and does not become one by leaving.
                continue;
            }
            reports.departed.resize(players, None);
            reports.departed[slot].get_or_insert(checksum);
        }
    }

    /// What the current holder of `player`'s seat reported for `tick`.
    pub(super) fn reported(&self, tick: Tick, player: PlayerId) -> Option<Checksum> {
        *self.ticks.get(&tick)?.by_player.get(player.0 as usize)?
    }

    /// The consensus of decided `tick` and the players still in their seats who
    /// reported it, when at least `quorum` seats voted for it (with reports of holders
    /// since gone): a checksum no single peer chose.
    pub(super) fn vouched(&self, tick: Tick, quorum: usize) -> Option<(Checksum, u64)> {
        let reports = self.ticks.get(&tick)?;
        let consensus = reports.verdict.as_ref()?.consensus?;
        let votes = reports.votes_for(consensus);
        let here = mask(reports.by_player.iter().map(|sum| *sum == Some(consensus)));
        (votes >= quorum.max(1)).then_some((consensus, here))
    }

    /// The newest tick [`vouched`](Self::vouched) by `quorum` players that someone
    /// still in their seat reported.
    pub(super) fn newest_vouched(&self, quorum: usize) -> Option<(Tick, Checksum, u64)> {
        self.ticks.keys().rev().find_map(|&tick| {
            let (checksum, here) = self.vouched(tick, quorum)?;
            (here != 0).then_some((tick, checksum, here))
        })
    }

    /// The slot count.
    pub(super) fn players(&self) -> usize {
        self.players
    }
}

/// The set of players (bit `p` for player `p`) for which `bits` yields true, in order.
pub(crate) fn mask(bits: impl IntoIterator<Item = bool>) -> u64 {
    bits.into_iter()
        .enumerate()
        .fold(0, |mask, (p, bit)| mask | ((bit as u64) << p))
}

/// The majority of one tick's votes (one per seat, see [`Reports::votes`]) and which
/// current holders' reports differ from it (all of them when there is no majority and
/// they do not agree among themselves).
fn judge(tick: Tick, reports: &Reports) -> Verdict {
    let sums: Vec<(PlayerId, Checksum)> = reports
        .by_player
        .iter()
        .enumerate()
        .filter_map(|(p, sum)| Some((PlayerId(p as u8), (*sum)?)))
        .collect();
    let majority = reports.majority_of(reports.votes().count());
    let disagreeing = match majority {
        Some(consensus) => sums
            .iter()
            .filter(|(_, sum)| *sum != consensus)
            .map(|(p, _)| *p)
            .collect(),
        // No majority, but the current holders agree: only departed reports differ,
        // and no one here is to blame.
        None if sums.windows(2).all(|pair| pair[0].1 == pair[1].1) => Vec::new(),
        None => sums.iter().map(|(p, _)| *p).collect(),
    };
    Verdict {
        tick,
        consensus: majority,
        disagreeing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(n: u8) -> Checksum {
        Checksum::from(blake3::hash(&[n]))
    }

    #[test]
    fn majority_names_the_minority_and_a_tie_names_everyone() {
        let mut book = ChecksumBook::new(3, 8);
        for (p, n) in [(0, 1), (1, 1), (2, 2)] {
            book.record(30, PlayerId(p), sum(n), true);
        }
        let verdicts = book.decide(0, |_| 0b111);
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].consensus, Some(sum(1)));
        assert_eq!(verdicts[0].disagreeing, vec![PlayerId(2)]);
        assert_eq!(book.vouched(30, 1), Some((sum(1), 0b011)));

        book.record(60, PlayerId(0), sum(1), true);
        book.record(60, PlayerId(1), sum(2), true);
        assert!(book.decide(0, |_| 0b111).is_empty(), "waits for player 2");
        let tie = book.decide(60, |_| 0b111);
        assert_eq!((tie[0].consensus, tie[0].disagreeing.len()), (None, 2));
        assert_eq!(book.newest_vouched(2), Some((30, sum(1), 0b011)));
        assert_eq!(book.newest_vouched(3), None, "only two agreed");
    }

    #[test]
    fn a_lone_reporter_is_a_consensus_but_vouches_for_nothing() {
        let mut book = ChecksumBook::new(2, 8);
        book.record(30, PlayerId(1), sum(7), true);
        assert!(!book.decide(30, |_| 0b10)[0].is_desync());
        assert_eq!(book.vouched(30, 1), Some((sum(7), 0b10)), "the consensus");
        assert_eq!(book.vouched(30, 2), None);
        assert_eq!(book.vouched(30, 1), Some((sum(7), 0b10)));
        // The other player's late report agrees: now two vouch for it.
        assert_eq!(book.record(30, PlayerId(0), sum(7), true), None);
        assert_eq!(book.vouched(30, 2), Some((sum(7), 0b11)));
    }

    #[test]
    fn a_tick_is_decided_once_the_missing_reports_could_not_overturn_its_majority() {
        let mut book = ChecksumBook::new(5, 8);
        for p in 0..2 {
            book.record(30, PlayerId(p), sum(1), true);
        }
        book.record(30, PlayerId(2), sum(2), true);
        assert!(book.decide(0, |_| 0b11111).is_empty(), "2 of 5, 2 to come");
        book.record(30, PlayerId(3), sum(1), true);
        let verdict = book.decide(0, |_| 0b11111).remove(0);
        assert_eq!(
            verdict.consensus,
            Some(sum(1)),
            "3 of 5 whatever the last says"
        );
        assert_eq!(verdict.disagreeing, vec![PlayerId(2)]);
        // A seat whose holder left has voted: its next holder is not waited for.
        for (p, n) in [(0, 1), (1, 2), (2, 1)] {
            book.record(45, PlayerId(p), sum(n), true);
        }
        book.vacate(PlayerId(2));
        let verdicts = book.decide(0, |_| 0b00111);
        assert_eq!(verdicts.len(), 1, "three votes, none to come");
        assert_eq!(verdicts[0].disagreeing, vec![PlayerId(1)]);
        // A silent report is no vote, so the one still expected could make it a tie.
        book.record(60, PlayerId(0), sum(1), true);
        book.record(60, PlayerId(1), sum(1), false);
        assert!(book.decide(0, |_| 0b111).is_empty(), "1 vote, 1 to come");
    }

    #[test]
    fn a_silent_report_is_judged_but_never_a_vote_even_once_its_seat_is_vacated() {
        let mut book = ChecksumBook::new(3, 8);
        book.record(30, PlayerId(0), sum(1), true);
        book.record(30, PlayerId(1), sum(1), false);
        book.record(30, PlayerId(2), sum(2), false);
        let verdict = book.decide(30, |_| 0b111).remove(0);
        assert_eq!(verdict.consensus, Some(sum(1)), "the one vote");
        assert_eq!(
            verdict.disagreeing,
            vec![PlayerId(2)],
            "judged all the same"
        );
        assert_eq!(book.vouched(30, 2), None, "one vote, not two");
        assert_eq!(
            book.vouched(30, 1),
            Some((sum(1), 0b011)),
            "a buddy all the same"
        );
        book.vacate(PlayerId(1));
        assert_eq!(book.vouched(30, 1), Some((sum(1), 0b001)));
        // Its next holder's report votes: still only two votes, one each way.
        book.record(30, PlayerId(1), sum(2), true);
        assert_eq!(book.vouched(30, 2), None);
    }

    #[test]
    fn late_disagreeing_reports_are_named_and_memory_is_bounded() {
        let mut book = ChecksumBook::new(2, 2);
        book.record(10, PlayerId(0), sum(1), true);
        assert!(book.decide(10, |_| 0b11)[0].disagreeing.is_empty());
        let late = book
            .record(10, PlayerId(1), sum(9), true)
            .expect("late desync");
        assert_eq!(late.disagreeing, vec![PlayerId(1)]);
        assert_eq!(
            book.record(10, PlayerId(1), sum(1), true),
            None,
            "first report counts"
        );
        for tick in [20, 30, 40] {
            book.record(tick, PlayerId(0), sum(1), true);
        }
        assert_eq!(book.ticks.len(), 2);
        assert_eq!(book.record(5, PlayerId(0), sum(1), true), None);
        assert_eq!(book.ticks.len(), 2, "older than everything kept: ignored");
        assert_eq!(book.record(7, PlayerId(9), sum(1), true), None);
    }
}
