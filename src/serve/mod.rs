//! `tickstep serve`: host arena rooms over QUIC, authenticated by a certificate (from
//! files, or self-signed at start) whose SHA-256 it prints for clients to pin. SIGTERM
//! or Ctrl-C drains it (no new games; running ones finish within the drain timeout);
//! it can serve metrics and a health check, and run as an Agones GameServer.

mod host;
mod operator;
pub(crate) mod web;

use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tickstep_arena::{self as arena, ArenaInput};
use tickstep_net::agones::{AgonesSdk, run_lifecycle};
use tickstep_net::{DoorLimits, Identity, TransportConfig, front_door, serve, server_endpoint};
use tickstep_session::{RoomConfig, Server, ServerConfig};
use tokio::sync::mpsc;

use host::RoomsHost;

use crate::game_args::ArenaArgs;
use crate::net_args::{APP_VERSION, NetArgs};
use crate::output::say;
use crate::threads::all_cores;

/// Arguments of `tickstep serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: the OS picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: String,
    /// Rooms to host, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "main")]
    rooms: Vec<String>,
    /// Host N rooms of each name: NAME-0 .. NAME-(N-1) (with 1, the names as given).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    room_count: u32,
    /// Ticks per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tick_rate: u32,
    /// Send verified input every N ticks (each message carries N ticks; fewer
    /// messages for up to N-1 ticks more input latency).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=tickstep_session::MAX_SEND_EVERY as i64))]
    send_every: u32,
    /// The game ends after this tick (default: it runs until the room closes).
    #[arg(long)]
    ticks: Option<u64>,
    /// Save desync evidence (the snapshots of a desynced tick, from the disagreeing
    /// players and one agreeing player) as files ROOM-tickT-playerP.snap in DIR, for
    /// `tickstep snapshot diff`.
    #[arg(long, value_name = "DIR")]
    evidence_dir: Option<PathBuf>,
    /// A room's game starts once this many players joined (default: every slot).
    #[arg(long)]
    start_players: Option<u8>,
    /// The server's certificate chain (PEM); without --cert and --key a self-signed
    /// certificate is made at start.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Players whose matching checksum reports vouch for a state another player may
    /// rejoin on.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    snapshot_quorum: u8,
    /// Seats (active or kept) one network address may hold in a room (default: no
    /// limit, so players behind one NAT can play).
    #[arg(long)]
    max_seats_per_address: Option<u8>,
    /// Watchers (connections following a room's game without a seat) a room takes at
    /// once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(0..=tickstep_session::MAX_WATCHERS as i64))]
    max_watchers: u16,
    /// Watchers one network address may have in a room at once (behind a reverse
    /// proxy every browser shares the proxy's address: raise it there).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    max_watchers_per_address: u8,
    /// Serve Prometheus metrics at http://ADDR/metrics and a health check at
    /// /healthz (port 0: the OS picks one; the address is printed).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Serve the browser client at http://ADDR/ (open ?room=NAME to watch room NAME,
    /// ?room=NAME&play to take a seat) and the session over a WebSocket at /ws, into
    /// the same rooms (port 0:
    /// the OS picks one; the address is printed). With --cert and --key: https://
    /// and wss://.
    #[arg(long, value_name = "ADDR")]
    web: Option<String>,
    /// Run as an Agones GameServer: Ready once listening, Health every 2 s, Allocated
    /// when the first game starts, Shutdown once every room has closed (the SDK's REST
    /// port from AGONES_SDK_HTTP_PORT, default 9358).
    #[arg(long)]
    agones: bool,
    /// Seconds running games may take to finish after SIGTERM or Ctrl-C (a second
    /// signal stops at once).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    drain_timeout: u64,
    /// Seconds of verified input a room keeps for players who (re)join (default 600:
    /// a game under ten minutes can be replayed from tick 0; at least --timeout + 30,
    /// so a player back within its seat's 20 s PlayerTTL finds its snapshot covered).
    /// A room's memory grows with it: 16 bytes a tick while 4 players' input changes
    /// every tick (0.6 MB over 600 s at 60 Hz), next to nothing while it holds.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
    history: u64,
    /// Event loops (threads) the rooms are dealt over, each room to one (default:
    /// every core; at most one per room).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    game: ArenaArgs,
    #[command(flatten)]
    net: NetArgs,
}

