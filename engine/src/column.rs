//! `Column`: one component type's values for a window of entity slots, as raw aligned
//! bytes.
//!
//! Slot `s` of a column belongs to the entity in slot `s` of the entity table, so a query
//! walks its columns side by side, and cloning or snapshotting a column is one copy.
//! A column holds only the window `lo..hi` of slots that have ever had its component, so
//! a component that few entities have (a player's ship among 100k units) costs bytes for
//! those few, not for every slot. The window grows (never shrinks) as a pure function of
//! the operations applied (so peers that applied the same operations hold the same
//! windows). Bytes of slots without the component are kept zero, so nothing removed
//! lingers in checksums or snapshots; the same holds for the unused tail of the last
//! backing word, which a widening window takes over.

use bytemuck::Pod;
use std::ops::Range;

/// A 16-byte-aligned byte buffer holding `size`-byte values for slots `lo..hi`. Opaque
/// outside the engine: it only appears in the signatures of the query traits.
#[derive(Debug, Default)]
pub struct Column {
    /// Backing store; `u128` words give every supported component its alignment.
    words: Vec<u128>,
    /// Bytes per value.
    size: usize,
    /// First slot held.
    lo: u32,
    /// One past the last slot held (`lo == hi` when the column holds nothing).
    hi: u32,
}

impl Clone for Column {
    fn clone(&self) -> Self {
        let mut words = Vec::with_capacity(self.words.capacity());
        words.extend_from_slice(&self.words);
        Column { words, ..*self }
    }

    fn clone_from(&mut self, source: &Self) {
        self.words.clone_from(&source.words);
        self.size = source.size;
        self.lo = source.lo;
        self.hi = source.hi;
    }
}

impl Column {
    /// An empty column for `size`-byte values with room for `capacity` slots.
    pub(crate) fn new(size: usize, capacity: usize) -> Column {
        Column {
            words: Vec::with_capacity((capacity * size).div_ceil(16)),
            size,
            lo: 0,
            hi: 0,
        }
    }

    /// Bytes per value.
    pub(crate) fn value_size(&self) -> usize {
        self.size
    }

    /// The window of slots held.
    pub(crate) fn window(&self) -> Range<u32> {
        self.lo..self.hi
    }

    fn held(&self) -> usize {
        (self.hi - self.lo) as usize
    }

    /// Sets the window to `window` holding `bytes` (exactly its length).
    pub(crate) fn restore(&mut self, window: Range<u32>, bytes: &[u8]) {
        self.lo = window.start;
        self.hi = window.end;
        let words = (self.held() * self.size).div_ceil(16);
        // Only words beyond the old length are zeroed first: the rest is overwritten,
        // except the last word's tail past the values, which must be zero for slots the
        // window grows into later.
        self.words.truncate(words);
        self.words.resize(words, 0);
        if let Some(last) = self.words.last_mut() {
            *last = 0;
        }
        self.bytes_mut().copy_from_slice(bytes);
    }

    /// Empties the column and makes it hold just `slot`, zeroed.
    fn start_at(&mut self, slot: u32) {
        self.lo = slot;
        self.hi = slot + 1;
        self.words.clear();
        self.words.resize(self.size.div_ceil(16), 0);
    }

    /// Widens the window to hold `slot`. Growing downward moves the values, so it widens
    /// by at least the current width to keep repeated growth linear overall.
    pub(crate) fn hold(&mut self, slot: u32) {
        if self.lo == self.hi {
            self.start_at(slot);
        } else if slot >= self.hi {
            self.hi = slot + 1;
            self.words.resize((self.held() * self.size).div_ceil(16), 0);
        } else if slot < self.lo {
            let new_lo = slot.min(self.lo.saturating_sub(self.hi - self.lo));
            let shift = (self.lo - new_lo) as usize * self.size;
            let old_len = self.held() * self.size;
            self.lo = new_lo;
            self.words.resize((self.held() * self.size).div_ceil(16), 0);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.words);
            bytes.copy_within(..old_len, shift);
            bytes[..shift].fill(0);
        }
    }

    /// The held values as bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.held() * self.size]
    }

    /// The held values as mutable bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.held() * self.size;
        &mut bytemuck::cast_slice_mut(&mut self.words)[..len]
    }

    /// The values of slots `window` (empty, or inside the held window) as `T`s; the
    /// caller checked that `T` is this column's type.
    pub(crate) fn typed<T: Pod>(&self, window: Range<usize>) -> &[T] {
        match self.offsets(window) {
            Some(within) => &bytemuck::cast_slice(self.bytes())[within],
            None => &[],
        }
    }

    /// The values of slots `window` as mutable `T`s (the caller checked the type).
    pub(crate) fn typed_mut<T: Pod>(&mut self, window: Range<usize>) -> &mut [T] {
        match self.offsets(window) {
            Some(within) => &mut bytemuck::cast_slice_mut(self.bytes_mut())[within],
            None => &mut [],
        }
    }

    /// `window` relative to the held window, or `None` when it is empty.
    fn offsets(&self, window: Range<usize>) -> Option<Range<usize>> {
        let lo = self.lo as usize;
        (!window.is_empty()).then(|| window.start - lo..window.end - lo)
    }

    /// Byte range of `slot`'s value in [`Column::bytes`], if the window holds it.
    pub(crate) fn value_range(&self, slot: usize) -> Option<Range<usize>> {
        let within = slot
            .checked_sub(self.lo as usize)
            .filter(|&i| i < self.held())?;
        Some(within * self.size..(within + 1) * self.size)
    }

    /// Zeroes the value in `slot` (the component was removed).
    pub(crate) fn clear(&mut self, slot: usize) {
        if let Some(range) = self.value_range(slot) {
            self.bytes_mut()[range].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grows_up_and_down_keeping_values() {
        let mut column = Column::new(8, 64);
        column.hold(10);
        column.typed_mut::<u64>(10..11)[0] = 7;
        column.hold(12);
        column.typed_mut::<u64>(12..13)[0] = 9;
        assert_eq!(column.window(), 10..13);
        column.hold(9);
        assert_eq!(column.window(), 7..13, "widened down by at least its width");
        assert_eq!(column.typed::<u64>(7..13), &[0, 0, 0, 7, 0, 9]);
        column.clear(10);
        assert_eq!(column.typed::<u64>(10..11), &[0]);
        assert_eq!(column.value_range(6), None);
        assert_eq!(column.value_range(8), Some(8..16));
    }

    #[test]
    fn restoring_a_narrower_window_leaves_no_stale_bytes_for_later_growth() {
        let mut column = Column::new(8, 8);
        column.hold(0);
        column.hold(1);
        column.typed_mut::<u64>(1..2)[0] = 0xdead;
        column.restore(0..1, &7u64.to_le_bytes());
        column.hold(2);
        assert_eq!(
            column.typed::<u64>(0..3),
            &[7, 0, 0],
            "slot 1 must not resurrect 0xdead"
        );
    }

    #[test]
    fn odd_sizes_pack_without_padding() {
        let mut column = Column::new(3, 10);
        column.hold(0);
        column.hold(4);
        assert_eq!(column.bytes().len(), 15);
        column.typed_mut::<[u8; 3]>(4..5)[0] = [1, 2, 3];
        assert_eq!(&column.bytes()[12..], &[1, 2, 3]);
    }
}
