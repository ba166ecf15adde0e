//! The room as a whole, driven by hand with the session's stub game: the parts working
//! together through hellos, input, time and departures.

use std::time::Duration;
use tickstep_engine::{PlayerId, TickInputs, checksum};

use super::*;
use crate::ids::TokenMint;
use crate::outbox::ServerTransmit;
use crate::protocol::Hello;
use crate::{ClientId, ResumeToken, test_game};

const MS: Duration = Duration::from_millis(1);
const LIVENESS: Liveness = Liveness {
    peer_timeout: Duration::from_secs(10),
    heartbeat: Duration::from_secs(1),
};

struct Harness {
    room: Room<u32>,
    out: Outbox,
    mint: TokenMint,
}

impl Harness {
    fn new(players: u8, change: impl FnOnce(&mut RoomConfig)) -> Harness {
        let frame = test_game::frame(1);
        let mut config = RoomConfig::new(players, "t", &frame);
        // Tick 0 at once: these tests send input by hand.
        config.start_delay = Duration::ZERO;
        change(&mut config);
        Harness {
            room: Room::new(config).expect("room"),
            out: Outbox::default(),
            mint: TokenMint::new([7; 32]),
        }
    }

    /// Client `client` says hello on `conn`, showing its seat's latest token.
    fn hello(&mut self, now: Duration, conn: u64, client: u64) -> Result<(), Refusal> {
        let resume = self.token_of(client);
        self.hello_with(now, conn, client, resume)
    }

    /// The latest token of the seat `client` holds.
    fn token_of(&self, client: u64) -> Option<ResumeToken> {
        let id = ClientId::from_seed(client);
        (0..self.room.seats.len())
            .filter_map(|p| self.room.seats.get(PlayerId(p as u8)))
            .find(|seat| seat.client_id == id)
            .map(|seat| seat.resume)
    }

    fn hello_with(
        &mut self,
        now: Duration,
        conn: u64,
        client: u64,
        resume: Option<ResumeToken>,
    ) -> Result<(), Refusal> {
        self.say_hello(now, (conn, None), client, resume, false)
    }

    /// Client `client` asks to watch on `conn`.
    fn watch(&mut self, now: Duration, conn: u64, client: u64) -> Result<(), Refusal> {
        self.watch_from(now, conn, client, None)
    }

    /// Client `client` asks to watch on `conn`, connected from `address`.
    fn watch_from(
        &mut self,
        now: Duration,
        conn: u64,
        client: u64,
        address: Option<std::net::IpAddr>,
    ) -> Result<(), Refusal> {
        self.say_hello(now, (conn, address), client, None, true)
    }

    fn say_hello(
        &mut self,
        now: Duration,
        (conn, address): (u64, Option<std::net::IpAddr>),
        client: u64,
        resume: Option<ResumeToken>,
        watch: bool,
    ) -> Result<(), Refusal> {
        let frame = test_game::frame(1);
        let hello = Hello {
            resume,
            watch,
            ..Hello::new("t", &frame, "r", ClientId::from_seed(client))
        };
        self.room.hello(
            now,
            (ConnId(conn), address),
            &hello,
            &mut self.mint,
            &mut self.out,
        )
    }

    fn input(&mut self, now: Duration, conn: u64, first: Tick, inputs: &[u32]) {
        self.update(now, conn, (0, 0), first, inputs, Vec::new());
    }

    /// An update from `conn`: what it `holds` (received, stepped), its input from
    /// `first`, and checksum reports.
    fn update(
        &mut self,
        now: Duration,
        conn: u64,
        (received, stepped): (Tick, Tick),
        first: Tick,
        inputs: &[u32],
        checksums: Vec<(Tick, tickstep_engine::Checksum)>,
    ) {
        let message = ClientMessage::Update {
            sent_at: 0,
            commands: Vec::new(),
            received,
            stepped,
            first_input: first,
            inputs: bytemuck::cast_slice(inputs).to_vec(),
            checksums,
        };
        self.room.message(now, ConnId(conn), message, &mut self.out);
    }

    fn message(&mut self, now: Duration, conn: u64, message: ClientMessage) {
        self.room.message(now, ConnId(conn), message, &mut self.out);
    }

    /// Everything sent to `conn` so far (drains the outbox).
    fn sent(&mut self) -> Vec<(ConnId, ServerMessage)> {
        std::iter::from_fn(|| self.out.pop())
            .filter_map(|t| match t {
                ServerTransmit::Send { to, message } => Some((to, message)),
                ServerTransmit::Close { .. } => None,
            })
            .collect()
    }

    /// Clients 1 to `players` take the seats (client n on connection n), and play
    /// ticks 1 to `last`, each sending its connection number as input.
    fn seat_all_and_play(&mut self, players: u64, last: Tick) {
        for client in 1..=players {
            self.hello(Duration::ZERO, client, client).unwrap();
        }
        for tick in 1..=last {
            let now = self.room.config.due(Duration::ZERO, tick);
            for conn in 1..=players {
                self.input(now, conn, tick, &[conn as u32]);
            }
            self.room.drive(now, LIVENESS, &mut self.out);
        }
    }

