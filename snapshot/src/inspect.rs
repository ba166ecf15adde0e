//! `inspect`: what a snapshot holds, read without a schema.

use serde::Serialize;
use tickstep_engine::{Checksum, ImageHeader, SchemaHash, Tick};

use crate::SnapshotError;
use crate::format::{check_table_sums, read_header, section_table};

/// A snapshot's vital statistics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The frame's tick.
    pub tick: Tick,
    /// The schema it was written with, as hex.
    pub schema_hash: SchemaHash,
    /// The frame's checksum, as hex.
    pub checksum: Checksum,
    /// Total bytes.
    pub bytes: usize,
    /// Live entities.
    pub entities: u32,
    /// Entity slots (live and free).
    pub slots: u32,
    /// Entity capacity.
    pub capacity: u32,
    /// Live entities holding each component, in schema order.
    pub components: Vec<u32>,
}

/// Reads `bytes` and summarises it, verifying the header and checksum (but not the
/// schema, so any tickstep snapshot can be inspected).
pub fn inspect(bytes: &[u8]) -> Result<Summary, SnapshotError> {
    let header = read_header(bytes)?;
    check_table_sums(bytes, &header)?;
    let payload = &bytes[header.header_len()..];
    let found = crate::codec::hash(payload);
    if found != header.checksum {
        return Err(SnapshotError::ChecksumMismatch {
            expected: header.checksum,
            found,
        });
    }
    let image = ImageHeader::parse(payload)?;
    // Walk the table to find the generation and mask sections (kinds 4 and 5).
    let mut offset = 0usize;
    let (mut generations, mut masks) = (&[][..], &[][..]);
    let mut columns = 0;
    for (kind, _, len) in section_table(bytes, &header) {
        let section = &payload[offset..offset + len as usize];
        match kind {
            4 => generations = section,
            5 => masks = section,
            k if k >= 16 => columns += 1,
            _ => {}
        }
        offset += len as usize;
    }
    let entities = generations
        .chunks_exact(4)
        .filter(|g| g[0] & 1 == 1)
        .count() as u32;
    let mut components = vec![0u32; columns.min(64)];
    for mask in masks.chunks_exact(8) {
        let mut bits = u64::from_le_bytes([
            mask[0], mask[1], mask[2], mask[3], mask[4], mask[5], mask[6], mask[7],
        ]);
        while bits != 0 {
            if let Some(count) = components.get_mut(bits.trailing_zeros() as usize) {
                *count += 1;
            }
            bits &= bits - 1;
        }
    }
    Ok(Summary {
        tick: header.tick,
        schema_hash: header.schema_hash,
        checksum: header.checksum,
        bytes: bytes.len(),
        entities,
        slots: image.slots,
        capacity: image.capacity,
        components,
    })
}
