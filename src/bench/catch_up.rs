//! `tickstep bench catch-up`: how fast a rejoiner catches up, through the bare
//! `CatchUp` runner and through a session `Client` restoring a snapshot, and how much a
//! snapshot saves over re-simulating from tick 0.

use clap::Args;
use serde::Serialize;
use std::time::{Duration, Instant};
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput};
use tickstep_engine::{Checksum, Frame, MAX_CAPACITY, PlayerId, Simulation, TickInputs, checksum};
use tickstep_replay::{CatchUp, InputLog};
use tickstep_session::{
    Client, ClientConfig, ClientId, Entry, ReconnectInfo, ResumeToken, RoomInfo, ServerMessage,
    SnapshotSource, Timing, VerifiedTicks,
};
use tickstep_snapshot as snapshot;

use crate::output::{emit, progress_bar, progress_bar_of};
use crate::threads::{ThreadArgs, in_pool};

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
    #[command(flatten)]
    threads: ThreadArgs,
    /// Rounds of the catch-up from tick 0 on `--threads` threads and on one, taken in
    /// turn: more rounds give steadier figures (medians) on a shared, noisy machine.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
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
    /// The same catch-up from tick 0 through a session `Client` (with its checksum
    /// snapshots every 30 ticks), as a client entering from the start runs it.
    client_ticks_per_sec: f64,
    /// The rejoin through a session `Client`: taking the snapshot's chunks, checking
    /// and restoring it, then catching up.
    client_rejoin_ms: f64,
    /// Threads that simulated.
    threads: usize,
    /// The catch-up from tick 0 on one thread, measured in the same invocation.
    single_thread_ticks_per_sec: f64,
    /// `ticks_per_sec / single_thread_ticks_per_sec` (over several rounds, the median
    /// of each round's ratio).
    parallel_speedup: f64,
    /// Rounds of the catch-up from tick 0 on `threads` threads and on one, in turn;
    /// `ticks_per_sec` and `single_thread_ticks_per_sec` are their medians.
    rounds: u32,
}

/// The median of `values` (not empty): the middle one, or the mean of the two middle.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
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
            .run_slice(sim, frame, log, slice)
            .map_err(|e| e.to_string())?;
        show(status.done);
    }
    Ok(())
}

