//! Chunked transfer: a snapshot split into checksummed pieces that can arrive in any
//! order, reassembled with missing, duplicate and foreign pieces detected, the total
//! size capped, chunks no smaller than [`MIN_CHUNK_SIZE`], and memory taken only as
//! chunks arrive (an announced size costs nothing until its bytes are sent).

use serde::{Deserialize, Serialize};
use tickstep_engine::Digest;

/// Chunk payload size that keeps a chunk and its envelope inside a 64 KiB message.
pub const DEFAULT_CHUNK_SIZE: usize = 60 * 1024;

/// The smallest chunk size a [`Reassembler`] accepts for snapshots of more than one
/// chunk: tiny chunks would cost per-chunk bookkeeping out of proportion to their
/// bytes.
pub const MIN_CHUNK_SIZE: u32 = 4096;

/// One piece of a snapshot in transit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Identifies the snapshot: blake3 of all its bytes.
    pub snapshot: Digest,
    /// Position, `0..count`.
    pub index: u32,
    /// How many chunks the snapshot has.
    pub count: u32,
    /// The snapshot's total length in bytes.
    pub total_len: u64,
    /// Bytes per chunk (every chunk but the last is this long).
    pub chunk_size: u32,
    /// blake3 of `data`.
    pub hash: Digest,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why a chunk was refused. The reassembly state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk belongs to another snapshot than the first one received.
    #[error("chunk belongs to snapshot {found}, not {expected}")]
    Foreign {
        /// The snapshot being reassembled.
        expected: Digest,
        /// The chunk's snapshot.
        found: Digest,
    },
    /// Same snapshot id but different count, length or chunk size.
    #[error("chunk disagrees with earlier chunks about the snapshot's shape")]
    ShapeMismatch,
    /// The snapshot is larger than this side accepts.
    #[error("snapshot of {total_len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced size.
        total_len: u64,
        /// The limit.
        limit: u64,
    },
    /// The chunk size is below [`MIN_CHUNK_SIZE`] for a snapshot of several chunks.
    #[error("chunks of {chunk_size} bytes are below the minimum of {MIN_CHUNK_SIZE}")]
    TooSmall {
        /// The announced chunk size.
        chunk_size: u32,
    },
    /// Count, size and length do not fit together, or the index is out of range.
    #[error("chunk {index} of {count} (size {chunk_size}, total {total_len}) is impossible")]
    Impossible {
        /// Its index.
        index: u32,
        /// Its count.
        count: u32,
        /// Its chunk size.
        chunk_size: u32,
        /// Its total length.
        total_len: u64,
    },
    /// The chunk's data does not match its hash.
    #[error("chunk {index} is corrupt: its data does not match its hash")]
    Corrupt {
        /// Its index.
        index: u32,
    },
    /// The chunk was received before.
    #[error("chunk {index} was already received")]
    Duplicate {
        /// Its index.
        index: u32,
    },
    /// Reassembly finished with chunks missing.
    #[error("{missing} of {count} chunks are missing (first: {first})")]
    Missing {
        /// How many are missing.
        missing: u32,
        /// Of how many.
        count: u32,
        /// The first missing index.
        first: u32,
    },
    /// All chunks arrived but together they do not hash to the snapshot id.
    #[error("reassembled snapshot does not match its id")]
    WholeMismatch,
    /// The reassembled wire form does not decompress within the limit.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
}

/// Splits `snapshot` into chunks of `chunk_size` bytes (at least 1), in order.
pub fn split(snapshot: &[u8], chunk_size: usize) -> impl Iterator<Item = Chunk> + '_ {
    let chunk_size = chunk_size.clamp(1, u32::MAX as usize);
    let id = crate::codec::hash(snapshot);
    let count = snapshot.len().div_ceil(chunk_size).max(1) as u32;
    (0..count).map(move |index| {
        let start = index as usize * chunk_size;
        let data = snapshot[start..(start + chunk_size).min(snapshot.len())].to_vec();
        Chunk {
            snapshot: id,
            index,
            count,
            total_len: snapshot.len() as u64,
            chunk_size: chunk_size as u32,
            hash: Digest::from(blake3::hash(&data)),
            data,
        }
    })
}

