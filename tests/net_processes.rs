//! End to end over real processes and real sockets: `tickstep serve` and `tickstep play`
//! on 127.0.0.1 with OS-assigned ports, over QUIC with the server's certificate
//! pinned. A client killed with SIGKILL comes back to its slot from its reconnect file,
//! a join with another game is refused with one line, and `play --watch` follows a
//! game without a seat. (Hostile peers are in
//! `tests/attacks.rs`.)
//!
//! Every wait has a deadline, so a hang fails the test instead of blocking it, and every
//! spawned process is killed when its guard drops (also when a test fails).

mod processes;

use processes::*;
use std::time::Duration;
use tickstep_session::ReconnectInfo;

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
        // Each left at the end: its file keeps its client id, not the slot it freed
        // (started again, it joins as a new player rather than being refused).
        let left = saved_info(&files[i]).expect("a reconnect file");
        assert_eq!((left.player, left.resume), (None, None), "play{i}");
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

/// `play --watch` joins a game of two bots past its start window: it holds no seat,
/// enters on a buddy's snapshot, and ends on the bots' checksum.
#[test]
fn a_watcher_process_follows_the_game_to_the_bots_checksum() {
    const TICKS: u64 = 1800;
    let dir = temp_dir("watch");
    let server = Server::start(&dir, &server_args(2, TICKS, &["--metrics", "127.0.0.1:0"]));
    let metrics = metrics_url(&server);
    let game = game_args(2, ENTITIES);
    let mut bots: Vec<Proc> = (0..2)
        .map(|i| play(&dir, &format!("bot{i}"), &server, None, TICKS, &game, &[]))
        .collect();
    // Past the start window (5 s at 120 Hz is tick 600): a joiner needs a snapshot.
    wait_for_ticks(&metrics, 700);
    let mut watching = game.clone();
    watching.push("--watch".into());
    let mut watcher = play(&dir, "watcher", &server, None, TICKS, &watching, &[]);
    let report = watcher.report(Duration::from_secs(60));
    let bots: Vec<serde_json::Value> = bots
        .iter_mut()
        .map(|b| b.report(Duration::from_secs(60)))
        .collect();
    assert_eq!(report["watching"], true, "{report}");
    assert_eq!(report["player"], serde_json::Value::Null, "{report}");
    assert_eq!(report["final_tick"], TICKS, "{report}");
    assert_eq!(
        checksum_of(&report),
        checksum_of(&bots[0]),
        "{report} {bots:?}"
    );
    let resyncs = report["resyncs"].as_array().expect("resyncs");
    assert!(
        resyncs.iter().any(|r| r[1] == "buddy"),
        "entered on a buddy's snapshot: {report}"
    );
    for bot in &bots {
        assert_eq!(bot["watching"], false, "{bot}");
        // None on a quiet machine. On 2 cores the watcher's catch-up (a debug build)
        // takes CPU from the bots for a moment: runs here filled 6 and 11 of 1,800
        // (with QUIC's I/O on a thread of its own, as before, 53 and 66).
        let filled = bot["own_input_filled"].as_u64().expect("own_input_filled");
        assert!(filled <= TICKS / 60, "ticks waited for the watcher? {bot}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
