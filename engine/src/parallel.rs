//! Deterministic parallel queries: a system walks an entity query over fixed chunks of
//! slots on a thread pool, and the result does not depend on the number of threads or
//! on scheduling.
//!
//! The rules that make it so:
//! - Chunks are fixed runs of [`CHUNK_SLOTS`] slots, whatever the thread count.
//! - Each chunk writes only its own entities' components (the query's `&mut` columns,
//!   split between chunks) and its own output value; everything else the closure sees
//!   is shared and read-only (`Fn + Sync`).
//! - Whatever a chunk produces (shots to spawn, commands, events) goes into its output,
//!   and the system merges the outputs in chunk order, which is slot order: the same
//!   sequence a serial loop makes.
//! - Randomness inside a chunk comes from [`crate::Rng::fork`] (the frame's RNG state,
//!   the tick and the entity), never from a sequence shared between entities.
//!
//! With the crate's `parallel` feature (rayon) the chunks run on the current rayon
//! pool (`rayon::ThreadPool::install` picks the pool, so the host chooses the thread
//! count); without it, or on a pool of one thread, they run one after another, with the
//! same result. Step from inside the pool (`pool.install(|| ...)` around the game
//! loop): a call from outside hands each parallel query to the pool and waits, which
//! costs more, so from outside only a query over four times as many slots splits.

use bytemuck::Pod;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::query::{Column, Columns, Fetch, Query, QueryIter, Window, every_slot_matches};
use crate::{Entity, World, WorldError};

/// Slots per chunk of a parallel query. Fixed: the chunking never depends on the thread
/// count. Large enough that a chunk's work dwarfs handing it to a thread.
pub const CHUNK_SLOTS: usize = 256;

/// A query over fewer chunks than this many slots make (four chunks) runs on the calling
/// thread by default; one over at least that many is halved, and the halves may run in
/// parallel (and are halved again while they are as long). Waking another thread costs
/// a few microseconds: worth it for a thousand units' AI. A caller outside the pool
/// needs four times as many (see the module docs).
pub const DEFAULT_PARALLEL_FROM_SLOTS: usize = 4 * CHUNK_SLOTS;

static PARALLEL_FROM_SLOTS: AtomicUsize = AtomicUsize::new(DEFAULT_PARALLEL_FROM_SLOTS);

/// Sets, for the whole process, how many slots a parallel query needs before it hands
/// chunks to other threads (0: always, which tests use to exercise threads on small
/// worlds). A performance knob only: where chunks run never changes what they compute.
pub fn set_parallel_from_slots(slots: usize) {
    PARALLEL_FROM_SLOTS.store(slots, Ordering::Relaxed);
}

/// A [`Fetch`] whose column can be split between chunks: `&T` and `&mut T`.
pub trait ParFetch: Fetch {
    /// The column's values over some slots.
    type Slice<'a>: Send + Split;
    /// The values of `slots` (which the column holds).
    fn slice_mut(column: &mut Column, slots: Range<usize>) -> Self::Slice<'_>;
    /// A cursor over a slice.
    fn cursor_of(slice: Self::Slice<'_>) -> Self::Cursor<'_>;
}

/// Values that can be cut in two at an index (slices, and tuples of them).
pub trait Split: Sized {
    /// The first `mid` values and the rest.
    fn split(self, mid: usize) -> (Self, Self);
}

impl<T: Sync> Split for &[T] {
    fn split(self, mid: usize) -> (Self, Self) {
        self.split_at(mid)
    }
}

impl<T: Send> Split for &mut [T] {
    fn split(self, mid: usize) -> (Self, Self) {
        self.split_at_mut(mid)
    }
}

impl<T: Pod + Sync> ParFetch for &T {
    type Slice<'a> = &'a [T];
    fn slice_mut(column: &mut Column, slots: Range<usize>) -> Self::Slice<'_> {
        column.typed::<T>(slots)
    }
    fn cursor_of(slice: Self::Slice<'_>) -> Self::Cursor<'_> {
        slice.iter()
    }
}

impl<T: Pod + Send> ParFetch for &mut T {
    type Slice<'a> = &'a mut [T];
    fn slice_mut(column: &mut Column, slots: Range<usize>) -> Self::Slice<'_> {
        column.typed_mut::<T>(slots)
    }
    fn cursor_of(slice: Self::Slice<'_>) -> Self::Cursor<'_> {
        slice.iter_mut()
    }
}

/// A [`Query`] of [`ParFetch`]es that can run in parallel chunks.
pub trait ParQuery: Query {
    /// Every named column's values over the window.
    type Slices<'a>: Send + Split;
    /// Borrows the named columns over `slots`.
    fn slices_mut<'a>(
        columns: &'a mut [Column],
        named: &Columns,
        slots: Range<usize>,
    ) -> Result<Self::Slices<'a>, WorldError>;
    /// The zipped cursors over one chunk's slices.
    fn cursors(slices: Self::Slices<'_>) -> Self::Cursors<'_>;
}

macro_rules! par_query {
    ($(($name:ident, $slice:ident)),+) => {
        impl<$($name: Split),+> Split for ($($name,)+) {
            #[allow(non_snake_case)]
            fn split(self, mid: usize) -> (Self, Self) {
                let ($($name,)+) = self;
                $( let $name = $name.split(mid); )+
                (($($name.0,)+), ($($name.1,)+))
            }
        }

        impl<$($name: ParFetch),+> ParQuery for ($($name,)+) {
            type Slices<'a> = ($($name::Slice<'a>,)+);

            #[allow(non_snake_case)]
            fn slices_mut<'a>(
                columns: &'a mut [Column],
                named: &Columns,
                slots: Range<usize>,
            ) -> Result<Self::Slices<'a>, WorldError> {
                let [$($name),+] = columns
                    .get_disjoint_mut(named.indices())
                    .map_err(|_| WorldError::QueryAliases)?;
                Ok(($($name::slice_mut($name, slots.clone()),)+))
            }

            #[allow(non_snake_case)]
            fn cursors(slices: Self::Slices<'_>) -> Self::Cursors<'_> {
                let ($($slice,)+) = slices;
                $( let $slice = $name::cursor_of($slice); )+
                par_zip!($($slice),+)
            }
        }
    };
}

