//! Queries: walk the entities that have a set of components, in slot order.
//!
//! `&T` in a query reads column `T`, `&mut T` writes it; tuples combine up to six. The
//! iterator walks every named column and the entity masks side by side, one slot at a
//! time, and yields the slots whose mask holds every named component.

use bytemuck::Pod;
use std::iter::{Enumerate, Zip};
use std::slice;

#[doc(hidden)]
pub use crate::column::Column;
use crate::entity::EntityTable;
use crate::{Entity, Schema};

/// One element of a query: `&T` or `&mut T` for a registered component `T`.
pub trait Fetch {
    /// The component type.
    type Component: Pod;
    /// What the element yields per entity.
    type Item<'a>;
    /// Walks the column one slot at a time.
    type Cursor<'a>: Iterator<Item = Self::Item<'a>>;
    /// A cursor over the first `slots` values of `column` (of type `Self::Component`).
    fn cursor_mut(column: &mut Column, slots: usize) -> Self::Cursor<'_>;
}

/// A [`Fetch`] that only reads, so it works through `&World`.
pub trait ReadOnlyFetch: Fetch {
    /// A cursor over the first `slots` values of `column`.
    fn cursor(column: &Column, slots: usize) -> Self::Cursor<'_>;
}

impl<T: Pod> Fetch for &T {
    type Component = T;
    type Item<'a> = &'a T;
    type Cursor<'a> = slice::Iter<'a, T>;
    fn cursor_mut(column: &mut Column, slots: usize) -> Self::Cursor<'_> {
        column.typed::<T>(slots).iter()
    }
}

impl<T: Pod> ReadOnlyFetch for &T {
    fn cursor(column: &Column, slots: usize) -> Self::Cursor<'_> {
        column.typed::<T>(slots).iter()
    }
}

impl<T: Pod> Fetch for &mut T {
    type Component = T;
    type Item<'a> = &'a mut T;
    type Cursor<'a> = slice::IterMut<'a, T>;
    fn cursor_mut(column: &mut Column, slots: usize) -> Self::Cursor<'_> {
        column.typed_mut::<T>(slots).iter_mut()
    }
}

/// A set of components to iterate: a [`Fetch`] or a tuple of them.
pub trait Query {
    /// What the iterator yields per entity (besides the entity).
    type Item<'a>;
    /// The column cursors zipped together (slice iterators, so the zip compiles to one
    /// index walking every column).
    type Cursors<'a>: Iterator;
    /// Borrows the named columns; returns the component mask an entity needs.
    fn borrow_mut<'a>(
        columns: &'a mut [Column],
        schema: &Schema,
        slots: usize,
    ) -> (u64, Self::Cursors<'a>);
    /// Turns the zipped cursors' item into the query's item.
    fn flatten<'a>(zipped: <Self::Cursors<'a> as Iterator>::Item) -> Self::Item<'a>;
}

/// A [`Query`] that only reads.
pub trait ReadOnlyQuery: Query {
    /// Borrows the named columns shared; returns the component mask an entity needs.
    fn borrow<'a>(columns: &'a [Column], schema: &Schema, slots: usize)
    -> (u64, Self::Cursors<'a>);
}

fn column_index<F: Fetch>(schema: &Schema) -> usize {
    schema.component_index::<F::Component>().unwrap_or_else(|| {
        panic!(
            "query names component type {}, which is not registered in the schema",
            std::any::type_name::<F::Component>()
        )
    })
}

macro_rules! single_fetch_query {
    ($($fetch:ty),*) => {$(
        impl<'q, T: Pod> Query for $fetch {
            type Item<'a> = <Self as Fetch>::Item<'a>;
            type Cursors<'a> = <Self as Fetch>::Cursor<'a>;
            fn borrow_mut<'a>(columns: &'a mut [Column], schema: &Schema, slots: usize) -> (u64, Self::Cursors<'a>) {
                let index = column_index::<Self>(schema);
                (1 << index, <Self as Fetch>::cursor_mut(&mut columns[index], slots))
            }
            #[inline(always)]
            fn flatten<'a>(zipped: Self::Item<'a>) -> Self::Item<'a> {
                zipped
            }
        }
    )*};
}
single_fetch_query!(&'q T, &'q mut T);

impl<T: Pod> ReadOnlyQuery for &T {
    fn borrow<'a>(
        columns: &'a [Column],
        schema: &Schema,
        slots: usize,
    ) -> (u64, Self::Cursors<'a>) {
        let index = column_index::<Self>(schema);
        (
            1 << index,
            <Self as ReadOnlyFetch>::cursor(&columns[index], slots),
        )
    }
}

