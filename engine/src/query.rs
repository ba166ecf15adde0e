//! Queries: walk the entities that have a set of components, in slot order.
//!
//! `&T` in a query reads column `T`, `&mut T` writes it; tuples combine up to six. The
//! iterator walks every named column and the entity masks side by side, one slot at a
//! time, and yields the slots whose mask holds every named component.

use bytemuck::Pod;
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
    /// The column cursors, advanced together.
    type Cursors<'a>;
    /// Borrows the named columns; returns the component mask an entity needs.
    fn borrow_mut<'a>(
        columns: &'a mut [Column],
        schema: &Schema,
        slots: usize,
    ) -> (u64, Self::Cursors<'a>);
    /// Advances every cursor by one slot.
    fn advance<'a>(cursors: &mut Self::Cursors<'a>) -> Option<Self::Item<'a>>;
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
            fn advance<'a>(cursors: &mut Self::Cursors<'a>) -> Option<Self::Item<'a>> {
                cursors.next()
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

macro_rules! tuple_query {
    ($($name:ident),+) => {
        impl<$($name: Fetch),+> Query for ($($name,)+) {
            type Item<'a> = ($($name::Item<'a>,)+);
            type Cursors<'a> = ($($name::Cursor<'a>,)+);

            #[allow(non_snake_case)]
            fn borrow_mut<'a>(columns: &'a mut [Column], schema: &Schema, slots: usize) -> (u64, Self::Cursors<'a>) {
                let indices = [$(column_index::<$name>(schema)),+];
                let need = indices.iter().fold(0u64, |mask, index| mask | 1 << index);
                let [$($name),+] = columns
                    .get_disjoint_mut(indices)
                    .unwrap_or_else(|_| panic!("a query names the same component twice"));
                (need, ($($name::cursor_mut($name, slots),)+))
            }

            #[allow(non_snake_case)]
            fn advance<'a>(cursors: &mut Self::Cursors<'a>) -> Option<Self::Item<'a>> {
                let ($($name,)+) = cursors;
                Some(($($name.next()?,)+))
            }
        }

        impl<$($name: ReadOnlyFetch),+> ReadOnlyQuery for ($($name,)+) {
            fn borrow<'a>(columns: &'a [Column], schema: &Schema, slots: usize) -> (u64, Self::Cursors<'a>) {
                let mut need = 0u64;
                let cursors = ($({
                    let index = column_index::<$name>(schema);
                    need |= 1 << index;
                    $name::cursor(&columns[index], slots)
                },)+);
                (need, cursors)
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

/// Iterator over the entities matching a query; see [`crate::World::query`].
pub struct QueryIter<'a, Q: Query> {
    masks: slice::Iter<'a, u64>,
    generations: slice::Iter<'a, u32>,
    next_index: u32,
    need: u64,
    cursors: Q::Cursors<'a>,
}

impl<'a, Q: Query> QueryIter<'a, Q> {
    pub(crate) fn new(entities: &'a EntityTable, need: u64, cursors: Q::Cursors<'a>) -> Self {
        QueryIter {
            masks: entities.masks.iter(),
            generations: entities.generations.iter(),
            next_index: 0,
            need,
            cursors,
        }
    }
}

impl<'a, Q: Query> Iterator for QueryIter<'a, Q> {
    type Item = (Entity, Q::Item<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mask = *self.masks.next()?;
            let generation = *self.generations.next()?;
            let item = Q::advance(&mut self.cursors)?;
            let index = self.next_index;
            self.next_index += 1;
            if mask & self.need == self.need {
                return Some((Entity::new(index, generation), item));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.masks.len()))
    }
}
