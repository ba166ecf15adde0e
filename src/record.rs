//! `tickstep record`: play the arena with bots and write a replay file.

use clap::Args;
use serde::Serialize;
use std::io::BufWriter;
use std::path::PathBuf;
use tickstep_arena::{self as arena, RecordOptions};

use crate::game_args::GameArgs;
use crate::output::{emit, progress_bar};
use crate::threads::ThreadArgs;

/// Arguments of `tickstep record`.
#[derive(Args)]
pub struct RecordArgs {
    #[command(flatten)]
    game: GameArgs,
    /// The replay file to write.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: PathBuf,
    /// A checkpoint snapshot every C ticks (0: none); seeking costs at most C ticks.
    #[arg(long, default_value_t = 600)]
    checkpoint_every: u32,
    /// A frame checksum every K ticks (0: none); verify finds a divergence to within K.
    #[arg(long, default_value_t = 10)]
    checksum_every: u32,
    #[command(flatten)]
    threads: ThreadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct RecordReport {
    ticks: u64,
    final_checksum: String,
    bytes: u64,
    file: String,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(args: &RecordArgs) -> Result<(), String> {
    args.threads.run(|| record(args))?
}

fn record(args: &RecordArgs) -> Result<(), String> {
    let config = args.game.config();
    let file = std::fs::File::create(&args.out)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let options = RecordOptions {
        checksum_every: args.checksum_every,
        checkpoint_every: args.checkpoint_every,
    };
    let bar = progress_bar(args.game.ticks, "recording");
    let sum = arena::record(
        &config,
        args.game.ticks,
        options,
        BufWriter::new(file),
        |tick| {
            if tick % 64 == 0 {
                bar.set_position(tick);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    let report = RecordReport {
        ticks: args.game.ticks,
        final_checksum: sum.to_hex(),
        bytes,
        file: args.out.display().to_string(),
    };
    emit(args.json, &report, |r| {
        format!(
            "recorded {} ticks to {} ({} bytes); final checksum {}",
            r.ticks, r.file, r.bytes, r.final_checksum
        )
    })
}
