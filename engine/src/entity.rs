//! Entity handles and the table that hands them out.
//!
//! A slot's generation is odd while an entity lives in it and even while it is free, so a
//! handle (index + odd generation) matches its slot only while that very entity lives: a
//! stale handle is detected, never aliased. A slot whose generation would wrap is retired
//! for good. Free slots are reused last-freed-first, a pure function of the operations
//! applied, so every peer hands out the same handles.

use bytemuck::{Pod, Zeroable};
use std::fmt;

/// A handle to an entity: the slot index and the generation of the entity in that slot.
///
/// `Pod`, so components may refer to other entities. [`Entity::NONE`] never names a live
/// entity and serves as "no entity" inside components.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(C)]
pub struct Entity {
    index: u32,
    generation: u32,
}

impl Entity {
    /// A handle that never matches a live entity.
    pub const NONE: Entity = Entity {
        index: 0,
        generation: 0,
    };

    /// The handle with this slot index and generation (for tools that read frames as
    /// bytes, like snapshot diffs; games get handles from `spawn`).
    pub const fn from_parts(index: u32, generation: u32) -> Entity {
        Entity { index, generation }
    }

    /// The slot index (dense, small: columns are indexed by it).
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when this entity was spawned (always odd).
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// True for [`Entity::NONE`].
    pub const fn is_none(self) -> bool {
        self.generation == 0
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}v{}", self.index, self.generation)
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The columns a component mask names, lowest first.
pub(crate) fn columns_of(mask: u64) -> impl Iterator<Item = usize> {
    let mut bits = mask;
    std::iter::from_fn(move || {
        let column = (bits != 0).then(|| bits.trailing_zeros() as usize);
        bits &= bits.wrapping_sub(1);
        column
    })
}

/// The entity allocator: one generation and one component mask per slot, plus the free list.
#[derive(Debug, Default)]
pub(crate) struct EntityTable {
    /// Generation per slot: odd = alive, even = free, 0 below `len` = retired.
    pub(crate) generations: Vec<u32>,
    /// Component presence per slot, bit `i` for the schema's component `i`; 0 when free.
    pub(crate) masks: Vec<u64>,
    /// Free slot indices; the last one is reused first.
    pub(crate) free: Vec<u32>,
    /// Live entity count.
    pub(crate) live: u32,
    /// Most slots this table may ever hold.
    pub(crate) capacity: u32,
}

impl Clone for EntityTable {
    /// Reserves what the source reserved (its whole capacity when it was made by
    /// `Frame::new`, only its slots when restored from bytes), so a clone can be copied
    /// into again without reallocating.
    fn clone(&self) -> Self {
        let mut copy = EntityTable {
            generations: Vec::with_capacity(self.generations.capacity()),
            masks: Vec::with_capacity(self.masks.capacity()),
            free: Vec::with_capacity(self.free.capacity()),
            live: 0,
            capacity: self.capacity,
        };
        copy.clone_from(self);
        copy
    }

    fn clone_from(&mut self, source: &Self) {
        self.generations.clone_from(&source.generations);
        self.masks.clone_from(&source.masks);
        self.free.clone_from(&source.free);
        self.live = source.live;
        self.capacity = source.capacity;
    }
}

impl EntityTable {
    /// An empty table whose buffers are reserved for `capacity` slots up front, so neither
    /// spawning nor copying into it ever reallocates.
    pub(crate) fn with_capacity(capacity: u32) -> EntityTable {
        let slots = capacity as usize;
        EntityTable {
            generations: Vec::with_capacity(slots),
            masks: Vec::with_capacity(slots),
            free: Vec::with_capacity(slots),
            live: 0,
            capacity,
        }
    }

    /// Number of slots in use or free (the high-water mark; columns have this length).
    pub(crate) fn slots(&self) -> usize {
        self.generations.len()
    }

    /// True when `entity` names the entity currently living in its slot.
    pub(crate) fn contains(&self, entity: Entity) -> bool {
        entity.generation & 1 == 1
            && self.generations.get(entity.index as usize) == Some(&entity.generation)
    }

    /// Takes a slot for a new entity, or `None` when all `capacity` slots are in use.
    pub(crate) fn allocate(&mut self) -> Option<Entity> {
        if let Some(index) = self.free.pop() {
            let generation = &mut self.generations[index as usize];
            *generation += 1;
            self.live += 1;
            return Some(Entity::from_parts(index, *generation));
        }
        if self.generations.len() >= self.capacity as usize {
            return None;
        }
        let index = self.generations.len() as u32;
        self.generations.push(1);
        self.masks.push(0);
        self.live += 1;
        Some(Entity::from_parts(index, 1))
    }

    /// Frees the slot of a live `entity` (checked by the caller).
    pub(crate) fn release(&mut self, entity: Entity) {
        let index = entity.index as usize;
        self.masks[index] = 0;
        self.live -= 1;
        if entity.generation == u32::MAX {
            // The next generation would wrap and could alias an ancient handle: retire.
            self.generations[index] = 0;
        } else {
            self.generations[index] = entity.generation + 1;
            self.free.push(entity.index);
        }
    }

    /// Handles of every live entity, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Entity> + '_ {
        self.generations
            .iter()
            .enumerate()
            .filter(|(_, generation)| *generation & 1 == 1)
            .map(|(index, &generation)| Entity::from_parts(index as u32, generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(table: &mut EntityTable) -> Entity {
        table.allocate().expect("capacity")
    }

    #[test]
    fn freed_slots_are_reused_last_first_with_new_generations() {
        let mut table = EntityTable::with_capacity(8);
        let (a, b) = (spawn(&mut table), spawn(&mut table));
        table.release(a);
        table.release(b);
        let c = spawn(&mut table);
        assert_eq!((c.index(), c.generation()), (b.index(), 3));
        assert!(!table.contains(b) && table.contains(c) && !table.contains(a));
        assert_eq!(table.live, 1);
    }

    #[test]
    fn capacity_is_a_hard_limit() {
        let mut table = EntityTable::with_capacity(2);
        spawn(&mut table);
        spawn(&mut table);
        assert!(table.allocate().is_none());
    }

    #[test]
    fn slot_is_retired_instead_of_wrapping_its_generation() {
        let mut table = EntityTable::with_capacity(4);
        let a = spawn(&mut table);
        table.generations[a.index() as usize] = u32::MAX;
        let old = Entity::from_parts(a.index(), u32::MAX);
        table.release(old);
        assert!(table.free.is_empty(), "retired slot is never reused");
        let b = spawn(&mut table);
        assert_ne!(b.index(), a.index());
        assert!(!table.contains(old) && !table.contains(Entity::from_parts(a.index(), 1)));
    }

    #[test]
    fn none_never_matches() {
        let mut table = EntityTable::with_capacity(4);
        spawn(&mut table);
        assert!(!table.contains(Entity::NONE));
    }
}
