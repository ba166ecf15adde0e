//! The session's central promises under random networks: latency (0-150 ms each way),
//! jitter (0-50 ms), loss (0-5 %) and duplication on every link, extra loss aimed at one
//! kind of message (the handshake, the snapshot chunks, the start...), 2 to 8 players
//! and drop/rejoin schedules:
//!
//! - every checksum any client reports equals re-simulating the verified input the
//!   server broadcast, and every client, dropped or not, ends the game on it;
//! - what a player handed its client is what was played: each input accepted once, in
//!   tick order, and every tick verified as its own carries exactly that input;
//! - with nothing lost, no input is filled and the game equals the offline run; with
//!   loss (even half the verified input lost), a connected player's own input is
//!   filled on at most 0.1 % of ticks, unless the loss is aimed at the updates that
//!   carry it;
//! - a watcher, on its own random link, joining at a random tick (in the lobby, in the
//!   start window or later, on a buddy's snapshot), ends the game on the verified
//!   input too, and no tick waits for it.

mod common;

use common::*;
use proptest::prelude::*;
use std::time::Duration;
use tickstep_arena::{ArenaInput, ArenaRun};
use tickstep_engine::{InputStatus, PlayerId, TickInputs, checksum};
use tickstep_session::sim::LinkConfig;
use tickstep_session::{ClientState, DisconnectReason, RoomEvent};

/// Long enough for the longest outage, a reconnection backoff and a catch-up to end
/// well before the game does.
const END: u64 = 1500;

/// Every kind of message, client's and server's, that loss can be aimed at.
const KINDS: [&str; 16] = [
    "Hello",
    "Update",
    "UploadChunk",
    "UploadUnavailable",
    "ResendChunks",
    "Leave",
    "Welcome",
    "Refused",
    "Start",
    "Verified",
    "SnapshotChunk",
    "UploadRequest",
    "ResendUpload",
    "Desync",
    "Heartbeat",
    "End",
];

#[derive(Clone, Debug)]
struct Outage {
    player: usize,
    at_tick: u64,
    offline_ms: u64,
}

#[derive(Clone, Debug)]
struct Scenario {
    players: u8,
    seed: u64,
    links: Vec<LinkConfig>,
    outages: Vec<Outage>,
    /// Extra loss on one kind of message.
    aimed: Option<(&'static str, u8)>,
    /// The room sends verified input every this many ticks.
    send_every: u32,
}

impl Scenario {
    fn lossy(&self) -> bool {
        self.aimed.is_some()
            || self
                .links
                .iter()
                .any(|l| l.loss_percent > 0 || l.duplicate_percent > 0)
    }
}

fn link() -> impl Strategy<Value = LinkConfig> {
    (0u64..=150, 0u64..=50, 0u8..=5, 0u8..10).prop_map(|(latency, jitter, loss, duplicate)| {
        LinkConfig {
            latency: Duration::from_millis(latency),
            jitter: Duration::from_millis(jitter),
            loss_percent: loss,
            duplicate_percent: duplicate,
        }
    })
}

fn outages(players: usize) -> impl Strategy<Value = Vec<Outage>> {
    // Back online by 17 s at the latest: a rejoin (backoff up to 4 s) and catch-up
    // finish before the game's end at 25 s, within PlayerTTL. One outage per player.
    prop::collection::vec(
        (0..players, 30u64..300, 200u64..12_000).prop_map(|(player, at_tick, offline_ms)| Outage {
            player,
            at_tick,
            offline_ms,
        }),
        0..3,
    )
    .prop_map(|mut outages| {
        outages.sort_by_key(|o| o.player);
        outages.dedup_by_key(|o| o.player);
        outages
    })
}

/// What happens to a player's link (or who joins), at a room tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Cut,
    Online,
    Watch,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2u8..=8, any::<u64>(), 1u32..=4).prop_flat_map(|(players, seed, send_every)| {
        let n = players as usize;
        let aimed = prop::option::of((0..KINDS.len(), 20u8..=60).prop_map(|(k, p)| (KINDS[k], p)));
        (prop::collection::vec(link(), n), outages(n), aimed).prop_map(
            move |(links, outages, aimed)| Scenario {
                players,
                seed,
                outages,
                links,
                aimed,
                send_every,
            },
        )
    })
}

