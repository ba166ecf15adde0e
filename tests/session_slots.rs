//! Slot keeping and the client's reconnection policy, end to end over the simulated
//! network in virtual time: rejoining the same slot (by itself, after an app restart,
//! after PlayerTTL), duplicate client ids, quits, cancels and kicks, and re-entering a
//! room nobody else is in.

mod common;

use std::time::Duration;
use tickstep_arena as arena;
use tickstep_engine::{PlayerId, Tick};
use tickstep_session::sim::LinkConfig;
use tickstep_session::{
    Client, ClientConfig, ClientEvent, ClientId, ClientState, DisconnectReason, Entry,
    ReconnectInfo, ReconnectPolicy, Refusal, RoomEvent, SessionError, SnapshotSource,
};

use common::{Net, ROOM};

/// Client `i`'s events from index `from` on (to look only at what followed a step).
fn events_since(net: &Net, i: usize, from: usize) -> Vec<ClientEvent> {
    common::events(net, i).split_off(from)
}

/// Server events from index `from` on.
fn server_events_since(net: &Net, from: usize) -> Vec<RoomEvent> {
    common::server_events(net).split_off(from)
}

/// The `Reconnecting` events among `events`.
fn reconnecting(events: &[ClientEvent]) -> Vec<&ClientEvent> {
    events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Reconnecting { .. }))
        .collect()
}

/// Runs until client `i`'s state satisfies `done`, giving up after `limit` of virtual time.
fn run_until_state(net: &mut Net, i: usize, limit: Duration, done: impl Fn(&ClientState) -> bool) {
    let until = net.now() + limit;
    net.run_while(until, |net| !done(&net.client(i).state()));
}

/// Cuts client `i`'s connection and takes its link down (both ends notice the reset).
fn drop_offline(net: &mut Net, i: usize) {
    net.cut(i);
    net.set_online(i, false);
}

/// A client of `game` with `config` (app version set to match the room) and `info`.
fn client_configured(
    game: &arena::ArenaConfig,
    config: ClientConfig,
    info: ReconnectInfo,
) -> Client<arena::ArenaGlobals, arena::ArenaInput> {
    let config = ClientConfig {
        app_version: common::APP.into(),
        ..config
    };
    Client::new(config, info, common::initial(game), arena::simulation())
}

/// Both clients finished the game at `end` with the frame the room's verified input
/// gives, so they agree with each other.
fn assert_both_ended_converged(net: &Net, game: &arena::ArenaConfig, end: Tick) {
    for i in 0..2 {
        assert_eq!(
            net.client(i).state(),
            ClientState::Disconnected(DisconnectReason::GameEnded),
            "client {i} events: {:?}",
            common::events(net, i)
        );
        assert_eq!(
            net.client(i).frame().tick(),
            end,
            "client {i} stopped at the end tick"
        );
    }
    assert_eq!(
        common::frame_checksum(net, 0),
        common::frame_checksum(net, 1)
    );
    let expected = common::resimulate(net, game, &[end]);
    assert_eq!(expected, vec![(end, common::frame_checksum(net, 0))]);
    assert_eq!(
        net.server.room_first_desync(ROOM),
        None,
        "no desync was found"
    );
}

