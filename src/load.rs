//! `tickstep load`: a load generator for a `tickstep serve`, in a process of its own.
//! Its players speak the real protocol over QUIC — hello, input every tick, progress
//! acknowledged — but simulate nothing and report no checksums: one loop drives every
//! connection, sending each playing client's input on the room's clock, a few ticks
//! ahead of when it falls due. A player's input changes every `--input-changes-every`
//! ticks (as a player aiming with a mouse does at 1), a pure function of the player and
//! the tick, so input sent again is the same. What it
//! measures of itself (messages, bytes, its CPU) shows whether it, not the server, is
//! the bottleneck.

use clap::Args;
use serde::Serialize;
use std::time::Duration;
use tickstep_arena as arena;
use tickstep_engine::{Rng, Tick};
use tickstep_net::{CloseReason, Connection, Delivery, Inbound, TransportConfig, client_endpoint};
use tickstep_session::{
    ClientId, ClientMessage, Entry, Hello, ServerMessage, Timing, decode, encode,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::game_args::ArenaArgs;
use crate::net_args::{APP_VERSION, TrustArgs};
use crate::output::{emit, progress_bar_of, rounded};

/// Arguments of `tickstep load`.
#[derive(Args)]
pub struct LoadArgs {
    /// The server's address (host:port).
    #[arg(long)]
    server: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Rooms to fill: NAME-0 .. NAME-(N-1) (or NAME alone when N is 1), as `serve
    /// --rooms NAME --room-count N` opens them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rooms: u32,
    /// The rooms' name.
    #[arg(long, default_value = "load")]
    room: String,
    /// The rooms' tick rate (as served).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tick_rate: u32,
    /// Seconds to play once every room's ticks are flowing.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// A player's input changes every this many ticks (0: never; no-op input). What
    /// the server keeps of its history and sends grows with how often input changes.
    #[arg(long, value_name = "TICKS", default_value_t = 1)]
    input_changes_every: u32,
    /// Ticks ahead of its due time each input is sent.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    lead: u32,
    #[command(flatten)]
    game: ArenaArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What the load did.
#[derive(Debug, Serialize)]
struct LoadReport {
    rooms: u32,
    players: u8,
    tick_rate: u32,
    input_changes_every: u32,
    /// Clients that were seated.
    seated: u64,
    /// Clients refused by the server.
    refused: u64,
    /// Clients whose connection was lost.
    lost: u64,
    /// The measured window (every room playing), seconds.
    seconds: f64,
    /// Verified ticks the clients heard of in the window, per client on average.
    ticks_per_client: f64,
    /// Messages and bytes each way in the window.
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    bytes_received: u64,
    /// This process's CPU in the window, milliseconds, and as a share of one core.
    load_cpu_ms: f64,
    load_cpu_share: f64,
}

/// Where one client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Hello sent.
    Joining,
    /// Seated, the game not yet scheduled.
    Seated,
    /// Sending input.
    Playing,
    /// Refused by the server.
    Refused,
    /// Its connection was lost, or its room was already in play.
    Gone,
}

/// One client's state.
struct Player {
    conn: Connection,
    stage: Stage,
    /// Verified input heard of up to this tick.
    received: Tick,
    /// The room's clock: the reading that puts it furthest on, and when it was heard.
    clock: Option<(i64, Instant)>,
    /// Bytes of one tick's input.
    input_size: usize,
    /// Where its input comes from (see `fill_input`).
    seed: u64,
}

/// Counters over the window.
#[derive(Default, Clone, Copy)]
struct Counts {
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    bytes_received: u64,
    ticks_heard: u64,
}

/// Inputs sent in one message at most.
const MAX_BATCH: usize = 64;
/// Bytes of one tick's input sent at most (a game's is a few).
const MAX_INPUT_SIZE: usize = 256;
/// Clients connecting at once at most, and starting to per tick at most: with 256 at
/// once, a busy 2-core machine serving 200 rooms let handshakes pass the connect
/// timeout.
const MAX_JOINING: usize = 64;
const JOINS_PER_TICK: usize = 16;
/// How long a client waits for its handshake: a load generator is patient, since a
/// server busy with hundreds of rooms answers handshakes late.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Clients whose connection ended before their game's ticks reached them, and how the
/// first did.
#[derive(Default)]
struct EarlyLosses {
    count: u64,
    first: Option<String>,
}

impl EarlyLosses {
    fn note(&mut self, reason: &CloseReason) {
        self.count += 1;
        self.first.get_or_insert_with(|| format!("{reason:?}"));
    }

    /// What went wrong, if anything did.
    fn describe(&self) -> Option<String> {
        let first = self.first.as_deref()?;
        Some(format!(
            "{} clients lost before their games' ticks reached them (the first: {first})",
            self.count
        ))
    }
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &LoadArgs) -> Result<(), String> {
    let trust = args.trust.trust()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let report = runtime.block_on(drive(args, &trust))?;
    emit(args.json, &report, |r| {
        format!(
            "{} rooms x {} players at {} Hz: {} seated, {} refused, {} lost\nin {} s: {} ticks per client; sent {} messages ({} bytes), received {} ({} bytes); load CPU {} ms ({:.0}% of a core)",
            r.rooms,
            r.players,
            r.tick_rate,
            r.seated,
            r.refused,
            r.lost,
            r.seconds,
            r.ticks_per_client,
            r.messages_sent,
            r.bytes_sent,
            r.messages_received,
            r.bytes_received,
            r.load_cpu_ms,
            r.load_cpu_share * 100.0
        )
    })
}

async fn drive(args: &LoadArgs, trust: &tickstep_net::Trust) -> Result<LoadReport, String> {
    let game = args.game.config();
    let initial = arena::new_frame(&game).map_err(|e| e.to_string())?;
    let transport = TransportConfig {
        connect_timeout: CONNECT_TIMEOUT,
        ..TransportConfig::default()
    };
    let any = ([0, 0, 0, 0], 0).into();
    let endpoint = client_endpoint(any, trust, &transport).map_err(|e| e.to_string())?;
    let (inbound_tx, mut inbound) = mpsc::channel(4096);
    let epoch = Instant::now();
    let players_per_room = game.players;
    let clients = args.rooms as usize * players_per_room as usize;
    let mut players = Vec::with_capacity(clients);
    let mut counts = Counts::default();
    let hello_of = |index: usize| {
        let name = match args.rooms {
            1 => args.room.clone(),
            _ => format!("{}-{}", args.room, index / players_per_room as usize),
        };
        let client_id = ClientId::from_seed(0x10ad_0000_0000 + index as u64);
        ClientMessage::Hello(Box::new(Hello::new(APP_VERSION, &initial, name, client_id)))
    };
    let tick_us = 1_000_000 / i64::from(args.tick_rate);
    let mut ticker = tokio::time::interval(Duration::from_micros(tick_us as u64));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let start_by = Instant::now() + Duration::from_secs(60);
    let window = Duration::from_secs(args.seconds.into());
    // When every room plays: the window's start and what was counted by then.
    let mut began: Option<(Instant, Duration, Counts)> = None;
    let mut lost_early = EarlyLosses::default();
    let bar = progress_bar_of(u64::from(args.seconds), "loading", "seconds");
    loop {
        tokio::select! {
            // Never closed: this loop holds a sender.
            Some(event) = inbound.recv() => match event {
                Inbound::Message { conn, bytes } => {
                    counts.messages_received += 1;
                    counts.bytes_received += bytes.len() as u64;
                    if let Some(player) = player_of(&mut players, conn) {
                        counts.ticks_heard += hear(player, &bytes);
                    }
                }
                Inbound::Closed { conn, reason } => {
                    if let Some(player) = player_of(&mut players, conn)
                        && player.stage != Stage::Refused
                    {
                        let early = match player.stage {
                            Stage::Joining | Stage::Seated => true,
                            Stage::Playing => player.received == 0,
                            Stage::Refused | Stage::Gone => false,
                        };
                        if early {
                            lost_early.note(&reason);
                        }
                        player.stage = Stage::Gone;
                    }
                }
            },
            _ = ticker.tick() => {
                // Clients join in waves, so handshakes never pile up at the server.
                let joining = players.iter().filter(|p| p.stage == Stage::Joining).count();
                let room = (MAX_JOINING.saturating_sub(joining)).min(JOINS_PER_TICK);
                for _ in 0..room.min(clients - players.len()) {
                    let index = players.len();
                    let id = index as u64 + 1;
                    let server = args.server.clone();
                    let conn = Connection::connect(id, endpoint.clone(), server, inbound_tx.clone(), transport);
                    conn.send(&encode(&hello_of(index)), Delivery::Reliable);
                    players.push(Player {
                        conn,
                        stage: Stage::Joining,
                        received: 0,
                        clock: None,
                        input_size: 0,
                        seed: id,
                    });
                }
                let now = Instant::now();
                let sent_at = (now - epoch).as_micros() as u64;
                for player in players.iter().filter(|p| p.stage == Stage::Playing) {
                    let changes = args.input_changes_every;
                    if let Some(bytes) = update(player, now, sent_at, tick_us, args.lead, changes) {
                        counts.messages_sent += 1;
                        counts.bytes_sent += bytes.len() as u64;
                        player.conn.send(&bytes, Delivery::Unreliable);
                    }
                }
                match began {
                    None => {
                        let playing = players.iter().filter(|p| p.stage == Stage::Playing).count();
                        // Every game has started, and its ticks are flowing.
                        let settled = players.len() == clients
                            && players.iter().all(|p| match p.stage {
                                Stage::Joining | Stage::Seated => false,
                                Stage::Playing => p.received > 0,
                                Stage::Refused | Stage::Gone => true,
                            });
                        if settled && playing > 0 {
                            if let Some(losses) = lost_early.describe() {
                                eprintln!("warning: {losses}");
                            }
                            began = Some((now, process_cpu(), counts));
                        } else if now >= start_by {
                            let why = lost_early.describe().map_or(String::new(), |l| format!(" ({l})"));
                            return Err(format!("only {playing} of {clients} clients were playing after 60 s{why}"));
                        }
                    }
                    Some((at, _, _)) => {
                        bar.set_position((now - at).as_secs());
                        if now - at >= window {
                            break;
                        }
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    let (at, cpu_then, then) = began
        .ok_or_else(|| "the server closed every connection before the rooms started".to_string())?;
    let seconds = at.elapsed().as_secs_f64();
    let cpu = process_cpu().saturating_sub(cpu_then).as_secs_f64();
    let count = |stage| players.iter().filter(|p| p.stage == stage).count() as u64;
    let (seated, refused, lost) = (
        count(Stage::Playing),
        count(Stage::Refused),
        count(Stage::Gone),
    );
    for player in players {
        player
            .conn
            .send(&encode(&ClientMessage::Leave), Delivery::Reliable);
        player.conn.close("the load is done");
    }
    // The goodbyes get a moment to leave; what the connections still say is read and
    // dropped, so none waits on a full queue instead of closing.
    drop(inbound_tx);
    let drained = async { while inbound.recv().await.is_some() {} };
    let goodbyes = async { tokio::join!(endpoint.wait_idle(), drained) };
    let _ = tokio::time::timeout(Duration::from_secs(2), goodbyes).await;
    Ok(LoadReport {
        rooms: args.rooms,
        players: players_per_room,
        tick_rate: args.tick_rate,
        input_changes_every: args.input_changes_every,
        seated,
        refused,
        lost,
        seconds: rounded(seconds, 3),
        ticks_per_client: rounded(
            (counts.ticks_heard - then.ticks_heard) as f64 / seated.max(1) as f64,
            1,
        ),
        messages_sent: counts.messages_sent - then.messages_sent,
        bytes_sent: counts.bytes_sent - then.bytes_sent,
        messages_received: counts.messages_received - then.messages_received,
        bytes_received: counts.bytes_received - then.bytes_received,
        load_cpu_ms: rounded(cpu * 1000.0, 1),
        load_cpu_share: rounded(cpu / seconds, 3),
    })
}

/// The player on connection `conn` (numbered from 1).
fn player_of(players: &mut [Player], conn: u64) -> Option<&mut Player> {
    players.get_mut(usize::try_from(conn.checked_sub(1)?).ok()?)
}

/// Takes in what the server said to `player`; returns the verified ticks newly heard
/// of.
fn hear(player: &mut Player, bytes: &[u8]) -> u64 {
    let Ok(message) = decode::<ServerMessage>(bytes) else {
        return 0;
    };
    let now = Instant::now();
    // A message read late makes the room's clock look behind, never ahead: the
    // reading that puts the room furthest on is the truest.
    let mut set_clock = |timing: &Timing| {
        let Some(room_us) = timing.room_us else {
            return;
        };
        let ahead = player
            .clock
            .is_none_or(|(before, heard)| room_us > before + (now - heard).as_micros() as i64);
        if ahead {
            player.clock = Some((room_us, now));
        }
    };
    match message {
        ServerMessage::Welcome {
            room,
            entry,
            live,
            timing,
            ..
        } => {
            player.input_size = room.input_size as usize;
            set_clock(&timing);
            player.stage = match entry {
                Entry::Lobby => Stage::Seated,
                // The join that filled the room: the game starts now.
                Entry::FromStart if live == 0 => Stage::Playing,
                // The load joins rooms before they start; anything else is a room
                // already in play, which it does not enter.
                _ => Stage::Gone,
            };
            0
        }
        ServerMessage::Start { timing } => {
            set_clock(&timing);
            player.stage = Stage::Playing;
            0
        }
        ServerMessage::Verified { live, timing, .. } => {
            set_clock(&timing);
            let heard = live.saturating_sub(player.received);
            player.received = player.received.max(live);
            heard
        }
        ServerMessage::Heartbeat { timing, .. } => {
            set_clock(&timing);
            0
        }
        ServerMessage::Refused(_) => {
            player.stage = Stage::Refused;
            0
        }
        ServerMessage::End { .. } => {
            player.stage = Stage::Gone;
            0
        }
        _ => 0,
    }
}

/// The update `player` sends at `now`: its progress, and its input for every tick from
/// the first not yet verified to `lead` ticks past the one due now (input may be lost
/// on the way, as a real client's may: it is sent again until verified), changing
/// every `changes_every` ticks.
fn update(
    player: &Player,
    now: Instant,
    sent_at: u64,
    tick_us: i64,
    lead: u32,
    changes_every: u32,
) -> Option<Vec<u8>> {
    let (room_us, heard) = player.clock?;
    let room_now = room_us + (now - heard).as_micros() as i64;
    let due = room_now.div_euclid(tick_us).max(0) as Tick;
    let first_input = player.received + 1;
    let until = due + Tick::from(lead);
    let count = ((until + 1).saturating_sub(first_input) as usize).min(MAX_BATCH);
    // A game's input is a few bytes; a server that says otherwise gets no input.
    let size = player.input_size;
    if size > MAX_INPUT_SIZE {
        return None;
    }
    let mut inputs = vec![0; count * size];
    for (tick, input) in (first_input..).zip(inputs.chunks_exact_mut(size.max(1))) {
        fill_input(input, player.seed, tick, changes_every);
    }
    Some(encode(&ClientMessage::Update {
        sent_at,
        received: player.received,
        stepped: player.received,
        first_input,
        inputs,
        commands: Vec::new(),
        checksums: Vec::new(),
    }))
}

/// One tick's input of the player `seed`: zeros when input never changes, else bytes
/// drawn from the engine's RNG seeded by the player and the tick's period of
/// `changes_every` ticks.
fn fill_input(input: &mut [u8], seed: u64, tick: Tick, changes_every: u32) {
    if changes_every == 0 {
        return input.fill(0);
    }
    let mut rng = Rng::new(seed.rotate_left(32) ^ (tick / u64::from(changes_every)));
    for bytes in input.chunks_mut(8) {
        bytes.copy_from_slice(&rng.next_u64().to_le_bytes()[..bytes.len()]);
    }
}

/// CPU time this process has used.
fn process_cpu() -> Duration {
    tickstep_net::metrics::process_cpu().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seed: u64, tick: Tick, every: u32) -> [u8; 12] {
        let mut bytes = [0xff; 12];
        fill_input(&mut bytes, seed, tick, every);
        bytes
    }

    #[test]
    fn input_holds_for_its_period_and_differs_by_player_and_period() {
        assert_eq!(input(1, 5, 0), [0; 12], "0: no-op input");
        assert_eq!(input(1, 8, 4), input(1, 11, 4), "one period, one input");
        assert_ne!(input(1, 11, 4), input(1, 12, 4), "the next period");
        assert_ne!(input(1, 8, 1), input(1, 9, 1));
        assert_ne!(input(1, 8, 1), input(2, 8, 1), "another player");
        let bytes = input(3, 7, 1);
        assert_ne!(
            bytes[..4],
            bytes[8..],
            "a longer input is not one word repeated"
        );
    }
}
