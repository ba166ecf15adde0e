//! `World`: the entities of a frame and their components.

use bytemuck::Pod;
use std::sync::Arc;

use crate::column::Column;
use crate::commands::Commands;
use crate::entity::{EntityTable, columns_of};
use crate::query::{Filter, Query, QueryIter, ReadOnlyQuery};
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
    /// A mutable query names one component type twice (it would alias).
    #[error("a query names the same component type twice")]
    QueryAliases,
    /// Commands recorded for another schema's world.
    #[error("commands recorded for schema {commands} applied to a world of schema {world}")]
    SchemaMismatch {
        /// The commands' schema.
        commands: crate::SchemaHash,
        /// The world's schema.
        world: crate::SchemaHash,
    },
    /// [`World::get_many_mut`] names one entity twice (it would alias).
    #[error("entity {0} is named twice")]
    SameEntityTwice(Entity),
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
        for column in columns_of(self.entities.masks[slot]) {
            self.columns[column].clear(slot);
            self.holders[column] -= 1;
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
        self.live_slot(entity)?;
        self.insert_bytes(entity, column, bytemuck::bytes_of(&value));
        Ok(())
    }

    /// Writes `value` (one `column` value's bytes) as live `entity`'s component.
    pub(crate) fn insert_bytes(&mut self, entity: Entity, column: usize, value: &[u8]) {
        let slot = entity.index() as usize;
        let values = &mut self.columns[column];
        values.hold(slot as u32);
        if let Some(range) = values.value_range(slot) {
            values.bytes_mut()[range].copy_from_slice(value);
        }
        let mask = &mut self.entities.masks[slot];
        if *mask & (1 << column) == 0 {
            *mask |= 1 << column;
            self.holders[column] += 1;
        }
    }

    /// Removes live `entity`'s component in `column`, if it has one.
    pub(crate) fn remove_column(&mut self, entity: Entity, column: usize) {
        let slot = entity.index() as usize;
        if self.entities.masks[slot] & (1 << column) != 0 {
            self.columns[column].clear(slot);
            self.entities.masks[slot] &= !(1 << column);
            self.holders[column] -= 1;
        }
    }

    /// Removes and returns `entity`'s `T`.
    pub fn remove<T: Pod>(&mut self, entity: Entity) -> Result<T, WorldError> {
        let value = *self.get::<T>(entity)?;
        self.remove_column(entity, self.column_of::<T>()?);
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

    /// Iterates the entities that have every component of `Q` (e.g. `(&Pos, &Vel)`, or
    /// `(&Pos, Option<&Vel>)`), in slot order, reading only.
    ///
    /// ```
    /// # use bytemuck::{Pod, Zeroable};
    /// # use tickstep_engine::{Frame, Schema, WorldError};
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Hp(i32);
    /// # let schema = Schema::builder::<()>("doc", 1).component::<Hp>("hp").build()?;
    /// # let mut frame = Frame::new(schema, 8, ())?;
    /// frame.world_mut().spawn_with((Hp(3),))?;
    /// let total: i32 = frame.world().query::<&Hp>()?.map(|(_, hp)| hp.0).sum();
    /// assert_eq!(total, 3);
    /// // A type the schema does not register is an error, not a panic.
    /// assert!(matches!(frame.world().query::<&u64>(), Err(WorldError::UnregisteredComponent(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query<Q: ReadOnlyQuery>(&self) -> Result<QueryIter<'_, Q>, WorldError> {
        self.query_filtered::<Q, ()>()
    }

    /// Like [`World::query`], keeping only the entities that pass `F`: [`With<T>`],
    /// [`Without<T>`] or a tuple of them (e.g. `(&Pos, Without<Dead>)`).
    ///
    /// [`With<T>`]: crate::query::With
    /// [`Without<T>`]: crate::query::Without
    pub fn query_filtered<Q: ReadOnlyQuery, F: Filter>(
        &self,
    ) -> Result<QueryIter<'_, Q>, WorldError> {
        let named = Q::columns(&self.schema)?;
        let mut window = F::window(&self.columns, &self.schema, self.entities.slots())?;
        named.narrow(&mut window, &self.columns);
        let cursors = Q::borrow(&self.columns, &named, window.slots(), &self.entities.masks);
        Ok(QueryIter::new(
            &self.entities,
            &self.holders,
            window,
            cursors,
        ))
    }

    /// Iterates the entities that have every component of `Q` (e.g. `(&mut Pos, &Vel)`),
    /// in slot order, with mutable access where `Q` asks for it. Naming one type twice
    /// is [`WorldError::QueryAliases`].
    pub fn query_mut<Q: Query>(&mut self) -> Result<QueryIter<'_, Q>, WorldError> {
        self.query_filtered_mut::<Q, ()>()
    }

    /// Like [`World::query_mut`], keeping only the entities that pass `F`.
    ///
    /// ```
    /// # use bytemuck::{Pod, Zeroable};
    /// # use tickstep_engine::{Frame, Schema, query::Without};
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Hp(i32);
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Shielded(u8);
    /// # let schema = Schema::builder::<()>("doc", 1)
    /// #     .component::<Hp>("hp").component::<Shielded>("shielded").build()?;
    /// # let mut frame = Frame::new(schema, 8, ())?;
    /// let world = frame.world_mut();
    /// let bare = world.spawn_with((Hp(3),))?;
    /// let safe = world.spawn_with((Hp(3), Shielded(1)))?;
    /// for (_, hp) in world.query_filtered_mut::<&mut Hp, Without<Shielded>>()? {
    ///     hp.0 -= 1;
    /// }
    /// assert_eq!((world.get::<Hp>(bare)?.0, world.get::<Hp>(safe)?.0), (2, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn query_filtered_mut<Q: Query, F: Filter>(
        &mut self,
    ) -> Result<QueryIter<'_, Q>, WorldError> {
        let named = Q::columns(&self.schema)?;
        let mut window = F::window(&self.columns, &self.schema, self.entities.slots())?;
        named.narrow(&mut window, &self.columns);
        let cursors = Q::borrow_mut(
            &mut self.columns,
            &named,
            window.slots(),
            &self.entities.masks,
        )?;
        Ok(QueryIter::new(
            &self.entities,
            &self.holders,
            window,
            cursors,
        ))
    }

    /// The `T` of each of `entities` at once, mutably: e.g. to move a value from one
    /// entity to another. Naming an entity twice is [`WorldError::SameEntityTwice`].
    ///
    /// ```
    /// # use bytemuck::{Pod, Zeroable};
    /// # use tickstep_engine::{Frame, Schema};
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Gold(u32);
    /// # let schema = Schema::builder::<()>("doc", 1).component::<Gold>("gold").build()?;
    /// # let mut frame = Frame::new(schema, 8, ())?;
    /// let world = frame.world_mut();
    /// let (a, b) = (world.spawn_with((Gold(5),))?, world.spawn_with((Gold(0),))?);
    /// let [from, to] = world.get_many_mut::<Gold, 2>([a, b])?;
    /// to.0 += std::mem::take(&mut from.0);
    /// assert_eq!(world.get::<Gold>(b)?.0, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many_mut<T: Pod, const N: usize>(
        &mut self,
        entities: [Entity; N],
    ) -> Result<[&mut T; N], WorldError> {
        let column = self.column_of::<T>()?;
        for (i, &entity) in entities.iter().enumerate() {
            self.checked_component::<T>(entity)?;
            if entities[..i].contains(&entity) {
                return Err(WorldError::SameEntityTwice(entity));
            }
        }
        let values = &mut self.columns[column];
        let held = values.window();
        let offsets = entities.map(|entity| (entity.index() - held.start) as usize);
        let slots = held.start as usize..held.end as usize;
        values
            .typed_mut::<T>(slots)
            .get_disjoint_mut(offsets)
            .map_err(|_| WorldError::SameEntityTwice(entities[0]))
    }
}

/// A tuple of components to spawn an entity with; see [`World::spawn_with`].
pub trait Bundle {
    /// Checks that every type is registered.
    fn check(schema: &Schema) -> Result<(), WorldError>;
    /// Inserts every component (types already checked, entity alive).
    fn insert_into(self, world: &mut World, entity: Entity);
    /// Records inserting every component into the entity a spawn command just created.
    fn record(self, commands: &mut Commands);
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

            #[allow(non_snake_case)]
            fn record(self, commands: &mut Commands) {
                let ($($name,)+) = self;
                $( commands.insert_spawned($name); )+
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
