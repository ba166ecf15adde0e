//! `World`: the entities of a frame and their components.

use bytemuck::Pod;
use std::sync::Arc;

use crate::column::Column;
use crate::entity::EntityTable;
use crate::query::{Query, QueryIter, ReadOnlyQuery};
use crate::{Entity, Schema};

/// What went wrong with an entity or component operation. The world is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// Every slot is in use.
    #[error(
        "entity capacity {capacity} reached; despawn entities or create frames with more capacity"
    )]
    CapacityExceeded {
        /// The frame's capacity.
        capacity: u32,
    },
    /// The handle names an entity that was despawned (or never existed).
    #[error("entity {0} does not exist (despawned, or from another frame)")]
    NoSuchEntity(Entity),
    /// The entity lives but lacks the component.
    #[error("entity {entity} has no {component} component")]
    MissingComponent {
        /// The entity.
        entity: Entity,
        /// The component's registered name.
        component: &'static str,
    },
    /// The type is not in the frame's schema.
    #[error("component type {0} is not registered in the schema; add it to Schema::builder")]
    UnregisteredComponent(&'static str),
}

/// The entities of a frame and their components, stored as one [`Pod`] column per
/// registered component type, indexed by entity slot.
///
/// Every operation is a pure function of the operations before it: iteration runs in slot
/// order and freed slots are reused last-freed-first, so all peers agree.
#[derive(Debug)]
pub struct World {
    schema: Arc<Schema>,
    pub(crate) entities: EntityTable,
    pub(crate) columns: Vec<Column>,
    /// Live entities holding each component. Derived from the masks (so not part of the
    /// frame's bytes); lets a query skip mask checks when every slot matches.
    pub(crate) holders: Vec<u32>,
    /// Scratch for checking a restored free list for duplicates; not state.
    pub(crate) restore_marks: Vec<u64>,
}

impl Clone for World {
    fn clone(&self) -> Self {
        World {
            schema: Arc::clone(&self.schema),
            entities: self.entities.clone(),
            columns: self.columns.clone(),
            holders: self.holders.clone(),
            restore_marks: Vec::new(),
        }
    }

    /// Copies `source` into `self` reusing `self`'s buffers: no allocation once warm.
    fn clone_from(&mut self, source: &Self) {
        if !Arc::ptr_eq(&self.schema, &source.schema) {
            self.schema = Arc::clone(&source.schema);
        }
        self.entities.clone_from(&source.entities);
        self.columns.clone_from(&source.columns);
        self.holders.clone_from(&source.holders);
    }
}

impl World {
    pub(crate) fn new(schema: Arc<Schema>, capacity: u32) -> World {
        let columns = schema
            .components()
            .iter()
            .map(|info| Column::new(info.size, capacity as usize))
            .collect();
        World {
            holders: vec![0; schema.components().len()],
            schema,
            entities: EntityTable::with_capacity(capacity),
            columns,
            restore_marks: Vec::new(),
        }
    }

    /// The schema this world's columns follow.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Number of live entities.
    pub fn len(&self) -> u32 {
        self.entities.live
    }

    /// True when no entity lives.
    pub fn is_empty(&self) -> bool {
        self.entities.live == 0
    }

    /// Most entities that may live at once.
    pub fn capacity(&self) -> u32 {
        self.entities.capacity
    }

    /// Number of entity slots in use or free (the entity table's high-water mark).
    pub fn slots(&self) -> usize {
        self.entities.slots()
    }

    /// True when `entity` is alive.
    pub fn contains(&self, entity: Entity) -> bool {
        self.entities.contains(entity)
    }