    fn events(&mut self) -> Vec<RoomEvent> {
        std::iter::from_fn(|| self.room.poll_event()).collect()
    }
}

fn entries(sent: &[(ConnId, ServerMessage)], conn: u64) -> Vec<Entry> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            ServerMessage::Welcome { entry, .. } if *to == ConnId(conn) => Some(*entry),
            _ => None,
        })
        .collect()
}

#[test]
fn the_game_starts_when_the_room_fills_and_ticks_verify_everyones_input() {
    let mut h = Harness::new(2, |_| {});
    h.hello(Duration::ZERO, 1, 1).unwrap();
    assert_eq!(entries(&h.sent(), 1), vec![Entry::Lobby]);
    h.hello(Duration::ZERO, 2, 2).unwrap();
    assert!(h.events().contains(&RoomEvent::GameStarted {
        delay: Duration::ZERO
    }));
    h.input(MS, 1, 1, &[10, 11]);
    h.input(MS, 2, 1, &[20]);
    let due = h.room.config.due(Duration::ZERO, 2);
    h.room.drive(due, LIVENESS, &mut h.out);
    assert_eq!(h.room.finalized(), 1, "tick 2 waits for player 1's input");
    let mut inputs = TickInputs::new(2).unwrap();
    h.room.inputs().read(1, &mut inputs).unwrap();
    assert_eq!(inputs.raw(), &[10, 20]);
    assert_eq!(h.room.stats().filled_ticks, 0);
    h.room.drive(due + h.room.config.hold, LIVENESS, &mut h.out);
    assert_eq!(h.room.finalized(), 2);
    h.room.inputs().read(2, &mut inputs).unwrap();
    assert_eq!(inputs.raw(), &[11, 20], "filled with player 1's last input");
    assert_eq!(h.room.stats().filled_ticks, 1);
}

/// Regression: a rejoiner whose welcome was lost repeated its hello while its buddy
/// snapshot was on the way, and was told to enter from a local snapshot it did not have.
#[test]
fn a_repeated_hello_while_a_snapshot_is_on_the_way_is_told_to_await_it() {
    let mut h = Harness::new(2, |c| c.start_window = Duration::ZERO);
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.hello(Duration::ZERO, 2, 2).unwrap();
    // Run to tick 60 with both reporting the same checksum at tick 30.
    let frame = test_game::frame(1);
    let mut sim = test_game::simulation();
    let mut played = frame.clone();
    let mut inputs = TickInputs::<u32>::new(2).unwrap();
    let mut sum30 = None;
    for tick in 1..=60 {
        let now = h.room.config.due(Duration::ZERO, tick);
        h.input(now, 1, tick, &[1]);
        h.input(now, 2, tick, &[2]);
        h.room.drive(now, LIVENESS, &mut h.out);
        h.room.inputs().read(tick, &mut inputs).unwrap();
        sim.step(&mut played, &inputs).unwrap();
        if tick == 30 {
            sum30 = Some(checksum(&played));
        }
    }
    let sum30 = sum30.unwrap();
    for conn in [1, 2] {
        let sec = Duration::from_secs(1);
        h.update(sec, conn, (60, 60), 0, &[], vec![(30, sum30)]);
    }
    // Housekeeping decides tick 30; player 2 drops and comes back without a snapshot:
    // a buddy is asked.
    let later = Duration::from_millis(1100);
    h.room.drive(later, LIVENESS, &mut h.out);
    h.room.disconnect(later, ConnId(2), "lost", &mut h.out);
    h.hello(later, 3, 2).unwrap();
    let sent = h.sent();
    assert_eq!(entries(&sent, 3), vec![Entry::AwaitSnapshot]);
    let upload = sent
        .iter()
        .find_map(|(to, m)| match m {
            ServerMessage::UploadRequest { upload, tick: 30 } if *to == ConnId(1) => Some(*upload),
            _ => None,
        })
        .expect("player 0 asked as buddy");
    // The buddy uploads its snapshot of tick 30; the room starts sending it.
    let mut at30 = frame.clone();
    let mut replay = test_game::simulation();
    for tick in 1..=30 {
        h.room.inputs().read(tick, &mut inputs).unwrap();
        replay.step(&mut at30, &inputs).unwrap();
    }
    let mut bytes = Vec::new();
    tickstep_snapshot::encode(&at30, &mut bytes);
    for chunk in crate::transfer::wire_chunks(&bytes, 1 << 16) {
        let message = ClientMessage::UploadChunk { upload, chunk };
        h.room.message(later, ConnId(1), message, &mut h.out);
    }
    assert!(
        h.sent().iter().any(|(to, m)| *to == ConnId(3)
            && matches!(m, ServerMessage::SnapshotChunk { tick: 30, .. }))
    );
    // The welcome was lost; the client says hello again and must be told to await.
    h.hello(Duration::from_secs(2), 3, 2).unwrap();
    assert_eq!(entries(&h.sent(), 3), vec![Entry::AwaitSnapshot]);

    // The checked snapshot is kept for later joiners until it is too old to give;
    // then housekeeping lets it go.
    assert!(h.room.broker.holds_checked());
    let config = &h.room.config;
    let too_old = 30 + config.ticks_in(config.local_snapshot_max_age) + 1;
    let past = config.due(Duration::ZERO, too_old);
    h.room.drive(past, LIVENESS, &mut h.out);
    assert!(h.room.clock.finalized() >= too_old);
    assert!(!h.room.broker.holds_checked(), "too old to give: dropped");
}