/// Collects the chunks of one snapshot in any order. It holds what arrived, chunk by
/// chunk, and joins them in [`Reassembler::finish`].
#[derive(Debug)]
pub struct Reassembler {
    limit: u64,
    /// Set by the first accepted chunk.
    shape: Option<Shape>,
    /// Each chunk's bytes once it arrived.
    received: Vec<Option<Vec<u8>>>,
    have: u32,
    held: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    snapshot: Digest,
    count: u32,
    total_len: u64,
    chunk_size: u32,
}

/// What [`Reassembler::add`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Chunks received so far.
    pub received: u32,
    /// Chunks in the snapshot.
    pub count: u32,
}

impl Progress {
    /// True when every chunk is in.
    pub fn is_complete(&self) -> bool {
        self.received == self.count
    }
}

impl Reassembler {
    /// A reassembler that refuses snapshots larger than `limit` bytes.
    pub fn new(limit: u64) -> Reassembler {
        Reassembler {
            limit,
            shape: None,
            received: Vec::new(),
            have: 0,
            held: 0,
        }
    }

    /// Bytes of chunk data held so far.
    pub fn held(&self) -> u64 {
        self.held
    }

    fn check_shape(&self, chunk: &Chunk) -> Result<Shape, ChunkError> {
        let shape = Shape {
            snapshot: chunk.snapshot,
            count: chunk.count,
            total_len: chunk.total_len,
            chunk_size: chunk.chunk_size,
        };
        if let Some(known) = self.shape {
            if known.snapshot != shape.snapshot {
                return Err(ChunkError::Foreign {
                    expected: known.snapshot,
                    found: shape.snapshot,
                });
            }
            return if known == shape {
                Ok(known)
            } else {
                Err(ChunkError::ShapeMismatch)
            };
        }
        if shape.total_len > self.limit {
            return Err(ChunkError::TooLarge {
                total_len: shape.total_len,
                limit: self.limit,
            });
        }
        let impossible = ChunkError::Impossible {
            index: chunk.index,
            count: chunk.count,
            chunk_size: chunk.chunk_size,
            total_len: chunk.total_len,
        };
        let expected_count = shape
            .total_len
            .div_ceil(shape.chunk_size.max(1) as u64)
            .max(1);
        if shape.chunk_size == 0 || expected_count != shape.count as u64 {
            return Err(impossible);
        }
        if shape.count > 1 && shape.chunk_size < MIN_CHUNK_SIZE {
            return Err(ChunkError::TooSmall {
                chunk_size: shape.chunk_size,
            });
        }
        Ok(shape)
    }

    /// Accepts one chunk. Errors leave the state unchanged.
    pub fn add(&mut self, chunk: &Chunk) -> Result<Progress, ChunkError> {
        let shape = self.check_shape(chunk)?;
        let start = chunk.index as u64 * shape.chunk_size as u64;
        let expected_len = shape
            .total_len
            .saturating_sub(start)
            .min(shape.chunk_size as u64);
        if chunk.index >= shape.count || chunk.data.len() as u64 != expected_len {
            return Err(ChunkError::Impossible {
                index: chunk.index,
                count: chunk.count,
                chunk_size: chunk.chunk_size,
                total_len: chunk.total_len,
            });
        }
        if Digest::from(blake3::hash(&chunk.data)) != chunk.hash {
            return Err(ChunkError::Corrupt { index: chunk.index });
        }
        if self.shape.is_none() {
            // The count was checked against the limit and the minimum chunk size above:
            // at most limit / MIN_CHUNK_SIZE empty slots.
            self.shape = Some(shape);
            self.received = vec![None; shape.count as usize];
        }
        let slot = &mut self.received[chunk.index as usize];
        if slot.is_some() {
            return Err(ChunkError::Duplicate { index: chunk.index });
        }
        *slot = Some(chunk.data.clone());
        self.have += 1;
        self.held += chunk.data.len() as u64;
        Ok(Progress {
            received: self.have,
            count: shape.count,
        })
    }

    /// Chunks received and expected so far (`0 of 0` before the first).
    pub fn progress(&self) -> Progress {
        Progress {
            received: self.have,
            count: self.shape.map_or(0, |s| s.count),
        }
    }

