//! Recording an arena game played by bots into a replay file.

use std::io::Write;
use tickstep_engine::parallel::keep_warm;
use tickstep_engine::{Checksum, Tick, checksum};
use tickstep_replay::{ReplayHeader, ReplayWriter};

use super::{ArenaConfig, ArenaError, ArenaInput, ArenaRun, schema};

/// The arena's tick rate (ticks per second of game time).
pub const DEFAULT_TICK_RATE: u32 = 60;

/// How a recording samples the game.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// Record the frame checksum every this many ticks (0: never).
    pub checksum_every: u32,
    /// Record a checkpoint snapshot every this many ticks (0: never).
    pub checkpoint_every: u32,
}

impl Default for RecordOptions {
    /// A checksum every 10 ticks, a checkpoint every 600 (10 s at 60 Hz).
    fn default() -> Self {
        RecordOptions {
            checksum_every: 10,
            checkpoint_every: 600,
        }
    }
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The game could not be set up or stepped.
    #[error(transparent)]
    Arena(#[from] ArenaError),
    /// Writing failed.
    #[error("cannot write the replay: {0}")]
    Io(#[from] std::io::Error),
}

/// Plays `config` with bots from tick 0 to `ticks`, recording into `out`; calls
/// `progress` with each tick; returns the final frame's checksum.
pub fn record<W: Write>(
    config: &ArenaConfig,
    ticks: Tick,
    options: RecordOptions,
    out: W,
    mut progress: impl FnMut(Tick),
) -> Result<Checksum, RecordError> {
    let mut game = ArenaRun::new(config)?;
    let header = ReplayHeader {
        schema_hash: schema().hash(),
        tick_rate: DEFAULT_TICK_RATE,
        players: config.players as u32,
        input_size: size_of::<ArenaInput>() as u32,
        checksum_every: options.checksum_every,
        checkpoint_every: options.checkpoint_every,
        config: serde_json::to_vec(config).unwrap_or_default(),
    };
    let mut writer = ReplayWriter::new(out, &header, game.frame())?;
    keep_warm(|| {
        while game.frame().tick() < ticks {
            game.step().map_err(|e| ArenaError::Step(e.to_string()))?;
            writer.record(game.inputs(), game.frame())?;
            progress(game.frame().tick());
        }
        Ok::<_, RecordError>(())
    })?;
    writer.finish(game.frame().tick())?;
    Ok(checksum(game.frame()))
}
