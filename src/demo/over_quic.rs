//! The demo over real QUIC connections on loopback: a server with a self-signed
//! certificate and one client per player pinning it, in this process, on one thread,
//! in real time. A drop cuts a client's connection and takes its network down until
//! its rejoin; a restart tears the client down and rebuilds it from the
//! `ReconnectInfo` it last saved, as after an app restart.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant as WallClock};
use tickstep_engine::{Frame, PlayerId, Tick};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::recorder::Recorder;
use super::report::{ClientRecord, DemoReport, RunRecord, TimelineEntry};
use super::shaper;
use super::{Action, DEMO_ROOM, DemoOptions, Schedule, demo_client, demo_client_id, demo_room};
use tickstep_arena::{ArenaGlobals, ArenaInput};
use tickstep_net::{
    DoorLimits, Identity, NetClient, ServerHost, TransportConfig, Trust, advance_for, front_door,
    serve, server_endpoint,
};
use tickstep_session::{
    Client, ClientEvent, ClientState, DisconnectReason, ReconnectInfo, RoomEvent, Server,
    ServerConfig,
};

/// Wall-clock time one round of a client's loop may simulate before the server and the
/// other clients (on the same thread) get a turn.
const STEP_SLICE: Duration = Duration::from_millis(4);
/// How often a client saves its reconnect info (what a restart finds).
const SAVE_EVERY: Duration = Duration::from_millis(500);
/// After the end, the demo keeps serving this long at most while watchers are in.
const WATCHERS_GRACE: Duration = Duration::from_secs(10);

/// What the server loop shares with the demo.
#[derive(Default)]
struct Room {
    tick: Tick,
    events: Vec<(Duration, RoomEvent)>,
    filled_ticks: u64,
    bytes_sent: u64,
    /// Connections watching the room (from the web page).
    watchers: u64,
    recorder: Option<Recorder<Vec<u8>>>,
    error: Option<String>,
}

struct RoomHost(Rc<RefCell<Room>>);

impl ServerHost<ArenaInput> for RoomHost {
    fn after_round(&mut self, server: &mut Server<ArenaInput>, now: Duration) {
        let mut room = self.0.borrow_mut();
        while let Some(event) = server.poll_event() {
            match event.event {
                RoomEvent::WatcherJoined { .. } => room.watchers += 1,
                RoomEvent::WatcherLeft { .. } => room.watchers = room.watchers.saturating_sub(1),
                _ => {}
            }
            room.events.push((now, event.event));
        }
        room.tick = server.room_tick(DEMO_ROOM).unwrap_or(0);
        room.filled_ticks = server.room_stats(DEMO_ROOM).map_or(0, |s| s.filled_ticks);
        let written = room.recorder.as_mut().map(|r| r.catch_up(server));
        if let Some(Err(error)) = written {
            room.error = Some(error);
        }
    }

    fn connection_note(&mut self, conn: u64, note: &str) {
        tracing::debug!(conn, note, "demo server connection");
    }

    fn sent(&mut self, bytes: usize) {
        self.0.borrow_mut().bytes_sent += bytes as u64;
    }
}

/// What one player's task shares with the demo.
#[derive(Default)]
struct Player {
    /// The slot the client holds, once welcomed (the schedule names slots).
    slot: Option<PlayerId>,
    events: Vec<(Duration, ClientEvent)>,
    catch_up_walls: Vec<Duration>,
    catching: Duration,
    saved: Vec<u8>,
    progress: Option<(u64, Tick)>,
    bytes_sent: u64,
    end: Option<ClientRecord>,
}

/// Runs the demo over loopback QUIC in real time, serving the browser page on `web`
/// when given. `progress` gets the room's tick and, while a client catches up, a line
/// saying how far it is.
pub fn run_over_quic(
    options: &DemoOptions,
    record: Option<&mut dyn Write>,
    web: Option<std::net::TcpListener>,
    mut progress: impl FnMut(Tick, Option<String>),
) -> Result<DemoReport, String> {
    options.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    let (recording, report) = local.block_on(
        &runtime,
        play(options, record.is_some(), web, &mut progress),
    )?;
    if let (Some(out), Some(bytes)) = (record, recording) {
        out.write_all(&bytes)
            .map_err(|e| format!("cannot write the recording: {e}"))?;
    }
    Ok(report)
}

