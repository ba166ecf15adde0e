//! End to end over real processes and real sockets: `tickstep serve` and `tickstep play`
//! on 127.0.0.1 with OS-assigned ports. A client killed with SIGKILL comes back to its
//! slot from its reconnect file, junk on the server's port disturbs no room, and a join
//! with another game is refused with one line.
//!
//! Every wait has a deadline, so a hang fails the test instead of blocking it, and every
//! spawned process is killed when its guard drops (also when a test fails).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tickstep_session::ReconnectInfo;

const BIN: &str = env!("CARGO_BIN_EXE_tickstep");

/// A fresh directory for one test's files (logs, reconnect files).
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickstep-net-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temp dir can be created");
    dir
}

/// The game flags every process of a test shares.
fn game_args(players: u8, entities: u32) -> Vec<String> {
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
struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Spawns `tickstep args` with stdout (unless `piped_stdout`) and stderr into files
    /// named after `name` in `dir`.
    fn spawn(
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its stderr, for failure messages.
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "--- {} stderr (tail) ---\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }

    fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether it is still running.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit, failing the test after `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
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

    /// SIGKILL (on unix), then reaps it.
    fn kill_hard(&mut self) -> ExitStatus {
        self.child.kill().expect("the process can be killed");
        self.wait(Duration::from_secs(10))
    }

    /// Waits for a `play --json` to finish successfully and returns its report.
    fn report(&mut self, limit: Duration) -> serde_json::Value {
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

/// A running `tickstep serve` and the address it listens on.
struct Server {
    proc: Proc,
    addr: String,
}

impl Server {
    /// Starts `tickstep serve --listen 127.0.0.1:0 args` and reads the address from its
    /// first stdout line.
    fn start(dir: &Path, args: &[String]) -> Server {
        let mut all = vec!["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()];
        all.extend_from_slice(args);
        let mut proc = Proc::spawn(dir, "serve", &all, &[], true);
        let stdout = proc.child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the first line, then drains stdout until the server exits.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => panic!(
                "serve printed no address within 20 s\n{}",
                proc.stderr_tail()
            ),
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}\n{}", proc.stderr_tail()))
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        Server { proc, addr }
    }
}

/// Spawns `tickstep play --json` against `server`, keeping its reconnect info in
/// `reconnect_file` when given.
fn play(
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

/// The reconnect info saved in `path`, once it is there and readable.
fn saved_info(path: &Path) -> Option<ReconnectInfo> {
    ReconnectInfo::from_bytes(&std::fs::read(path).ok()?).ok()
}

/// Polls `probe` until it gives a value, failing the test after `limit`.
fn wait_until<T>(
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
fn wait_for_progress(path: &Path, tick: u64, context: impl Fn() -> String) -> ReconnectInfo {
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

fn checksum_of(report: &serde_json::Value) -> &str {
    let sum = report["checksum"].as_str().expect("a checksum string");
    assert!(
        sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()),
        "{report}"
    );
    sum
}

/// A server at 120 Hz with a 3 s timeout and `players` plays of `game`, each with a
/// reconnect file in `dir`, leaving at `ticks`.
fn start_game(
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

/// What a kill-and-restart run gives: the slot the killed play held, what its reconnect
/// file said after the kill, and the three reports (the restarted play's at `VICTIM`).
struct Restarted {
    held: u8,
    saved: ReconnectInfo,
    reports: Vec<serde_json::Value>,
}

/// The play that is killed and restarted.
const VICTIM: usize = 1;
/// Where every play of the restart tests leaves the game (10 s at 120 Hz).
const RESTART_TICKS: u64 = 1200;

/// Three plays with reconnect files; once the victim's file holds a slot and a local
/// snapshot past `kill_after`, the victim is killed (SIGKILL) and started again with the
/// same file; every play runs to `RESTART_TICKS`.
fn kill_and_restart(test: &str, kill_after: u64) -> Restarted {
    let dir = temp_dir(test);
    let game = game_args(3, 200);
    let (server, files, mut plays) = start_game(&dir, &game, 3, RESTART_TICKS);

    let before = wait_for_progress(&files[VICTIM], kill_after, || server.proc.stderr_tail());
    let held = before.player.expect("a slot is held");
    let killed = plays[VICTIM].kill_hard();
    assert!(!killed.success(), "a killed play cannot exit cleanly");
    for (i, other) in plays.iter_mut().enumerate().filter(|(i, _)| *i != VICTIM) {
        assert!(other.running(), "play{i} stopped\n{}", other.stderr_tail());
    }
    std::thread::sleep(Duration::from_millis(500));

    // The restart reads what the killed process last saved.
    let saved = saved_info(&files[VICTIM]).expect("the reconnect file survives the kill");
    assert_eq!(saved.player, Some(held), "{saved:?}");
    assert!(
        saved
            .local_snapshot
            .as_ref()
            .is_some_and(|s| s.tick > kill_after),
        "{saved:?}"
    );
    plays[VICTIM] = play(
        &dir,
        "play1-restarted",
        &server,
        Some(&files[VICTIM]),
        RESTART_TICKS,
        &game,
        &[],
    );

    let reports: Vec<serde_json::Value> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    let restarted = &reports[VICTIM];
    assert_eq!(restarted["player"], held.0, "{restarted}");
    assert_eq!(restarted["rejoined"], true, "{restarted}");
    let mut players: Vec<u64> = reports
        .iter()
        .map(|r| r["player"].as_u64().expect("a player number"))
        .collect();
    players.sort_unstable();
    assert_eq!(players, [0, 1, 2], "{reports:?}");
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(report["final_tick"], RESTART_TICKS, "play{i}: {report}");
        assert_eq!(
            checksum_of(report),
            checksum_of(&reports[0]),
            "play{i} diverged: {reports:?}"
        );
        if i != VICTIM {
            assert_eq!(report["rejoined"], false, "play{i}: {report}");
        }
    }
    drop(plays);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Restarted {
        held: held.0,
        saved,
        reports,
    }
}

#[test]
fn a_client_killed_mid_game_comes_back_to_its_slot_from_its_reconnect_file() {
    // Past the room's start window (5 s, 600 ticks at 120 Hz), a rejoin no longer
    // replays the game from tick 0: it enters from the snapshot in the file.
    let run = kill_and_restart("killed", 650);
    let restarted = &run.reports[VICTIM];
    let resyncs = restarted["resyncs"].as_array().expect("a resyncs array");
    assert!(!resyncs.is_empty(), "{restarted}");
    let saved_tick = run.saved.local_snapshot.as_ref().map(|s| s.tick);
    assert_eq!(
        resyncs[0],
        serde_json::json!([saved_tick, "local"]),
        "player {} re-entered from the saved snapshot: {restarted}",
        run.held
    );
}

#[test]
fn a_client_restarted_inside_the_start_window_reports_its_rerun_from_start() {
    let run = kill_and_restart("early", 60);
    let restarted = &run.reports[VICTIM];
    let resyncs = restarted["resyncs"].as_array().expect("a resyncs array");
    assert!(
        resyncs.iter().any(|r| r[1] == "start"),
        "the re-entry from tick 0 is reported: {restarted}"
    );
}

/// A small deterministic generator for junk bytes.
fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Connects to `addr` and writes `bytes` (the server may hang up before it has read
/// them all, so write errors are expected and ignored).
fn spew(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
    stream
}

/// Reads until the server hangs up (EOF or a reset), failing after `limit`; returns
/// what was read.
fn read_until_hang_up(stream: &mut TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server kept the {what} connection open"
        );
        stream
            .set_read_timeout(Some(left))
            .expect("a read timeout can be set");
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return got;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server kept the {what} connection open for {limit:?}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the {what} connection failed: {e}"),
        }
    }
}

#[test]
fn a_garbage_spewing_connection_does_not_disturb_a_running_room() {
    const TICKS: u64 = 1200;
    let dir = temp_dir("garbage");
    let game = game_args(2, 200);
    let (mut server, files, mut plays) = start_game(&dir, &game, 2, TICKS);
    // The game is running.
    for file in &files {
        wait_for_progress(file, 60, || server.proc.stderr_tail());
    }

    // Silent: says nothing at all; the server must time it out (--timeout 3).
    let mut silent = TcpStream::connect(&server.addr).expect("connect");
    let silent_since = Instant::now();

    // Random bytes, several times, long and short.
    for seed in 1..=6u64 {
        let len = if seed % 2 == 0 { 64 * 1024 } else { 3 };
        let mut stream = spew(&server.addr, &junk(seed, len));
        if len > 5 {
            read_until_hang_up(&mut stream, Duration::from_secs(10), "random bytes");
        }
    }
    // A header announcing a 4 GiB message: refused before anything is allocated.
    let mut huge = spew(&server.addr, &[0xff, 0xff, 0xff, 0xff, 0]);
    read_until_hang_up(&mut huge, Duration::from_secs(10), "4 GiB header");
    // A header of an unknown kind.
    let mut unknown = spew(&server.addr, &[0, 0, 0, 0, 9]);
    read_until_hang_up(&mut unknown, Duration::from_secs(10), "unknown kind");
    // A well-formed frame whose payload is no protocol message: closed with a goodbye.
    let mut frame = 8u32.to_le_bytes().to_vec();
    frame.push(0);
    frame.extend_from_slice(&[0xff; 8]);
    let mut malformed = spew(&server.addr, &frame);
    let goodbye = read_until_hang_up(&mut malformed, Duration::from_secs(10), "non-postcard");
    assert!(
        String::from_utf8_lossy(&goodbye).contains("malformed"),
        "the server's goodbye names the reason: {goodbye:?}"
    );
    // Half a frame, then the connection is closed.
    let mut half = 100u32.to_le_bytes().to_vec();
    half.push(0);
    half.extend_from_slice(&junk(99, 10));
    let half = spew(&server.addr, &half);
    drop(half);
    // Many connections at once, each with a little junk, all dropped.
    let burst: Vec<TcpStream> = (0..20u64)
        .map(|seed| spew(&server.addr, &junk(100 + seed, 32)))
        .collect();
    drop(burst);

    let silent_bytes = read_until_hang_up(&mut silent, Duration::from_secs(15), "silent");
    assert!(
        silent_since.elapsed() >= Duration::from_millis(2500),
        "a silent connection is kept until the timeout: {:?}",
        silent_since.elapsed()
    );
    assert!(
        !silent_bytes.is_empty(),
        "the server heartbeats a silent peer"
    );

    let reports: Vec<serde_json::Value> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(report["final_tick"], TICKS, "play{i}: {report}");
        assert_eq!(report["rejoined"], false, "play{i}: {report}");
        assert_eq!(
            checksum_of(report),
            checksum_of(&reports[0]),
            "play{i} diverged: {reports:?}"
        );
        let reentries = report["resyncs"]
            .as_array()
            .expect("a resyncs array")
            .iter()
            .filter(|r| r[1] != "start")
            .count();
        assert_eq!(reentries, 0, "play{i} had to re-enter: {report}");
    }

    assert!(
        server.proc.running(),
        "the server died\n{}",
        server.proc.stderr_tail()
    );
    let pid = server.proc.pid().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let status = server.proc.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "serve exits cleanly on SIGTERM: {status}\n{}",
        server.proc.stderr_tail()
    );
    drop(plays);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_join_with_a_different_game_is_refused_with_one_line() {
    let dir = temp_dir("mismatch");
    let mut args: Vec<String> = ["--tick-rate", "120", "--timeout", "3"]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(&game_args(2, 200));
    let mut server = Server::start(&dir, &args);
    // Logs also go to stderr; switched off, the error is all that is left.
    let mut refused = play(
        &dir,
        "play-other-game",
        &server,
        None,
        100,
        &game_args(2, 300),
        &[("RUST_LOG", "off")],
    );
    let status = refused.wait(Duration::from_secs(30));
    assert!(!status.success(), "{}", refused.stderr_tail());
    let stderr = refused.stderr_text();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(stderr.contains("configuration"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        refused.stdout_text().is_empty(),
        "{}",
        refused.stdout_text()
    );
    assert!(
        server.proc.running(),
        "the server died\n{}",
        server.proc.stderr_tail()
    );
    drop(refused);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
