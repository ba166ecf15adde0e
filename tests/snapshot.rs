//! Snapshots of the arena: round trips step identically, every corruption is refused
//! with its own error, diffs name the exact field, chunks reassemble.

use proptest::prelude::*;
use tickstep_arena::{self as arena, ArenaConfig, ArenaGlobals, ArenaRun, Body, Unit};
use tickstep_engine::{Frame, checksum};
use tickstep_snapshot::{self as snapshot, SnapshotError, format::FIXED_HEADER_LEN};

fn game(units: u32, seed: u64, ticks: u64) -> ArenaRun {
    let mut game = ArenaRun::new(&ArenaConfig {
        units,
        players: 2,
        seed,
    })
    .unwrap();
    game.run_to(ticks, |_| {}).unwrap();
    game
}

fn encoded(frame: &Frame<ArenaGlobals>) -> Vec<u8> {
    let mut bytes = Vec::new();
    snapshot::encode(frame, &mut bytes);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn restored_frames_step_identically(seed in any::<u64>(), ticks in 0u64..90, units in 1u32..300) {
        let mut original = game(units, seed, ticks);
        let bytes = encoded(original.frame());
        let bound = snapshot::max_len(&arena::schema(), original.frame().world().capacity());
        prop_assert!(bytes.len() as u64 <= bound, "{} > {}", bytes.len(), bound);
        prop_assert_eq!(snapshot::verify(&bytes, &arena::schema()).unwrap().header.checksum, checksum(original.frame()));
        let fresh: Frame<ArenaGlobals> = snapshot::restore_new(&bytes, arena::schema(), u32::MAX).unwrap();
        // Restoring into a frame with another history (and more capacity, which a
        // restore may use) must replace all of it.
        let mut reused = game(units + 10, seed ^ 9, 13).into_frame();
        snapshot::restore(&bytes, &mut reused).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut from_fresh = ArenaRun::from_frame(fresh, seed);
        let mut from_reused = ArenaRun::from_frame(reused, seed);
        for _ in 0..40 {
            original.step().unwrap();
            from_fresh.step().unwrap();
            from_reused.step().unwrap();
            let sum = checksum(original.frame());
            prop_assert_eq!(checksum(from_fresh.frame()), sum);
            prop_assert_eq!(checksum(from_reused.frame()), sum);
        }
    }

    #[test]
    fn diff_names_exactly_the_mutated_field(seed in any::<u64>(), pick in any::<usize>(), delta in 1i64..1000) {
        let game = game(50, seed, 30);
        let a = encoded(game.frame());
        let mut mutated = game.frame().clone();
        let units: Vec<_> = mutated.world().query::<(&Unit, &Body)>().unwrap().map(|(e, _)| e).collect();
        let victim = units[pick % units.len()];
        mutated.world_mut().get_mut::<Body>(victim).unwrap().vel.y += tickstep_engine::Fp::from_bits(delta);
        mutated.world_mut().get_mut::<Unit>(victim).unwrap().hp += 1;
        let b = encoded(&mutated);
        let report = snapshot::diff(&a, &b, &arena::schema(), 100).unwrap();
        prop_assert_eq!(report.total, 2);
        let named: Vec<(String, String, String)> = report
            .differences
            .iter()
            .map(|d| (d.entity.clone().unwrap(), d.component.clone().unwrap(), d.field.clone()))
            .collect();
        let who = victim.to_string();
        prop_assert_eq!(named, vec![
            (who.clone(), "body".to_string(), "vel.y".to_string()),
            (who, "unit".to_string(), "hp".to_string()),
        ]);
    }
}

#[test]
fn identical_snapshots_have_an_empty_diff() {
    let bytes = encoded(game(40, 3, 20).frame());
    assert!(
        snapshot::diff(&bytes, &bytes, &arena::schema(), 10)
            .unwrap()
            .is_empty()
    );
}