#[test]
fn silent_players_go_inactive_their_seats_expire_and_an_empty_room_closes() {
    let mut h = Harness::new(2, |c| {
        c.start_players = 1;
        c.player_ttl = Duration::from_secs(5);
        c.empty_room_ttl = Duration::from_secs(20);
    });
    h.hello(Duration::ZERO, 1, 1).unwrap();
    let sec = Duration::from_secs(1);
    h.room.drive(9 * sec, LIVENESS, &mut h.out);
    assert_eq!(
        h.room.holders()[0],
        Some((ClientId::from_seed(1), Some(ConnId(1))))
    );
    h.room.drive(10 * sec, LIVENESS, &mut h.out);
    assert_eq!(
        h.room.holders()[0],
        Some((ClientId::from_seed(1), None)),
        "timed out"
    );
    h.room.drive(15 * sec, LIVENESS, &mut h.out);
    assert_eq!(h.room.holders()[0], None, "PlayerTTL passed");
    assert!(!h.room.is_closed());
    h.room.drive(30 * sec, LIVENESS, &mut h.out);
    assert!(h.room.is_closed(), "EmptyRoomTTL passed");
    let events = h.events();
    assert!(events.contains(&RoomEvent::SlotFreed {
        player: PlayerId(0)
    }));
    assert_eq!(events.last(), Some(&RoomEvent::RoomClosed));
    assert_eq!(h.hello(31 * sec, 2, 2), Err(Refusal::RoomClosed));
}

/// A player whose first input is for a later tick is absent until then, and the ticks
/// before it do not wait for it.
#[test]
fn ticks_before_a_players_first_input_do_not_wait_for_it() {
    let mut h = Harness::new(2, |_| {});
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.hello(Duration::ZERO, 2, 2).unwrap();
    h.input(MS, 1, 1, &[1, 1, 1, 1]);
    h.input(MS, 2, 4, &[2]);
    let due3 = h.room.config.due(Duration::ZERO, 3);
    h.room.drive(due3, LIVENESS, &mut h.out);
    assert_eq!(
        h.room.finalized(),
        3,
        "ticks 1 to 3 did not hold for player 1"
    );
    let mut inputs = TickInputs::new(2).unwrap();
    h.room.inputs().read(3, &mut inputs).unwrap();
    assert_eq!(
        inputs.status(PlayerId(1)),
        tickstep_engine::InputStatus::Absent
    );
    let due4 = h.room.config.due(Duration::ZERO, 4);
    h.room.drive(due4, LIVENESS, &mut h.out);
    h.room.inputs().read(4, &mut inputs).unwrap();
    assert_eq!(inputs.raw(), &[1, 2]);
}

/// A copy of an old reconnect file (the client id and the token of an earlier
/// welcome) cannot take the slot once its owner came back: every welcome rotates the
/// token, and the room takes back only the latest.
#[test]
fn an_old_resume_token_cannot_take_the_slot_back() {
    let mut h = Harness::new(2, |c| c.start_players = 1);
    h.hello(Duration::ZERO, 1, 1).unwrap();
    let first = h.token_of(1);
    h.input(MS, 1, 1, &[1]);
    h.room.disconnect(MS, ConnId(1), "lost", &mut h.out);
    // The owner comes back with its latest token: a new one is issued, and the owner
    // proves it got it by speaking.
    h.hello(2 * MS, 2, 1).unwrap();
    let second = h.token_of(1);
    assert_ne!(first, second);
    h.input(2 * MS, 2, 2, &[1]);
    h.room.disconnect(3 * MS, ConnId(2), "lost", &mut h.out);
    // The copied file shows the first token: refused, whether or not the owner is on.
    assert_eq!(
        h.hello_with(4 * MS, 3, 1, first),
        Err(Refusal::ResumeRejected)
    );
    assert_eq!(
        h.hello_with(4 * MS, 3, 1, None),
        Err(Refusal::ResumeRejected)
    );
    h.hello(5 * MS, 4, 1).unwrap();
    h.input(5 * MS, 4, 3, &[1]);
    assert_eq!(
        h.hello_with(6 * MS, 5, 1, second),
        Err(Refusal::ResumeRejected),
        "the owner is on again with a newer token"
    );
}