/// A client cut off for a few seconds reconnects by itself into the same slot from its
/// local snapshot and finishes the game in agreement with its peer.
#[test]
fn rejoin_within_player_ttl_keeps_the_slot() {
    let game = common::game(2, 11);
    let end: Tick = 900;
    let mut room = common::room_config(&game);
    room.end_tick = Some(end);
    let mut net = common::started(&game, room);
    common::run_to_tick(&mut net, 360);
    assert_eq!(net.client(1).state(), ClientState::Running);
    assert_eq!(net.client(1).player(), Some(PlayerId(1)));
    let (seen, seen_server) = (net.client_events[1].len(), net.server_events.len());

    drop_offline(&mut net, 1);
    common::run_for(&mut net, Duration::from_secs(3));
    assert!(
        matches!(
            net.client(1).state(),
            ClientState::Reconnecting { .. } | ClientState::Connecting { .. }
        ),
        "still trying while offline: {:?}",
        net.client(1).state()
    );
    net.set_online(1, true);
    run_until_state(&mut net, 1, Duration::from_secs(10), |s| {
        *s == ClientState::Running
    });
    assert_eq!(net.client(1).state(), ClientState::Running);
    assert_eq!(net.client(1).player(), Some(PlayerId(1)), "the same slot");

    let after = events_since(&net, 1, seen);
    let tries = reconnecting(&after);
    assert!(!tries.is_empty(), "reconnected by itself: {after:?}");
    assert!(matches!(
        tries[0],
        ClientEvent::Reconnecting {
            attempt: 1,
            reason: SessionError::ConnectionLost(_),
            ..
        }
    ));
    let joined = after
        .iter()
        .position(|e| matches!(e, ClientEvent::Joined { .. }))
        .expect("joined again");
    assert!(
        after[..joined]
            .iter()
            .all(|e| matches!(e, ClientEvent::Reconnecting { .. }))
    );
    let ClientEvent::Joined {
        player,
        entry: Entry::LocalSnapshot { tick },
    } = after[joined]
    else {
        panic!("rejoined from the local snapshot: {:?}", after[joined]);
    };
    assert_eq!(player, PlayerId(1));
    let ClientEvent::Resynced {
        tick: resynced,
        source,
        bytes,
    } = after[joined + 1]
    else {
        panic!("resynced right after joining: {:?}", after[joined + 1]);
    };
    assert_eq!((resynced, source), (tick, SnapshotSource::Local));
    assert!(bytes > 0);
    assert!(
        after
            .iter()
            .any(|e| matches!(e, ClientEvent::CaughtUp { .. }))
    );
    let server = server_events_since(&net, seen_server);
    assert!(server.contains(&RoomEvent::PlayerJoined {
        player: PlayerId(1),
        rejoined: true,
        entry: Entry::LocalSnapshot { tick },
    }));
    assert!(
        !server
            .iter()
            .any(|e| matches!(e, RoomEvent::SlotFreed { .. }))
    );

    common::run_for(&mut net, Duration::from_secs(15));
    assert_both_ended_converged(&net, &game, end);
}

/// Past PlayerTTL the slot is freed: a rejoin is refused with `PlayerTtlExpired` (no
/// retry), and `join_as_new` then takes a slot again and converges.
#[test]
fn rejoin_after_player_ttl_is_refused_then_joins_as_new() {
    let game = common::game(2, 12);
    let end: Tick = 1200;
    let mut room = common::room_config(&game);
    room.end_tick = Some(end);
    room.player_ttl = Duration::from_secs(2);
    room.empty_room_ttl = Duration::from_secs(120);
    let mut net = common::network(&game, room);
    common::join(&mut net, &game, 0, LinkConfig::default());
    let quick = ClientConfig {
        reconnect: ReconnectPolicy {
            attempts: 2,
            ..ReconnectPolicy::default()
        },
        ..ClientConfig::default()
    };
    let i = net.add_client(
        client_configured(&game, quick, common::info(1)),
        LinkConfig::default(),
    );
    net.connect(i);
    common::run_to_tick(&mut net, 360);
    assert_eq!(net.client(1).state(), ClientState::Running);

    drop_offline(&mut net, 1);
    common::run_for(&mut net, Duration::from_secs(4));
    assert_eq!(
        net.client(1).state(),
        ClientState::Disconnected(DisconnectReason::Error(SessionError::ReconnectFailed(2))),
        "gave up after its two attempts: {:?}",
        common::events(&net, 1)
    );
    assert!(
        common::server_events(&net).contains(&RoomEvent::SlotFreed {
            player: PlayerId(1)
        }),
        "{:?}",
        common::server_events(&net)
    );
    assert_eq!(common::slots(&net)[1], None);

    net.set_online(1, true);
    let seen = net.client_events[1].len();
    let now = net.now();
    net.client_mut(1).connect(now);
    common::run_for(&mut net, Duration::from_secs(3));
    let refusal = DisconnectReason::Error(SessionError::Refused(Refusal::PlayerTtlExpired));
    assert_eq!(
        net.client(1).state(),
        ClientState::Disconnected(refusal.clone())
    );
    assert_eq!(
        events_since(&net, 1, seen),
        vec![ClientEvent::Disconnected { reason: refusal }],
        "refused without retrying"
    );
    assert_eq!(common::slots(&net)[1], None, "no slot taken");

    let seen = net.client_events[1].len();
    let now = net.now();
    net.client_mut(1).join_as_new(now);
    run_until_state(&mut net, 1, Duration::from_secs(10), |s| {
        *s == ClientState::Running
    });
    let after = events_since(&net, 1, seen);
    assert_eq!(
        after.first(),
        Some(&ClientEvent::Joined {
            player: PlayerId(1),
            entry: Entry::FromStart
        }),
        "player 0 alone vouches for no buddy snapshot: it replays the history"
    );
    assert!(
        after
            .iter()
            .any(|e| matches!(e, ClientEvent::CaughtUp { .. })),
        "{after:?}"
    );
    assert_eq!(net.client(1).state(), ClientState::Running);
    assert!(reconnecting(&after).is_empty());
    assert_eq!(common::slots(&net)[1], Some((ClientId::from_seed(1), true)));

    common::run_for(&mut net, Duration::from_secs(20));
    assert_both_ended_converged(&net, &game, end);
}

