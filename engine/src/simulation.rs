//! `System` and `Simulation`: advance a frame by one tick.

use bytemuck::Pod;

use crate::{Frame, Tick, TickInputs};

/// One stage of a tick: reads and writes the frame given the tick's verified input.
///
/// A system must be a pure function of the frame and the input: no clocks, floats,
/// threads or randomly seeded hash maps. It may keep scratch buffers between ticks to
/// avoid allocating, but never state that changes the outcome: that would not survive a
/// snapshot and restore.
pub trait System<G, I> {
    /// Runs this stage for `frame.tick()`.
    fn run(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>);
}

impl<G, I, F: FnMut(&mut Frame<G>, &TickInputs<I>)> System<G, I> for F {
    fn run(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>) {
        self(frame, inputs)
    }
}

/// Why a step was refused. The frame is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The input is not for the tick after the frame's.
    #[error("frame is at tick {frame_tick}, so it needs input for tick {}, not {input_tick}", frame_tick.saturating_add(1))]
    WrongTick {
        /// The frame's tick.
        frame_tick: Tick,
        /// The input's tick.
        input_tick: Tick,
    },
    /// The frame reached [`crate::MAX_TICK`].
    #[error("frame is at the last tick a frame may reach ({})", crate::MAX_TICK)]
    TickLimit,
}

/// The game's systems in their fixed order.
pub struct Simulation<G, I> {
    systems: Vec<Box<dyn System<G, I>>>,
}

impl<G: Pod, I: Pod> Default for Simulation<G, I> {
    fn default() -> Self {
        Simulation {
            systems: Vec::new(),
        }
    }
}

impl<G: Pod, I: Pod> Simulation<G, I> {
    /// A simulation with no systems.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `system`; systems run in the order they were added.
    pub fn with_system(mut self, system: impl System<G, I> + 'static) -> Self {
        self.systems.push(Box::new(system));
        self
    }

    /// Advances `frame` from tick `T - 1` to tick `T = inputs.tick()`: sets the frame's
    /// tick to `T`, then runs every system once.
    pub fn step(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>) -> Result<(), StepError> {
        if frame.tick() >= crate::MAX_TICK {
            return Err(StepError::TickLimit);
        }
        if inputs.tick() != frame.tick() + 1 {
            return Err(StepError::WrongTick {
                frame_tick: frame.tick(),
                input_tick: inputs.tick(),
            });
        }
        frame.set_tick(inputs.tick());
        for system in &mut self.systems {
            system.run(frame, inputs);
        }
        Ok(())
    }
}
