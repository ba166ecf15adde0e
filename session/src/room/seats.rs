//! `Seats`: the room's player slots, each keyed by the secret [`ClientId`] that took it,
//! and its watchers. A seat is active (a connection plays it, at some stage of entering
//! the game) or inactive (kept for its owner until PlayerTTL). A watcher follows the
//! game on its connection without a seat: it enters and receives verified input as a
//! player does, and is gone when its connection is. The seats also know when the room
//! went empty of players, for EmptyRoomTTL.

use std::net::IpAddr;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};

use super::feed::Feed;
use crate::outbox::Outbox;
use crate::protocol::{Echo, Hello, ServerMessage, Timing};
use crate::transfer::Download;
use crate::{ClientId, ConnId, Refusal, ResumeToken};

/// Who holds a slot: the client id and, while the player is active, its connection.
pub type SlotHolder = (ClientId, Option<ConnId>);

/// One player slot.
#[derive(Debug)]
pub(crate) struct Seat {
    /// The secret the slot is keyed by.
    pub client_id: ClientId,
    /// Whether a connection plays it.
    pub link: Link,
    /// The newest command number taken from this player (kept across reconnections,
    /// so a command resent after a loss is not taken twice).
    pub commands_taken: u32,
    /// How many more commands, and command bytes, the player may send now.
    pub command_budget: CommandBudget,
    /// The token its last welcome gave.
    pub resume: ResumeToken,
    /// The latest token the client proved it holds (by speaking after that welcome);
    /// `None` while it proved none. This one, or the latest, brings the client back:
    /// a welcome can be lost.
    pub confirmed: Option<ResumeToken>,
    /// The address it last connected from, when the transport said.
    pub address: Option<IpAddr>,
    /// The first tick its holder's checksum reports vote for: the one after the
    /// newest verified when the seat was taken (a holder that came later did not play
    /// the ticks before; its reports of them are judged but are no votes, or a player
    /// could vote again from a second seat after leaving the first).
    pub votes_from: Tick,
}

impl Seat {
    /// Whether a hello showing `token` may take this seat back. While its client has
    /// proved holding no token (its welcomes were lost), none is needed.
    fn accepts(&self, token: Option<ResumeToken>) -> bool {
        token == Some(self.resume) || token == self.confirmed
    }
}

/// Commands a player may send: a budget refilled with the room's ticks, so one player
/// cannot crowd others' commands out of the ticks, or fill the history kept.
///
/// Kept as what was spent, in credits of one tick-rate-th of a command (or byte), so
/// each tick gives back its exact share however often the budget is drawn on. (Whole
/// commands, rounded down per refill, threw that share away: at 60 Hz a command takes
/// several ticks to earn, so a player drawing sooner never got one back.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CommandBudget {
    /// Command credits spent and not yet given back (a command costs the tick rate).
    commands: u64,
    /// Byte credits spent and not yet given back (a byte costs the tick rate).
    bytes: u64,
    /// The tick it was last refilled at.
    at: Tick,
}

/// Commands a second a player may land, on average; twice that in a burst.
const COMMANDS_PER_SECOND: u64 = 8;
/// Command bytes a second a player may land, on average; twice that in a burst.
const COMMAND_BYTES_PER_SECOND: u64 = 1024;

impl CommandBudget {
    /// Refills for the ticks up to `tick` (at `rate` a second) and spends one command
    /// of `len` bytes, if the budget allows.
    pub(super) fn spend(&mut self, tick: Tick, rate: u64, len: usize) -> bool {
        let rate = rate.max(1);
        let elapsed = tick.saturating_sub(self.at);
        self.at = self.at.max(tick);
        let give_back =
            |spent: u64, per_second: u64| spent.saturating_sub(elapsed.saturating_mul(per_second));
        let commands = give_back(self.commands, COMMANDS_PER_SECOND).saturating_add(rate);
        let cost = (len as u64).saturating_mul(rate);
        let bytes = give_back(self.bytes, COMMAND_BYTES_PER_SECOND).saturating_add(cost);
        let burst = |per_second: u64| 2 * per_second * rate;
        if commands > burst(COMMANDS_PER_SECOND) || bytes > burst(COMMAND_BYTES_PER_SECOND) {
            self.commands = commands - rate;
            self.bytes = bytes - cost;
            return false;
        }
        self.commands = commands;
        self.bytes = bytes;
        true
    }
}