/// Zips cursors in the nesting the query module uses: `Zip<Zip<C, B>, A>`.
macro_rules! par_zip {
    ($only:ident) => { $only };
    ($first:ident, $($rest:ident),+) => { par_zip!($($rest),+).zip($first) };
}

par_query!((A, a));
par_query!((A, a), (B, b));
par_query!((A, a), (B, b), (C, c));
par_query!((A, a), (B, b), (C, c), (D, d));

/// One chunk's share of a parallel query.
struct Chunk<'a, S> {
    window: Window,
    masks: &'a [u64],
    generations: &'a [u32],
    slices: S,
}

impl<S: Split> Chunk<'_, S> {
    /// The first `mid` slots and the rest.
    fn split(self, mid: usize) -> (Self, Self) {
        let (masks, masks_rest) = self.masks.split_at(mid);
        let (generations, generations_rest) = self.generations.split_at(mid);
        let (slices, slices_rest) = self.slices.split(mid);
        let at = self.window.start + mid;
        let first = Window {
            end: at,
            ..self.window
        };
        let rest = Window {
            start: at,
            ..self.window
        };
        (
            Chunk {
                window: first,
                masks,
                generations,
                slices,
            },
            Chunk {
                window: rest,
                masks: masks_rest,
                generations: generations_rest,
                slices: slices_rest,
            },
        )
    }
}

impl World {
    /// Calls `each(output, entity, item)` for every entity matching `Q` (e.g.
    /// `(&mut Unit, &mut Body)`), in chunks of [`CHUNK_SLOTS`] slots that may run in
    /// parallel (see the [module docs](crate::parallel)). `outputs` grows to at least
    /// one value per chunk (never shrinks), in slot order; chunk `i` gets
    /// `&mut outputs[i]` and any beyond the last chunk are left alone. Values already
    /// there are kept (so their buffers are reused): clear them before, merge them in
    /// order after.
    ///
    /// ```
    /// # use bytemuck::{Pod, Zeroable};
    /// # use tickstep_engine::{Frame, Schema};
    /// #[derive(Clone, Copy, Pod, Zeroable)]
    /// #[repr(C)]
    /// struct Hp(i32);
    /// # let schema = Schema::builder::<()>("doc", 1).component::<Hp>("hp").build()?;
    /// # let mut frame = Frame::new(schema, 1000, ())?;
    /// for _ in 0..1000 {
    ///     frame.world_mut().spawn_with((Hp(1),))?;
    /// }
    /// // Each chunk heals its entities and lists the ones it healed.
    /// let mut healed: Vec<Vec<_>> = Vec::new();
    /// frame.world_mut().par_for_each_mut::<(&mut Hp,), _>(&mut healed, |out, entity, (hp,)| {
    ///     hp.0 += 1;
    ///     out.push(entity);
    /// })?;
    /// let in_order: Vec<_> = healed.iter().flatten().copied().collect();
    /// assert_eq!(in_order, frame.world().entities().collect::<Vec<_>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn par_for_each_mut<Q, S>(
        &mut self,
        outputs: &mut Vec<S>,
        each: impl Fn(&mut S, Entity, Q::Item<'_>) + Sync,
    ) -> Result<(), WorldError>
    where
        Q: ParQuery,
        S: Send + Default,
    {
        let named = Q::columns(self.schema())?;
        let mut window = Window {
            need: 0,
            exclude: 0,
            start: 0,
            end: self.entities.slots(),
        };
        named.narrow(&mut window, &self.columns);
        let test = !every_slot_matches(&self.entities, &self.holders, window);
        let slots = window.slots();
        let chunk = Chunk {
            window,
            masks: &self.entities.masks[slots.clone()],
            generations: &self.entities.generations[slots.clone()],
            slices: Q::slices_mut(&mut self.columns, &named, slots.clone())?,
        };
        let chunks = slots.len().div_ceil(CHUNK_SLOTS);
        if outputs.len() < chunks {
            outputs.resize_with(chunks, S::default);
        }
        run_chunks::<Q, S, _>(chunk, test, &mut outputs[..chunks], split_from(), &each);
        Ok(())
    }
}

