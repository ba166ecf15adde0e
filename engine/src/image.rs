//! The frame image: a frame's canonical bytes, written section by section and restored
//! with every length and invariant checked first.
//!
//! The checksum is blake3 over the image and a snapshot's payload is the image, so one
//! layout serves both. Layout, all integers little-endian:
//!
//! | section | bytes |
//! | --- | --- |
//! | header | 24: tick u64, capacity u32, slots u32, free-list length u32, zero u32 |
//! | column windows | 8 × components: first slot u32, end slot u32 of each column |
//! | globals | `size_of::<G>()` |
//! | generations | 4 × slots (u32: odd = alive, even = free, 0 = retired) |
//! | masks | 8 × slots (u64: bit `i` = has component `i`; 0 for dead slots) |
//! | free list | 4 × free-list length (u32 slot indices; the last is reused first) |
//! | column `i` | (end − first) × size of component `i`, for each component in order |

use bytemuck::Pod;

use std::ops::Range;

use crate::entity::columns_of;
use crate::world::World;
use crate::{Frame, MAX_CAPACITY, MAX_COMPONENTS, MAX_TICK, Schema, Tick};

/// Bytes in the image header.
pub const IMAGE_HEADER_LEN: usize = 24;

/// The fixed-size start of a frame image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The frame's tick.
    pub tick: Tick,
    /// Most entities the frame may hold.
    pub capacity: u32,
    /// Entity slots in use or free (the length of every per-slot section).
    pub slots: u32,
    /// Length of the free list.
    pub free: u32,
}

/// One section of a frame image, in image order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The [`ImageHeader`].
    Header,
    /// Each column's window of slots.
    Windows,
    /// The globals struct.
    Globals,
    /// One generation per slot.
    Generations,
    /// One component mask per slot.
    Masks,
    /// The free slot indices.
    FreeList,
    /// The column of the schema's component with this index.
    Column(usize),
}

/// Why an image cannot be restored. The target frame is left untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Fewer bytes than the header needs.
    #[error("frame image is {found} bytes, shorter than its {IMAGE_HEADER_LEN}-byte header")]
    TooShortForHeader {
        /// Bytes given.
        found: usize,
    },
    /// The header's capacity is beyond what frames support, or its slot or free-list
    /// counts cannot fit in it.
    #[error(
        "frame image claims capacity {capacity}, {slots} slots and {free} free; expected slots <= capacity <= {MAX_CAPACITY} and free <= slots"
    )]
    ImpossibleCounts {
        /// Claimed capacity.
        capacity: u32,
        /// Claimed slots.
        slots: u32,
        /// Claimed free-list length.
        free: u32,
    },
    /// The header's tick is beyond [`MAX_TICK`].
    #[error("frame image is at tick {0}, beyond the last tick a frame may reach ({MAX_TICK})")]
    TickTooLarge(u64),
    /// The header's reserved field is not zero.
    #[error("frame image header's reserved field is {0:#x}, expected 0")]
    ReservedNotZero(u32),
    /// The image's length does not match what its header and the schema imply.
    #[error("frame image is {found} bytes but its header and schema imply {expected}")]
    LengthMismatch {
        /// Bytes implied.
        expected: u64,
        /// Bytes given.
        found: usize,
    },
    /// A column's window is not inside `0..slots`.
    #[error("frame image's column {column} holds slots {start}..{end}, outside 0..{slots}")]
    ImpossibleWindow {
        /// The column.
        column: usize,
        /// Its first slot.
        start: u32,
        /// Its end slot.
        end: u32,
        /// The frame's slots.
        slots: u32,
    },
    /// The entity table breaks an invariant, so restoring it could alias handles.
    #[error("frame image's entity table is inconsistent at slot {slot}: {problem}")]
    InconsistentEntities {
        /// The slot where the problem shows.
        slot: u32,
        /// What is wrong.
        problem: &'static str,
    },
}

impl ImageHeader {
    /// Reads and sanity-checks the header at the start of `image`.
    pub fn parse(image: &[u8]) -> Result<ImageHeader, ImageError> {
        let bytes: &[u8; IMAGE_HEADER_LEN] = image
            .get(..IMAGE_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ImageError::TooShortForHeader { found: image.len() })?;
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let header = ImageHeader {
            tick: u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
            capacity: u32_at(8),
            slots: u32_at(12),
            free: u32_at(16),
        };
        let reserved = u32_at(20);
        if reserved != 0 {
            return Err(ImageError::ReservedNotZero(reserved));
        }
        if header.tick > MAX_TICK {
            return Err(ImageError::TickTooLarge(header.tick));
        }
        if header.capacity > MAX_CAPACITY
            || header.slots > header.capacity
            || header.free > header.slots
        {
            return Err(ImageError::ImpossibleCounts {
                capacity: header.capacity,
                slots: header.slots,
                free: header.free,
            });
        }
        Ok(header)
    }

