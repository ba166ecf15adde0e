//! Hostile peers against a real `tickstep serve` on loopback, one attack per test, each
//! next to honest `tickstep play` processes. Every test asserts a bound: the server's
//! memory (its peak RSS, read from /proc) and what it sends stay within budget, the
//! honest players finish their game on one checksum with none of their input filled
//! for lateness, and the attack gets a named refusal where there is one to give.
//!
//! The hostile peers run in this process: raw QUIC connections speaking the real wire
//! protocol (frames on the stream, datagrams), or a real session client whose outgoing
//! messages are tampered with. Tests run one at a time (they share two cores and
//! assert timing).

mod processes;

use processes::*;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tickstep_arena::{self as arena, ArenaConfig};
use tickstep_net::frame::{Frame, read_frame, write_frame};
use tickstep_net::{TransportConfig, client_endpoint};
use tickstep_session::{
    ClientId, ClientMessage, Hello, PROTOCOL_VERSION, ReconnectInfo, Refusal, ServerMessage,
    decode, encode,
};

/// One attack at a time: they measure time and memory on a shared machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// Ticks per second of every server here.
const RATE: u64 = 120;
/// The memory bound for the server under any single attack.
const RSS_LIMIT_KB: u64 = 100 * 1024;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The peak and current resident memory of process `pid`, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Honest plays of a `players`-slot game, each with a reconnect file.
fn honest_plays(dir: &Path, server: &Server, count: usize, players: u8, ticks: u64) -> Vec<Proc> {
    (0..count)
        .map(|i| {
            let file = dir.join(format!("honest{i}.reconnect"));
            play(
                dir,
                &format!("honest{i}"),
                server,
                Some(&file),
                ticks,
                &game_args(players, ENTITIES),
                &[],
            )
        })
        .collect()
}

/// Waits until the first honest play holds a local snapshot past the room's start
/// window (5 s, 600 ticks at 120 Hz), so a joiner from then on needs a snapshot however
/// slowly the game got going.
fn past_the_start_window(dir: &Path, server: &Server) {
    wait_for_progress(&dir.join("honest0.reconnect"), 660, || {
        server.proc.stderr_tail()
    });
}

/// Waits for honest plays and checks they finished the game together, on time: every
/// one at `ticks`, on one checksum, none of its input filled in for lateness, and by
/// `deadline` (when it printed its report). Returns the checksum.
fn assert_honest_finish(plays: &mut [Proc], ticks: u64, deadline: SystemTime) -> String {
    let reports: Vec<serde_json::Value> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(120)))
        .collect();
    for (i, (report, play)) in reports.iter().zip(plays.iter()).enumerate() {
        assert_eq!(report["final_tick"], ticks, "honest{i}: {report}");
        assert_eq!(checksum_of(report), checksum_of(&reports[0]), "{reports:?}");
        // A quiet machine fills none; a full test run on 2 cores has filled 3 of
        // 2,400 once (a process descheduled past the hold). An attack that stalls the
        // room fills hundreds, so the bound is 0.25 %.
        let filled = report["own_input_filled"]
            .as_u64()
            .expect("own_input_filled");
        assert!(filled <= ticks / 400, "honest{i} was late: {report}");
        let finished = std::fs::metadata(&play.stdout)
            .and_then(|m| m.modified())
            .expect("the report's time");
        if let Ok(late) = finished.duration_since(deadline) {
            panic!("honest{i} finished {late:?} late");
        }
    }
    checksum_of(&reports[0]).to_string()
}

/// When plays started now should have finished a game of `ticks`: its length within
/// 5%, plus the start delay and joining (2 s, of which a run without an attacker on
/// this machine takes 1.1).
fn on_time_deadline(ticks: u64) -> SystemTime {
    let game = Duration::from_millis(ticks * 1000 / RATE);
    SystemTime::now() + game.mul_f64(1.05) + Duration::from_secs(2)
}

