//! What an operator runs a `tickstep serve` with, end to end over real processes: the
//! metrics page and health check, a graceful drain on SIGTERM, and the Agones
//! lifecycle against a stand-in for the SDK sidecar. Every wait has a deadline.

mod processes;

use processes::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickstep_session::ClientMessage;

/// The metrics URL a `serve --metrics` printed as its third line.
fn scrape(url: &str) -> String {
    let (status, page) = http_get(url);
    assert_eq!(status, 200, "{page}");
    page
}

#[test]
fn metrics_move_as_a_game_with_a_drop_a_rejoin_and_a_desync_runs() {
    const TICKS: u64 = 2400;
    let dir = temp_dir("ops-metrics");
    let evidence = dir.join("evidence");
    let evidence_arg = evidence.to_str().expect("a UTF-8 temp path");
    let extra = ["--metrics", "127.0.0.1:0", "--evidence-dir", evidence_arg];
    let server = Server::start(&dir, &server_args(3, TICKS, &extra));
    let url = metrics_url(&server);
    let before = scrape(&url);
    assert_eq!(metric(&before, "tickstep_rooms_open"), 1);
    assert_eq!(metric(&before, "tickstep_players_connected"), 0);
    assert_eq!(metric(&before, "tickstep_ticks_total"), 0);
    assert_eq!(metric(&before, "tickstep_games_started_total"), 0);
    let health = http_get(&url.replace("/metrics", "/healthz"));
    assert_eq!(health, (200, "ok\n".to_string()));
    assert_eq!(http_get(&url.replace("/metrics", "/nothing")).0, 404);

    // One player reports junk checksums: the room finds a desync.
    let (welcomed, slot) = std::sync::mpsc::channel();
    let liar = hostile_thread(
        target(&server),
        3,
        ENTITIES,
        || {
            Box::new(|mut message| {
                if let ClientMessage::Update { checksums, .. } = &mut message {
                    for (tick, sum) in checksums.iter_mut() {
                        *sum = blake3::hash(&tick.to_le_bytes()).into();
                    }
                }
                vec![message]
            })
        },
        welcomed,
    );
    slot.recv_timeout(Duration::from_secs(20))
        .expect("the liar joined");
    let game = game_args(3, ENTITIES);
    let files: Vec<_> = (0..2)
        .map(|i| dir.join(format!("p{i}.reconnect")))
        .collect();
    let mut plays: Vec<Proc> = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            play(
                &dir,
                &format!("p{i}"),
                &server,
                Some(file),
                TICKS,
                &game,
                &[],
            )
        })
        .collect();
    // Past the start window one honest player is killed (a drop) and comes back from
    // its reconnect file (a rejoin and a catch-up).
    wait_for_progress(&files[1], 720, || server.proc.stderr_tail());
    let during = scrape(&url);
    assert_eq!(metric(&during, "tickstep_games_started_total"), 1);
    assert_eq!(metric(&during, "tickstep_rooms_playing"), 1);
    assert_eq!(metric(&during, "tickstep_players_connected"), 3);
    assert!(metric(&during, "tickstep_ticks_total") >= 720, "{during}");
    plays[1].kill_hard();
    std::thread::sleep(Duration::from_millis(500));
    plays[1] = play(&dir, "p1-back", &server, Some(&files[1]), TICKS, &game, &[]);
    let reports: Vec<_> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    let (tick, truth) = liar.join().expect("the liar's thread");
    assert_eq!(tick, TICKS);
    for report in &reports {
        assert_eq!(report["final_tick"], TICKS, "{report}");
        assert_eq!(checksum_of(report), truth, "{report}");
    }
    assert_eq!(reports[1]["rejoined"], true, "{}", reports[1]);

    let after = wait_until(
        Duration::from_secs(10),
        "the room to close",
        || Some(scrape(&url)).filter(|page| metric(page, "tickstep_rooms_open") == 0),
        || server.proc.stderr_tail(),
    );
    let count = |name| metric(&after, name);
    assert_eq!(count("tickstep_ticks_total"), TICKS);
    assert_eq!(count("tickstep_games_started_total"), 1);
    assert_eq!(count("tickstep_games_ended_total"), 1);
    assert_eq!(count("tickstep_joins_total"), 3);
    assert!(count("tickstep_rejoins_total") >= 1, "{after}");
    assert!(count("tickstep_drops_total") >= 1, "{after}");
    assert!(count("tickstep_catch_ups_total") >= 1, "{after}");
    assert!(count("tickstep_desyncs_total") >= 1, "{after}");
    assert!(
        count("tickstep_filled_ticks_total") >= 1,
        "the killed player's ticks"
    );
    assert!(count("tickstep_connections_accepted_total") >= 4, "{after}");
    assert_eq!(count("tickstep_players_connected"), 0);
    for moved in ["tickstep_sent_bytes_total", "tickstep_received_bytes_total"] {
        assert!(count(moved) > metric(&during, moved), "{moved}");
    }
    // The desync's evidence was saved as snapshot files that verify.
    let saved: Vec<_> = std::fs::read_dir(&evidence)
        .expect("the evidence directory")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert!(
        !saved.is_empty(),
        "no evidence saved\n{}",
        server.proc.stderr_tail()
    );
    for file in &saved {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("main-tick") && name.ends_with(".snap"),
            "{name}"
        );
        let path = file.to_str().expect("a UTF-8 temp path");
        let verified = std::process::Command::new(BIN)
            .args(["snapshot", "verify", path])
            .output()
            .expect("tickstep runs");
        assert!(verified.status.success(), "{name}: {verified:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_lets_the_running_game_finish_then_exits_zero() {
    const TICKS: u64 = 1200;
    let dir = temp_dir("ops-drain");
    // Two shards: the empty room's stops at once; the other's game plays on, also for
    // the player whose connection's handshake ran on the stopped one.
    let extra = [
        "--metrics",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--rooms",
        "main,spare",
    ];
    let args = server_args(2, TICKS, &extra);
    let mut server = Server::start(&dir, &args);
    let health = metrics_url(&server).replace("/metrics", "/healthz");
    let game = game_args(2, ENTITIES);
    let file = dir.join("p0.reconnect");
    let mut plays = [
        play(&dir, "p0", &server, Some(&file), TICKS, &game, &[]),
        play(&dir, "p1", &server, None, TICKS, &game, &[]),
    ];
    wait_for_progress(&file, 240, || server.proc.stderr_tail());
    server.proc.terminate();
    let draining = wait_until(
        Duration::from_secs(20),
        "the health check to say draining",
        || Some(http_get(&health)).filter(|(_, body)| body == "draining\n"),
        || server.proc.stderr_tail(),
    );
    assert_eq!(draining.0, 200);
    assert!(server.proc.running(), "the game is still on");
    let reports: Vec<_> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    for report in &reports {
        assert_eq!(report["final_tick"], TICKS, "{report}");
        assert_eq!(checksum_of(report), checksum_of(&reports[0]));
        assert_eq!(
            report["rejoined"], false,
            "no connection was lost: {report}"
        );
    }
    let status = server.proc.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", server.proc.stderr_tail());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_drain_stops_at_its_deadline_and_an_unstarted_room_at_once() {
    let dir = temp_dir("ops-deadline");
    // A game far longer than the drain allows.
    let args = server_args(2, 1_000_000, &["--drain-timeout", "1"]);
    let mut server = Server::start(&dir, &args);
    let game = game_args(2, ENTITIES);
    let file = dir.join("p0.reconnect");
    let _plays = [
        play(&dir, "p0", &server, Some(&file), 1_000_000, &game, &[]),
        play(&dir, "p1", &server, None, 1_000_000, &game, &[]),
    ];
    wait_for_progress(&file, 240, || server.proc.stderr_tail());
    let asked = Instant::now();
    server.proc.terminate();
    let status = server.proc.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", server.proc.stderr_tail());
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "it waited out the drain: {took:?}"
    );

    // Nobody joined this one: it stops as soon as it is asked.
    let mut idle = Server::start(&dir, &server_args(2, 600, &[]));
    idle.proc.terminate();
    let status = idle.proc.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", idle.proc.stderr_tail());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for the Agones SDK sidecar: answers every request 200 and records its
