//! Queries: walk the entities that have a set of components, in slot order.
//!
//! A query names what it reads and writes: `&T` reads column `T`, `&mut T` writes it,
//! `Option<&T>` and `Option<&mut T>` yield the component when the entity has it (and do
//! not require it); tuples combine up to six. A [`Filter`] narrows the entities further
//! without borrowing anything: [`With<T>`], [`Without<T>`], or a tuple of them.
//!
//! The iterator walks every named column and the entity masks side by side, one slot at a
//! time, and yields the live slots whose mask holds every required component and none
//! of the excluded ones.

use bytemuck::Pod;
use std::iter::{Enumerate, Zip};
use std::marker::PhantomData;
use std::ops::Range;
use std::slice;

#[doc(hidden)]
pub use crate::column::Column;
use crate::entity::{EntityTable, columns_of};
use crate::{Entity, Schema, WorldError};

/// The slots a query walks: where every required column holds values, and the component
/// masks an entity there must hold and must not hold.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Components an entity must hold.
    pub need: u64,
    /// Components an entity must not hold.
    pub exclude: u64,
    /// First slot.
    pub start: usize,
    /// One past the last slot.
    pub end: usize,
}

impl Window {
    /// Every slot in `0..slots`, requiring nothing.
    fn all(slots: usize) -> Window {
        Window {
            need: 0,
            exclude: 0,
            start: 0,
            end: slots,
        }
    }

    /// Requires column `index`: only slots it holds can match.
    fn require(&mut self, columns: &[Column], index: usize) {
        let held = columns[index].window();
        self.need |= 1 << index;
        self.start = self.start.max(held.start as usize);
        self.end = self.end.min(held.end as usize).max(self.start);
    }

    /// The slots walked.
    pub fn slots(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Where a cursor walks: the query's slots, and the entity masks over them (which
/// optional fetches read to tell whether an entity holds their component).
#[derive(Clone, Debug)]
pub struct Walk<'a> {
    /// The slots.
    pub slots: Range<usize>,
    /// Each slot's component mask.
    pub masks: &'a [u64],
    /// The fetched component's bit in a mask.
    pub bit: u64,
}

/// One element of a query: `&T`, `&mut T`, `Option<&T>` or `Option<&mut T>` for a
/// registered component `T`.
pub trait Fetch {
    /// The component type.
    type Component: Pod;
    /// What the element yields per entity.
    type Item<'a>;
    /// Walks the column one slot at a time.
    type Cursor<'a>: Iterator<Item = Self::Item<'a>>;
    /// True when an entity must hold the component to match.
    const REQUIRED: bool;
    /// A cursor over `column`'s values along `walk`.
    fn cursor_mut<'a>(column: &'a mut Column, walk: Walk<'a>) -> Self::Cursor<'a>;
}

/// A [`Fetch`] that only reads, so it works through `&World`.
pub trait ReadOnlyFetch: Fetch {
    /// A cursor over `column`'s values along `walk`.
    fn cursor<'a>(column: &'a Column, walk: Walk<'a>) -> Self::Cursor<'a>;
}

impl<T: Pod> Fetch for &T {
    type Component = T;
    type Item<'a> = &'a T;
    type Cursor<'a> = slice::Iter<'a, T>;
    const REQUIRED: bool = true;
    fn cursor_mut<'a>(column: &'a mut Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        column.typed::<T>(walk.slots).iter()
    }
}

impl<T: Pod> ReadOnlyFetch for &T {
    fn cursor<'a>(column: &'a Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        column.typed::<T>(walk.slots).iter()
    }
}

impl<T: Pod> Fetch for &mut T {
    type Component = T;
    type Item<'a> = &'a mut T;
    type Cursor<'a> = slice::IterMut<'a, T>;
    const REQUIRED: bool = true;
    fn cursor_mut<'a>(column: &'a mut Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        column.typed_mut::<T>(walk.slots).iter_mut()
    }
}

/// Cursor of an optional fetch: the values of the slots its column holds, `None` for
/// slots outside them or whose entity lacks the component.
pub struct Optional<'a, V> {
    masks: slice::Iter<'a, u64>,
    bit: u64,
    slot: usize,
    held: Range<usize>,
    values: V,
}

impl<'a, V> Optional<'a, V> {
    /// The part of `walk` the column's `held` window covers, to cut the values from.
    fn held(column: &Column, walk: &Walk<'_>) -> Range<usize> {
        let held = column.window();
        let start = walk.slots.start.max(held.start as usize);
        let end = walk.slots.end.min(held.end as usize).max(start);
        start..end
    }

