//! The session's central promise under random network conditions and drop/rejoin
//! schedules: every checksum any client reports equals re-simulating the verified
//! input the server broadcast, every client that stays connected ends the game on the
//! re-simulated final state, and when no input had to be filled in that state is the
//! offline run's.

mod common;

use common::*;
use proptest::prelude::*;
use std::time::Duration;
use tickstep_arena::ArenaRun;
use tickstep_engine::checksum;
use tickstep_session::sim::LinkConfig;
use tickstep_session::{ClientState, DisconnectReason, RoomEvent};

const END: u64 = 360;

#[derive(Clone, Debug)]
struct Outage {
    player: usize,
    at_tick: u64,
    offline_ms: u64,
}

fn link() -> impl Strategy<Value = LinkConfig> {
    (0u64..80, 0u64..40, 0u8..12, 0u8..10).prop_map(|(latency, jitter, loss, duplicate)| {
        LinkConfig {
            latency: Duration::from_millis(latency),
            jitter: Duration::from_millis(jitter),
            loss_percent: loss,
            duplicate_percent: duplicate,
        }
    })
}

fn outages(players: usize) -> impl Strategy<Value = Vec<Outage>> {
    prop::collection::vec(
        (0..players, 30u64..END - 60, 200u64..12_000).prop_map(|(player, at_tick, offline_ms)| {
            Outage {
                player,
                at_tick,
                offline_ms,
            }
        }),
        0..3,
    )
}

fn scenario() -> impl Strategy<Value = (u8, u64, Vec<LinkConfig>, Vec<Outage>)> {
    (2u8..=3, any::<u64>()).prop_flat_map(|(players, seed)| {
        let n = players as usize;
        (
            Just(players),
            Just(seed),
            prop::collection::vec(link(), n),
            outages(n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_client_agrees_with_the_verified_input((players, seed, links, mut outages) in scenario()) {
        let game = game(players, seed);
        let mut room = room_config(&game);
        room.end_tick = Some(END);
        let mut net = network(&game, room);
        for (n, link) in links.iter().enumerate() {
            join(&mut net, &game, n as u64, *link);
        }
        outages.sort_by_key(|o| o.at_tick);
        for outage in &outages {
            run_to_tick(&mut net, outage.at_tick);
            net.cut(outage.player);
            net.set_online(outage.player, false);
            run_for(&mut net, Duration::from_millis(outage.offline_ms));
            net.set_online(outage.player, true);
            if matches!(net.client(outage.player).state(), ClientState::Disconnected(_)) {
                let now = net.now();
                net.client_mut(outage.player).connect(now);
            }
        }
        run_for(&mut net, Duration::from_secs(120));

        let desyncs = server_events(&net).into_iter().filter(|e| matches!(e, RoomEvent::Desync { .. })).count();
        prop_assert_eq!(desyncs, 0);
        prop_assert_eq!(net.undecodable, 0);
        let newest = net.server.room_tick(ROOM).unwrap_or(0);
        for i in 0..net.client_count() {
            let reported: Vec<_> = net.reported[i].iter().filter(|(t, _)| *t <= newest).copied().collect();
            let ticks: Vec<u64> = reported.iter().map(|(t, _)| *t).collect();
            prop_assert_eq!(&resimulate(&net, &game, &ticks), &reported, "client {}", i);
            let dropped = outages.iter().any(|o| o.player == i);
            let ended = net.client(i).state() == ClientState::Disconnected(DisconnectReason::GameEnded);
            prop_assert!(ended || dropped, "client {} never dropped but ended {:?}", i, net.client(i).state());
            if ended {
                let truth = resimulate(&net, &game, &[END]);
                prop_assert_eq!(net.client(i).frame().tick(), END);
                prop_assert_eq!(checksum(net.client(i).frame()), truth[0].1);
            }
        }
        if net.server.room_stats(ROOM).is_some_and(|s| s.filled_ticks == 0) {
            let mut offline = ArenaRun::new(&game).expect("arena");
            offline.run_to(END, |_| {}).expect("steps");
            prop_assert_eq!(resimulate(&net, &game, &[END])[0].1, checksum(&offline.frame));
        }
    }
}
