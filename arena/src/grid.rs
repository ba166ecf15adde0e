//! `SpatialGrid`: buckets positions into square cells so neighbour searches look at a
//! 2×2 block of cells instead of every entity: the block that holds every point closer
//! than half a cell to where the search is.
//!
//! Cells are a power of two of arena units wide, so a cell coordinate is a shift of the
//! fixed-point bits. Rebuilding is a counting sort in insertion order, so the order of
//! entries within a cell (and thus every search) is a pure function of the frame.

use std::ops::ControlFlow;
use tickstep_engine::parallel::CHUNK_SLOTS;
use tickstep_engine::{Entity, Fp, Vec2, World, WorldError};

use super::{Body, Unit};

/// Cells per side at most: an absurd arena size (say, from a crafted snapshot) makes the
/// edge cells bigger instead of allocating without bound.
const MAX_CELLS_PER_SIDE: i64 = 2048;

/// Worlds of at least this many slots work out their units' cells in parallel chunks.
/// A cell is a few nanoseconds of work: at 1,000 units, handing half of them to another
/// thread made `tickstep run --threads 2` 9% slower (16 interleaved pairs); at 10,000 it
/// made it 6% faster.
const PARALLEL_FILL_FROM_SLOTS: usize = 4096;

/// One bucketed entity.
#[derive(Clone, Copy, Debug)]
pub struct GridEntry {
    /// The entity.
    pub entity: Entity,
    /// Its position when the grid was built.
    pub pos: Vec2,
}

/// A uniform grid over `0..size`, rebuilt each tick into reused buffers.
#[derive(Debug)]
pub struct SpatialGrid {
    /// The geometry the entries were bucketed with.
    cells: Cells,
    /// `starts[c]..starts[c + 1]` indexes `entries` for cell `c`.
    starts: Vec<u32>,
    entries: Vec<GridEntry>,
    /// The entries to sort with their cells, in insertion order.
    unsorted: Vec<(u32, GridEntry)>,
    /// The units to sort with their cells, one list per chunk of slots, in slot order.
    chunks: Vec<Vec<(u32, GridEntry)>>,
}

/// How positions map to cells: the grid's geometry, copied out to work out cells while
/// the grid's buffers are being filled.
#[derive(Clone, Copy, Debug)]
struct Cells {
    shift: u32,
    columns: usize,
    rows: usize,
}

impl Cells {
    fn coord(&self, v: Fp, cells: usize) -> usize {
        (v.to_bits() >> self.shift).clamp(0, cells as i64 - 1) as usize
    }

    fn count(&self) -> usize {
        self.columns * self.rows
    }

    fn of(&self, pos: Vec2) -> usize {
        self.coord(pos.y, self.rows) * self.columns + self.coord(pos.x, self.columns)
    }
}