    fn new(walk: Walk<'a>, held: Range<usize>, values: V) -> Self {
        Optional {
            masks: walk.masks.iter(),
            bit: walk.bit,
            slot: walk.slots.start,
            held,
            values,
        }
    }
}

impl<V: Iterator> Iterator for Optional<'_, V> {
    type Item = Option<V::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let mask = *self.masks.next()?;
        let slot = self.slot;
        self.slot += 1;
        let value = if self.held.contains(&slot) {
            self.values.next()
        } else {
            None
        };
        Some(value.filter(|_| mask & self.bit != 0))
    }
}

impl<T: Pod> Fetch for Option<&T> {
    type Component = T;
    type Item<'a> = Option<&'a T>;
    type Cursor<'a> = Optional<'a, slice::Iter<'a, T>>;
    const REQUIRED: bool = false;
    fn cursor_mut<'a>(column: &'a mut Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        <Self as ReadOnlyFetch>::cursor(column, walk)
    }
}

impl<T: Pod> ReadOnlyFetch for Option<&T> {
    fn cursor<'a>(column: &'a Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        let held = Optional::<()>::held(column, &walk);
        let values = column.typed::<T>(held.clone()).iter();
        Optional::new(walk, held, values)
    }
}

impl<T: Pod> Fetch for Option<&mut T> {
    type Component = T;
    type Item<'a> = Option<&'a mut T>;
    type Cursor<'a> = Optional<'a, slice::IterMut<'a, T>>;
    const REQUIRED: bool = false;
    fn cursor_mut<'a>(column: &'a mut Column, walk: Walk<'a>) -> Self::Cursor<'a> {
        let held = Optional::<()>::held(column, &walk);
        let values = column.typed_mut::<T>(held.clone()).iter_mut();
        Optional::new(walk, held, values)
    }
}

/// A set of components to iterate: a [`Fetch`] or a tuple of them.
pub trait Query {
    /// What the iterator yields per entity (besides the entity).
    type Item<'a>;
    /// The column cursors zipped together (slice iterators, so the zip compiles to one
    /// index walking every column).
    type Cursors<'a>: Iterator;
    /// The columns named, in order (an error for a type the schema does not register).
    fn columns(schema: &Schema) -> Result<Columns, WorldError>;
    /// Borrows the named columns along `walk`.
    fn borrow_mut<'a>(
        columns: &'a mut [Column],
        named: &Columns,
        slots: Range<usize>,
        masks: &'a [u64],
    ) -> Result<Self::Cursors<'a>, WorldError>;
    /// Turns the zipped cursors' item into the query's item.
    fn flatten<'a>(zipped: <Self::Cursors<'a> as Iterator>::Item) -> Self::Item<'a>;
}

/// A [`Query`] that only reads.
pub trait ReadOnlyQuery: Query {
    /// Borrows the named columns shared along `walk`.
    fn borrow<'a>(
        columns: &'a [Column],
        named: &Columns,
        slots: Range<usize>,
        masks: &'a [u64],
    ) -> Self::Cursors<'a>;
}

/// The column of `F`'s component and whether it is required.
fn column_of<F: Fetch>(schema: &Schema) -> Result<(usize, bool), WorldError> {
    column_index::<F::Component>(schema).map(|index| (index, F::REQUIRED))
}

fn column_index<T: Pod>(schema: &Schema) -> Result<usize, WorldError> {
    schema
        .component_index::<T>()
        .ok_or(WorldError::UnregisteredComponent(std::any::type_name::<T>()))
}

/// The walk of column `index` over `slots`.
fn walk<'a>(index: usize, slots: Range<usize>, masks: &'a [u64]) -> Walk<'a> {
    Walk {
        masks: &masks[slots.clone()],
        slots,
        bit: 1 << index,
    }
}

/// Most fetches in one query.
const MAX_FETCHES: usize = 6;

/// The columns a query names, in order, and whether an entity must hold each.
#[derive(Clone, Copy, Debug)]
pub struct Columns {
    at: [(usize, bool); MAX_FETCHES],
    len: usize,
}

impl Columns {
    fn of(named: &[(usize, bool)]) -> Columns {
        let mut at = [(0, false); MAX_FETCHES];
        at[..named.len()].copy_from_slice(named);
        Columns {
            at,
            len: named.len(),
        }
    }

    /// The `i`th named column.
    fn index(&self, i: usize) -> usize {
        self.at[i].0
    }

    /// The `i`th named column, for a query of `N` fetches.
    pub(crate) fn indices<const N: usize>(&self) -> [usize; N] {
        std::array::from_fn(|i| self.index(i))
    }

