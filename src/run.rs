//! `tickstep run`: the arena offline, from tick 0 to tick T, with bot input.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaRun};
use tickstep_engine::{Frame, MAX_CAPACITY, checksum};
use tickstep_snapshot::{self as snapshot, SyncTest};

use crate::files;
use crate::game_args::GameArgs;
use crate::output::{emit, progress_bar};
use crate::threads::ThreadArgs;

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
    /// Check every tick that the state is all there is: restore the previous tick's
    /// snapshot into a second frame, step it with fresh systems and compare checksums
    /// (about 3x slower). A divergence is an error naming the tick and the fields.
    #[arg(long, conflicts_with = "from_snapshot")]
    sync_test: bool,
    #[command(flatten)]
    threads: ThreadArgs,
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
    /// Every tick was checked by the sync test.
    sync_tested: bool,
    /// Threads that simulated.
    threads: usize,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &RunArgs) -> Result<(), String> {
    args.threads.run(|| run_in_pool(args))?
}

fn run_in_pool(args: &RunArgs) -> Result<(), String> {
    let config = args.game.config();
    if args.sync_test {
        return sync_test(args, config);
    }
    let mut game = match &args.from_snapshot {
        None => ArenaRun::new(&config).map_err(|e| e.to_string())?,
        Some(path) => {
            let bytes = files::read(path)?;
            let frame = snapshot::restore_new(&bytes, arena::schema(), MAX_CAPACITY)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            ArenaRun::from_frame(frame, args.game.arena.seed)
        }
    };
    let start_tick = game.frame().tick();
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
    report(args, game.frame(), start_tick, elapsed, false)
}

/// `run --sync-test`: the same game, every tick checked by a [`SyncTest`].
fn sync_test(args: &RunArgs, config: ArenaConfig) -> Result<(), String> {
    let mut test = SyncTest::new(config, config.players).map_err(|e| e.to_string())?;
    let bar = progress_bar(args.game.ticks, "sync-testing");
    let started = Instant::now();
    while test.frame().tick() < args.game.ticks {
        test.step(|frame, inputs| {
            arena::fill_bot_inputs(config.seed, frame.tick() + 1, inputs);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        if test.frame().tick() % 64 == 0 {
            bar.set_position(test.frame().tick());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    report(args, test.frame(), 0, elapsed, true)
}

/// Writes the snapshot asked for and prints the report.
fn report(
    args: &RunArgs,
    frame: &Frame<ArenaGlobals>,
    start_tick: u64,
    elapsed: f64,
    sync_tested: bool,
) -> Result<(), String> {
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
        sync_tested,
        threads: args.threads.count(),
    };
    emit(args.json, &report, |r| {
        format!(
            "tick {}  checksum {}  entities {}  ({:.0} ticks/s)",
            r.tick, r.checksum, r.entities, r.ticks_per_sec
        )
    })
}
