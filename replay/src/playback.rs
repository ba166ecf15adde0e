//! Playing a replay back: verify it by re-simulating (and bisect a divergence down to a
//! field-level diff), or seek to any tick through the nearest checkpoint.

use bytemuck::Pod;
use std::sync::Arc;
use tickstep_engine::parallel::keep_warm;
use tickstep_engine::{
    Checksum, Frame, MAX_CAPACITY, Schema, Simulation, Tick, TickInputs, checksum,
};
use tickstep_snapshot::FrameDiff;

use crate::{Replay, ReplayError};

/// What re-simulating a replay found.
#[derive(Debug)]
pub struct Verification<G> {
    /// Last tick simulated.
    pub ticks: Tick,
    /// Checksum of the last frame simulated.
    pub final_checksum: Checksum,
    /// Recorded checksums (and checkpoints) compared.
    pub compared: usize,
    /// The first recorded tick whose checksum the re-simulation disagreed with.
    pub first_divergent_tick: Option<Tick>,
    /// The re-simulated frame at that tick (to inspect or snapshot).
    pub divergent_frame: Option<Frame<G>>,
    /// A field-level diff of the re-simulation against the first recorded checkpoint at
    /// or after the divergence, with that checkpoint's tick.
    pub checkpoint_diff: Option<(Tick, FrameDiff)>,
}

impl<G> Verification<G> {
    /// True when every recorded checksum matched.
    pub fn ok(&self) -> bool {
        self.first_divergent_tick.is_none()
    }
}

fn restore<G: Pod>(
    bytes: &[u8],
    schema: &Arc<Schema>,
    offset_hint: usize,
) -> Result<Frame<G>, ReplayError> {
    tickstep_snapshot::restore_new(bytes, Arc::clone(schema), MAX_CAPACITY).map_err(|error| {
        ReplayError::Snapshot {
            offset: offset_hint,
            error,
        }
    })
}

fn step<G: Pod, I: Pod + PartialEq>(
    replay: &Replay<'_, I>,
    simulation: &mut Simulation<G, I>,
    frame: &mut Frame<G>,
    inputs: &mut TickInputs<I>,
) -> Result<(), ReplayError> {
    replay.inputs.read(frame.tick() + 1, inputs)?;
    simulation
        .step(frame, inputs)
        .map_err(|e| ReplayError::Step(e.to_string()))
}

fn input_buffer<I: Pod + PartialEq>(replay: &Replay<'_, I>) -> Result<TickInputs<I>, ReplayError> {
    TickInputs::new(replay.inputs.players()).map_err(|e| ReplayError::Step(e.to_string()))
}

/// Re-simulates `replay` from its initial snapshot with `simulation`, comparing every
/// recorded checksum and checkpoint. On the first disagreement it keeps the frame of that
/// tick, runs on to the first recorded checkpoint at or after it and diffs the two, then
/// stops. `progress` is called with each tick simulated.
pub fn verify<G: Pod, I: Pod + PartialEq>(
    replay: &Replay<'_, I>,
    schema: &Arc<Schema>,
    simulation: &mut Simulation<G, I>,
    mut progress: impl FnMut(Tick),
) -> Result<Verification<G>, ReplayError> {
    let mut frame: Frame<G> = restore(replay.initial.1, schema, 0)?;
    let mut inputs = input_buffer(replay)?;
    let mut report = Verification {
        ticks: frame.tick(),
        final_checksum: checksum(&frame),
        compared: 0,
        first_divergent_tick: None,
        divergent_frame: None,
        checkpoint_diff: None,
    };
    let (mut sums, mut checkpoints) = (
        replay.checksums.iter().peekable(),
        replay.checkpoints.iter().peekable(),
    );
    let mut snapshot = Vec::new();
    keep_warm(|| {
        while frame.tick() < replay.last_tick() {
            step(replay, simulation, &mut frame, &mut inputs)?;
            progress(frame.tick());
            let tick = frame.tick();
            let recorded_sum = sums.next_if(|(t, _)| *t == tick).map(|&(_, sum)| sum);
            let recorded_checkpoint = checkpoints.next_if(|c| c.tick == tick);
            let mut current = None;
            let mut matches = |expected: Checksum| {
                report.compared += 1;
                *current.get_or_insert_with(|| checksum(&frame)) == expected
            };
            let sum_ok = recorded_sum.is_none_or(&mut matches);
            let checkpoint_ok = recorded_checkpoint
                .map(|c| c.checksum)
                .is_none_or(&mut matches);
            if report.first_divergent_tick.is_none() && !(sum_ok && checkpoint_ok) {
                report.first_divergent_tick = Some(tick);
                report.divergent_frame = Some(frame.clone());
            }
            if report.first_divergent_tick.is_some()
                && let Some(recorded) = recorded_checkpoint
            {
                tickstep_snapshot::encode(&frame, &mut snapshot);
                let diff = tickstep_snapshot::diff(&snapshot, recorded.bytes, schema, 200)
                    .map_err(|error| ReplayError::Snapshot { offset: 0, error })?;
                report.checkpoint_diff = Some((tick, diff));
                return Ok(());
            }
        }
        Ok::<_, ReplayError>(())
    })?;
    report.ticks = frame.tick();
    report.final_checksum = checksum(&frame);
    Ok(report)
}

/// The frame at `tick`: restored from the nearest checkpoint at or before it (or the
/// initial snapshot) and stepped forward, so it costs at most `checkpoint_every` ticks.
pub fn seek<G: Pod, I: Pod + PartialEq>(
    replay: &Replay<'_, I>,
    schema: &Arc<Schema>,
    simulation: &mut Simulation<G, I>,
    tick: Tick,
) -> Result<Frame<G>, ReplayError> {
    if tick < replay.initial.0 || tick > replay.last_tick() {
        return Err(ReplayError::BadRecord {
            offset: 0,
            problem: "tick outside the replay",
        });
    }
    let start = replay
        .checkpoints
        .iter()
        .rev()
        .find(|c| c.tick <= tick)
        .map_or(replay.initial.1, |c| c.bytes);
    let mut frame = restore(start, schema, 0)?;
    let mut inputs = input_buffer(replay)?;
    while frame.tick() < tick {
        step(replay, simulation, &mut frame, &mut inputs)?;
    }
    Ok(frame)
}