/// method and path, in order.
fn stand_in_sdk() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            let mut body = vec![0u8; length.min(4096)];
            let _ = stream.read_exact(&mut body);
            let line = head.lines().next().unwrap_or_default();
            let call: Vec<&str> = line.split(' ').take(2).collect();
            seen.lock().expect("the log").push(call.join(" "));
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        }
    });
    (port, calls)
}

#[test]
fn agones_hears_ready_health_allocate_and_shutdown_in_order() {
    const TICKS: u64 = 600;
    let dir = temp_dir("ops-agones");
    let (port, calls) = stand_in_sdk();
    let port = port.to_string();
    let env = [("AGONES_SDK_HTTP_PORT", port.as_str())];
    let mut server = Server::start_with(&dir, &server_args(2, TICKS, &["--agones"]), &env);
    let game = game_args(2, ENTITIES);
    let mut plays = [
        play(&dir, "p0", &server, None, TICKS, &game, &[]),
        play(&dir, "p1", &server, None, TICKS, &game, &[]),
    ];
    for p in &mut plays {
        let report = p.report(Duration::from_secs(60));
        assert_eq!(report["final_tick"], TICKS, "{report}");
    }
    let calls = wait_until(
        Duration::from_secs(10),
        "Shutdown",
        || {
            let calls = calls.lock().expect("the log").clone();
            calls
                .contains(&"POST /shutdown".to_string())
                .then_some(calls)
        },
        || server.proc.stderr_tail(),
    );
    let at = |call: &str| calls.iter().position(|c| c == call);
    assert_eq!(at("POST /ready"), Some(0), "{calls:?}");
    let allocate = at("POST /allocate").expect("Allocate was said");
    assert_eq!(calls.iter().filter(|c| *c == "POST /allocate").count(), 1);
    assert_eq!(at("POST /shutdown"), Some(calls.len() - 1), "{calls:?}");
    assert!(allocate < calls.len() - 1, "{calls:?}");
    let health = calls.iter().filter(|c| *c == "POST /health").count();
    assert!(
        health >= 2,
        "a 5 s game hears a health ping every 2 s: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| [
            "POST /ready",
            "POST /health",
            "POST /allocate",
            "POST /shutdown"
        ]
        .contains(&c.as_str())),
        "{calls:?}"
    );
    // Agones answers Shutdown with SIGTERM: nothing is in play, so it exits at once.
    server.proc.terminate();
    let status = server.proc.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", server.proc.stderr_tail());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_load_generator_fills_every_room_and_the_server_keeps_time() {
    let dir = temp_dir("ops-load");
    let args: Vec<String> = [
        "--rooms",
        "load",
        "--room-count",
        "3",
        "--players",
        "4",
        "--entities",
        "0",
        "--metrics",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    let server = Server::start(&dir, &args);
    let url = metrics_url(&server);
    let load_args: Vec<String> = [
        "load",
        "--server",
        &server.addr,
        "--server-cert-sha256",
        &server.cert_sha256,
        "--room",
        "load",
        "--rooms",
        "3",
        "--players",
        "4",
        "--entities",
        "0",
        "--seconds",
        "4",
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let mut load = Proc::spawn(&dir, "load", &load_args, &[], false);
    let playing = wait_until(
        Duration::from_secs(20),
        "every room to play",
        || Some(scrape(&url)).filter(|page| metric(page, "tickstep_rooms_playing") == 3),
        || load.stderr_tail(),
    );
    assert_eq!(metric(&playing, "tickstep_players_connected"), 12);
    // Past the start delay, one second of play while the load runs.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let before = scrape(&url);
    std::thread::sleep(Duration::from_secs(1));
    let after = scrape(&url);
    // At least the second slept and at most all the time the scrapes took: 180 ticks a
    // second, give or take a third.
    let window = started.elapsed().as_secs_f64();
    let delta = |name| metric(&after, name) - metric(&before, name);
    let verified = delta("tickstep_ticks_total");
    // Input that changes every tick (the load's default) is kept in the histories.
    assert!(
        metric(&after, "tickstep_input_history_bytes") >= 3 * 60 * 4 * 4,
        "a second of 3 rooms' input: {after}"
    );
    assert!(
        verified >= 120 && verified as f64 <= 240.0 * window,
        "3 rooms at 60 Hz for at most {window:.2} s: {verified}"
    );
    assert_eq!(delta("tickstep_late_ticks_total"), 0, "{after}");
    let filled = delta("tickstep_filled_ticks_total");
    assert!(
        filled * 100 <= verified,
        "{filled} of {verified} ticks filled"
    );
    let report = load.report(Duration::from_secs(30));
    assert_eq!(report["seated"], 12, "{report}");
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    // Its window (every game's ticks flowing) is its --seconds at 60 Hz.
    let ticks = report["ticks_per_client"].as_f64().expect("ticks");
    assert!((200.0..=280.0).contains(&ticks), "{report}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CPU time of `pid`'s thread named `name`, if it has one.
fn thread_cpu(pid: u32, name: &str) -> Option<Duration> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .and_then(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
}

#[test]
fn rooms_dealt_over_two_threads_both_play_and_every_join_reaches_its_room() {
    const TICKS: u64 = 600;
    let dir = temp_dir("ops-shards");
    let extra = [
        "--threads",
        "2",
        "--rooms",
        "a,b",
        "--metrics",
        "127.0.0.1:0",
    ];
    let server = Server::start(&dir, &server_args(2, TICKS, &extra));
    let url = metrics_url(&server);
    let game = game_args(2, ENTITIES);
    let mut plays: Vec<Proc> = ["a", "a", "b", "b"]
        .iter()
        .enumerate()
        .map(|(i, room)| {
            let name = format!("p{i}-{room}");
            play_with(&dir, &name, &server, TICKS, &game, ["--room", room])
        })
        .collect();
    let playing = wait_until(
        Duration::from_secs(20),
        "both rooms to play",
        || Some(scrape(&url)).filter(|page| metric(page, "tickstep_rooms_playing") == 2),
        || server.proc.stderr_tail(),
    );
    assert_eq!(metric(&playing, "tickstep_players_connected"), 4);
    let reports: Vec<_> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    // Each room seated its own two players (slots 0 and 1), and both played the game
    // to its end: the same game, so the same checksum.
    for pair in reports.chunks(2) {
        let mut slots: Vec<u64> = pair.iter().map(|r| r["player"].as_u64().unwrap()).collect();
        slots.sort_unstable();
        assert_eq!(slots, [0, 1], "{pair:?}");
    }
    for report in &reports {
        assert_eq!(report["final_tick"], TICKS, "{report}");
        assert_eq!(checksum_of(report), checksum_of(&reports[0]), "{reports:?}");
    }
    let after = scrape(&url);
    assert_eq!(metric(&after, "tickstep_games_ended_total"), 2, "{after}");
    assert_eq!(metric(&after, "tickstep_joins_total"), 4, "{after}");
    // The second event loop did its share of the work.
    let shard = thread_cpu(server.proc.pid(), "shard-1").expect("a thread named shard-1");
    assert!(shard > Duration::from_millis(10), "shard-1 used {shard:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connections_awaiting_their_hello_count_against_the_per_address_cap() {
    let dir = temp_dir("ops-per-address");
    let extra = [
        "--max-connections-per-address",
        "2",
        "--hello-timeout",
        "30",
    ];
    let args = server_args(2, 600, &extra);
    let server = Server::start(&dir, &args);
    let addr: std::net::SocketAddr = server.addr.parse().expect("an address");
    let transport = tickstep_net::TransportConfig::with_timeout(Duration::from_secs(10));
    let closed = runtime().block_on(async {
        let any = ([127, 0, 0, 1], 0).into();
        let trust = trust(&target(&server));
        let endpoint = tickstep_net::client_endpoint(any, &trust, &transport).expect("an endpoint");
        // Three connections from one address open their stream and never say hello.
        // The server may close the third before its stream opens (it counts the
        // connection, not the stream), so only the first two must get that far.
        let mut open = Vec::new();
        for _ in 0..3 {
            let quic = endpoint.connect(addr, "localhost").expect("connect");
            let quic = quic.await.expect("the handshake completes");
            let send = match quic.open_bi().await {
                Ok((mut send, _recv)) => send.write_all(&[0]).await.ok().map(|()| send),
                Err(_) => None,
            };
            open.push((quic, send));
        }
        assert!(
            open[..2].iter().all(|(_, send)| send.is_some()),
            "the first two hold a stream"
        );
        // The third is closed at once; the first two wait for their hello (30 s).
        let mut closed = Vec::new();
        for (quic, _) in &open {
            let ended = tokio::time::timeout(Duration::from_secs(2), quic.closed()).await;
            closed.push(ended.ok().map(|error| error.to_string()));
        }
        closed
    });
    assert_eq!(closed[..2], [None, None], "{closed:?}");
    let third = closed[2].as_deref().expect("the third was closed");
    assert!(
        third.contains("too many connections from this address"),
        "{third}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