    fn to_bytes(self) -> [u8; IMAGE_HEADER_LEN] {
        let mut bytes = [0u8; IMAGE_HEADER_LEN];
        bytes[..8].copy_from_slice(&self.tick.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.capacity.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.slots.to_le_bytes());
        bytes[16..20].copy_from_slice(&self.free.to_le_bytes());
        bytes
    }
}

/// Everything that fixes an image's section lengths: its header and each column's
/// window of slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// The image header.
    pub header: ImageHeader,
    windows: [[u32; 2]; MAX_COMPONENTS],
    columns: usize,
}

impl ImageLayout {
    /// Reads the header and column windows at the start of `image` (a frame of
    /// `schema`) and checks every window lies inside `0..slots`.
    pub fn parse(image: &[u8], schema: &Schema) -> Result<ImageLayout, ImageError> {
        let header = ImageHeader::parse(image)?;
        let columns = schema.components().len();
        let windows_end = IMAGE_HEADER_LEN + 8 * columns;
        let bytes = image
            .get(IMAGE_HEADER_LEN..windows_end)
            .ok_or(ImageError::LengthMismatch {
                expected: windows_end as u64,
                found: image.len(),
            })?;
        let mut layout = ImageLayout {
            header,
            windows: [[0, 0]; MAX_COMPONENTS],
            columns,
        };
        for column in 0..columns {
            let mut words = u32s(&bytes[8 * column..8 * column + 8]);
            let (start, end) = (words.next().unwrap_or(0), words.next().unwrap_or(0));
            if start > end || end > header.slots {
                let slots = header.slots;
                return Err(ImageError::ImpossibleWindow {
                    column,
                    start,
                    end,
                    slots,
                });
            }
            layout.windows[column] = [start, end];
        }
        Ok(layout)
    }

    /// The window of slots column `index` holds.
    pub fn window(&self, index: usize) -> Range<u32> {
        let [start, end] = self.windows[index];
        start..end
    }

    /// Each section and its length in bytes, in image order, for a frame of `schema`.
    /// Lengths are `u64` and cannot overflow (counts are capped by [`MAX_CAPACITY`]).
    pub fn sections<'a>(&'a self, schema: &'a Schema) -> impl Iterator<Item = (Section, u64)> + 'a {
        let slots = self.header.slots as u64;
        [
            (Section::Header, IMAGE_HEADER_LEN as u64),
            (Section::Windows, 8 * self.columns as u64),
            (Section::Globals, schema.globals_size() as u64),
            (Section::Generations, 4 * slots),
            (Section::Masks, 8 * slots),
            (Section::FreeList, 4 * self.header.free as u64),
        ]
        .into_iter()
        .chain(
            schema
                .components()
                .iter()
                .enumerate()
                .map(move |(i, info)| {
                    let window = self.window(i);
                    (
                        Section::Column(i),
                        (window.end - window.start) as u64 * info.size as u64,
                    )
                }),
        )
    }

    /// Total image length.
    pub fn image_len(&self, schema: &Schema) -> u64 {
        self.sections(schema).map(|(_, len)| len).sum()
    }
}

/// Little-endian u32s of a byte slice whose length is a multiple of 4.
fn u32s(bytes: &[u8]) -> impl ExactSizeIterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Little-endian u64s of a byte slice whose length is a multiple of 8.
fn u64s(bytes: &[u8]) -> impl ExactSizeIterator<Item = u64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
}

/// An image cut into its sections (lengths already checked).
struct Parts<'a> {
    layout: ImageLayout,
    globals: &'a [u8],
    generations: &'a [u8],
    masks: &'a [u8],
    free: &'a [u8],
    columns: &'a [u8],
}

