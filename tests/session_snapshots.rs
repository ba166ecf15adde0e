//! How (re)joiners enter a running game over the simulated network: from tick 0 inside
//! the start window, from their own local snapshot when fresh, from a buddy's snapshot
//! otherwise (another buddy when one leaves, a timeout when all stay silent, a forged
//! snapshot refused), and how a tampered client is named in a desync.

mod common;

use common::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaGlobals, ArenaInput};
use tickstep_engine::{Frame, PlayerId, TickInputs};
use tickstep_session::sim::LinkConfig;
use tickstep_session::{
    ClientEvent, ClientMessage, ClientState, DisconnectReason, Entry, Refusal, RoomEvent,
    SessionError, SnapshotSource,
};
use tickstep_snapshot::{Chunk, DEFAULT_CHUNK_SIZE, Reassembler};

const END: u64 = 900;

/// Every client ended the game at `END` on one checksum.
fn assert_converged(net: &Net) {
    assert_converged_at(net, END);
}

/// Every client ended the game at `end` on one checksum.
fn assert_converged_at(net: &Net, end: u64) {
    for i in 0..net.client_count() {
        let state = net.client(i).state().clone();
        assert_eq!(
            state,
            ClientState::Disconnected(DisconnectReason::GameEnded),
            "client {i}"
        );
        assert_eq!(net.client(i).frame().tick(), end, "client {i}");
        assert_eq!(
            frame_checksum(net, i),
            frame_checksum(net, 0),
            "client {i} differs"
        );
    }
}

fn resynced(net: &Net, i: usize) -> Vec<(u64, SnapshotSource)> {
    events(net, i)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Resynced { tick, source, .. } => Some((tick, source)),
            _ => None,
        })
        .collect()
}

fn buddies_asked(net: &Net) -> Vec<PlayerId> {
    server_events(net)
        .into_iter()
        .filter_map(|e| match e {
            RoomEvent::BuddyAsked { buddy, .. } => Some(buddy),
            _ => None,
        })
        .collect()
}

/// A room of `players` slots whose game starts with the first `starters`.
fn late_join_room(players: u8, starters: u8) -> (tickstep_arena::ArenaConfig, Net) {
    late_join_room_with(players, starters, |_| {})
}

/// The same, with the room's rules changed by `change`.
fn late_join_room_with(
    players: u8,
    starters: u8,
    change: impl FnOnce(&mut tickstep_session::RoomConfig),
) -> (tickstep_arena::ArenaConfig, Net) {
    let game = game(players, 11);
    let mut room = room_config(&game);
    room.start_players = starters;
    room.end_tick = Some(END);
    change(&mut room);
    let mut net = network(&game, room);
    for n in 0..starters as u64 {
        join(&mut net, &game, n, LinkConfig::default());
    }
    (game, net)
}

#[test]
fn late_join_inside_the_start_window_plays_from_tick_zero() {
    let (game, mut net) = late_join_room(3, 2);
    run_to_tick(&mut net, 120);
    let late = join(&mut net, &game, 2, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(20));
    let joined = events(&net, late);
    assert!(matches!(
        joined[0],
        ClientEvent::Joined {
            player: PlayerId(2),
            entry: Entry::FromStart
        }
    ));
    assert!(joined.contains(&ClientEvent::Started));
    assert!(resynced(&net, late).is_empty(), "no snapshot was needed");
    let caught_up = joined.iter().find_map(|e| match e {
        ClientEvent::CaughtUp { ticks } => Some(*ticks),
        _ => None,
    });
    assert!(
        caught_up.is_some_and(|t| t >= 120),
        "caught up from 0: {caught_up:?}"
    );
    assert!(buddies_asked(&net).is_empty());
    assert_converged(&net);
}

