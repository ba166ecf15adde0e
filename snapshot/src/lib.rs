//! tickstep-snapshot: a verified frame as a checksummed byte image, and back.
//!
//! A snapshot is a fixed header (magic, format version, schema hash, tick, payload
//! length, blake3 of the payload), a section table, and the frame's image: its columns,
//! globals and entity table as raw little-endian bytes, trimmed to the slots in use.
//! Every byte is specified in `snapshot/FORMAT.md`.
//!
//! What this crate pursues, in order:
//! 1. **Never trust the input.** Every length is checked before it is used, every
//!    failure is its own [`SnapshotError`], and a frame is only written after the whole
//!    snapshot checked out.
//! 2. **Memcpy speed.** [`encode`] is one copy and one hash; [`restore`] one hash, one
//!    validation pass over the entity table and one copy. Buffers are reused.
//! 3. **Evidence.** [`diff`] names the entity, component and field where two peers'
//!    frames differ; [`inspect`] summarises a snapshot without its schema.
//!
//! The payload hash equals [`tickstep_engine::checksum`] of the frame, so the checksum a
//! peer reported for a tick vouches for a snapshot of that tick.
//!
//! ```
//! # use bytemuck::{Pod, Zeroable};
//! # use tickstep_engine::{checksum, Frame, Schema};
//! # #[derive(Clone, Copy, Pod, Zeroable)] #[repr(C)] struct Hp(u32);
//! let schema = Schema::builder::<u64>("doc", 1).component::<Hp>("hp").build()?;
//! let mut frame = Frame::new(schema.clone(), 64, 0u64)?;
//! frame.world_mut().spawn_with((Hp(3),))?;
//!
//! let mut bytes = Vec::new();
//! let sum = tickstep_snapshot::encode(&frame, &mut bytes);
//! assert_eq!(sum, checksum(&frame));
//!
//! let copy: Frame<u64> = tickstep_snapshot::restore_new(&bytes, schema, 64)?;
//! assert_eq!(checksum(&copy), sum);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod chunk;
mod codec;
mod diff;
mod error;
pub mod format;
mod inspect;
mod sync_test;
pub mod wire;

pub use chunk::{
    Chunk, ChunkError, DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, Progress, Reassembler, split,
};
pub use codec::{
    SnapshotInfo, Verified, check_vouched, encode, max_len, restore, restore_new, verify,
};
pub use diff::{Difference, FrameDiff, diff};
pub use error::SnapshotError;
pub use inspect::{Summary, inspect};
pub use sync_test::{SyncTest, SyncTestError};
