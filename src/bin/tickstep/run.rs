//! `tickstep run`: the arena offline, from tick 0 to tick T, with bot input.

use clap::Args;
use serde::Serialize;
use std::time::Instant;
use tickstep::arena::{ArenaConfig, ArenaRun, MAX_ARENA_PLAYERS};
use tickstep::engine::checksum;

use crate::output::{emit, progress_bar};

/// Arguments of `tickstep run`.
#[derive(Args)]
pub struct RunArgs {
    /// Autonomous units in the arena (plus one ship per player and the shots in flight).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=4_000_000))]
    entities: u32,
    /// Tick to run to (60 ticks = 1 s of game time).
    #[arg(long, default_value_t = 600)]
    ticks: u64,
    /// Seed of the game's RNG and of the bots' input.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Players (one ship each, driven by bots).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=MAX_ARENA_PLAYERS as i64))]
    players: u8,
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

pub fn run(args: &RunArgs) -> Result<(), String> {
    let config = ArenaConfig {
        units: args.entities,
        players: args.players,
        seed: args.seed,
    };
    let mut game = ArenaRun::new(&config).map_err(|e| e.to_string())?;
    let bar = progress_bar(args.ticks, "running");
    let started = Instant::now();
    game.run_to(args.ticks, |tick| {
        if tick % 64 == 0 {
            bar.set_position(tick);
        }
    })
    .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let frame = &game.frame;
    let report = RunReport {
        tick: frame.tick(),
        checksum: checksum(frame).to_hex(),
        entities: frame.world().len(),
        ticks_per_sec: if elapsed > 0.0 {
            args.ticks as f64 / elapsed
        } else {
            0.0
        },
        seed: args.seed,
        players: args.players,
        units: args.entities,
    };
    emit(args.json, &report, |r| {
        format!(
            "tick {}  checksum {}  entities {}  ({:.0} ticks/s)",
            r.tick, r.checksum, r.entities, r.ticks_per_sec
        )
    })
}
