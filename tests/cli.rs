//! The `tickstep` binary's contract: flags, JSON fields, exit codes, one-line errors.

use std::process::{Command, Output};

fn tickstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tickstep"))
        .args(args)
        .output()
        .expect("the tickstep binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn run_json_has_the_documented_fields_and_repeats_exactly() {
    let args = [
        "run",
        "--entities",
        "200",
        "--ticks",
        "90",
        "--seed",
        "7",
        "--json",
    ];
    let first = json(&tickstep(&args));
    assert_eq!(first["tick"], 90);
    let sum = first["checksum"].as_str().unwrap();
    assert!(sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(first["entities"].as_u64().unwrap() >= 202);
    assert!(first["ticks_per_sec"].as_f64().unwrap() > 0.0);
    let second = json(&tickstep(&args));
    assert_eq!(first["checksum"], second["checksum"]);
    let other_seed = json(&tickstep(&[
        "run",
        "--entities",
        "200",
        "--ticks",
        "90",
        "--seed",
        "8",
        "--json",
    ]));
    assert_ne!(first["checksum"], other_seed["checksum"]);
}

#[test]
fn bad_arguments_give_one_line_and_a_nonzero_exit() {
    for args in [
        &["run", "--bogus"][..],
        &["run", "--entities", "many"],
        &["run", "--players", "0"],
        &["run", "--ticks", "-5"],
        &["demo", "--drop", "1"],
        &["demo", "--drop", "x@5"],
        &["demo", "--drop", "7@100", "--players", "2"],
        &["demo", "--rejoin", "1@999999", "--ticks", "100"],
        &["demo", "--net", "carrier-pigeon"],
        &["demo", "--loss", "100"],
        &["demo", "--net", "sim", "--web", "127.0.0.1:0"],
        &["demo", "--web", "not-an-address"],
        &["serve", "--hello-timeout", "18446744073709551615"],
        &["serve", "--write-timeout", "0"],
        &["serve", "--history", "5"],
        &["serve", "--history", "45", "--timeout", "20"],
        &["explode"],
    ] {
        let output = tickstep(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn no_arguments_prints_usage_and_fails() {
    let output = tickstep(&[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage"));
}

#[test]
fn help_exits_zero_and_lists_subcommands() {
    let output = tickstep(&["--help"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("run"));
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickstep-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn a_run_resumed_from_its_snapshot_ends_like_the_straight_run() {
    let snap = temp_path("mid.snap");
    let snap_arg = snap.to_str().unwrap();
    let common = [
        "--entities",
        "150",
        "--seed",
        "3",
        "--players",
        "3",
        "--json",
    ];
    let straight = json(&tickstep(
        &[&["run", "--ticks", "120"][..], &common].concat(),
    ));
    let first = tickstep(
        &[
            &["run", "--ticks", "50", "--snapshot-out", snap_arg][..],
            &common,
        ]
        .concat(),
    );
    json(&first);
    let resumed = json(&tickstep(&[
        "run",
        "--from-snapshot",
        snap_arg,
        "--ticks",
        "120",
        "--seed",
        "3",
        "--json",
    ]));
    assert_eq!(resumed["checksum"], straight["checksum"]);
    assert_eq!(resumed["tick"], 120);

    let verified = json(&tickstep(&["snapshot", "verify", snap_arg, "--json"]));
    assert_eq!(verified["tick"], 50);
    let inspected = json(&tickstep(&["snapshot", "inspect", snap_arg, "--json"]));
    for field in ["tick", "checksum", "schema_hash", "bytes", "entities"] {
        assert!(!inspected[field].is_null(), "inspect --json lacks {field}");
    }
    assert_eq!(inspected["checksum"], verified["checksum"]);
    let same = json(&tickstep(&[
        "snapshot", "diff", snap_arg, snap_arg, "--json",
    ]));
    assert_eq!(same["total"], 0);

    let mut corrupt = std::fs::read(&snap).unwrap();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x10;
    let bad = temp_path("bad.snap");
    std::fs::write(&bad, &corrupt).unwrap();
    let output = tickstep(&["snapshot", "verify", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("checksum") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    let missing = tickstep(&["snapshot", "inspect", "/nonexistent/x.snap"]);
    assert!(!missing.status.success());
}

#[test]
fn snapshot_diff_names_differences_between_ticks() {
    let (a, b) = (temp_path("a.snap"), temp_path("b.snap"));
    for (path, ticks) in [(&a, "30"), (&b, "31")] {
        let args = [
            "run",
            "--entities",
            "60",
            "--ticks",
            ticks,
            "--snapshot-out",
            path.to_str().unwrap(),
        ];
        assert!(tickstep(&args).status.success());
    }
    let report = json(&tickstep(&[
        "snapshot",
        "diff",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
        "--limit",
        "5",
    ]));
    assert!(report["total"].as_u64().unwrap() > 5);
    assert_eq!(report["differences"].as_array().unwrap().len(), 5);
    assert_eq!(report["differences"][0]["field"], "tick");
}

#[test]
fn bench_snapshot_reports_every_documented_figure() {
    let report = json(&tickstep(&[
        "bench",
        "snapshot",
        "--entities",
        "300",
        "--json",
    ]));
    for field in [
        "bytes",
        "memcpy_gbps",
        "blake3_gbps",
        "encode_gbps",
        "restore_gbps",
        "encode_vs_bound",
        "restore_vs_bound",
        "postcard_encode_gbps",
        "vs_postcard",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}");
    }
}

#[test]
fn record_then_replay_verify_info_and_seek() {
    let file = temp_path("game.replay");
    let path = file.to_str().unwrap();
    let recorded = json(&tickstep(&[
        "record",
        "--entities",
        "100",
        "--ticks",
        "200",
        "--seed",
        "6",
        "-o",
        path,
        "--checkpoint-every",
        "50",
        "--checksum-every",
        "5",
        "--json",
    ]));
    let straight = json(&tickstep(&[
        "run",
        "--entities",
        "100",
        "--ticks",
        "200",
        "--seed",
        "6",
        "--json",
    ]));
    assert_eq!(recorded["final_checksum"], straight["checksum"]);

    let verified = json(&tickstep(&["replay", "verify", path, "--json"]));
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["ticks"], 200);
    assert_eq!(verified["final_checksum"], straight["checksum"]);
    assert!(verified["first_divergent_tick"].is_null() && verified["truncated_at"].is_null());

    let info = json(&tickstep(&["replay", "info", path, "--json"]));
    assert_eq!(
        (info["checkpoints"].as_u64(), info["checksums"].as_u64()),
        (Some(4), Some(40))
    );
    assert_eq!(info["config"]["units"], 100);

    let snap = temp_path("seek.snap");
    let sought = json(&tickstep(&[
        "replay",
        "seek",
        path,
        "--tick",
        "120",
        "-o",
        snap.to_str().unwrap(),
        "--json",
    ]));
    let at_120 = json(&tickstep(&[
        "run",
        "--entities",
        "100",
        "--ticks",
        "120",
        "--seed",
        "6",
        "--json",
    ]));
    assert_eq!(sought["checksum"], at_120["checksum"]);
    assert!(
        !tickstep(&[
            "replay",
            "seek",
            path,
            "--tick",
            "999",
            "-o",
            snap.to_str().unwrap()
        ])
        .status
        .success()
    );

    // Cut the file short: it still verifies up to where it ends, and says so.
    let bytes = std::fs::read(&file).unwrap();
    let cut = temp_path("cut.replay");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let partial = json(&tickstep(&[
        "replay",
        "verify",
        cut.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(partial["ok"], true);
    assert!(partial["truncated_at"].as_u64().is_some());
    assert!(partial["ticks"].as_u64().unwrap() < 200);
}

#[test]
fn bench_catch_up_reports_every_documented_figure() {
    let report = json(&tickstep(&[
        "bench",
        "catch-up",
        "--entities",
        "100",
        "--ticks",
        "600",
        "--lag",
        "60",
        "--threads",
        "2",
        "--rounds",
        "2",
        "--json",
    ]));
    for field in [
        "ticks_per_sec",
        "realtime_multiplier",
        "rejoin_snapshot_ms",
        "rejoin_from_start_ms",
        "rejoin_speedup",
        "client_ticks_per_sec",
        "client_rejoin_ms",
        "single_thread_ticks_per_sec",
        "parallel_speedup",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}");
    }
    assert_eq!(report["ticks"], 600);
    assert_eq!(
        (report["threads"].as_u64(), report["rounds"].as_u64()),
        (Some(2), Some(2))
    );
    let multiplier = report["ticks_per_sec"].as_f64().unwrap() / 60.0;
    assert!((report["realtime_multiplier"].as_f64().unwrap() - multiplier).abs() < 1e-6);
}

#[test]
fn demo_without_drops_equals_the_offline_run() {
    let common = [
        "--players",
        "2",
        "--ticks",
        "240",
        "--entities",
        "150",
        "--seed",
        "4",
    ];
    let demo = json(&tickstep(
        &[&["demo", "--calm", "--json"][..], &common].concat(),
    ));
    let run = json(&tickstep(&[&["run", "--json"][..], &common].concat()));
    assert_eq!(demo["converged"], true);
    assert_eq!(demo["final_tick"], 240);
    assert_eq!(demo["filled_ticks"], 0);
    assert_eq!(demo["offline_checksum"], run["checksum"]);
    let clients = demo["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    for client in clients {
        assert_eq!(client["checksum"], run["checksum"]);
        assert_eq!(client["final_tick"], 240);
        assert_eq!(client["resyncs"].as_array().unwrap().len(), 0);
    }
    assert_eq!(demo["desyncs"].as_array().unwrap().len(), 0);
}

#[test]
fn demo_with_a_drop_converges_and_its_recording_verifies_to_the_same_checksum() {
    let recording = temp_path("demo.rpl");
    let output = tickstep(&[
        "demo",
        "--net",
        "sim",
        "--players",
        "3",
        "--ticks",
        "900",
        "--entities",
        "150",
        "--seed",
        "3",
        "--drop",
        "1@200",
        "--rejoin",
        "1@400",
        "--latency",
        "30",
        "--jitter",
        "10",
        "--record",
        recording.to_str().unwrap(),
        "--json",
    ]);
    let demo = json(&output);
    assert_eq!(demo["converged"], true);
    let clients = demo["clients"].as_array().unwrap();
    let resyncs = clients[1]["resyncs"].as_array().unwrap();
    assert_eq!(resyncs.len(), 1, "{resyncs:?}");
    assert_eq!(resyncs[0]["snapshot_source"], "local");
    assert!(resyncs[0]["caught_up_ticks"].as_u64().unwrap() > 100);
    assert!(resyncs[0]["catch_up_ms"].as_f64().unwrap() >= 0.0);
    for key in ["at_tick", "snapshot_bytes"] {
        assert!(resyncs[0][key].as_u64().is_some(), "{key}");
    }
    assert!(
        demo["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"].as_str().unwrap().contains("resynced"))
    );
    let verified = json(&tickstep(&[
        "replay",
        "verify",
        recording.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(verified["final_checksum"], clients[0]["checksum"]);
}

#[test]
fn demo_over_tcp_converges_through_a_drop_a_rejoin_and_an_app_restart() {
    let demo = json(&tickstep(&[
        "demo",
        "--net",
        "tcp",
        "--players",
        "3",
        "--ticks",
        "1200",
        "--tick-rate",
        "240",
        "--entities",
        "500",
        "--seed",
        "3",
        "--drop",
        "1@200",
        "--rejoin",
        "1@500",
        "--restart",
        "2@700",
        "--json",
    ]));
    assert_eq!(demo["converged"], true, "{demo}");
    let clients = demo["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 3);
    for client in clients {
        assert_eq!(client["final_tick"], 1200);
        assert_eq!(client["checksum"], clients[0]["checksum"]);
    }
    for player in [1, 2] {
        let resyncs = clients[player]["resyncs"].as_array().unwrap();
        assert!(
            !resyncs.is_empty(),
            "player {player} re-entered the game: {demo}"
        );
    }
    let timeline = demo["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["what"].as_str().unwrap().contains("--restart"))
    );
}

/// Over real sockets, through the in-process shaping relay: 50 ms each way, and the
/// players' input still all counts, so the game equals the offline run.
#[test]
fn demo_over_shaped_tcp_with_50_ms_latency_equals_the_offline_run() {
    let demo = json(&tickstep(&[
        "demo",
        "--net",
        "tcp",
        "--calm",
        "--latency",
        "50",
        "--jitter",
        "10",
        "--players",
        "2",
        "--ticks",
        "300",
        "--entities",
        "100",
        "--seed",
        "5",
        "--json",
    ]));
    assert_eq!(demo["converged"], true, "{demo}");
    assert_eq!(demo["filled_ticks"], 0, "{demo}");
    let offline = json(&tickstep(&[
        "run",
        "--players",
        "2",
        "--ticks",
        "300",
        "--entities",
        "100",
        "--seed",
        "5",
        "--json",
    ]));
    assert_eq!(demo["offline_checksum"], offline["checksum"]);
    for client in demo["clients"].as_array().unwrap() {
        assert_eq!(client["checksum"], offline["checksum"]);
        assert_eq!(client["own_input_filled"], 0);
        let lead = client["input_lead_ticks"].as_u64().unwrap();
        assert!(
            lead > 3,
            "50 ms each way is 3 ticks before any margin: {lead}"
        );
        let p50 = client["input_latency_ms"]["p50"].as_u64().unwrap();
        assert!(
            p50 >= 100,
            "input takes at least a round trip to play: {p50} ms"
        );
    }
}

/// Under loss, with the default drops and rejoins (one back from its local snapshot,
/// one from a buddy's), every seed converges: 3 players at 5% loss, 4 players at 8%
/// with latency and jitter. (`.ci/run` sweeps 100 seeds of each in a release build.)
#[test]
fn demo_seeds_converge_under_loss_with_drops_and_rejoins() {
    for seed in 1..=12 {
        let seed = seed.to_string();
        let flags: [&[&str]; 2] = [
            &["--loss", "5"],
            &[
                "--players",
                "4",
                "--latency",
                "20",
                "--jitter",
                "10",
                "--loss",
                "8",
            ],
        ];
        for extra in flags {
            let mut args = vec![
                "demo",
                "--net",
                "sim",
                "--entities",
                "10",
                "--seed",
                &seed,
                "--json",
            ];
            args.extend_from_slice(extra);
            let demo = json(&tickstep(&args));
            assert_eq!(demo["converged"], true, "seed {seed} {extra:?}: {demo}");
            let resyncs: usize = demo["clients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["resyncs"].as_array().unwrap().len())
                .sum();
            assert!(
                resyncs >= 2,
                "seed {seed} {extra:?}: both dropped players came back"
            );
        }
    }
}

/// The fleet manifest's `serve` arguments between its `tickstep-args-begin` and
/// `-end` markers.
fn fleet_serve_args() -> Vec<String> {
    let manifest = include_str!("../deploy/fleet.yaml");
    let begin = manifest
        .find("tickstep-args-begin")
        .expect("the begin marker");
    let end = manifest.find("tickstep-args-end").expect("the end marker");
    manifest[begin..end]
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .map(|arg| arg.trim_matches('"').to_string())
        .collect()
}

#[test]
fn the_fleet_manifest_runs_serve_with_arguments_it_accepts() {
    let args = fleet_serve_args();
    assert!(args.contains(&"--agones".to_string()), "{args:?}");
    // Parsing stops at --help, after every argument before it was accepted.
    let mut all: Vec<&str> = vec!["serve"];
    all.extend(args.iter().map(String::as_str));
    all.push("--help");
    let output = tickstep(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    all.insert(1, "--no-such-flag");
    assert!(!tickstep(&all).status.success(), "an unknown flag fails");
}

#[test]
fn bench_server_runs_a_server_and_a_load_process_and_reports_every_figure() {
    let report = json(&tickstep(&[
        "bench",
        "server",
        "--rooms",
        "2",
        "--seconds",
        "1",
        "--json",
    ]));
    for field in [
        "room_ticks",
        "on_time_ticks",
        "expected_room_ticks",
        "server_cpu_ms",
        "server_cpu_us_per_room_tick",
        "rooms_per_core",
        "server_rss_kb",
        "bytes_out_per_room_tick",
        "bytes_in_per_room_tick",
        "load_cpu_share",
        "udp_floor_datagrams_sent",
        "udp_floor_datagrams_received",
    ] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    // The floor is read from the echo thread's schedstat; a kernel that keeps none
    // leaves a 10 ms clock too coarse for this short run's echo.
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    if schedstat
        .split_whitespace()
        .next()
        .is_some_and(|ns| ns != "0")
    {
        for field in ["udp_floor_us_per_room_tick", "server_vs_udp_floor"] {
            assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
        }
    }
    for field in ["late_ticks", "filled_ticks", "rss_per_room_kb"] {
        assert!(report[field].as_f64().is_some(), "{field}: {report}");
    }
    // Two rooms at 60 Hz for about a second.
    let ticks = report["room_ticks"].as_u64().unwrap();
    assert!((90..=180).contains(&ticks), "{report}");
}

#[test]
fn a_reader_that_goes_away_is_no_panic() {
    // `tickstep run --json | true`: the pipe's reader is gone before tickstep starts.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_tickstep"))
        .args(["run", "--entities", "100", "--ticks", "300", "--json"])
        .stdout(writer)
        .output()
        .expect("the tickstep binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}
