//! `tickstep bench latency`: what lockstep costs in input latency, and whether any
//! input is lost to it, over the simulated network: a sweep of one-way latency with a
//! third of it as jitter, without and with loss, each a calm demo game of bots.

use clap::Args;
use serde::Serialize;
use std::time::Duration;
use tickstep_arena::ArenaConfig;
use tickstep_session::sim::LinkConfig;

use crate::demo::{DemoOptions, run_over_sim};
use crate::output::{emit, progress_bar_of};

/// One-way latencies swept, in milliseconds.
const LATENCIES: [u64; 5] = [0, 25, 50, 100, 150];
/// Loss rates swept, in percent.
const LOSSES: [u8; 2] = [0, 3];

/// Arguments of `bench latency`.
#[derive(Args)]
pub struct LatencyBenchArgs {
    /// Players in each game.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=16))]
    players: u8,
    /// Ticks each game lasts.
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(60..=1_000_000))]
    ticks: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// One point of the sweep; field names are a stable contract.
#[derive(Serialize)]
struct LatencyRow {
    latency_ms: u64,
    jitter_ms: u64,
    loss_percent: u8,
    /// Ticks some player's own input was missing from (absent or filled in).
    filled_ticks: u64,
    /// Ticks on which a connected player's input was filled in, all players together.
    own_input_filled: u64,
    /// The slowest player's median and 99th percentile input latency.
    input_latency_p50_ms: Option<u64>,
    input_latency_p99_ms: Option<u64>,
    /// The largest input lead at the end, in ticks.
    input_lead_ticks: u64,
    /// Every client ended on the same checksum (and the offline run's, with no fills).
    converged: bool,
}

/// The sweep.
#[derive(Serialize)]
struct LatencyReport {
    players: u8,
    ticks: u64,
    rows: Vec<LatencyRow>,
}

/// Runs `bench latency`.
pub(crate) fn run(args: &LatencyBenchArgs) -> Result<(), String> {
    let points: Vec<(u64, u8)> = LOSSES
        .iter()
        .flat_map(|&loss| LATENCIES.iter().map(move |&latency| (latency, loss)))
        .collect();
    let bar = progress_bar_of(points.len() as u64, "sweeping", "settings");
    let mut rows = Vec::new();
    for (latency, loss) in points {
        let jitter = latency / 3;
        let options = DemoOptions {
            game: ArenaConfig {
                units: 100,
                players: args.players,
                seed: 1,
            },
            ticks: args.ticks,
            tick_rate: 60,
            link: LinkConfig {
                latency: Duration::from_millis(latency),
                jitter: Duration::from_millis(jitter),
                loss_percent: loss,
                duplicate_percent: 0,
            },
            shaped: true,
            drops: Vec::new(),
            rejoins: Vec::new(),
            restarts: Vec::new(),
        };
        let report = run_over_sim(&options, None, |_| {})?;
        let clients = &report.clients;
        rows.push(LatencyRow {
            latency_ms: latency,
            jitter_ms: jitter,
            loss_percent: loss,
            filled_ticks: report.filled_ticks,
            own_input_filled: clients.iter().map(|c| c.own_input_filled).sum(),
            input_latency_p50_ms: clients.iter().filter_map(|c| c.input_latency_ms.p50).max(),
            input_latency_p99_ms: clients.iter().filter_map(|c| c.input_latency_ms.p99).max(),
            input_lead_ticks: clients
                .iter()
                .map(|c| c.input_lead_ticks)
                .max()
                .unwrap_or(0),
            converged: report.converged,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = LatencyReport {
        players: args.players,
        ticks: args.ticks,
        rows,
    };
    emit(args.json, &report, |r| {
        let ms = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        let mut text = format!(
            "{} players, {} ticks at 60 Hz, simulated network, jitter a third of the latency\n\
             one-way ms  jitter ms  loss %  filled ticks  own input filled  latency p50 ms  p99 ms  lead ticks",
            r.players, r.ticks
        );
        for row in &r.rows {
            text.push_str(&format!(
                "\n{:>10}  {:>9}  {:>6}  {:>12}  {:>16}  {:>14}  {:>6}  {:>10}",
                row.latency_ms,
                row.jitter_ms,
                row.loss_percent,
                row.filled_ticks,
                row.own_input_filled,
                ms(row.input_latency_p50_ms),
                ms(row.input_latency_p99_ms),
                row.input_lead_ticks
            ));
        }
        text
    })
}