/// A client whose welcome was lost, and whose connection then dropped, comes back
/// without the token it never got: the seat takes it back while nobody proved holding
/// a token for it.
#[test]
fn a_client_that_never_got_its_token_still_gets_its_seat_back() {
    let mut h = Harness::new(2, |c| c.start_players = 1);
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.room.disconnect(MS, ConnId(1), "lost", &mut h.out);
    h.hello_with(2 * MS, 2, 1, None).unwrap();
    // Its second welcome was lost too, but the first token now is no proof either.
    h.room.disconnect(3 * MS, ConnId(2), "lost", &mut h.out);
    h.hello_with(4 * MS, 3, 1, None).unwrap();
    h.input(5 * MS, 3, 1, &[1]);
    h.room.disconnect(6 * MS, ConnId(3), "lost", &mut h.out);
    assert_eq!(
        h.hello_with(7 * MS, 4, 1, None),
        Err(Refusal::ResumeRejected)
    );
}

/// The `live` of every verified message `conn` was sent, playing a game of two players
/// to tick 5 with verified input going out every `send_every` ticks.
fn verified_lives(send_every: u32) -> Vec<Tick> {
    let mut h = Harness::new(2, |c| {
        c.send_every = send_every;
        c.end_tick = Some(5);
    });
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.hello(Duration::ZERO, 2, 2).unwrap();
    let mut lives = Vec::new();
    for tick in 1..=5 {
        let now = h.room.config.due(Duration::ZERO, tick);
        h.input(now, 1, tick, &[1]);
        h.input(now, 2, tick, &[2]);
        h.room.drive(now, LIVENESS, &mut h.out);
        for (to, message) in h.sent() {
            if let (ConnId(1), ServerMessage::Verified { live, .. }) = (to, message) {
                lives.push(live);
            }
        }
    }
    lives
}

#[test]
fn verified_input_goes_out_every_send_every_ticks_and_the_end_at_once() {
    assert_eq!(verified_lives(1), vec![1, 2, 3, 4, 5]);
    assert_eq!(verified_lives(2), vec![2, 4, 5], "tick 5 is the end");
    assert_eq!(verified_lives(3), vec![3, 5]);
}

fn watching(sent: &[(ConnId, ServerMessage)], conn: u64) -> Vec<Entry> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            ServerMessage::Watching { entry, .. } if *to == ConnId(conn) => Some(*entry),
            _ => None,
        })
        .collect()
}

