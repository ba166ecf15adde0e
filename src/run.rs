//! `tickstep run`: the arena offline, from tick 0 to tick T, with bot input.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tickstep_arena::{self as arena, ArenaRun};
use tickstep_engine::{MAX_CAPACITY, checksum};
use tickstep_snapshot as snapshot;

use crate::files;
use crate::game_args::GameArgs;
use crate::output::{emit, progress_bar};

/// Arguments of `tickstep run`.
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    game: GameArgs,
    /// Write a snapshot of the final frame to this file.
    #[arg(long, value_name = "FILE")]
    snapshot_out: Option<PathBuf>,
    /// Start from this snapshot (a frame written by --snapshot-out) instead of tick 0;
    /// --entities and --players are then taken from the snapshot.
    #[arg(long, value_name = "FILE")]
    from_snapshot: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The result of a run; the JSON field names are a stable contract.
#[derive(Serialize)]
struct RunReport {
    tick: u64,
    checksum: String,
    entities: u32,
    ticks_per_sec: f64,
    seed: u64,
    players: u8,
    units: u32,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &RunArgs) -> Result<(), String> {
    let config = args.game.config();
    let mut game = match &args.from_snapshot {
        None => ArenaRun::new(&config).map_err(|e| e.to_string())?,
        Some(path) => {
            let bytes = files::read(path)?;
            let frame = snapshot::restore_new(&bytes, arena::schema(), MAX_CAPACITY)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            ArenaRun::from_frame(frame, args.game.arena.seed)
        }
    };
    let start_tick = game.frame.tick();
    if args.game.ticks < start_tick {
        return Err(format!(
            "--ticks {} is before the snapshot's tick {start_tick}",
            args.game.ticks
        ));
    }
    let bar = progress_bar(args.game.ticks - start_tick, "running");
    let started = Instant::now();
    game.run_to(args.game.ticks, |tick| {
        if tick % 64 == 0 {
            bar.set_position(tick - start_tick);
        }
    })
    .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let frame = &game.frame;
    if let Some(path) = &args.snapshot_out {
        let mut bytes = Vec::new();
        snapshot::encode(frame, &mut bytes);
        files::write(path, &bytes)?;
    }
    let report = RunReport {
        tick: frame.tick(),
        checksum: checksum(frame).to_hex(),
        entities: frame.world().len(),
        ticks_per_sec: if elapsed > 0.0 {
            (args.game.ticks - start_tick) as f64 / elapsed
        } else {
            0.0
        },
        seed: args.game.arena.seed,
        players: frame.globals().players as u8,
        units: frame.globals().units,
    };
    emit(args.json, &report, |r| {
        format!(
            "tick {}  checksum {}  entities {}  ({:.0} ticks/s)",
            r.tick, r.checksum, r.entities, r.ticks_per_sec
        )
    })
}