/// A seat's connection.
#[derive(Debug)]
pub(crate) enum Link {
    /// No connection since `since`; the seat is kept until PlayerTTL after it.
    Inactive {
        /// When the player went inactive.
        since: Duration,
    },
    /// A connection plays the seat (boxed: an inactive seat is a few bytes).
    Active(Box<Active>),
}

/// An active seat's connection and how far its player is into the game.
#[derive(Debug)]
pub(crate) struct Active {
    /// The connection.
    pub conn: ConnId,
    /// When the player was last heard from.
    pub last_heard: Duration,
    /// When it was last sent anything.
    pub last_sent: Duration,
    /// The newest client clock reading heard, and when: echoed in [`Timing`].
    pub echo: Option<(u64, Duration)>,
    /// The smallest slack of its input since the last [`Timing`] it was sent.
    pub slack: Option<i32>,
    /// How far into the game it is.
    pub stage: Stage,
}

impl Active {
    /// A connection just taken in at `stage`: heard and sent to now, nothing echoed
    /// yet (a hello's clock reading spans the transport's setup, not a round trip).
    fn new(now: Duration, conn: ConnId, stage: Stage) -> Active {
        Active {
            conn,
            last_heard: now,
            last_sent: now,
            echo: None,
            slack: None,
            stage,
        }
    }

    /// The [`Timing`] for a message leaving now, when the room's clock reads `room_us`;
    /// its slack report starts over.
    pub(super) fn timing(&mut self, now: Duration, room_us: Option<i64>, taken: u32) -> Timing {
        let echo = self.echo.map(|(client_us, heard)| {
            let held = now.saturating_sub(heard).as_micros();
            Echo {
                client_us,
                held_us: held.min(u32::MAX as u128) as u32,
            }
        });
        Timing {
            room_us,
            echo,
            slack_us: self.slack.take(),
            commands_taken: taken,
        }
    }

    /// Sends this connection the message `make` builds around its [`Timing`] (the
    /// room's clock reading and the commands taken from it).
    pub(super) fn send_timed(
        &mut self,
        out: &mut Outbox,
        now: Duration,
        (room_us, taken): (Option<i64>, u32),
        make: impl FnOnce(Timing) -> ServerMessage,
    ) {
        let timing = self.timing(now, room_us, taken);
        self.last_sent = now;
        out.send(self.conn, make(timing));
    }

    /// Notes the slack of input just taken.
    pub(super) fn note_slack(&mut self, slack: Option<i32>) {
        if let Some(slack) = slack {
            self.slack = Some(self.slack.map_or(slack, |s| s.min(slack)));
        }
    }
}

/// A connection in the room: a player in its seat, or a watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    /// The player in this slot.
    Player(PlayerId),
    /// The watcher on this connection.
    Watcher(ConnId),
}

/// A connection following the game without a seat.
#[derive(Debug)]
struct Watcher {
    /// The id its hello gave (a repeated hello on the connection is answered again;
    /// the id on a new connection takes the watcher's place).
    client_id: ClientId,
    /// The address it connected from, when the transport said.
    address: Option<IpAddr>,
    /// Its connection and how far into the game it is.
    active: Active,
}

/// A playing player's own input: from which tick it counts, and when some last came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sending {
    /// The first tick its input counts from (before it the player is absent).
    pub from: Tick,
    /// When input last arrived.
    pub last_heard: Duration,
}

/// How far an active player is into the game.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Welcomed before the game started.
    Lobby,
    /// Its entry snapshot is being fetched from a buddy; its clock is paused. It
    /// offered its own local snapshot of this tick and checksum, if any (the way in
    /// should the buddy search fail).
    AwaitingSnapshot {
        /// The local snapshot its hello offered.
        offered: Option<(Tick, Checksum)>,
    },
    /// Its entry snapshot is on the way; verified input after it streams meanwhile.
    Receiving {
        /// Verified input sent after the snapshot's tick.
        feed: Feed,
        /// The snapshot (boxed: most seats are not receiving).
        download: Box<Download>,
    },
    /// Its frame runs from `entered` on the verified input streaming to it.
    Playing {
        /// The tick its frame started from.
        entered: Tick,
        /// Verified input sent to it.
        feed: Feed,
        /// Its own input, once it sends some: ticks wait (up to the hold) for it.
        sending: Option<Sending>,
    },
}

