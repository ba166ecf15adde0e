//! `tickstep replay info|verify|seek`: examine, re-simulate and seek arena replays.

use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use tickstep_arena::{self as arena, ArenaInput};
use tickstep_replay::{self as replay, Replay};
use tickstep_snapshot::FrameDiff;

use crate::files;
use crate::output::{difference_line, emit, progress_bar};
use crate::threads::ThreadArgs;

/// `tickstep replay ...`.
#[derive(Subcommand)]
pub enum ReplayCommand {
    /// Summarise a replay: rates, players, game config, ticks, checksums, checkpoints.
    Info(FileArgs),
    /// Re-simulate a replay and compare every recorded checksum; exit 1 on a divergence.
    Verify(VerifyArgs),
    /// Write a snapshot of the frame at a tick (via the nearest checkpoint).
    Seek(SeekArgs),
}

/// A replay file and an output format.
#[derive(Args)]
pub struct FileArgs {
    /// The replay file.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `replay verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The replay file.
    file: PathBuf,
    /// Also write the re-simulated frame at the first divergent tick to this snapshot file.
    #[arg(long, value_name = "FILE")]
    divergent_out: Option<PathBuf>,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `replay seek`.
#[derive(Args)]
pub struct SeekArgs {
    /// The replay file.
    file: PathBuf,
    /// The tick to seek to.
    #[arg(long)]
    tick: u64,
    /// The snapshot file to write.
    #[arg(short = 'o', long = "out", value_name = "SNAP")]
    out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(command: &ReplayCommand) -> Result<(), String> {
    match command {
        ReplayCommand::Info(args) => info(args),
        ReplayCommand::Verify(args) => args.threads.run(|| verify(args))?,
        ReplayCommand::Seek(args) => seek(args),
    }
}

fn parse<'a>(bytes: &'a [u8], path: &std::path::Path) -> Result<Replay<'a, ArenaInput>, String> {
    Replay::parse(bytes, &arena::schema()).map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Serialize)]
struct InfoReport {
    bytes: usize,
    schema_hash: String,
    tick_rate: u32,
    players: u32,
    config: serde_json::Value,
    first_tick: u64,
    last_tick: u64,
    ticks: u64,
    input_runs: usize,
    checksums: usize,
    checksum_every: u32,
    checkpoints: usize,
    checkpoint_every: u32,
    complete: bool,
    truncated_at: Option<usize>,
}

fn info(args: &FileArgs) -> Result<(), String> {
    let bytes = files::read(&args.file)?;
    let replay = parse(&bytes, &args.file)?;
    let header = &replay.header;
    let report = InfoReport {
        bytes: bytes.len(),
        schema_hash: header.schema_hash.to_hex(),
        tick_rate: header.tick_rate,
        players: header.players,
        config: serde_json::from_slice(&header.config).unwrap_or(serde_json::Value::Null),
        first_tick: replay.initial.0,
        last_tick: replay.last_tick(),
        ticks: replay.last_tick() - replay.initial.0,
        input_runs: replay.inputs.runs(),
        checksums: replay.checksums.len(),
        checksum_every: header.checksum_every,
        checkpoints: replay.checkpoints.len(),
        checkpoint_every: header.checkpoint_every,
        complete: replay.ended_at.is_some(),
        truncated_at: replay.truncated_at,
    };
    emit(args.json, &report, |r| {
        let state = match r.truncated_at {
            None => "complete".to_string(),
            Some(at) => format!("cut short at byte {at} (readable up to there)"),
        };
        format!(
            "ticks {}..={} at {} Hz, {} players, config {}\n{} checksums (every {}), {} checkpoints (every {}), {} input runs\n{} bytes, {}",
            r.first_tick,
            r.last_tick,
            r.tick_rate,
            r.players,
            r.config,
            r.checksums,
            r.checksum_every,
            r.checkpoints,
            r.checkpoint_every,
            r.input_runs,
            r.bytes,
            state
        )
    })
}

#[derive(Serialize)]
struct VerifyReport {
    ok: bool,
    ticks: u64,
    final_checksum: String,
    first_divergent_tick: Option<u64>,
    truncated_at: Option<usize>,
    compared: usize,
    diff_tick: Option<u64>,
    diff: Option<FrameDiff>,
}

fn verify(args: &VerifyArgs) -> Result<(), String> {
    let bytes = files::read(&args.file)?;
    let replay = parse(&bytes, &args.file)?;
    let bar = progress_bar(replay.last_tick() - replay.initial.0, "verifying");
    let first = replay.initial.0;
    let result = replay::verify(
        &replay,
        &arena::schema(),
        &mut arena::simulation(),
        |tick| {
            if tick % 64 == 0 {
                bar.set_position(tick - first);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let (Some(path), Some(frame)) = (&args.divergent_out, &result.divergent_frame) {
        let mut snapshot = Vec::new();
        tickstep_snapshot::encode(frame, &mut snapshot);
        files::write(path, &snapshot)?;
    }
    let (diff_tick, diff) = match result.checkpoint_diff {
        Some((tick, diff)) => (Some(tick), Some(diff)),
        None => (None, None),
    };
    let report = VerifyReport {
        ok: result.first_divergent_tick.is_none(),
        ticks: result.ticks,
        final_checksum: result.final_checksum.to_hex(),
        first_divergent_tick: result.first_divergent_tick,
        truncated_at: replay.truncated_at,
        compared: result.compared,
        diff_tick,
        diff,
    };
    emit(args.json, &report, |r| {
        let mut lines = vec![match r.first_divergent_tick {
            None => format!(
                "ok: {} ticks re-simulated, {} checksums match; final {}",
                r.ticks, r.compared, r.final_checksum
            ),
            Some(tick) => format!("DIVERGED at tick {tick} (first recorded checksum that differs)"),
        }];
        if let (Some(tick), Some(diff)) = (r.diff_tick, &r.diff) {
            lines.push(format!(
                "at checkpoint tick {tick}, {} difference(s), first ones:",
                diff.total
            ));
            for d in diff.differences.iter().take(10) {
                lines.push(difference_line(d, "replayed", "recorded"));
            }
        }
        if let Some(at) = r.truncated_at {
            lines.push(format!(
                "note: the replay was cut short at byte {at}; verified up to there"
            ));
        }
        lines.join("\n")
    })?;
    if report.ok {
        Ok(())
    } else {
        Err(format!(
            "replay diverges at tick {}",
            report.first_divergent_tick.unwrap_or_default()
        ))
    }
}

#[derive(Serialize)]
struct SeekReport {
    tick: u64,
    checksum: String,
    file: String,
}

fn seek(args: &SeekArgs) -> Result<(), String> {
    let bytes = files::read(&args.file)?;
    let replay = parse(&bytes, &args.file)?;
    if args.tick < replay.initial.0 || args.tick > replay.last_tick() {
        return Err(format!(
            "tick {} is outside the replay ({}..={})",
            args.tick,
            replay.initial.0,
            replay.last_tick()
        ));
    }
    let frame = replay::seek(
        &replay,
        &arena::schema(),
        &mut arena::simulation(),
        args.tick,
    )
    .map_err(|e| e.to_string())?;
    let mut snapshot = Vec::new();
    let sum = tickstep_snapshot::encode(&frame, &mut snapshot);
    files::write(&args.out, &snapshot)?;
    let report = SeekReport {
        tick: frame.tick(),
        checksum: sum.to_hex(),
        file: args.out.display().to_string(),
    };
    emit(args.json, &report, |r| {
        format!(
            "tick {} checksum {} written to {}",
            r.tick, r.checksum, r.file
        )
    })
}
