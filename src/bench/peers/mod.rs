//! `tickstep bench peers`: the movement-and-bounce pass on tickstep's frame against the
//! same pass on hecs, measured in the same run at each size.

mod workload;

use clap::Args;
use serde::Serialize;

use super::seconds_per_call;
use crate::output::{emit, progress_bar_of, rounded};

/// Arguments of `bench peers`.
#[derive(Args)]
pub struct PeersBenchArgs {
    /// Entity counts to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    sizes: Vec<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// One size's figures; field names are a stable contract.
#[derive(Serialize)]
struct PeersSize {
    entities: u32,
    /// Nanoseconds per pass on tickstep.
    tickstep_ns: f64,
    /// Nanoseconds per pass on hecs.
    hecs_ns: f64,
    /// `tickstep_ns / hecs_ns`: above 1, tickstep is slower.
    ratio: f64,
}

#[derive(Serialize)]
struct PeersReport {
    sizes: Vec<PeersSize>,
}

/// Runs `bench peers`.
pub(crate) fn run(args: &PeersBenchArgs) -> Result<(), String> {
    let bar = progress_bar_of(args.sizes.len() as u64, "measuring", "sizes");
    let mut sizes = Vec::with_capacity(args.sizes.len());
    for &n in &args.sizes {
        let mut frame = workload::tickstep_world(n)?;
        let mut world = workload::hecs_world(n);
        let tickstep = seconds_per_call(|| workload::tickstep_pass(&mut frame)) * 1e9;
        let hecs = seconds_per_call(|| workload::hecs_pass(&mut world)) * 1e9;
        sizes.push(PeersSize {
            entities: n,
            tickstep_ns: rounded(tickstep, 1),
            hecs_ns: rounded(hecs, 1),
            ratio: rounded(tickstep / hecs, 3),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    emit(args.json, &PeersReport { sizes }, |r| {
        let lines: Vec<String> = r
            .sizes
            .iter()
            .map(|s| {
                format!(
                    "{:>8} entities: tickstep {:>10.1} µs, hecs {:>10.1} µs, {:.2}× hecs's time",
                    s.entities,
                    s.tickstep_ns / 1e3,
                    s.hecs_ns / 1e3,
                    s.ratio
                )
            })
            .collect();
        lines.join("\n")
    })
}
