//! The demo over the deterministic simulated network: the whole run happens in virtual
//! time, so it is reproducible from its seed and takes only as long as simulating.

use std::io::Write;
use std::time::Duration;
use tickstep_engine::{PlayerId, Tick, TickInputs, checksum};
use tickstep_replay::{ReplayHeader, ReplayWriter};

use super::report::{ClientReport, DemoReport, DesyncReport, Resync, TimelineEntry};
use super::{DEMO_ROOM, DemoOptions};
use crate::arena::{self, ArenaInput, ArenaRun};
use crate::session::sim::SimNet;
use crate::session::{
    Client, ClientConfig, ClientEvent, ClientId, ClientState, ReconnectInfo, RoomConfig, Server,
    ServerConfig, ServerEvent, SnapshotSource,
};

/// The app version demo rooms and clients agree on.
const APP_VERSION: &str = concat!("tickstep-demo ", env!("CARGO_PKG_VERSION"));

/// A scheduled change to a player's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Drop,
    Rejoin,
}

/// Runs the demo over the simulated network; `progress` is called with the room's
/// tick as it advances. With `record`, the verified input the server broadcast is
/// written there as a replay file.
pub fn run_over_sim(
    options: &DemoOptions,
    mut record: Option<&mut dyn Write>,
    mut progress: impl FnMut(Tick),
) -> Result<DemoReport, String> {
    options.validate()?;
    let game = &options.game;
    let initial = arena::new_frame(game).map_err(|e| e.to_string())?;
    let mut room = RoomConfig::new(
        game.players,
        APP_VERSION,
        initial.schema().hash(),
        checksum(&initial),
    );
    room.tick_rate = options.tick_rate;
    room.end_tick = Some(options.ticks);
    let mut server = Server::<ArenaInput>::new(ServerConfig::default());
    server.open_room(DEMO_ROOM, room)?;
    let seed = game.seed;
    let bots = Box::new(move |_, player, tick| arena::bot_input(seed, tick, player));
    let mut net = SimNet::new(server, seed, bots);
    let client_config = ClientConfig {
        app_version: APP_VERSION.into(),
        ..ClientConfig::default()
    };
    for p in 0..game.players {
        let info = ReconnectInfo::new(
            "sim",
            DEMO_ROOM,
            ClientId::from_seed(seed ^ ((p as u64 + 1) << 56)),
        );
        let client = Client::new(
            client_config.clone(),
            info,
            initial.clone(),
            arena::simulation(),
        );
        let i = net.add_client(client, options.link);
        net.connect(i);
    }

    let mut recorder = match record.as_mut() {
        Some(out) => {
            let header = ReplayHeader {
                schema_hash: initial.schema().hash(),
                tick_rate: options.tick_rate,
                players: game.players as u32,
                input_size: size_of::<ArenaInput>() as u32,
                checksum_every: 0,
                checkpoint_every: 0,
                config: serde_json::to_vec(game).unwrap_or_default(),
            };
            Some(
                ReplayWriter::new(out, &header, &initial)
                    .map_err(|e| format!("cannot write the recording: {e}"))?,
            )
        }
        None => None,
    };
    let mut recorded: Tick = 0;
    let mut inputs =
        TickInputs::<ArenaInput>::new(game.players as usize).map_err(|e| e.to_string())?;

    let mut schedule: Vec<(Tick, Action, u8)> = options
        .drops
        .iter()
        .map(|d| (d.tick, Action::Drop, d.player))
        .chain(
            options
                .rejoins
                .iter()
                .map(|r| (r.tick, Action::Rejoin, r.player)),
        )
        .collect();
    schedule.sort();
    let mut schedule = schedule.into_iter().peekable();
    let mut timeline = Vec::new();
    let limit = options.time_limit();
    let room_tick = |net: &SimNet<_, ArenaInput>| net.server.room_tick(DEMO_ROOM).unwrap_or(0);
    let finished = |net: &SimNet<_, ArenaInput>| {
        (0..net.client_count())
            .all(|i| matches!(net.client(i).state(), ClientState::Disconnected(_)))
    };
    let mut shown = 0;
    loop {
        let next_action = schedule.peek().map(|(tick, _, _)| *tick);
        net.run_while(limit, |net| {
            let tick = room_tick(net);
            !finished(net) && next_action.is_none_or(|at| tick < at) && tick < shown + 60
        });
        let tick = room_tick(&net);
        if tick > shown {
            shown = tick;
            progress(tick);
        }
        if let Some(writer) = recorder.as_mut()
            && let Some(log) = net.server.room_inputs(DEMO_ROOM)
        {
            while recorded < log.newest().unwrap_or(0) {
                log.read(recorded + 1, &mut inputs)
                    .map_err(|e| e.to_string())?;
                writer
                    .record_input(&inputs)
                    .map_err(|e| format!("cannot write the recording: {e}"))?;
                recorded += 1;
            }
        }
        while let Some(&(at, action, player)) = schedule.peek()
            && at <= tick
        {
            schedule.next();
            let i = player as usize;
            let what = match action {
                Action::Drop => {
                    net.cut(i);
                    net.set_online(i, false);
                    "connection cut, offline (--drop)"
                }
                Action::Rejoin => {
                    net.set_online(i, true);
                    if matches!(net.client(i).state(), ClientState::Disconnected(_)) {
                        let now = net.now();
                        net.client_mut(i).connect(now);
                    }
                    "back online (--rejoin)"
                }
            };
            timeline.push(entry(net.now(), tick, Some(player), what.to_string()));
        }
        if finished(&net) || net.now() >= limit {
            break;
        }
    }
    if let Some(writer) = recorder {
        writer
            .finish(recorded)
            .map_err(|e| format!("cannot write the recording: {e}"))?;
    }
    Ok(report(options, &net, timeline))
}

