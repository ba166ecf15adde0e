//! Determinism across every path a peer's frame can take: an arbitrary input stream is
//! played straight, and again with the run snapshotted and restored, cloned, or resynced
//! from an older snapshot and caught up, at arbitrary ticks. Every path must hold the
//! straight run's checksum at every tick.

use std::sync::OnceLock;
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaInput, fill_bot_inputs};
use tickstep_engine::{Checksum, Frame, MAX_CAPACITY, PlayerId, Tick, TickInputs, checksum};
use tickstep_replay::{CatchUp, InputLog};
use tickstep_snapshot as snapshot;

/// Something done to a running game that must not change its course.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathEvent {
    /// Carry on from a snapshot of the frame restored into a new frame.
    SnapshotRestore,
    /// Carry on from a clone of the frame.
    Clone,
    /// Carry on from a snapshot taken `behind` ticks earlier, caught up over the input
    /// since (how a rejoining peer resyncs).
    ResyncCatchUp {
        /// How many ticks old the snapshot is.
        behind: u8,
    },
}

/// A game and what happens to it; every number is reduced into a small valid range.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeterminismPlan {
    /// Seeds the game and the bots.
    pub seed: u64,
    /// Units (reduced modulo 64).
    pub units: u8,
    /// Players (reduced into 1..=4).
    pub players: u8,
    /// Ticks to play (reduced modulo 160).
    pub ticks: u8,
    /// Overrides of the bots' input: (tick, player, raw input bytes, present). An absent
    /// player's input is missing for that tick, as when a peer drops.
    pub inputs: Vec<(u8, u8, [u8; 4], bool)>,
    /// Events, each applied just after the tick it names.
    pub events: Vec<(u8, PathEvent)>,
    /// Threads the path runs on (reduced into 1..=4; the straight run uses one).
    pub threads: u8,
    /// Adds 320 units, so the parallel queries split the world into several chunks.
    pub crowd: bool,
}

impl DeterminismPlan {
    fn config(&self) -> ArenaConfig {
        ArenaConfig {
            units: (self.units % 64) as u32 + if self.crowd { 320 } else { 0 },
            players: 1 + self.players % 4,
            seed: self.seed,
        }
    }

    fn ticks(&self) -> Tick {
        (self.ticks % 160) as Tick
    }

    /// The input of `tick`: the bots', with this plan's overrides.
    fn fill(&self, tick: Tick, inputs: &mut TickInputs<ArenaInput>) {
        fill_bot_inputs(self.seed, tick, inputs);
        let players = inputs.players();
        let overrides = self.inputs.iter().filter(|(t, ..)| *t as Tick == tick);
        for &(_, player, raw, present) in overrides {
            let player = PlayerId((player as usize % players) as u8);
            if present {
                let _ = inputs.set(player, bytemuck::cast::<[u8; 4], ArenaInput>(raw));
            } else {
                inputs.set_absent(player);
            }
        }
    }
}

fn restore(bytes: &[u8]) -> Frame<ArenaGlobals> {
    snapshot::restore_new(bytes, arena::schema(), MAX_CAPACITY).expect("own snapshot restores")
}

/// Plays `plan` straight on one thread and along its path of events on the plan's
/// thread count, asserting equal checksums at every tick.
pub fn check_determinism(plan: &DeterminismPlan) {
    // One pool per thread count for the whole process: a pool dropped after each input
    // left its threads winding down at exit, which LeakSanitizer reported as a leak
    // at the end of a fuzz run.
    static POOLS: [OnceLock<rayon::ThreadPool>; 5] = [const { OnceLock::new() }; 5];
    let pool = |threads: usize| {
        POOLS[threads].get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
        })
    };
    // Hand every chunk to the pool, however small the world (results never depend on it).
    tickstep_engine::parallel::set_parallel_from_slots(0);
    let expected = pool(1).install(|| straight_run(plan));
    pool(1 + plan.threads as usize % 4).install(|| check_path(plan, &expected));
}

/// The checksum at every tick of `plan` played straight: what must be the same on
/// every architecture (`corpus-trace` compares it across them).
pub fn straight_run(plan: &DeterminismPlan) -> Vec<Checksum> {
    let config = plan.config();
    let ticks = plan.ticks();
    let players = config.players as usize;
    let mut simulation = arena::simulation();
    let mut inputs = TickInputs::new(players).expect("at most 4 players");

    let mut straight = arena::new_frame(&config).expect("small arena");
    let mut expected: Vec<Checksum> = vec![checksum(&straight)];
    for tick in 1..=ticks {
        plan.fill(tick, &mut inputs);
        simulation.step(&mut straight, &inputs).expect("next tick");
        expected.push(checksum(&straight));
    }
    expected
}

/// Plays `plan` along its path of events, asserting `expected` at every tick.
fn check_path(plan: &DeterminismPlan, expected: &[Checksum]) {
    let config = plan.config();
    let ticks = plan.ticks();
    let players = config.players as usize;
    let mut simulation = arena::simulation();
    let mut inputs = TickInputs::new(players).expect("at most 4 players");
    let mut frame = arena::new_frame(&config).expect("small arena");
    let mut log = InputLog::new(players, u64::MAX);
    let mut history: Vec<Vec<u8>> = Vec::new();
    let mut bytes = Vec::new();
    snapshot::encode(&frame, &mut bytes);
    history.push(bytes.clone());
    for tick in 1..=ticks {
        plan.fill(tick, &mut inputs);
        simulation.step(&mut frame, &inputs).expect("next tick");
        log.push(&inputs).expect("consecutive ticks");
        assert_eq!(
            checksum(&frame),
            expected[tick as usize],
            "tick {tick} stepped"
        );
        snapshot::encode(&frame, &mut bytes);
        history.push(bytes.clone());
        for &(_, event) in plan.events.iter().filter(|(t, _)| *t as Tick == tick) {
            frame = match event {
                PathEvent::SnapshotRestore => restore(&history[tick as usize]),
                PathEvent::Clone => frame.clone(),
                PathEvent::ResyncCatchUp { behind } => {
                    let from = tick.saturating_sub(behind as Tick);
                    let mut resynced = restore(&history[from as usize]);
                    let mut catch_up = CatchUp::new(players, from, 0).expect("players");
                    while resynced.tick() < tick {
                        catch_up
                            .run_slice(&mut simulation, &mut resynced, &log, 7)
                            .expect("input is buffered");
                    }
                    resynced
                }
            };
            assert_eq!(
                checksum(&frame),
                expected[tick as usize],
                "tick {tick} after {event:?}"
            );
        }
    }
}
