//! `SnapshotError`: one variant per way a snapshot can be wrong.

use tickstep_engine::{Checksum, FrameError, ImageError, SchemaHash};

/// Why a snapshot was refused. Nothing was restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Fewer bytes than the header says there are.
    #[error("snapshot is truncated: {needed} bytes needed, {found} present")]
    Truncated {
        /// Bytes the header implies.
        needed: u64,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the header says there are.
    #[error("snapshot has {found} bytes but its header accounts for {expected}; trailing bytes")]
    TrailingBytes {
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: usize,
    },
    /// Not a tickstep snapshot.
    #[error("not a tickstep snapshot: magic is {found:02x?}, expected \"TICKSNAP\"")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// Written by a format version this build cannot read.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A reserved header field is not zero.
    #[error("snapshot header's reserved field is not zero: corrupt or written by a newer build")]
    ReservedNotZero,
    /// Written by a build with a different schema (components, layout or version).
    #[error(
        "snapshot schema {found} does not match this game's schema {expected}; it comes from another build"
    )]
    SchemaMismatch {
        /// This build's schema hash.
        expected: SchemaHash,
        /// The snapshot's schema hash.
        found: SchemaHash,
    },
    /// The section table disagrees with itself, the payload or the schema.
    #[error("snapshot section {index} is impossible: {problem}")]
    ImpossibleSection {
        /// Index in the section table.
        index: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// The frame's capacity is larger than the restoring side allows.
    #[error("snapshot frame capacity {capacity} exceeds the limit of {limit} entities")]
    CapacityExceeded {
        /// The snapshot's capacity.
        capacity: u32,
        /// The limit.
        limit: u32,
    },
    /// The header's tick differs from the tick inside the payload.
    #[error("snapshot header says tick {header} but its frame is at tick {payload}")]
    TickMismatch {
        /// Tick in the header.
        header: u64,
        /// Tick in the frame image.
        payload: u64,
    },
    /// The payload does not hash to the checksum in the header.
    #[error("snapshot payload checksum is {found}, header says {expected}: the data is corrupt")]
    ChecksumMismatch {
        /// The header's checksum.
        expected: Checksum,
        /// The payload's actual blake3.
        found: Checksum,
    },
    /// The snapshot is of another tick than the one expected.
    #[error("snapshot is of tick {found}, expected tick {expected}")]
    UnexpectedTick {
        /// The tick wanted.
        expected: u64,
        /// The snapshot's tick.
        found: u64,
    },
    /// The snapshot is intact but is not the frame its peers vouched for: its checksum
    /// differs from the one they reported for its tick.
    #[error("snapshot checksum {found} is not the {expected} the peers reported for its tick")]
    NotVouched {
        /// The checksum the peers reported.
        expected: Checksum,
        /// The snapshot's checksum.
        found: Checksum,
    },
    /// The checksum is right but the frame inside breaks the engine's invariants (a
    /// forged snapshot).
    #[error("snapshot frame is invalid: {0}")]
    InvalidFrame(#[from] ImageError),
    /// The frame type asked for does not fit the schema (a bug in the caller).
    #[error(transparent)]
    Frame(#[from] FrameError),
}
