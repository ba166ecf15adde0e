//! `Broker`: the snapshot broker. It decides how a (re)joiner enters a running game,
//! only ever on a *vouched* state (one whose checksum a quorum of players reported,
//! see [`Judge`]), preferring the shortest catch-up:
//!
//! 1. from tick 0 while the game is young;
//! 2. from its own local snapshot when that is vouched and fresh;
//! 3. from a buddy's snapshot of the newest vouched tick, when one is recent and a
//!    player who reported it is online and caught up;
//! 4. from its own vouched local snapshot of any age the history still covers;
//! 5. from tick 0 while the history reaches back that far (verified input is the
//!    room's own, so replaying it needs nobody's word);
//! 6. else the search refuses it with [`Refusal::NoVouchedSnapshot`].
//!
//! A joiner sent to wait for a buddy falls back to steps 4 and 5 when every buddy
//! fails ([`Broker::fallback`]).
//!
//! It runs the buddy search: it picks a connected, caught-up player that reported the
//! vouched tick (spreading the load), checks what it uploads against that checksum,
//! keeps the checked snapshot for later joiners, and moves on to the next buddy when
//! one fails.
//!
//! The broker decides; the room carries its decisions out (it owns the seats and the
//! outbox).

use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, SchemaHash, Tick};
use tickstep_snapshot::Chunk;

use super::config::RoomConfig;
use super::judge::Judge;
use super::seats::{Seats, Stage};
use crate::Refusal;
use crate::protocol::{Entry, Hello};
use crate::transfer::{Outgoing, Upload};

/// A buddy is asked for a vouched tick at most this many checksum intervals behind
/// live: buddies keep snapshots of their last few checksum ticks (4 by default).
const BUDDY_REACH_INTERVALS: u64 = 3;

/// A buddy snapshot checked against a vouched checksum, reusable by joiners.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    /// Its tick.
    pub tick: Tick,
    /// The vouched checksum it matches.
    pub checksum: Checksum,
    /// Its chunks.
    pub snapshot: Arc<Outgoing>,
}

/// The upload asked of a buddy, and the checksum it must match.
#[derive(Debug)]
struct BuddyUpload {
    upload: Upload,
    expected: Checksum,
}

/// What to do for the players waiting for a snapshot.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Nothing yet: an upload is under way, or reports are awaited.
    Wait,
    /// Send them this checked snapshot.
    Give(Checked),
    /// Ask `buddy` for its snapshot of `tick` (which must have `checksum`).
    Ask {
        /// The buddy.
        buddy: PlayerId,
        /// The tick.
        tick: Tick,
        /// The vouched checksum of that tick.
        checksum: Checksum,
    },
    /// Refuse them: no buddy can help.
    Refuse(Refusal),
}

/// What became of a buddy's upload chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BuddyChunk {
    /// Not a chunk of the buddy upload.
    NotBuddy,
    /// Taken; more to come.
    More,
    /// The snapshot arrived and checked out: serve the waiting players.
    Checked,
    /// The snapshot (of `tick`) arrived broken or unvouched: the buddy failed.
    Rejected {
        /// The tick asked for.
        tick: Tick,
    },
}

/// The broker's state.
#[derive(Debug)]
pub(crate) struct Broker {
    checked: Option<Checked>,
    upload: Option<BuddyUpload>,
    /// When the current search began.
    search_began: Option<Duration>,
    /// Players asked (and failed) in the current search.
    tried: u64,
    /// Snapshots each player served as a buddy (load balancing).
    served: Vec<u32>,
}

impl Broker {
    /// A broker for `players` slots.
    pub(super) fn new(players: usize) -> Broker {
        Broker {
            checked: None,
            upload: None,
            search_began: None,
            tried: 0,
            served: vec![0; players],
        }
    }

    /// Bytes the buddy upload under way holds.
    pub(super) fn upload_held(&self) -> u64 {
        self.upload.as_ref().map_or(0, |b| b.upload.incoming.held())
    }