/// The verified ticks `conn` was sent, in order (repeats included).
fn verified_to(sent: &[(ConnId, ServerMessage)], conn: u64) -> Vec<Tick> {
    sent.iter()
        .filter(|(to, _)| *to == ConnId(conn))
        .flat_map(|(_, m)| match m {
            ServerMessage::Verified { ticks, .. } => {
                (ticks.first..ticks.first + ticks.presence.len() as u64).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// A watcher takes no seat (the room starts with its players), gets every verified
/// tick, and nothing it sends counts: no tick waits for it, its input, commands and
/// reports are ignored, and it is never asked for a snapshot.
#[test]
fn a_watcher_gets_the_verified_input_and_nothing_it_sends_counts() {
    let mut h = Harness::new(2, |c| c.end_tick = Some(3));
    h.watch(Duration::ZERO, 9, 9).unwrap();
    assert_eq!(watching(&h.sent(), 9), vec![Entry::Lobby]);
    assert_eq!(
        h.events(),
        vec![RoomEvent::WatcherJoined {
            entry: Entry::Lobby
        }]
    );
    h.hello(Duration::ZERO, 1, 1).unwrap();
    assert!(h.room.holders()[1].is_none(), "the watcher holds no slot");
    h.hello(Duration::ZERO, 2, 2).unwrap();
    assert!(h.events().contains(&RoomEvent::GameStarted {
        delay: Duration::ZERO
    }));
    let sent = h.sent();
    assert!(
        sent.iter()
            .any(|(to, m)| *to == ConnId(9) && matches!(m, ServerMessage::Start { .. })),
        "the watcher hears of the start"
    );
    // The watcher sends input for every tick, a command and a forged report.
    let forged = tickstep_engine::Checksum::from(blake3::hash(b"forged"));
    h.update(MS, 9, (0, 0), 1, &[99, 99, 99], vec![(0, forged)]);
    for tick in 1..=3 {
        let now = h.room.config.due(Duration::ZERO, tick);
        h.input(now, 1, tick, &[10 + tick as u32]);
        h.input(now, 2, tick, &[20 + tick as u32]);
        h.room.drive(now, LIVENESS, &mut h.out);
        assert_eq!(h.room.finalized(), tick, "no tick waits for the watcher");
    }
    let mut inputs = TickInputs::new(2).unwrap();
    h.room.inputs().read(3, &mut inputs).unwrap();
    assert_eq!(inputs.raw(), &[13, 23]);
    assert_eq!(h.room.stats().filled_ticks, 0);
    assert_eq!(h.room.first_desync(), None, "its report was not judged");
    let sent = h.sent();
    let mut ticks = verified_to(&sent, 9);
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks, vec![1, 2, 3], "unacknowledged ticks go again");
    assert!(
        !sent
            .iter()
            .any(|(to, m)| *to == ConnId(9) && matches!(m, ServerMessage::UploadRequest { .. })),
    );
    // The game ended and the players left: the room stays open for the watcher,
    // which hears the end once it holds the last tick, and closes when it leaves.
    for conn in [1, 2] {
        h.update(2 * MS, conn, (3, 3), 0, &[], Vec::new());
        h.message(2 * MS, conn, ClientMessage::Leave);
    }
    let later = Duration::from_secs(1);
    h.room.drive(later, LIVENESS, &mut h.out);
    assert!(!h.room.is_closed(), "the watcher is still in");
    h.update(later, 9, (3, 3), 0, &[], Vec::new());
    h.room.drive(2 * later, LIVENESS, &mut h.out);
    assert!(
        h.sent()
            .iter()
            .any(|(to, m)| *to == ConnId(9) && matches!(m, ServerMessage::End { tick: 3 })),
        "the watcher hears the end"
    );
    h.message(2 * later, 9, ClientMessage::Leave);
    h.room.drive(3 * later, LIVENESS, &mut h.out);
    assert!(h.room.is_closed());
}

/// Watchers are counted against the room's limit; a connection either plays or
/// watches; a repeated hello is answered again; a leave frees the place.
#[test]
fn watchers_are_limited_and_a_connection_plays_or_watches() {
    let mut h = Harness::new(2, |c| c.max_watchers = 1);
    h.watch(Duration::ZERO, 9, 9).unwrap();
    assert_eq!(h.watch(Duration::ZERO, 8, 8), Err(Refusal::TooManyWatchers));
    assert!(matches!(
        h.hello(Duration::ZERO, 9, 9),
        Err(Refusal::ProtocolViolation(_))
    ));
    h.hello(Duration::ZERO, 1, 1).unwrap();
    assert!(matches!(
        h.watch(Duration::ZERO, 1, 1),
        Err(Refusal::ProtocolViolation(_))
    ));
    h.sent();
    h.watch(MS, 9, 9).unwrap();
    assert_eq!(watching(&h.sent(), 9), vec![Entry::Lobby], "answered again");
    assert_eq!(h.room.watcher_count(), 1);
    h.message(MS, 9, ClientMessage::Leave);
    assert_eq!(h.room.watcher_count(), 0);
    h.watch(2 * MS, 8, 8).unwrap();
    h.room.disconnect(3 * MS, ConnId(8), "lost", &mut h.out);
    assert_eq!(h.room.watcher_count(), 0);
    let left = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, RoomEvent::WatcherLeft { .. }));
    assert_eq!(left.count(), 2);
    let mut none = Harness::new(2, |c| c.max_watchers = 0);
    assert_eq!(
        none.watch(Duration::ZERO, 9, 9),
        Err(Refusal::TooManyWatchers)
    );
}

/// A watcher whose connection broke comes back on a new one before the old one timed
/// out: the new connection takes its place (in a room with one place), the old one
/// is closed and streams no more.
#[test]
fn a_watcher_back_on_a_new_connection_takes_its_own_place() {
    let mut h = Harness::new(2, |c| c.max_watchers = 1);
    h.watch(Duration::ZERO, 9, 9).unwrap();
    h.watch(MS, 10, 9).unwrap();
    assert_eq!(h.room.watcher_count(), 1);
    let closed: Vec<ConnId> = std::iter::from_fn(|| h.out.pop())
        .filter_map(|t| match t {
            ServerTransmit::Close { conn } => Some(conn),
            ServerTransmit::Send { .. } => None,
        })
        .collect();
    assert_eq!(closed, vec![ConnId(9)]);
    assert_eq!(h.watch(MS, 11, 8), Err(Refusal::TooManyWatchers));
    h.hello(MS, 1, 1).unwrap();
    h.hello(MS, 2, 2).unwrap();
    let sent = h.sent();
    assert!(sent.iter().any(|(to, _)| *to == ConnId(10)));
    assert!(
        sent.iter().all(|(to, _)| *to != ConnId(9)),
        "the old one hears nothing"
    );
}

#[test]
fn one_address_holds_at_most_its_share_of_watchers() {
    let mut h = Harness::new(2, |c| c.max_watchers_per_address = 2);
    let home = Some(std::net::IpAddr::from([10, 0, 0, 1]));
    h.watch_from(Duration::ZERO, 9, 9, home).unwrap();
    h.watch_from(Duration::ZERO, 10, 10, home).unwrap();
    assert_eq!(
        h.watch_from(Duration::ZERO, 11, 11, home),
        Err(Refusal::TooManyWatchers)
    );
    let elsewhere = Some(std::net::IpAddr::from([10, 0, 0, 2]));
    h.watch_from(Duration::ZERO, 11, 11, elsewhere).unwrap();
    h.room.disconnect(MS, ConnId(9), "lost", &mut h.out);
    h.watch_from(2 * MS, 12, 12, home).unwrap();
    // Client 11 comes back from the full address: refused, and its place elsewhere
    // kept; client 10 comes back from home, where it counted: it takes its own place.
    assert_eq!(
        h.watch_from(3 * MS, 13, 11, home),
        Err(Refusal::TooManyWatchers)
    );
    assert_eq!(h.room.watcher_count(), 3, "client 11 still watches");
    h.watch_from(3 * MS, 14, 10, home).unwrap();
    assert_eq!(h.room.watcher_count(), 3);
}

/// Regression: a freed slot kept what its last player had sent ahead, so whoever took
/// it next had that input (the first for a tick counts) and those commands played as
/// its own, and its missing ticks filled with the last player's input.
#[test]
fn a_player_taking_a_freed_slot_plays_its_own_input_not_what_was_sent_ahead() {
    let mut h = Harness::new(2, |_| {});
    let due = |h: &Harness, tick| h.room.config.due(Duration::ZERO, tick);
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.hello(Duration::ZERO, 2, 2).unwrap();
    for tick in 1..=10 {
        let now = due(&h, tick);
        h.input(now, 1, tick, &[1]);
        h.input(now, 2, tick, &[2]);
        h.room.drive(now, LIVENESS, &mut h.out);
    }
    assert_eq!(h.room.finalized(), 10);
    // Player 1 sends input for the next 200 ticks and a command for tick 15, then leaves.
    let now = due(&h, 10);
    let planted = ClientMessage::Update {
        sent_at: 0,
        commands: vec![crate::protocol::Command {
            seq: 1,
            tick: 15,
            bytes: b"planted".to_vec(),
        }],
        received: 10,
        stepped: 10,
        first_input: 11,
        inputs: bytemuck::cast_slice(&[666u32; 200]).to_vec(),
        checksums: Vec::new(),
    };
    h.message(now, 2, planted);
    h.message(now, 2, ClientMessage::Leave);
    // A new client takes the slot. Its first input is for tick 10, already final: its
    // input counts from there, and ticks 11 and 12 are filled before any of its own
    // arrives (with zeros, not the last player's input, 2); then it sends 13-15.
    h.hello(now, 3, 3).unwrap();
    assert!(h.events().contains(&RoomEvent::PlayerLeft {
        player: PlayerId(1),
        reason: None
    }));
    h.input(now, 3, 10, &[99]);
    h.input(now, 3, 13, &[30, 31, 32]);
    for tick in 11..=20 {
        let now = due(&h, tick) + h.room.config.hold;
        h.input(now, 1, tick, &[1]);
        h.room.drive(now, LIVENESS, &mut h.out);
    }
    assert_eq!(h.room.finalized(), 20);
    let mut inputs = TickInputs::new(2).unwrap();
    let mut played = Vec::new();
    for tick in 11..=20 {
        h.room.inputs().read(tick, &mut inputs).unwrap();
        assert_eq!(
            inputs.commands().count(),
            0,
            "tick {tick}: no planted command"
        );
        played.push(inputs.get(PlayerId(1)).copied());
    }
    // 11-12 filled with zeros, 13-15 its own, the rest filled with its own last input.
    let expected = [Some(0), Some(0), Some(30), Some(31), Some(32)]
        .into_iter()
        .chain([Some(32); 5])
        .collect::<Vec<_>>();
    assert_eq!(played, expected);
}

/// Regression: kicking an empty slot counted as a departure (starting EmptyRoomTTL on a
/// lobby nobody had joined), and kicking an inactive player said it left a second time.
#[test]
fn a_kick_frees_only_a_held_seat_and_an_inactive_one_leaves_once() {
    let mut h = Harness::new(2, |c| c.empty_room_ttl = Duration::from_secs(1));
    h.room.kick(Duration::ZERO, PlayerId(1), &mut h.out);
    let later = Duration::from_secs(5);
    h.room.drive(later, LIVENESS, &mut h.out);
    assert_eq!(
        h.room.phase(),
        RoomPhase::Lobby,
        "nobody left: the lobby stays"
    );
    assert!(h.events().is_empty());
    h.hello(later, 1, 1).unwrap();
    h.room.disconnect(later, ConnId(1), "lost", &mut h.out);
    h.room.kick(later, PlayerId(0), &mut h.out);
    let events = h.events();
    assert!(matches!(
        events.first(),
        Some(RoomEvent::PlayerJoined {
            player: PlayerId(0),
            ..
        })
    ));
    assert_eq!(
        events[1..],
        [
            RoomEvent::PlayerLeft {
                player: PlayerId(0),
                reason: Some("lost".into())
            },
            RoomEvent::SlotFreed {
                player: PlayerId(0)
            },
        ]
    );
}

/// Regression: after the end, a member that never took the end (or never left) held
/// the room open for good, and a draining server waited for it to its deadline. A
/// member still catching up is not cut off.
#[test]
fn after_the_end_members_that_hold_nothing_new_for_empty_room_ttl_are_let_go() {
    let ttl = Duration::from_secs(1);
    let mut h = Harness::new(2, |c| {
        c.end_tick = Some(10);
        c.empty_room_ttl = ttl;
    });
    h.hello(Duration::ZERO, 1, 1).unwrap();
    h.hello(Duration::ZERO, 2, 2).unwrap();
    let mut end = Duration::ZERO;
    for tick in 1..=10 {
        end = h.room.config.due(Duration::ZERO, tick);
        h.input(end, 1, tick, &[1]);
        h.input(end, 2, tick, &[2]);
        h.room.drive(end, LIVENESS, &mut h.out);
    }
    assert_eq!(h.room.phase(), RoomPhase::Ended);
    h.events();
    // Both stay connected and heard from: player 0 holding nothing past tick 0, player
    // 1 taking a tick every 400 ms, the last 4 s after the end.
    let step = Duration::from_millis(400);
    for k in 1..=10 {
        let at = end + step * k;
        h.update(at, 1, (0, 0), 11, &[], Vec::new());
        h.update(at, 2, (k as u64, k as u64), 11, &[], Vec::new());
        h.room.drive(at, LIVENESS, &mut h.out);
    }
    assert_eq!(
        h.room.phase(),
        RoomPhase::Ended,
        "player 1 is still catching up"
    );
    // Player 0 is told, and its connection closed.
    let out: Vec<_> = std::iter::from_fn(|| h.out.pop()).collect();
    let to_0: Vec<_> = out
        .iter()
        .filter(|t| match t {
            ServerTransmit::Send { to, .. } => *to == ConnId(1),
            ServerTransmit::Close { conn } => *conn == ConnId(1),
        })
        .collect();
    let told = ServerTransmit::Send {
        to: ConnId(1),
        message: ServerMessage::Refused(Refusal::RoomClosed),
    };
    let closed = ServerTransmit::Close { conn: ConnId(1) };
    // (What it sends after that, on a closed connection, is answered with a close.)
    assert!(to_0.windows(2).any(|w| w == [&told, &closed]), "{to_0:?}");
    let left: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, RoomEvent::PlayerLeft { .. }))
        .collect();
    let reason = Some("let go after the end".to_string());
    assert_eq!(
        left,
        vec![RoomEvent::PlayerLeft {
            player: PlayerId(0),
            reason
        }]
    );
    // Player 1 holds the end and stays: let go EmptyRoomTTL after it took it, told
    // the end.
    let took_end = end + step * 10;
    for at in [took_end + ttl / 2, took_end + ttl + 2 * HOUSEKEEPING] {
        h.update(at, 2, (10, 10), 11, &[], Vec::new());
        h.room.drive(at, LIVENESS, &mut h.out);
    }
    assert_eq!(h.room.phase(), RoomPhase::Closed);
    let to_1: Vec<_> = h
        .sent()
        .into_iter()
        .filter(|(to, _)| *to == ConnId(2))
        .collect();
    assert_eq!(
        to_1.last(),
        Some(&(ConnId(2), ServerMessage::End { tick: 10 }))
    );
}