/// A new join with the client id of an active player, but not its resume token, is
/// refused with `ResumeRejected` (no retry) and leaves that player undisturbed.
#[test]
fn a_twin_without_the_resume_token_is_refused_while_the_first_is_active() {
    let game = common::game(3, 13);
    let mut room = common::room_config(&game);
    room.start_players = 2;
    let mut net = common::network(&game, room);
    common::join(&mut net, &game, 0, LinkConfig::default());
    common::join(&mut net, &game, 1, LinkConfig::default());
    common::run_to_tick(&mut net, 120);
    assert_eq!(net.client(0).state(), ClientState::Running);
    let (seen0, seen_server) = (net.client_events[0].len(), net.server_events.len());

    let twin = common::info(0);
    assert_eq!(twin.player, None, "a new join, not a rejoin");
    let twin = common::client_with(&game, twin, arena::simulation());
    let i = net.add_client(twin, LinkConfig::default());
    net.connect(i);
    assert_eq!(i, 2);
    common::run_for(&mut net, Duration::from_secs(5));
    let refusal = DisconnectReason::Error(SessionError::Refused(Refusal::ResumeRejected));
    assert_eq!(
        net.client(2).state(),
        ClientState::Disconnected(refusal.clone())
    );
    assert_eq!(
        common::events(&net, 2),
        vec![ClientEvent::Disconnected { reason: refusal }]
    );
    assert_eq!(net.client(2).player(), None);

    assert_eq!(net.client(0).state(), ClientState::Running);
    assert!(
        events_since(&net, 0, seen0).is_empty(),
        "{:?}",
        events_since(&net, 0, seen0)
    );
    assert_eq!(
        server_events_since(&net, seen_server),
        vec![],
        "the server saw nothing happen to its players"
    );
    assert_eq!(
        common::slots(&net),
        vec![
            Some((ClientId::from_seed(0), true)),
            Some((ClientId::from_seed(1), true)),
            None
        ]
    );
    let tick = net.client(0).frame().tick();
    assert!(tick >= 400, "player 0 kept playing: tick {tick}");
    assert_eq!(net.client(1).state(), ClientState::Running);
    assert_eq!(net.server.room_first_desync(ROOM), None);
}

