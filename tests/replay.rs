//! Replays and catch-up with the arena: a recording verifies against the straight run,
//! seeks land on the straight run's frames, a tampered input is found at its tick,
//! damaged files give typed errors, and catch-up with input still arriving converges.

use proptest::prelude::*;
use std::sync::Arc;
use tickstep_arena::{self as arena, ArenaConfig, ArenaInput, ArenaRun, RecordOptions};
use tickstep_engine::{Checksum, PlayerId, Tick, checksum};
use tickstep_replay::{
    self as replay, self, CatchUp, InputLog, Replay, ReplayError, ReplayHeader, ReplayWriter,
};

fn config(seed: u64) -> ArenaConfig {
    ArenaConfig {
        units: 120,
        players: 2,
        seed,
    }
}

fn recorded(cfg: &ArenaConfig, ticks: Tick, options: RecordOptions) -> (Vec<u8>, Checksum) {
    let mut bytes = Vec::new();
    let sum = arena::record(cfg, ticks, options, &mut bytes, |_| {}).unwrap();
    (bytes, sum)
}

fn straight_checksums(cfg: &ArenaConfig, ticks: Tick) -> Vec<Checksum> {
    let mut game = ArenaRun::new(cfg).unwrap();
    let mut sums = vec![checksum(game.frame())];
    while game.frame().tick() < ticks {
        game.step().unwrap();
        sums.push(checksum(game.frame()));
    }
    sums
}

