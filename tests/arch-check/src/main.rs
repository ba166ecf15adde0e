//! `arch-check`: the arena's determinism checks without the CLI's network and terminal
//! dependencies, so it builds for any target, wasm32 included (run under node's WASI by
//! `.ci/cross-arch`). Prints one checksum per command; exits 1 with a line on failure.
//!
//! ```text
//! arch-check run UNITS TICKS SEED [SNAPSHOT_OUT]   the arena from tick 0
//! arch-check resume SNAPSHOT TICKS SEED            on from a snapshot
//! arch-check record UNITS TICKS SEED REPLAY_OUT    play and record a replay
//! arch-check verify REPLAY                         re-simulate a replay, compare
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use tickstep_arena::{self as arena, ArenaConfig, ArenaRun};
use tickstep_engine::{MAX_CAPACITY, checksum};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match command(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("arch-check: {error}");
            ExitCode::FAILURE
        }
    }
}

fn number<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("argument {} ({what}) missing or not a number", i + 1))
}

fn command(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        Some("run") => {
            let config = ArenaConfig {
                units: number(args, 1, "units")?,
                players: 2,
                seed: number(args, 3, "seed")?,
            };
            let mut game = ArenaRun::new(&config).map_err(|e| e.to_string())?;
            game.run_to(number(args, 2, "ticks")?, |_| {})
                .map_err(|e| e.to_string())?;
            if let Some(path) = args.get(4) {
                let mut bytes = Vec::new();
                tickstep_snapshot::encode(game.frame(), &mut bytes);
                std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}"))?;
            }
            Ok(checksum(game.frame()).to_hex())
        }
        Some("resume") => {
            let path = args.get(1).ok_or("argument 1 (snapshot) missing")?;
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            let frame = tickstep_snapshot::restore_new(&bytes, arena::schema(), MAX_CAPACITY)
                .map_err(|e| format!("{path}: {e}"))?;
            let mut game = ArenaRun::from_frame(frame, number(args, 3, "seed")?);
            game.run_to(number(args, 2, "ticks")?, |_| {})
                .map_err(|e| e.to_string())?;
            Ok(checksum(game.frame()).to_hex())
        }
        Some("record") => {
            let config = ArenaConfig {
                units: number(args, 1, "units")?,
                players: 2,
                seed: number(args, 3, "seed")?,
            };
            let path = args.get(4).ok_or("argument 5 (replay out) missing")?;
            let mut bytes = Vec::new();
            let options = arena::RecordOptions::default();
            let ticks = number(args, 2, "ticks")?;
            let sum = arena::record(&config, ticks, options, &mut bytes, |_| {})
                .map_err(|e| e.to_string())?;
            std::fs::write(path, bytes).map_err(|e| format!("{path}: {e}"))?;
            Ok(sum.to_hex())
        }
        Some("verify") => {
            let path = args.get(1).ok_or("argument 1 (replay) missing")?;
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            let replay = tickstep_replay::Replay::parse(&bytes, &arena::schema())
                .map_err(|e| format!("{path}: {e}"))?;
            let result = tickstep_replay::verify(
                &replay,
                &arena::schema(),
                &mut arena::simulation(),
                |_| {},
            )
            .map_err(|e| e.to_string())?;
            match result.first_divergent_tick {
                None => Ok(result.final_checksum.to_hex()),
                Some(tick) => Err(format!("{path} diverges at tick {tick}")),
            }
        }
        _ => Err("usage: arch-check run|resume|record|verify ... (see the crate docs)".into()),
    }
}
