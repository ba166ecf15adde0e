//! Arbitrary entity/component operation sequences (with clones and snapshot round trips
//! mixed in) against a model. See `tickstep_fuzzing::check_frame_ops`; the proptest twin
//! is in `tests/fuzz_twins.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickstep_fuzzing::{FrameOp, check_frame_ops};

fuzz_target!(|input: (u8, Vec<FrameOp>)| {
    let (capacity, ops) = input;
    check_frame_ops(&ops, capacity % 48);
});
