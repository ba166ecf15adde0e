//! The snapshot header and section table: reading, writing and checking them. The byte
//! layout is documented in `snapshot/FORMAT.md`.

use tickstep_engine::{
    Checksum, Digest, ImageLayout, MAX_COMPONENTS, Schema, SchemaHash, Section, Tick,
};

use crate::SnapshotError;

/// The first eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"TICKSNAP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the fixed part of the header.
pub const FIXED_HEADER_LEN: usize = 104;
/// Bytes per section table entry.
pub const SECTION_ENTRY_LEN: usize = 16;
/// Most sections a snapshot may have: six fixed sections and one per component.
pub const MAX_SECTIONS: u32 = 6 + MAX_COMPONENTS as u32;

/// The decoded fixed header of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// Sections in the payload.
    pub sections: u32,
    /// The schema the frame was written with.
    pub schema_hash: SchemaHash,
    /// The frame's tick.
    pub tick: Tick,
    /// Bytes of payload after the header.
    pub payload_len: u64,
    /// blake3 of the payload: equals the frame's checksum.
    pub checksum: Checksum,
}

impl SnapshotHeader {
    /// Total header length: fixed part plus section table.
    pub fn header_len(&self) -> usize {
        FIXED_HEADER_LEN + self.sections as usize * SECTION_ENTRY_LEN
    }
}

/// The numeric kind of a section in the table.
pub fn section_kind(section: Section) -> u32 {
    match section {
        Section::Header => 1,
        Section::Windows => 2,
        Section::Globals => 3,
        Section::Generations => 4,
        Section::Masks => 5,
        Section::FreeList => 6,
        Section::Column(i) => 16 + i as u32,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

fn digest_at(bytes: &[u8], at: usize) -> Digest {
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&bytes[at..at + 32]);
    Digest(raw)
}

/// Writes the fixed header and the section table for `image` of a frame of `schema`
/// into `out[..header length]`.
pub fn write_header(
    out: &mut [u8],
    schema: &Schema,
    image: &ImageLayout,
    payload_len: u64,
    checksum: Checksum,
) {
    let sections = image.sections(schema).count() as u32;
    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&sections.to_le_bytes());
    out[16..48].copy_from_slice(schema.hash().as_bytes());
    out[48..56].copy_from_slice(&image.header.tick.to_le_bytes());
    out[56..64].copy_from_slice(&payload_len.to_le_bytes());
    out[64..96].copy_from_slice(checksum.as_bytes());
    out[96..104].fill(0);
    for (i, (section, len)) in image.sections(schema).enumerate() {
        let at = FIXED_HEADER_LEN + i * SECTION_ENTRY_LEN;
        out[at..at + 4].copy_from_slice(&section_kind(section).to_le_bytes());
        out[at + 4..at + 8].fill(0);
        out[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
    }
}

/// Reads the fixed header, checking magic, version, reserved bytes, that the section
/// table is present, and that the byte count matches the payload length.
pub fn read_header(bytes: &[u8]) -> Result<SnapshotHeader, SnapshotError> {
    if bytes.len() < FIXED_HEADER_LEN {
        return Err(SnapshotError::Truncated {
            needed: FIXED_HEADER_LEN as u64,
            found: bytes.len(),
        });
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[..8]);
    if magic != MAGIC {
        return Err(SnapshotError::BadMagic { found: magic });
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if bytes[96..104].iter().any(|&b| b != 0) {
        return Err(SnapshotError::ReservedNotZero);
    }
    let header = SnapshotHeader {
        sections: u32_at(bytes, 12),
        schema_hash: digest_at(bytes, 16),
        tick: u64_at(bytes, 48),
        payload_len: u64_at(bytes, 56),
        checksum: digest_at(bytes, 64),
    };
    if header.sections == 0 || header.sections > MAX_SECTIONS {
        return Err(SnapshotError::ImpossibleSection {
            index: header.sections,
            problem: "section count is outside 1..=70",
        });
    }
    let needed = header.header_len() as u64
        + header
            .payload_len
            .min(u64::MAX - header.header_len() as u64);
    if (bytes.len() as u64) < needed {
        return Err(SnapshotError::Truncated {
            needed,
            found: bytes.len(),
        });
    }
    if bytes.len() as u64 > needed {
        return Err(SnapshotError::TrailingBytes {
            expected: needed,
            found: bytes.len(),
        });
    }
    Ok(header)
}

/// The section table's entries: (kind, reserved word, length). `bytes` holds the whole
/// header.
pub fn section_table<'a>(
    bytes: &'a [u8],
    header: &SnapshotHeader,
) -> impl Iterator<Item = (u32, u32, u64)> + 'a {
    (0..header.sections as usize).map(move |i| {
        let at = FIXED_HEADER_LEN + i * SECTION_ENTRY_LEN;
        (
            u32_at(bytes, at),
            u32_at(bytes, at + 4),
            u64_at(bytes, at + 8),
        )
    })
}

/// Checks the section table: zero reserved words and lengths that add up to the payload.
pub fn check_table_sums(bytes: &[u8], header: &SnapshotHeader) -> Result<(), SnapshotError> {
    let mut total: u64 = 0;
    for (index, (_, reserved, len)) in section_table(bytes, header).enumerate() {
        let index = index as u32;
        if reserved != 0 {
            return Err(SnapshotError::ImpossibleSection {
                index,
                problem: "reserved word is not zero",
            });
        }
        total = total
            .checked_add(len)
            .ok_or(SnapshotError::ImpossibleSection {
                index,
                problem: "lengths overflow",
            })?;
    }
    if total != header.payload_len {
        return Err(SnapshotError::ImpossibleSection {
            index: header.sections,
            problem: "section lengths do not add up to the payload length",
        });
    }
    Ok(())
}

/// Checks that the section table is exactly the one a frame of `schema` with image
/// layout `image` has.
pub fn check_table_matches(
    bytes: &[u8],
    header: &SnapshotHeader,
    schema: &Schema,
    image: &ImageLayout,
) -> Result<(), SnapshotError> {
    let expected = image.sections(schema);
    if expected.count() as u32 != header.sections {
        return Err(SnapshotError::ImpossibleSection {
            index: header.sections,
            problem: "section count differs from the schema's",
        });
    }
    let table = section_table(bytes, header);
    for (index, ((kind, _, len), (section, expected_len))) in
        table.zip(image.sections(schema)).enumerate()
    {
        if kind != section_kind(section) {
            let problem = "section kind out of order";
            return Err(SnapshotError::ImpossibleSection {
                index: index as u32,
                problem,
            });
        }
        if len != expected_len {
            let problem = "section length differs from what the frame header implies";
            return Err(SnapshotError::ImpossibleSection {
                index: index as u32,
                problem,
            });
        }
    }
    Ok(())
}