/// Runs `bench catch-up` on its thread count, then the catch-up from tick 0 again on one.
/// With several rounds, each round runs the catch-up from tick 0 on the thread count and
/// then on one, and the figures from tick 0 are their medians (the rejoin figures stay
/// those of the first, full run).
pub(crate) fn run(args: &CatchUpBenchArgs) -> Result<(), String> {
    let mut report = args.threads.run(|| measure(args))??;
    let same = |checksum: String| {
        (checksum == report.final_checksum)
            .then_some(())
            .ok_or("a catch-up ended on another checksum (a determinism bug)")
    };
    let bar = progress_bar_of(args.rounds.into(), "rounds", "rounds");
    let (mut many, mut one, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..args.rounds {
        // One round: the full run's figure against one thread's; more: each round's
        // two runs back to back, so that both meet the same machine.
        let ticks_per_sec = if args.rounds == 1 {
            report.ticks_per_sec
        } else {
            let (ticks_per_sec, checksum) = args.threads.run(|| straight(args))??;
            same(checksum)?;
            ticks_per_sec
        };
        let (single, checksum) = in_pool(1, || straight(args))??;
        same(checksum)?;
        many.push(ticks_per_sec);
        one.push(single);
        ratios.push(ticks_per_sec / single);
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.ticks_per_sec = median(&many);
    report.realtime_multiplier = report.ticks_per_sec / arena::DEFAULT_TICK_RATE as f64;
    report.single_thread_ticks_per_sec = median(&one);
    report.parallel_speedup = median(&ratios);
    report.rounds = args.rounds;
    emit(args.json, &report, |r| {
        format!(
            "catch-up: {} ticks of {} units at {:.0} ticks/s ({:.0}x real time at 60 Hz) on {} threads, {:.2}x one thread's {:.0} ticks/s{}\n\
             rejoin at tick {}: snapshot {} ticks behind + catch-up in {:.1} ms, re-simulating from tick 0 {:.0} ms ({:.0}x faster)\n\
             through the session client: {:.0} ticks/s from tick 0 (checksum snapshots included), rejoin {:.1} ms",
            r.ticks,
            r.entities,
            r.ticks_per_sec,
            r.realtime_multiplier,
            r.threads,
            r.parallel_speedup,
            r.single_thread_ticks_per_sec,
            match r.rounds {
                1 => String::new(),
                rounds => format!(" (medians of {rounds} rounds)"),
            },
            r.ticks,
            r.lag,
            r.rejoin_snapshot_ms,
            r.rejoin_from_start_ms,
            r.rejoin_speedup,
            r.client_ticks_per_sec,
            r.client_rejoin_ms
        )
    })
}

/// The arena and the verified input of ticks `1..=T` that `bench catch-up` plays.
fn game(args: &CatchUpBenchArgs) -> Result<(ArenaConfig, InputLog<ArenaInput>), String> {
    let config = ArenaConfig {
        units: args.entities,
        players: 4,
        seed: 1,
    };
    let players = config.players as usize;
    let mut log = InputLog::new(players, args.ticks);
    let mut inputs = TickInputs::new(players).map_err(|e| e.to_string())?;
    for tick in 1..=args.ticks {
        arena::fill_bot_inputs(config.seed, tick, &mut inputs);
        log.push(&inputs).map_err(|e| e.to_string())?;
    }
    Ok((config, log))
}

/// The catch-up from tick 0 to T alone: ticks per second and the final checksum.
fn straight(args: &CatchUpBenchArgs) -> Result<(f64, String), String> {
    let (config, log) = game(args)?;
    let mut frame = arena::new_frame(&config).map_err(|e| e.to_string())?;
    let mut sim = arena::simulation();
    let players = config.players as usize;
    let mut catch_up = CatchUp::new(players, 0, 0).map_err(|e| e.to_string())?;
    let began = Instant::now();
    catch_up_until(
        &mut catch_up,
        &mut sim,
        &mut frame,
        &log,
        args.ticks,
        |_| {},
    )?;
    let ticks_per_sec = args.ticks as f64 / began.elapsed().as_secs_f64();
    Ok((ticks_per_sec, checksum(&frame).to_hex()))
}

/// Every figure but the single-thread one.
fn measure(args: &CatchUpBenchArgs) -> Result<CatchUpBenchReport, String> {
    // The verified input of ticks 1..=T, as a server's history would hold it.
    let (config, log) = game(args)?;
    let players = config.players as usize;
    let lag = args.lag.min(args.ticks);
    let schema = arena::schema();
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
    let mut catch_up = CatchUp::new(players, 0, 0).map_err(|e| e.to_string())?;
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
    let mut catch_up = CatchUp::new(players, rejoined.tick(), 0).map_err(|e| e.to_string())?;
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

    // The same two catch-ups through the session client a rejoining player runs.
    let (client_from_start, from_start_sum) = client_catch_up(&config, &log, None)?;
    let (client_rejoin, rejoin_sum) = client_catch_up(&config, &log, Some(&buddy))?;
    if from_start_sum != final_checksum || rejoin_sum != final_checksum {
        return Err("the session client ended on another checksum (a determinism bug)".into());
    }

    let ticks_per_sec = args.ticks as f64 / from_start.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(CatchUpBenchReport {
        entities: args.entities,
        ticks: args.ticks,
        lag,
        ticks_per_sec,
        realtime_multiplier: ticks_per_sec / arena::DEFAULT_TICK_RATE as f64,
        rejoin_snapshot_ms: ms(rejoin),
        rejoin_from_start_ms: ms(from_start),
        rejoin_speedup: from_start.as_secs_f64() / rejoin.as_secs_f64(),
        final_checksum: final_checksum.to_hex(),
        client_ticks_per_sec: args.ticks as f64 / client_from_start.as_secs_f64(),
        client_rejoin_ms: ms(client_rejoin),
        threads: args.threads.count(),
        single_thread_ticks_per_sec: 0.0,
        parallel_speedup: 0.0,
        rounds: 1,
    })
}

/// Catches up as a session [`Client`] does: welcomed into a room live at `log`'s newest
/// tick, handed `snapshot`'s chunks (or entering from tick 0 without one) and the
/// verified input after it, stepping until it is level with live. Returns the wall time
/// from the welcome on and the final checksum.
fn client_catch_up(
    config: &ArenaConfig,
    log: &InputLog<ArenaInput>,
    snapshot: Option<&[u8]>,
) -> Result<(Duration, Checksum), String> {
    let live = log.newest().unwrap_or(0);
    let header = snapshot
        .map(snapshot::format::read_header)
        .transpose()
        .map_err(|e| e.to_string())?;
    let base = header.map_or(0, |h| h.tick);
    // What the room would send, built before the clock starts.
    let chunks: Vec<ServerMessage> = snapshot
        .zip(header)
        .map(|(bytes, header)| {
            // Snapshots travel in their wire form (compressed), as the room sends them.
            let mut wire = Vec::new();
            snapshot::wire::compress(bytes, &mut wire);
            snapshot::split(&wire, snapshot::DEFAULT_CHUNK_SIZE)
                .map(|chunk| ServerMessage::SnapshotChunk {
                    transfer: 1,
                    tick: header.tick,
                    checksum: header.checksum,
                    source: SnapshotSource::Buddy,
                    live,
                    chunk,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut inputs = TickInputs::new(config.players as usize).map_err(|e| e.to_string())?;
    let verified: Vec<ServerMessage> = (base + 1..=live)
        .step_by(1000)
        .map(|first| ServerMessage::Verified {
            live,
            timing: Timing::default(),
            ticks: VerifiedTicks::from_log(
                log,
                first,
                live.min(first + 999),
                usize::MAX,
                &mut inputs,
            ),
        })
        .collect();
    let client_config = ClientConfig {
        history: live + 1,
        ..ClientConfig::default()
    };
    let info = ReconnectInfo::new("bench", "bench", ClientId::from_seed(1));
    let initial = arena::new_frame(config).map_err(|e| e.to_string())?;
    let mut client = Client::new(client_config, info, initial, arena::simulation());
    let now = Duration::ZERO;
    client.connect(now);
    let room = RoomInfo {
        players: config.players,
        tick_rate: arena::DEFAULT_TICK_RATE,
        input_size: size_of::<ArenaInput>() as u32,
        min_lead: 1,
        checksum_every: 30,
        end_tick: None,
    };
    let entry = if snapshot.is_some() {
        Entry::AwaitSnapshot
    } else {
        Entry::FromStart
    };
    let began = Instant::now();
    let welcome = ServerMessage::Welcome {
        player: PlayerId(0),
        room,
        entry,
        live,
        timing: Timing::default(),
        resume: ResumeToken([0; 16]),
    };
    for message in std::iter::once(welcome).chain(chunks).chain(verified) {
        client.handle_message(now, message);
    }
    while client.frame().tick() < live {
        if client.advance(now, 256) == 0 {
            return Err(format!(
                "the client stopped at tick {}",
                client.frame().tick()
            ));
        }
    }
    Ok((began.elapsed(), checksum(client.frame())))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two_middle() {
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[9.0, 1.0, 4.0]), 4.0);
        assert_eq!(median(&[9.0, 1.0, 4.0, 2.0]), 3.0);
    }
}