    /// Narrows `window` to the slots every required column holds.
    pub(crate) fn narrow(&self, window: &mut Window, columns: &[Column]) {
        for &(index, required) in &self.at[..self.len] {
            if required {
                window.require(columns, index);
            }
        }
    }
}

/// Narrows a query to entities that do or do not hold some components, borrowing none:
/// [`With<T>`], [`Without<T>`], `()` (no filter), or a tuple of them.
pub trait Filter {
    /// Adds this filter's conditions to `window` (whose slots are `0..slots` of `columns`).
    fn narrow(window: &mut Window, columns: &[Column], schema: &Schema) -> Result<(), WorldError>;

    /// The window every slot of `0..slots` filtered by this filter.
    #[doc(hidden)]
    fn window(columns: &[Column], schema: &Schema, slots: usize) -> Result<Window, WorldError> {
        let mut window = Window::all(slots);
        Self::narrow(&mut window, columns, schema)?;
        Ok(window)
    }
}

/// Filter: the entity holds a `T` (which the query does not borrow).
pub struct With<T>(PhantomData<T>);

/// Filter: the entity holds no `T`.
pub struct Without<T>(PhantomData<T>);

impl<T: Pod> Filter for With<T> {
    fn narrow(window: &mut Window, columns: &[Column], schema: &Schema) -> Result<(), WorldError> {
        window.require(columns, column_index::<T>(schema)?);
        Ok(())
    }
}

impl<T: Pod> Filter for Without<T> {
    fn narrow(window: &mut Window, _: &[Column], schema: &Schema) -> Result<(), WorldError> {
        window.exclude |= 1 << column_index::<T>(schema)?;
        Ok(())
    }
}

impl Filter for () {
    fn narrow(_: &mut Window, _: &[Column], _: &Schema) -> Result<(), WorldError> {
        Ok(())
    }
}

macro_rules! tuple_filter {
    ($($name:ident),+) => {
        impl<$($name: Filter),+> Filter for ($($name,)+) {
            fn narrow(window: &mut Window, columns: &[Column], schema: &Schema) -> Result<(), WorldError> {
                $( $name::narrow(window, columns, schema)?; )+
                Ok(())
            }
        }
    };
}
tuple_filter!(A);
tuple_filter!(A, B);
tuple_filter!(A, B, C);
tuple_filter!(A, B, C, D);

macro_rules! single_fetch_query {
    ($($fetch:ty),*) => {$(
        impl<'q, T: Pod> Query for $fetch {
            type Item<'a> = <Self as Fetch>::Item<'a>;
            type Cursors<'a> = <Self as Fetch>::Cursor<'a>;
            fn columns(schema: &Schema) -> Result<Columns, WorldError> {
                Ok(Columns::of(&[column_of::<Self>(schema)?]))
            }
            fn borrow_mut<'a>(
                columns: &'a mut [Column],
                named: &Columns,
                slots: Range<usize>,
                masks: &'a [u64],
            ) -> Result<Self::Cursors<'a>, WorldError> {
                let index = named.index(0);
                Ok(<Self as Fetch>::cursor_mut(&mut columns[index], walk(index, slots, masks)))
            }
            #[inline(always)]
            fn flatten<'a>(zipped: Self::Item<'a>) -> Self::Item<'a> {
                zipped
            }
        }
    )*};
}
single_fetch_query!(&'q T, &'q mut T, Option<&'q T>, Option<&'q mut T>);