    /// How a joiner saying `hello` enters a game running at `finalized` whose history
    /// `covers` ticks (the order is in the module docs).
    pub(super) fn entry(
        &self,
        (config, seats, judge): (&RoomConfig, &Seats, &Judge),
        hello: &Hello,
        finalized: Tick,
        covers: impl Fn(Tick) -> bool,
    ) -> Entry {
        let young = finalized < config.ticks_in(config.start_window);
        if young && covers(0) {
            return Entry::FromStart;
        }
        let fallback = Broker::fallback(judge, hello.local_snapshot, finalized, &covers);
        let max_age = config.ticks_in(config.local_snapshot_max_age);
        match fallback {
            Some(Entry::LocalSnapshot { tick }) if finalized - tick <= max_age => {
                Entry::LocalSnapshot { tick }
            }
            _ if self.buddy_target(config, seats, judge, finalized).is_some() => {
                Entry::AwaitSnapshot
            }
            Some(entry) => entry,
            None => Entry::AwaitSnapshot,
        }
    }

    /// The way in without a buddy, for a joiner that `offered` a local snapshot: that
    /// snapshot if it is vouched and the history covers it, else tick 0 while the
    /// history reaches it; `None` when neither.
    pub(super) fn fallback(
        judge: &Judge,
        offered: Option<(Tick, Checksum)>,
        finalized: Tick,
        covers: impl Fn(Tick) -> bool,
    ) -> Option<Entry> {
        let local = offered.filter(|&(tick, checksum)| {
            tick <= finalized && covers(tick) && judge.vouches(tick, checksum)
        });
        match local {
            Some((tick, _)) => Some(Entry::LocalSnapshot { tick }),
            None if covers(0) => Some(Entry::FromStart),
            None => None,
        }
    }

    /// The newest vouched tick if it is recent enough for a buddy to hold, its
    /// checksum, and the players who could send it: connected, caught up, reported
    /// it, not yet tried in this search.
    fn buddy_target(
        &self,
        config: &RoomConfig,
        seats: &Seats,
        judge: &Judge,
        finalized: Tick,
    ) -> Option<(Tick, Checksum, u64)> {
        let (tick, checksum, agreeing) = judge.newest_vouched()?;
        let reach = BUDDY_REACH_INTERVALS * config.checksum_every.max(1) as u64;
        let buddies = self.candidates(config, seats, finalized) & agreeing;
        (tick + reach >= finalized && buddies != 0).then_some((tick, checksum, buddies))
    }

    /// The next step for the players waiting for a snapshot (`waiting` says whether
    /// any is). `held(tick)` says whether the history still covers a frame at `tick`.
    pub(super) fn plan(
        &mut self,
        now: Duration,
        config: &RoomConfig,
        seats: &Seats,
        judge: &Judge,
        finalized: Tick,
        held: impl Fn(Tick) -> bool,
    ) -> Plan {
        if !seats.awaiting_snapshot() {
            self.end_search();
            return Plan::Wait;
        }
        self.forget_stale(config, finalized, held);
        if let Some(checked) = &self.checked {
            // Found: the next search starts afresh (its clock and the buddies tried).
            let checked = checked.clone();
            self.end_search();
            return Plan::Give(checked);
        }
        if self.upload.is_some() {
            return Plan::Wait;
        }
        let began = *self.search_began.get_or_insert(now);
        let Some((tick, checksum, buddies)) = self.buddy_target(config, seats, judge, finalized)
        else {
            // No recent vouched tick: wait for the reports that would make one, unless
            // too few players are online to vouch for anything, or none untried could
            // send it.
            let playing = seats.mask(|a| matches!(a.stage, Stage::Playing { .. }));
            if (playing.count_ones() as usize) < judge.quorum() || playing & !self.tried == 0 {
                return self.give_up(self.search_error());
            }
            if now >= began + config.snapshot_timeout {
                return self.give_up(Refusal::SnapshotRequestTimedOut);
            }
            return Plan::Wait;
        };
        let choice = (0..seats.len())
            .filter(|&p| buddies & (1 << p) != 0)
            .min_by_key(|&p| (self.served[p], p));
        match choice {
            Some(p) => {
                self.served[p] += 1;
                Plan::Ask {
                    buddy: PlayerId(p as u8),
                    tick,
                    checksum,
                }
            }
            None => self.give_up(self.search_error()),
        }
    }

