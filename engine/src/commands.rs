//! `Commands`: structural changes (spawn, despawn, insert, remove) recorded while a
//! system walks a query, applied when the system returns, in the order recorded.
//!
//! A query borrows the world, so a system cannot spawn or despawn while it iterates;
//! it records the change in the frame's [`Commands`] instead (see [`crate::Frame::parts`]).
//! [`crate::Simulation::step`] applies them after each system, before the next one runs:
//! a defined point, in recording order, which a deterministic system makes the same on
//! every peer.

use bytemuck::Pod;
use std::ops::Range;
use std::sync::Arc;

use crate::world::Bundle;
use crate::{Entity, Schema, World, WorldError};

/// Structural changes waiting to be applied to a world: recorded while a system walks a
/// query (which borrows the world, so it cannot spawn or despawn itself), applied by
/// [`crate::Simulation::step`] when the system returns, before the next one runs, in
/// recording order. Get the frame's buffer from [`crate::Frame::parts`].
///
/// Applying is lenient where lockstep games need it: a command naming an entity that is
/// gone by then (two shots despawning the same unit, a runner killed before its pick-up
/// applies) is skipped, as is removing a component the entity lacks. A component type
/// the schema does not register, or a spawn beyond the frame's capacity, is an error.
#[derive(Debug, Clone)]
pub struct Commands {
    schema: Arc<Schema>,
    ops: Vec<Op>,
    /// Values of recorded inserts, back to back.
    values: Vec<u8>,
}

/// Which entity an insert goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Entity(Entity),
    /// The entity the latest `Spawn` created.
    Spawned,
}

#[derive(Debug, Clone)]
enum Op {
    Spawn,
    Despawn(Entity),
    Insert {
        target: Target,
        column: usize,
        value: Range<usize>,
    },
    Remove {
        entity: Entity,
        column: usize,
    },
    /// A command named a type the schema does not register: fails when applied.
    Unregistered(&'static str),
}

impl Commands {
    /// An empty buffer for worlds of `schema`.
    pub fn new(schema: Arc<Schema>) -> Commands {
        Commands {
            schema,
            ops: Vec::new(),
            values: Vec::new(),
        }
    }

    /// The schema whose component types this buffer records.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Number of commands waiting.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no command waits.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Drops every waiting command.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.values.clear();
    }

    /// Spawns an entity with the components in `bundle` (a tuple of components).
    pub fn spawn<B: Bundle>(&mut self, bundle: B) {
        self.ops.push(Op::Spawn);
        bundle.record(self);
    }

    /// Despawns `entity` (skipped if it is gone by then).
    pub fn despawn(&mut self, entity: Entity) {
        self.ops.push(Op::Despawn(entity));
    }

    /// Sets `entity`'s `T` to `value`, adding it if missing (skipped if the entity is
    /// gone by then).
    pub fn insert<T: Pod>(&mut self, entity: Entity, value: T) {
        self.push_insert(Target::Entity(entity), value);
    }

    /// Records an insert into the entity the latest [`Commands::spawn`] creates.
    pub(crate) fn insert_spawned<T: Pod>(&mut self, value: T) {
        self.push_insert(Target::Spawned, value);
    }

    fn push_insert<T: Pod>(&mut self, target: Target, value: T) {
        let Some(column) = self.schema.component_index::<T>() else {
            self.ops.push(Op::Unregistered(std::any::type_name::<T>()));
            return;
        };
        let start = self.values.len();
        self.values.extend_from_slice(bytemuck::bytes_of(&value));
        let value = start..self.values.len();
        self.ops.push(Op::Insert {
            target,
            column,
            value,
        });
    }

    /// Removes `entity`'s `T` (skipped if the entity is gone or has none).
    pub fn remove<T: Pod>(&mut self, entity: Entity) {
        self.ops.push(match self.schema.component_index::<T>() {
            Some(column) => Op::Remove { entity, column },
            None => Op::Unregistered(std::any::type_name::<T>()),
        });
    }

    /// Applies every waiting command to `world` in recording order and empties the
    /// buffer. On an error the commands before it stay applied and the rest are dropped.
    pub fn apply(&mut self, world: &mut World) -> Result<(), WorldError> {
        let (commands, target) = (self.schema.hash(), world.schema().hash());
        if commands != target {
            self.clear();
            return Err(WorldError::SchemaMismatch {
                commands,
                world: target,
            });
        }
        let outcome = self.apply_ops(world);
        self.clear();
        outcome
    }