    /// The indices still missing.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.received
            .iter()
            .enumerate()
            .filter(|(_, got)| got.is_none())
            .map(|(i, _)| i as u32)
    }

    /// The whole snapshot, once every chunk is in and the bytes match the snapshot id.
    pub fn finish(self) -> Result<Vec<u8>, ChunkError> {
        let count = self.shape.map_or(0, |s| s.count);
        let missing = count - self.have;
        if self.shape.is_none() || missing > 0 {
            return Err(ChunkError::Missing {
                missing: missing.max(1),
                count,
                first: self.missing().next().unwrap_or(0),
            });
        }
        let id = self.shape.map(|s| s.snapshot).unwrap_or_default();
        let mut whole = Vec::with_capacity(self.held as usize);
        for data in self.received.into_iter().flatten() {
            whole.extend_from_slice(&data);
        }
        if crate::codec::hash(&whole) != id {
            return Err(ChunkError::WholeMismatch);
        }
        Ok(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn reassembles_in_any_order() {
        let bytes = data(40_000);
        let mut chunks: Vec<Chunk> = split(&bytes, 4096).collect();
        assert_eq!(chunks.len(), 10);
        chunks.reverse();
        chunks.swap(2, 7);
        let mut reassembler = Reassembler::new(1 << 20);
        for chunk in &chunks {
            reassembler.add(chunk).unwrap();
        }
        assert!(reassembler.progress().is_complete());
        assert_eq!(reassembler.finish().unwrap(), bytes);
    }

    #[test]
    fn missing_duplicate_foreign_corrupt_and_oversized_chunks_are_detected() {
        let bytes = data(10_000);
        let chunks: Vec<Chunk> = split(&bytes, 4096).collect();
        let mut reassembler = Reassembler::new(1 << 20);
        reassembler.add(&chunks[0]).unwrap();
        assert_eq!(
            reassembler.add(&chunks[0]),
            Err(ChunkError::Duplicate { index: 0 })
        );
        let other: Vec<Chunk> = split(&data(9000), 4096).collect();
        assert!(matches!(
            reassembler.add(&other[1]),
            Err(ChunkError::Foreign { .. })
        ));
        let mut corrupt = chunks[1].clone();
        corrupt.data[5] ^= 1;
        assert_eq!(
            reassembler.add(&corrupt),
            Err(ChunkError::Corrupt { index: 1 })
        );
        let mut lying = chunks[2].clone();
        lying.total_len += 1;
        assert_eq!(reassembler.add(&lying), Err(ChunkError::ShapeMismatch));
        assert_eq!(reassembler.missing().collect::<Vec<_>>(), vec![1, 2]);
        assert!(matches!(
            reassembler.finish(),
            Err(ChunkError::Missing { missing: 2, .. })
        ));
        let mut small = Reassembler::new(100);
        assert!(matches!(
            small.add(&chunks[0]),
            Err(ChunkError::TooLarge { .. })
        ));
    }

    #[test]
    fn memory_follows_the_bytes_that_arrived_and_tiny_chunks_are_refused() {
        let bytes = data(100_000);
        let chunks: Vec<Chunk> = split(&bytes, 4096).collect();
        let mut reassembler = Reassembler::new(1 << 20);
        reassembler.add(&chunks[24]).unwrap();
        assert_eq!(reassembler.held(), chunks[24].data.len() as u64);
        reassembler.add(&chunks[3]).unwrap();
        assert_eq!(reassembler.held(), 100_000 % 4096 + 4096);
        let tiny: Vec<Chunk> = split(&bytes, 1).take(1).collect();
        assert_eq!(
            Reassembler::new(1 << 20).add(&tiny[0]),
            Err(ChunkError::TooSmall { chunk_size: 1 })
        );
        let whole: Vec<Chunk> = split(&bytes[..10], 16).collect();
        let mut small = Reassembler::new(1 << 20);
        assert!(
            small.add(&whole[0]).unwrap().is_complete(),
            "one small chunk is fine"
        );
        assert_eq!(small.finish().unwrap(), &bytes[..10]);
    }

    #[test]
    fn impossible_shapes_are_refused_before_allocating() {
        let chunk = Chunk {
            snapshot: Digest::default(),
            index: 0,
            count: 1,
            total_len: u64::MAX,
            chunk_size: 0,
            hash: Digest::default(),
            data: Vec::new(),
        };
        assert!(Reassembler::new(u64::MAX).add(&chunk).is_err());
    }
}
