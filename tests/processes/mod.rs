//! Real processes on loopback, shared by the process-level tests: `tickstep serve`
//! and `tickstep play` with OS-assigned ports, their output in files, killed when
//! their guards drop. Every wait has a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_engine::checksum;
use tickstep_net::{NetClient, TransportConfig, Trust};
use tickstep_session::{Client, ClientConfig, ClientId, ClientState, ReconnectInfo};

pub const BIN: &str = env!("CARGO_BIN_EXE_tickstep");
/// The app version every `tickstep` process of this build announces.
pub const APP_VERSION: &str = concat!("tickstep ", env!("CARGO_PKG_VERSION"));

/// A fresh directory for one test's files (logs, reconnect files).
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickstep-net-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temp dir can be created");
    dir
}

/// Units in the arena of the process tests.
pub const ENTITIES: u32 = 200;

/// `serve` flags for a room of `players` of [`ENTITIES`] units at 120 Hz (peers
/// silent for 3 s are lost) ending at `ticks`, and `extra`.
pub fn server_args(players: u8, ticks: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--tick-rate", "120", "--timeout", "3"]
        .map(String::from)
        .to_vec();
    args.extend(["--ticks".to_string(), ticks.to_string()]);
    args.extend(game_args(players, ENTITIES));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The game flags every process of a test shares.
pub fn game_args(players: u8, entities: u32) -> Vec<String> {
    vec![
        "--players".into(),
        players.to_string(),
        "--entities".into(),
        entities.to_string(),
        "--seed".into(),
        "11".into(),
    ]
}

/// A spawned `tickstep` process, its stdout and stderr in files (so a chatty process
/// never blocks on a full pipe). Killed and reaped on drop unless it already exited.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    /// Spawns `tickstep args` with stdout (unless `piped_stdout`) and stderr into files
    /// named after `name` in `dir`.
    pub fn spawn(
        dir: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
        piped_stdout: bool,
    ) -> Proc {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let out = if piped_stdout {
            Stdio::piped()
        } else {
            Stdio::from(std::fs::File::create(&stdout).expect("stdout file"))
        };
        let err = Stdio::from(std::fs::File::create(&stderr).expect("stderr file"));
        let mut command = Command::new(BIN);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the tickstep binary starts");
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "--- {} stderr (tail) ---\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit, failing the test after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait works") {
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {limit:?}\n{}",
                    self.name,
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (through `kill`, so no unsafe code is needed).
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM reached {}", self.name);
    }

    /// SIGKILL (on unix), then reaps it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        self.child.kill().expect("the process can be killed");
        self.wait(Duration::from_secs(10))
    }

    /// Waits for a `play --json` to finish successfully and returns its report.
    pub fn report(&mut self, limit: Duration) -> serde_json::Value {
        let status = self.wait(limit);
        assert!(
            status.success(),
            "{} failed ({status})\n{}",
            self.name,
            self.stderr_tail()
        );
        let stdout = self.stdout_text();
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{} printed no JSON report ({e}): {stdout:?}\n{}",
                self.name,
                self.stderr_tail()
            )
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `tickstep serve`, the address it listens on and its certificate's
/// SHA-256.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
    pub cert_sha256: String,
    /// Its stdout lines after the first two.
    pub lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `tickstep serve --listen 127.0.0.1:0 args` and reads the address and the
    /// certificate's fingerprint from its first two stdout lines.
    pub fn start(dir: &Path, args: &[String]) -> Server {
        Server::start_with(dir, args, &[])
    }

    /// [`Server::start`] with `env` set for the process.
    pub fn start_with(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Server {
        let mut all = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        all.extend_from_slice(args);
        let mut proc = Proc::spawn(dir, "serve", &all, env, true);
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        // Passes every line on, and keeps draining stdout until the server exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let line = || match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => panic!(
                "serve printed no address within 20 s\n{}",
                proc.stderr_tail()
            ),
        };
        let (line, cert) = (line(), line());
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}\n{}", proc.stderr_tail()))
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        let cert_sha256 = cert
            .trim()
            .strip_prefix("certificate sha256 ")
            .unwrap_or_else(|| panic!("unexpected second line {cert:?}"))
            .to_string();
        assert!(
            cert_sha256.len() == 64 && cert_sha256.chars().all(|c| c.is_ascii_hexdigit()),
            "{cert_sha256}"
        );
        Server {
            proc,
            addr,
            cert_sha256,
            lines,
        }
    }

    /// Its next stdout line, failing the test after 20 s.
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("serve printed no more lines\n{}", self.proc.stderr_tail()))
    }
}

