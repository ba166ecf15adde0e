//! The browser client end to end, over real processes: `tickstep serve --web` serves
//! the page and takes the session over a WebSocket into the same rooms as QUIC.
//!
//! - A session client over a WebSocket (Rust, no browser) plays a game with two
//!   `tickstep play` bots and ends on their checksum — and on the offline run's, the
//!   oracle, when no one's input was filled in; and again over TLS (`wss://`, with a
//!   certificate from a CA the client trusts); and through a slow path (a relay in
//!   the test delaying each way by 80 ± 20 ms: the client's own input is still played,
//!   ≤ 1 % filled) and a path cut mid-game (50 ± 10 ms, cut at the client's tick 200:
//!   it reconnects and ends on the bots' checksum).
//! - The web door's bounds: unknown pages, non-GET, a plain GET of the socket, a text
//!   message, an oversized message, a silent socket, the per-address cap.
//! - Headless Chromium (Debian's `chromium`, or `TICKSTEP_CHROMIUM`) opens the page as
//!   a player with two bots and ends on their checksum; then a page that cuts its own
//!   connection mid-game rejoins (from its own snapshot, vouched by the room) and ends
//!   on it too; and a page opened without `&play` mid-game watches without a seat,
//!   entering on a buddy's snapshot, to the same checksum. Skipped,
//!   saying why, where Chromium or the built client (`web/build`) is missing; CI has
//!   both and sets `TICKSTEP_REQUIRE_BROWSER=1`, which makes a skip a failure.
//!   `TICKSTEP_SCREENSHOT=FILE` saves a PNG of the rejoined page (the README's).
//!
//! Every wait has a deadline.

mod processes;