/// After a kick, a leave or PlayerTTL frees a seat, its holder's reports still count
/// toward a quorum, but the seat's next holder is not counted among those who had the
/// frames (it would be asked for a snapshot it never had); a player who only dropped
/// still is.
#[test]
fn a_freed_seats_reports_still_vouch_but_its_next_holder_is_no_buddy() {
    let ttl = Duration::from_secs(5);
    let mut h = Harness::new(4, |c| {
        c.start_window = Duration::ZERO;
        c.player_ttl = ttl;
    });
    h.seat_all_and_play(4, 60);
    let sum = tickstep_engine::Checksum::from(blake3::hash(b"tick 30"));
    let sec = Duration::from_secs(1);
    for conn in 1..=4 {
        h.update(sec, conn, (60, 60), 0, &[], vec![(30, sum)]);
    }
    // Housekeeping decides tick 30.
    let later = Duration::from_millis(1100);
    h.room.drive(later, LIVENESS, &mut h.out);
    let vouched = |h: &Harness| h.room.judge.newest_vouched();
    assert_eq!(vouched(&h), Some((30, sum, 0b1111)));
    h.room.kick(later, PlayerId(3), &mut h.out);
    assert_eq!(vouched(&h), Some((30, sum, 0b0111)));
    h.message(later, 3, ClientMessage::Leave);
    assert_eq!(vouched(&h), Some((30, sum, 0b0011)));
    h.room.disconnect(later, ConnId(2), "lost", &mut h.out);
    assert_eq!(
        vouched(&h),
        Some((30, sum, 0b0011)),
        "a dropped player may come back with its frames"
    );
    h.room.drive(later + ttl, LIVENESS, &mut h.out);
    assert!(
        h.room.seats.get(PlayerId(1)).is_none(),
        "PlayerTTL freed it"
    );
    assert_eq!(
        vouched(&h),
        Some((30, sum, 0b0001)),
        "the departed still vouch; only player 0 holds the frame"
    );
}