impl Stage {
    /// The tick the player's frame started from, once it has one coming.
    pub(super) fn entered(&self) -> Option<Tick> {
        match self {
            Stage::Receiving { download, .. } => Some(download.tick),
            Stage::Playing { entered, .. } => Some(*entered),
            Stage::Lobby | Stage::AwaitingSnapshot { .. } => None,
        }
    }

    /// The verified input streaming to the player, once entered.
    pub(super) fn feed(&self) -> Option<&Feed> {
        match self {
            Stage::Receiving { feed, .. } | Stage::Playing { feed, .. } => Some(feed),
            Stage::Lobby | Stage::AwaitingSnapshot { .. } => None,
        }
    }
}

/// How a hello is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The connection already plays this seat: its welcome was lost.
    Repeated(PlayerId),
    /// The seat to (re)take; `rejoined` when the client held it before.
    Seat {
        /// The slot.
        player: PlayerId,
        /// The client held it before.
        rejoined: bool,
    },
}

/// The room's slots.
#[derive(Debug)]
pub(crate) struct Seats {
    seats: Vec<Option<Seat>>,
    watchers: Vec<Watcher>,
    /// Since when no seat is active, if none is.
    empty_since: Option<Duration>,
}

impl Seats {
    /// `players` empty slots, the room empty since `now`.
    pub(super) fn new(players: usize) -> Seats {
        Seats {
            seats: (0..players).map(|_| None).collect(),
            watchers: Vec::new(),
            empty_since: None,
        }
    }

    /// The slot count.
    pub(super) fn len(&self) -> usize {
        self.seats.len()
    }

    /// Seat `player`, if taken.
    pub(super) fn get(&self, player: PlayerId) -> Option<&Seat> {
        self.seats.get(player.0 as usize)?.as_ref()
    }

    /// The active seat `player`, if it is one.
    pub(super) fn active(&self, player: PlayerId) -> Option<&Active> {
        match &self.get(player)?.link {
            Link::Active(active) => Some(&**active),
            Link::Inactive { .. } => None,
        }
    }

    /// The active seat `player`, to change.
    pub(super) fn active_mut(&mut self, player: PlayerId) -> Option<&mut Active> {
        match &mut self.seats.get_mut(player.0 as usize)?.as_mut()?.link {
            Link::Active(active) => Some(&mut **active),
            Link::Inactive { .. } => None,
        }
    }

    /// Every active seat, by player.
    pub(super) fn actives(&self) -> impl Iterator<Item = (PlayerId, &Active)> {
        self.seats
            .iter()
            .enumerate()
            .filter_map(|(p, seat)| match seat {
                Some(Seat {
                    link: Link::Active(active),
                    ..
                }) => Some((PlayerId(p as u8), &**active)),
                _ => None,
            })
    }

    /// The member on `conn`, if any.
    pub(super) fn member_of(&self, conn: ConnId) -> Option<Member> {
        self.player_of(conn).map(Member::Player).or_else(|| {
            self.watchers
                .iter()
                .any(|w| w.active.conn == conn)
                .then_some(Member::Watcher(conn))
        })
    }

    /// The connection of `member`, if it has one.
    pub(super) fn member(&self, member: Member) -> Option<&Active> {
        match member {
            Member::Player(player) => self.active(player),
            Member::Watcher(conn) => self.watcher(conn),
        }
    }

    /// The connection of `member`, to change.
    pub(super) fn member_mut(&mut self, member: Member) -> Option<&mut Active> {
        match member {
            Member::Player(player) => self.active_mut(player),
            Member::Watcher(conn) => self
                .watchers
                .iter_mut()
                .find(|w| w.active.conn == conn)
                .map(|w| &mut w.active),
        }
    }

    fn watcher(&self, conn: ConnId) -> Option<&Active> {
        self.watchers
            .iter()
            .find(|w| w.active.conn == conn)
            .map(|w| &w.active)
    }

    /// Every connection in the room: the active seats, then the watchers.
    pub(super) fn members(&self) -> impl Iterator<Item = (Member, &Active)> {
        let players = self.actives().map(|(p, a)| (Member::Player(p), a));
        let watchers = self
            .watchers
            .iter()
            .map(|w| (Member::Watcher(w.active.conn), &w.active));
        players.chain(watchers)
    }

