//! Twins of the `frame_ops`, `determinism`, `session_messages` and `message_decode` fuzz
//! targets: the same property code from `tickstep_fuzzing`, driven by proptest on stable.

use proptest::prelude::*;
use tickstep_fuzzing::{DeterminismPlan, FrameOp, PathEvent, check_determinism, check_frame_ops};

fn frame_op() -> impl Strategy<Value = FrameOp> {
    prop_oneof![
        6 => Just(FrameOp::Spawn),
        4 => any::<u16>().prop_map(FrameOp::Despawn),
        4 => (any::<u16>(), any::<u32>()).prop_map(|(i, v)| FrameOp::InsertSmall(i, v)),
        4 => (any::<u16>(), any::<u64>()).prop_map(|(i, v)| FrameOp::InsertWide(i, v)),
        2 => any::<u16>().prop_map(FrameOp::RemoveSmall),
        2 => any::<u16>().prop_map(FrameOp::RemoveWide),
        1 => Just(FrameOp::Clone),
        1 => Just(FrameOp::SnapshotRoundTrip),
        2 => any::<u16>().prop_map(FrameOp::DeferDespawn),
        2 => (any::<u16>(), any::<u32>()).prop_map(|(i, v)| FrameOp::DeferInsertSmall(i, v)),
        1 => any::<u16>().prop_map(FrameOp::DeferRemoveWide),
        1 => Just(FrameOp::ApplyCommands),
    ]
}

fn path_event() -> impl Strategy<Value = PathEvent> {
    prop_oneof![
        Just(PathEvent::SnapshotRestore),
        Just(PathEvent::Clone),
        any::<u8>().prop_map(|behind| PathEvent::ResyncCatchUp { behind }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_frame_operations_agree_with_the_model(
        ops in prop::collection::vec(frame_op(), 0..300),
        capacity in any::<u8>(),
    ) {
        check_frame_ops(&ops, capacity % 40);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn every_path_holds_the_straight_runs_checksum_at_every_tick(
        seed in any::<u64>(),
        units in any::<u8>(),
        players in any::<u8>(),
        ticks in 0u8..120,
        inputs in prop::collection::vec((0u8..120, any::<u8>(), any::<[u8; 4]>(), any::<bool>()), 0..20),
        events in prop::collection::vec((0u8..120, path_event()), 0..6),
        threads in any::<u8>(),
        crowd in any::<bool>(),
    ) {
        check_determinism(&DeterminismPlan { seed, units, players, ticks, inputs, events, threads, crowd });
    }
}

#[test]
fn a_resync_from_the_start_catches_up_to_the_same_tick() {
    let plan = DeterminismPlan {
        seed: 4,
        units: 30,
        players: 1,
        ticks: 90,
        inputs: vec![(10, 0, [0; 4], false), (11, 1, [127, 127, 3, 1], true)],
        events: vec![
            (45, PathEvent::ResyncCatchUp { behind: 45 }),
            (60, PathEvent::SnapshotRestore),
            (61, PathEvent::Clone),
        ],
        threads: 2,
        crowd: true,
    };
    check_determinism(&plan);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Twin of the `session_messages` fuzz target, server side.
    #[test]
    fn a_server_survives_any_message_script(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        tickstep_fuzzing::check_server_script(&bytes);
    }

    /// Twin of the `session_messages` fuzz target, client side.
    #[test]
    fn a_client_survives_any_message_script(bytes in prop::collection::vec(any::<u8>(), 0..800)) {
        tickstep_fuzzing::check_client_script(&bytes);
    }

    /// Twin of the `message_decode` fuzz target.
    #[test]
    fn any_bytes_decode_cleanly_or_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        tickstep_fuzzing::check_message_decoding(&bytes);
    }
}