impl SpatialGrid {
    /// A grid with cells `2^cell_log2` units wide.
    pub fn new(cell_log2: u32) -> SpatialGrid {
        SpatialGrid {
            cells: Cells {
                shift: cell_log2 + Fp::FRAC_BITS,
                columns: 0,
                rows: 0,
            },
            starts: Vec::new(),
            entries: Vec::new(),
            unsorted: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// The two cells along one axis (or one, at an edge) that hold every point closer
    /// than half a cell to `v`: its own and the neighbour on the side of the cell's
    /// half it is in.
    fn near_coords(&self, v: Fp, cells: usize) -> (usize, usize) {
        let own = self.cells.coord(v, cells);
        match (v.to_bits() >> (self.cells.shift - 1)) & 1 {
            0 => (own.saturating_sub(1), own),
            _ => (own, (own + 1).min(cells - 1)),
        }
    }

    /// The grid's geometry over an arena of `size`.
    fn cells_for(&self, size: Vec2) -> Cells {
        let cells_along = |extent: Fp| {
            ((extent.to_bits() >> self.cells.shift) + 1).clamp(1, MAX_CELLS_PER_SIDE) as usize
        };
        Cells {
            shift: self.cells.shift,
            columns: cells_along(size.x),
            rows: cells_along(size.y),
        }
    }

    /// Rebuckets `items` (at most `bound` of them) over an arena of `size`, reusing the
    /// buffers.
    pub fn rebuild(&mut self, size: Vec2, bound: usize, items: impl Iterator<Item = GridEntry>) {
        let cells = self.cells_for(size);
        self.cells = cells;
        super::clear_scratch(&mut self.unsorted, bound);
        for entry in items {
            self.unsorted.push((cells.of(entry.pos) as u32, entry));
        }
        let unsorted = self.unsorted.iter();
        counting_sort(
            &mut self.starts,
            &mut self.entries,
            cells.count(),
            bound,
            unsorted,
        );
    }

    /// Rebuckets every unit of `world` (an arena of `size`) by its position. In a world
    /// of 4,096 slots or more (`PARALLEL_FILL_FROM_SLOTS`), the units' cells are worked out in
    /// parallel chunks (each chunk lists its own units, in slot order) and the sort over
    /// the lists in chunk order is serial: the same grid as a serial rebuild, for any
    /// thread count. `world` is borrowed mutably only because a parallel query splits
    /// its columns; nothing in it changes.
    pub fn rebuild_with_units(&mut self, world: &mut World, size: Vec2) -> Result<(), WorldError> {
        if world.slots() < PARALLEL_FILL_FROM_SLOTS {
            let units = world.query::<(&Unit, &Body)>()?;
            let entries = units.map(|(entity, (_, body))| GridEntry {
                entity,
                pos: body.pos,
            });
            self.rebuild(size, world.slots(), entries);
            return Ok(());
        }
        // The geometry is kept only once the lists are made: a failed query leaves the
        // old grid whole.
        let cells = self.cells_for(size);
        self.chunks
            .resize_with(world.slots().div_ceil(CHUNK_SLOTS), Vec::new);
        for list in &mut self.chunks {
            super::clear_scratch(list, CHUNK_SLOTS);
        }
        world.par_for_each_mut::<(&Unit, &Body), _>(
            &mut self.chunks,
            |list, entity, (_, body)| {
                let pos = body.pos;
                list.push((cells.of(pos) as u32, GridEntry { entity, pos }));
            },
        )?;
        self.cells = cells;
        let unsorted = self.chunks.iter().flatten();
        let (count, bound) = (cells.count(), world.slots());
        counting_sort(&mut self.starts, &mut self.entries, count, bound, unsorted);
        Ok(())
    }

    /// The entries in the 2×2 cells that hold every point closer than half a cell to
    /// `pos` (and maybe others): one slice per row of cells (the second empty at an
    /// edge), each in cell order.
    pub fn near(&self, pos: Vec2) -> [&[GridEntry]; 2] {
        if self.entries.is_empty() {
            return [&[], &[]];
        }
        let (first_x, last_x) = self.near_coords(pos.x, self.cells.columns);
        let (first_y, last_y) = self.near_coords(pos.y, self.cells.rows);
        let row = |y: usize| {
            let row = y * self.cells.columns;
            let (first, end) = (row + first_x, row + last_x + 1);
            &self.entries[self.starts[first] as usize..self.starts[end] as usize]
        };
        let second = if last_y > first_y { row(last_y) } else { &[] };
        [row(first_y), second]
    }

    /// Calls `visit` for the entries [`SpatialGrid::near`] `pos`, row by row, until it
    /// breaks.
    pub fn for_each_near(&self, pos: Vec2, mut visit: impl FnMut(&GridEntry) -> ControlFlow<()>) {
        for entry in self.near(pos).into_iter().flatten() {
            if visit(entry).is_break() {
                return;
            }
        }
    }
}

/// The stable counting sort of `unsorted` (at most `bound` entries, each with its cell,
/// of `cells`) into `entries`, with `starts[c]..starts[c + 1]` the entries of cell `c`.
fn counting_sort<'a>(
    starts: &mut Vec<u32>,
    entries: &mut Vec<GridEntry>,
    cells: usize,
    bound: usize,
    unsorted: impl DoubleEndedIterator<Item = &'a (u32, GridEntry)> + Clone,
) {
    starts.clear();
    starts.resize(cells + 1, 0);
    for &(cell, _) in unsorted.clone() {
        starts[cell as usize] += 1;
    }
    // Running totals: starts[c] is where cell c ends.
    let mut total = 0;
    for start in &mut starts[..cells] {
        total += *start;
        *start = total;
    }
    starts[cells] = total;
    let none = GridEntry {
        entity: Entity::NONE,
        pos: Vec2::ZERO,
    };
    // Every place below `total` is written next, so only new places need a value:
    // no clearing each rebuild. Room for `bound` keeps a warm rebuild from growing.
    entries.reserve(bound.saturating_sub(entries.len()));
    entries.resize(total as usize, none);
    // Back to front, each entry goes just before its cell's end, which moves down to
    // it: a cell keeps its insertion order, and starts[c] ends at its first entry.
    for &(cell, entry) in unsorted.rev() {
        let end = &mut starts[cell as usize];
        *end -= 1;
        entries[*end as usize] = entry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry told apart from others by `tag` 1/65536ths added to its x.
    fn entry(tag: u32, x: i64, y: i64) -> GridEntry {
        let pos = Vec2::new(Fp::from_int(x) + Fp::from_bits(tag as i64), Fp::from_int(y));
        GridEntry {
            entity: Entity::NONE,
            pos,
        }
    }

    /// The tags of the entries a near search from `pos` visits.
    fn near(grid: &SpatialGrid, pos: Vec2) -> Vec<i64> {
        let mut found = Vec::new();
        grid.for_each_near(pos, |e| {
            found.push(e.pos.x.to_bits() & 0xffff);
            ControlFlow::Continue(())
        });
        found.sort();
        found
    }

    #[test]
    fn near_search_looks_in_the_2x2_cells_on_the_side_of_its_half_cell() {
        let mut grid = SpatialGrid::new(3); // 8-unit cells
        let items = [
            entry(1, 1, 1),
            entry(2, 9, 1),
            entry(3, 17, 1),
            entry(4, 30, 30),
            entry(5, 12, 12),
        ];
        grid.rebuild(Vec2::from_ints(32, 32), 8, items.into_iter());
        assert_eq!(
            near(&grid, Vec2::from_ints(2, 2)),
            vec![1],
            "the low half: no cell below"
        );
        assert_eq!(near(&grid, Vec2::from_ints(6, 6)), vec![1, 2, 5]);
        assert_eq!(near(&grid, Vec2::from_ints(10, 2)), vec![1, 2]);
        assert_eq!(near(&grid, Vec2::from_ints(14, 2)), vec![2, 3]);
        assert_eq!(near(&grid, Vec2::from_ints(14, 6)), vec![2, 3, 5]);
    }

    /// Against every entry: a near search visits each one within half a cell, from
    /// anywhere in the arena or outside it, and at exactly half a cell.
    #[test]
    fn near_search_misses_nothing_within_half_a_cell() {
        let mut grid = SpatialGrid::new(3);
        let mut rng = tickstep_engine::Rng::new(5);
        let side = 44; // not a whole number of cells: the last column is narrow
        // Whole-unit x (its fraction is the tag, so tags are told apart) and any y.
        let items: Vec<GridEntry> = (0..400)
            .map(|tag| {
                let mut item = entry(tag, rng.below(side as u32) as i64, 0);
                item.pos.y = rng.range(Fp::ZERO, Fp::from_int(side));
                item
            })
            .collect();
        let size = Vec2::from_ints(side, side);
        grid.rebuild(size, items.len(), items.iter().copied());
        let half = Fp::from_int(4);
        let search = |at: Vec2| {
            let found = near(&grid, at);
            for item in &items {
                if (item.pos - at).length_squared() <= half * half {
                    let tag = item.pos.x.to_bits() & 0xffff;
                    assert!(found.contains(&tag), "{at:?} missed {:?}", item.pos);
                }
            }
        };
        let span = Fp::from_int(side + 8);
        for _ in 0..400 {
            let offset = Fp::from_int(-4);
            search(Vec2::new(
                rng.range(Fp::ZERO, span) + offset,
                rng.range(Fp::ZERO, span) + offset,
            ));
        }
        for item in items.iter().take(50) {
            for step in [Vec2::new(half, Fp::ZERO), Vec2::new(Fp::ZERO, -half)] {
                search(item.pos + step);
                search(item.pos - step);
            }
        }
    }

    #[test]
    fn a_rebuild_with_fewer_entries_leaves_none_of_the_old_ones() {
        let mut grid = SpatialGrid::new(3);
        let size = Vec2::from_ints(32, 32);
        let many: Vec<GridEntry> = (1..=5).map(|tag| entry(tag, 1, 1)).collect();
        grid.rebuild(size, 8, many.into_iter());
        assert_eq!(near(&grid, Vec2::from_ints(2, 2)), vec![1, 2, 3, 4, 5]);
        grid.rebuild(size, 8, [entry(7, 1, 1), entry(8, 20, 20)].into_iter());
        assert_eq!(near(&grid, Vec2::from_ints(2, 2)), vec![7]);
        assert_eq!(near(&grid, Vec2::from_ints(21, 21)), vec![8]);
        grid.rebuild(size, 8, std::iter::empty());
        assert_eq!(near(&grid, Vec2::from_ints(2, 2)), Vec::<i64>::new());
    }

    #[test]
    fn positions_outside_the_arena_fall_in_edge_cells() {
        let mut grid = SpatialGrid::new(3);
        grid.rebuild(Vec2::from_ints(16, 16), 8, [entry(7, -50, 500)].into_iter());
        let mut count = 0;
        grid.for_each_near(Vec2::from_ints(0, 15), |_| {
            count += 1;
            ControlFlow::Break(())
        });
        assert_eq!(count, 1);
    }

    /// The units' grid, built from per-chunk lists, is the grid a serial pass over the
    /// same units builds: the same entries in the same order, the same cells; and after
    /// units are gone, no list keeps one.
    #[test]
    fn units_listed_in_chunks_make_the_serial_grid() {
        let config = crate::ArenaConfig {
            units: 5000,
            players: 2,
            seed: 9,
        };
        let mut frame = crate::new_frame(&config).unwrap();
        let (globals, world) = frame.split_mut();
        let size = globals.size;
        let serial = |world: &World| {
            let mut grid = SpatialGrid::new(3);
            let units = world.query::<(&Unit, &Body)>().unwrap();
            let entries = units.map(|(entity, (_, body))| GridEntry {
                entity,
                pos: body.pos,
            });
            grid.rebuild(size, world.slots(), entries);
            grid
        };
        let listed = |grid: &SpatialGrid| -> Vec<_> {
            grid.entries.iter().map(|e| (e.entity, e.pos)).collect()
        };
        let mut chunked = SpatialGrid::new(3);
        chunked.rebuild_with_units(world, size).unwrap();
        assert!(
            world.slots() >= PARALLEL_FILL_FROM_SLOTS,
            "filled in chunks"
        );
        assert_eq!(chunked.entries.len(), 5000);
        assert_eq!(chunked.starts, serial(world).starts);
        assert_eq!(listed(&chunked), listed(&serial(world)));
        let gone: Vec<_> = world
            .query::<&Unit>()
            .unwrap()
            .map(|(e, _)| e)
            .skip(2000)
            .collect();
        assert_eq!(gone.len(), 3000);
        for entity in gone {
            world.despawn(entity).unwrap();
        }
        chunked.rebuild_with_units(world, size).unwrap();
        assert_eq!(chunked.entries.len(), 2000);
        assert_eq!(chunked.starts, serial(world).starts);
        assert_eq!(listed(&chunked), listed(&serial(world)));
    }
}