    /// Tracks the upload asked of a buddy for the snapshot with `expected` checksum.
    pub(super) fn asked(&mut self, upload: Upload, expected: Checksum) {
        self.upload = Some(BuddyUpload { upload, expected });
    }

    /// Connected players in the game, their frame within a second of live, not yet
    /// tried in this search.
    fn candidates(&self, config: &RoomConfig, seats: &Seats, finalized: Tick) -> u64 {
        let close = config.ticks_in(Duration::from_secs(1));
        let ready = seats.mask(|active| match &active.stage {
            Stage::Playing { feed, .. } => feed.stepped + close >= finalized,
            _ => false,
        });
        ready & !self.tried
    }

    fn search_error(&self) -> Refusal {
        if self.tried == 0 {
            Refusal::NoVouchedSnapshot
        } else {
            Refusal::SnapshotRequestTimedOut
        }
    }

    fn give_up(&mut self, error: Refusal) -> Plan {
        self.end_search();
        Plan::Refuse(error)
    }

    /// Drops the checked snapshot once no joiner could be given it: older than a local
    /// snapshot may be, or no longer covered by the history (`held`). Until then it
    /// serves later joiners; after, it is only memory (up to `max_snapshot_len`).
    pub(super) fn forget_stale(
        &mut self,
        config: &RoomConfig,
        finalized: Tick,
        held: impl Fn(Tick) -> bool,
    ) {
        let max_age = config.ticks_in(config.local_snapshot_max_age);
        if self
            .checked
            .as_ref()
            .is_some_and(|c| finalized.saturating_sub(c.tick) > max_age || !held(c.tick))
        {
            self.checked = None;
        }
    }

    /// Whether a checked buddy snapshot is kept for later joiners.
    #[cfg(test)]
    pub(super) fn holds_checked(&self) -> bool {
        self.checked.is_some()
    }

    fn end_search(&mut self) {
        self.search_began = None;
        self.tried = 0;
    }

    /// A chunk of upload `id` from `player`; a complete buddy snapshot is checked
    /// against the consensus for its tick and `schema`.
    pub(super) fn buddy_chunk(
        &mut self,
        now: Duration,
        player: PlayerId,
        id: u32,
        chunk: &Chunk,
        schema: SchemaHash,
    ) -> BuddyChunk {
        let Some(buddy) = self
            .upload
            .as_mut()
            .filter(|b| b.upload.id == id && b.upload.from == player)
        else {
            return BuddyChunk::NotBuddy;
        };
        let tick = buddy.upload.tick;
        match buddy.upload.incoming.add(now, chunk) {
            Ok(false) => return BuddyChunk::More,
            Ok(true) => {}
            Err(_) => {
                self.buddy_failed(player);
                return BuddyChunk::Rejected { tick };
            }
        }
        let Some(BuddyUpload { upload, expected }) = self.upload.take() else {
            return BuddyChunk::NotBuddy;
        };
        let checked = upload.incoming.finish().ok().filter(|bytes| {
            tickstep_snapshot::check_vouched(bytes, tick, expected, schema).is_ok()
        });
        match checked {
            Some(bytes) => {
                self.checked = Some(Checked {
                    tick,
                    checksum: expected,
                    snapshot: Arc::new(Outgoing::new(&bytes)),
                });
                BuddyChunk::Checked
            }
            None => {
                self.buddy_failed(player);
                BuddyChunk::Rejected { tick }
            }
        }
    }