#[test]
fn late_join_after_the_start_window_enters_from_a_buddy_snapshot() {
    let (game, mut net) = late_join_room(3, 2);
    run_to_tick(&mut net, 400);
    let late = join(&mut net, &game, 2, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(20));
    let joined = events(&net, late);
    assert!(matches!(
        joined[0],
        ClientEvent::Joined {
            player: PlayerId(2),
            entry: Entry::AwaitSnapshot
        }
    ));
    assert!(joined.contains(&ClientEvent::WaitingForSnapshot));
    assert!(
        !joined.contains(&ClientEvent::Started),
        "Resynced replaces Started"
    );
    let entries = resynced(&net, late);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, SnapshotSource::Buddy);
    assert!(
        (390..=420).contains(&entries[0].0),
        "a recent checksum tick: {entries:?}"
    );
    assert_eq!(buddies_asked(&net).len(), 1);
    assert_converged(&net);
}

/// The end of games a player drops out of for a while.
const LONG_END: u64 = 1800;

/// Drops client 1 of `players` at tick 200 for `offline`, then lets it reconnect on
/// its own.
fn drop_and_return(players: u8, offline: Duration) -> Net {
    let game = game(players, 5);
    let mut room = room_config(&game);
    room.end_tick = Some(LONG_END);
    let mut net = started(&game, room);
    run_to_tick(&mut net, 200);
    net.cut(1);
    net.set_online(1, false);
    run_for(&mut net, offline);
    net.set_online(1, true);
    run_for(&mut net, Duration::from_secs(60));
    net
}

#[test]
fn a_fresh_local_snapshot_is_used_to_rejoin() {
    let net = drop_and_return(2, Duration::from_secs(3));
    let entries = resynced(&net, 1);
    assert_eq!(entries.len(), 1, "{:?}", events(&net, 1));
    assert_eq!(entries[0].1, SnapshotSource::Local);
    assert!(
        (170..=200).contains(&entries[0].0) && entries[0].0.is_multiple_of(30),
        "the last checksum tick before the drop, which the peers reported on: {entries:?}"
    );
    assert!(buddies_asked(&net).is_empty());
    assert_converged_at(&net, LONG_END);
}

#[test]
fn a_stale_local_snapshot_is_replaced_by_a_buddy_snapshot() {
    let net = drop_and_return(3, Duration::from_secs(14));
    let entries = resynced(&net, 1);
    assert_eq!(entries.len(), 1, "{:?}", events(&net, 1));
    assert_eq!(entries[0].1, SnapshotSource::Buddy);
    assert!(
        entries[0].0 > 200 + 600,
        "a snapshot from after the loss, vouched by players 0 and 2: {entries:?}"
    );
    assert_eq!(buddies_asked(&net).len(), 1);
    assert_converged_at(&net, LONG_END);
}

/// In a 1v1 the player still online cannot vouch alone: the returner rejoins on its
/// own stale snapshot, which both reported on, and catches up longer.
#[test]
fn a_lone_peer_cannot_vouch_so_a_stale_local_snapshot_is_used() {
    let net = drop_and_return(2, Duration::from_secs(14));
    let entries = resynced(&net, 1);
    assert_eq!(entries.len(), 1, "{:?}", events(&net, 1));
    assert_eq!(entries[0].1, SnapshotSource::Local);
    assert!(
        (170..=200).contains(&entries[0].0),
        "the last jointly reported tick: {entries:?}"
    );
    assert!(buddies_asked(&net).is_empty());
    assert_converged_at(&net, LONG_END);
}

