//! Flags played offline, through a snapshot, under the sync test, and over a simulated
//! network with a drop and a rejoin.

use std::time::Duration;
use tickstep_engine::{Checksum, Game, OfflineRun, Tick, TickInputs, checksum};
use tickstep_session::sim::{LinkConfig, Play, SimNet};
use tickstep_session::{Client, ClientId, ReconnectInfo, RoomConfig, Server, ServerConfig};
use tickstep_snapshot::SyncTest;

use super::*;

const GAME: Flags = Flags { seed: 7 };
/// A minute at 60 Hz.
const MINUTE: Tick = 3600;

#[test]
fn the_example_runs_to_its_end() {
    super::main().unwrap();
}

fn offline_to(end: Tick) -> OfflineRun<Match, Steer> {
    let mut run = OfflineRun::for_game(&GAME, 2).expect("setup");
    run.run_to(end, bot).expect("a minute of play");
    run
}

#[test]
fn offline_the_bots_score_and_the_game_is_deterministic() {
    let frame = offline_to(MINUTE).into_frame();
    let [a, b] = frame.globals().scores;
    assert!(a + b >= 2, "bots chasing the banner score (got {a}:{b})");
    assert_eq!(checksum(&frame), checksum(offline_to(MINUTE).frame()));
}

#[test]
fn a_snapshot_mid_game_resumes_to_the_same_state() {
    let straight = checksum(offline_to(MINUTE).frame());
    let half = offline_to(MINUTE / 2);
    let mut bytes = Vec::new();
    tickstep_snapshot::encode(half.frame(), &mut bytes);
    let restored: Frame<Match> =
        tickstep_snapshot::restore_new(&bytes, GAME.schema(), 16).expect("restores");
    let mut resumed = OfflineRun::new(restored, GAME.simulation(), 2).expect("run");
    resumed.run_to(MINUTE, bot).expect("play on");
    assert_eq!(checksum(resumed.frame()), straight);
}

#[test]
fn the_sync_test_passes_a_whole_game() {
    let mut test = SyncTest::new(GAME, 2).expect("setup");
    test.run_to(MINUTE, bot)
        .expect("every tick is a pure function of the frame");
    assert_eq!(checksum(test.frame()), checksum(offline_to(MINUTE).frame()));
}

/// The verified input the room broadcast, replayed offline from tick 0 to `end`.
fn replay_room(net: &SimNet<Match, Steer>, end: Tick) -> Checksum {
    let log = net.server.room_inputs("main").expect("room");
    let mut frame = GAME.initial_frame().expect("frame");
    let mut simulation = GAME.simulation();
    let mut inputs = TickInputs::new(2).expect("inputs");
    while frame.tick() < end {
        log.read(frame.tick() + 1, &mut inputs).expect("held");
        simulation.step(&mut frame, &inputs).expect("step");
    }
    checksum(&frame)
}

#[test]
fn over_a_lossy_network_a_dropped_player_rejoins_and_every_peer_plays_what_was_sent() {
    let mut room = RoomConfig::for_game(2, &GAME).expect("room");
    room.end_tick = Some(MINUTE);
    let mut server = Server::new(ServerConfig::default());
    server.open_room("main", room).expect("opens");
    // Each bot steers by the frame its own client shows.
    let input = Box::new(|_, player, _, frame: &Frame<Match>| {
        Play::input(bot(player, frame).unwrap_or_default())
    });
    let mut net = SimNet::new(server, 1, input);
    // A real network: latency, jitter, 2% loss and duplicates on every message.
    let link = LinkConfig {
        latency: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        loss_percent: 2,
        duplicate_percent: 1,
    };
    for n in 0..2 {
        let info = ReconnectInfo::new("sim", "main", ClientId::from_seed(n));
        let i = net.add_client(Client::for_game(&GAME, info).expect("client"), link);
        net.connect(i);
    }
    // Twenty seconds in, player 1's link dies for three seconds; it rejoins by itself.
    net.run_until(Duration::from_secs(20));
    net.set_online(1, false);
    net.run_until(Duration::from_secs(23));
    net.set_online(1, true);
    net.run_while(Duration::from_secs(120), |net| {
        (0..2).any(|i| net.client(i).frame().tick() < MINUTE)
    });

    // Both peers hold the state of the room's verified input, replayed offline.
    let oracle = replay_room(&net, MINUTE);
    for i in 0..2 {
        assert_eq!(net.client(i).frame().tick(), MINUTE);
        assert_eq!(checksum(net.client(i).frame()), oracle, "client {i}");
    }
    // What player 0 (never dropped) sent is what was played, every tick.
    let log = net.server.room_inputs("main").expect("room");
    let mut inputs = TickInputs::new(2).expect("inputs");
    assert!(net.handed[0].len() as u64 >= MINUTE - 5);
    for &(tick, sent) in &net.handed[0] {
        log.read(tick, &mut inputs).expect("held");
        assert_eq!(inputs.get(PlayerId(0)), Some(&sent), "tick {tick}");
    }
    // Player 1 came back and played on: its input reached the room after the outage.
    let after = net.handed[1]
        .iter()
        .filter(|(tick, _)| *tick > 30 * 60)
        .count();
    assert!(
        after > 600,
        "player 1 played after rejoining ({after} ticks)"
    );
}
