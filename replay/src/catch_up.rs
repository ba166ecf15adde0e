//! `CatchUp`: fast-forward a restored frame over buffered verified input toward the
//! live tick, in slices, so the host can render and report progress between them.

use bytemuck::Pod;
use std::time::{Duration, Instant};
use tickstep_engine::{Frame, Simulation, Tick, TickInputs};

use crate::{InputLog, InputLogError};

/// How much one slice may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// At most this many ticks.
    Ticks(u64),
    /// Until this much wall-clock time has passed (checked every few ticks). The clock
    /// only decides where a slice ends, never what a tick computes.
    Time(Duration),
}

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
    /// Simulation speed so far.
    pub ticks_per_sec: f64,
    /// Estimated time to reach live, given that live moves on at the game's tick rate;
    /// `None` while the catch-up is not faster than live.
    pub eta: Option<Duration>,
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

/// Runs buffered input into a frame as fast as possible, a slice at a time. Allocates
/// only when created; no per-tick allocation and no per-tick hashing.
#[derive(Debug)]
pub struct CatchUp<I> {
    inputs: TickInputs<I>,
    started_at: Tick,
    close_enough: u64,
    live_rate: u32,
    busy: Duration,
}

impl<I: Pod + PartialEq> CatchUp<I> {
    /// A catch-up of a frame restored at tick `start` for `players` slots, done when
    /// within `close_enough` ticks of live, where live advances `live_rate` ticks a second.
    pub fn new(
        players: usize,
        start: Tick,
        close_enough: u64,
        live_rate: u32,
    ) -> Result<CatchUp<I>, CatchUpError> {
        Ok(CatchUp {
            inputs: TickInputs::new(players).map_err(|e| CatchUpError::Step(e.to_string()))?,
            started_at: start,
            close_enough,
            live_rate,
            busy: Duration::ZERO,
        })
    }

    /// Steps `frame` toward the newest tick in `log` within `budget`.
    pub fn run_slice<G: Pod>(
        &mut self,
        simulation: &mut Simulation<G, I>,
        frame: &mut Frame<G>,
        log: &InputLog<I>,
        budget: Budget,
    ) -> Result<CatchUpStatus, CatchUpError> {
        const CLOCK_EVERY: u64 = 8;
        let began = Instant::now();
        let target = log.newest().unwrap_or(frame.tick());
        let mut stepped = 0u64;
        while frame.tick() < target {
            let over = match budget {
                Budget::Ticks(limit) => stepped >= limit,
                Budget::Time(limit) => {
                    stepped.is_multiple_of(CLOCK_EVERY) && stepped > 0 && began.elapsed() >= limit
                }
            };
            if over {
                break;
            }
            log.read(frame.tick() + 1, &mut self.inputs)?;
            simulation
                .step(frame, &self.inputs)
                .map_err(|e| CatchUpError::Step(e.to_string()))?;
            stepped += 1;
        }
        self.busy += began.elapsed();
        Ok(self.status(frame.tick(), target))
    }

    fn status(&self, tick: Tick, target: Tick) -> CatchUpStatus {
        let done = tick.saturating_sub(self.started_at);
        let remaining = target.saturating_sub(tick);
        let seconds = self.busy.as_secs_f64();
        let ticks_per_sec = if seconds > 0.0 {
            done as f64 / seconds
        } else {
            0.0
        };
        let closing = ticks_per_sec - self.live_rate as f64;
        let eta = (closing > 0.0)
            .then(|| Duration::try_from_secs_f64(remaining as f64 / closing).ok())
            .flatten();
        CatchUpStatus {
            tick,
            target,
            done,
            remaining,
            ticks_per_sec,
            eta,
            caught_up: remaining <= self.close_enough,
        }
    }
}