/// The planting attack from issue 13: in a 1v1, player 1 never ran the game honestly
/// (it reports junk checksums, and would upload another game's snapshot). When the
/// honest player's app is killed and returns, player 1 alone vouches for nothing: it
/// is never asked to be a buddy, and the honest player ends on the honest state.
#[test]
fn a_lone_peer_cannot_plant_a_state_on_a_returning_player() {
    let game = game(2, 5);
    let mut room = room_config(&game);
    room.end_tick = Some(LONG_END);
    let mut net = started(&game, room);
    net.set_tamper(Box::new(|from, mut message| {
        if let ClientMessage::Update { checksums, .. } = &mut message
            && from == 1
        {
            for (tick, sum) in checksums.iter_mut() {
                *sum = blake3::hash(&tick.to_le_bytes()).into();
            }
        }
        vec![message]
    }));
    run_to_tick(&mut net, 400);
    net.cut(0);
    net.set_online(0, false);
    run_for(&mut net, Duration::from_secs(14));
    net.set_online(0, true);
    run_for(&mut net, Duration::from_secs(60));

    assert!(
        buddies_asked(&net).is_empty(),
        "the lone peer was never a buddy"
    );
    let joined: Vec<_> = events(&net, 0)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Joined { entry, .. } => Some(entry),
            _ => None,
        })
        .collect();
    assert_eq!(
        joined.last(),
        Some(&Entry::FromStart),
        "nothing was vouched: it replays the room's own input"
    );
    assert_eq!(net.client(0).frame().tick(), LONG_END);
    assert_eq!(
        resimulate(&net, &game, &[LONG_END]),
        vec![(LONG_END, frame_checksum(&net, 0))],
        "the honest state over the verified input"
    );
}

/// Drops every upload chunk client `from` sends.
fn silence_uploads(net: &mut Net, silent: Rc<RefCell<Vec<usize>>>) {
    net.set_tamper(Box::new(move |from, message| match message {
        ClientMessage::UploadChunk { .. } if silent.borrow().contains(&from) => vec![],
        message => vec![message],
    }));
}

#[test]
fn a_buddy_that_leaves_mid_transfer_is_replaced_by_another() {
    let (game, mut net) = late_join_room(4, 3);
    run_to_tick(&mut net, 400);
    silence_uploads(&mut net, Rc::new(RefCell::new(vec![0, 1, 2])));
    let late = join(&mut net, &game, 3, LinkConfig::default());
    let limit = net.now() + Duration::from_secs(5);
    net.run_while(limit, |net| buddies_asked(net).is_empty());
    let first = buddies_asked(&net)[0];
    // The first buddy goes away before its snapshot arrived; the others may now speak.
    silence_uploads(&mut net, Rc::new(RefCell::new(vec![])));
    net.cut(first.0 as usize);
    net.set_online(first.0 as usize, false);
    run_for(&mut net, Duration::from_secs(3));
    let asked = buddies_asked(&net);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_ne!(asked[1], first);
    assert_eq!(resynced(&net, late).len(), 1);
    assert_eq!(resynced(&net, late)[0].1, SnapshotSource::Buddy);
    run_for(&mut net, Duration::from_secs(30));
    assert_eq!(net.client(late).frame().tick(), END);
}

/// Silent buddies, and the history no longer reaching tick 0: the joiner has no way in.
#[test]
fn silent_buddies_end_in_snapshot_request_timed_out() {
    let (game, mut net) = late_join_room_with(3, 2, |room| {
        room.history = std::time::Duration::from_secs(4);
    });
    run_to_tick(&mut net, 400);
    silence_uploads(&mut net, Rc::new(RefCell::new(vec![0, 1])));
    let late = join(&mut net, &game, 2, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(40));
    let asked = buddies_asked(&net);
    assert_eq!(asked.len(), 2, "each buddy tried once: {asked:?}");
    assert_ne!(asked[0], asked[1]);
    let state = net.client(late).state().clone();
    let timed_out =
        DisconnectReason::Error(SessionError::Refused(Refusal::SnapshotRequestTimedOut));
    assert_eq!(state, ClientState::Disconnected(timed_out));
    assert!(
        !events(&net, late)
            .iter()
            .any(|e| matches!(e, ClientEvent::Reconnecting { .. })),
        "a refusal is not retried"
    );
}

