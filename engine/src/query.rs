//! Queries: walk the entities that have a set of components, in slot order.
//!
//! `&T` in a query reads column `T`, `&mut T` writes it; tuples combine up to six. The
//! iterator walks every named column and the entity masks side by side, one slot at a
//! time, and yields the slots whose mask holds every named component.

use bytemuck::Pod;
use std::iter::{Enumerate, Zip};
use std::ops::Range;
use std::slice;

#[doc(hidden)]
pub use crate::column::Column;
use crate::entity::EntityTable;
use crate::{Entity, Schema};

/// The slots a query walks: where every named column holds values, and the component
/// mask an entity there needs.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Components an entity must hold.
    pub need: u64,
    /// First slot.
    pub start: usize,
    /// One past the last slot.
    pub end: usize,
}

impl Window {
    /// The slots every column in `indices` holds, within `0..slots`.
    fn of(columns: &[Column], indices: &[usize], slots: usize) -> Window {
        let mut window = Window {
            need: 0,
            start: 0,
            end: slots,
        };
        for &index in indices {
            let held = columns[index].window();
            window.need |= 1 << index;
            window.start = window.start.max(held.start as usize);
            window.end = window.end.min(held.end as usize);
        }
        window.end = window.end.max(window.start);
        window
    }

    fn slots(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// One element of a query: `&T` or `&mut T` for a registered component `T`.
pub trait Fetch {
    /// The component type.
    type Component: Pod;
    /// What the element yields per entity.
    type Item<'a>;
    /// Walks the column one slot at a time.
    type Cursor<'a>: Iterator<Item = Self::Item<'a>>;
    /// A cursor over `column`'s values for `slots` (which the column holds).
    fn cursor_mut(column: &mut Column, slots: Range<usize>) -> Self::Cursor<'_>;
}

/// A [`Fetch`] that only reads, so it works through `&World`.
pub trait ReadOnlyFetch: Fetch {
    /// A cursor over `column`'s values for `slots`.
    fn cursor(column: &Column, slots: Range<usize>) -> Self::Cursor<'_>;
}

impl<T: Pod> Fetch for &T {
    type Component = T;
    type Item<'a> = &'a T;
    type Cursor<'a> = slice::Iter<'a, T>;
    fn cursor_mut(column: &mut Column, slots: Range<usize>) -> Self::Cursor<'_> {
        column.typed::<T>(slots).iter()
    }
}

impl<T: Pod> ReadOnlyFetch for &T {
    fn cursor(column: &Column, slots: Range<usize>) -> Self::Cursor<'_> {
        column.typed::<T>(slots).iter()
    }
}

impl<T: Pod> Fetch for &mut T {
    type Component = T;
    type Item<'a> = &'a mut T;
    type Cursor<'a> = slice::IterMut<'a, T>;
    fn cursor_mut(column: &mut Column, slots: Range<usize>) -> Self::Cursor<'_> {
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
    /// Borrows the named columns over the window they all hold.
    fn borrow_mut<'a>(
        columns: &'a mut [Column],
        schema: &Schema,
        slots: usize,
    ) -> (Window, Self::Cursors<'a>);
    /// Turns the zipped cursors' item into the query's item.
    fn flatten<'a>(zipped: <Self::Cursors<'a> as Iterator>::Item) -> Self::Item<'a>;
}

/// A [`Query`] that only reads.
pub trait ReadOnlyQuery: Query {
    /// Borrows the named columns shared over the window they all hold.
    fn borrow<'a>(
        columns: &'a [Column],
        schema: &Schema,
        slots: usize,
    ) -> (Window, Self::Cursors<'a>);
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
            fn borrow_mut<'a>(columns: &'a mut [Column], schema: &Schema, slots: usize) -> (Window, Self::Cursors<'a>) {
                let index = column_index::<Self>(schema);
                let window = Window::of(columns, &[index], slots);
                (window, <Self as Fetch>::cursor_mut(&mut columns[index], window.slots()))
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
    ) -> (Window, Self::Cursors<'a>) {
        let index = column_index::<Self>(schema);
        let window = Window::of(columns, &[index], slots);
        (
            window,
            <Self as ReadOnlyFetch>::cursor(&columns[index], window.slots()),
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
            fn borrow_mut<'a>(columns: &'a mut [Column], schema: &Schema, slots: usize) -> (Window, Self::Cursors<'a>) {
                let indices = [$(column_index::<$name>(schema)),+];
                let window = Window::of(columns, &indices, slots);
                let [$($name),+] = columns
                    .get_disjoint_mut(indices)
                    .unwrap_or_else(|_| panic!("a query names the same component twice"));
                $( let $name = $name::cursor_mut($name, window.slots()); )+
                (window, zip_cursors!($($name),+))
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
            fn borrow<'a>(columns: &'a [Column], schema: &Schema, slots: usize) -> (Window, Self::Cursors<'a>) {
                let indices = [$(column_index::<$name>(schema)),+];
                let window = Window::of(columns, &indices, slots);
                let [$($name),+] = indices;
                $( let $name = $name::cursor(&columns[$name], window.slots()); )+
                (window, zip_cursors!($($name),+))
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
    /// Slot of the window's first entry.
    first_slot: usize,
    /// Components a slot must hold; 0 when every slot holds them (the test always passes).
    need: u64,
}

impl<'a, Q: Query> QueryIter<'a, Q> {
    pub(crate) fn new(
        entities: &'a EntityTable,
        window: Window,
        every_slot: bool,
        cursors: Q::Cursors<'a>,
    ) -> Self {
        let slots = window.slots();
        let meta = entities.masks[slots.clone()]
            .iter()
            .zip(entities.generations[slots].iter());
        QueryIter {
            slots: meta.zip(cursors).enumerate(),
            first_slot: window.start,
            need: if every_slot { 0 } else { window.need },
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
        let slot = (self.first_slot + index) as u32;
        Some((Entity::from_parts(slot, *generation), Q::flatten(zipped)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.slots.size_hint().1)
    }
}