/// The server's resource bounds.
#[derive(Args)]
struct LimitArgs {
    /// Connections held at most.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Connections held at most from one address.
    #[arg(long, default_value_t = 1_000)]
    max_connections_per_address: usize,
    /// Seconds a new connection has to say hello.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    hello_timeout: u64,
    /// MiB queued to one connection at most; a peer further behind is cut (raised to
    /// two of the game's largest snapshots and 1 MiB if smaller).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    send_budget_mib: u64,
    /// Seconds a write may wait for a peer that stopped reading before it is cut.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    write_timeout: u64,
    /// MiB all unfinished uploads (buddy snapshots, evidence) may hold together.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    upload_budget_mib: u64,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    crate::net_args::init_logging();
    let config = args.game.config();
    let initial = arena::new_frame(&config).map_err(|e| e.to_string())?;
    let limits = &args.limits;
    let server_config = ServerConfig {
        peer_timeout: args.net.timeout(),
        max_connections: limits.max_connections,
        max_connections_per_address: limits.max_connections_per_address,
        hello_timeout: Duration::from_secs(limits.hello_timeout),
        upload_budget: limits.upload_budget_mib << 20,
        ..ServerConfig::default()
    };
    let names: Vec<String> = match args.room_count {
        1 => args.rooms.clone(),
        count => (args.rooms.iter())
            .flat_map(|name| (0..count).map(move |i| format!("{name}-{i}")))
            .collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = names.iter().find(|name| !seen.insert(*name)) {
        return Err(format!("room {twice:?} is named twice"));
    }
    // Rooms are dealt to the shards in turn; a room lives on one.
    let shards = args
        .threads
        .map_or_else(all_cores, usize::from)
        .clamp(1, names.len());
    let mut servers: Vec<Server<ArenaInput>> = (0..shards)
        .map(|_| Server::new(server_config.clone()))
        .collect();
    let mut placed = BTreeMap::new();
    let mut lobbies = vec![BTreeMap::new(); shards];
    for (i, name) in names.iter().enumerate() {
        let mut room = RoomConfig::new(config.players, APP_VERSION, &initial);
        room.snapshot_quorum = args.snapshot_quorum;
        room.max_seats_per_address = args.max_seats_per_address;
        room.max_watchers = args.max_watchers;
        room.max_watchers_per_address = args.max_watchers_per_address;
        room.tick_rate = args.tick_rate;
        room.send_every = args.send_every;
        room.history = history_for(args, room.player_ttl)?;
        room.end_tick = args.ticks;
        room.start_players = args
            .start_players
            .unwrap_or(config.players)
            .clamp(1, config.players);
        let shard = i % shards;
        servers[shard]
            .open_room(name, room.clone())
            .map_err(|e| e.to_string())?;
        lobbies[shard].insert(name.clone(), room);
        placed.insert(name.clone(), shard);
    }
    let runtime = current_thread_runtime()?;
    let listen = resolve(&args.listen)?;
    let identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Identity::from_pem_files(cert, key),
        _ => Identity::self_signed(&["localhost".into(), listen.ip().to_string()]),
    }
    .map_err(|e| e.to_string())?;
    // A whole snapshot must fit the send budget, and a buddy's the upload budget.
    let largest = tickstep_snapshot::max_len(initial.schema(), initial.world().capacity());
    let send_floor = 2 * largest + (1 << 20);
    let send_budget = (limits.send_budget_mib << 20).max(send_floor);
    if server_config.upload_budget < largest {
        return Err(format!(
            "--upload-budget-mib must hold one snapshot of this game ({} MiB)",
            largest.div_ceil(1 << 20)
        ));
    }
    let transport = TransportConfig {
        send_budget: send_budget as usize,
        write_timeout: Duration::from_secs(limits.write_timeout),
        ..TransportConfig::with_timeout(args.net.timeout())
    };
    // QUIC's UDP I/O runs on the one shard's loop when there is one: on a thread of its
    // own, every datagram cost a wake-up across threads, a fifth of the server's CPU.
    // Beside several shards it keeps a thread of its own (the "net-io" runtime), so no
    // shard's round of room ticks holds up the others' input. (Each QUIC connection's
    // TLS and packet work runs on the shard that ran its handshake: on more threads,
    // glibc's per-thread arenas held twice the memory of a connection flood; the
    // handshake limits bound that work.) The web door (its TCP I/O, pages and TLS
    // handshakes) runs on the net-io thread; a WebSocket's messages are handled on its
    // room's shard.
    let io_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("net-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let endpoint = {
        let _io = match shards {
            1 => runtime.enter(),
            _ => io_runtime.enter(),
        };
        server_endpoint(listen, &identity, &transport).map_err(|e| e.to_string())?
    };
    let address = endpoint.local_addr().map_err(|e| e.to_string())?;
    let door_limits = DoorLimits::of(&server_config, &transport);
    let (door, inboxes) = front_door(endpoint.clone(), shards, placed, door_limits);
    let door_stats = door.stats_handle();
    let agones = match args.agones {
        true => Some(AgonesSdk::from_env().map_err(|e| e.to_string())?),
        false => None,
    };
    let (controls, orders): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::channel(64)).unzip();
    let lifecycle_channel = agones.map(|sdk| (sdk, mpsc::unbounded_channel()));
    let rooms_open = Arc::new(AtomicUsize::new(names.len()));
    if let Some(dir) = &args.evidence_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut hosts = lobbies.into_iter().map(|lobbies| RoomsHost {
        lobbies,
        rooms_open: rooms_open.clone(),
        lifecycle: lifecycle_channel.as_ref().map(|(_, (tx, _))| tx.clone()),
        evidence_dir: args.evidence_dir.clone(),
    });
    // What can fail is set up before any shard starts: a shard that stopped on its
    // own would wait for the others forever.
    let (metrics, signals) = {
        let _runtime = runtime.enter();
        let metrics = match &args.metrics {
            Some(at) => Some(tcp_listener(at, "metrics")?),
            None => None,
        };
        (metrics, operator::Signals::listen()?)
    };
    let web = match &args.web {
        Some(at) => {
            let _io = io_runtime.enter();
            let timeout = args.net.timeout();
            let pages = web::pages(&config, args.tick_rate, APP_VERSION, timeout);
            // TLS with a certificate of the operator's; a self-signed one made at
            // start would only earn a browser's warning.
            let tls = match args.cert.is_some() {
                true => Some(identity.web_tls().map_err(|e| e.to_string())?),
                false => None,
            };
            Some(door.web(tcp_listener(at, "the web page")?, pages, tls))
        }
        None => None,
    };
    let io = io_runtime.handle().clone();
    let epoch = tokio::time::Instant::now();
    let mut jobs = servers.into_iter().zip(inboxes).zip(orders);
    let (main_shard, main_inbox) = jobs.next().ok_or("no rooms to serve")?;
    let main_host = hosts.next().ok_or("no rooms to serve")?;
    // Shards 1.. on threads of their own; shard 0 on this one. A connection's QUIC
    // work runs on the shard that ran its handshake, whichever shard hosts its room:
    // every shard's runtime keeps running until all of them have stopped.
    let (_, mut places) = operator::Shards::new(shards);
    let main_place = places.remove(0);
    let runtimes = (1..shards)
        .map(|_| current_thread_runtime())
        .collect::<Result<Vec<_>, _>>()?;
    let others: Vec<_> = jobs
        .zip(hosts)
        .zip(places)
        .zip(runtimes)
        .enumerate()
        .map(
            |(i, (((((server, inbox), orders), mut host), place), shard_runtime))| {
                std::thread::Builder::new()
                    .name(format!("shard-{}", i + 1))
                    .spawn(move || -> Result<(), String> {
                        shard_runtime.block_on(async {
                            let mut orders = orders;
                            let served =
                                serve(inbox, server, transport, epoch, &mut host, &mut orders);
                            let served =
                                served.await.map_err(|e| format!("the server failed: {e}"));
                            operator::linger(place, served.as_ref().ok(), &mut orders).await;
                            served.map(drop)
                        })
                    })
                    .map_err(|e| format!("cannot start a server thread: {e}"))
            },
        )
        .collect::<Result<_, _>>()?;
    let main = runtime.block_on(async move {
        say(format!("listening on {address}"))?;
        say(format!("certificate sha256 {}", identity.fingerprint()))?;
        if let Some(listener) = metrics {
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            say(format!("metrics at http://{at}/metrics"))?;
            let page = operator::serve_metrics(listener, controls.clone(), door_stats);
            tokio::spawn(page);
        }
        if let Some(web) = web {
            let at = web.local_addr().map_err(|e| e.to_string())?;
            let scheme = if web.is_secure() { "https" } else { "http" };
            say(format!("web page at {scheme}://{at}/"))?;
            if !web::client_built() {
                tracing::warn!("built without the browser client: run web/build, then build again");
            }
            io.spawn(web.run());
        }
        tracing::info!(%address, rooms = names.len(), shards, "serving");
        tokio::spawn(door.run());
        let drain_within = Duration::from_secs(args.drain_timeout);
        let looked_at = controls.clone();
        tokio::spawn(operator::stop_on_signals(signals, controls, drain_within));
        let lifecycle = lifecycle_channel.map(|(sdk, (tx, said))| {
            drop(tx);
            tracing::info!(sdk = %sdk.addr(), "running under Agones");
            // Well while every server loop answers.
            let well = move || operator::every_loop_answers(looked_at.clone());
            tokio::spawn(run_lifecycle(
                sdk,
                said,
                well,
                |call, result| match result {
                    Ok(()) => tracing::info!(call, "agones"),
                    Err(error) => tracing::warn!(call, %error, "agones"),
                },
            ))
        });
        let (server, inbox) = main_shard;
        let (mut host, mut orders) = (main_host, main_inbox);
        let served = serve(inbox, server, transport, epoch, &mut host, &mut orders).await;
        let served = served.map_err(|e| format!("the server failed: {e}"));
        operator::linger(main_place, served.as_ref().ok(), &mut orders).await;
        served?;
        Ok::<_, String>((host, lifecycle))
    });
    let mut failed = None;
    for thread in others {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some("a server thread panicked".to_string()),
        }
    }
    let (host, lifecycle) = main?;
    if let Some(error) = failed {
        return Err(error);
    }
    // What a host last told the SDK (Shutdown, after a drain) gets a moment to be
    // said; with every host gone, the channel closes and the lifecycle ends after it.
    drop(host);
    if let Some(lifecycle) = lifecycle {
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), lifecycle).await;
        });
    }
    endpoint.close(0u32.into(), b"the server stopped");
    tracing::info!("stopped");
    Ok(())
}