#[test]
fn a_player_who_leaves_cannot_vote_again_from_another_seat() {
    let mut h = Harness::new(3, |c| c.start_window = Duration::ZERO);
    h.seat_all_and_play(3, 60);
    let sec = Duration::from_secs(1);
    let honest = tickstep_engine::Checksum::from(blake3::hash(b"tick 30"));
    let planted = tickstep_engine::Checksum::from(blake3::hash(b"planted"));
    // Seat 1 empties before reporting; the attacker in seat 2 reports its state,
    // leaves, and comes back as a new client, taking the lowest free seat.
    h.message(sec, 2, ClientMessage::Leave);
    h.update(sec, 3, (60, 60), 0, &[], vec![(30, planted)]);
    h.message(sec, 3, ClientMessage::Leave);
    h.hello(sec, 9, 9).unwrap();
    assert_eq!(h.room.seats.player_of(ConnId(9)), Some(PlayerId(1)));
    h.update(sec, 9, (60, 60), 0, &[], vec![(30, planted)]);
    h.update(sec, 1, (60, 60), 0, &[], vec![(30, honest)]);
    h.room
        .drive(Duration::from_millis(1100), LIVENESS, &mut h.out);
    // The attacker's report from seat 1 is judged but is no vote: one vote each way,
    // no majority, nothing vouched, and a tie names both holders, not the honest one
    // alone.
    assert!(!h.room.judge.vouches(30, planted), "one player, two votes");
    assert_eq!(h.room.judge.newest_vouched(), None);
    let named: Vec<Vec<PlayerId>> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RoomEvent::Desync { disagreeing, .. } => Some(disagreeing),
            _ => None,
        })
        .collect();
    assert_eq!(named, vec![vec![PlayerId(0), PlayerId(1)]]);
}

