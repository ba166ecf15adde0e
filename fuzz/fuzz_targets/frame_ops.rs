//! Arbitrary entity/component operation sequences (with clones and snapshot round trips
//! mixed in) against a model. See `tickstep::fuzzing::check_frame_ops`; the proptest twin
//! is in `tests/fuzz_twins.rs`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tickstep::fuzzing::{FrameOp, check_frame_ops};

#[derive(Arbitrary, Debug)]
enum Op {
    Spawn,
    Despawn(u16),
    InsertSmall(u16, u32),
    InsertWide(u16, u64),
    RemoveSmall(u16),
    RemoveWide(u16),
    Clone,
    SnapshotRoundTrip,
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (capacity, ops) = input;
    let ops: Vec<FrameOp> = ops
        .into_iter()
        .map(|op| match op {
            Op::Spawn => FrameOp::Spawn,
            Op::Despawn(i) => FrameOp::Despawn(i),
            Op::InsertSmall(i, v) => FrameOp::InsertSmall(i, v),
            Op::InsertWide(i, v) => FrameOp::InsertWide(i, v),
            Op::RemoveSmall(i) => FrameOp::RemoveSmall(i),
            Op::RemoveWide(i) => FrameOp::RemoveWide(i),
            Op::Clone => FrameOp::Clone,
            Op::SnapshotRoundTrip => FrameOp::SnapshotRoundTrip,
        })
        .collect();
    check_frame_ops(&ops, capacity % 48);
});