use futures_util::{SinkExt, StreamExt};
use processes::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tickstep_arena::{self as arena, ArenaConfig, ArenaRun};
use tickstep_engine::checksum;
use tickstep_session::{
    Client, ClientConfig, ClientEvent, ClientId, ClientState, ClientTransmit, ReconnectInfo,
    ServerMessage, decode, encode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const SEED: u64 = 11;

/// A server for `players` ending at `ticks` with `extra` flags, its page's base URL
/// (`http://HOST:PORT/`, printed after the other start-up lines) and its metrics
/// page's (with `--metrics`).
fn web_server(
    dir: &Path,
    players: u8,
    ticks: u64,
    extra: &[&str],
) -> (Server, String, Option<String>) {
    let mut flags = vec!["--web", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    let server = Server::start(dir, &server_args(players, ticks, &flags));
    let mut metrics = None;
    let url = loop {
        let line = server.next_line();
        if let Some(url) = line.strip_prefix("metrics at ") {
            metrics = Some(url.to_string());
            continue;
        }
        let url = line
            .strip_prefix("web page at ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        break url.to_string();
    };
    let plain = url.starts_with("http://127.0.0.1:");
    assert!(plain || url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(url.ends_with('/'), "{url}");
    (server, url, metrics)
}

/// `host:port` of a page URL.
fn host_of(url: &str) -> &str {
    let url = url.trim_start_matches("http://");
    url.split_once('/').map_or(url, |(host, _)| host)
}

/// [`http_exchange`] with the page's server.
fn raw_http_bytes(url: &str, request: &str) -> Vec<u8> {
    http_exchange(host_of(url), request)
}

/// [`raw_http_bytes`] as text.
fn raw_http(url: &str, request: &str) -> String {
    String::from_utf8_lossy(&raw_http_bytes(url, request)).into_owned()
}

fn get(url: &str, path: &str) -> String {
    raw_http(url, &format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n"))
}

/// The body of a 200 answer to `GET path`.
fn page(url: &str, path: &str) -> Vec<u8> {
    let mut answer = raw_http_bytes(url, &format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n"));
    let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "GET {path}: {head}");
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    answer.split_off(at + 4)
}

/// Opens the session WebSocket of the page at `url`.
async fn open_socket(url: &str) -> WebSocketStream<TcpStream> {
    let host = host_of(url);
    let stream = TcpStream::connect(host)
        .await
        .expect("the web port accepts");
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{host}/ws"), stream)
        .await
        .expect("the WebSocket handshake succeeds");
    socket
}

/// The arena every process of these tests plays.
fn arena_config(players: u8) -> ArenaConfig {
    ArenaConfig {
        units: ENTITIES,
        players,
        seed: SEED,
    }
}

/// How a session client's game over WebSockets ended.
struct Played {
    tick: u64,
    checksum: String,
    /// Ticks the room filled in for the client's own input.
    filled: u64,
    state: ClientState,
    /// WebSockets opened (more than one: it reconnected).
    connects: u32,
    /// The newest tick the frame had reached at each reconnection.
    reconnected_at: Vec<u64>,
    /// The round trip the client measured last.
    rtt: Duration,
}

/// Who a session client over WebSockets is in its room.
enum Joining {
    /// A player in room `main` of the tests' arena with `players` slots.
    Play { players: u8 },
    /// A watcher, without a seat, of `room`'s game of `arena`, built as `app_version`.
    Watch {
        room: &'static str,
        arena: ArenaConfig,
        app_version: String,
    },
}

/// A session client, playing the bots' input or watching as `joining` says, over
/// WebSockets `open` opens until it stops (or 90 s pass), telling `stepped` its
/// frame's tick as it goes.
async fn play_over_websocket<S: AsyncRead + AsyncWrite + Unpin>(
    open: impl AsyncFn() -> WebSocketStream<S>,
    joining: Joining,
    mut stepped: impl FnMut(u64),
) -> Played {
    let (room, arena, app_version, watch) = match joining {
        Joining::Play { players } => ("main", arena_config(players), APP_VERSION.into(), false),
        Joining::Watch {
            room,
            arena,
            app_version,
        } => (room, arena, app_version, true),
    };
    let initial = arena::new_frame(&arena).expect("the arena");
    let config = ClientConfig {
        app_version,
        server_timeout: Duration::from_secs(3),
        watch,
        ..ClientConfig::default()
    };
    let info = ReconnectInfo::new("", room, ClientId::from_seed(0x3eb));
    let mut client = Client::new(config, info, initial, arena::simulation());
    let epoch = tokio::time::Instant::now();
    let mut socket: Option<WebSocketStream<S>> = None;
    let mut connects = 0;
    let mut reconnected_at = Vec::new();
    let mut reached = 0;
    client.connect(epoch.elapsed());
    let deadline = Instant::now() + Duration::from_secs(90);
    while !client.state().is_disconnected() && Instant::now() < deadline {
        let now = epoch.elapsed();
        while let Some(transmit) = client.poll_transmit(now) {
            match transmit {
                ClientTransmit::Connect => {
                    if connects > 0 {
                        reconnected_at.push(reached);
                    }
                    connects += 1;
                    socket = Some(open().await);
                }
                ClientTransmit::Send(message) => {
                    if let Some(socket) = &mut socket {
                        let _ = socket.send(Message::Binary(encode(&message).into())).await;
                    }
                }
                ClientTransmit::Close => {
                    if let Some(mut socket) = socket.take() {
                        let frame = CloseFrame {
                            code: CloseCode::Normal,
                            reason: "the client left".into(),
                        };
                        let _ = socket.close(Some(frame)).await;
                    }
                }
            }
        }
        let wake = client
            .poll_timeout()
            .map_or(Duration::from_millis(50), |at| at.saturating_sub(now));
        let heard = async {
            match &mut socket {
                Some(socket) => socket.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = heard => {
                let now = epoch.elapsed();
                match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        let message = decode::<ServerMessage>(&bytes).expect("the server speaks the protocol");
                        client.handle_message(now, message);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        socket = None;
                        let why = frame.map_or("no reason".into(), |f| f.reason.to_string());
                        client.handle_connection_lost(now, &format!("the server closed the connection: {why}"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        socket = None;
                        client.handle_connection_lost(now, "lost");
                    }
                }
            }
            _ = tokio::time::sleep(wake.min(Duration::from_millis(50))) => {}
        }
        let now = epoch.elapsed();
        client.handle_timeout(now);
        client.advance(now, 256);
        reached = reached.max(client.frame().tick());
        stepped(client.frame().tick());
        if let Some(player) = client.player() {
            while let Some(tick) = client.next_input_tick(now) {
                client.send_input(now, arena::bot_input(SEED, tick, player));
                if let Some(command) = arena::bot_command(SEED, tick, player) {
                    let _ = client.send_command(now, bytemuck::bytes_of(&command));
                }
            }
        }
        while let Some(event) = client.poll_event() {
            if let ClientEvent::StepFailed { tick, error } = event {
                panic!("step {tick} failed: {error}");
            }
        }
    }
    let frame = client.frame();
    Played {
        tick: frame.tick(),
        checksum: checksum(frame).to_string(),
        filled: client.stats().own_input_replaced,
        state: client.state(),
        connects,
        reconnected_at,
        rtt: client.stats().rtt,
    }
}

/// The offline run of the arena with every player a bot, to `ticks`: the oracle.
fn offline_checksum(players: u8, ticks: u64) -> String {
    let mut run = ArenaRun::new(&arena_config(players)).expect("the arena");
    run.run_to(ticks, |_| {}).expect("the offline run");
    checksum(run.frame()).to_string()
}

/// Ticks in a game of these tests over WebSockets.
const TICKS: u64 = 600;

/// A game of three over `serve --web` (with `extra` flags): two `play` bots over
/// QUIC, and a session client over WebSockets `open` opens (given the page's URL;
/// `stepped` hears its frame's tick), which ends on the bots' checksum, and on the
/// offline run's when nothing was filled.
fn websocket_game<S: AsyncRead + AsyncWrite + Unpin>(
    test: &str,
    extra: &[&str],
    open: impl AsyncFn(&str) -> WebSocketStream<S>,
    stepped: impl FnMut(u64),
) -> Played {
    let dir = temp_dir(test);
    let (server, url, _) = web_server(&dir, 3, TICKS, extra);
    let game = game_args(3, ENTITIES);
    let mut bots: Vec<Proc> = (0..2)
        .map(|i| play(&dir, &format!("bot{i}"), &server, None, TICKS, &game, &[]))
        .collect();
    let playing = Joining::Play { players: 3 };
    let played = runtime().block_on(play_over_websocket(
        async || open(&url).await,
        playing,
        stepped,
    ));
    let state = &played.state;
    assert_eq!(
        played.tick,
        TICKS,
        "{state:?}\n{}",
        server.proc.stderr_tail()
    );
    assert!(
        matches!(
            state,
            ClientState::Disconnected(tickstep_session::DisconnectReason::GameEnded)
        ),
        "{state:?}"
    );
    let reports: Vec<_> = bots
        .iter_mut()
        .map(|bot| bot.report(Duration::from_secs(60)))
        .collect();
    for report in &reports {
        assert_eq!(report["final_tick"], TICKS, "{report}");
        assert_eq!(
            checksum_of(report),
            played.checksum,
            "the WebSocket client and a QUIC bot agree"
        );
    }
    // Nothing lost: what every player sent is what was played. (A client that
    // reconnected sent nothing while away, and entered after it: its count of filled
    // ticks does not cover the ticks played without it.)
    let nothing_filled = played.connects == 1
        && played.filled == 0
        && reports.iter().all(|r| r["own_input_filled"] == 0);
    if nothing_filled {
        assert_eq!(
            played.checksum,
            offline_checksum(3, TICKS),
            "the offline run is the oracle"
        );
    } else {
        eprintln!("input was filled in (a loaded machine or a cut): no offline oracle this time");
    }
    played
}

#[test]
fn a_websocket_client_plays_a_game_with_quic_bots_on_their_checksum() {
    websocket_game(
        "websocket-game",
        &[],
        async |url: &str| open_socket(url).await,
        |_| {},
    );
}

#[test]
fn over_tls_a_websocket_client_plays_on_the_same_checksum() {
    let dir = temp_dir("wss-certificate");
    let (ca, cert, key) = certificate_files(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let roots = Arc::new(root_store(&ca));
    websocket_game(
        "wss-game",
        &["--cert", cert, "--key", key],
        async |url: &str| {
            assert!(url.starts_with("https://"), "{url}");
            let host = url.trim_start_matches("https://").trim_end_matches('/');
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            let tcp = TcpStream::connect(host)
                .await
                .expect("the web port accepts");
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .expect("the server's certificate is trusted");
            let (socket, _) = tokio_tungstenite::client_async(format!("wss://{host}/ws"), tls)
                .await
                .expect("the WebSocket handshake succeeds");
            socket
        },
        |_| {},
    );
}

/// A path across the internet for a test: a TCP relay to a server that delays what
/// crosses it, each way, by `latency` plus up to `jitter` (in order, as TCP delivers),
/// and cuts the connections it relays when told (both sockets dropped, no goodbye).
/// Runs on its own runtime, stopped when dropped.
struct SlowPath {
    addr: std::net::SocketAddr,
    cuts: Arc<tokio::sync::Notify>,
    _runtime: tokio::runtime::Runtime,
}

impl SlowPath {
    fn start(target: &str, latency: Duration, jitter: Duration) -> SlowPath {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        // Bound here, listened on in the path's runtime (this may run inside another).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the path");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("its address");
        let target = target.to_string();
        let cuts = Arc::new(tokio::sync::Notify::new());
        let cut = cuts.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            for n in 0u64.. {
                let Ok((near, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(far) = TcpStream::connect(&target).await else {
                    continue;
                };
                let _ = (near.set_nodelay(true), far.set_nodelay(true));
                let cut = cut.clone();
                tokio::spawn(async move {
                    let (near_read, near_write) = near.into_split();
                    let (far_read, far_write) = far.into_split();
                    let both = async {
                        tokio::join!(
                            delayed(near_read, far_write, latency, jitter, 2 * n + 1),
                            delayed(far_read, near_write, latency, jitter, 2 * n + 2),
                        )
                    };
                    tokio::select! {
                        _ = both => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        SlowPath {
            addr,
            cuts,
            _runtime: runtime,
        }
    }

    /// Cuts every connection the path relays now.
    fn cut(&self) {
        self.cuts.notify_waiters();
    }
}

/// Copies `from` to `to`, each read delivered `latency` ± `jitter` after it came
/// (never before the one before it); closes `to` after the end of `from`.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    latency: Duration,
    jitter: Duration,
    seed: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (queue, mut due) = tokio::sync::mpsc::unbounded_channel();
    let reading = async move {
        let mut buffer = vec![0; 64 * 1024];
        let mut last = tokio::time::Instant::now();
        let mut state = seed;
        while let Ok(n @ 1..) = from.read(&mut buffer).await {
            // xorshift: the jitter of each read.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let spread = state % (2 * jitter.as_micros() as u64 + 1);
            let delay = latency.saturating_sub(jitter) + Duration::from_micros(spread);
            let at = (tokio::time::Instant::now() + delay).max(last);
            last = at;
            if queue.send((at, buffer[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let writing = async move {
        while let Some((at, bytes)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

/// A WebSocket to the page's server at `url` through `path`, which opens on first use
/// with `latency` and `jitter` each way.
async fn open_socket_through(
    path: &std::sync::OnceLock<SlowPath>,
    (latency, jitter): (Duration, Duration),
    url: &str,
) -> WebSocketStream<TcpStream> {
    let path = path.get_or_init(|| SlowPath::start(host_of(url), latency, jitter));
    let stream = TcpStream::connect(path.addr)
        .await
        .expect("the path accepts");
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", host_of(url)), stream)
        .await
        .expect("the WebSocket handshake succeeds");
    socket
}

/// 80 ± 20 ms each way: the client's lead covers the trip, so what it sends is played
/// (the room filled 98 % of ticks at 30 ms before input timing learned the path).
#[test]
fn a_websocket_client_80_ms_away_keeps_its_input() {
    let path = std::sync::OnceLock::new();
    let slow = (Duration::from_millis(80), Duration::from_millis(20));
    let open = async |url: &str| open_socket_through(&path, slow, url).await;
    let played = websocket_game("websocket-far", &[], open, |_| {});
    assert_eq!(played.connects, 1);
    assert!(played.rtt >= Duration::from_millis(120), "{:?}", played.rtt);
    assert!(
        played.filled * 100 <= TICKS,
        "{} of {TICKS} ticks of the client's input filled in",
        played.filled
    );
}

/// 50 ± 10 ms each way, and the path cut when the client's frame reaches tick 200:
/// it notices, reconnects through it and ends on the bots' checksum.
#[test]
fn a_websocket_client_cut_mid_game_over_a_slow_path_rejoins() {
    let path = std::sync::OnceLock::new();
    let slow = (Duration::from_millis(50), Duration::from_millis(10));
    let open = async |url: &str| open_socket_through(&path, slow, url).await;
    let mut cut = false;
    let stepped = |tick| {
        if tick >= 200 && !cut {
            cut = true;
            path.get().expect("the path is open").cut();
        }
    };
    let played = websocket_game("websocket-cut", &[], open, stepped);
    assert!(
        played
            .reconnected_at
            .iter()
            .any(|t| (200..TICKS).contains(t)),
        "it reconnected mid-game (at ticks {:?})",
        played.reconnected_at
    );
}

/// A CA and a certificate it issued for localhost: the CA's PEM, the certificate's
/// and its key's, as files in `dir`.
fn certificate_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, cert.pem()).unwrap();
    std::fs::write(&files.2, key.serialize_pem()).unwrap();
    files
}

/// Roots holding the CA certificate in `path`.
fn root_store(path: &Path) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(path).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

#[test]
fn the_web_door_answers_within_its_bounds() {
    let dir = temp_dir("web-door");
    let extra = [
        "--hello-timeout",
        "2",
        "--max-connections-per-address",
        "3",
        "--metrics",
        "127.0.0.1:0",
    ];
    let (_server, url, metrics) = web_server(&dir, 2, 100_000, &extra);
    // The game's setup, for the page's client.
    let game: serde_json::Value = serde_json::from_slice(&page(&url, "/game.json")).expect("JSON");
    assert_eq!(game["units"], ENTITIES);
    assert_eq!(game["players"], 2);
    assert_eq!(game["seed"], SEED.to_string());
    assert_eq!(game["app_version"], APP_VERSION);
    assert_eq!(game["tick_rate"], 120);
    assert_eq!(game["timeout_ms"], 3000);
    let index = String::from_utf8(page(&url, "/")).expect("UTF-8");
    assert!(
        index.contains("id=\"status\"") || index.contains("built without the browser client"),
        "{index}"
    );
    assert!(get(&url, "/nope").starts_with("HTTP/1.1 404 "));
    assert!(raw_http(&url, "POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(raw_http(&url, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(
        get(&url, "/ws").starts_with("HTTP/1.1 426 "),
        "a plain GET of the socket"
    );
    runtime().block_on(async {
        let ended = |socket: WebSocketStream<TcpStream>| async move {
            let mut socket = socket;
            let end = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return None,
                    }
                }
            });
            end.await.expect("the server ends the socket within 10 s")
        };
        // A text message is not the protocol: closed as a policy violation.
        let mut socket = open_socket(&url).await;
        socket.send(Message::Text("hello?".into())).await.unwrap();
        assert_eq!(
            ended(socket).await,
            None,
            "no hello yet: the socket is dropped"
        );
        // A message past the protocol's limit: dropped before it is buffered.
        let mut socket = open_socket(&url).await;
        let huge = vec![0u8; tickstep_session::MAX_MESSAGE_LEN + 1];
        let _ = socket.send(Message::Binary(huge.into())).await;
        assert_eq!(ended(socket).await, None, "an oversized message");
        // A hello 16 KiB long (its room's name): dropped once it passes a hello's worth,
        // never read whole (read whole, it would be answered NoSuchRoom and closed).
        let mut socket = open_socket(&url).await;
        let frame = arena::new_frame(&ArenaConfig {
            units: 0,
            players: 1,
            seed: 0,
        })
        .expect("an arena");
        let room = "r".repeat(16 << 10);
        let hello = tickstep_session::Hello::new("t", &frame, room, ClientId::from_seed(9));
        let long = encode(&tickstep_session::ClientMessage::Hello(Box::new(hello)));
        let _ = socket.send(Message::Binary(long.into())).await;
        assert_eq!(
            ended(socket).await,
            None,
            "a first message past a hello's worth"
        );
        // A socket that never says hello: closed after the hello timeout.
        let began = Instant::now();
        let socket = open_socket(&url).await;
        assert_eq!(ended(socket).await, Some(CloseCode::Normal));
        assert!(
            began.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            began.elapsed()
        );
        // Three silent sockets from one address fill its cap (for the 2 s they may
        // wait for a hello): a fourth visitor is refused before a word is read.
        let held = [
            open_socket(&url).await,
            open_socket(&url).await,
            open_socket(&url).await,
        ];
        assert_eq!(get(&url, "/game.json"), "", "closed unanswered at the cap");
        drop(held);
    });
    // The text, the oversized message, the long first message and the silent socket
    // failed their visits; the pages answered (errors included) did not.
    let metrics = metrics.expect("a metrics URL");
    let failed = wait_until(
        Duration::from_secs(10),
        "the failed visits counted",
        || {
            let (_, page) = http_get(&metrics);
            let value = metric(&page, "tickstep_web_visits_failed_total");
            (value >= 4).then_some(value)
        },
        || "no count of failed visits".into(),
    );
    assert!(
        failed <= 7,
        "{failed}: and the three silent sockets at most"
    );
}

/// A Chromium to drive, or why there is none.
fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("TICKSTEP_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let names = ["chromium", "chromium-browser", "google-chrome"];
    std::env::split_paths(&path)
        .flat_map(|dir| names.map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "no Chromium found (apt-get install chromium, or set TICKSTEP_CHROMIUM)".into()
        })
}

/// Whether this `tickstep` carries the browser client, or why not.
fn client_built(url: &str) -> Result<(), String> {
    match get(url, "/pkg/tickstep_web_bg.wasm").starts_with("HTTP/1.1 200 ") {
        true => Ok(()),
        false => Err("tickstep was built without the browser client (run web/build)".into()),
    }
}

/// A headless Chromium showing one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    socket: WebSocketStream<TcpStream>,
    next_id: u64,
    _profile: PathBuf,
}

impl Browser {
    /// Opens `url` in a fresh headless Chromium at `program`.
    async fn open(program: &Path, dir: &Path, url: &str) -> Browser {
        let profile = dir.join("chromium-profile");
        let log = std::fs::File::create(dir.join("chromium.stderr")).expect("a log file");
        let mut child = Command::new(program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1120,700",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Chromium starts");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(at) = line.strip_prefix("DevTools listening on ws://") {
                    let _ = tx.send(at.split('/').next().unwrap_or_default().to_string());
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("Chromium prints its DevTools address within 30 s");
        let page = wait_until(
            Duration::from_secs(20),
            "the page target",
            || {
                let list = raw_http(
                    &format!("http://{host}/"),
                    "GET /json/list HTTP/1.1\r\nconnection: close\r\n\r\n",
                );
                let body = list.split_once("\r\n\r\n")?.1;
                let targets: serde_json::Value = serde_json::from_str(body).ok()?;
                let page = targets.as_array()?.iter().find(|t| t["type"] == "page")?;
                Some(page["webSocketDebuggerUrl"].as_str()?.to_string())
            },
            || "no page target".into(),
        );
        // The path only: the host in the URL is what the request named.
        let path = &page[page.find("/devtools/").expect("a DevTools path")..];
        let stream = TcpStream::connect(host.as_str())
            .await
            .expect("DevTools accepts");
        let (socket, _) = tokio_tungstenite::client_async(format!("ws://{host}{path}"), stream)
            .await
            .expect("the DevTools handshake");
        Browser {
            child,
            socket,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Calls a DevTools method and returns its result.
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = serde_json::json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::Text(request.to_string().into()))
            .await
            .expect("DevTools takes the call");
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(20), self.socket.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = reply else {
                panic!("DevTools did not answer {method}: {reply:?}");
            };
            let reply: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page.
    async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expression, "returnByValue": true });
        self.call("Runtime.evaluate", params).await["result"]["value"].clone()
    }

    /// Saves a PNG of the page to `path`.
    async fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let screen = serde_json::json!({
            "width": 1100, "height": 680, "deviceScaleFactor": 1, "mobile": false
        });
        self.call("Emulation.setDeviceMetricsOverride", screen)
            .await;
        let params = serde_json::json!({ "format": "png" });
        let shot = self.call("Page.captureScreenshot", params).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64");
        std::fs::write(path, png).expect("the screenshot is saved");
    }

    /// The status element's data attributes.
    async fn status(&mut self) -> serde_json::Value {
        let read = "JSON.stringify(Object.assign({}, document.getElementById('status')?.dataset))";
        let text = self.eval(read).await;
        serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or_default()
    }

    /// Polls the status until `done` says so, failing after `limit`.
    async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                let timeline = self
                    .eval("document.getElementById('timeline').innerText")
                    .await;
                panic!("timed out waiting for {what}: {status}\ntimeline:\n{timeline}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tick in a status.
fn tick_of(status: &serde_json::Value) -> u64 {
    status["tick"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// `tickstep demo --web` serves the page beside the demo's room: a session client
/// watching over its WebSocket (as the page does) follows the demo's game, a drop and
/// a rejoin in it, to the end, on the checksum every demo client ended on.
#[test]
fn the_demos_page_shows_its_room_to_a_watcher() {
    const DEMO_TICKS: u64 = 900;
    let dir = temp_dir("demo-web");
    let arena = arena_config(3);
    let args: Vec<String> = [
        "demo",
        "--web",
        "127.0.0.1:0",
        "--players",
        "3",
        "--ticks",
        "900",
        "--drop",
        "1@200",
        "--rejoin",
        "1@400",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--entities".into(), ENTITIES.to_string()])
    .chain(["--seed".into(), SEED.to_string()])
    .collect();
    let mut demo = Proc::spawn(&dir, "demo", &args, &[], false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let said = demo.stderr_text();
        if let Some(line) = said.lines().find(|l| l.starts_with("web page at ")) {
            break line.trim_start_matches("web page at ").to_string();
        }
        assert!(Instant::now() < deadline, "no page address: {said}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/?room=demo"),
        "{url}"
    );
    // What the page reads to make the same initial frame: the demo's game.
    let game: serde_json::Value =
        serde_json::from_slice(&page(&url, "/game.json")).expect("game.json");
    assert_eq!(game["units"], ENTITIES, "{game}");
    assert_eq!(game["players"], 3, "{game}");
    assert_eq!(game["seed"], SEED.to_string(), "{game}");
    let app_version = game["app_version"].as_str().expect("app_version").into();
    let watching = Joining::Watch {
        room: "demo",
        arena,
        app_version,
    };
    let played = runtime().block_on(play_over_websocket(
        async || open_socket(&url).await,
        watching,
        |_| {},
    ));
    let report = demo.report(Duration::from_secs(120));
    assert_eq!(report["converged"], true, "{report}");
    assert_eq!(played.tick, DEMO_TICKS, "{:?}", played.state);
    assert!(
        matches!(
            played.state,
            ClientState::Disconnected(tickstep_session::DisconnectReason::GameEnded)
        ),
        "{:?}",
        played.state
    );
    for client in report["clients"].as_array().expect("clients") {
        assert_eq!(
            client["checksum"].as_str(),
            Some(played.checksum.as_str()),
            "the watcher and the demo's clients agree: {client}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Says why the browser tests do not run, or fails when they must
/// (`TICKSTEP_REQUIRE_BROWSER=1`).
fn skip(why: &str) {
    let required = std::env::var("TICKSTEP_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(!required, "the browser test must run here, but {why}");
    eprintln!("browser test skipped: {why}");
}

/// How the page takes part in a browser game.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    /// In the third seat, from the start.
    Plays,
    /// Without a seat, opened once the bots' game is past its start window (so it
    /// enters on a buddy's snapshot).
    WatchesMidGame,
}

/// A page in headless Chromium takes part in a game of two bots to `ticks` as `page`
/// says; `mid_game` runs on the browser once the page is in (a player past a third of
/// the game, a watcher entered on its snapshot).
/// Returns the page's final status, after checking it ended on the bots' checksum.
/// `None`: skipped (said why).
fn browser_game(
    test: &str,
    ticks: u64,
    page: Page,
    mid_game: impl AsyncFnOnce(&mut Browser),
) -> Option<serde_json::Value> {
    // One browser at a time: two Chromiums, two servers and four bots on two cores
    // would starve each other.
    static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let program = match chromium() {
        Ok(program) => program,
        Err(why) => {
            skip(&why);
            return None;
        }
    };
    let dir = temp_dir(test);
    let (slots, query) = match page {
        Page::Plays => (3, "?room=main&play"),
        Page::WatchesMidGame => (2, "?room=main"),
    };
    let (server, url, metrics) = web_server(&dir, slots, ticks, &["--metrics", "127.0.0.1:0"]);
    if let Err(why) = client_built(&url) {
        skip(&why);
        return None;
    }
    let game = game_args(slots, ENTITIES);
    let mut bots: Vec<Proc> = (0..2)
        .map(|i| play(&dir, &format!("bot{i}"), &server, None, ticks, &game, &[]))
        .collect();
    if page == Page::WatchesMidGame {
        // Past the room's start window (5 s at 120 Hz is tick 600): a joiner now needs
        // a snapshot.
        wait_for_ticks(&metrics.expect("metrics"), 700);
    }
    let status = runtime().block_on(async {
        let mut browser = Browser::open(&program, &dir, &format!("{url}{query}")).await;
        browser
            .wait_for(
                Duration::from_secs(60),
                "the page in the game",
                |s| match page {
                    Page::Plays => s["state"] == "running" && tick_of(s) > ticks / 3,
                    // Entered on a snapshot (it may be at the end by the first look).
                    Page::WatchesMidGame => s["resyncs"] != "0",
                },
            )
            .await;
        mid_game(&mut browser).await;
        browser
            .wait_for(Duration::from_secs(90), "the game's end", |s| {
                s["state"] == "ended" || s["state"] == "stopped"
            })
            .await
    });
    let reports: Vec<_> = bots
        .iter_mut()
        .map(|bot| bot.report(Duration::from_secs(60)))
        .collect();
    assert_eq!(
        status["state"],
        "ended",
        "{status}\n{}",
        server.proc.stderr_tail()
    );
    assert_eq!(tick_of(&status), ticks, "{status}");
    for report in &reports {
        assert_eq!(report["final_tick"], ticks, "{report}");
        assert_eq!(
            status["checksum"].as_str(),
            Some(checksum_of(report)),
            "the page ends on the bots' checksum: {status} {report}"
        );
    }
    Some(status)
}

#[test]
fn a_page_in_chromium_plays_a_game_to_the_end_on_the_bots_checksum() {
    browser_game(
        "chromium-game",
        1200,
        Page::Plays,
        async |_: &mut Browser| {},
    );
}

#[test]
fn a_page_without_play_watches_from_a_buddy_snapshot_to_the_bots_checksum() {
    let status = browser_game(
        "chromium-watch",
        2400,
        Page::WatchesMidGame,
        async |_: &mut Browser| {},
    );
    if let Some(status) = status {
        assert_eq!(status["player"], "-1", "no seat: {status}");
        let resyncs: u32 = status["resyncs"].as_str().unwrap().parse().unwrap();
        assert!(resyncs >= 1, "entered on a snapshot: {status}");
    }
}

#[test]
fn a_page_that_cuts_its_connection_rejoins_and_ends_on_the_bots_checksum() {
    let status = browser_game(
        "chromium-rejoin",
        1500,
        Page::Plays,
        async |browser: &mut Browser| {
            browser.eval("document.getElementById('cut').click()").await;
            browser
                .wait_for(Duration::from_secs(30), "the rejoin", |s| {
                    s["resyncs"] != "0" && s["state"] == "running"
                })
                .await;
            if let Some(path) = std::env::var_os("TICKSTEP_SCREENSHOT") {
                // A moment of play after the rejoin, then the picture for the README.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                browser.screenshot(Path::new(&path)).await;
            }
        },
    );
    if let Some(status) = status {
        let resyncs: u32 = status["resyncs"].as_str().unwrap().parse().unwrap();
        assert!(resyncs >= 1, "{status}");
    }
}