fn split<'a>(image: &'a [u8], schema: &Schema) -> Result<Parts<'a>, ImageError> {
    let layout = ImageLayout::parse(image, schema)?;
    let expected = layout.image_len(schema);
    if expected != image.len() as u64 {
        return Err(ImageError::LengthMismatch {
            expected,
            found: image.len(),
        });
    }
    let header = layout.header;
    let slots = header.slots as usize;
    let (_, rest) = image.split_at(IMAGE_HEADER_LEN + 8 * schema.components().len());
    let (globals, rest) = rest.split_at(schema.globals_size());
    let (generations, rest) = rest.split_at(4 * slots);
    let (masks, rest) = rest.split_at(8 * slots);
    let (free, columns) = rest.split_at(4 * header.free as usize);
    Ok(Parts {
        layout,
        globals,
        generations,
        masks,
        free,
        columns,
    })
}

/// What one pass over a valid entity table counts, so restoring needs no second pass.
struct Census {
    live: u32,
    holders: [u32; MAX_COMPONENTS],
}

/// Checks the entity table's invariants: live slots have odd generations and masks of
/// registered components only, each inside its column's window; dead slots have empty
/// masks; the free list names each dead, reusable slot exactly once. `marks` is scratch
/// for the duplicate check. Counts live entities and each component's holders on the way.
fn validate_entities(
    parts: &Parts<'_>,
    components: usize,
    marks: &mut Vec<u64>,
) -> Result<Census, ImageError> {
    let bad = |slot: u32, problem| Err(ImageError::InconsistentEntities { slot, problem });
    let mut table = Table {
        known: if components == 64 {
            u64::MAX
        } else {
            (1u64 << components) - 1
        },
        census: Census {
            live: 0,
            holders: [0; MAX_COMPONENTS],
        },
        run: Run::of(0, &parts.layout),
        reusable: 0,
    };
    // Blocks of slots where the run goes on take one vectorized test each; any other
    // block is checked slot by slot, so a refusal names the same first slot.
    let generations = parts.generations.chunks_exact(4 * BLOCK);
    let masks = parts.masks.chunks_exact(8 * BLOCK);
    let tail = (generations.remainder(), masks.remainder());
    let blocks = generations.zip(masks).chain(std::iter::once(tail));
    for (block, (generations, masks)) in blocks.enumerate() {
        let first = (block * BLOCK) as u32;
        if generations.len() == 4 * BLOCK && table.run_goes_on(first, generations, masks) {
            continue;
        }
        for (i, (generation, mask)) in u32s(generations).zip(u64s(masks)).enumerate() {
            let slot = first + i as u32;
            if let Err(problem) = table.check(slot, generation, mask, &parts.layout) {
                return bad(slot, problem);
            }
        }
    }
    let Table {
        mut census,
        run,
        reusable,
        ..
    } = table;
    run.count_into(&mut census.holders);
    if reusable != parts.layout.header.free {
        return bad(
            parts.layout.header.slots,
            "free list length differs from the number of free slots",
        );
    }
    marks.clear();
    marks.resize((parts.layout.header.slots as usize).div_ceil(64), 0);
    let generations = parts.generations;
    for slot in u32s(parts.free) {
        let index = slot as usize;
        let generation = match generations.get(4 * index..4 * index + 4) {
            Some(g) => u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            None => return bad(slot, "free list names a slot beyond the table"),
        };
        if generation & 1 == 1 || generation == 0 {
            return bad(slot, "free list names a live or retired slot");
        }
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if marks[word] & bit != 0 {
            return bad(slot, "free list names a slot twice");
        }
        marks[word] |= bit;
    }
    Ok(census)
}

/// Slots of the entity table checked at once where a run of live slots goes on.
const BLOCK: usize = 8;

/// [`validate_entities`]'s state as it walks the entity table.
struct Table {
    /// The registered components' bits.
    known: u64,
    census: Census,
    /// The run of live slots the walk is in.
    run: Run,
    /// Dead slots whose generation allows reuse.
    reusable: u32,
}

impl Table {
    /// Checks one slot; on error, says what is wrong with it.
    fn check(
        &mut self,
        slot: u32,
        generation: u32,
        mask: u64,
        layout: &ImageLayout,
    ) -> Result<(), &'static str> {
        if generation & 1 == 1 {
            if mask != self.run.mask {
                if mask & !self.known != 0 {
                    return Err("mask names an unregistered component");
                }
                self.run.count_into(&mut self.census.holders);
                self.run = Run::of(mask, layout);
            }
            if !self.run.inside.contains(&slot) {
                return Err("component outside its column's window");
            }
            self.run.len += 1;
            self.census.live += 1;
        } else if mask != 0 {
            return Err("dead slot has components");
        } else if generation != 0 {
            self.reusable += 1;
        }
        Ok(())
    }

    /// Takes the [`BLOCK`] slots from `first` at once if each is live with the run's
    /// mask and inside its windows: what [`Table::check`] would find, one slot at a time.
    fn run_goes_on(&mut self, first: u32, generations: &[u8], masks: &[u8]) -> bool {
        let live = u32s(generations).fold(1, |all, generation| all & generation) & 1 == 1;
        let same = u64s(masks).fold(0, |other, mask| other | (mask ^ self.run.mask)) == 0;
        let last = first + (BLOCK as u32 - 1);
        let inside = self.run.inside.contains(&first) && self.run.inside.contains(&last);
        let goes_on = live && same && inside;
        if goes_on {
            self.run.len += BLOCK as u32;
            self.census.live += BLOCK as u32;
        }
        goes_on
    }
}