    /// The buddy `player` will not deliver (it said so, failed, timed out or left):
    /// never ask it again in this search.
    pub(super) fn buddy_failed(&mut self, player: PlayerId) {
        if self.is_buddy(player, None) {
            self.upload = None;
        }
        self.tried |= 1 << player.0;
    }

    /// Whether `player` is the buddy being asked (for upload `id`, when given).
    pub(super) fn is_buddy(&self, player: PlayerId, id: Option<u32>) -> bool {
        self.upload
            .as_ref()
            .is_some_and(|b| b.upload.from == player && id.is_none_or(|id| b.upload.id == id))
    }

    /// Times the buddy out after `timeout` (returning it, to try the next one), or
    /// returns what to send it if its upload stalled for `patience`.
    pub(super) fn chase(&mut self, now: Duration, timeout: Duration, patience: Duration) -> Chase {
        let Some(buddy) = self.upload.as_mut() else {
            return Chase::Nothing;
        };
        let from = buddy.upload.from;
        if now >= buddy.upload.asked_at + timeout {
            self.buddy_failed(from);
            return Chase::TimedOut;
        }
        match buddy.upload.chase(now, patience) {
            Some(message) => Chase::Resend(from, message),
            None => Chase::Nothing,
        }
    }

    /// A new player took seat `player`: it has served nobody yet.
    pub(super) fn seat_taken(&mut self, player: PlayerId) {
        if let Some(served) = self.served.get_mut(player.0 as usize) {
            *served = 0;
        }
    }
}

/// What chasing the buddy upload calls for.
#[derive(Debug)]
pub(crate) enum Chase {
    /// Nothing.
    Nothing,
    /// Send the buddy this.
    Resend(PlayerId, crate::protocol::ServerMessage),
    /// The buddy timed out: plan again.
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::feed::Feed;
    use crate::transfer::wire_chunks;
    use crate::{ClientId, ConnId, PROTOCOL_VERSION, ResumeToken, test_game};

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> RoomConfig {
        let frame = test_game::frame(1);
        RoomConfig::new(3, "t", &frame)
    }

    fn hello(local: Option<(Tick, Checksum)>) -> Hello {
        let config = config();
        Hello {
            protocol: PROTOCOL_VERSION,
            app_version: "t".into(),
            schema: config.schema,
            initial: config.initial,
            room: "r".into(),
            client_id: ClientId::from_seed(9),
            rejoin: true,
            local_snapshot: local,
            sent_at: 0,
            resume: None,
            watch: false,
        }
    }

    fn sum(n: u8) -> Checksum {
        Checksum::from(blake3::hash(&[n]))
    }

    /// Seats: players 0 and 1 playing at `stepped`, player 2 waiting for a snapshot.
    fn seats(stepped: Tick) -> Seats {
        let mut seats = Seats::new(3);
        for p in 0..2u8 {
            let mut feed = Feed::new(0, Duration::ZERO);
            feed.acknowledge(Duration::ZERO, stepped, stepped, stepped);
            let stage = Stage::Playing {
                entered: 0,
                feed,
                sending: None,
            };
            seats.seat(
                Duration::ZERO,
                PlayerId(p),
                (ClientId::from_seed(p.into()), ResumeToken([0; 16])),
                ConnId(p.into()),
                (stage, 0),
            );
        }
        seats.seat(
            Duration::ZERO,
            PlayerId(2),
            (ClientId::from_seed(2), ResumeToken([0; 16])),
            ConnId(2),
            (Stage::AwaitingSnapshot { offered: None }, 0),
        );
        seats
    }

    /// A judge to whom `reporters` (a mask) reported `checksum` at each of `ticks`.
    fn reported(reporters: u64, ticks: &[Tick], checksum: Checksum) -> Judge {
        let mut judge = Judge::new(3, 2);
        for &tick in ticks {
            for p in (0..3).filter(|p| reporters & (1 << p) != 0) {
                judge.report(PlayerId(p), tick, checksum, true);
            }
            judge.decide(tick, |_| reporters);
        }
        judge
    }