/// An app restarted from saved reconnect info is refused while the server still sees
/// the old connection, retries by itself, and gets the same slot back once it times out.
#[test]
fn restart_from_saved_reconnect_info_rejoins_the_same_slot() {
    let game = common::game(2, 14);
    let end: Tick = 1800;
    let mut room = common::room_config(&game);
    room.end_tick = Some(end);
    let mut net = common::started(&game, room);
    common::run_to_tick(&mut net, 400);
    let saved = net.client(1).reconnect_info().to_bytes();
    let info = ReconnectInfo::from_bytes(&saved).expect("saved info reads back");
    assert_eq!(info.player, Some(PlayerId(1)));
    assert_eq!(info.client_id, ClientId::from_seed(1));
    assert!(
        info.local_snapshot.is_some(),
        "a running client keeps a snapshot"
    );
    let seen_server = net.server_events.len();

    let restarted = common::client_with(&game, info, arena::simulation());
    let old = net.replace_client(1, restarted);
    assert_eq!(old.state(), ClientState::Running);
    let seen = net.client_events[1].len();
    let replaced_at = net.now();
    net.connect(1);
    run_until_state(&mut net, 1, Duration::from_secs(20), |s| {
        *s == ClientState::Running
    });
    assert_eq!(
        net.client(1).state(),
        ClientState::Running,
        "{:?}",
        events_since(&net, 1, seen)
    );
    assert_eq!(net.client(1).player(), Some(PlayerId(1)));

    let after = events_since(&net, 1, seen);
    let tries = reconnecting(&after);
    assert!(tries.len() >= 2, "retried by itself: {after:?}");
    assert!(tries.iter().all(|e| matches!(
        e,
        ClientEvent::Reconnecting {
            reason: SessionError::Refused(Refusal::DuplicateClientId),
            ..
        }
    )));
    let joined = after
        .iter()
        .position(|e| matches!(e, ClientEvent::Joined { .. }))
        .expect("joined");
    assert!(
        after[..joined]
            .iter()
            .all(|e| matches!(e, ClientEvent::Reconnecting { .. }))
    );
    assert!(matches!(
        after[joined],
        ClientEvent::Joined {
            player: PlayerId(1),
            ..
        }
    ));
    assert!(
        after[joined..]
            .iter()
            .any(|e| matches!(e, ClientEvent::Resynced { .. }))
    );

    let server = server_events_since(&net, seen_server);
    let timed_out = net
        .server_events
        .iter()
        .skip(seen_server)
        .find(|(_, e)| {
            matches!(
                e.event,
                RoomEvent::PlayerLeft {
                    player: PlayerId(1),
                    ..
                }
            )
        })
        .expect("the old connection timed out");
    assert_eq!(
        timed_out.1.event,
        RoomEvent::PlayerLeft {
            player: PlayerId(1),
            reason: Some("timed out".into())
        }
    );
    assert!(
        timed_out.0 >= replaced_at + Duration::from_secs(9),
        "only after the peer timeout"
    );
    let joined_at = net.client_events[1][seen + joined].0;
    assert!(
        joined_at >= timed_out.0,
        "welcomed only after the old connection went"
    );
    assert!(server.iter().any(|e| matches!(
        e,
        RoomEvent::PlayerJoined {
            player: PlayerId(1),
            rejoined: true,
            ..
        }
    )));
    assert!(
        !server
            .iter()
            .any(|e| matches!(e, RoomEvent::SlotFreed { .. }))
    );

    common::run_for(&mut net, Duration::from_secs(20));
    assert_both_ended_converged(&net, &game, end);
}

