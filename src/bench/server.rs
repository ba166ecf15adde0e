//! `tickstep bench server`: a `tickstep serve` process under a `tickstep load` process
//! on loopback. Once every room plays, it measures a window: the server process's CPU
//! per room-tick (its threads' schedstat, or its `stat`), late and filled ticks and
//! bytes each way (from its metrics page), its memory per room, and the load process's
//! own report.

use clap::Args;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickstep_net::metrics::process_cpu_of;

use super::udp_floor;
use crate::output::{emit, progress_bar_of, rounded};

/// Arguments of `bench server`.
#[derive(Args)]
pub struct ServerBenchArgs {
    /// Rooms.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    rooms: u32,
    /// Players per room.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    players: u8,
    /// Ticks per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tick_rate: u32,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// The server sends verified input every N ticks.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=tickstep_session::MAX_SEND_EVERY as i64))]
    send_every: u32,
    /// A player's input changes every this many ticks (`load --input-changes-every`;
    /// 0: never).
    #[arg(long, value_name = "TICKS", default_value_t = 1)]
    input_changes_every: u32,
    /// Server event loops (`serve --threads`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Units in each room's arena (in the hello's game; nobody simulates them).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    entities: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What the server did in the measured window.
#[derive(Debug, Serialize)]
struct ServerReport {
    rooms: u32,
    players: u8,
    tick_rate: u32,
    /// Verified input went out every this many ticks.
    send_every: u32,
    /// A player's input changed every this many ticks (0: never).
    input_changes_every: u32,
    /// Server event loops.
    threads: u16,
    seconds: f64,
    /// Ticks the rooms verified in the window, all rooms together.
    room_ticks: u64,
    /// Of those, finalised within a tick of their deadline.
    on_time_ticks: u64,
    /// Of those, finalised later (the server fell behind).
    late_ticks: u64,
    /// Ticks in the window with some player's input filled in (a client was late).
    filled_ticks: u64,
    /// Room-ticks the clock asked for in the window (rooms × rate × seconds).
    expected_room_ticks: u64,
    /// The server process's CPU in the window, milliseconds.
    server_cpu_ms: f64,
    /// Server CPU per room-tick, microseconds.
    server_cpu_us_per_room_tick: f64,
    /// Rooms of this shape one server core could run at this rate.
    rooms_per_core: f64,
    /// The server's resident memory in the window, KiB.
    server_rss_kb: u64,
    /// What a playing room (its players' connections included) adds to the server's
    /// memory over the rooms open and empty, KiB.
    rss_per_room_kb: f64,
    /// Session bytes per room-tick, server to clients and clients to server.
    bytes_out_per_room_tick: f64,
    bytes_in_per_room_tick: f64,
    /// The load process's CPU as a share of one core: near 1, it may be the limit.
    load_cpu_share: f64,
    /// CPU per room-tick of a plain UDP echo of the load's traffic (a datagram in per
    /// player and tick, answered as the server answers, no QUIC, no room), measured on
    /// this machine just before the server, microseconds.
    udp_floor_us_per_room_tick: Option<f64>,
    /// Datagrams sent to the echo in its window (rooms × players × rate × up to 3 s)
    /// and, of those, received (the rest the kernel dropped).
    udp_floor_datagrams_sent: u64,
    udp_floor_datagrams_received: u64,
    /// Server CPU per room-tick over that floor: a ratio to a baseline taken in the
    /// same run, for a shared machine whose speed changes by the hour.
    server_vs_udp_floor: Option<f64>,
}

/// Runs `bench server`.
pub(crate) fn run(args: &ServerBenchArgs) -> Result<(), String> {
    let floor_ticks = args.tick_rate * args.seconds.min(3);
    let bar = progress_bar_of(floor_ticks.into(), "UDP floor", "ticks");
    let floor = udp_floor::measure(
        args.rooms,
        args.players,
        args.tick_rate,
        args.send_every,
        floor_ticks,
        &bar,
    )?;
    bar.finish_and_clear();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find tickstep: {e}"))?;
    let clients = (args.rooms * u32::from(args.players) + 64).to_string();
    let game = [
        "--players".to_string(),
        args.players.to_string(),
        "--entities".into(),
        args.entities.to_string(),
        "--tick-rate".into(),
        args.tick_rate.to_string(),
    ];
    let mut serve = Command::new(&exe);
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--rooms", "load", "--room-count", &args.rooms.to_string()])
        .args(["--max-connections", &clients])
        .args(["--max-connections-per-address", &clients])
        .args(["--send-every", &args.send_every.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(&game)
        .env("RUST_LOG", "warn");
    let mut server = Spawned::start(serve)?;
    let address = server.line("listening on ")?;
    let fingerprint = server.line("certificate sha256 ")?;
    let metrics_url = server.line("metrics at http://")?;
    let metrics: SocketAddr = metrics_url
        .trim_end_matches("/metrics")
        .parse()
        .map_err(|_| format!("serve printed an odd metrics address {metrics_url:?}"))?;
    let pid = server.child.id();
    let rss_empty = rss_kb(pid);

    // The load runs past the window on both sides; the window is measured here.
    let load_seconds = (args.seconds + 3).to_string();
    let mut load = Command::new(&exe);
    load.args([
        "load",
        "--server",
        &address,
        "--server-cert-sha256",
        &fingerprint,
    ])
    .args(["--room", "load", "--rooms", &args.rooms.to_string()])
    .args(["--seconds", &load_seconds, "--json"])
    .args([
        "--input-changes-every",
        &args.input_changes_every.to_string(),
    ])
    .args(&game);
    let mut loader = Spawned::start(load)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let scrape = || runtime.block_on(scrape(metrics));
    let deadline = Instant::now() + Duration::from_secs(120);
    while scrape()?.get("tickstep_rooms_playing") < u64::from(args.rooms) {
        if loader.exited() {
            // The load settles once every client plays, was refused or was lost, and
            // then plays on: say which clients did not make it.
            let why = match loader.finish() {
                Ok(report) => format!(
                    "the load seated {} of {} players ({} refused, {} lost; {})",
                    report["seated"],
                    args.rooms * u32::from(args.players),
                    report["refused"],
                    report["lost"],
                    loader.error_tail()
                ),
                Err(error) => error,
            };
            return Err(format!("the rooms did not all start: {why}"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the rooms did not all start within 2 minutes: {}",
                loader.error_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Tick 0 falls due a start delay (1 s) after a room fills; then let the rooms
    // settle into their rhythm.
    std::thread::sleep(Duration::from_secs(2));
    let cpu = || process_cpu_of(pid).unwrap_or_default();
    let (began, cpu_then, then) = (Instant::now(), cpu(), scrape()?);
    let bar = progress_bar_of(u64::from(args.seconds), "measuring", "seconds");
    let window = Duration::from_secs(args.seconds.into());
    while began.elapsed() < window {
        std::thread::sleep(Duration::from_millis(100));
        bar.set_position(began.elapsed().as_secs());
    }
    let (seconds, cpu_now, now) = (began.elapsed().as_secs_f64(), cpu(), scrape()?);
    let server_rss_kb = rss_kb(pid);
    bar.finish_and_clear();
    let load_report = loader.finish()?;
    drop(server);

    let delta = |name| now.get(name).saturating_sub(then.get(name));
    let room_ticks = delta("tickstep_ticks_total");
    let late_ticks = delta("tickstep_late_ticks_total");
    let cpu_s = cpu_now.saturating_sub(cpu_then).as_secs_f64();
    let per_room_tick = cpu_s / room_ticks.max(1) as f64;
    let per_tick = |bytes: u64| rounded(bytes as f64 / room_ticks.max(1) as f64, 1);
    let report = ServerReport {
        rooms: args.rooms,
        players: args.players,
        tick_rate: args.tick_rate,
        send_every: args.send_every,
        input_changes_every: args.input_changes_every,
        threads: args.threads,
        seconds: rounded(seconds, 3),
        room_ticks,
        on_time_ticks: room_ticks.saturating_sub(late_ticks),
        late_ticks,
        filled_ticks: delta("tickstep_filled_ticks_total"),
        expected_room_ticks: (f64::from(args.rooms) * f64::from(args.tick_rate) * seconds) as u64,
        server_cpu_ms: rounded(cpu_s * 1000.0, 1),
        server_cpu_us_per_room_tick: rounded(per_room_tick * 1e6, 2),
        rooms_per_core: rounded(1.0 / (per_room_tick * f64::from(args.tick_rate)), 1),
        server_rss_kb,
        rss_per_room_kb: rounded(
            server_rss_kb.saturating_sub(rss_empty) as f64 / f64::from(args.rooms),
            1,
        ),
        bytes_out_per_room_tick: per_tick(delta("tickstep_sent_bytes_total")),
        bytes_in_per_room_tick: per_tick(delta("tickstep_received_bytes_total")),
        load_cpu_share: load_report["load_cpu_share"].as_f64().unwrap_or(f64::NAN),
        udp_floor_us_per_room_tick: floor.us_per_room_tick.map(|us| rounded(us, 2)),
        udp_floor_datagrams_sent: floor.sent,
        udp_floor_datagrams_received: floor.echoed,
        server_vs_udp_floor: floor
            .us_per_room_tick
            .map(|us| rounded(per_room_tick * 1e6 / us, 2)),
    };
    emit(args.json, &report, |r| {
        format!(
            "{} rooms x {} players at {} Hz for {} s: {} room-ticks ({} expected), {} on time, {} late, {} with input filled in\nserver CPU {} ms = {} us per room-tick: one core holds about {} such rooms\nserver memory {} KiB, {} KiB per playing room; {} bytes out and {} in per room-tick; the load used {:.0}% of a core\n{}",
            r.rooms,
            r.players,
            r.tick_rate,
            r.seconds,
            r.room_ticks,
            r.expected_room_ticks,
            r.on_time_ticks,
            r.late_ticks,
            r.filled_ticks,
            r.server_cpu_ms,
            r.server_cpu_us_per_room_tick,
            r.rooms_per_core,
            r.server_rss_kb,
            r.rss_per_room_kb,
            r.bytes_out_per_room_tick,
            r.bytes_in_per_room_tick,
            r.load_cpu_share * 100.0,
            match (r.udp_floor_us_per_room_tick, r.server_vs_udp_floor) {
                (Some(floor), Some(ratio)) => format!(
                    "a plain UDP echo of the same traffic took {floor} us per room-tick here: the server took {ratio}x that"
                ),
                _ => "no UDP floor: this system keeps no thread CPU clock fine enough to read it"
                    .into(),
            }
        )
    })
}

/// A child `tickstep` process, killed when dropped.
struct Spawned {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Spawned {
    fn start(mut command: Command) -> Result<Spawned, String> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start tickstep: {e}"))?;
        let lines = forward(child.stdout.take());
        let stderr = forward(child.stderr.take());
        Ok(Spawned {
            child,
            lines,
            stderr,
        })
    }

    /// Its next stdout line, which must start with `prefix`; the rest of it.
    fn line(&mut self, prefix: &str) -> Result<String, String> {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("tickstep serve did not start: {}", self.error_tail()))?;
        line.strip_prefix(prefix)
            .map(str::to_string)
            .ok_or_else(|| format!("tickstep serve printed {line:?}"))
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// The last line it wrote to stderr.
    fn error_tail(&self) -> String {
        let mut last = None;
        // Lines still on their way: until its stderr closes (it exited) or for a second.
        let until = Instant::now() + Duration::from_secs(1);
        while let Ok(line) = self
            .stderr
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            last = Some(line);
            if Instant::now() >= until {
                break;
            }
        }
        last.unwrap_or_else(|| "no error printed".into())
    }

    /// Waits for it to exit and parses the JSON line it printed.
    fn finish(&mut self) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() >= deadline {
                return Err("tickstep load did not finish within a minute".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            return Err(format!("tickstep load failed: {}", self.error_tail()));
        }
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "tickstep load printed no report".to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("tickstep load's report: {e}"))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Passes each line `from` writes on, on a thread of its own.
fn forward(from: Option<impl std::io::Read + Send + 'static>) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(from) = from {
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// A metrics page's values by name.
struct Metrics(std::collections::BTreeMap<String, f64>);

impl Metrics {
    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0.0) as u64
    }
}

async fn scrape(at: SocketAddr) -> Result<Metrics, String> {
    let (status, page) = tickstep_net::http::get(at, "/metrics")
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("the metrics page answered {status}"));
    }
    let values = page
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();
    Ok(Metrics(values))
}

/// Resident memory of process `pid`, KiB (0 where unknown).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
