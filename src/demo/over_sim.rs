//! The demo over the deterministic simulated network: the whole run happens in virtual
//! time, so it is reproducible from its seed and takes only as long as simulating.

use std::io::Write;
use tickstep_engine::{PlayerId, Tick};

use super::recorder::Recorder;
use super::report::{ClientRecord, DemoReport, RunRecord, TimelineEntry};
use super::{Action, DEMO_ROOM, DemoOptions, Schedule, demo_client, demo_client_id, demo_room};
use tickstep_arena::{self as arena, ArenaGlobals, ArenaInput};
use tickstep_session::sim::{Play, SimNet};
use tickstep_session::{ClientState, ReconnectInfo, Server, ServerConfig};

type Net = SimNet<ArenaGlobals, ArenaInput>;

/// Runs the demo over the simulated network; `progress` is called with the room's
/// tick as it advances. With `record`, the verified input the server broadcast is
/// written there as a replay file.
pub fn run_over_sim(
    options: &DemoOptions,
    record: Option<&mut dyn Write>,
    mut progress: impl FnMut(Tick),
) -> Result<DemoReport, String> {
    options.validate()?;
    let (initial, room) = demo_room(options)?;
    let mut server = Server::<ArenaInput>::new(ServerConfig::default());
    server
        .open_room(DEMO_ROOM, room)
        .map_err(|e| e.to_string())?;
    let seed = options.game.seed;
    let bots = Box::new(move |_, player, tick, _: &_| Play {
        input: arena::bot_input(seed, tick, player),
        command: arena::bot_command(seed, tick, player).map(|c| bytemuck::bytes_of(&c).to_vec()),
    });
    let mut net = SimNet::new(server, seed, bots);
    for p in 0..options.game.players {
        let info = ReconnectInfo::new("sim", DEMO_ROOM, demo_client_id(options, p));
        let i = net.add_client(demo_client(&initial, info), options.link);
        net.connect(i);
    }
    let mut recorder = record
        .map(|out| Recorder::new(out, options, &initial))
        .transpose()?;
    let mut schedule = Schedule::new(options);
    let mut timeline = Vec::new();
    let limit = options.time_limit();
    let room_tick = |net: &Net| net.server.room_tick(DEMO_ROOM).unwrap_or(0);
    let finished = |net: &Net| {
        (0..net.client_count())
            .all(|i| matches!(net.client(i).state(), ClientState::Disconnected(_)))
    };
    let mut shown = 0;
    loop {
        let next_action = schedule.next_tick();
        net.run_while(limit, |net| {
            let tick = room_tick(net);
            !finished(net) && next_action.is_none_or(|at| tick < at) && tick < shown + 60
        });
        let tick = room_tick(&net);
        if tick > shown {
            shown = tick;
            progress(tick);
        }
        if let Some(recorder) = recorder.as_mut() {
            recorder.catch_up(&net.server)?;
        }
        for (player, action) in schedule.due(tick) {
            let i = (0..net.client_count())
                .find(|&i| net.client(i).player() == Some(PlayerId(player)))
                .unwrap_or(player as usize);
            apply(&mut net, i, action, &initial);
            timeline.push(TimelineEntry::new(
                net.now(),
                tick,
                Some(player),
                action.describe().to_string(),
            ));
        }
        if finished(&net) || net.now() >= limit {
            break;
        }
    }
    if let Some(recorder) = recorder {
        recorder.finish()?;
    }
    Ok(DemoReport::build(options, &record_of(&net), timeline))
}

/// Does a scheduled action to client `i`.
fn apply(net: &mut Net, i: usize, action: Action, initial: &tickstep_engine::Frame<ArenaGlobals>) {
    let now = net.now();
    match action {
        Action::Drop => {
            net.cut(i);
            net.set_online(i, false);
        }
        Action::Rejoin => {
            net.set_online(i, true);
            if matches!(net.client(i).state(), ClientState::Disconnected(_)) {
                net.client_mut(i).connect(now);
            }
        }
        Action::Restart => {
            // What the app saved last, read back as after a restart.
            let saved = net.client(i).reconnect_info().to_bytes();
            if let Ok(info) = ReconnectInfo::from_bytes(&saved) {
                net.replace_client(i, demo_client(initial, info));
                net.connect(i);
            }
        }
    }
}

/// What the simulated run left behind, for the report.
fn record_of(net: &Net) -> RunRecord {
    RunRecord {
        server_events: net
            .server_events
            .iter()
            .map(|(at, e)| (*at, e.event.clone()))
            .collect(),
        clients: (0..net.client_count())
            .map(|i| {
                ClientRecord::of(
                    net.client(i),
                    net.client_events[i].clone(),
                    net.catch_up_walls[i].clone(),
                )
            })
            .collect(),
        filled_ticks: net
            .server
            .room_stats(DEMO_ROOM)
            .map_or(0, |s| s.filled_ticks),
        bytes_sent: net.bytes_sent,
    }
}