/// A quit frees the slot and never reconnects; an unexpected loss reconnects until
/// cancelled; a kicked client does not reconnect.
#[test]
fn quit_does_not_reconnect_but_unexpected_loss_does_and_cancel_stops_it() {
    let game = common::game(4, 15);
    let mut net = common::started(&game, common::room_config(&game));
    common::run_to_tick(&mut net, 120);
    for i in 0..4 {
        assert_eq!(net.client(i).state(), ClientState::Running);
    }
    let seen: Vec<usize> = (0..4).map(|i| net.client_events[i].len()).collect();
    let seen_server = net.server_events.len();

    // Client 3 quits.
    let now = net.now();
    net.client_mut(3).leave(now);
    assert_eq!(
        net.client(3).state(),
        ClientState::Disconnected(DisconnectReason::Quit)
    );
    // Client 2 loses its connection unexpectedly and stays offline.
    drop_offline(&mut net, 2);
    // Client 1 is kicked.
    let now = net.now();
    net.server.kick(now, ROOM, PlayerId(1));
    common::run_for(&mut net, Duration::from_secs(4));

    assert_eq!(
        events_since(&net, 3, seen[3]),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::Quit
        }]
    );
    let kicked = DisconnectReason::Error(SessionError::Refused(Refusal::Kicked));
    assert_eq!(
        net.client(1).state(),
        ClientState::Disconnected(kicked.clone())
    );
    assert_eq!(
        events_since(&net, 1, seen[1]),
        vec![ClientEvent::Disconnected { reason: kicked }]
    );
    let server = server_events_since(&net, seen_server);
    assert!(server.contains(&RoomEvent::PlayerLeft {
        player: PlayerId(3),
        reason: None
    }));
    assert!(server.contains(&RoomEvent::PlayerLeft {
        player: PlayerId(1),
        reason: Some("kicked".into())
    }));
    let slots = common::slots(&net);
    assert_eq!(slots[3], None, "the quitter's slot is free at once");
    assert_eq!(slots[1], None, "the kicked player's slot is free");
    assert_eq!(
        slots[2],
        Some((ClientId::from_seed(2), false)),
        "kept for the lost player"
    );

    let lost = events_since(&net, 2, seen[2]);
    let tries = reconnecting(&lost);
    assert!(tries.len() >= 2, "the lost client keeps trying: {lost:?}");
    assert!(matches!(
        net.client(2).state(),
        ClientState::Reconnecting { .. } | ClientState::Connecting { .. }
    ));
    net.client_mut(2).cancel();
    assert_eq!(
        net.client(2).state(),
        ClientState::Disconnected(DisconnectReason::Cancelled)
    );
    let cancelled_at = net.client_events[2].len();
    net.set_online(2, true);
    common::run_for(&mut net, Duration::from_secs(10));

    assert_eq!(
        events_since(&net, 2, cancelled_at),
        vec![ClientEvent::Disconnected {
            reason: DisconnectReason::Cancelled
        }]
    );
    assert_eq!(
        net.client(2).state(),
        ClientState::Disconnected(DisconnectReason::Cancelled)
    );
    for i in [1, 3] {
        assert!(reconnecting(&events_since(&net, i, seen[i])).is_empty());
        assert!(matches!(
            net.client(i).state(),
            ClientState::Disconnected(_)
        ));
    }
    assert!(
        !server_events_since(&net, seen_server)
            .iter()
            .any(|e| matches!(e, RoomEvent::PlayerJoined { .. })),
        "nobody came back"
    );
    assert_eq!(net.client(0).state(), ClientState::Running);
    assert!(events_since(&net, 0, seen[0]).is_empty());
}

/// With both players gone, one returning after more than 10 s (but within
/// EmptyRoomTTL) re-enters from its own snapshot, and the room stays open.
#[test]
fn both_players_drop_and_one_returns_within_empty_room_ttl() {
    let game = common::game(2, 16);
    let mut room = common::room_config(&game);
    room.empty_room_ttl = Duration::from_secs(60);
    room.player_ttl = Duration::from_secs(60);
    let mut net = common::started(&game, room);
    common::run_to_tick(&mut net, 360);
    let seen = net.client_events[0].len();

    drop_offline(&mut net, 0);
    drop_offline(&mut net, 1);
    let dropped_tick = net.client(0).frame().tick();
    common::run_for(&mut net, Duration::from_secs(15));
    assert!(
        matches!(
            net.client(0).state(),
            ClientState::Reconnecting { .. } | ClientState::Connecting { .. }
        ),
        "{:?}",
        net.client(0).state()
    );
    assert_eq!(
        common::slots(&net),
        vec![
            Some((ClientId::from_seed(0), false)),
            Some((ClientId::from_seed(1), false))
        ]
    );
    net.set_online(0, true);
    run_until_state(&mut net, 0, Duration::from_secs(15), |s| {
        *s == ClientState::Running
    });
    assert_eq!(
        net.client(0).state(),
        ClientState::Running,
        "{:?}",
        events_since(&net, 0, seen)
    );

    let after = events_since(&net, 0, seen);
    let resynced = after
        .iter()
        .find_map(|e| match e {
            ClientEvent::Resynced { tick, source, .. } => Some((*tick, *source)),
            _ => None,
        })
        .expect("re-entered from a snapshot");
    assert_eq!(resynced.1, SnapshotSource::Local);
    // The last checksum tick (every 30) it kept a snapshot of before the drop.
    assert!(
        resynced.0 + 30 >= dropped_tick && resynced.0 <= dropped_tick,
        "{resynced:?}"
    );
    assert!(
        resynced.0.is_multiple_of(30),
        "a checksum tick the peers reported on"
    );
    let live = net.client(0).live();
    assert!(
        live > resynced.0 + 600,
        "the snapshot was over 10 s old ({} vs live {live})",
        resynced.0
    );
    assert!(
        after
            .iter()
            .any(|e| matches!(e, ClientEvent::CaughtUp { .. }))
    );

    common::run_for(&mut net, Duration::from_secs(2));
    assert_eq!(net.client(0).state(), ClientState::Running);
    let tick = net.client(0).frame().tick();
    assert!(
        tick + 2 >= net.server.room_tick(ROOM).expect("room"),
        "caught up"
    );
    assert_eq!(
        common::resimulate(&net, &game, &[tick]),
        vec![(tick, common::frame_checksum(&net, 0))]
    );
    assert!(
        !common::server_events(&net)
            .iter()
            .any(|e| matches!(e, RoomEvent::RoomClosed)),
        "the room stayed open"
    );
}

