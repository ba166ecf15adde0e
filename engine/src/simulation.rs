//! `System` and `Simulation`: advance a frame by one tick.

use bytemuck::Pod;
use std::fmt;

use crate::{Frame, InputError, Tick, TickInputs, WorldError};

/// Why a system failed. The step that ran it fails with [`StepError::System`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SystemError {
    /// An entity or component operation failed (e.g. the world is full).
    #[error(transparent)]
    World(#[from] WorldError),
    /// Reading the tick's input failed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The game's own reason.
    #[error("{0}")]
    Game(String),
}

impl SystemError {
    /// A failure in the game's own words.
    pub fn game(reason: impl fmt::Display) -> SystemError {
        SystemError::Game(reason.to_string())
    }
}

/// What a system returns: `Ok(())`, or why it could not finish the tick.
pub type SystemResult = Result<(), SystemError>;

/// What a system function may return: nothing (it cannot fail) or a [`SystemResult`].
pub trait IntoSystemResult {
    /// As a [`SystemResult`].
    fn into_system_result(self) -> SystemResult;
}

impl IntoSystemResult for () {
    fn into_system_result(self) -> SystemResult {
        Ok(())
    }
}

impl<E: Into<SystemError>> IntoSystemResult for Result<(), E> {
    fn into_system_result(self) -> SystemResult {
        self.map_err(Into::into)
    }
}

/// One stage of a tick: reads and writes the frame given the tick's verified input.
///
/// A system must be a pure function of the frame and the input: no clocks, floats,
/// threads or randomly seeded hash maps. It may keep scratch buffers between ticks to
/// avoid allocating, but never state that changes the outcome: that would not survive a
/// snapshot and restore (a sync test catches it; see `tickstep_snapshot::SyncTest`).
///
/// Functions and closures taking `(&mut Frame<G>, &TickInputs<I>)` and returning `()` or
/// a [`SystemResult`] are systems.
pub trait System<G, I> {
    /// Runs this stage for `frame.tick()`.
    fn run(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>) -> SystemResult;
}

impl<G, I, R, F> System<G, I> for F
where
    F: FnMut(&mut Frame<G>, &TickInputs<I>) -> R,
    R: IntoSystemResult,
{
    fn run(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>) -> SystemResult {
        self(frame, inputs).into_system_result()
    }
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The input is not for the tick after the frame's. The frame is unchanged.
    #[error("frame is at tick {frame_tick}, so it needs input for tick {}, not {input_tick}", frame_tick.saturating_add(1))]
    WrongTick {
        /// The frame's tick.
        frame_tick: Tick,
        /// The input's tick.
        input_tick: Tick,
    },
    /// The frame reached [`crate::MAX_TICK`]. The frame is unchanged.
    #[error("frame is at the last tick a frame may reach ({})", crate::MAX_TICK)]
    TickLimit,
    /// A system failed, or the commands it recorded could not be applied. The frame is
    /// [poisoned](Frame::is_poisoned): it holds a partly stepped state.
    #[error("system {index} ({name}) failed at tick {tick}: {error}")]
    System {
        /// The tick being stepped.
        tick: Tick,
        /// The system's position in the simulation, from 0.
        index: usize,
        /// The system's type name.
        name: &'static str,
        /// What went wrong.
        error: SystemError,
    },
    /// Commands were recorded outside a step and never applied (they are not part of the
    /// state, so a copy of the frame would lack them): call [`Frame::apply_commands`]
    /// first. The frame is unchanged.
    #[error("frame has {0} commands recorded outside a step; apply them before stepping")]
    PendingCommands(usize),
    /// An earlier step failed part-way; restore a snapshot before stepping again.
    #[error("frame at tick {tick} is poisoned by a failed step; restore a snapshot")]
    Poisoned {
        /// The frame's tick.
        tick: Tick,
    },
}

/// A system and its type name (for errors).
struct Named<G, I> {
    name: &'static str,
    system: Box<dyn System<G, I> + Send>,
}

/// The game's systems in their fixed order.
pub struct Simulation<G, I> {
    systems: Vec<Named<G, I>>,
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