/// The nested `Zip` type of the cursors of fetches `A, B, C…`: `Zip<Zip<C, B>, A>`.
macro_rules! zipped_cursors {
    ($lt:lifetime; $only:ident) => { $only::Cursor<$lt> };
    ($lt:lifetime; $first:ident, $($rest:ident),+) => {
        Zip<zipped_cursors!($lt; $($rest),+), $first::Cursor<$lt>>
    };
}

/// Zips cursor values in the nesting of `zipped_cursors!`.
macro_rules! zip_cursors {
    ($only:ident) => { $only };
    ($first:ident, $($rest:ident),+) => { zip_cursors!($($rest),+).zip($first) };
}

/// The pattern matching an item of the nested zip.
macro_rules! zipped_item {
    ($only:ident) => { $only };
    ($first:ident, $($rest:ident),+) => { (zipped_item!($($rest),+), $first) };
}

macro_rules! tuple_query {
    ($($name:ident),+) => {
        impl<$($name: Fetch),+> Query for ($($name,)+) {
            type Item<'a> = ($($name::Item<'a>,)+);
            type Cursors<'a> = zipped_cursors!('a; $($name),+);

            #[allow(non_snake_case)]
            fn borrow_mut<'a>(columns: &'a mut [Column], schema: &Schema, slots: usize) -> (u64, Self::Cursors<'a>) {
                let indices = [$(column_index::<$name>(schema)),+];
                let need = indices.iter().fold(0u64, |mask, index| mask | 1 << index);
                let [$($name),+] = columns
                    .get_disjoint_mut(indices)
                    .unwrap_or_else(|_| panic!("a query names the same component twice"));
                $( let $name = $name::cursor_mut($name, slots); )+
                (need, zip_cursors!($($name),+))
            }

            #[allow(non_snake_case)]
            #[inline(always)]
    fn flatten<'a>(zipped: <Self::Cursors<'a> as Iterator>::Item) -> Self::Item<'a> {
                let zipped_item!($($name),+) = zipped;
                ($($name,)+)
            }
        }

        impl<$($name: ReadOnlyFetch),+> ReadOnlyQuery for ($($name,)+) {
            #[allow(non_snake_case)]
            fn borrow<'a>(columns: &'a [Column], schema: &Schema, slots: usize) -> (u64, Self::Cursors<'a>) {
                let mut need = 0u64;
                $(
                    let index = column_index::<$name>(schema);
                    need |= 1 << index;
                    let $name = $name::cursor(&columns[index], slots);
                )+
                (need, zip_cursors!($($name),+))
            }
        }
    };
}
tuple_query!(A);
tuple_query!(A, B);
tuple_query!(A, B, C);
tuple_query!(A, B, C, D);
tuple_query!(A, B, C, D, E);
tuple_query!(A, B, C, D, E, F);

/// Each slot's component mask and generation, side by side.
type SlotMeta<'a> = Zip<slice::Iter<'a, u64>, slice::Iter<'a, u32>>;

/// Iterator over the entities matching a query; see [`crate::World::query`].
pub struct QueryIter<'a, Q: Query> {
    /// Masks, generations and the query's columns zipped: slice iterators only, so the
    /// zip compiles to one index walking them all.
    slots: Enumerate<Zip<SlotMeta<'a>, Q::Cursors<'a>>>,
    /// Components a slot must hold; 0 when every slot holds them (the test always passes).
    need: u64,
}

impl<'a, Q: Query> QueryIter<'a, Q> {
    pub(crate) fn new(
        entities: &'a EntityTable,
        need: u64,
        every_slot: bool,
        cursors: Q::Cursors<'a>,
    ) -> Self {
        let meta = entities.masks.iter().zip(entities.generations.iter());
        QueryIter {
            slots: meta.zip(cursors).enumerate(),
            need: if every_slot { 0 } else { need },
        }
    }
}

impl<'a, Q: Query> Iterator for QueryIter<'a, Q> {
    type Item = (Entity, Q::Item<'a>);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let need = self.need;
        let (index, ((_, generation), zipped)) = self
            .slots
            .find(|(_, ((mask, _), _))| **mask & need == need)?;
        Some((
            Entity::from_parts(index as u32, *generation),
            Q::flatten(zipped),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.slots.size_hint().1)
    }
}
