//! `tickstep bench server`: rooms of bot clients against one server over loopback QUIC.

use clap::Args;

use crate::output::{emit, progress_bar};

/// Arguments of `bench server`.
#[derive(Args)]
pub struct ServerBenchArgs {
    /// Rooms.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=2000))]
    rooms: u32,
    /// Bot players per room.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=16))]
    players: u8,
    /// Ticks per second.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tick_rate: u32,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// Units in each room's arena (simulated by the clients, not the server).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    entities: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `bench server`.
pub(crate) fn run(args: &ServerBenchArgs) -> Result<(), String> {
    let options = crate::load::LoadOptions {
        rooms: args.rooms,
        players: args.players,
        tick_rate: args.tick_rate,
        seconds: args.seconds,
        entities: args.entities,
    };
    let bar = progress_bar(100, "measuring");
    let report = crate::load::run_load(&options, |done| bar.set_position((done * 100.0) as u64))?;
    bar.finish_and_clear();
    emit(args.json, &report, |r| {
        format!(
            "{} rooms x {} players at {} Hz for {} s: {} room-ticks ({} expected), {} on time, {} late, {} with input filled in\nserver CPU {} ms = {} us per room-tick: one core holds about {} such rooms",
            r.rooms,
            r.players,
            r.tick_rate,
            r.seconds,
            r.room_ticks,
            r.expected_room_ticks,
            r.on_time_ticks,
            r.late_ticks,
            r.filled_ticks,
            r.server_cpu_ms,
            r.server_cpu_us_per_room_tick,
            r.rooms_per_core
        )
    })
}