    /// A judge whose players 0 and 1 agreed on `checksum` at `tick`.
    fn judge(tick: Tick, checksum: Checksum) -> Judge {
        reported(0b011, &[tick], checksum)
    }

    #[test]
    fn joiners_enter_on_the_shortest_vouched_path() {
        let (config, broker) = (config(), Broker::new(3));
        let judge = judge(600, sum(1));
        let entry = |hello: &Hello, finalized: Tick, covers: fn(Tick) -> bool| {
            let seats = seats(finalized);
            broker.entry((&config, &seats, &judge), hello, finalized, covers)
        };
        let all: fn(Tick) -> bool = |_| true;
        assert_eq!(entry(&hello(None), 60, all), Entry::FromStart, "young");
        let fresh = hello(Some((600, sum(1))));
        assert_eq!(entry(&fresh, 700, all), Entry::LocalSnapshot { tick: 600 });
        let forged = hello(Some((600, sum(2))));
        assert_eq!(
            entry(&forged, 650, all),
            Entry::AwaitSnapshot,
            "a buddy holds tick 600"
        );
        assert_eq!(
            entry(&forged, 700, all),
            Entry::FromStart,
            "no buddy holds a vouched tick that old: the history replays from 0"
        );
        assert_eq!(
            entry(&fresh, 700, |t| t > 650),
            Entry::AwaitSnapshot,
            "nothing vouched within reach: the search will say so"
        );
        // Older than 10 s: a buddy's newer vouched snapshot wins, else the old one.
        assert_eq!(entry(&fresh, 1300, all), Entry::LocalSnapshot { tick: 600 });
        let newer = reported(0b011, &[600, 1290], sum(1));
        let seats = seats(1300);
        assert_eq!(
            broker.entry((&config, &seats, &newer), &fresh, 1300, all),
            Entry::AwaitSnapshot
        );
    }

    #[test]
    fn a_state_only_one_player_reported_is_never_relayed() {
        let config = config();
        let mut broker = Broker::new(3);
        let seats = seats(600);
        // Player 1 alone reported ticks up to 600 (player 0 stays silent).
        let lone = reported(0b010, &[540, 570, 600], sum(6));
        assert_eq!(lone.newest_vouched(), None);
        let plan = broker.plan(SEC, &config, &seats, &lone, 600, |_| true);
        assert!(
            matches!(plan, Plan::Wait),
            "two are playing: they may yet agree"
        );
        let plan = broker.plan(20 * SEC, &config, &seats, &lone, 600, |_| true);
        assert!(matches!(
            plan,
            Plan::Refuse(Refusal::SnapshotRequestTimedOut)
        ));
        let mut alone = Seats::new(3);
        alone.seat(
            Duration::ZERO,
            PlayerId(1),
            (ClientId::from_seed(1), ResumeToken([0; 16])),
            ConnId(1),
            (
                Stage::Playing {
                    entered: 0,
                    feed: Feed::new(600, Duration::ZERO),
                    sending: None,
                },
                0,
            ),
        );
        alone.seat(
            Duration::ZERO,
            PlayerId(2),
            (ClientId::from_seed(2), ResumeToken([0; 16])),
            ConnId(2),
            (Stage::AwaitingSnapshot { offered: None }, 0),
        );
        let plan = broker.plan(SEC, &config, &alone, &lone, 600, |_| true);
        assert!(
            matches!(plan, Plan::Refuse(Refusal::NoVouchedSnapshot)),
            "one player online can vouch for nothing"
        );
    }