    /// Every live entity, in slot order.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        self.entities.iter()
    }

    /// Creates an entity with no components.
    pub fn spawn(&mut self) -> Result<Entity, WorldError> {
        self.entities
            .allocate()
            .ok_or(WorldError::CapacityExceeded {
                capacity: self.entities.capacity,
            })
    }

    /// Creates an entity with the components in `bundle` (a tuple of components). Nothing
    /// is created if any type is unregistered or the world is full.
    pub fn spawn_with<B: Bundle>(&mut self, bundle: B) -> Result<Entity, WorldError> {
        B::check(&self.schema)?;
        let entity = self.spawn()?;
        bundle.insert_into(self, entity);
        Ok(entity)
    }

    /// Destroys `entity` and its components; its handle goes stale for good.
    pub fn despawn(&mut self, entity: Entity) -> Result<(), WorldError> {
        if !self.contains(entity) {
            return Err(WorldError::NoSuchEntity(entity));
        }
        let slot = entity.index() as usize;
        let mut mask = self.entities.masks[slot];
        while mask != 0 {
            let column = mask.trailing_zeros() as usize;
            self.columns[column].clear(slot);
            self.holders[column] -= 1;
            mask &= mask - 1;
        }
        self.entities.release(entity);
        Ok(())
    }

    fn column_of<T: Pod>(&self) -> Result<usize, WorldError> {
        self.schema
            .component_index::<T>()
            .ok_or(WorldError::UnregisteredComponent(std::any::type_name::<T>()))
    }

    fn live_slot(&self, entity: Entity) -> Result<usize, WorldError> {
        if self.contains(entity) {
            Ok(entity.index() as usize)
        } else {
            Err(WorldError::NoSuchEntity(entity))
        }
    }

    /// Adds `value` as `entity`'s `T`, replacing any previous one.
    pub fn insert<T: Pod>(&mut self, entity: Entity, value: T) -> Result<(), WorldError> {
        let column = self.column_of::<T>()?;
        let slot = self.live_slot(entity)?;
        let values = &mut self.columns[column];
        values.hold(slot as u32);
        values.typed_mut::<T>(slot..slot + 1)[0] = value;
        let mask = &mut self.entities.masks[slot];
        if *mask & (1 << column) == 0 {
            *mask |= 1 << column;
            self.holders[column] += 1;
        }
        Ok(())
    }

    /// Removes and returns `entity`'s `T`.
    pub fn remove<T: Pod>(&mut self, entity: Entity) -> Result<T, WorldError> {
        let value = *self.get::<T>(entity)?;
        let column = self.column_of::<T>()?;
        let slot = entity.index() as usize;
        self.columns[column].clear(slot);
        self.entities.masks[slot] &= !(1 << column);
        self.holders[column] -= 1;
        Ok(value)
    }

    /// True when `entity` is alive and has a `T`.
    pub fn has<T: Pod>(&self, entity: Entity) -> bool {
        self.get::<T>(entity).is_ok()
    }

    /// `entity`'s `T`.
    pub fn get<T: Pod>(&self, entity: Entity) -> Result<&T, WorldError> {
        let column = self.checked_component::<T>(entity)?;
        let slot = entity.index() as usize;
        // A set mask bit means the column's window holds the slot.
        Ok(&self.columns[column].typed::<T>(slot..slot + 1)[0])
    }

    /// `entity`'s `T`, mutably.
    pub fn get_mut<T: Pod>(&mut self, entity: Entity) -> Result<&mut T, WorldError> {
        let column = self.checked_component::<T>(entity)?;
        let slot = entity.index() as usize;
        Ok(&mut self.columns[column].typed_mut::<T>(slot..slot + 1)[0])
    }

    fn checked_component<T: Pod>(&self, entity: Entity) -> Result<usize, WorldError> {
        let column = self.column_of::<T>()?;
        let slot = self.live_slot(entity)?;
        if self.entities.masks[slot] & (1 << column) == 0 {
            let component = self.schema.components()[column].name;
            return Err(WorldError::MissingComponent { entity, component });
        }
        Ok(column)
    }

    /// Iterates the entities that have every component of `Q` (e.g. `(&Pos, &Vel)`), in
    /// slot order, reading only.
    ///
    /// # Panics
    /// If `Q` names a type that is not in the schema: a bug in the game's code, not input.
    pub fn query<Q: ReadOnlyQuery>(&self) -> QueryIter<'_, Q> {
        let slots = self.entities.slots();
        let (window, cursors) = Q::borrow(&self.columns, &self.schema, slots);
        let every_slot = every_slot_matches(&self.entities, &self.holders, window.need);
        QueryIter::new(&self.entities, window, every_slot, cursors)
    }

    /// Iterates the entities that have every component of `Q` (e.g. `(&mut Pos, &Vel)`),
    /// in slot order, with mutable access where `Q` asks for it.
    ///
    /// # Panics
    /// If `Q` names an unregistered type or the same type twice: bugs in the game's code.
    pub fn query_mut<Q: Query>(&mut self) -> QueryIter<'_, Q> {
        let slots = self.entities.slots();
        let (window, cursors) = Q::borrow_mut(&mut self.columns, &self.schema, slots);
        let every_slot = every_slot_matches(&self.entities, &self.holders, window.need);
        QueryIter::new(&self.entities, window, every_slot, cursors)
    }
}

/// True when every slot holds a live entity with every component in `need`, so a query
/// may skip its per-slot mask test.
fn every_slot_matches(entities: &EntityTable, holders: &[u32], need: u64) -> bool {
    let slots = entities.slots() as u32;
    let mut rest = need;
    while rest != 0 {
        if holders[rest.trailing_zeros() as usize] != slots {
            return false;
        }
        rest &= rest - 1;
    }
    true
}

/// A tuple of components to spawn an entity with; see [`World::spawn_with`].
pub trait Bundle {
    /// Checks that every type is registered.
    fn check(schema: &Schema) -> Result<(), WorldError>;
    /// Inserts every component (types already checked, entity alive).
    fn insert_into(self, world: &mut World, entity: Entity);
}

macro_rules! bundle {
    ($($name:ident),+) => {
        impl<$($name: Pod),+> Bundle for ($($name,)+) {
            fn check(schema: &Schema) -> Result<(), WorldError> {
                $(
                    if schema.component_index::<$name>().is_none() {
                        return Err(WorldError::UnregisteredComponent(std::any::type_name::<$name>()));
                    }
                )+
                Ok(())
            }

            #[allow(non_snake_case)]
            fn insert_into(self, world: &mut World, entity: Entity) {
                let ($($name,)+) = self;
                // Cannot fail: the types were checked and the entity was just spawned.
                $( let _ = world.insert(entity, $name); )+
            }
        }
    };
}
bundle!(A);
bundle!(A, B);
bundle!(A, B, C);
bundle!(A, B, C, D);
bundle!(A, B, C, D, E);
bundle!(A, B, C, D, E, F);