/// A run of live slots with the same component mask. Live entities come in such runs
/// (one kind of entity spawned together): a run's slots must lie inside every one of
/// its columns' windows, whose intersection is `inside`, and its holders are counted
/// once the run ends.
struct Run {
    mask: u64,
    /// The slots inside every one of the mask's columns' windows.
    inside: Range<u32>,
    /// The run's slots so far.
    len: u32,
}

impl Run {
    fn of(mask: u64, layout: &ImageLayout) -> Run {
        let inside = columns_of(mask).fold(0..u32::MAX, |inside, column| {
            let window = layout.window(column);
            inside.start.max(window.start)..inside.end.min(window.end)
        });
        Run {
            mask,
            inside,
            len: 0,
        }
    }

    /// Adds the run's slots to the holders of each of its components.
    fn count_into(&self, holders: &mut [u32; MAX_COMPONENTS]) {
        for column in columns_of(self.mask) {
            holders[column] += self.len;
        }
    }
}

/// Replaces `target` with the little-endian `bytes` (a whole number of `T`s): one copy.
fn copy_pods<T: Pod>(target: &mut Vec<T>, bytes: &[u8]) {
    let len = bytes.len() / size_of::<T>();
    // Only elements beyond the old length are zeroed first: the rest is overwritten.
    target.truncate(len);
    target.resize(len, T::zeroed());
    bytemuck::cast_slice_mut(target).copy_from_slice(bytes);
}

/// Checks `image` completely, as [`Frame::restore_image`] would before restoring it:
/// lengths, counts, column windows and the entity table's invariants.
pub fn validate_image(image: &[u8], schema: &Schema) -> Result<ImageLayout, ImageError> {
    let parts = split(image, schema)?;
    validate_entities(&parts, schema.components().len(), &mut Vec::new())?;
    Ok(parts.layout)
}

impl<G: Pod> Frame<G> {
    /// The layout of this frame's image: header and column windows.
    pub fn image_layout(&self) -> ImageLayout {
        let world = self.world();
        let entities = &world.entities;
        let mut layout = ImageLayout {
            header: ImageHeader {
                tick: self.tick(),
                capacity: entities.capacity,
                slots: entities.slots() as u32,
                free: entities.free.len() as u32,
            },
            windows: [[0, 0]; MAX_COMPONENTS],
            columns: world.columns.len(),
        };
        for (pair, column) in layout.windows.iter_mut().zip(&world.columns) {
            let window = column.window();
            *pair = [window.start, window.end];
        }
        layout
    }

    /// Hands the frame's image (see the module docs) to `sink`, section by section.
    pub fn write_image(&self, mut sink: impl FnMut(&[u8])) {
        let world = self.world();
        let entities = &world.entities;
        let layout = self.image_layout();
        sink(&layout.header.to_bytes());
        sink(bytemuck::cast_slice(&layout.windows[..layout.columns]));
        sink(bytemuck::bytes_of(self.globals()));
        sink(bytemuck::cast_slice(&entities.generations));
        sink(bytemuck::cast_slice(&entities.masks));
        sink(bytemuck::cast_slice(&entities.free));
        for column in &world.columns {
            sink(column.bytes());
        }
    }

    /// Length in bytes of the frame's image.
    pub fn image_len(&self) -> usize {
        self.image_layout().image_len(self.schema()) as usize
    }

    /// Replaces this frame's whole state with `image` (as written by
    /// [`Frame::write_image`] for a frame of the same schema), after checking every
    /// length and the entity table's invariants. On error the frame is unchanged.
    /// Buffers are reused: restoring an image no larger than the last one allocates
    /// nothing.
    pub fn restore_image(&mut self, image: &[u8]) -> Result<(), ImageError> {
        let (tick, globals, world) = self.restore_parts();
        let parts = split(image, world.schema())?;
        let components = world.schema().components().len();
        let census = validate_entities(&parts, components, &mut world.restore_marks)?;
        // Validated: from here on nothing can fail.
        *tick = parts.layout.header.tick;
        *globals = bytemuck::pod_read_unaligned(parts.globals);
        restore_world(world, &parts, &census);
        self.mark_whole();
        Ok(())
    }
}