    /// Every connection in the room, to change.
    pub(super) fn members_mut(&mut self) -> impl Iterator<Item = (Member, &mut Active)> {
        let players = self
            .seats
            .iter_mut()
            .enumerate()
            .filter_map(|(p, seat)| match seat {
                Some(Seat {
                    link: Link::Active(active),
                    ..
                }) => Some((Member::Player(PlayerId(p as u8)), &mut **active)),
                _ => None,
            });
        let watchers = self
            .watchers
            .iter_mut()
            .map(|w| (Member::Watcher(w.active.conn), &mut w.active));
        players.chain(watchers)
    }

    /// How many members [`Seats::member_at_mut`] may name: every slot, then every
    /// watcher.
    pub(super) fn member_slots(&self) -> usize {
        self.seats.len() + self.watchers.len()
    }

    /// The connection at `index` of [`Seats::member_slots`], if that slot has one, and
    /// the commands taken from it (for its [`Timing`]): no search, whatever the member.
    pub(super) fn member_at_mut(&mut self, index: usize) -> Option<(u32, &mut Active)> {
        match index.checked_sub(self.seats.len()) {
            None => {
                let seat = self.seats.get_mut(index)?.as_mut()?;
                match &mut seat.link {
                    Link::Active(active) => Some((seat.commands_taken, &mut **active)),
                    Link::Inactive { .. } => None,
                }
            }
            Some(watcher) => Some((0, &mut self.watchers.get_mut(watcher)?.active)),
        }
    }

    /// Whether any member waits for a snapshot the room has yet to find.
    pub(super) fn awaiting_snapshot(&self) -> bool {
        self.members()
            .any(|(_, a)| matches!(a.stage, Stage::AwaitingSnapshot { .. }))
    }

    /// Watchers in the room.
    pub(super) fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// The connection `client_id` watches on, if it does.
    pub(super) fn watcher_conn(&self, client_id: ClientId) -> Option<ConnId> {
        self.watchers
            .iter()
            .find(|w| w.client_id == client_id)
            .map(|w| w.active.conn)
    }

    /// The address the watcher on `conn` connected from (`None` inside: unknown).
    pub(super) fn watcher_address(&self, conn: ConnId) -> Option<IpAddr> {
        let watcher = self.watchers.iter().find(|w| w.active.conn == conn)?;
        watcher.address
    }

    /// Watchers connected from `address`.
    pub(super) fn watchers_from(&self, address: IpAddr) -> usize {
        let from = |w: &&Watcher| w.address == Some(address);
        self.watchers.iter().filter(from).count()
    }

    /// Takes `conn` (from `address`) in as a watcher at `stage`.
    pub(super) fn watch(
        &mut self,
        now: Duration,
        (client_id, conn, address): (ClientId, ConnId, Option<IpAddr>),
        stage: Stage,
    ) {
        let active = Active::new(now, conn, stage);
        self.watchers.push(Watcher {
            client_id,
            address,
            active,
        });
    }

    /// Lets the watcher on `conn` go; whether there was one.
    pub(super) fn unwatch(&mut self, conn: ConnId) -> bool {
        let before = self.watchers.len();
        self.watchers.retain(|w| w.active.conn != conn);
        self.watchers.len() < before
    }

    /// The set of players (bit `p` for player `p`) whose active seat passes `test`.
    pub(super) fn mask(&self, test: impl Fn(&Active) -> bool) -> u64 {
        self.actives()
            .filter(|(_, active)| test(active))
            .fold(0, |mask, (p, _)| mask | 1 << p.0)
    }

    /// Active seats.
    pub(super) fn active_count(&self) -> usize {
        self.actives().count()
    }

    /// The seat a connection plays.
    pub(super) fn player_of(&self, conn: ConnId) -> Option<PlayerId> {
        self.actives()
            .find(|(_, active)| active.conn == conn)
            .map(|(p, _)| p)
    }

    /// Who holds each slot.
    pub(super) fn holders(&self) -> Vec<Option<SlotHolder>> {
        let holder = |seat: &Seat| match &seat.link {
            Link::Active(active) => (seat.client_id, Some(active.conn)),
            Link::Inactive { .. } => (seat.client_id, None),
        };
        self.seats.iter().map(|s| s.as_ref().map(holder)).collect()
    }