async fn play(
    options: &DemoOptions,
    recording: bool,
    web: Option<std::net::TcpListener>,
    progress: &mut impl FnMut(Tick, Option<String>),
) -> Result<(Option<Vec<u8>>, DemoReport), String> {
    let (initial, room_config) = demo_room(options)?;
    let mut server = Server::<ArenaInput>::new(ServerConfig::default());
    server
        .open_room(DEMO_ROOM, room_config)
        .map_err(|e| e.to_string())?;
    let identity = Identity::self_signed(&["localhost".into()]).map_err(|e| e.to_string())?;
    let trust = Trust::Pinned(identity.fingerprint());
    let transport = TransportConfig::default();
    let loopback = ([127, 0, 0, 1], 0).into();
    let endpoint = server_endpoint(loopback, &identity, &transport).map_err(|e| e.to_string())?;
    let server_addr = endpoint.local_addr().map_err(|e| e.to_string())?;
    let address = server_addr.to_string();
    let epoch = Instant::now();

    let room = Rc::new(RefCell::new(Room::default()));
    if recording {
        room.borrow_mut().recorder = Some(Recorder::new(Vec::new(), options, &initial)?);
    }
    // Dropping the sender stops the server.
    let (stop_server, mut stopped) = mpsc::channel(1);
    let mut host = RoomHost(room.clone());
    let limits = DoorLimits::of(server.config(), &transport);
    let (door, mut inboxes) = front_door(endpoint, 1, BTreeMap::new(), limits);
    let inbox = inboxes.pop().ok_or("no server shard")?;
    if let Some(listener) = web {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot serve the web page: {e}"))?;
        let version = super::plan::APP_VERSION;
        // A page takes the server as lost after the silence the server allows it.
        let timeout = server.config().peer_timeout;
        let pages = crate::serve::web::pages(&options.game, options.tick_rate, version, timeout);
        tokio::task::spawn_local(door.web(listener, pages, None).run());
    }
    let server_task = tokio::task::spawn_local(async move {
        tokio::task::spawn_local(door.run());
        serve(inbox, server, transport, epoch, &mut host, &mut stopped).await
    });

    let mut controls = Vec::new();
    let mut players = Vec::new();
    let mut tasks = Vec::new();
    for p in 0..options.game.players {
        let shared = Rc::new(RefCell::new(Player::default()));
        let (control, commands) = mpsc::unbounded_channel();
        let link = if options.shaped {
            let seed = options.game.seed ^ u64::from(p);
            shaper::relay(server_addr, options.link, seed)
                .await
                .map_err(|e| format!("cannot start the shaping relay: {e}"))?
        } else {
            address.clone()
        };
        let info = ReconnectInfo::new(&link, DEMO_ROOM, demo_client_id(options, p));
        let net = NetClient::new(demo_client(&initial, info), &link, &trust, transport, epoch)
            .map_err(|e| e.to_string())?;
        let seed = options.game.seed;
        tasks.push(tokio::task::spawn_local(run_player(
            net,
            seed,
            shared.clone(),
            commands,
            initial.clone(),
        )));
        controls.push(control);
        players.push(shared);
    }

    let mut schedule = Schedule::new(options);
    let mut timeline = Vec::new();
    let limit = WallClock::now() + options.time_limit();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let tick = room.borrow().tick;
        for (player, action) in schedule.due(tick) {
            timeline.push(TimelineEntry::new(
                epoch.elapsed(),
                tick,
                Some(player),
                action.describe().to_string(),
            ));
            let i = players
                .iter()
                .position(|p| p.borrow().slot == Some(PlayerId(player)))
                .unwrap_or(player as usize);
            let _ = controls[i].send(action);
        }
        let catching = players.iter().enumerate().find_map(|(p, shared)| {
            let (done, target) = shared.borrow().progress?;
            Some(format!("player {p} catching up: tick {done} of {target}"))
        });
        progress(tick, catching);
        let done =
            players.iter().all(|p| p.borrow().end.is_some()) && schedule.next_tick().is_none();
        if done || WallClock::now() >= limit {
            break;
        }
    }
    for task in tasks {
        task.abort();
    }
    // Pages watching may be a moment behind: let them see the end.
    let grace = WallClock::now() + WATCHERS_GRACE;
    while room.borrow().watchers > 0 && WallClock::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stop_server);
    let _ = server_task.await;

    let mut room = room.borrow_mut();
    if let Some(error) = room.error.take() {
        return Err(error);
    }
    let recording = room.recorder.take().map(Recorder::finish).transpose()?;
    let mut clients = Vec::new();
    for shared in &players {
        let mut shared = shared.borrow_mut();
        let mut end = shared
            .end
            .take()
            .ok_or("a client did not finish before the time limit")?;
        end.events = std::mem::take(&mut shared.events);
        end.catch_up_walls = std::mem::take(&mut shared.catch_up_walls);
        clients.push(end);
    }
    let bytes_sent = room.bytes_sent + players.iter().map(|p| p.borrow().bytes_sent).sum::<u64>();
    let record = RunRecord {
        server_events: std::mem::take(&mut room.events),
        clients,
        filled_ticks: room.filled_ticks,
        bytes_sent,
    };
    Ok((recording, DemoReport::build(options, &record, timeline)))
}