fn restore_world(world: &mut World, parts: &Parts<'_>, census: &Census) {
    let entities = &mut world.entities;
    entities.capacity = parts.layout.header.capacity;
    copy_pods(&mut entities.generations, parts.generations);
    copy_pods(&mut entities.masks, parts.masks);
    copy_pods(&mut entities.free, parts.free);
    entities.live = census.live;
    let mut rest = parts.columns;
    for (index, column) in world.columns.iter_mut().enumerate() {
        let window = parts.layout.window(index);
        let len = (window.end - window.start) as usize * column.value_size();
        let (bytes, tail) = rest.split_at(len);
        column.restore(window, bytes);
        rest = tail;
    }
    let components = world.holders.len();
    world.holders.copy_from_slice(&census.holders[..components]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;
    use bytemuck::Zeroable;

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct A(u32);

    fn frame() -> Frame<u64> {
        let schema = Schema::builder::<u64>("img", 1)
            .component::<A>("a")
            .build()
            .unwrap();
        let mut frame = Frame::new(schema, 16, 5).unwrap();
        let world = frame.world_mut();
        let e = world.spawn_with((A(1),)).unwrap();
        world.spawn_with((A(2),)).unwrap();
        world.spawn().unwrap();
        world.despawn(e).unwrap();
        frame
    }

    fn image(frame: &Frame<u64>) -> Vec<u8> {
        let mut bytes = Vec::new();
        frame.write_image(|b| bytes.extend_from_slice(b));
        bytes
    }

    #[test]
    fn restore_round_trips_into_a_fresh_frame() {
        let original = frame();
        let bytes = image(&original);
        assert_eq!(bytes.len(), original.image_len());
        let mut copy = Frame::new(Arc::clone(original.schema()), 0, 0u64).unwrap();
        copy.restore_image(&bytes).unwrap();
        assert_eq!(checksum(&copy), checksum(&original));
        assert_eq!(copy.world().len(), 2);
        assert_eq!(copy.world().query::<&A>().unwrap().count(), 1);
        assert_eq!(copy.world().capacity(), 16);
    }

    #[test]
    fn broken_invariants_are_refused_and_leave_the_target_alone() {
        let original = frame();
        let good = image(&original);
        let mut target = frame();
        target.world_mut().spawn().unwrap();
        let before = checksum(&target);
        let header = IMAGE_HEADER_LEN + 8 + 8; // header, one column window, u64 globals
        // Slot 0 is free (its generation is 2); make it claim a component.
        let mut dead_with_mask = good.clone();
        dead_with_mask[header + 4 * 3] = 1;
        // Make the free list name slot 1 (alive).
        let mut live_in_free = good.clone();
        let free_at = header + 12 * 3;
        live_in_free[free_at] = 1;
        for bad in [
            dead_with_mask,
            live_in_free,
            good[..good.len() - 1].to_vec(),
        ] {
            assert!(target.restore_image(&bad).is_err());
            assert_eq!(checksum(&target), before);
        }
    }

    use std::sync::Arc;

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct B(u16);

    #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
    #[repr(C)]
    struct C(u64);

    /// The entity table's rules checked slot by slot and bit by bit, the plain way
    /// (`validate_entities` checks runs of equal masks at once): the live count and each
    /// component's holders, or the first slot that breaks a rule.
    fn census_bit_by_bit(parts: &Parts<'_>, components: usize) -> Result<(u32, Vec<u32>), u32> {
        let (mut live, mut holders) = (0, vec![0u32; components]);
        for (slot, (generation, mask)) in u32s(parts.generations).zip(u64s(parts.masks)).enumerate()
        {
            let slot = slot as u32;
            if generation & 1 == 0 {
                if mask != 0 {
                    return Err(slot);
                }
                continue;
            }
            live += 1;
            for column in (0..64).filter(|c| mask >> c & 1 == 1) {
                if column >= components || !parts.layout.window(column).contains(&slot) {
                    return Err(slot);
                }
                holders[column] += 1;
            }
        }
        Ok((live, holders))
    }

    /// A world of three components built by `ops` (spawn kinds, despawns, inserts and
    /// removals), its image, and the image with the masks of some slots overwritten.
    fn world_image(ops: &[(u8, u8)], rewrites: &[(u8, u64)]) -> (Arc<Schema>, Vec<u8>) {
        let schema = Schema::builder::<u64>("runs", 1)
            .component::<A>("a")
            .component::<B>("b")
            .component::<C>("c")
            .build()
            .unwrap();
        let mut frame = Frame::new(Arc::clone(&schema), 48, 0).unwrap();
        let world = frame.world_mut();
        let mut alive = Vec::new();
        for &(op, pick) in ops {
            let target = (!alive.is_empty()).then(|| alive[pick as usize % alive.len()]);
            // A spawn makes up to a dozen entities of one kind: runs of one mask.
            for _ in 0..=pick % 12 {
                let spawned = match op % 7 {
                    0 => world.spawn_with((A(1),)),
                    1 => world.spawn_with((A(2), B(3))),
                    2 => world.spawn_with((C(4),)),
                    3 => world.spawn(),
                    _ => break,
                };
                alive.extend(spawned.ok());
            }
            match (op % 7, target) {
                (4, Some(e)) => {
                    world.despawn(e).unwrap();
                    alive.retain(|&x| x != e);
                }
                (5, Some(e)) => drop(world.insert(e, B(5))),
                (6, Some(e)) => drop(world.remove::<A>(e)),
                _ => {}
            }
        }
        let mut bytes = image(&frame);
        let parts = split(&bytes, &schema).unwrap();
        let masks_at = bytes.len() - parts.masks.len() - parts.free.len() - parts.columns.len();
        let slots = parts.layout.header.slots.max(1) as usize;
        for &(slot, mask) in rewrites {
            let slot = slot as usize % slots;
            let at = masks_at + 8 * slot;
            if let Some(word) = bytes.get_mut(at..at + 8) {
                word.copy_from_slice(&mask.to_le_bytes());
            }
        }
        (schema, bytes)
    }

    #[test]
    fn a_block_of_one_mask_reaching_past_a_window_is_refused_at_the_slot_outside() {
        // Slots 0..15 hold `a`; slot 15 holds `c` and then claims `a` too. The run of
        // `a` goes on through the second block of slots (8..16), whose last slot is
        // outside `a`'s window (0..15).
        let mut ops = vec![(0, 0); 15];
        ops.push((2, 0));
        let (schema, bytes) = world_image(&ops, &[(15, 0b001)]);
        let parts = split(&bytes, &schema).unwrap();
        assert_eq!(parts.layout.window(0), 0..15);
        assert_eq!(census_bit_by_bit(&parts, 3), Err(15));
        match validate_entities(&parts, 3, &mut Vec::new()) {
            Err(ImageError::InconsistentEntities { slot, .. }) => assert_eq!(slot, 15),
            other => panic!(
                "expected a refusal at slot 15, got {:?}",
                other.map(|c| c.live)
            ),
        }
    }

    proptest::proptest! {
        /// Checking runs of equal masks finds exactly what checking every bit of every
        /// slot finds: the same counts, and a refusal wherever a rule is broken (a
        /// component outside its window, or not in the schema; a dead slot with one).
        #[test]
        fn runs_of_masks_are_checked_and_counted_like_every_bit(
            ops in proptest::collection::vec((0u8..7, proptest::num::u8::ANY), 0..60),
            rewrites in proptest::collection::vec(
                (proptest::num::u8::ANY, proptest::sample::select(vec![0u64, 1, 2, 3, 4, 5, 7, 8, 1 << 63])),
                0..3,
            ),
        ) {
            let (schema, bytes) = world_image(&ops, &rewrites);
            let parts = split(&bytes, &schema).unwrap();
            let expected = census_bit_by_bit(&parts, 3);
            let found = validate_entities(&parts, 3, &mut Vec::new());
            match (expected, found) {
                (Ok((live, holders)), Ok(census)) => {
                    proptest::prop_assert_eq!(census.live, live);
                    proptest::prop_assert_eq!(&census.holders[..3], &holders[..]);
                }
                (Err(slot), Err(ImageError::InconsistentEntities { slot: found, .. })) => {
                    proptest::prop_assert_eq!(found, slot, "the first slot breaking a rule");
                }
                (expected, found) => proptest::prop_assert!(
                    false,
                    "bit by bit {:?}, by runs {:?}",
                    expected,
                    found.map(|c| c.live)
                ),
            }
        }
    }
}
