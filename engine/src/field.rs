//! Field layouts: optional descriptions of a component's fields, so a desync diff can
//! name `body.pos.x` and print `12.5` instead of "bytes 0..8 differ".

use crate::{Entity, Fp};

/// How to read one field's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `i8`.
    I8,
    /// `u8`.
    U8,
    /// `i16`.
    I16,
    /// `u16`.
    U16,
    /// `i32`.
    I32,
    /// `u32`.
    U32,
    /// `i64`.
    I64,
    /// `u64`.
    U64,
    /// [`Fp`], shown as a decimal.
    Fp,
    /// [`Entity`], shown as `index v generation`.
    Entity,
}

impl FieldKind {
    /// A stable number for the kind (part of the schema hash; never reuse one).
    pub const fn code(self) -> u8 {
        match self {
            FieldKind::I8 => 1,
            FieldKind::U8 => 2,
            FieldKind::I16 => 3,
            FieldKind::U16 => 4,
            FieldKind::I32 => 5,
            FieldKind::U32 => 6,
            FieldKind::I64 => 7,
            FieldKind::U64 => 8,
            FieldKind::Fp => 9,
            FieldKind::Entity => 10,
        }
    }

    /// Size of the field in bytes.
    pub const fn size(self) -> usize {
        match self {
            FieldKind::I8 | FieldKind::U8 => 1,
            FieldKind::I16 | FieldKind::U16 => 2,
            FieldKind::I32 | FieldKind::U32 => 4,
            FieldKind::I64 | FieldKind::U64 | FieldKind::Fp | FieldKind::Entity => 8,
        }
    }

    /// The value in `bytes` (exactly [`FieldKind::size`] long, little-endian) as text.
    pub fn render(self, bytes: &[u8]) -> String {
        let mut raw = [0u8; 8];
        let n = bytes.len().min(8);
        raw[..n].copy_from_slice(&bytes[..n]);
        let unsigned = u64::from_le_bytes(raw);
        match self {
            FieldKind::I8 => (unsigned as u8 as i8).to_string(),
            FieldKind::I16 => (unsigned as u16 as i16).to_string(),
            FieldKind::I32 => (unsigned as u32 as i32).to_string(),
            FieldKind::I64 => (unsigned as i64).to_string(),
            FieldKind::U8 | FieldKind::U16 | FieldKind::U32 | FieldKind::U64 => {
                unsigned.to_string()
            }
            FieldKind::Fp => Fp::from_bits(unsigned as i64).to_string(),
            FieldKind::Entity => bytemuck::pod_read_unaligned::<Entity>(&raw).to_string(),
        }
    }
}

/// One named field of a component or of the globals: its byte offset and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Name shown in diffs, e.g. `pos.x`.
    pub name: &'static str,
    /// Byte offset in the struct (use `std::mem::offset_of!`).
    pub offset: usize,
    /// How to read it.
    pub kind: FieldKind,
}

impl Field {
    /// A field named `name` of kind `kind` at byte `offset`.
    pub const fn new(name: &'static str, offset: usize, kind: FieldKind) -> Field {
        Field { name, offset, kind }
    }

    /// The byte range the field occupies.
    pub const fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.kind.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_reads_little_endian_values_of_each_kind() {
        assert_eq!(FieldKind::I32.render(&(-5i32).to_le_bytes()), "-5");
        assert_eq!(FieldKind::U16.render(&700u16.to_le_bytes()), "700");
        assert_eq!(
            FieldKind::Fp.render(&Fp::from_ratio(5, 2).to_bits().to_le_bytes()),
            "2.5"
        );
        let entity = bytemuck::bytes_of(&Entity::from_parts(3, 7)).to_vec();
        assert_eq!(FieldKind::Entity.render(&entity), "3v7");
    }
}