/// The game loop's part of one round: step (within a time slice), send bot input,
/// record events and catch-up time, save reconnect info now and then. Returns whether
/// stepping was cut short by the slice.
fn host_round(
    client: &mut Client<ArenaGlobals, ArenaInput>,
    now: Duration,
    seed: u64,
    shared: &mut Player,
    saved_at: &mut Option<Duration>,
) -> bool {
    shared.slot = client.player();
    let catching = matches!(client.state(), ClientState::CatchingUp { .. });
    let began = WallClock::now();
    let pending = advance_for(client, now, STEP_SLICE);
    if catching {
        shared.catching += began.elapsed();
    }
    crate::bots::play(client, now, seed);
    while let Some(event) = client.poll_event() {
        match &event {
            ClientEvent::CatchUpProgress { done, target } => {
                shared.progress = Some((*done, *target));
                continue;
            }
            ClientEvent::CaughtUp { .. } => {
                shared.progress = None;
                let wall = std::mem::take(&mut shared.catching);
                shared.catch_up_walls.push(wall);
            }
            ClientEvent::Started | ClientEvent::Resynced { .. } => shared.catching = Duration::ZERO,
            // A new resume token: save it at once.
            ClientEvent::Joined { .. } => *saved_at = None,
            _ => {}
        }
        shared.events.push((now, event));
    }
    if saved_at.is_none_or(|at| now >= at + SAVE_EVERY) {
        *saved_at = Some(now);
        shared.saved = client.reconnect_info().to_bytes();
    }
    pending
}

/// One player's loop: network rounds and the demo's commands (drop, rejoin, restart).
/// It records how the client ended each time it stops for good; the demo may still
/// bring it back (a rejoin after it gave up).
async fn run_player(
    mut net: NetClient<ArenaGlobals, ArenaInput>,
    seed: u64,
    shared: Rc<RefCell<Player>>,
    mut commands: mpsc::UnboundedReceiver<Action>,
    initial: Frame<ArenaGlobals>,
) {
    net.client.connect(net.now());
    net.pump();
    let mut saved_at = None;
    loop {
        let mut host = |client: &mut Client<ArenaGlobals, ArenaInput>, now: Duration| {
            host_round(client, now, seed, &mut shared.borrow_mut(), &mut saved_at)
        };
        tokio::select! {
            command = commands.recv() => {
                let now = net.now();
                match command {
                    Some(Action::Drop) => {
                        net.set_online(false);
                        net.cut();
                    }
                    Some(Action::Rejoin) => {
                        net.set_online(true);
                        if matches!(net.client.state(), ClientState::Disconnected(_)) {
                            shared.borrow_mut().end = None;
                            net.client.connect(now);
                        }
                    }
                    Some(Action::Restart) => {
                        let saved = shared.borrow().saved.clone();
                        if let Ok(info) = ReconnectInfo::from_bytes(&saved) {
                            shared.borrow_mut().end = None;
                            net.replace(demo_client(&initial, info));
                            net.client.connect(now);
                        }
                    }
                    None => {}
                }
                host_round(&mut net.client, now, seed, &mut shared.borrow_mut(), &mut saved_at);
                net.pump();
            }
            _ = net.round(&mut host) => {}
        }
        let mut shared = shared.borrow_mut();
        shared.bytes_sent = net.bytes_sent;
        if matches!(net.client.state(), ClientState::Disconnected(_)) && shared.end.is_none() {
            shared.end = Some(ClientRecord::of(&net.client, Vec::new(), Vec::new()));
            if net.client.state() == ClientState::Disconnected(DisconnectReason::GameEnded) {
                return;
            }
        }
    }
}