    /// Decides which seat a hello from `conn` gets, or why none. `open` says whether
    /// the room still seats new players.
    /// With `seat_limit` (an address and a count), a new or returning seat is refused
    /// when that address already holds that many other seats.
    pub(super) fn admit(
        &self,
        conn: ConnId,
        hello: &Hello,
        open: bool,
        seat_limit: Option<(IpAddr, u8)>,
    ) -> Result<Admission, Refusal> {
        let admission = self.admission(conn, hello, open)?;
        if let (Admission::Seat { player, .. }, Some((address, limit))) = (&admission, seat_limit) {
            let others = self
                .seats
                .iter()
                .enumerate()
                .filter(|(p, seat)| {
                    *p != player.0 as usize
                        && seat.as_ref().is_some_and(|s| s.address == Some(address))
                })
                .count();
            if others >= limit as usize {
                return Err(Refusal::TooManySeatsFromAddress);
            }
        }
        Ok(admission)
    }

    fn admission(&self, conn: ConnId, hello: &Hello, open: bool) -> Result<Admission, Refusal> {
        if let Some(p) = self.player_of(conn)
            && self
                .get(p)
                .is_some_and(|seat| seat.client_id != hello.client_id)
        {
            let problem = "one connection plays one slot; it said hello as another client";
            return Err(Refusal::ProtocolViolation(problem.into()));
        }
        let owned = self.seats.iter().enumerate().find_map(|(p, seat)| {
            let seat = seat.as_ref().filter(|s| s.client_id == hello.client_id)?;
            Some((PlayerId(p as u8), seat))
        });
        match owned {
            Some((player, seat)) => match &seat.link {
                Link::Active(active) if active.conn == conn => Ok(Admission::Repeated(player)),
                _ if !seat.accepts(hello.resume) => Err(Refusal::ResumeRejected),
                Link::Active(_) => Err(Refusal::DuplicateClientId),
                Link::Inactive { .. } if !open => Err(Refusal::RoomClosed),
                Link::Inactive { .. } => Ok(Admission::Seat {
                    player,
                    rejoined: true,
                }),
            },
            None if hello.rejoin => Err(Refusal::PlayerTtlExpired),
            None if !open => Err(Refusal::RoomClosed),
            None => {
                let free = self
                    .seats
                    .iter()
                    .position(Option::is_none)
                    .ok_or(Refusal::RoomFull)?;
                Ok(Admission::Seat {
                    player: PlayerId(free as u8),
                    rejoined: false,
                })
            }
        }
    }

    /// Seats `client_id` at `player` on `conn` at `stage` with a fresh `resume` token,
    /// its reports voting from tick `votes_from` (a returning client keeps its seat's
    /// command count and the tick its votes began at); the room is no longer empty.
    /// Nothing is echoed before the client's first update: a hello's clock reading
    /// spans the transport's connection setup, not a round trip.
    pub(super) fn seat(
        &mut self,
        now: Duration,
        player: PlayerId,
        (client_id, resume): (ClientId, ResumeToken),
        conn: ConnId,
        (stage, votes_from): (Stage, Tick),
    ) {
        let active = Active::new(now, conn, stage);
        let slot = &mut self.seats[player.0 as usize];
        let (commands_taken, command_budget, confirmed, votes_from) = slot
            .as_ref()
            .filter(|seat| seat.client_id == client_id)
            .map_or((0, CommandBudget::default(), None, votes_from), |seat| {
                let Seat {
                    commands_taken,
                    command_budget,
                    confirmed,
                    votes_from,
                    ..
                } = *seat;
                (commands_taken, command_budget, confirmed, votes_from)
            });
        *slot = Some(Seat {
            client_id,
            link: Link::Active(Box::new(active)),
            commands_taken,
            command_budget,
            resume,
            confirmed,
            address: None,
            votes_from,
        });
        self.empty_since = None;
    }

    /// Seat `player`, to change.
    pub(super) fn get_mut(&mut self, player: PlayerId) -> Option<&mut Seat> {
        self.seats.get_mut(player.0 as usize)?.as_mut()
    }

    /// Makes `player`'s seat inactive (kept for PlayerTTL); returns its connection.
    pub(super) fn deactivate(&mut self, now: Duration, player: PlayerId) -> Option<ConnId> {
        let seat = self.seats.get_mut(player.0 as usize)?.as_mut()?;
        let Link::Active(active) = &seat.link else {
            return None;
        };
        let conn = active.conn;
        seat.link = Link::Inactive { since: now };
        self.note_departure(now);
        Some(conn)
    }

