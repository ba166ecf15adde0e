//! A small arena room over the simulated network, shared by the session tests.
#![allow(dead_code)]

use std::time::Duration;
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_engine::{Checksum, Frame, Simulation, Tick, checksum};
use tickstep_session::sim::{LinkConfig, Play, SimNet};
use tickstep_session::{
    Client, ClientConfig, ClientEvent, ClientId, ReconnectInfo, RoomConfig, RoomEvent, Server,
    ServerConfig,
};

/// The room every test plays in.
pub const ROOM: &str = "test";
/// The app version rooms and clients agree on.
pub const APP: &str = "tests";

pub type Net = SimNet<ArenaGlobals, ArenaInput>;

/// A small arena for `players` (100 units, fast in debug builds).
pub fn game(players: u8, seed: u64) -> ArenaConfig {
    ArenaConfig {
        units: 100,
        players,
        seed,
    }
}

/// A smaller arena (30 units) for long games with many players in debug builds.
pub fn small_game(players: u8, seed: u64) -> ArenaConfig {
    ArenaConfig {
        units: 30,
        players,
        seed,
    }
}

/// The tick-0 frame of `game`.
pub fn initial(game: &ArenaConfig) -> Frame<ArenaGlobals> {
    arena::new_frame(game).expect("arena frame")
}

/// Room rules for `game` with the defaults, ready to adjust.
pub fn room_config(game: &ArenaConfig) -> RoomConfig {
    let frame = initial(game);
    RoomConfig::new(game.players, APP, &frame)
}

/// Client settings that match the room's app version.
pub fn client_config() -> ClientConfig {
    ClientConfig {
        app_version: APP.into(),
        ..ClientConfig::default()
    }
}

/// A network with a server hosting `room` for `game`, bots for input, no clients yet.
pub fn network(game: &ArenaConfig, room: RoomConfig) -> Net {
    let mut server = Server::new(ServerConfig::default());
    server.open_room(ROOM, room).expect("room opens");
    let seed = game.seed;
    SimNet::new(
        server,
        seed,
        Box::new(move |_, player, tick, _: &_| Play {
            input: arena::bot_input(seed, tick, player),
            command: arena::bot_command(seed, tick, player)
                .map(|c| bytemuck::bytes_of(&c).to_vec()),
        }),
    )
}

/// The reconnect info of a first join as client number `n`.
pub fn info(n: u64) -> ReconnectInfo {
    ReconnectInfo::new("sim", ROOM, ClientId::from_seed(n))
}

/// A client of `game` with `info`, stepping with `simulation`.
pub fn client_with(
    game: &ArenaConfig,
    info: ReconnectInfo,
    simulation: Simulation<ArenaGlobals, ArenaInput>,
) -> Client<ArenaGlobals, ArenaInput> {
    Client::new(client_config(), info, initial(game), simulation)
}

/// Adds and connects client number `n` on `link`; returns its index.
pub fn join(net: &mut Net, game: &ArenaConfig, n: u64, link: LinkConfig) -> usize {
    let i = net.add_client(client_with(game, info(n), arena::simulation()), link);
    net.connect(i);
    i
}

/// A network with `players` clients joined on default links (the game starts at once).
pub fn started(game: &ArenaConfig, room: RoomConfig) -> Net {
    let mut net = network(game, room);
    for n in 0..game.players as u64 {
        join(&mut net, game, n, LinkConfig::default());
    }
    net
}

/// Runs until the room's newest verified tick reaches `tick` (or 10 minutes pass).
pub fn run_to_tick(net: &mut Net, tick: Tick) {
    let limit = net.now() + Duration::from_secs(600);
    net.run_while(limit, |net| net.server.room_tick(ROOM).unwrap_or(0) < tick);
}

/// Runs `span` more of virtual time.
pub fn run_for(net: &mut Net, span: Duration) {
    let until = net.now() + span;
    net.run_until(until);
}

/// Client `i`'s events, without the time.
pub fn events(net: &Net, i: usize) -> Vec<ClientEvent> {
    net.client_events[i]
        .iter()
        .map(|(_, e)| e.clone())
        .collect()
}

/// The server's events, without the time.
pub fn server_events(net: &Net) -> Vec<RoomEvent> {
    net.server_events
        .iter()
        .map(|(_, e)| e.event.clone())
        .collect()
}

/// The checksum of client `i`'s frame.
pub fn frame_checksum(net: &Net, i: usize) -> Checksum {
    checksum(net.client(i).frame())
}

/// Re-simulates the verified input the room broadcast from tick 0 and returns the
/// checksum at every tick in `ticks` (which must be ascending and held in the history).
pub fn resimulate(net: &Net, game: &ArenaConfig, ticks: &[Tick]) -> Vec<(Tick, Checksum)> {
    let log = net.server.room_inputs(ROOM).expect("room");
    let mut frame = initial(game);
    let mut simulation = arena::simulation();
    let mut inputs = tickstep_engine::TickInputs::new(game.players as usize).expect("inputs");
    let mut out = Vec::new();
    for &tick in ticks {
        while frame.tick() < tick {
            log.read(frame.tick() + 1, &mut inputs).expect("input held");
            simulation.step(&mut frame, &inputs).expect("step");
        }
        out.push((tick, checksum(&frame)));
    }
    out
}

/// Who holds each slot of the room: the client id and whether it is active.
pub fn slots(net: &Net) -> Vec<Option<(ClientId, bool)>> {
    let slots = net.server.room_slots(ROOM).expect("room");
    slots
        .into_iter()
        .map(|s| s.map(|(id, conn)| (id, conn.is_some())))
        .collect()
}