/// The error a flip of bit `bit` in byte `at` must produce, by the region it hits.
fn expected_kind(at: usize, payload_start: usize) -> &'static [&'static str] {
    match at {
        0..8 => &["BadMagic"],
        8..12 => &["UnsupportedVersion"],
        12..16 => &["ImpossibleSection", "Truncated", "TrailingBytes"],
        16..48 => &["SchemaMismatch"],
        48..56 => &["TickMismatch"],
        56..64 => &["Truncated", "TrailingBytes"],
        64..96 => &["ChecksumMismatch"],
        96..104 => &["ReservedNotZero"],
        _ if at < payload_start => &["ImpossibleSection"],
        _ => &["ChecksumMismatch"],
    }
}

fn kind(error: &SnapshotError) -> &'static str {
    match error {
        SnapshotError::Truncated { .. } => "Truncated",
        SnapshotError::TrailingBytes { .. } => "TrailingBytes",
        SnapshotError::BadMagic { .. } => "BadMagic",
        SnapshotError::UnsupportedVersion { .. } => "UnsupportedVersion",
        SnapshotError::ReservedNotZero => "ReservedNotZero",
        SnapshotError::SchemaMismatch { .. } => "SchemaMismatch",
        SnapshotError::ImpossibleSection { .. } => "ImpossibleSection",
        SnapshotError::CapacityExceeded { .. } => "CapacityExceeded",
        SnapshotError::TickMismatch { .. } => "TickMismatch",
        SnapshotError::ChecksumMismatch { .. } => "ChecksumMismatch",
        SnapshotError::UnexpectedTick { .. } => "UnexpectedTick",
        SnapshotError::NotVouched { .. } => "NotVouched",
        SnapshotError::InvalidFrame(_) => "InvalidFrame",
        SnapshotError::Frame(_) => "Frame",
    }
}

#[test]
fn every_bit_flip_and_every_truncation_is_refused_with_the_right_error() {
    let game = game(12, 5, 40);
    let bytes = encoded(game.frame());
    let header = snapshot::format::read_header(&bytes).unwrap();
    let payload_start = header.header_len();
    assert!(payload_start > FIXED_HEADER_LEN);
    let schema = arena::schema();
    let mut target = game.frame().clone();
    let before = checksum(&target);
    let mut flipped = bytes.clone();
    for at in 0..bytes.len() {
        for bit in 0..8 {
            flipped[at] ^= 1 << bit;
            let error =
                snapshot::verify(&flipped, &schema).expect_err("a flipped bit must be refused");
            let expected = expected_kind(at, payload_start);
            assert!(
                expected.contains(&kind(&error)),
                "byte {at} bit {bit}: {error} (expected {expected:?})"
            );
            flipped[at] ^= 1 << bit;
        }
    }
    for len in 0..bytes.len() {
        let error = snapshot::restore(&bytes[..len], &mut target)
            .expect_err("a truncated snapshot must be refused");
        assert_eq!(kind(&error), "Truncated", "cut at {len}: {error}");
    }
    assert_eq!(
        checksum(&target),
        before,
        "refused restores leave the frame untouched"
    );
}

#[test]
fn another_schema_and_a_small_frame_are_refused() {
    let bytes = encoded(game(30, 1, 5).frame());
    let other = tickstep_engine::Schema::builder::<ArenaGlobals>("tickstep-arena", 99)
        .component::<Body>("body")
        .build()
        .unwrap();
    assert_eq!(
        kind(&snapshot::verify(&bytes, &other).unwrap_err()),
        "SchemaMismatch"
    );
    let small = snapshot::restore_new::<ArenaGlobals>(&bytes, arena::schema(), 10);
    assert_eq!(kind(&small.unwrap_err()), "CapacityExceeded");
}

#[test]
fn chunks_of_a_snapshot_reassemble_in_any_order() {
    let bytes = encoded(game(2000, 4, 10).frame());
    let mut chunks: Vec<_> = snapshot::split(&bytes, 16 * 1024).collect();
    assert!(chunks.len() > 2);
    chunks.rotate_left(1);
    let mut reassembler = snapshot::Reassembler::new(64 << 20);
    for chunk in &chunks {
        reassembler.add(chunk).unwrap();
    }
    let whole = reassembler.finish().unwrap();
    assert_eq!(whole, bytes);
    snapshot::verify(&whole, &arena::schema()).unwrap();
}