/// A watcher: its link, and the room tick it joins at (0: with the players).
#[derive(Clone, Debug)]
struct Watcher {
    link: LinkConfig,
    at_tick: u64,
}

fn watcher() -> impl Strategy<Value = Watcher> {
    (link(), prop_oneof![Just(0u64), 1u64..900])
        .prop_map(|(link, at_tick)| Watcher { link, at_tick })
}

/// Plays `scenario` (with `watcher`, whose client is the last) to its end and two
/// minutes past it.
fn play(scenario: &Scenario, watcher: Option<&Watcher>) -> (tickstep_arena::ArenaConfig, Net) {
    let game = small_game(scenario.players, scenario.seed);
    let mut room = room_config(&game);
    room.end_tick = Some(END);
    room.send_every = scenario.send_every;
    let mut net = network(&game, room);
    if let Some((kind, percent)) = scenario.aimed {
        net.set_kind_loss(kind, percent);
    }
    let watch = |net: &mut Net, watcher: &Watcher| {
        let config = tickstep_session::ClientConfig {
            watch: true,
            ..client_config()
        };
        let initial = initial(&game);
        let client =
            tickstep_session::Client::new(config, info(99), initial, tickstep_arena::simulation());
        let i = net.add_client(client, watcher.link);
        net.connect(i);
    };
    for (n, link) in scenario.links.iter().enumerate() {
        join(&mut net, &game, n as u64, *link);
    }
    // At tick 0 the watcher comes with the players (after them: players keep the
    // first client indices).
    if let Some(watcher) = watcher.filter(|w| w.at_tick == 0) {
        watch(&mut net, watcher);
    }
    // Outages name slots (with jitter, joining order is not slot order) and may
    // overlap: every cut and return in room-tick order; the watcher joins among them.
    let mut steps: Vec<(u64, Step, usize)> = scenario
        .outages
        .iter()
        .flat_map(|o| {
            let back = o.at_tick + o.offline_ms * 60 / 1000;
            [
                (o.at_tick, Step::Cut, o.player),
                (back, Step::Online, o.player),
            ]
        })
        .collect();
    if let Some(watcher) = watcher.filter(|w| w.at_tick > 0) {
        steps.push((watcher.at_tick, Step::Watch, 0));
    }
    steps.sort();
    run_to_tick(&mut net, 1);
    for (tick, step, player) in steps {
        run_to_tick(&mut net, tick);
        let i = client_of(&net, player);
        match step {
            Step::Cut => {
                net.cut(i);
                net.set_online(i, false);
            }
            Step::Online => {
                net.set_online(i, true);
                if net.client(i).state().is_disconnected() {
                    let now = net.now();
                    net.client_mut(i).connect(now);
                }
            }
            Step::Watch => watch(&mut net, watcher.expect("a watcher")),
        }
    }
    run_for(&mut net, Duration::from_secs(120));
    (game, net)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_client_plays_what_was_sent_and_ends_on_the_verified_input(scenario in scenario()) {
        let (game, net) = play(&scenario, None);
        let desyncs = server_events(&net).into_iter().filter(|e| matches!(e, RoomEvent::Desync { .. })).count();
        prop_assert_eq!(desyncs, 0);
        prop_assert_eq!(net.undecodable, 0);
        let truth = resimulate(&net, &game, &[END])[0].1;
        let newest = net.server.room_tick(ROOM).unwrap_or(0);
        let log = net.server.room_inputs(ROOM).expect("room");
        let mut verified = TickInputs::<ArenaInput>::new(game.players as usize).expect("inputs");
        for i in 0..net.client_count() {
            let client = net.client(i);
            let reported: Vec<_> = net.reported[i].iter().filter(|(t, _)| *t <= newest).copied().collect();
            let ticks: Vec<u64> = reported.iter().map(|(t, _)| *t).collect();
            prop_assert_eq!(&resimulate(&net, &game, &ticks), &reported, "client {}", i);
            prop_assert_eq!(client.state(), ClientState::Disconnected(DisconnectReason::GameEnded), "client {}", i);
            prop_assert_eq!(client.frame().tick(), END);
            prop_assert_eq!(checksum(client.frame()), truth, "client {}", i);

            let player = client.player().expect("seated");
            let handed = &net.handed[i];
            prop_assert!(handed.windows(2).all(|w| w[0].0 < w[1].0), "client {}: an input handed twice", i);
            for &(tick, input) in handed {
                if log.read(tick, &mut verified).is_ok() && verified.status(player) == InputStatus::Own {
                    prop_assert_eq!(verified.get(player), Some(&input), "client {} tick {}", i, tick);
                }
            }
            // Loss aimed at updates, which carry the input, is the one loss that may.
            let input_lossy = scenario.aimed.is_some_and(|(kind, _)| kind == "Update");
            if scenario.outages.is_empty() && !input_lossy {
                let filled = client.stats().own_input_replaced;
                prop_assert!(filled * 1000 <= END, "client {}: own input filled on {} ticks", i, filled);
            }
        }
        if !scenario.lossy() && scenario.outages.is_empty() {
            prop_assert_eq!(net.server.room_stats(ROOM).map(|s| s.filled_ticks), Some(0));
            let mut offline = ArenaRun::new(&game).expect("arena");
            offline.run_to(END, |_| {}).expect("steps");
            prop_assert_eq!(truth, checksum(offline.frame()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_watcher_ends_on_the_verified_input_and_holds_no_tick_up(
        scenario in scenario(),
        watcher in watcher(),
    ) {
        let (game, net) = play(&scenario, Some(&watcher));
        let truth = resimulate(&net, &game, &[END])[0].1;
        let i = net.client_count() - 1;
        let client = net.client(i);
        prop_assert!(client.is_watching() && client.player().is_none());
        prop_assert_eq!(client.state(), ClientState::Disconnected(DisconnectReason::GameEnded));
        prop_assert_eq!(client.frame().tick(), END);
        prop_assert_eq!(checksum(client.frame()), truth);
        prop_assert!(net.reported[i].is_empty(), "a watcher reports no checksum");
        for p in 0..i {
            let player = net.client(p);
            prop_assert_eq!(checksum(player.frame()), truth, "client {}", p);
        }
        // Ticks wait only for players: with nothing lost, none is filled.
        if !scenario.lossy() && scenario.outages.is_empty() {
            prop_assert_eq!(net.server.room_stats(ROOM).map(|s| s.filled_ticks), Some(0));
        }
    }
}

/// The client holding slot `player` (or the `player`th client before any is seated).
fn client_of(net: &Net, player: usize) -> usize {
    (0..net.client_count())
        .find(|&i| net.client(i).player() == Some(PlayerId(player as u8)))
        .unwrap_or(player)
}

/// Loss aimed at each kind of message in turn — half of every welcome, hello, snapshot
/// chunk, start... lost — while a player drops long enough to need a buddy's snapshot:
/// every player still ends the game on the verified input. (A rejoiner whose welcome
/// was lost once re-entered from a local snapshot it did not have and never came back.)
#[test]
fn rejoins_survive_loss_aimed_at_every_kind_of_message() {
    const END: u64 = 1200;
    for (k, kind) in KINDS.iter().enumerate() {
        let game = small_game(3, 40 + k as u64);
        let mut room = room_config(&game);
        room.end_tick = Some(END);
        let mut net = network(&game, room);
        net.set_kind_loss(kind, 50);
        let link = LinkConfig {
            latency: Duration::from_millis(30),
            jitter: Duration::from_millis(10),
            loss_percent: 2,
            duplicate_percent: 2,
        };
        for n in 0..3 {
            join(&mut net, &game, n, link);
        }
        run_to_tick(&mut net, 120);
        let i = client_of(&net, 1);
        net.cut(i);
        net.set_online(i, false);
        // Past the 10 s a local snapshot is good for: the room must ask a buddy.
        run_for(&mut net, Duration::from_secs(11));
        net.set_online(i, true);
        run_for(&mut net, Duration::from_secs(60));
        let truth = resimulate(&net, &game, &[END])[0].1;
        for c in 0..3 {
            let client = net.client(c);
            assert_eq!(
                client.state(),
                ClientState::Disconnected(DisconnectReason::GameEnded),
                "{kind} lost: client {c}"
            );
            assert_eq!(checksum(client.frame()), truth, "{kind} lost: client {c}");
        }
    }
}

/// Regression: with 56 % of verified input lost on links up to 129 ± 50 ms, the two far
/// players had 285 to 772 of 1,500 ticks of their input filled. Their input is
/// confirmed by the verified input they receive; while it stalled their unconfirmed
/// input reached its cap and the client stopped asking for more. Input whose tick is
/// final is no longer kept for resending, so the stall costs nothing.
#[test]
fn half_the_verified_input_lost_still_plays_every_players_input() {
    const END: u64 = 1500;
    let links = [
        (24, 13, 4, 6),
        (66, 29, 5, 1),
        (129, 50, 1, 7),
        (12, 32, 5, 1),
        (129, 36, 2, 2),
    ];
    let game = small_game(5, 13502197377327629621);
    let mut room = room_config(&game);
    room.end_tick = Some(END);
    let mut net = network(&game, room);
    net.set_kind_loss("Verified", 56);
    for (n, (latency, jitter, loss_percent, duplicate_percent)) in links.into_iter().enumerate() {
        let link = LinkConfig {
            latency: Duration::from_millis(latency),
            jitter: Duration::from_millis(jitter),
            loss_percent,
            duplicate_percent,
        };
        join(&mut net, &game, n as u64, link);
    }
    run_for(&mut net, Duration::from_secs(60));
    let truth = resimulate(&net, &game, &[END])[0].1;
    for i in 0..links.len() {
        let client = net.client(i);
        assert_eq!(
            client.state(),
            ClientState::Disconnected(DisconnectReason::GameEnded),
            "client {i}"
        );
        assert_eq!(checksum(client.frame()), truth, "client {i}");
        let filled = client.stats().own_input_replaced;
        assert!(
            filled * 1000 <= END,
            "client {i}: own input filled on {filled} ticks"
        );
    }
}

/// Regression (a case the watcher property found): with half the verified input lost,
/// a player on a 129 ms link was still taking the last ticks 20 s after the end when a
/// rule closing every ended room EmptyRoomTTL after its end cut it off, one tick short.
/// A member still catching up is kept; only one that holds nothing new is let go.
#[test]
fn a_player_still_catching_up_after_the_end_is_not_cut_off() {
    let l = |latency: u64, jitter: u64, loss_percent: u8, duplicate_percent: u8| LinkConfig {
        latency: Duration::from_millis(latency),
        jitter: Duration::from_millis(jitter),
        loss_percent,
        duplicate_percent,
    };
    let scenario = Scenario {
        players: 5,
        seed: 13502197377327629621,
        links: vec![
            l(23, 15, 4, 6),
            l(66, 29, 5, 1),
            l(129, 50, 1, 7),
            l(12, 32, 5, 1),
            l(129, 36, 2, 2),
        ],
        outages: vec![Outage {
            player: 0,
            at_tick: 145,
            offline_ms: 6942,
        }],
        aimed: Some(("Verified", 56)),
        send_every: 1,
    };
    let watcher = Watcher {
        link: l(68, 4, 5, 5),
        at_tick: 426,
    };
    let (game, net) = play(&scenario, Some(&watcher));
    let truth = resimulate(&net, &game, &[END])[0].1;
    for p in 0..net.client_count() {
        assert_eq!(checksum(net.client(p).frame()), truth, "client {p}");
    }
}
