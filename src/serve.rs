//! `tickstep serve`: host arena rooms over TCP until stopped (Ctrl-C or SIGTERM).

use clap::Args;
use std::io::Write;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaInput};
use tickstep_net::{ServerHost, TransportConfig, serve};
use tickstep_session::{RoomConfig, RoomEvent, Server, ServerConfig, ServerEvent};

use crate::game_args::ArenaArgs;
use crate::net_args::{APP_VERSION, NetArgs};

/// Arguments of `tickstep serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: the OS picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: String,
    /// Rooms to host, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "main")]
    rooms: Vec<String>,
    /// Ticks per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tick_rate: u32,
    /// The game ends after this tick (default: it runs until the room closes).
    #[arg(long)]
    ticks: Option<u64>,
    /// A room's game starts once this many players joined (default: every slot).
    #[arg(long)]
    start_players: Option<u8>,
    #[command(flatten)]
    game: ArenaArgs,
    #[command(flatten)]
    net: NetArgs,
}

/// Logs what happens in the rooms.
struct Log;

impl ServerHost<ArenaInput> for Log {
    fn after_round(&mut self, server: &mut Server<ArenaInput>, _now: Duration) {
        while let Some(ServerEvent { room, event }) = server.poll_event() {
            match event {
                RoomEvent::Evidence {
                    tick,
                    player,
                    snapshot,
                } => {
                    tracing::warn!(
                        room,
                        tick,
                        player = player.0,
                        bytes = snapshot.len(),
                        "desync evidence received"
                    );
                }
                RoomEvent::Desync { .. } | RoomEvent::BuddySnapshotRejected { .. } => {
                    tracing::warn!(room, ?event)
                }
                event => tracing::info!(room, ?event),
            }
        }
    }

    fn connection_note(&mut self, conn: u64, note: &str) {
        tracing::info!(conn, note, "connection");
    }
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    crate::net_args::init_logging();
    let config = args.game.config();
    let initial = arena::new_frame(&config).map_err(|e| e.to_string())?;
    let mut server = Server::<ArenaInput>::new(ServerConfig {
        peer_timeout: args.net.timeout(),
        ..ServerConfig::default()
    });
    for name in &args.rooms {
        let mut room = RoomConfig::new(config.players, APP_VERSION, &initial);
        room.tick_rate = args.tick_rate;
        room.end_tick = args.ticks;
        room.start_players = args
            .start_players
            .unwrap_or(config.players)
            .clamp(1, config.players);
        server.open_room(name, room).map_err(|e| e.to_string())?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening on {address}");
        let _ = std::io::stdout().flush();
        tracing::info!(%address, rooms = ?args.rooms, "serving");
        let transport = TransportConfig::with_timeout(args.net.timeout());
        serve(
            listener,
            server,
            transport,
            tokio::time::Instant::now(),
            &mut Log,
            stopped(),
        )
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
