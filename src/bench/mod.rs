//! `tickstep bench ...`: measurements that report ratios against baselines measured in
//! the same run (memcpy, blake3, the serde+postcard snapshot), because the machines
//! these run on are shared and noisy.

mod catch_up;
mod latency;
mod peers;
mod server;
mod snapshot;
mod udp_floor;

use clap::Subcommand;
use std::time::{Duration, Instant};

use catch_up::CatchUpBenchArgs;
use latency::LatencyBenchArgs;
use peers::PeersBenchArgs;
use server::ServerBenchArgs;
use snapshot::SnapshotBenchArgs;

/// `tickstep bench ...`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Snapshot encode/verify/restore against memcpy, blake3 and a postcard snapshot.
    Snapshot(SnapshotBenchArgs),
    /// Catch-up speed, and rejoining by snapshot + catch-up against re-simulating from 0.
    CatchUp(CatchUpBenchArgs),
    /// Input latency and lost input over the simulated network: a sweep of latency,
    /// jitter and loss.
    Latency(LatencyBenchArgs),
    /// Queries: one movement-and-bounce pass on tickstep's frame against hecs, at
    /// each size.
    Peers(PeersBenchArgs),
    /// Server load: rooms of bot clients against one server over loopback QUIC; ticks
    /// on time and late, and server CPU per room-tick against a plain UDP echo's.
    Server(ServerBenchArgs),
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(command: &BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Snapshot(args) => snapshot::run(args),
        BenchCommand::CatchUp(args) => catch_up::run(args),
        BenchCommand::Server(args) => server::run(args),
        BenchCommand::Latency(args) => latency::run(args),
        BenchCommand::Peers(args) => peers::run(args),
    }
}

/// Seconds per call of `f`: the fastest of several rounds of at least `ROUND` each, so a
/// busy neighbour on a shared machine inflates fewer of the samples that count.
pub(crate) fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    const ROUNDS: usize = 5;
    const ROUND: Duration = Duration::from_millis(60);
    f();
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < ROUND {
            f();
            calls += 1;
        }
        best = best.min(started.elapsed().as_secs_f64() / calls as f64);
    }
    best
}
