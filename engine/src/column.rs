//! `Column`: one component type's values for every entity slot, as raw aligned bytes.
//!
//! Slot `i` of every column belongs to the entity in slot `i` of the entity table, so a
//! query walks its columns side by side, and cloning or snapshotting a column is one
//! copy of `slots × size` bytes. Bytes of slots without the component are kept zero, so
//! equal game states have equal bytes.

use bytemuck::Pod;

/// A 16-byte-aligned byte buffer holding `size`-byte values, one per entity slot. Opaque
/// outside the engine: it only appears in the signatures of the query traits.
#[derive(Debug, Default)]
pub struct Column {
    /// Backing store; `u128` words give every supported component its alignment.
    words: Vec<u128>,
    /// Bytes per value.
    size: usize,
}

impl Clone for Column {
    fn clone(&self) -> Self {
        let mut words = Vec::with_capacity(self.words.capacity());
        words.extend_from_slice(&self.words);
        Column {
            words,
            size: self.size,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.words.clone_from(&source.words);
        self.size = source.size;
    }
}

impl Column {
    /// An empty column for `size`-byte values with room for `capacity` slots.
    pub(crate) fn new(size: usize, capacity: usize) -> Column {
        Column {
            words: Vec::with_capacity((capacity * size).div_ceil(16)),
            size,
        }
    }

    /// Bytes per value.
    pub(crate) fn item_size(&self) -> usize {
        self.size
    }

    /// Grows or shrinks to `slots` values; new slots are zero.
    pub(crate) fn resize(&mut self, slots: usize) {
        self.words.resize((slots * self.size).div_ceil(16), 0);
    }

    /// The first `slots` values as bytes.
    pub(crate) fn bytes(&self, slots: usize) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..slots * self.size]
    }

    /// The first `slots` values as mutable bytes.
    pub(crate) fn bytes_mut(&mut self, slots: usize) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..slots * self.size]
    }

    /// The first `slots` values as `T`s (the caller checked `T` is this column's type).
    pub(crate) fn typed<T: Pod>(&self, slots: usize) -> &[T] {
        bytemuck::cast_slice(self.bytes(slots))
    }

    /// The first `slots` values as mutable `T`s (the caller checked the type).
    pub(crate) fn typed_mut<T: Pod>(&mut self, slots: usize) -> &mut [T] {
        bytemuck::cast_slice_mut(self.bytes_mut(slots))
    }

    /// Zeroes the value in `slot` (the component was removed).
    pub(crate) fn clear(&mut self, slot: usize) {
        let size = self.size;
        self.bytes_mut(slot + 1)[slot * size..].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_views_share_bytes_and_new_slots_are_zero() {
        let mut column = Column::new(8, 4);
        column.resize(3);
        column.typed_mut::<u64>(3)[1] = 0x0102_0304_0506_0708;
        assert_eq!(
            column.bytes(3)[8..16],
            0x0102_0304_0506_0708u64.to_le_bytes()
        );
        column.clear(1);
        column.resize(4);
        assert_eq!(column.typed::<u64>(4), &[0, 0, 0, 0]);
    }

    #[test]
    fn odd_sizes_pack_without_padding() {
        let mut column = Column::new(3, 10);
        column.resize(5);
        assert_eq!(column.bytes(5).len(), 15);
        column.typed_mut::<[u8; 3]>(5)[4] = [1, 2, 3];
        assert_eq!(&column.bytes(5)[12..], &[1, 2, 3]);
    }
}