    /// Frees `player`'s seat for good; returns it, if it was held.
    pub(super) fn free(&mut self, now: Duration, player: PlayerId) -> Option<Seat> {
        // An empty slot frees nothing: no departure (which would start EmptyRoomTTL).
        let seat = self.seats.get_mut(player.0 as usize)?.take()?;
        self.note_departure(now);
        Some(seat)
    }

    fn note_departure(&mut self, now: Duration) {
        if self.active_count() == 0 && self.empty_since.is_none() {
            self.empty_since = Some(now);
        }
    }

    /// Since when no seat has been active, if none is.
    pub(super) fn empty_since(&self) -> Option<Duration> {
        self.empty_since.filter(|_| self.active_count() == 0)
    }

    /// Frees every seat inactive for `ttl`; returns their players.
    pub(super) fn expire(&mut self, now: Duration, ttl: Duration) -> Vec<PlayerId> {
        let mut freed = Vec::new();
        for (p, seat) in self.seats.iter_mut().enumerate() {
            if let Some(Seat {
                link: Link::Inactive { since },
                ..
            }) = seat
                && now >= *since + ttl
            {
                *seat = None;
                freed.push(PlayerId(p as u8));
            }
        }
        freed
    }

    /// Empties every seat and lets every watcher go (the room closed).
    pub(super) fn clear(&mut self) {
        self.seats.iter_mut().for_each(|s| *s = None);
        self.watchers.clear();
    }

    /// Sends `message` to `player` if it is active.
    pub(super) fn send(
        &mut self,
        out: &mut Outbox,
        now: Duration,
        player: PlayerId,
        message: ServerMessage,
    ) {
        if let Some(active) = self.active_mut(player) {
            active.last_sent = now;
            out.send(active.conn, message);
        }
    }

    /// Sends `member`, if connected, the message `make` builds around its [`Timing`].
    pub(super) fn send_timed(
        &mut self,
        out: &mut Outbox,
        now: Duration,
        member: Member,
        room_us: Option<i64>,
        make: impl FnOnce(Timing) -> ServerMessage,
    ) {
        let taken = match member {
            Member::Player(player) => self.get(player).map_or(0, |seat| seat.commands_taken),
            Member::Watcher(_) => 0,
        };
        if let Some(active) = self.member_mut(member) {
            active.send_timed(out, now, (room_us, taken), make);
        }
    }

