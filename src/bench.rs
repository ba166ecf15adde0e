//! `tickstep bench ...`: measurements that report ratios against baselines measured in
//! the same run (memcpy, blake3, the serde+postcard snapshot), because the machines
//! these run on are shared and noisy.

use clap::{Args, Subcommand};
use serde::Serialize;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tickstep_arena::serde_snapshot::SerdeWorld;
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput, ArenaRun};
use tickstep_engine::{Frame, MAX_CAPACITY, Simulation, TickInputs, checksum};
use tickstep_replay::{Budget, CatchUp, InputLog};
use tickstep_snapshot as snapshot;

use crate::output::{emit, progress_bar};

/// `tickstep bench ...`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Snapshot encode/verify/restore against memcpy, blake3 and a postcard snapshot.
    Snapshot(SnapshotBenchArgs),
    /// Catch-up speed, and rejoining by snapshot + catch-up against re-simulating from 0.
    CatchUp(CatchUpBenchArgs),
    /// Server load: rooms of bot clients against one server over loopback TCP; ticks
    /// on time and late, and server CPU per room-tick.
    Server(ServerBenchArgs),
}

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

/// Arguments of `bench catch-up`.
#[derive(Args)]
pub struct CatchUpBenchArgs {
    /// Units in the arena.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    entities: u32,
    /// Ticks of verified input buffered (36,000 = 10 minutes at 60 Hz).
    #[arg(long, default_value_t = 36_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ticks: u64,
    /// How far behind live the rejoiner's snapshot is, in ticks (time to request, send
    /// and restore it while the game goes on).
    #[arg(long, default_value_t = 300)]
    lag: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `bench snapshot`.
#[derive(Args)]
pub struct SnapshotBenchArgs {
    /// Units in the arena whose frame is snapshotted.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    entities: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(command: &BenchCommand) -> Result<(), String> {
    match command {
        BenchCommand::Snapshot(args) => snapshot_bench(args),
        BenchCommand::CatchUp(args) => catch_up_bench(args),
        BenchCommand::Server(args) => server_bench(args),
    }
}

fn server_bench(args: &ServerBenchArgs) -> Result<(), String> {
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

/// Seconds per call of `f`: the fastest of several rounds of at least `ROUND` each, so a
/// busy neighbour on a shared machine inflates fewer of the samples that count.
fn seconds_per_call(mut f: impl FnMut()) -> f64 {
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

/// The figures of `bench snapshot`; field names are a stable contract.
#[derive(Serialize)]
struct SnapshotBenchReport {
    entities: u32,
    /// Bytes of the in-memory world (the frame image); every throughput is over these.
    bytes: usize,
    snapshot_bytes: usize,
    postcard_bytes: usize,
    memcpy_gbps: f64,
    blake3_gbps: f64,
    bound_gbps: f64,
    encode_gbps: f64,
    verify_gbps: f64,
    restore_gbps: f64,
    encode_vs_bound: f64,
    restore_vs_bound: f64,
    postcard_encode_gbps: f64,
    postcard_decode_gbps: f64,
    vs_postcard: f64,
    restore_vs_postcard: f64,
}

fn snapshot_bench(args: &SnapshotBenchArgs) -> Result<(), String> {
    let config = ArenaConfig {
        units: args.entities,
        players: 4,
        seed: 1,
    };
    let mut game = ArenaRun::new(&config).map_err(|e| e.to_string())?;
    game.run_to(60, |_| {}).map_err(|e| e.to_string())?;
    let frame = &game.frame;
    let bytes = frame.image_len();
    let gbps = |seconds: f64| bytes as f64 / seconds / 1e9;
    let bar = progress_bar(7, "measuring");

    let source = vec![0x5au8; bytes];
    let mut target = vec![0u8; bytes];
    let memcpy = gbps(seconds_per_call(|| {
        target.copy_from_slice(black_box(&source))
    }));
    bar.inc(1);
    let blake3 = gbps(seconds_per_call(|| {
        black_box(blake3::hash(black_box(&source)));
    }));
    bar.inc(1);

    let mut encoded = Vec::new();
    snapshot::encode(frame, &mut encoded);
    let encode = gbps(seconds_per_call(|| {
        snapshot::encode(black_box(frame), &mut encoded);
    }));
    bar.inc(1);
    let schema = arena::schema();
    let verify = gbps(seconds_per_call(|| {
        black_box(snapshot::verify(black_box(&encoded), &schema).is_ok());
    }));
    bar.inc(1);
    let mut restored = frame.clone();
    let restore = gbps(seconds_per_call(|| {
        black_box(snapshot::restore(black_box(&encoded), &mut restored).is_ok());
    }));
    bar.inc(1);

    let world = SerdeWorld::from_frame(frame);
    let (mut postcard, hash) = world
        .encode_checked(Vec::new())
        .map_err(|e| e.to_string())?;
    let postcard_encode = gbps(seconds_per_call(|| {
        let out = std::mem::take(&mut postcard);
        if let Ok((out, hash)) = world.encode_checked(out) {
            black_box(hash);
            postcard = out;
        }
    }));
    bar.inc(1);
    let postcard_decode = gbps(seconds_per_call(|| {
        black_box(SerdeWorld::decode_checked(black_box(&postcard), &hash));
    }));
    bar.finish_and_clear();

    let bound = 1.0 / (1.0 / memcpy + 1.0 / blake3);
    let report = SnapshotBenchReport {
        entities: args.entities,
        bytes,
        snapshot_bytes: encoded.len(),
        postcard_bytes: postcard.len(),
        memcpy_gbps: memcpy,
        blake3_gbps: blake3,
        bound_gbps: bound,
        encode_gbps: encode,
        verify_gbps: verify,
        restore_gbps: restore,
        encode_vs_bound: encode / bound,
        restore_vs_bound: restore / bound,
        postcard_encode_gbps: postcard_encode,
        postcard_decode_gbps: postcard_decode,
        vs_postcard: encode / postcard_encode,
        restore_vs_postcard: restore / postcard_decode,
    };
    emit(args.json, &report, |r| {
        format!(
            "world {} bytes ({} entities); snapshot {} bytes, postcard {} bytes\n\
             memcpy {:.2} GB/s, blake3 {:.2} GB/s, bound (memcpy+blake3) {:.2} GB/s\n\
             encode  {:.2} GB/s = {:.2}x bound, {:.1}x postcard+blake3 ({:.2} GB/s)\n\
             verify  {:.2} GB/s\n\
             restore {:.2} GB/s = {:.2}x bound, {:.1}x blake3+postcard decode ({:.2} GB/s)",
            r.bytes,
            r.entities,
            r.snapshot_bytes,
            r.postcard_bytes,
            r.memcpy_gbps,
            r.blake3_gbps,
            r.bound_gbps,
            r.encode_gbps,
            r.encode_vs_bound,
            r.vs_postcard,
            r.postcard_encode_gbps,
            r.verify_gbps,
            r.restore_gbps,
            r.restore_vs_bound,
            r.restore_vs_postcard,
            r.postcard_decode_gbps
        )
    })
}

/// The figures of `bench catch-up`; field names are a stable contract.
#[derive(Serialize)]
struct CatchUpBenchReport {
    entities: u32,
    ticks: u64,
    lag: u64,
    ticks_per_sec: f64,
    realtime_multiplier: f64,
    rejoin_snapshot_ms: f64,
    rejoin_from_start_ms: f64,
    rejoin_speedup: f64,
    final_checksum: String,
}

/// Steps `frame` toward `until` through `catch_up` in slices, updating `bar` by `done`.
fn catch_up_until(
    catch_up: &mut CatchUp<ArenaInput>,
    sim: &mut Simulation<ArenaGlobals, ArenaInput>,
    frame: &mut Frame<ArenaGlobals>,
    log: &InputLog<ArenaInput>,
    until: u64,
    mut show: impl FnMut(u64),
) -> Result<(), String> {
    while frame.tick() < until {
        let slice = (until - frame.tick()).min(256);
        let status = catch_up
            .run_slice(sim, frame, log, Budget::Ticks(slice))
            .map_err(|e| e.to_string())?;
        show(status.done);
    }
    Ok(())
}

fn catch_up_bench(args: &CatchUpBenchArgs) -> Result<(), String> {
    let config = ArenaConfig {
        units: args.entities,
        players: 4,
        seed: 1,
    };
    let players = config.players as usize;
    let lag = args.lag.min(args.ticks);
    let schema = arena::schema();
    // The verified input of ticks 1..=T, as a server's history would hold it.
    let mut log = InputLog::new(players, args.ticks);
    let mut inputs = TickInputs::new(players).map_err(|e| e.to_string())?;
    for tick in 1..=args.ticks {
        arena::fill_bot_inputs(config.seed, tick, &mut inputs);
        log.push(&inputs).map_err(|e| e.to_string())?;
    }
    let mut initial = Vec::new();
    snapshot::encode(
        &arena::new_frame(&config).map_err(|e| e.to_string())?,
        &mut initial,
    );
    let bar = progress_bar(args.ticks + lag, "catch-up");
    let mut sim = arena::simulation();

    // From tick 0 to T, as an engine without snapshots rejoins. On the way, untimed, keep
    // the snapshot a buddy would send at T - lag.
    let mut timed = Duration::ZERO;
    let began = Instant::now();
    let mut frame =
        snapshot::restore_new(&initial, schema.clone(), MAX_CAPACITY).map_err(|e| e.to_string())?;
    let mut catch_up =
        CatchUp::new(players, 0, 0, arena::DEFAULT_TICK_RATE).map_err(|e| e.to_string())?;
    catch_up_until(
        &mut catch_up,
        &mut sim,
        &mut frame,
        &log,
        args.ticks - lag,
        |done| bar.set_position(done),
    )?;
    timed += began.elapsed();
    let mut buddy = Vec::new();
    snapshot::encode(&frame, &mut buddy);
    let resumed = Instant::now();
    catch_up_until(
        &mut catch_up,
        &mut sim,
        &mut frame,
        &log,
        args.ticks,
        |done| bar.set_position(done),
    )?;
    let from_start = timed + resumed.elapsed();
    let final_checksum = checksum(&frame);

    // Rejoin: restore the buddy's snapshot and catch up the last `lag` ticks.
    let began = Instant::now();
    let mut rejoined =
        snapshot::restore_new(&buddy, schema, MAX_CAPACITY).map_err(|e| e.to_string())?;
    let mut catch_up = CatchUp::new(players, rejoined.tick(), 0, arena::DEFAULT_TICK_RATE)
        .map_err(|e| e.to_string())?;
    catch_up_until(
        &mut catch_up,
        &mut sim,
        &mut rejoined,
        &log,
        args.ticks,
        |done| bar.set_position(args.ticks + done),
    )?;
    let rejoin = began.elapsed();
    bar.finish_and_clear();
    if checksum(&rejoined) != final_checksum {
        return Err(
            "the rejoined frame differs from the re-simulated one (a determinism bug)".into(),
        );
    }

    let ticks_per_sec = args.ticks as f64 / from_start.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = CatchUpBenchReport {
        entities: args.entities,
        ticks: args.ticks,
        lag,
        ticks_per_sec,
        realtime_multiplier: ticks_per_sec / arena::DEFAULT_TICK_RATE as f64,
        rejoin_snapshot_ms: ms(rejoin),
        rejoin_from_start_ms: ms(from_start),
        rejoin_speedup: from_start.as_secs_f64() / rejoin.as_secs_f64(),
        final_checksum: final_checksum.to_hex(),
    };
    emit(args.json, &report, |r| {
        format!(
            "catch-up: {} ticks of {} units in {:.0} ms = {:.0} ticks/s ({:.0}x real time at 60 Hz)\n\
             rejoin at tick {}: snapshot {} ticks behind + catch-up in {:.1} ms, re-simulating from tick 0 {:.0} ms ({:.0}x faster)",
            r.ticks,
            r.entities,
            r.rejoin_from_start_ms,
            r.ticks_per_sec,
            r.realtime_multiplier,
            r.ticks,
            r.lag,
            r.rejoin_snapshot_ms,
            r.rejoin_from_start_ms,
            r.rejoin_speedup
        )
    })
}