/// The slots a run of chunks needs before its halves may run on two threads: the
/// process-wide setting ([`set_parallel_from_slots`]), four times over when the caller
/// is not one of the pool's threads (each half is then handed to the pool and waited
/// on: at 1,000 units that cost more than it saved, 64-69 against 56-57 us a tick).
fn split_from() -> usize {
    let slots = PARALLEL_FROM_SLOTS.load(Ordering::Relaxed);
    #[cfg(feature = "parallel")]
    if rayon::current_thread_index().is_none() {
        return slots.saturating_mul(4);
    }
    slots
}

/// Runs `chunk` (exactly `outputs.len()` chunks of slots), halving it until one chunk is
/// left; the halves of a run of at least `split_from` slots may run in parallel.
fn run_chunks<'a, Q, S, F>(
    chunk: Chunk<'a, Q::Slices<'a>>,
    test: bool,
    outputs: &mut [S],
    split_from: usize,
    each: &F,
) where
    Q: ParQuery,
    S: Send,
    F: Fn(&mut S, Entity, Q::Item<'_>) + Sync,
{
    match outputs {
        [] => {}
        [output] => {
            let cursors = Q::cursors(chunk.slices);
            let iter = QueryIter::<Q>::from_parts(
                chunk.window,
                test,
                chunk.masks,
                chunk.generations,
                cursors,
            );
            for (entity, item) in iter {
                each(output, entity, item);
            }
        }
        _ => {
            let outputs_len = outputs.len();
            let half = outputs_len / 2;
            let (first, rest) = chunk.split(half * CHUNK_SLOTS);
            let (first_out, rest_out) = outputs.split_at_mut(half);
            let worth_it = outputs_len * CHUNK_SLOTS >= split_from;
            join(
                worth_it,
                || run_chunks::<Q, S, F>(first, test, first_out, split_from, each),
                || run_chunks::<Q, S, F>(rest, test, rest_out, split_from, each),
            );
        }
    }
}

/// Runs both, in parallel when `worth_it`, with the `parallel` feature, on a pool of
/// more than one thread.
#[cfg_attr(not(feature = "parallel"), allow(unused_variables))]
fn join(worth_it: bool, a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    #[cfg(feature = "parallel")]
    if worth_it && rayon::current_num_threads() > 1 {
        rayon::join(a, b);
        return;
    }
    a();
    b();
}

/// Runs `f` on the calling thread while other threads of the current rayon pool wait
/// for work actively (taking any chunk handed out, yielding the core while there is none)
/// instead of going to sleep.
///
/// For bursts of many steps in a row: a catch-up, an offline run. Between two parallel
/// sections a step has serial parts (the arena's grid sort, its other bodies' moves and
/// combat), long enough for rayon to put an idle thread to sleep, and on a virtual
/// machine waking it again takes tens of microseconds, so each parallel section would
/// start on one thread. Keeps up to one thread per other core busy while `f` runs, and
/// allocates one small job for each: not for a game loop that steps once per frame, nor
/// around work that blocks. `f`'s own parallel work must go through `join` or a scope on
/// the same pool (as parallel queries and blake3 do), not `rayon::broadcast`. Where
/// chunks run never changes what they compute. Without the `parallel` feature, outside
/// a pool, or on a pool of one thread, it just runs `f`.
pub fn keep_warm<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "parallel")]
    if let Some(owner) = rayon::current_thread_index() {
        let waiters = warm::waiters();
        if waiters > 0 {
            return warm::run(owner, waiters, f);
        }
    }
    f()
}