fn server_addr(server: &Server) -> SocketAddr {
    server.addr.parse().expect("a socket address")
}

/// A client endpoint on `bind` that trusts `server`, with `transport`.
fn client_on(server: &Server, bind: [u8; 4], transport: &TransportConfig) -> quinn::Endpoint {
    let trust = trust(&target(server));
    client_endpoint((bind, 0).into(), &trust, transport).expect("a client endpoint")
}

/// A hostile connection speaking the wire protocol by hand. Frames are read by a task
/// of its own (reading is not cancel-safe) into a queue of one: once the attacker
/// stops hearing, it stops reading.
struct Raw {
    quic: quinn::Connection,
    send: quinn::SendStream,
    frames: tokio::sync::mpsc::Receiver<Frame>,
}

impl Raw {
    async fn open(endpoint: &quinn::Endpoint, server: SocketAddr) -> Raw {
        let quic = endpoint
            .connect(server, "localhost")
            .expect("connect")
            .await
            .expect("the handshake completes");
        let (send, mut recv) = quic.open_bi().await.expect("a stream");
        let (tx, frames) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Ok(frame) = read_frame(&mut recv).await {
                if tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        Raw { quic, send, frames }
    }

    async fn say(&mut self, message: &ClientMessage) {
        self.say_bytes(encode(message)).await;
    }

    async fn say_bytes(&mut self, bytes: Vec<u8>) {
        let _ = write_frame(&mut self.send, &Frame::Message(bytes)).await;
    }

    /// The next message on the stream (or a datagram), or `None` once closed.
    async fn hear(&mut self) -> Option<ServerMessage> {
        let frame = tokio::select! {
            frame = self.frames.recv() => frame,
            datagram = self.quic.read_datagram() => match datagram {
                Ok(datagram) => return decode(&datagram).ok(),
                // Closed: the stream may still hold the server's last words (a
                // refusal comes just before its close), which the reader passes on.
                Err(_) => self.frames.recv().await,
            },
        };
        match frame {
            Some(Frame::Message(bytes)) => decode(&bytes).ok(),
            _ => None,
        }
    }

    /// Bytes this side sent and received over UDP so far.
    fn udp(&self) -> (u64, u64) {
        let stats = self.quic.stats();
        (stats.udp_tx.bytes, stats.udp_rx.bytes)
    }
}

/// The hello of a client `seed` joining room "main" of a `players`-slot game.
fn hello(seed: u64, players: u8) -> ClientMessage {
    let frame = arena::new_frame(&ArenaConfig {
        units: ENTITIES,
        players,
        seed: 11,
    })
    .expect("the arena");
    let client_id = ClientId::from_seed(0xbad0_0000 + seed);
    ClientMessage::Hello(Box::new(Hello::new(APP_VERSION, &frame, "main", client_id)))
}

#[test]
fn idle_hello_less_and_unfinished_handshakes_cost_little_and_delay_nothing() {
    let _serial = serial();
    const TICKS: u64 = 2400;
    let dir = temp_dir("attack-idle");
    let args = server_args(2, TICKS, &["--max-connections-per-address", "5000"]);
    let server = Server::start(&dir, &args);
    let deadline = on_time_deadline(TICKS);
    let mut plays = honest_plays(&dir, &server, 2, 2, TICKS);
    std::thread::sleep(Duration::from_secs(2));
    let (_, before) = memory_kb(server.proc.pid());

    let addr = server_addr(&server);
    let runtime = runtime();
    let (closed_in_time, blackhole) = runtime.block_on(async {
        let transport = TransportConfig::with_timeout(Duration::from_secs(30));
        let endpoint = client_on(&server, [127, 0, 0, 1], &transport);
        // 2,000 connections that finish the handshake: half open their stream with
        // one byte (no hello ever follows), half open nothing. Paced at 400 a second
        // in batches: this machine's two cores also run the attacker and the players.
        // (Batches of 50: one address may have only 64 handshakes under way.)
        let mut idle = Vec::new();
        for batch in 0..40 {
            let opened = (0..50).map(|i| {
                let endpoint = endpoint.clone();
                let stream = (batch * 50 + i) % 2 == 0;
                async move {
                    let quic = endpoint.connect(addr, "localhost").ok()?.await.ok()?;
                    if stream {
                        let (mut send, _recv) = quic.open_bi().await.ok()?;
                        send.write_all(&[0]).await.ok()?;
                        return Some((quic, Some(send)));
                    }
                    Some((quic, None))
                }
            });
            for connection in futures_join(opened).await.into_iter().flatten() {
                idle.push(connection);
            }
            if batch % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        assert!(idle.len() >= 1900, "only {} connections opened", idle.len());
        let opened_at = Instant::now();
        // 500 handshakes that never finish: their Initials reach the server through a
        // relay that drops every answer.
        let blackhole = Blackhole::start(addr).await;
        let stalled = client_on(&server, [127, 0, 0, 1], &transport);
        let mut pending = Vec::new();
        for _ in 0..500 {
            if let Ok(connecting) = stalled.connect(blackhole.addr, "localhost") {
                pending.push(tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(8), connecting).await;
                }));
            }
        }
        // Every idle connection is closed by the server: no hello within 5 s, or no
        // stream within the connect timeout.
        let mut closed_in_time = 0;
        for (quic, _send) in &idle {
            let left = Duration::from_secs(12).saturating_sub(opened_at.elapsed());
            if tokio::time::timeout(left, quic.closed()).await.is_ok() {
                closed_in_time += 1;
            }
        }
        for task in pending {
            let _ = task.await;
        }
        (closed_in_time, blackhole.bytes())
    });
    let (peak, _) = memory_kb(server.proc.pid());
    // At most 32 KiB for each: a QUIC connection's state and buffers measured about
    // 22 KiB with nearly all of them open at once. (In batches of 100, which made the
    // server ask for address validation, they opened slower and fewer were open at
    // once: 19 MiB in all.)
    assert!(
        peak.saturating_sub(before) < 2_500 * 32,
        "2,500 idle connections and handshakes took {} KiB (from {before} KiB)",
        peak - before
    );
    assert!(
        closed_in_time >= 1900,
        "only {closed_in_time} idle connections were closed"
    );
    let (to_server, from_server) = blackhole;
    assert!(to_server > 0, "the stalled handshakes reached the server");
    assert!(
        from_server <= 3 * to_server,
        "unvalidated peers got {from_server} bytes for {to_server}"
    );
    assert_honest_finish(&mut plays, TICKS, deadline);
    assert!(peak < RSS_LIMIT_KB, "peak RSS {peak} KiB");
    eprintln!(
        "idle flood: +{} KiB peak for 2,500 connections; unvalidated: {from_server} B sent for {to_server} B",
        peak - before
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Awaits all `futures` (on one thread, interleaved).
async fn futures_join<T: 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + 'static>,
) -> Vec<T> {
    let local = tokio::task::LocalSet::new();
    let handles: Vec<_> = futures.map(|f| local.spawn_local(f)).collect();
    local
        .run_until(async {
            let mut out = Vec::new();
            for handle in handles {
                if let Ok(value) = handle.await {
                    out.push(value);
                }
            }
            out
        })
        .await
}