#[test]
fn a_recording_verifies_and_matches_the_straight_run() {
    let cfg = config(21);
    let options = RecordOptions {
        checksum_every: 7,
        checkpoint_every: 50,
    };
    let (bytes, final_sum) = recorded(&cfg, 240, options);
    let straight = straight_checksums(&cfg, 240);
    assert_eq!(final_sum, straight[240]);
    let replay = Replay::<ArenaInput>::parse(&bytes, &arena::schema()).unwrap();
    assert_eq!(
        (replay.last_tick(), replay.ended_at, replay.truncated_at),
        (240, Some(240), None)
    );
    for &(tick, sum) in &replay.checksums {
        assert_eq!(sum, straight[tick as usize], "recorded checksum at {tick}");
    }
    assert_eq!(replay.checkpoints.len(), 4);
    let report =
        replay::verify(&replay, &arena::schema(), &mut arena::simulation(), |_| {}).unwrap();
    assert!(report.ok());
    assert_eq!(report.final_checksum, straight[240]);
    assert_eq!(report.compared, 240 / 7 + 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn seeking_lands_on_the_straight_runs_frame(seed in any::<u64>(), ticks in prop::collection::vec(0u64..=200, 1..5)) {
        let cfg = config(seed);
        let (bytes, _) = recorded(&cfg, 200, RecordOptions { checksum_every: 0, checkpoint_every: 30 });
        let straight = straight_checksums(&cfg, 200);
        let replay = Replay::<ArenaInput>::parse(&bytes, &arena::schema()).unwrap();
        let mut sim = arena::simulation();
        for tick in ticks {
            let frame = replay::seek(&replay, &arena::schema(), &mut sim, tick).unwrap();
            prop_assert_eq!(frame.tick(), tick);
            prop_assert_eq!(checksum(&frame), straight[tick as usize]);
        }
    }
}

/// A recording whose input at `tampered` differs from what was played (the checksums
/// are the real game's), as if the input stream had been altered after the fact.
fn tampered_recording(
    cfg: &ArenaConfig,
    ticks: Tick,
    tampered: Tick,
    checksum_every: u32,
) -> Vec<u8> {
    let mut game = ArenaRun::new(cfg).unwrap();
    let header = ReplayHeader {
        schema_hash: arena::schema().hash(),
        tick_rate: 60,
        players: 2,
        input_size: size_of::<ArenaInput>() as u32,
        checksum_every,
        checkpoint_every: 40,
        config: Vec::new(),
    };
    let mut writer = ReplayWriter::new(Vec::new(), &header, game.frame()).unwrap();
    while game.frame().tick() < ticks {
        game.step().unwrap();
        let mut recorded_input = game.inputs().clone();
        if game.frame().tick() == tampered {
            let lie = ArenaInput {
                move_x: -100,
                move_y: 100,
                aim: 9,
                fire: 0,
            };
            recorded_input.set(PlayerId(1), lie).unwrap();
        }
        writer.record(&recorded_input, game.frame()).unwrap();
    }
    writer.finish(ticks).unwrap()
}

#[test]
fn a_tampered_input_is_reported_at_exactly_its_tick_with_a_field_diff() {
    let cfg = config(5);
    let bytes = tampered_recording(&cfg, 160, 73, 1);
    let replay = Replay::<ArenaInput>::parse(&bytes, &arena::schema()).unwrap();
    let report =
        replay::verify(&replay, &arena::schema(), &mut arena::simulation(), |_| {}).unwrap();
    assert_eq!(report.first_divergent_tick, Some(73));
    assert_eq!(report.divergent_frame.as_ref().unwrap().tick(), 73);
    let (diff_tick, diff) = report
        .checkpoint_diff
        .expect("a checkpoint follows the divergence");
    assert_eq!(diff_tick, 80);
    assert!(
        diff.differences
            .iter()
            .any(|d| d.component.as_deref() == Some("body"))
    );
    // With a checksum only every 10 ticks the divergence shows at the next recorded one.
    let sparse = tampered_recording(&cfg, 160, 73, 10);
    let replay = Replay::<ArenaInput>::parse(&sparse, &arena::schema()).unwrap();
    let report =
        replay::verify(&replay, &arena::schema(), &mut arena::simulation(), |_| {}).unwrap();
    assert_eq!(report.first_divergent_tick, Some(80));
}

#[test]
fn a_file_cut_anywhere_reads_up_to_its_last_complete_record() {
    let cfg = config(9);
    let (bytes, _) = recorded(
        &cfg,
        60,
        RecordOptions {
            checksum_every: 5,
            checkpoint_every: 20,
        },
    );
    let full = Replay::<ArenaInput>::parse(&bytes, &arena::schema()).unwrap();
    let schema = arena::schema();
    let mut last_ticks = Vec::new();
    for cut in (0..bytes.len()).step_by(7) {
        match Replay::<ArenaInput>::parse(&bytes[..cut], &schema) {
            Err(ReplayError::TooShort) => assert!(last_ticks.is_empty(), "cut {cut}"),
            Err(other) => panic!("cut {cut}: {other}"),
            Ok(partial) => {
                assert!(
                    partial.truncated_at.is_some_and(|at| at <= cut),
                    "cut {cut}"
                );
                assert_eq!(partial.ended_at, None);
                // Everything before the cut is kept, identical to the full file.
                let mut a = tickstep_engine::TickInputs::new(2).unwrap();
                let mut b = a.clone();
                for tick in 1..=partial.last_tick() {
                    partial.inputs.read(tick, &mut a).unwrap();
                    full.inputs.read(tick, &mut b).unwrap();
                    assert_eq!(a, b);
                }
                last_ticks.push(partial.last_tick());
            }
        }
    }
    assert!(
        last_ticks.windows(2).all(|w| w[0] <= w[1]),
        "longer prefixes keep more"
    );
    assert!(*last_ticks.last().unwrap() >= 58);
}

#[test]
fn damage_and_foreign_files_give_typed_errors() {
    let (mut bytes, _) = recorded(&config(2), 30, RecordOptions::default());
    let schema = arena::schema();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    assert!(matches!(
        Replay::<ArenaInput>::parse(&bytes, &schema),
        Err(ReplayError::CorruptRecord { .. } | ReplayError::Snapshot { .. })
    ));
    assert!(matches!(
        Replay::<ArenaInput>::parse(b"garbage bytes here", &schema),
        Err(ReplayError::NotAReplay | ReplayError::TooShort)
    ));
    let other = tickstep_engine::Schema::builder::<u64>("x", 1)
        .build()
        .unwrap();
    let (good, _) = recorded(&config(2), 30, RecordOptions::default());
    assert!(matches!(
        Replay::<ArenaInput>::parse(&good, &other),
        Err(ReplayError::SchemaMismatch { .. })
    ));
    assert!(matches!(
        Replay::<u64>::parse(&good, &schema),
        Err(ReplayError::InputSizeMismatch { .. })
    ));
}

#[test]
fn catch_up_with_input_arriving_meanwhile_ends_like_the_straight_run() {
    let cfg = config(33);
    let straight = straight_checksums(&cfg, 400);
    // Snapshot at tick 100; 150 ticks of input already buffered; the rest arrives while
    // catch-up runs, 3 ticks per slice (a live game at 60 Hz, catch-up much faster).
    let mut source = ArenaRun::new(&cfg).unwrap();
    source.run_to(100, |_| {}).unwrap();
    let mut bytes = Vec::new();
    tickstep_snapshot::encode(source.frame(), &mut bytes);
    let mut frame = tickstep_snapshot::restore_new(&bytes, arena::schema(), u32::MAX).unwrap();
    let mut log = InputLog::new(2, 36_000);
    let mut feed = |log: &mut InputLog<ArenaInput>, until: Tick| {
        while source.frame().tick() < until {
            source.step().unwrap();
            log.push(source.inputs()).unwrap();
        }
    };
    feed(&mut log, 250);
    let mut sim = arena::simulation();
    let mut catch_up = CatchUp::new(2, 100, 0).unwrap();
    let mut slices = 0;
    loop {
        let status = catch_up.run_slice(&mut sim, &mut frame, &log, 20).unwrap();
        assert_eq!(checksum(&frame), straight[frame.tick() as usize]);
        slices += 1;
        if status.caught_up && log.newest() == Some(400) {
            break;
        }
        let live = (log.newest().unwrap() + 3).min(400);
        feed(&mut log, live);
    }
    assert_eq!(frame.tick(), 400);
    assert_eq!(checksum(&frame), straight[400]);
    assert!(slices > 5);
    let _ = Arc::clone(&arena::schema());
}

#[test]
fn catch_up_from_an_evicted_tick_is_a_clear_error() {
    let cfg = config(1);
    let mut source = ArenaRun::new(&cfg).unwrap();
    let mut frame = source.frame().clone();
    let mut log = InputLog::new(2, 10);
    while source.frame().tick() < 30 {
        source.step().unwrap();
        log.push(source.inputs()).unwrap();
    }
    let mut catch_up = CatchUp::new(2, 0, 0).unwrap();
    let error = catch_up
        .run_slice(&mut arena::simulation(), &mut frame, &log, 5)
        .unwrap_err();
    assert!(error.to_string().contains("no longer held"), "{error}");
}

// Twins of the `replay_decode` fuzz target (same property code, run on stable).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hostile_replay_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        tickstep_fuzzing::decode_hostile_replay(&raw);
    }

    #[test]
    fn edited_replays_never_panic(
        ticks in any::<u8>(),
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<u16>()),
    ) {
        tickstep_fuzzing::decode_hostile_replay(&tickstep_fuzzing::edited_replay(ticks, &edits, cut));
    }
}