/// Spawns `tickstep play --json` against `server`, keeping its reconnect info in
/// `reconnect_file` when given.
pub fn play(
    dir: &Path,
    name: &str,
    server: &Server,
    reconnect_file: Option<&Path>,
    ticks: u64,
    game: &[String],
    env: &[(&str, &str)],
) -> Proc {
    let mut args = vec![
        "play".to_string(),
        "--server".into(),
        server.addr.clone(),
        "--server-cert-sha256".into(),
        server.cert_sha256.clone(),
        "--ticks".into(),
        ticks.to_string(),
        "--timeout".into(),
        "3".into(),
        "--json".into(),
    ];
    if let Some(file) = reconnect_file {
        args.push("--reconnect-file".into());
        args.push(file.to_str().expect("a UTF-8 temp path").into());
    }
    args.extend_from_slice(game);
    Proc::spawn(dir, name, &args, env, false)
}

/// [`play`] without a reconnect file, with one more flag and its value.
pub fn play_with(
    dir: &Path,
    name: &str,
    server: &Server,
    ticks: u64,
    game: &[String],
    [flag, value]: [&str; 2],
) -> Proc {
    let mut args = game.to_vec();
    args.extend([flag.to_string(), value.to_string()]);
    play(dir, name, server, None, ticks, &args, &[])
}

/// The reconnect info saved in `path`, once it is there and readable.
pub fn saved_info(path: &Path) -> Option<ReconnectInfo> {
    ReconnectInfo::from_bytes(&std::fs::read(path).ok()?).ok()
}

/// Polls `probe` until it gives a value, failing the test after `limit`.
pub fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the play keeping `path` holds a slot and has a local snapshot past `tick`.
pub fn wait_for_progress(path: &Path, tick: u64, context: impl Fn() -> String) -> ReconnectInfo {
    wait_until(
        Duration::from_secs(30),
        &format!("{} to hold a slot past tick {tick}", path.display()),
        || {
            saved_info(path).filter(|info| {
                info.player.is_some() && info.local_snapshot.as_ref().is_some_and(|s| s.tick > tick)
            })
        },
        context,
    )
}

pub fn checksum_of(report: &serde_json::Value) -> &str {
    let sum = report["checksum"].as_str().expect("a checksum string");
    assert!(
        sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()),
        "{report}"
    );
    sum
}

/// A server at 120 Hz with a 3 s timeout and `players` plays of `game`, each with a
/// reconnect file in `dir`, leaving at `ticks`.
pub fn start_game(
    dir: &Path,
    game: &[String],
    players: usize,
    ticks: u64,
) -> (Server, Vec<PathBuf>, Vec<Proc>) {
    let mut args: Vec<String> = ["--tick-rate", "120", "--timeout", "3"]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(game);
    let server = Server::start(dir, &args);
    let files: Vec<PathBuf> = (0..players)
        .map(|i| dir.join(format!("play{i}.reconnect")))
        .collect();
    let plays = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            play(
                dir,
                &format!("play{i}"),
                &server,
                Some(file),
                ticks,
                game,
                &[],
            )
        })
        .collect();
    (server, files, plays)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Where a server is and what it proves itself with.
#[derive(Clone)]
pub struct Target {
    pub addr: String,
    pub cert_sha256: String,
}

pub fn target(server: &Server) -> Target {
    Target {
        addr: server.addr.clone(),
        cert_sha256: server.cert_sha256.clone(),
    }
}

pub fn trust(target: &Target) -> Trust {
    let pinned = tickstep_net::Fingerprint::parse(&target.cert_sha256);
    Trust::Pinned(pinned.expect("serve prints a fingerprint"))
}