fn entry(at: Duration, tick: Tick, player: Option<u8>, what: String) -> TimelineEntry {
    TimelineEntry {
        at_ms: at.as_millis() as u64,
        tick,
        player,
        what,
    }
}

/// The room tick at virtual time `at`, from the tick rate (the timeline's clock).
fn tick_at(options: &DemoOptions, started: Option<Duration>, at: Duration) -> Tick {
    let Some(started) = started else { return 0 };
    let ticks =
        at.saturating_sub(started).as_micros() as u64 * options.tick_rate as u64 / 1_000_000;
    ticks.min(options.ticks)
}

fn report(
    options: &DemoOptions,
    net: &SimNet<arena::ArenaGlobals, ArenaInput>,
    mut timeline: Vec<TimelineEntry>,
) -> DemoReport {
    let started = net
        .server_events
        .iter()
        .find(|(_, e)| matches!(e, ServerEvent::GameStarted { .. }))
        .map(|(at, _)| *at);
    let at = |time: Duration| tick_at(options, started, time);
    let mut desyncs = Vec::new();
    for (time, event) in &net.server_events {
        let (player, what) = match event {
            ServerEvent::GameStarted { .. } => (None, "game started".to_string()),
            ServerEvent::BuddyAsked { buddy, tick, .. } => (
                Some(buddy.0),
                format!("asked as buddy for the snapshot of tick {tick}"),
            ),
            ServerEvent::BuddySnapshotRejected { buddy, tick, .. } => (
                Some(buddy.0),
                format!(
                    "buddy snapshot of tick {tick} REJECTED: it does not match the peers' checksums"
                ),
            ),
            ServerEvent::SlotFreed { player, .. } => {
                (Some(player.0), "slot freed (PlayerTTL passed)".into())
            }
            ServerEvent::Desync {
                tick, disagreeing, ..
            } => {
                desyncs.push(DesyncReport {
                    tick: *tick,
                    disagreeing: disagreeing.iter().map(|p| p.0).collect(),
                });
                (
                    None,
                    format!("DESYNC at tick {tick}: players {disagreeing:?} disagree"),
                )
            }
            ServerEvent::PlayerLeft {
                player,
                reason: Some(reason),
                ..
            } => (
                Some(player.0),
                format!("server: connection gone ({reason}); slot kept"),
            ),
            _ => continue,
        };
        timeline.push(entry(*time, at(*time), player, what));
    }
    let mut clients = Vec::new();
    for i in 0..net.client_count() {
        let client = net.client(i);
        let player = client.player().unwrap_or(PlayerId(i as u8)).0;
        let mut resyncs: Vec<Resync> = Vec::new();
        let mut walls = net.catch_up_walls[i].iter();
        let mut joined_before = false;
        for (time, event) in &net.client_events[i] {
            let what = match event {
                ClientEvent::Joined { entry, .. } => {
                    let what = format!("joined ({entry:?})");
                    if joined_before && matches!(entry, crate::session::Entry::FromStart) {
                        resyncs.push(resync(0, SnapshotSource::Start, 0));
                    }
                    joined_before = true;
                    what
                }
                ClientEvent::WaitingForSnapshot => "paused, waiting for a snapshot".into(),
                ClientEvent::Resynced {
                    tick,
                    source,
                    bytes,
                } => {
                    resyncs.push(resync(*tick, *source, *bytes));
                    format!("resynced at tick {tick} from a {source} snapshot of {bytes} bytes")
                }
                ClientEvent::CaughtUp { ticks } => {
                    let wall = walls.next().copied().unwrap_or_default();
                    let ms = wall.as_secs_f64() * 1000.0;
                    if let Some(last) = resyncs.last_mut() {
                        last.caught_up_ticks = *ticks;
                        last.catch_up_ms = (ms * 100.0).round() / 100.0;
                    }
                    format!("caught up {ticks} ticks in {ms:.1} ms")
                }
                ClientEvent::Reconnecting {
                    attempt,
                    after,
                    reason,
                } => {
                    format!(
                        "{reason}; reconnect attempt {attempt} in {} ms",
                        after.as_millis()
                    )
                }
                ClientEvent::Disconnected { reason } => format!("stopped: {reason}"),
                ClientEvent::Desync { .. }
                | ClientEvent::Started
                | ClientEvent::CatchUpProgress { .. } => continue,
            };
            timeline.push(entry(*time, at(*time), Some(player), what));
        }
        clients.push(ClientReport {
            player,
            final_tick: client.frame().tick(),
            checksum: checksum(client.frame()),
            state: format!("{:?}", client.state()),
            resyncs,
        });
    }
    timeline.sort_by_key(|e| (e.at_ms, e.player));
    let filled_ticks = net.server.room_filled_ticks(DEMO_ROOM).unwrap_or(0);
    let offline_checksum = (filled_ticks == 0).then(|| offline(options)).flatten();
    let final_tick = options.ticks;
    let converged = desyncs.is_empty()
        && clients
            .iter()
            .all(|c| c.final_tick == final_tick && c.checksum == clients[0].checksum)
        && offline_checksum.is_none_or(|sum| clients.iter().all(|c| c.checksum == sum));
    DemoReport {
        converged,
        final_tick,
        clients,
        desyncs,
        filled_ticks,
        offline_checksum,
        bytes_sent: net.bytes_sent,
        timeline,
    }
}

fn resync(at_tick: Tick, snapshot_source: SnapshotSource, snapshot_bytes: u64) -> Resync {
    Resync {
        at_tick,
        snapshot_source,
        snapshot_bytes,
        caught_up_ticks: 0,
        catch_up_ms: 0.0,
    }
}

/// The offline run's checksum at the demo's last tick.
fn offline(options: &DemoOptions) -> Option<tickstep_engine::Checksum> {
    let mut run = ArenaRun::new(&options.game).ok()?;
    run.run_to(options.ticks, |_| {}).ok()?;
    Some(checksum(&run.frame))
}