    #[test]
    fn the_buddy_search_asks_the_least_served_checks_what_it_sends_and_moves_on() {
        let config = config();
        let frame = test_game::frame(1);
        let mut bytes = Vec::new();
        let honest = tickstep_snapshot::encode(&frame, &mut bytes);
        let (seats, judge) = (seats(0), judge(0, honest));
        let mut broker = Broker::new(3);
        let ask = |broker: &mut Broker| broker.plan(SEC, &config, &seats, &judge, 0, |_| true);
        let Plan::Ask {
            buddy,
            tick: 0,
            checksum,
        } = ask(&mut broker)
        else {
            panic!("asks a buddy");
        };
        assert_eq!((buddy, checksum), (PlayerId(0), honest));
        broker.asked(Upload::new(1, buddy, 0, 1 << 20, SEC), checksum);
        assert!(
            matches!(ask(&mut broker), Plan::Wait),
            "one upload at a time"
        );

        // Player 0 sends a snapshot of another game: rejected, player 1 is next.
        let mut other = Vec::new();
        tickstep_snapshot::encode(&test_game::frame(2), &mut other);
        let chunk = wire_chunks(&other, 1 << 16).remove(0);
        let schema = config.schema;
        assert_eq!(
            broker.buddy_chunk(SEC, PlayerId(0), 1, &chunk, schema),
            BuddyChunk::Rejected { tick: 0 }
        );
        let Plan::Ask { buddy, .. } = ask(&mut broker) else {
            panic!("asks the next buddy");
        };
        assert_eq!(buddy, PlayerId(1));
        broker.asked(Upload::new(2, buddy, 0, 1 << 20, SEC), honest);
        let chunk = wire_chunks(&bytes, 1 << 16).remove(0);
        assert_eq!(
            broker.buddy_chunk(SEC, PlayerId(0), 2, &chunk, schema),
            BuddyChunk::NotBuddy
        );
        assert_eq!(
            broker.buddy_chunk(SEC, PlayerId(1), 2, &chunk, schema),
            BuddyChunk::Checked
        );
        assert!(matches!(
            ask(&mut broker),
            Plan::Give(Checked { tick: 0, .. })
        ));

        // Kept for later joiners while young enough and covered by the history; after
        // that, housekeeping drops it.
        let max_age = config.ticks_in(config.local_snapshot_max_age);
        let kept = broker.checked.clone();
        broker.forget_stale(&config, max_age, |_| true);
        assert!(broker.checked.is_some(), "young and covered: kept");
        broker.forget_stale(&config, max_age + 1, |_| true);
        assert!(broker.checked.is_none(), "too old to give");
        broker.checked = kept;
        broker.forget_stale(&config, 1, |tick| tick > 0);
        assert!(broker.checked.is_none(), "the history moved past it");
    }

    #[test]
    fn no_candidate_or_no_delivery_refuses_the_waiting_by_name() {
        let config = config();
        let mut broker = Broker::new(3);
        // Both players far behind live: nobody can serve until they catch up.
        let behind = seats(0);
        let plan = broker.plan(SEC, &config, &behind, &judge(0, sum(1)), 600, |_| true);
        assert!(matches!(plan, Plan::Wait));
        let plan = broker.plan(20 * SEC, &config, &behind, &judge(0, sum(1)), 600, |_| true);
        assert!(matches!(
            plan,
            Plan::Refuse(Refusal::SnapshotRequestTimedOut)
        ));
        // A buddy that times out, then another: timed out.
        let seats = seats(600);
        let judge = judge(600, sum(1));
        let Plan::Ask { buddy, .. } = broker.plan(SEC, &config, &seats, &judge, 600, |_| true)
        else {
            panic!("asks");
        };
        broker.asked(Upload::new(1, buddy, 600, 1 << 20, SEC), sum(1));
        assert!(matches!(
            broker.chase(20 * SEC, 15 * SEC, SEC),
            Chase::TimedOut
        ));
        let Plan::Ask { buddy: next, .. } =
            broker.plan(SEC, &config, &seats, &judge, 600, |_| true)
        else {
            panic!("asks the other");
        };
        assert_ne!(next, buddy);
        broker.buddy_failed(next);
        let plan = broker.plan(SEC, &config, &seats, &judge, 600, |_| true);
        assert!(matches!(
            plan,
            Plan::Refuse(Refusal::SnapshotRequestTimedOut)
        ));
    }
}