#[test]
fn inspect_counts_entities_and_components() {
    let game = game(100, 8, 60);
    let summary = snapshot::inspect(&encoded(game.frame())).unwrap();
    let world = game.frame().world();
    assert_eq!(summary.tick, 60);
    assert_eq!(summary.entities, world.len());
    assert_eq!(summary.checksum, checksum(game.frame()));
    assert_eq!(
        summary.components[1],
        world.query::<&Unit>().unwrap().count() as u32
    );
    assert_eq!(
        summary.components[0],
        world.query::<&Body>().unwrap().count() as u32
    );
}

// Twins of the `snapshot_decode` fuzz target (same property code, run on stable).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hostile_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..400)) {
        tickstep_fuzzing::decode_hostile_snapshot(&raw);
    }

    #[test]
    fn edited_snapshots_never_panic_and_restore_only_what_they_claim(
        ticks in any::<u8>(),
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<u16>()),
        reseal in any::<bool>(),
    ) {
        let bytes = tickstep_fuzzing::edited_snapshot(ticks, &edits, cut, reseal);
        tickstep_fuzzing::decode_hostile_snapshot(&bytes);
    }

    #[test]
    fn hostile_wire_bytes_never_panic_or_pass_the_limit(
        raw in prop::collection::vec(any::<u8>(), 0..400),
        ticks in any::<u8>(),
        edits in prop::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        cut in prop::option::of(any::<u16>()),
        limit in 0u64..200_000,
    ) {
        tickstep_fuzzing::decode_hostile_wire(&raw, limit);
        tickstep_fuzzing::decode_hostile_wire(&tickstep_fuzzing::edited_wire(ticks, &edits, cut), limit);
    }

    #[test]
    fn hostile_chunks_never_panic(
        limit in 0u64..5000,
        shapes in prop::collection::vec((0u32..6, 0u32..6, 0u64..5000, 0u32..2000, prop::collection::vec(any::<u8>(), 0..64)), 0..8),
    ) {
        let chunks: Vec<snapshot::Chunk> = shapes
            .into_iter()
            .map(|(index, count, total_len, chunk_size, data)| snapshot::Chunk {
                snapshot: tickstep_engine::Digest([1; 32]),
                index,
                count,
                total_len,
                chunk_size,
                hash: tickstep_engine::Digest::from(blake3::hash(&data)),
                data,
            })
            .collect();
        tickstep_fuzzing::reassemble_hostile_chunks(limit, &chunks);
    }
}

/// Recomputes a snapshot's payload checksum after an edit, as a forger would.
fn reseal(bytes: &mut [u8]) {
    let header = snapshot::format::read_header(bytes).unwrap();
    let sum = blake3::hash(&bytes[header.header_len()..]);
    bytes[64..96].copy_from_slice(sum.as_bytes());
}

#[test]
fn a_forged_component_outside_its_column_window_is_refused_everywhere() {
    let game = game(30, 2, 10);
    let mut bytes = encoded(game.frame());
    let schema = arena::schema();
    let verified = snapshot::verify(&bytes, &schema).unwrap();
    let slots = verified.image.header.slots as usize;
    let ship_window = verified.image.window(2);
    assert!(
        ship_window.end < slots as u32,
        "ships sit in the first slots"
    );
    // Give the last slot (a unit, outside the ship column's window) the ship bit.
    let masks = verified.header.header_len()
        + tickstep_engine::IMAGE_HEADER_LEN
        + 8 * schema.components().len()
        + size_of::<ArenaGlobals>()
        + 4 * slots;
    let last_mask = masks + 8 * (slots - 1);
    bytes[last_mask] |= 1 << 2;
    reseal(&mut bytes);
    assert_eq!(
        kind(&snapshot::verify(&bytes, &schema).unwrap_err()),
        "InvalidFrame"
    );
    assert!(snapshot::diff(&bytes, &bytes, &schema, 5).is_err());
    let mut target = game.frame().clone();
    assert_eq!(
        kind(&snapshot::restore(&bytes, &mut target).unwrap_err()),
        "InvalidFrame"
    );
}