    fn apply_ops(&self, world: &mut World) -> Result<(), WorldError> {
        let mut spawned = Entity::NONE;
        for op in &self.ops {
            match *op {
                Op::Spawn => spawned = world.spawn()?,
                Op::Despawn(entity) => {
                    if world.contains(entity) {
                        world.despawn(entity)?;
                    }
                }
                Op::Insert {
                    target,
                    column,
                    ref value,
                } => {
                    let entity = match target {
                        Target::Entity(entity) => entity,
                        Target::Spawned => spawned,
                    };
                    if world.contains(entity) {
                        world.insert_bytes(entity, column, &self.values[value.clone()]);
                    }
                }
                Op::Remove { entity, column } => {
                    if world.contains(entity) {
                        world.remove_column(entity, column);
                    }
                }
                Op::Unregistered(name) => return Err(WorldError::UnregisteredComponent(name)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;
    use bytemuck::Zeroable;

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct Hp(i32);

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct Tag(u8);

    fn frame() -> Frame<()> {
        let schema = Schema::builder::<()>("commands", 1)
            .component::<Hp>("hp")
            .component::<Tag>("tag")
            .build()
            .expect("schema");
        Frame::new(schema, 4, ()).expect("frame")
    }

    #[test]
    fn commands_apply_in_order_and_skip_entities_already_gone() {
        let mut frame = frame();
        let a = frame.world_mut().spawn_with((Hp(1),)).expect("spawn");
        let parts = frame.parts();
        parts.commands.despawn(a);
        parts.commands.despawn(a);
        parts.commands.insert(a, Tag(1));
        parts.commands.spawn((Hp(7), Tag(2)));
        parts.commands.spawn((Hp(8),));
        // Two despawns, an insert, then each spawn and its components.
        assert_eq!(parts.commands.len(), 3 + 3 + 2);
        frame.apply_commands().expect("apply");
        let world = frame.world();
        let spawned: Vec<_> = world
            .query::<(&Hp, Option<&Tag>)>()
            .expect("query")
            .map(|(e, (hp, tag))| (e, *hp, tag.copied()))
            .collect();
        // Slot 0 was freed by the despawn and is reused first, with a new generation.
        assert_eq!(
            spawned,
            vec![
                (Entity::from_parts(0, 3), Hp(7), Some(Tag(2))),
                (Entity::from_parts(1, 1), Hp(8), None)
            ]
        );
        assert!(frame.parts().commands.is_empty());
    }

    #[test]
    fn commands_for_another_schema_are_refused_and_pending_ones_block_a_step() {
        let mut frame = frame();
        let other = Schema::builder::<()>("other", 1)
            .component::<Tag>("tag")
            .build()
            .expect("schema");
        let mut foreign = Commands::new(other);
        foreign.spawn((Tag(1),));
        assert!(matches!(
            foreign.apply(frame.world_mut()),
            Err(WorldError::SchemaMismatch { .. })
        ));
        assert!(frame.world().is_empty());
        frame.parts().commands.spawn((Hp(1),));
        let mut inputs = crate::TickInputs::<u8>::new(1).expect("inputs");
        inputs.reset(1);
        let mut sim = crate::Simulation::<(), u8>::new();
        assert_eq!(
            sim.step(&mut frame, &inputs),
            Err(crate::StepError::PendingCommands(2))
        );
        assert_eq!(frame.tick(), 0, "the frame is unchanged");
        frame.apply_commands().expect("apply");
        sim.step(&mut frame, &inputs).expect("step");
    }

    #[test]
    fn an_unregistered_type_or_a_full_world_is_an_error() {
        let mut frame = frame();
        frame.parts().commands.spawn((5u64,));
        assert_eq!(
            frame.apply_commands(),
            Err(WorldError::UnregisteredComponent("u64"))
        );
        for _ in 0..5 {
            frame.parts().commands.spawn((Hp(1),));
        }
        assert_eq!(
            frame.apply_commands(),
            Err(WorldError::CapacityExceeded { capacity: 4 })
        );
    }
}
