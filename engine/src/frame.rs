//! `Frame`: the complete state of a game at one tick.

use bytemuck::Pod;
use std::sync::Arc;

use crate::{Commands, Schema, World, WorldError};

/// A tick number: frame `T` is the state after applying the verified input of tick `T`.
pub type Tick = u64;

/// Most entity slots a frame may have (keeps every byte length well inside `usize`).
pub const MAX_CAPACITY: u32 = 1 << 28;

/// The last tick a frame may reach (2^62: two billion years at 60 Hz). Keeping ticks far
/// from `u64::MAX` means `tick + 1` never overflows, whatever a restored frame says.
pub const MAX_TICK: Tick = 1 << 62;

/// Why a frame could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// `G` is not the globals type the schema was built with.
    #[error("globals type {found} does not match the schema's globals type")]
    GlobalsTypeMismatch {
        /// The type given.
        found: &'static str,
    },
    /// Capacity above [`MAX_CAPACITY`].
    #[error("capacity {requested} exceeds the maximum of {MAX_CAPACITY} entities")]
    CapacityTooLarge {
        /// The capacity asked for.
        requested: u32,
    },
}

/// The state of a game at one tick: the tick number, the game's globals `G` (a `Pod`
/// struct, e.g. holding the [`crate::Rng`]) and the [`World`] of entities and components.
///
/// Cloning is memcpy-class: one copy per column, nothing per entity, and `clone_from`
/// reuses the target's buffers so a warm copy allocates nothing.
#[derive(Debug)]
pub struct Frame<G> {
    tick: Tick,
    globals: G,
    world: World,
    /// Structural changes a system recorded, applied when it returns (never part of the
    /// state: empty between systems).
    commands: Commands,
    /// A system failed part-way through a step: the state is not a tick's state.
    poisoned: bool,
}

/// A frame's parts, borrowed at once: e.g. to walk a query over `world` while recording
/// spawns in `commands` and drawing from an RNG in `globals`. See [`Frame::parts`].
pub struct Parts<'a, G> {
    /// The game's globals.
    pub globals: &'a mut G,
    /// The entities and components.
    pub world: &'a mut World,
    /// Structural changes to apply when the current system returns.
    pub commands: &'a mut Commands,
}

impl<G: Pod> Clone for Frame<G> {
    fn clone(&self) -> Self {
        Frame {
            tick: self.tick,
            globals: self.globals,
            world: self.world.clone(),
            commands: Commands::new(Arc::clone(self.schema())),
            poisoned: self.poisoned,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.tick = source.tick;
        self.globals = source.globals;
        self.world.clone_from(&source.world);
        if !Arc::ptr_eq(self.commands.schema(), source.schema()) {
            self.commands = Commands::new(Arc::clone(source.schema()));
        }
        self.commands.clear();
        self.poisoned = source.poisoned;
    }
}

impl<G: Pod> Frame<G> {
    /// An empty frame at tick 0 with room for `capacity` entities.
    pub fn new(schema: Arc<Schema>, capacity: u32, globals: G) -> Result<Frame<G>, FrameError> {
        if !schema.has_globals::<G>() {
            let found = std::any::type_name::<G>();
            return Err(FrameError::GlobalsTypeMismatch { found });
        }
        if capacity > MAX_CAPACITY {
            return Err(FrameError::CapacityTooLarge {
                requested: capacity,
            });
        }
        Ok(Frame {
            tick: 0,
            globals,
            commands: Commands::new(Arc::clone(&schema)),
            world: World::new(schema, capacity),
            poisoned: false,
        })
    }

    /// The tick this frame is the state of.
    pub fn tick(&self) -> Tick {
        self.tick
    }

    pub(crate) fn set_tick(&mut self, tick: Tick) {
        self.tick = tick;
    }

    /// Tick, globals and world, for restoring an image.
    pub(crate) fn restore_parts(&mut self) -> (&mut Tick, &mut G, &mut World) {
        (&mut self.tick, &mut self.globals, &mut self.world)
    }

    /// The state was replaced whole (an image was restored): no longer poisoned.
    pub(crate) fn mark_whole(&mut self) {
        self.poisoned = false;
        self.commands.clear();
    }

    /// True when a system failed part-way through a step (see
    /// [`crate::StepError::System`]): the state is no tick's state and further steps are
    /// refused until a snapshot or image is restored into the frame.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    pub(crate) fn poison(&mut self) {
        self.poisoned = true;
        self.commands.clear();
    }

    /// Globals, world and the command buffer at once. Commands recorded inside a system
    /// are applied by [`crate::Simulation::step`] when the system returns; outside a
    /// step, call [`Frame::apply_commands`].
    ///
    /// ```
    /// # use bytemuck::{Pod, Zeroable};
    /// # use tickstep_engine::{Frame, Parts, Schema};
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Hp(i32);
    /// # let schema = Schema::builder::<()>("doc", 1).component::<Hp>("hp").build()?;
    /// # let mut frame = Frame::new(schema, 8, ())?;
    /// frame.world_mut().spawn_with((Hp(0),))?;
    /// frame.world_mut().spawn_with((Hp(5),))?;
    /// let Parts { world, commands, .. } = frame.parts();
    /// for (entity, hp) in world.query::<&Hp>()? {
    ///     if hp.0 <= 0 {
    ///         commands.despawn(entity);
    ///     }
    /// }
    /// frame.apply_commands()?;
    /// assert_eq!(frame.world().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parts(&mut self) -> Parts<'_, G> {
        Parts {
            globals: &mut self.globals,
            world: &mut self.world,
            commands: &mut self.commands,
        }
    }

    /// Number of commands recorded and not yet applied.
    pub fn pending_commands(&self) -> usize {
        self.commands.len()
    }

    /// Applies the commands recorded so far (see [`Commands`]).
    pub fn apply_commands(&mut self) -> Result<(), WorldError> {
        self.commands.apply(&mut self.world)
    }

    /// The schema of this frame's world.
    pub fn schema(&self) -> &Arc<Schema> {
        self.world.schema()
    }

    /// The game's globals.
    pub fn globals(&self) -> &G {
        &self.globals
    }

    /// The game's globals, mutably.
    pub fn globals_mut(&mut self) -> &mut G {
        &mut self.globals
    }

    /// The entities and components.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The entities and components, mutably.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Globals and world at once, e.g. to draw from an RNG in the globals while a query
    /// walks the world.
    pub fn split_mut(&mut self) -> (&mut G, &mut World) {
        (&mut self.globals, &mut self.world)
    }
}