/// A 1v1 at tick 360 whose players both dropped; player 0's app comes back (its saved
/// info read back, without a local snapshot) while player 1 stays away, and plays for
/// 10 s. `history` shortens the room's input history. Returns the game, the network and
/// how many of player 0's events came before its return.
fn lone_returner_without_a_snapshot(
    history: Option<Duration>,
) -> (tickstep_arena::ArenaConfig, common::Net, usize) {
    let game = common::game(2, 17);
    let mut room = common::room_config(&game);
    room.empty_room_ttl = Duration::from_secs(60);
    room.player_ttl = Duration::from_secs(60);
    if let Some(history) = history {
        room.history = history;
    }
    let mut net = common::started(&game, room);
    common::run_to_tick(&mut net, 360);
    drop_offline(&mut net, 0);
    drop_offline(&mut net, 1);
    common::run_for(&mut net, Duration::from_secs(2));
    let mut info = net.client(0).reconnect_info();
    assert_eq!(info.player, Some(PlayerId(0)));
    info.local_snapshot = None;
    let info = ReconnectInfo::from_bytes(&info.to_bytes()).expect("saved info reads back");
    net.replace_client(0, common::client_with(&game, info, arena::simulation()));
    net.set_online(0, true);
    let seen = net.client_events[0].len();
    net.connect(0);
    common::run_for(&mut net, Duration::from_secs(10));
    (game, net, seen)
}

/// A restarted app without a local snapshot, back in a room whose other player is
/// gone, replays the room's own verified input from tick 0: it needs nobody's word.
#[test]
fn a_lone_returner_without_a_snapshot_replays_from_tick_0() {
    let (game, net, seen) = lone_returner_without_a_snapshot(None);

    assert_eq!(net.client(0).state(), ClientState::Running);
    let after = events_since(&net, 0, seen);
    assert_eq!(
        after.first(),
        Some(&ClientEvent::Joined {
            player: PlayerId(0),
            entry: Entry::FromStart
        })
    );
    let tick = net.client(0).frame().tick();
    assert!(tick > 360 + 5 * 60, "caught up past the drop: {tick}");
    assert_eq!(
        common::resimulate(&net, &game, &[tick]),
        vec![(tick, common::frame_checksum(&net, 0))],
        "on the room's own input"
    );
}

/// The same, once the history no longer reaches tick 0: nothing vouched is left to
/// rejoin on, and the refusal says so (no retry follows).
#[test]
fn no_vouched_state_means_no_vouched_snapshot() {
    let (_, net, seen) = lone_returner_without_a_snapshot(Some(Duration::from_secs(3)));

    let refusal = DisconnectReason::Error(SessionError::Refused(Refusal::NoVouchedSnapshot));
    assert_eq!(
        net.client(0).state(),
        ClientState::Disconnected(refusal.clone())
    );
    let after = events_since(&net, 0, seen);
    assert_eq!(
        after,
        vec![
            ClientEvent::Joined {
                player: PlayerId(0),
                entry: Entry::AwaitSnapshot
            },
            ClientEvent::WaitingForSnapshot,
            ClientEvent::Disconnected { reason: refusal },
        ]
    );
    assert!(
        !common::server_events(&net)
            .iter()
            .any(|e| matches!(e, RoomEvent::BuddyAsked { .. })),
        "no buddy was online to ask"
    );
    assert!(
        common::server_events(&net).contains(&RoomEvent::PlayerLeft {
            player: PlayerId(0),
            reason: Some("no snapshot".into())
        })
    );
    assert_eq!(
        common::slots(&net)[0],
        Some((ClientId::from_seed(0), false)),
        "the slot is still kept"
    );
}
