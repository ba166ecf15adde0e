//! The arena flags subcommands share.

use clap::Args;
use tickstep_arena::{ArenaConfig, MAX_ARENA_PLAYERS};

/// `--entities --seed --players`: which arena game is played.
#[derive(Args, Clone)]
pub struct ArenaArgs {
    /// Autonomous units in the arena (plus one ship per player and the shots in flight).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=4_000_000))]
    pub entities: u32,
    /// Seed of the game's RNG and of the bots' input.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Players (one ship each, driven by bots).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=MAX_ARENA_PLAYERS as i64))]
    pub players: u8,
}

impl ArenaArgs {
    /// The arena these flags describe.
    pub fn config(&self) -> ArenaConfig {
        ArenaConfig {
            units: self.entities,
            players: self.players,
            seed: self.seed,
        }
    }
}

/// The arena flags plus `--ticks`: a game played from tick 0 to an end.
#[derive(Args)]
pub struct GameArgs {
    #[command(flatten)]
    pub arena: ArenaArgs,
    /// Tick to play to (60 ticks = 1 s of game time).
    #[arg(long, default_value_t = 600)]
    pub ticks: u64,
}

impl GameArgs {
    /// The arena these flags describe.
    pub fn config(&self) -> ArenaConfig {
        self.arena.config()
    }
}
