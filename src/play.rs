//! `tickstep play`: a headless bot client that joins a room over QUIC (the server
//! pinned by its certificate), plays the arena with the bots' input, reconnects on its
//! own after an unexpected loss, keeps its reconnect info in a file as it plays, and
//! prints its final tick and checksum.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaGlobals, ArenaInput};
use tickstep_engine::{Checksum, Tick, checksum};
use tickstep_net::{NetClient, TransportConfig};
use tickstep_session::{
    Client, ClientConfig, ClientEvent, ClientId, ClientState, Entry, ReconnectInfo, SnapshotSource,
};

use crate::files;
use crate::game_args::ArenaArgs;
use crate::net_args::{APP_VERSION, NetArgs, TrustArgs};
use crate::output::{emit, progress_bar};
use crate::threads::ThreadArgs;

/// Arguments of `tickstep play`.
#[derive(Args)]
pub struct PlayArgs {
    /// The server's address (host:port).
    #[arg(long)]
    server: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// The local address to send from (a host with several addresses; default: any).
    #[arg(long, value_name = "IP")]
    bind: Option<std::net::IpAddr>,
    /// The room to join.
    #[arg(long, default_value = "main")]
    room: String,
    /// Keep the reconnect info (the secret client id, slot, resume token, last
    /// snapshot) in this file, readable by its owner only: read it at start when it
    /// exists (rejoining the same slot), rewrite it as the game runs. Without it the
    /// client id comes from the TICKSTEP_CLIENT_ID environment variable (32 hex
    /// digits), or a fresh one is drawn. Secrets never go on the command line, where
    /// every user can read them.
    #[arg(long, value_name = "FILE")]
    reconnect_file: Option<PathBuf>,
    /// Leave the game once the frame reaches this tick.
    #[arg(long)]
    ticks: u64,
    /// Watch the room without a seat: follow the game (from a buddy's snapshot when it
    /// is under way), send no input; no tick waits for this client.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    game: ArenaArgs,
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct PlayReport {
    player: Option<u8>,
    /// The client watched without a seat (`--watch`).
    watching: bool,
    final_tick: Tick,
    checksum: Checksum,
    rejoined: bool,
    resyncs: Vec<(Tick, SnapshotSource)>,
    /// Ticks on which the room filled in this player's own input (it came late).
    own_input_filled: u64,
    /// 99th percentile of input latency (sent to verified), in milliseconds.
    input_latency_p99_ms: Option<u64>,
}

/// Ticks simulated per round at most, so the network is never starved.
const STEP_BUDGET: u64 = 256;
/// The environment variable a client id may come from.
const CLIENT_ID_VARIABLE: &str = "TICKSTEP_CLIENT_ID";
/// How often the reconnect file is rewritten.
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &PlayArgs) -> Result<(), String> {
    crate::net_args::init_logging();
    let config = args.game.config();
    let trust = args.trust.trust()?;
    let initial = arena::new_frame(&config).map_err(|e| e.to_string())?;
    let info = reconnect_info(args)?;
    let rejoined = info.player.is_some();
    save(args, &info)?;
    let client_config = ClientConfig {
        app_version: APP_VERSION.into(),
        server_timeout: args.net.timeout(),
        watch: args.watch,
        ..ClientConfig::default()
    };
    let client = Client::new(client_config, info, initial, arena::simulation());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let transport = TransportConfig::with_timeout(args.net.timeout());
    let bar = progress_bar(args.ticks, "playing");
    let seed = config.seed;
    let mut resyncs = Vec::new();
    // When the reconnect file was last saved; `None`: save at once.
    let mut saved_at: Option<Duration> = None;
    let mut save_error = None;
    let mut joined_before = rejoined;
    // Stepping happens inside the simulation pool, so parallel queries use its threads.
    let outcome = args.threads.run(|| {
        runtime.block_on(async {
            let epoch = tokio::time::Instant::now();
            let mut net = NetClient::new(client, &args.server, &trust, transport, epoch)
                .map_err(|e| e.to_string())?;
            if let Some(ip) = args.bind {
                net.bind((ip, 0).into());
            }
            net.client.connect(net.now());
            net.pump();
            loop {
                let mut host = |client: &mut Client<ArenaGlobals, ArenaInput>, now: Duration| {
                    // Never past the last tick: the checksum printed is the one at it.
                    let budget = STEP_BUDGET.min(args.ticks.saturating_sub(client.frame().tick()));
                    let stepped = client.advance(now, budget);
                    crate::bots::play(client, now, seed);
                    while let Some(event) = client.poll_event() {
                        match &event {
                            ClientEvent::Resynced { tick, source, .. } => {
                                resyncs.push((*tick, *source))
                            }
                            // Back into a young game: re-entered from tick 0, not a snapshot.
                            ClientEvent::Joined {
                                entry: Entry::FromStart,
                                ..
                            } if joined_before => {
                                resyncs.push((0, SnapshotSource::Start));
                            }
                            _ => {}
                        }
                        let joined = matches!(event, ClientEvent::Joined { .. });
                        joined_before |= joined;
                        if joined {
                            // The welcome's resume token is the only one that brings this
                            // client back once it speaks: save it at once.
                            saved_at = None;
                        }
                        if !matches!(event, ClientEvent::CatchUpProgress { .. }) {
                            tracing::info!(?event);
                        }
                    }
                    if saved_at.is_none_or(|at| now >= at + SAVE_EVERY) {
                        saved_at = Some(now);
                        if let Err(e) = save(args, &client.reconnect_info()) {
                            save_error = Some(e);
                        }
                    }
                    bar.set_position(client.frame().tick());
                    stepped == budget && budget > 0
                };
                net.round(&mut host).await;
                if let Some(error) = save_error.take() {
                    return Err(error);
                }
                let playing = matches!(
                    net.client.state(),
                    ClientState::Running | ClientState::CatchingUp { .. }
                );
                if net.client.frame().tick() >= args.ticks && playing {
                    net.client.leave(net.now());
                    // Not naming the slot it left: started again, it joins anew.
                    let mut left = net.client.reconnect_info();
                    left.forget_slot();
                    let _ = save(args, &left);
                    net.pump();
                    // Let the leave and the goodbye reach the server.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(net.client);
                }
                if let Some(untrusted) = net.untrusted() {
                    return Err(untrusted.to_string());
                }
                if let ClientState::Disconnected(reason) = net.client.state() {
                    // A refusal that freed the slot forgot it: the next start joins anew.
                    save(args, &net.client.reconnect_info())?;
                    return Err(format!(
                        "stopped at tick {} before tick {}: {reason}",
                        net.client.frame().tick(),
                        args.ticks
                    ));
                }
            }
        })
    })?;
    bar.finish_and_clear();
    let client = outcome?;
    let stats = client.stats();
    let report = PlayReport {
        player: client.player().map(|p| p.0),
        watching: client.is_watching(),
        final_tick: client.frame().tick(),
        checksum: checksum(client.frame()),
        rejoined,
        resyncs,
        own_input_filled: stats.own_input_replaced,
        input_latency_p99_ms: stats
            .input_latency
            .percentile(99)
            .map(|d| d.as_millis() as u64),
    };
    emit(args.json, &report, |r| {
        let who = match (r.player, r.watching) {
            (Some(p), _) => format!("player {p}"),
            (None, true) => "watcher".into(),
            (None, false) => "player ?".into(),
        };
        format!("{who}: tick {} checksum {}", r.final_tick, r.checksum)
    })
}

/// The reconnect info to start from: the file's (pointed at this server and room) when
/// it exists, otherwise a first join.
fn reconnect_info(args: &PlayArgs) -> Result<ReconnectInfo, String> {
    if let Some(path) = &args.reconnect_file
        && path.exists()
    {
        let mut info = ReconnectInfo::from_bytes(&files::read_secret(path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if info.room != args.room {
            info.player = None;
            info.local_snapshot = None;
        }
        info.server = args.server.clone();
        info.room = args.room.clone();
        return Ok(info);
    }
    let id = match std::env::var(CLIENT_ID_VARIABLE) {
        Ok(hex) => hex
            .trim()
            .parse::<ClientId>()
            .map_err(|e| format!("{CLIENT_ID_VARIABLE}: {e}"))?,
        Err(_) => ClientId::generate().map_err(|e| e.to_string())?,
    };
    Ok(ReconnectInfo::new(&args.server, &args.room, id))
}

fn save(args: &PlayArgs, info: &ReconnectInfo) -> Result<(), String> {
    match &args.reconnect_file {
        Some(path) => files::write_secret(path, &info.to_bytes()),
        None => Ok(()),
    }
}
