//! Arbitrary input streams and arbitrary points at which the run is snapshotted and
//! restored, cloned, or resynced and caught up: every path must hold the straight run's
//! checksum at every tick. See `tickstep_fuzzing::check_determinism`; the proptest twin
//! is in `tests/fuzz_twins.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickstep_fuzzing::{DeterminismPlan, check_determinism};

fuzz_target!(|plan: DeterminismPlan| {
    // Short games keep executions fast (the plan reduces ticks modulo 160 anyway).
    check_determinism(&DeterminismPlan {
        ticks: plan.ticks % 64,
        ..plan
    });
});