/// A TCP listener for `what` on `at` (inside a runtime).
/// Beyond a held seat's reach (silence until the timeout, then PlayerTTL), the history
/// keeps this much more: a returning player's snapshot was taken up to a few
/// seconds before it fell silent, and its catch-up starts after it is back.
const HISTORY_MARGIN: Duration = Duration::from_secs(10);

/// `--history`, refused when a player coming back before its seat is freed could find
/// its own snapshot older than the history.
fn history_for(args: &ServeArgs, player_ttl: Duration) -> Result<Duration, String> {
    let history = Duration::from_secs(args.history);
    let floor = args.net.timeout() + player_ttl + HISTORY_MARGIN;
    if history < floor {
        return Err(format!(
            "--history {} is shorter than a held seat's reach: at least {} s (--timeout + {} s PlayerTTL + {} s)",
            args.history,
            floor.as_secs_f64().ceil(),
            player_ttl.as_secs(),
            HISTORY_MARGIN.as_secs()
        ));
    }
    Ok(history)
}

fn tcp_listener(at: &str, what: &str) -> Result<tokio::net::TcpListener, String> {
    let listener = std_tcp_listener(at, what)?;
    let cannot = |e: std::io::Error| format!("cannot listen for {what} on {at}: {e}");
    tokio::net::TcpListener::from_std(listener).map_err(cannot)
}

/// A non-blocking TCP listener on `at` (for `what`, named in the error), ready to hand
/// to a runtime.
pub(crate) fn std_tcp_listener(at: &str, what: &str) -> Result<std::net::TcpListener, String> {
    let at = resolve(at)?;
    let cannot = |e: std::io::Error| format!("cannot listen for {what} on {at}: {e}");
    let listener = std::net::TcpListener::bind(at).map_err(cannot)?;
    listener.set_nonblocking(true).map_err(cannot)?;
    Ok(listener)
}

/// A runtime for one event loop.
fn current_thread_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))
}

/// The socket address `text` names (host:port; the first when a name has several).
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text} has no address"))
}
