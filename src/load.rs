//! Server load: rooms of bot clients playing against one server over loopback QUIC.
//! The server runs on its own thread; every client runs on the calling thread. The
//! report counts the ticks the rooms verified in a measured window, how many were late
//! (finalised more than a tick after their deadline: the server fell behind), and the
//! server thread's CPU time per room-tick, from which follows how many rooms one core
//! holds.

use serde::Serialize;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_net::{
    Identity, NetClient, ServerHost, TransportConfig, Trust, advance_for, serve, server_endpoint,
};
use tickstep_session::{
    Client, ClientConfig, ClientId, ClientState, ReconnectInfo, RoomConfig, RoomStats, Server,
    ServerConfig,
};

/// What to load the server with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Rooms.
    pub rooms: u32,
    /// Bot players per room.
    pub players: u8,
    /// Ticks per second.
    pub tick_rate: u32,
    /// Length of the measured window.
    pub seconds: u32,
    /// Units in each room's arena (the clients simulate them; the server does not).
    pub entities: u32,
}

/// What the server did in the measured window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// Rooms.
    pub rooms: u32,
    /// Players per room.
    pub players: u8,
    /// Ticks per second.
    pub tick_rate: u32,
    /// Length of the measured window.
    pub seconds: f64,
    /// Ticks the rooms verified in the window, all rooms together.
    pub room_ticks: u64,
    /// Of those, ticks finalised within a tick of their deadline.
    pub on_time_ticks: u64,
    /// Of those, ticks finalised later (the server fell behind).
    pub late_ticks: u64,
    /// Ticks in the window with some player's input filled in (a client was late).
    pub filled_ticks: u64,
    /// Room-ticks the clock asked for in the window (rooms × rate × seconds).
    pub expected_room_ticks: u64,
    /// Server thread CPU time in the window, milliseconds.
    pub server_cpu_ms: f64,
    /// Server CPU per room-tick, microseconds.
    pub server_cpu_us_per_room_tick: f64,
    /// Rooms of this shape one server core could run at this rate, from the CPU per
    /// room-tick.
    pub rooms_per_core: f64,
}

/// Where the run is, shared by the client thread (which decides) and the server thread.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

#[derive(Default)]
struct Window {
    start: Option<(Duration, Duration, RoomStats)>,
    end: Option<(Duration, Duration, RoomStats)>,
}

struct LoadHost {
    phase: Arc<AtomicU8>,
    rooms: Vec<String>,
    window: Window,
}

impl LoadHost {
    fn totals(&self, server: &Server<ArenaInput>) -> RoomStats {
        self.rooms.iter().filter_map(|r| server.room_stats(r)).fold(
            RoomStats::default(),
            |sum, s| RoomStats {
                tick: sum.tick + s.tick,
                filled_ticks: sum.filled_ticks + s.filled_ticks,
                late_ticks: sum.late_ticks + s.late_ticks,
            },
        )
    }
}

impl ServerHost<ArenaInput> for LoadHost {
    fn after_round(&mut self, server: &mut Server<ArenaInput>, now: Duration) {
        while server.poll_event().is_some() {}
        let phase = self.phase.load(Ordering::Acquire);
        if phase >= MEASURING && self.window.start.is_none() {
            self.window.start = Some((now, thread_cpu(), self.totals(server)));
        }
        if phase == DONE && self.window.end.is_none() {
            self.window.end = Some((now, thread_cpu(), self.totals(server)));
        }
    }

    fn connection_note(&mut self, conn: u64, note: &str) {
        tracing::debug!(conn, note, "load server connection");
    }
}

/// CPU time this thread has used (Linux: `/proc/thread-self/schedstat`), or wall time
/// elsewhere.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| std::time::UNIX_EPOCH.elapsed().unwrap_or_default())
}