macro_rules! single_read_query {
    ($($fetch:ty),*) => {$(
        impl<'q, T: Pod> ReadOnlyQuery for $fetch {
            fn borrow<'a>(
                columns: &'a [Column],
                named: &Columns,
                slots: Range<usize>,
                masks: &'a [u64],
            ) -> Self::Cursors<'a> {
                let index = named.index(0);
                <Self as ReadOnlyFetch>::cursor(&columns[index], walk(index, slots, masks))
            }
        }
    )*};
}
single_read_query!(&'q T, Option<&'q T>);

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
    ($(($name:ident, $walk:ident)),+) => {
        impl<$($name: Fetch),+> Query for ($($name,)+) {
            type Item<'a> = ($($name::Item<'a>,)+);
            type Cursors<'a> = zipped_cursors!('a; $($name),+);

            fn columns(schema: &Schema) -> Result<Columns, WorldError> {
                Ok(Columns::of(&[$(column_of::<$name>(schema)?),+]))
            }

            #[allow(non_snake_case)]
            fn borrow_mut<'a>(
                columns: &'a mut [Column],
                named: &Columns,
                slots: Range<usize>,
                masks: &'a [u64],
            ) -> Result<Self::Cursors<'a>, WorldError> {
                let at = std::array::from_fn(|i| named.index(i));
                let [$($walk),+] = at.map(|index| walk(index, slots.clone(), masks));
                let [$($name),+] = columns
                    .get_disjoint_mut(at)
                    .map_err(|_| WorldError::QueryAliases)?;
                $( let $name = $name::cursor_mut($name, $walk); )+
                Ok(zip_cursors!($($name),+))
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
            fn borrow<'a>(
                columns: &'a [Column],
                named: &Columns,
                slots: Range<usize>,
                masks: &'a [u64],
            ) -> Self::Cursors<'a> {
                let at = std::array::from_fn(|i| named.index(i));
                let [$($walk),+] = at.map(|index| walk(index, slots.clone(), masks));
                let [$($name),+] = at;
                $( let $name = $name::cursor(&columns[$name], $walk); )+
                zip_cursors!($($name),+)
            }
        }
    };
}
tuple_query!((A, a));
tuple_query!((A, a), (B, b));
tuple_query!((A, a), (B, b), (C, c));
tuple_query!((A, a), (B, b), (C, c), (D, d));
tuple_query!((A, a), (B, b), (C, c), (D, d), (E, e));
tuple_query!((A, a), (B, b), (C, c), (D, d), (E, e), (F, f));

/// Each slot's component mask and generation, side by side.
type SlotMeta<'a> = Zip<slice::Iter<'a, u64>, slice::Iter<'a, u32>>;

/// Iterator over the entities matching a query; see [`crate::World::query`].
pub struct QueryIter<'a, Q: Query> {
    /// Masks, generations and the query's columns zipped: slice iterators only, so the
    /// zip compiles to one index walking them all.
    slots: Enumerate<Zip<SlotMeta<'a>, Q::Cursors<'a>>>,
    /// Slot of the window's first entry.
    first_slot: usize,
    /// Components a slot must hold.
    need: u64,
    /// Components a slot must not hold.
    exclude: u64,
    /// False when every slot in the window matches, so the per-slot test is skipped.
    test: bool,
}

impl<'a, Q: Query> QueryIter<'a, Q> {
    pub(crate) fn new(
        entities: &'a EntityTable,
        holders: &[u32],
        window: Window,
        cursors: Q::Cursors<'a>,
    ) -> Self {
        let slots = window.slots();
        let test = !every_slot_matches(entities, holders, window);
        let (masks, generations) = (&entities.masks[slots.clone()], &entities.generations[slots]);
        QueryIter::from_parts(window, test, masks, generations, cursors)
    }

    /// An iterator over `window`'s slots, whose masks and generations are given.
    pub(crate) fn from_parts(
        window: Window,
        test: bool,
        masks: &'a [u64],
        generations: &'a [u32],
        cursors: Q::Cursors<'a>,
    ) -> Self {
        QueryIter {
            slots: masks
                .iter()
                .zip(generations.iter())
                .zip(cursors)
                .enumerate(),
            first_slot: window.start,
            need: window.need,
            exclude: window.exclude,
            test,
        }
    }
}

/// True when every slot holds a live entity with every component the window needs and
/// none it excludes, so a query may skip its per-slot test.
pub(crate) fn every_slot_matches(entities: &EntityTable, holders: &[u32], window: Window) -> bool {
    let slots = entities.slots() as u32;
    let all = |mask: u64, count: u32| columns_of(mask).all(|column| holders[column] == count);
    entities.live == slots && all(window.need, slots) && all(window.exclude, 0)
}

impl<'a, Q: Query> Iterator for QueryIter<'a, Q> {
    type Item = (Entity, Q::Item<'a>);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let (need, exclude) = (self.need, self.exclude);
        let (index, ((_, generation), zipped)) = if self.test {
            self.slots.find(|(_, ((mask, generation), _))| {
                **mask & need == need && **mask & exclude == 0 && **generation & 1 == 1
            })?
        } else {
            // Every slot matches: no search, one step.
            let next = self.slots.next()?;
            let (_, ((mask, generation), _)) = &next;
            debug_assert!(
                **mask & need == need && **mask & exclude == 0 && **generation & 1 == 1,
                "a dense query met a slot that does not match: component counts are off"
            );
            next
        };
        let slot = (self.first_slot + index) as u32;
        Some((Entity::from_parts(slot, *generation), Q::flatten(zipped)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.slots.size_hint().1)
    }
}
