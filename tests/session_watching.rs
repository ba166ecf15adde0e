//! Watchers over the simulated network: connections that follow a room's game without
//! a seat. They enter as a joining player would (from the lobby, or mid-game on a
//! buddy's snapshot), end on the game the room verified, come back after a cut, never
//! hold a tick up, and are limited per room.

mod common;

use common::*;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaConfig};
use tickstep_session::sim::LinkConfig;
use tickstep_session::{
    Client, ClientConfig, ClientEvent, ClientState, DisconnectReason, Entry, Refusal, SessionError,
    SnapshotSource,
};

const END: u64 = 900;

/// Adds and connects a watcher, client number `n`, on `link`; returns its index.
fn watch(net: &mut Net, game: &ArenaConfig, n: u64, link: LinkConfig) -> usize {
    let config = ClientConfig {
        watch: true,
        ..client_config()
    };
    let client = Client::new(config, info(n), initial(game), arena::simulation());
    let i = net.add_client(client, link);
    net.connect(i);
    i
}

/// A two-player game ending at `END` (the players join on default links).
fn room(change: impl FnOnce(&mut tickstep_session::RoomConfig)) -> (ArenaConfig, Net) {
    let game = game(2, 21);
    let mut room = room_config(&game);
    room.end_tick = Some(END);
    change(&mut room);
    (game, network(&game, room))
}

/// Client `i` ended the game at `END` on the checksum of the room's verified input.
fn assert_ended_on_the_verified_game(net: &Net, game: &ArenaConfig, i: usize) {
    assert_eq!(
        net.client(i).state(),
        ClientState::Disconnected(DisconnectReason::GameEnded),
        "client {i}"
    );
    assert_eq!(net.client(i).frame().tick(), END, "client {i}");
    let verified = resimulate(net, game, &[END])[0].1;
    assert_eq!(frame_checksum(net, i), verified, "client {i}");
}

#[test]
fn a_watcher_from_the_lobby_sees_the_whole_game_and_holds_no_tick_up() {
    let (game, mut net) = room(|_| {});
    // A far, jittery, lossy watcher: were ticks to wait for it, the players' input
    // would be filled.
    let far = LinkConfig {
        latency: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        loss_percent: 5,
        duplicate_percent: 2,
    };
    let watcher = watch(&mut net, &game, 9, far);
    run_for(&mut net, Duration::from_secs(1));
    let players = [0, 1].map(|n| join(&mut net, &game, n, LinkConfig::default()));
    run_for(&mut net, Duration::from_secs(40));
    assert_eq!(
        events(&net, watcher)[0],
        ClientEvent::Watching {
            entry: Entry::Lobby
        }
    );
    assert_eq!(net.client(watcher).player(), None);
    for i in players.into_iter().chain([watcher]) {
        assert_ended_on_the_verified_game(&net, &game, i);
    }
    let stats = net.server.stats();
    assert_eq!(stats.filled_ticks, 0, "no tick waited for the watcher");
    assert_eq!((stats.watches, stats.joins), (1, 2));
    for i in players {
        assert_eq!(net.client(i).stats().own_input_replaced, 0, "player {i}");
    }
}

#[test]
fn a_watcher_mid_game_enters_on_a_buddy_snapshot_over_a_lossy_link() {
    let (game, mut net) = room(|_| {});
    for n in 0..2 {
        join(&mut net, &game, n, LinkConfig::default());
    }
    run_to_tick(&mut net, 400);
    let lossy = LinkConfig {
        latency: Duration::from_millis(80),
        jitter: Duration::from_millis(30),
        loss_percent: 10,
        duplicate_percent: 0,
    };
    let watcher = watch(&mut net, &game, 9, lossy);
    run_for(&mut net, Duration::from_secs(40));
    let seen = events(&net, watcher);
    assert_eq!(
        seen[0],
        ClientEvent::Watching {
            entry: Entry::AwaitSnapshot
        }
    );
    let resynced: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Resynced { tick, source, .. } => Some((*tick, *source)),
            _ => None,
        })
        .collect();
    assert_eq!(resynced.len(), 1, "{seen:?}");
    assert_eq!(resynced[0].1, SnapshotSource::Buddy);
    assert!((390..=420).contains(&resynced[0].0), "{resynced:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, ClientEvent::CaughtUp { .. }))
    );
    assert_ended_on_the_verified_game(&net, &game, watcher);
    assert_eq!(net.server.stats().filled_ticks, 0);
}

#[test]
fn a_watcher_cut_mid_game_comes_back_to_watch() {
    let (game, mut net) = room(|_| {});
    for n in 0..2 {
        join(&mut net, &game, n, LinkConfig::default());
    }
    let watcher = watch(&mut net, &game, 9, LinkConfig::default());
    run_to_tick(&mut net, 300);
    net.cut(watcher);
    net.set_online(watcher, false);
    run_for(&mut net, Duration::from_secs(3));
    net.set_online(watcher, true);
    run_for(&mut net, Duration::from_secs(40));
    let seen = events(&net, watcher);
    let watched = seen
        .iter()
        .filter(|e| matches!(e, ClientEvent::Watching { .. }))
        .count();
    assert_eq!(watched, 2, "{seen:?}");
    assert!(
        slots(&net)
            .iter()
            .flatten()
            .all(|(id, _)| *id != info(9).client_id)
    );
    assert_ended_on_the_verified_game(&net, &game, watcher);
}

#[test]
fn watchers_past_the_rooms_limit_are_refused_by_name() {
    let (game, mut net) = room(|room| room.max_watchers = 1);
    let first = watch(&mut net, &game, 8, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(1));
    let second = watch(&mut net, &game, 9, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(1));
    assert_eq!(net.client(first).state(), ClientState::Lobby);
    assert_eq!(
        net.client(second).state(),
        ClientState::Disconnected(DisconnectReason::Error(SessionError::Refused(
            Refusal::TooManyWatchers
        )))
    );
}

/// Six watchers arriving at once mid-game: the room hands snapshots to watchers four
/// at a burst, then one a second; every one of them enters and ends on the game.
#[test]
fn a_crowd_of_watchers_enters_within_the_snapshot_budget() {
    let (game, mut net) = room(|_| {});
    for n in 0..2 {
        join(&mut net, &game, n, LinkConfig::default());
    }
    run_to_tick(&mut net, 400);
    let crowd: Vec<usize> = (10..16)
        .map(|n| watch(&mut net, &game, n, LinkConfig::default()))
        .collect();
    run_for(&mut net, Duration::from_secs(40));
    let mut entered: Vec<Duration> = crowd
        .iter()
        .map(|&i| {
            net.client_events[i]
                .iter()
                .find_map(|(at, e)| matches!(e, ClientEvent::Resynced { .. }).then_some(*at))
                .unwrap_or_else(|| panic!("watcher {i} entered: {:?}", events(&net, i)))
        })
        .collect();
    entered.sort();
    assert!(
        entered[4] >= entered[0] + Duration::from_millis(900),
        "the fifth waited for the budget: {entered:?}"
    );
    assert!(
        entered[5] <= entered[0] + Duration::from_secs(3),
        "then one a second: {entered:?}"
    );
    for i in crowd {
        assert_ended_on_the_verified_game(&net, &game, i);
    }
}