    /// Sends `message` to every member.
    pub(super) fn broadcast(&mut self, out: &mut Outbox, now: Duration, message: &ServerMessage) {
        for (_, active) in self.members_mut() {
            active.last_sent = now;
            out.send(active.conn, message.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROTOCOL_VERSION;
    use tickstep_engine::{Checksum, SchemaHash};

    /// Commands landed by a player trying one of `len` bytes every tick for a minute
    /// at 60 Hz.
    fn landed_in_a_minute(len: usize) -> usize {
        let mut budget = CommandBudget::default();
        (1..=3600)
            .filter(|&tick| budget.spend(tick, 60, len))
            .count()
    }

    #[test]
    fn the_command_budget_gives_back_each_ticks_share_however_often_it_is_drawn_on() {
        // A burst (16), then 8 a second over the 3,599 ticks after the first (whose
        // share comes to a full budget). Rounding each tick's refill down to whole
        // commands landed the burst and nothing after it.
        assert_eq!(landed_in_a_minute(1), 16 + 3599 * 8 / 60);
        // Bytes bind first for long commands: 2,048 and then 1,024 a second, in 256s.
        assert_eq!(
            landed_in_a_minute(256),
            (2048 * 60 + 3599 * 1024) / (256 * 60)
        );
        // Drawn on seldom, it is full again, but no fuller.
        let mut budget = CommandBudget::default();
        let burst = (0..100).filter(|_| budget.spend(10_000, 60, 1)).count();
        assert_eq!(burst, 16);
        let again = (0..100).filter(|_| budget.spend(1_000_000, 60, 1)).count();
        assert_eq!(again, 16);
    }

    fn hello(n: u64, rejoin: bool) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            app_version: "t".into(),
            schema: SchemaHash::default(),
            initial: Checksum::default(),
            room: "r".into(),
            client_id: ClientId::from_seed(n),
            rejoin,
            local_snapshot: None,
            sent_at: 0,
            // The token every seat here is given.
            resume: Some(ResumeToken([0; 16])),
            watch: false,
        }
    }

    const T0: Duration = Duration::ZERO;

    fn seated(seats: &mut Seats, n: u64, conn: u64) -> PlayerId {
        let Ok(Admission::Seat { player, .. }) =
            seats.admit(ConnId(conn), &hello(n, false), true, None)
        else {
            panic!("seat for client {n}");
        };
        seats.seat(
            T0,
            player,
            (ClientId::from_seed(n), ResumeToken([0; 16])),
            ConnId(conn),
            (Stage::Lobby, 0),
        );
        player
    }

    #[test]
    fn a_returning_id_gets_its_seat_and_a_second_connection_is_refused() {
        let mut seats = Seats::new(2);
        let a = seated(&mut seats, 1, 10);
        assert_eq!(a, PlayerId(0));
        assert_eq!(
            seats.admit(ConnId(10), &hello(1, false), true, None),
            Ok(Admission::Repeated(a))
        );
        assert_eq!(
            seats.admit(ConnId(11), &hello(1, true), true, None),
            Err(Refusal::DuplicateClientId)
        );
        assert!(matches!(
            seats.admit(ConnId(10), &hello(2, false), true, None),
            Err(Refusal::ProtocolViolation(_))
        ));
        seats.deactivate(T0, a);
        assert_eq!(
            seats.admit(ConnId(11), &hello(1, true), true, None),
            Ok(Admission::Seat {
                player: a,
                rejoined: true
            })
        );
    }

    #[test]
    fn an_address_holds_at_most_its_limit_of_seats_kept_or_active() {
        let mut seats = Seats::new(4);
        let home: IpAddr = [10, 0, 0, 1].into();
        let limit = Some((home, 2));
        for n in 1..=2 {
            let Ok(Admission::Seat { player, .. }) =
                seats.admit(ConnId(n), &hello(n, false), true, limit)
            else {
                panic!("seat {n}");
            };
            seats.seat(
                T0,
                player,
                (ClientId::from_seed(n), ResumeToken([0; 16])),
                ConnId(n),
                (Stage::Lobby, 0),
            );
            seats.get_mut(player).unwrap().address = Some(home);
        }
        assert_eq!(
            seats.admit(ConnId(3), &hello(3, false), true, limit),
            Err(Refusal::TooManySeatsFromAddress)
        );
        let elsewhere = Some(([10, 0, 0, 2].into(), 2));
        assert!(
            seats
                .admit(ConnId(3), &hello(3, false), true, elsewhere)
                .is_ok()
        );
        // A kept (inactive) seat still counts; its owner may come back to it.
        seats.deactivate(T0, PlayerId(0));
        assert_eq!(
            seats.admit(ConnId(3), &hello(3, false), true, limit),
            Err(Refusal::TooManySeatsFromAddress)
        );
        assert!(matches!(
            seats.admit(ConnId(4), &hello(1, true), true, limit),
            Ok(Admission::Seat { rejoined: true, .. })
        ));
        assert!(
            seats.admit(ConnId(3), &hello(3, false), true, None).is_ok(),
            "no limit"
        );
    }

    #[test]
    fn full_rooms_expired_slots_and_closed_rooms_are_refused_by_name() {
        let mut seats = Seats::new(1);
        seated(&mut seats, 1, 10);
        assert_eq!(
            seats.admit(ConnId(11), &hello(2, false), true, None),
            Err(Refusal::RoomFull)
        );
        assert_eq!(
            seats.admit(ConnId(11), &hello(2, true), true, None),
            Err(Refusal::PlayerTtlExpired)
        );
        assert_eq!(
            seats.admit(ConnId(11), &hello(2, false), false, None),
            Err(Refusal::RoomClosed)
        );
    }

    #[test]
    fn inactive_seats_expire_after_their_ttl_and_the_room_knows_when_it_emptied() {
        let mut seats = Seats::new(2);
        let a = seated(&mut seats, 1, 10);
        let b = seated(&mut seats, 2, 11);
        let sec = Duration::from_secs(1);
        seats.deactivate(sec, a);
        assert_eq!(seats.empty_since(), None, "b is still active");
        seats.deactivate(2 * sec, b);
        assert_eq!(seats.empty_since(), Some(2 * sec));
        assert_eq!(seats.expire(20 * sec, 20 * sec), vec![]);
        assert_eq!(seats.expire(21 * sec, 20 * sec), vec![a]);
        assert_eq!(seats.expire(22 * sec, 20 * sec), vec![b]);
        assert!(seats.holders().iter().all(Option::is_none));
    }
}
