//! Arbitrary input streams and arbitrary points at which the run is snapshotted and
//! restored, cloned, or resynced and caught up: every path must hold the straight run's
//! checksum at every tick. See `tickstep::fuzzing::check_determinism`; the proptest twin
//! is in `tests/fuzz_twins.rs`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tickstep::fuzzing::{DeterminismPlan, PathEvent, check_determinism};

#[derive(Arbitrary, Debug)]
enum Event {
    SnapshotRestore,
    Clone,
    ResyncCatchUp(u8),
}

#[derive(Arbitrary, Debug)]
struct Plan {
    seed: u64,
    units: u8,
    players: u8,
    ticks: u8,
    inputs: Vec<(u8, u8, [u8; 4], bool)>,
    events: Vec<(u8, Event)>,
}

fuzz_target!(|plan: Plan| {
    let events = plan
        .events
        .into_iter()
        .map(|(tick, event)| {
            let event = match event {
                Event::SnapshotRestore => PathEvent::SnapshotRestore,
                Event::Clone => PathEvent::Clone,
                Event::ResyncCatchUp(behind) => PathEvent::ResyncCatchUp { behind },
            };
            (tick, event)
        })
        .collect();
    // Short games keep executions fast; the tick count is reduced modulo 160 anyway.
    check_determinism(&DeterminismPlan {
        seed: plan.seed,
        units: plan.units,
        players: plan.players,
        ticks: plan.ticks % 64,
        inputs: plan.inputs,
        events,
    });
});