/// Silent buddies while the history still reaches tick 0: once every buddy failed,
/// the room tells the waiting joiner to enter from tick 0 instead, and it plays on.
#[test]
fn when_every_buddy_fails_the_joiner_falls_back_to_tick_0() {
    let (game, mut net) = late_join_room(3, 2);
    run_to_tick(&mut net, 400);
    silence_uploads(&mut net, Rc::new(RefCell::new(vec![0, 1])));
    let late = join(&mut net, &game, 2, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(40));
    assert_eq!(buddies_asked(&net).len(), 2, "each buddy tried once");
    let joined = events(&net, late);
    assert!(
        joined.contains(&ClientEvent::WaitingForSnapshot),
        "it waited for a buddy first: {joined:?}"
    );
    assert!(
        joined.contains(&ClientEvent::Started),
        "then started from tick 0"
    );
    assert!(resynced(&net, late).is_empty(), "no snapshot was taken");
    assert_converged(&net);
}

/// Makes the first client that uploads a snapshot a forger: it collects its chunks
/// and, once all are in, sends a forged snapshot of the same tick instead: the state
/// changed and the header resealed, or (with `lie`) the header claiming the honest
/// checksum over the forged bytes.
fn forge_first_buddy_snapshot(net: &mut Net, lie: bool) {
    let pending: Rc<RefCell<Vec<Chunk>>> = Rc::default();
    let mut forger = None;
    net.set_tamper(Box::new(move |from, message| {
        let ClientMessage::UploadChunk { upload, chunk } = message else {
            return vec![message];
        };
        if *forger.get_or_insert(from) != from {
            return vec![ClientMessage::UploadChunk { upload, chunk }];
        }
        let mut held = pending.borrow_mut();
        held.push(chunk);
        if held.len() < held[0].count as usize {
            return vec![];
        }
        let mut whole = Reassembler::new(1 << 30);
        held.drain(..).for_each(|c| {
            whole.add(&c).expect("honest chunk");
        });
        let wire = whole.finish().expect("honest snapshot");
        // Snapshots travel compressed: the forger unpacks, edits and packs again.
        let mut honest = Vec::new();
        tickstep_snapshot::wire::decompress(&wire, 1 << 30, &mut honest).expect("decompresses");
        let mut frame: Frame<ArenaGlobals> =
            tickstep_snapshot::restore_new(&honest, arena::schema(), 1 << 20).expect("restores");
        frame.globals_mut().kills[0] += 1000;
        let mut forged = Vec::new();
        tickstep_snapshot::encode(&frame, &mut forged);
        if lie {
            forged[64..96].copy_from_slice(&honest[64..96]);
        }
        let mut packed = Vec::new();
        tickstep_snapshot::wire::compress(&forged, &mut packed);
        tickstep_snapshot::split(&packed, DEFAULT_CHUNK_SIZE)
            .map(|chunk| ClientMessage::UploadChunk { upload, chunk })
            .collect()
    }));
}

fn forged_buddy_snapshot_is_rejected(lie: bool) {
    let (game, mut net) = late_join_room(4, 3);
    run_to_tick(&mut net, 400);
    forge_first_buddy_snapshot(&mut net, lie);
    let late = join(&mut net, &game, 3, LinkConfig::default());
    run_for(&mut net, Duration::from_secs(30));
    let rejected: Vec<_> = server_events(&net)
        .into_iter()
        .filter_map(|e| match e {
            RoomEvent::BuddySnapshotRejected { buddy, .. } => Some(buddy),
            _ => None,
        })
        .collect();
    let asked = buddies_asked(&net);
    assert_eq!(rejected, vec![asked[0]], "the forger was refused");
    assert_eq!(asked.len(), 2, "then an honest buddy was asked: {asked:?}");
    assert_eq!(
        resynced(&net, late).len(),
        1,
        "entered once, from the honest snapshot"
    );
    assert_converged(&net);
}

#[test]
fn a_forged_buddy_snapshot_is_rejected() {
    forged_buddy_snapshot_is_rejected(false);
}