/// A UDP relay that passes datagrams to the server and drops every answer, counting
/// the bytes each way.
struct Blackhole {
    addr: SocketAddr,
    to_server: std::sync::Arc<std::sync::atomic::AtomicU64>,
    from_server: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Blackhole {
    async fn start(server: SocketAddr) -> Blackhole {
        use std::sync::atomic::{AtomicU64, Ordering};
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        back.connect(server).await.expect("connect");
        let addr = front.local_addr().expect("addr");
        let to_server = std::sync::Arc::new(AtomicU64::new(0));
        let from_server = std::sync::Arc::new(AtomicU64::new(0));
        let (up, down) = (to_server.clone(), from_server.clone());
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            let mut answer = vec![0u8; 65_536];
            loop {
                tokio::select! {
                    got = front.recv_from(&mut buffer) => {
                        let Ok((len, _)) = got else { return };
                        up.fetch_add(len as u64, Ordering::Relaxed);
                        let _ = back.send(&buffer[..len]).await;
                    }
                    got = back.recv(&mut answer) => {
                        let Ok(len) = got else { return };
                        down.fetch_add(len as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        Blackhole {
            addr,
            to_server,
            from_server,
        }
    }

    fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.to_server.load(Ordering::Relaxed),
            self.from_server.load(Ordering::Relaxed),
        )
    }
}

/// A late joiner that gets a snapshot download, then what `attack` does with it.
/// Returns the snapshot's size and the bytes the attacker sent and received.
fn late_joiner_attack<F>(test: &str, attack: F) -> (u64, (u64, u64))
where
    F: AsyncFnOnce(&mut Raw, u32, u64) -> (),
{
    const TICKS: u64 = 2400;
    let dir = temp_dir(test);
    let args = server_args(3, TICKS, &["--start-players", "2"]);
    let server = Server::start(&dir, &args);
    let deadline = on_time_deadline(TICKS);
    let mut plays = honest_plays(&dir, &server, 2, 3, TICKS);
    past_the_start_window(&dir, &server);
    let addr = server_addr(&server);
    let runtime = runtime();
    let outcome = runtime.block_on(async {
        let endpoint = reluctant_endpoint(&server);
        let mut raw = Raw::open(&endpoint, addr).await;
        raw.say(&hello(1, 3)).await;
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            let heard = tokio::time::timeout(Duration::from_secs(1), raw.hear()).await;
            if let Ok(Some(ServerMessage::SnapshotChunk {
                transfer, chunk, ..
            })) = heard
            {
                attack(&mut raw, transfer, chunk.total_len).await;
                return Some((chunk.total_len, raw.udp()));
            }
        }
        None
    });
    let (snapshot, udp) = outcome.expect("the late joiner was sent a snapshot");
    assert_honest_finish(&mut plays, TICKS, deadline);
    let (peak, _) = memory_kb(server.proc.pid());
    assert!(peak < RSS_LIMIT_KB, "peak RSS {peak} KiB");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    (snapshot, udp)
}

/// A client endpoint whose streams take at most 4 KiB unread: a peer that stops
/// reading blocks the server's writes quickly.
fn reluctant_endpoint(server: &Server) -> quinn::Endpoint {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(Duration::from_secs(30).try_into().expect("idle")))
        .stream_receive_window(4096u32.into())
        .receive_window(8192u32.into());
    let config = trust(&target(server))
        .client_config(std::sync::Arc::new(transport))
        .expect("a client config");
    let mut endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("a socket");
    endpoint.set_default_client_config(config);
    endpoint
}

#[test]
fn resend_requests_cannot_amplify() {
    let _serial = serial();
    let (snapshot, (sent, received)) =
        late_joiner_attack("attack-resend", async |raw: &mut Raw, transfer, _| {
            // Chunk 0 named 64 times per request, 20 requests a second for 8 s, and
            // every chunk; the attacker reads whatever comes back.
            let spam = ClientMessage::ResendChunks {
                transfer,
                chunks: vec![0; 64],
            };
            let all = ClientMessage::ResendChunks {
                transfer,
                chunks: (0..64).collect(),
            };
            let until = Instant::now() + Duration::from_secs(8);
            while Instant::now() < until {
                raw.say(&spam).await;
                raw.say(&all).await;
                let _ = tokio::time::timeout(Duration::from_millis(50), raw.hear()).await;
            }
        });
    // The download's budget (4 copies) plus verified input and framing.
    let bound = 4 * snapshot + 512 * 1024;
    assert!(
        received <= bound,
        "the server sent {received} bytes for {sent} (snapshot {snapshot}; bound {bound})"
    );
    eprintln!("resend spam: {sent} B sent, {received} B received, snapshot {snapshot} B");
}

#[test]
fn a_peer_that_stops_reading_is_cut_and_freed() {
    let _serial = serial();
    let (snapshot, (_, received)) =
        late_joiner_attack("attack-no-read", async |raw: &mut Raw, _, _| {
            // Keep the room's attention with updates as datagrams, never read again:
            // the stream fills and the server's write times out.
            let update = ClientMessage::Update {
                sent_at: 0,
                received: 0,
                stepped: 0,
                first_input: 0,
                inputs: Vec::new(),
                commands: Vec::new(),
                checksums: Vec::new(),
            };
            let began = Instant::now();
            loop {
                let bytes = encode(&update);
                let _ = raw.quic.send_datagram(bytes.into());
                if raw.quic.close_reason().is_some() {
                    break;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(20),
                    "the server kept a peer that stopped reading"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    assert!(received < 4 * snapshot + 512 * 1024, "{received} bytes");
}

#[test]
fn a_lone_peer_cannot_plant_a_state_on_a_returning_player() {
    let _serial = serial();
    const TICKS: u64 = 3600;
    let dir = temp_dir("attack-plant");
    let server = Server::start(&dir, &server_args(2, TICKS, &[]));
    // Another game's snapshot, to upload if ever asked.
    let foreign = arena::new_frame(&ArenaConfig {
        units: ENTITIES,
        players: 2,
        seed: 999,
    })
    .expect("the arena");
    let mut planted = Vec::new();
    tickstep_snapshot::encode(&foreign, &mut planted);
    let (welcomed, slot) = std::sync::mpsc::channel();
    let attacker = hostile_thread(
        target(&server),
        2,
        ENTITIES,
        move || {
            Box::new(move |mut message| match &mut message {
                // Junk reports while the honest player is online; never the truth.
                ClientMessage::Update { checksums, .. } => {
                    for (tick, sum) in checksums.iter_mut() {
                        *sum = blake3::hash(&tick.to_be_bytes()).into();
                    }
                    vec![message]
                }
                ClientMessage::UploadChunk { upload, .. } => {
                    let upload = *upload;
                    // In the wire form, as an honest upload is: only the state is false.
                    let mut wire = Vec::new();
                    tickstep_snapshot::wire::compress(&planted, &mut wire);
                    tickstep_snapshot::split(&wire, tickstep_snapshot::DEFAULT_CHUNK_SIZE)
                        .map(|chunk| ClientMessage::UploadChunk { upload, chunk })
                        .collect()
                }
                _ => vec![message],
            })
        },
        welcomed,
    );
    slot.recv_timeout(Duration::from_secs(20))
        .expect("the attacker joined");
    let file = dir.join("honest.reconnect");
    let game = game_args(2, ENTITIES);
    let mut honest = play(&dir, "honest", &server, Some(&file), TICKS, &game, &[]);
    // Past the start window, the honest app is killed, and stays away past the age of
    // a fresh local snapshot (10 s).
    wait_for_progress(&file, 720, || honest.stderr_tail());
    honest.kill_hard();
    std::thread::sleep(Duration::from_secs(11));
    let mut back = play(&dir, "back", &server, Some(&file), TICKS, &game, &[]);
    let report = back.report(Duration::from_secs(60));
    let (tick, truth) = attacker.join().expect("the attacker thread");
    assert_eq!(tick, TICKS);
    assert_eq!(report["final_tick"], TICKS, "{report}");
    assert_eq!(
        checksum_of(&report),
        truth,
        "the returning player ended on the state the verified input makes"
    );
    let resyncs = report["resyncs"].as_array().expect("resyncs");
    assert!(
        resyncs.iter().all(|r| r[1] != "buddy"),
        "no buddy snapshot was taken: {report}"
    );
    let log = server.proc.stderr_text();
    assert!(
        !log.contains("BuddyAsked"),
        "the lone peer was asked to be a buddy"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_address_cannot_take_a_majority_of_seats() {
    let _serial = serial();
    const TICKS: u64 = 1200;
    let dir = temp_dir("attack-seats");
    // The game starts with two: the attacker's one seat is gone by then.
    let args = server_args(
        3,
        TICKS,
        &["--max-seats-per-address", "1", "--start-players", "2"],
    );
    let mut server = Server::start(&dir, &args);
    let addr = server_addr(&server);
    let transport = TransportConfig::with_timeout(Duration::from_secs(30));
    let (first, second) = runtime().block_on(async {
        let endpoint = client_on(&server, [127, 0, 0, 2], &transport);
        let mut seats = Vec::new();
        for seed in 1..=2 {
            let mut raw = Raw::open(&endpoint, addr).await;
            raw.say(&hello(seed, 3)).await;
            let answer = tokio::time::timeout(Duration::from_secs(20), raw.hear()).await;
            seats.push(answer.ok().flatten());
        }
        // A client of protocol 4, whose hello lacks a field of this version's: told so.
        let other = client_on(&server, [127, 0, 0, 4], &transport);
        let mut old = Raw::open(&other, addr).await;
        let ClientMessage::Hello(mut hello) = hello(3, 3) else {
            panic!("hello() makes a hello")
        };
        hello.protocol = 4;
        let mut bytes = encode(&ClientMessage::Hello(hello));
        bytes.pop();
        old.say_bytes(bytes).await;
        let answer = tokio::time::timeout(Duration::from_secs(20), old.hear()).await;
        let mismatch = Refusal::VersionMismatch {
            client: 4,
            server: PROTOCOL_VERSION,
        };
        assert_eq!(
            answer.ok().flatten(),
            Some(ServerMessage::Refused(mismatch))
        );
        (seats[0].take(), seats[1].take())
    });
    assert!(
        matches!(first, Some(ServerMessage::Welcome { .. })),
        "{first:?}"
    );
    assert_eq!(
        second,
        Some(ServerMessage::Refused(Refusal::TooManySeatsFromAddress))
    );
    // Honest players from their own addresses still get seats and play.
    let game = game_args(3, ENTITIES);
    let mut plays: Vec<Proc> = ["127.0.0.1", "127.0.0.3"]
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let name = format!("honest{i}");
            play_with(&dir, &name, &server, TICKS, &game, ["--bind", ip])
        })
        .collect();
    let reports: Vec<_> = plays
        .iter_mut()
        .map(|p| p.report(Duration::from_secs(60)))
        .collect();
    for report in &reports {
        assert_eq!(report["final_tick"], TICKS, "{report}");
        assert_eq!(checksum_of(report), checksum_of(&reports[0]));
    }
    assert!(server.proc.running());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stolen_reconnect_file_cannot_take_the_slot_back() {
    let _serial = serial();
    const TICKS: u64 = 3000;
    let dir = temp_dir("attack-stolen");
    let server = Server::start(&dir, &server_args(2, TICKS, &[]));
    let game = game_args(2, ENTITIES);
    let (owner_file, stolen) = (dir.join("owner.reconnect"), dir.join("stolen.reconnect"));
    let mut owner = play(&dir, "owner", &server, Some(&owner_file), TICKS, &game, &[]);
    let mut other = play(&dir, "other", &server, None, TICKS, &game, &[]);
    wait_for_progress(&owner_file, 240, || owner.stderr_tail());
    std::fs::copy(&owner_file, &stolen).expect("the file is copied");
    // The owner's app restarts and comes back: its slot's token moves on.
    owner.kill_hard();
    let mut owner = play(
        &dir,
        "owner-back",
        &server,
        Some(&owner_file),
        TICKS,
        &game,
        &[],
    );
    let token = |path: &Path| {
        let bytes = std::fs::read(path).ok()?;
        ReconnectInfo::from_bytes(&bytes).ok()?.resume
    };
    let old = token(&stolen);
    let limit = Instant::now() + Duration::from_secs(20);
    while token(&owner_file) == old {
        assert!(Instant::now() < limit, "the owner got no new token");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut thief = play(
        &dir,
        "thief",
        &server,
        Some(&stolen),
        TICKS,
        &game,
        &[("RUST_LOG", "off")],
    );
    let status = thief.wait(Duration::from_secs(30));
    assert!(!status.success(), "the thief got in");
    let stderr = thief.stderr_text();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("resume token"), "{stderr:?}");
    let reports = [&mut owner, &mut other].map(|p| p.report(Duration::from_secs(60)));
    assert_eq!(reports[0]["final_tick"], TICKS, "{}", reports[0]);
    assert_eq!(checksum_of(&reports[0]), checksum_of(&reports[1]));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_with_another_certificate_is_refused_with_one_line() {
    let _serial = serial();
    let dir = temp_dir("attack-cert");
    let server = Server::start(&dir, &server_args(2, 600, &[]));
    // The right address, another certificate's fingerprint.
    let mut args: Vec<String> = ["play", "--server", &server.addr, "--ticks", "100"]
        .map(String::from)
        .to_vec();
    args.extend(["--server-cert-sha256".into(), "00".repeat(32)]);
    args.extend(game_args(2, ENTITIES));
    let mut fooled = Proc::spawn(&dir, "fooled", &args, &[("RUST_LOG", "off")], false);
    let status = fooled.wait(Duration::from_secs(20));
    assert!(!status.success());
    let stderr = fooled.stderr_text();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains("is not the pinned"), "{stderr:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_oversized_buddy_upload_is_refused_and_the_next_buddy_serves() {
    let _serial = serial();
    const TICKS: u64 = 2400;
    let dir = temp_dir("attack-upload");
    let args = server_args(4, TICKS, &["--start-players", "3"]);
    let server = Server::start(&dir, &args);
    let (welcomed, slot) = std::sync::mpsc::channel();
    let attacker = hostile_thread(
        target(&server),
        4,
        ENTITIES,
        || {
            Box::new(|message| match message {
                // Asked for its snapshot, it announces 64 MiB in 1-byte chunks.
                ClientMessage::UploadChunk { upload, mut chunk } => {
                    chunk.total_len = 64 << 20;
                    chunk.chunk_size = 1;
                    chunk.count = 64 << 20;
                    chunk.data.truncate(1);
                    chunk.hash = blake3::hash(&chunk.data).into();
                    vec![ClientMessage::UploadChunk { upload, chunk }]
                }
                message => vec![message],
            })
        },
        welcomed,
    );
    assert_eq!(slot.recv_timeout(Duration::from_secs(20)), Ok(0), "slot 0");
    let deadline = on_time_deadline(TICKS);
    let mut plays = honest_plays(&dir, &server, 2, 4, TICKS);
    past_the_start_window(&dir, &server);
    let late = play(
        &dir,
        "late",
        &server,
        None,
        TICKS,
        &game_args(4, ENTITIES),
        &[],
    );
    plays.push(late);
    let checksum = assert_honest_finish(&mut plays, TICKS, deadline);
    let (_, truth) = attacker.join().expect("the attacker thread");
    assert_eq!(checksum, truth);
    let log = server.proc.stderr_text();
    assert!(
        log.contains("BuddySnapshotRejected { buddy: PlayerId(0)"),
        "the oversized upload was refused"
    );
    let (peak, _) = memory_kb(server.proc.pid());
    assert!(peak < RSS_LIMIT_KB, "peak RSS {peak} KiB");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