#[test]
fn a_player_who_never_reports_holds_back_no_vouched_tick() {
    let mut h = Harness::new(3, |c| c.start_window = Duration::ZERO);
    h.seat_all_and_play(3, 60);
    let sum = tickstep_engine::Checksum::from(blake3::hash(b"tick 30"));
    let now = h.room.config.due(Duration::ZERO, 60);
    // Players 0 and 1 agree on tick 30; player 2 plays on but never reports. Their two
    // votes are a majority of three whatever it says, so tick 30 is vouched now, not
    // after the 2 s grace (beyond a buddy's reach: joiners would all start from 0).
    for conn in 1..=2 {
        h.update(now, conn, (60, 60), 0, &[], vec![(30, sum)]);
    }
    // The next housekeeping (every 50 ms) decides.
    let housekeeping = now + Duration::from_millis(60);
    h.room.drive(housekeeping, LIVENESS, &mut h.out);
    assert_eq!(h.room.judge.newest_vouched(), Some((30, sum, 0b011)));
    // One vote each way is no majority yet: that waits for the third.
    let other = tickstep_engine::Checksum::from(blake3::hash(b"other"));
    h.update(housekeeping, 1, (60, 60), 0, &[], vec![(60, sum)]);
    h.update(housekeeping, 2, (60, 60), 0, &[], vec![(60, other)]);
    h.room.drive(
        housekeeping + Duration::from_millis(60),
        LIVENESS,
        &mut h.out,
    );
    assert_eq!(h.room.judge.newest_vouched(), Some((30, sum, 0b011)));
    assert!(
        h.events()
            .iter()
            .all(|e| !matches!(e, RoomEvent::Desync { .. }))
    );
}

#[test]
fn a_long_game_forgets_the_vouched_ticks_its_history_no_longer_covers() {
    // One second of history: 60 ticks.
    let last = 600;
    let mut h = Harness::new(2, |c| {
        c.history = Duration::from_secs(1);
        c.end_tick = Some(last);
    });
    for client in 1..=2 {
        h.hello(Duration::ZERO, client, client).unwrap();
    }
    let sum = |tick: Tick| tickstep_engine::Checksum::from(blake3::hash(&tick.to_le_bytes()));
    for tick in 1..=last {
        let now = h.room.config.due(Duration::ZERO, tick);
        for conn in 1..=2 {
            h.input(now, conn, tick, &[conn as u32]);
        }
        h.room.drive(now, LIVENESS, &mut h.out);
        if tick % 30 == 0 {
            for conn in 1..=2 {
                h.update(now, conn, (tick, tick), 0, &[], vec![(tick, sum(tick))]);
            }
        }
    }
    let end = h.room.config.due(Duration::ZERO, last);
    h.room
        .drive(end + Duration::from_millis(1100), LIVENESS, &mut h.out);
    let oldest = h.room.clock.oldest();
    assert!(oldest > 500, "the history moved on (oldest tick {oldest})");
    let judge = &h.room.judge;
    assert!(judge.vouches(last, sum(last)), "the newest stays vouched");
    assert!(
        judge.vouches(
            oldest.next_multiple_of(30),
            sum(oldest.next_multiple_of(30))
        ),
        "and so does the oldest report the history covers"
    );
    assert_eq!(oldest % 30, 1, "the tick before the history is a report's");
    assert!(
        judge.vouches(oldest - 1, sum(oldest - 1)),
        "a frame just before the history still catches up: kept"
    );
    for tick in (30..oldest - 1).step_by(30) {
        assert!(!judge.vouches(tick, sum(tick)), "tick {tick} was forgotten");
    }
}