#[test]
fn a_forged_snapshot_claiming_the_honest_checksum_is_rejected() {
    forged_buddy_snapshot_is_rejected(true);
}

#[test]
fn a_tampered_client_is_named_in_a_desync_at_the_right_tick() {
    let game = game(3, 2);
    let mut room = room_config(&game);
    room.end_tick = Some(300);
    let mut net = network(&game, room);
    for n in 0..3u64 {
        let simulation = if n == 2 {
            arena::simulation().with_system(
                |frame: &mut Frame<ArenaGlobals>, _: &TickInputs<ArenaInput>| {
                    if frame.tick() == 100 {
                        frame.globals_mut().shots += 1;
                    }
                },
            )
        } else {
            arena::simulation()
        };
        let i = net.add_client(
            client_with(&game, info(n), simulation),
            LinkConfig::default(),
        );
        net.connect(i);
    }
    run_for(&mut net, Duration::from_secs(10));
    let desyncs: Vec<_> = server_events(&net)
        .into_iter()
        .filter_map(|e| match e {
            RoomEvent::Desync {
                tick, disagreeing, ..
            } => Some((tick, disagreeing)),
            _ => None,
        })
        .collect();
    // Checksums are reported every 30 ticks: tick 120 is the first after the change.
    assert_eq!(desyncs[0], (120, vec![PlayerId(2)]));
    assert_eq!(net.server.room_first_desync(ROOM), Some(120));
    for i in 0..3 {
        assert!(events(&net, i).contains(&ClientEvent::Desync {
            tick: 120,
            disagreeing: vec![PlayerId(2)]
        }));
    }
    let evidence: Vec<_> = server_events(&net)
        .into_iter()
        .filter_map(|e| match e {
            RoomEvent::Evidence {
                tick,
                player,
                snapshot,
                ..
            } => Some((tick, player, snapshot)),
            _ => None,
        })
        .collect();
    let witnesses: Vec<_> = evidence.iter().map(|(tick, p, _)| (*tick, *p)).collect();
    assert!(witnesses.contains(&(120, PlayerId(2))), "{witnesses:?}");
    assert_eq!(
        witnesses.len(),
        2,
        "the minority and one of the majority: {witnesses:?}"
    );
    let (good, bad) = (
        &evidence.iter().find(|e| e.1 != PlayerId(2)).unwrap().2,
        &evidence.iter().find(|e| e.1 == PlayerId(2)).unwrap().2,
    );
    let diff = tickstep_snapshot::diff(good, bad, &arena::schema(), 10).expect("diffable");
    assert!(diff.total > 0, "the evidence shows the difference");
}

/// A game whose systems fail at a tick: the client says so, stays poisoned and neither
/// reports nor steps past it, while the other player's client plays on.
#[test]
fn a_failing_system_stops_its_client_with_an_event_and_reports_nothing_past_it() {
    let game = small_game(2, 5);
    let mut net = network(&game, room_config(&game));
    let failing = arena::simulation().with_system(
        |frame: &mut Frame<ArenaGlobals>, _: &TickInputs<ArenaInput>| {
            if frame.tick() == 100 {
                return Err(tickstep_engine::SystemError::game("boom"));
            }
            Ok(())
        },
    );
    let healthy = join(&mut net, &game, 0, LinkConfig::default());
    let broken = net.add_client(client_with(&game, info(1), failing), LinkConfig::default());
    net.connect(broken);
    run_to_tick(&mut net, 200);
    run_for(&mut net, Duration::from_millis(500));
    let failed: Vec<_> = events(&net, broken)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::StepFailed { tick, error } => Some((tick, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 100);
    assert!(failed[0].1.contains("boom"), "{}", failed[0].1);
    assert!(net.client(broken).frame().is_poisoned());
    assert!(net.reported[broken].iter().all(|(tick, _)| *tick < 100));
    assert!(net.client(healthy).frame().tick() >= 200);
}