/// Runs the load; `progress` gets the fraction of the measured window done.
pub fn run_load(
    options: &LoadOptions,
    mut progress: impl FnMut(f64),
) -> Result<LoadReport, String> {
    if options.rooms == 0 || options.players == 0 || options.tick_rate == 0 || options.seconds == 0
    {
        return Err("rooms, players, tick rate and seconds must all be at least 1".into());
    }
    let game = ArenaConfig {
        units: options.entities,
        players: options.players,
        seed: 1,
    };
    let initial = arena::new_frame(&game).map_err(|e| e.to_string())?;
    let rooms: Vec<String> = (0..options.rooms).map(|r| format!("load-{r}")).collect();
    let mut server = Server::<ArenaInput>::new(ServerConfig::default());
    for name in &rooms {
        let mut room = RoomConfig::new(options.players, "load", &initial);
        room.tick_rate = options.tick_rate;
        server.open_room(name, room).map_err(|e| e.to_string())?;
    }
    let identity = Identity::self_signed(&["localhost".into()]).map_err(|e| e.to_string())?;
    let trust = Trust::Pinned(identity.fingerprint());
    let (bound, address) = std::sync::mpsc::channel();
    let phase = Arc::new(AtomicU8::new(WARMING));
    // Dropping the sender stops the server.
    let (stop, stopped) = tokio::sync::mpsc::channel(1);
    let mut host = LoadHost {
        phase: phase.clone(),
        rooms: rooms.clone(),
        window: Window::default(),
    };
    let server_thread = std::thread::spawn(move || -> Result<Window, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let loopback = ([127, 0, 0, 1], 0).into();
            let transport = TransportConfig::default();
            let endpoint = server_endpoint(loopback, &identity, &transport);
            let endpoint = endpoint.map_err(|e| e.to_string())?;
            let _ = bound.send(endpoint.local_addr().map_err(|e| e.to_string())?);
            serve(
                endpoint,
                server,
                TransportConfig::default(),
                Instant::now(),
                &mut host,
                stopped,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(host.window)
        })
    });

    let address = address
        .recv()
        .map_err(|_| "the server did not start".to_string())?
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let running = Rc::new(Cell::new(0usize));
        let quit = Rc::new(Cell::new(false));
        let epoch = Instant::now();
        for (r, room) in rooms.iter().enumerate() {
            for p in 0..options.players {
                let id = ClientId::from_seed(((r as u64) << 8) | p as u64);
                let info = ReconnectInfo::new(&address, room, id);
                let config = ClientConfig {
                    app_version: "load".into(),
                    ..ClientConfig::default()
                };
                let client = Client::new(config, info, initial.clone(), arena::simulation());
                let transport = TransportConfig::default();
                let net = NetClient::new(client, &address, &trust, transport, epoch)
                    .map_err(|e| e.to_string())?;
                tokio::task::spawn_local(bot(net, running.clone(), quit.clone()));
            }
        }
        let everyone = rooms.len() * options.players as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while running.get() < everyone && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the rooms settle into their rhythm before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        phase.store(MEASURING, Ordering::Release);
        let window = Duration::from_secs(options.seconds as u64);
        let began = Instant::now();
        while began.elapsed() < window {
            tokio::time::sleep(Duration::from_millis(100)).await;
            progress(began.elapsed().as_secs_f64() / window.as_secs_f64());
        }
        phase.store(DONE, Ordering::Release);
        tokio::time::sleep(Duration::from_millis(100)).await;
        quit.set(true);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<(), String>(())
    })?;
    drop(stop);
    let window = server_thread
        .join()
        .map_err(|_| "the server thread panicked".to_string())??;
    let (Some(start), Some(end)) = (window.start, window.end) else {
        return Err("the server saw no measured window (did the rooms start?)".into());
    };
    let seconds = (end.0 - start.0).as_secs_f64();
    let cpu = (end.1 - start.1).as_secs_f64();
    let room_ticks = end.2.tick - start.2.tick;
    let late_ticks = end.2.late_ticks - start.2.late_ticks;
    let per_room_tick = if room_ticks > 0 {
        cpu / room_ticks as f64
    } else {
        f64::INFINITY
    };
    Ok(LoadReport {
        rooms: options.rooms,
        players: options.players,
        tick_rate: options.tick_rate,
        seconds: round(seconds, 3),
        room_ticks,
        on_time_ticks: room_ticks - late_ticks,
        late_ticks,
        filled_ticks: end.2.filled_ticks - start.2.filled_ticks,
        expected_room_ticks: (options.rooms as f64 * options.tick_rate as f64 * seconds) as u64,
        server_cpu_ms: round(cpu * 1000.0, 1),
        server_cpu_us_per_room_tick: round(per_room_tick * 1e6, 2),
        rooms_per_core: round(1.0 / (per_room_tick * options.tick_rate as f64), 1),
    })
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// One bot player: plays until told to quit, then leaves.
async fn bot(
    mut net: NetClient<ArenaGlobals, ArenaInput>,
    running: Rc<Cell<usize>>,
    quit: Rc<Cell<bool>>,
) {
    net.client.connect(net.now());
    net.pump();
    let mut counted = false;
    while !quit.get() {
        let mut host = |client: &mut Client<ArenaGlobals, ArenaInput>, now: Duration| {
            let pending = advance_for(client, now, Duration::from_millis(2));
            if let Some(player) = client.player() {
                while let Some(tick) = client.next_input_tick(now) {
                    client.send_input(now, arena::bot_input(1, tick, player));
                }
            }
            while client.poll_event().is_some() {}
            pending
        };
        tokio::select! {
            _ = net.round(&mut host) => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if !counted && net.client.state() == ClientState::Running {
            counted = true;
            running.set(running.get() + 1);
        }
    }
    net.client.leave(net.now());
    net.pump();
}