#[cfg(feature = "parallel")]
mod warm {
    use std::cell::Cell;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// How many threads besides the caller's should wait actively: one per other core,
    /// at most one per other thread of the pool (a waiter without a core of its own
    /// would only take time from the threads doing the work).
    pub(super) fn waiters() -> usize {
        static CORES: OnceLock<usize> = OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        rayon::current_num_threads().min(cores).saturating_sub(1)
    }

    /// One burst: whose it is, how many waiters it spawned and how many of them a thread
    /// has taken, and whether `f` has finished.
    struct Burst {
        owner: usize,
        waiters: usize,
        taken: AtomicUsize,
        done: AtomicBool,
    }

    /// Marks the burst done when dropped, so that waiters stop even if `f` panics.
    struct Done<'a>(&'a Burst);

    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.done.store(true, Ordering::Release);
        }
    }

    pub(super) fn run<T>(owner: usize, waiters: usize, f: impl FnOnce() -> T) -> T {
        let burst = Burst {
            owner,
            waiters,
            taken: AtomicUsize::new(0),
            done: AtomicBool::new(false),
        };
        let burst = &burst;
        rayon::in_place_scope(|scope| {
            for _ in 0..waiters {
                scope.spawn(move |_| wait_actively(burst));
            }
            let _done = Done(burst);
            f()
        })
    }

    thread_local! {
        /// Whether this thread is already waiting actively further up its stack.
        static WAITING: Cell<bool> = const { Cell::new(false) };
    }

    /// Sets `WAITING` for as long as it lives.
    struct Waiting;

    impl Waiting {
        fn enter() -> Waiting {
            WAITING.set(true);
            Waiting
        }
    }

    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING.set(false);
        }
    }

    /// Takes pool work until the burst is done. The owner (which may pick up its own
    /// waiter while it waits inside a join) and a thread already waiting return at once:
    /// a waiter only `done` ends must never sit on a stack that `done` depends on. Other
    /// threads steal the waiters, spawned before `f` hands out any chunk, first (rayon
    /// steals the oldest job), and a waiting thread takes no work until every waiter has
    /// been taken: the next oldest job would be another waiter, wasted on this thread.
    fn wait_actively(burst: &Burst) {
        burst.taken.fetch_add(1, Ordering::AcqRel);
        if rayon::current_thread_index() == Some(burst.owner) || WAITING.get() {
            return;
        }
        let _waiting = Waiting::enter();
        while !burst.done.load(Ordering::Acquire) {
            let all_taken = burst.taken.load(Ordering::Acquire) == burst.waiters;
            if !(all_taken && rayon::yield_now() == Some(rayon::Yield::Executed)) {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frame, Schema};
    use bytemuck::Zeroable;

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct A(u32);

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct B(u32);

    #[test]
    fn chunks_visit_exactly_what_a_serial_query_visits_in_slot_order() {
        let schema = Schema::builder::<()>("par", 1)
            .component::<A>("a")
            .component::<B>("b")
            .build()
            .expect("schema");
        let mut frame = Frame::new(schema, 2000, ()).expect("frame");
        let world = frame.world_mut();
        for i in 0..1500u32 {
            let e = world.spawn_with((A(i),)).expect("room");
            if i % 3 == 0 {
                world.insert(e, B(i)).expect("insert");
            }
            if i % 7 == 0 {
                world.despawn(e).expect("despawn");
            }
        }
        let serial: Vec<(Entity, u32)> = world
            .query::<(&A, &B)>()
            .expect("query")
            .map(|(e, (a, _))| (e, a.0))
            .collect();
        // Stale outputs beyond the chunks are left alone; those in use keep their order.
        let mut outputs: Vec<Vec<(Entity, u32)>> = vec![Vec::new(); 9];
        outputs[8].push((Entity::NONE, 0));
        world
            .par_for_each_mut::<(&mut A, &B), _>(&mut outputs, |out, e, (a, b)| {
                out.push((e, a.0));
                a.0 += b.0;
            })
            .expect("parallel");
        let chunks = world.slots().div_ceil(CHUNK_SLOTS);
        assert_eq!(chunks, 6);
        let parallel: Vec<_> = outputs[..chunks].iter().flatten().copied().collect();
        assert_eq!(parallel, serial);
        assert_eq!(outputs[8], vec![(Entity::NONE, 0)]);
        for (e, a) in serial {
            assert_eq!(world.get::<A>(e).expect("alive").0, 2 * a);
        }
    }
}
