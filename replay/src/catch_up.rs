//! `CatchUp`: fast-forward a restored frame over buffered verified input toward the
//! live tick, in slices, so the host can render and report progress between them. It
//! reads no clock (there is none on wasm32 in a browser): a host that wants a slice of
//! wall-clock time runs slices of a few ticks until its own clock says stop.

use bytemuck::Pod;
use tickstep_engine::parallel::keep_warm;
use tickstep_engine::{Frame, Simulation, Tick, TickInputs};

use crate::{InputLog, InputLogError};

/// Where a catch-up stands after a slice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CatchUpStatus {
    /// The frame's tick.
    pub tick: Tick,
    /// The live tick: the newest verified input.
    pub target: Tick,
    /// Ticks simulated since the catch-up started.
    pub done: u64,
    /// Ticks still behind live.
    pub remaining: u64,
    /// Within the configured distance of live: the game can run normally.
    pub caught_up: bool,
}

/// Why a slice stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatchUpError {
    /// The input needed is not in the log (evicted: the snapshot is older than the
    /// history kept).
    #[error(transparent)]
    Input(#[from] InputLogError),
    /// The simulation refused a step.
    #[error("simulation refused a step: {0}")]
    Step(String),
}

/// Runs buffered input into a frame as fast as possible, a slice at a time, in
/// [`keep_warm`] when a slice has more than one tick to step (one small job per waiting
/// thread per slice); no per-tick allocation and no per-tick hashing.
#[derive(Debug)]
pub struct CatchUp<I> {
    inputs: TickInputs<I>,
    started_at: Tick,
    close_enough: u64,
}

impl<I: Pod + PartialEq> CatchUp<I> {
    /// A catch-up of a frame restored at tick `start` for `players` slots, done when
    /// within `close_enough` ticks of live.
    pub fn new(players: usize, start: Tick, close_enough: u64) -> Result<CatchUp<I>, CatchUpError> {
        Ok(CatchUp {
            inputs: TickInputs::new(players).map_err(|e| CatchUpError::Step(e.to_string()))?,
            started_at: start,
            close_enough,
        })
    }

    /// Steps `frame` toward the newest tick in `log`, at most `max_ticks` ticks.
    pub fn run_slice<G: Pod>(
        &mut self,
        simulation: &mut Simulation<G, I>,
        frame: &mut Frame<G>,
        log: &InputLog<I>,
        max_ticks: u64,
    ) -> Result<CatchUpStatus, CatchUpError> {
        let target = log.newest().unwrap_or(frame.tick());
        let burst = max_ticks > 1 && target > frame.tick() + 1;
        let inputs = &mut self.inputs;
        let mut steps = || {
            let mut stepped = 0u64;
            while frame.tick() < target && stepped < max_ticks {
                log.read(frame.tick() + 1, inputs)?;
                simulation
                    .step(frame, inputs)
                    .map_err(|e| CatchUpError::Step(e.to_string()))?;
                stepped += 1;
            }
            Ok::<_, CatchUpError>(())
        };
        if burst {
            keep_warm(steps)?;
        } else {
            steps()?;
        }
        Ok(self.status(frame.tick(), target))
    }

    fn status(&self, tick: Tick, target: Tick) -> CatchUpStatus {
        let done = tick.saturating_sub(self.started_at);
        let remaining = target.saturating_sub(tick);
        CatchUpStatus {
            tick,
            target,
            done,
            remaining,
            caught_up: remaining <= self.close_enough,
        }
    }
}