/// A full session client for the arena (it plays the bots' input) over QUIC, whose
/// outgoing messages `tamper` may rewrite.
pub fn hostile_client(
    server: &Target,
    players: u8,
    entities: u32,
    seed: u64,
    tamper: tickstep_net::Tamper,
) -> NetClient<ArenaGlobals, ArenaInput> {
    let initial = arena::new_frame(&ArenaConfig {
        units: entities,
        players,
        seed: 11,
    })
    .expect("the arena");
    let config = ClientConfig {
        app_version: APP_VERSION.into(),
        server_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    };
    let info = ReconnectInfo::new(
        &server.addr,
        "main",
        ClientId::from_seed(0xbad0_0000 + seed),
    );
    let client = Client::new(config, info, initial, arena::simulation());
    let transport = TransportConfig::with_timeout(Duration::from_secs(3));
    let epoch = tokio::time::Instant::now();
    let mut net =
        NetClient::new(client, &server.addr, &trust(server), transport, epoch).expect("a client");
    net.set_tamper(tamper);
    net
}

/// Runs `net` (stepping, bot input) until `done` says so or `limit` passes.
pub async fn drive(
    net: &mut NetClient<ArenaGlobals, ArenaInput>,
    limit: Duration,
    mut done: impl FnMut(&Client<ArenaGlobals, ArenaInput>) -> bool,
) {
    let until = Instant::now() + limit;
    while !done(&net.client) && Instant::now() < until {
        let mut host = |client: &mut Client<ArenaGlobals, ArenaInput>, now: Duration| {
            let pending = tickstep_net::advance_for(client, now, Duration::from_millis(4));
            if let Some(player) = client.player() {
                while let Some(tick) = client.next_input_tick(now) {
                    client.send_input(now, arena::bot_input(11, tick, player));
                }
            }
            while client.poll_event().is_some() {}
            pending
        };
        net.round(&mut host).await;
    }
}

/// Runs a hostile session client on a thread of its own until the game ends (or 90 s
/// pass); returns its final tick and frame checksum. `welcomed` hears its slot.
pub fn hostile_thread(
    server: Target,
    players: u8,
    entities: u32,
    tamper: impl FnOnce() -> tickstep_net::Tamper + Send + 'static,
    welcomed: std::sync::mpsc::Sender<u8>,
) -> std::thread::JoinHandle<(u64, String)> {
    std::thread::spawn(move || {
        runtime().block_on(async {
            let mut net = hostile_client(&server, players, entities, 1, tamper());
            net.client.connect(net.now());
            net.pump();
            let mut told = false;
            drive(&mut net, Duration::from_secs(90), |client| {
                if !told && let Some(player) = client.player() {
                    told = true;
                    let _ = welcomed.send(player.0);
                }
                matches!(client.state(), ClientState::Disconnected(_))
            })
            .await;
            let frame = net.client.frame();
            (frame.tick(), checksum(frame).to_string())
        })
    })
}

/// Sends `request` as is to `host` (HOST:PORT) and reads the whole answer (empty when
/// the server closed without one), within 10 s.
pub fn http_exchange(host: &str, request: &str) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(host).expect("the HTTP endpoint accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// GETs `url` (http://HOST:PORT/PATH): the status code and the body.
pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    let answer = String::from_utf8(http_exchange(host, &request)).expect("a UTF-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (status.expect("a status code"), body.to_string())
}

/// The metrics URL a server started with `--metrics` printed (its third line).
pub fn metrics_url(server: &Server) -> String {
    let line = server.next_line();
    let url = line.strip_prefix("metrics at ").unwrap_or_else(|| {
        panic!("unexpected third line {line:?}");
    });
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    url.to_string()
}

/// Waits (up to 60 s) until the server whose metrics are at `url` verified `ticks`
/// room-ticks in all: with one room, until its game reached that tick.
pub fn wait_for_ticks(url: &str, ticks: u64) {
    wait_until(
        Duration::from_secs(60),
        &format!("{ticks} ticks verified"),
        || {
            let (_, page) = http_get(url);
            (metric(&page, "tickstep_ticks_total") >= ticks).then_some(())
        },
        String::new,
    );
}

/// The value of metric `name` on a metrics page.
pub fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no metric {name} on\n{page}")) as u64
}
