//! `Frame`: the complete state of a game at one tick.

use bytemuck::Pod;
use std::sync::Arc;

use crate::{Schema, World};

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
}

impl<G: Pod> Clone for Frame<G> {
    fn clone(&self) -> Self {
        Frame {
            tick: self.tick,
            globals: self.globals,
            world: self.world.clone(),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.tick = source.tick;
        self.globals = source.globals;
        self.world.clone_from(&source.world);
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
            world: World::new(schema, capacity),
        })
    }

    /// The tick this frame is the state of.
    pub fn tick(&self) -> Tick {
        self.tick
    }

    pub(crate) fn set_tick(&mut self, tick: Tick) {
        self.tick = tick;
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut Tick, &mut G, &mut World) {
        (&mut self.tick, &mut self.globals, &mut self.world)
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