    /// Appends `system`; systems run in the order they were added. Systems are `Send`,
    /// so a simulation can move to the thread (or thread pool) that steps it.
    pub fn with_system<S: System<G, I> + Send + 'static>(mut self, system: S) -> Self {
        self.systems.push(Named {
            name: std::any::type_name::<S>(),
            system: Box::new(system),
        });
        self
    }

    /// Number of systems.
    pub fn len(&self) -> usize {
        self.systems.len()
    }

    /// True when there are no systems.
    pub fn is_empty(&self) -> bool {
        self.systems.is_empty()
    }

    /// Advances `frame` from tick `T - 1` to tick `T = inputs.tick()`: sets the frame's
    /// tick to `T`, then runs every system once, applying the commands each recorded
    /// when it returns. If a system fails the frame is poisoned and the step says which
    /// system failed and why.
    pub fn step(&mut self, frame: &mut Frame<G>, inputs: &TickInputs<I>) -> Result<(), StepError> {
        if frame.is_poisoned() {
            return Err(StepError::Poisoned { tick: frame.tick() });
        }
        if frame.tick() >= crate::MAX_TICK {
            return Err(StepError::TickLimit);
        }
        let pending = frame.pending_commands();
        if pending > 0 {
            return Err(StepError::PendingCommands(pending));
        }
        if inputs.tick() != frame.tick() + 1 {
            return Err(StepError::WrongTick {
                frame_tick: frame.tick(),
                input_tick: inputs.tick(),
            });
        }
        frame.set_tick(inputs.tick());
        for (index, Named { name, system }) in self.systems.iter_mut().enumerate() {
            let outcome = system
                .run(frame, inputs)
                .and_then(|()| frame.apply_commands().map_err(SystemError::from));
            if let Err(error) = outcome {
                frame.poison();
                return Err(StepError::System {
                    tick: inputs.tick(),
                    index,
                    name,
                    error,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entity, PlayerId, Schema};
    use bytemuck::Zeroable;
    use std::sync::Arc;

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct Hp(i32);

    #[test]
    fn a_failing_system_poisons_the_frame_and_names_itself() {
        let schema = Schema::builder::<()>("fail", 1)
            .component::<Hp>("hp")
            .build()
            .expect("schema");
        let mut frame = Frame::new(schema, 1, ()).expect("frame");
        let mut sim = Simulation::new()
            .with_system(|f: &mut Frame<()>, _: &TickInputs<u8>| {
                f.world_mut().spawn_with((Hp(1),)).map(|_: Entity| ())
            })
            .with_system(|_: &mut Frame<()>, i: &TickInputs<u8>| {
                if i.get(PlayerId(0)) == Some(&9) {
                    return Err(SystemError::game("nine is not allowed"));
                }
                Ok(())
            });
        let mut inputs = TickInputs::new(1).expect("inputs");
        inputs.reset(1);
        sim.step(&mut frame, &inputs).expect("tick 1");
        inputs.reset(2);
        let err = sim.step(&mut frame, &inputs).expect_err("world full");
        assert!(matches!(
            err,
            StepError::System {
                tick: 2,
                index: 0,
                error: SystemError::World(WorldError::CapacityExceeded { capacity: 1 }),
                ..
            }
        ));
        assert!(frame.is_poisoned());
        assert_eq!(
            sim.step(&mut frame, &inputs),
            Err(StepError::Poisoned { tick: 2 })
        );
        // A restored image makes the frame whole again.
        let mut image = Vec::new();
        let fresh = Frame::new(Arc::clone(frame.schema()), 1, ()).expect("frame");
        fresh.write_image(|bytes| image.extend_from_slice(bytes));
        frame.restore_image(&image).expect("restore");
        assert!(!frame.is_poisoned());
        inputs.reset(1);
        inputs.set(PlayerId(0), 9).expect("set");
        let err = sim.step(&mut frame, &inputs).expect_err("nine");
        assert!(
            err.to_string().contains("system 1") && err.to_string().contains("nine"),
            "{err}"
        );
    }
}
