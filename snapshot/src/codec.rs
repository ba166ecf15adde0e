//! Encode a frame into a snapshot; verify a snapshot; restore a frame from one.

use bytemuck::Pod;
use std::sync::Arc;
use tickstep_engine::{Checksum, Frame, ImageLayout, Schema, SchemaHash, Tick};

use crate::SnapshotError;
use crate::format::{
    SnapshotHeader, check_table_matches, check_table_sums, read_header, write_header,
};

/// Payloads at least this long are hashed on every core (with the `parallel` feature).
/// Handing half a hash to another thread costs the time to wake it, ~30 µs on a virtual
/// machine: at 10k arena units (610 KB, ~65 µs to hash) a restore took 87 µs in parallel
/// and 78 µs on one thread (`cargo bench --bench snapshot`); at 100k (6 MB) 687 µs in
/// parallel against 777 µs.
#[cfg(feature = "parallel")]
const PARALLEL_HASH_FROM: usize = 1024 * 1024;

/// blake3 of `bytes`. With the `parallel` feature, inputs of at least
/// `PARALLEL_HASH_FROM` use blake3's multi-threaded mode (its `rayon` feature):
/// hashing is ~80% of a snapshot's cost, and at 100k arena units this is what lets
/// encode and restore beat the single-threaded memcpy+blake3 bound (`tickstep bench
/// snapshot`). The hash is the same either way; snapshots are never taken inside a
/// step.
pub(crate) fn hash(bytes: &[u8]) -> Checksum {
    #[cfg(feature = "parallel")]
    if bytes.len() >= PARALLEL_HASH_FROM {
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(bytes);
        return Checksum::from(hasher.finalize());
    }
    Checksum::from(blake3::hash(bytes))
}

/// Checks that `bytes` are a snapshot of exactly the frame peers vouched for: of
/// `tick`, written with `schema`, with header checksum `checksum`, and a payload that
/// really hashes to it (the header alone could lie). It does not look inside the frame:
/// a side without the schema (a relaying server) can run it; [`restore`] checks the
/// rest. Cost: one hash of the payload.
pub fn check_vouched(
    bytes: &[u8],
    tick: Tick,
    checksum: Checksum,
    schema: SchemaHash,
) -> Result<SnapshotHeader, SnapshotError> {
    let header = read_header(bytes)?;
    if header.schema_hash != schema {
        return Err(SnapshotError::SchemaMismatch {
            expected: schema,
            found: header.schema_hash,
        });
    }
    if header.tick != tick {
        return Err(SnapshotError::UnexpectedTick {
            expected: tick,
            found: header.tick,
        });
    }
    if header.checksum != checksum {
        return Err(SnapshotError::NotVouched {
            expected: checksum,
            found: header.checksum,
        });
    }
    let found = hash(&bytes[header.header_len()..]);
    if found != header.checksum {
        return Err(SnapshotError::ChecksumMismatch {
            expected: header.checksum,
            found,
        });
    }
    Ok(header)
}

/// What a valid snapshot says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The frame's tick.
    pub tick: Tick,
    /// The schema it was written with.
    pub schema_hash: SchemaHash,
    /// The frame's checksum (blake3 of the payload).
    pub checksum: Checksum,
    /// Total bytes.
    pub bytes: usize,
    /// The frame's entity capacity.
    pub capacity: u32,
}

/// The largest snapshot a frame of `schema` holding up to `capacity` entities can
/// have: what a receiver should accept at most (a bigger one cannot be honest).
pub fn max_len(schema: &Schema, capacity: u32) -> u64 {
    use crate::format::{FIXED_HEADER_LEN, SECTION_ENTRY_LEN};
    let columns = schema.components().len() as u64;
    let slots = capacity as u64;
    let header = FIXED_HEADER_LEN as u64 + (6 + columns) * SECTION_ENTRY_LEN as u64;
    let per_slot = 4
        + 8
        + 4
        + schema
            .components()
            .iter()
            .map(|c| c.size as u64)
            .sum::<u64>();
    header
        + tickstep_engine::IMAGE_HEADER_LEN as u64
        + 8 * columns
        + schema.globals_size() as u64
        + per_slot * slots
}

/// Writes a snapshot of `frame` into `out` (cleared first) and returns its checksum,
/// which equals [`tickstep_engine::checksum`] of the frame. `out` is reused: once it has
/// held a snapshot this large, encoding allocates nothing. Cost: one copy and one hash.
pub fn encode<G: Pod>(frame: &Frame<G>, out: &mut Vec<u8>) -> Checksum {
    let schema = frame.schema();
    let image = frame.image_layout();
    let header_len = SnapshotHeader {
        sections: image.sections(schema).count() as u32,
        schema_hash: schema.hash(),
        tick: image.header.tick,
        payload_len: 0,
        checksum: Checksum::default(),
    }
    .header_len();
    out.clear();
    out.reserve(header_len + image.image_len(schema) as usize);
    out.resize(header_len, 0);
    frame.write_image(|bytes| out.extend_from_slice(bytes));
    let (head, payload) = out.split_at_mut(header_len);
    let checksum = hash(payload);
    write_header(head, schema, &image, payload.len() as u64, checksum);
    checksum
}

/// A snapshot that passed [`verify`]: its header, image layout and payload.
#[derive(Clone, Debug)]
pub struct Verified<'a> {
    /// The snapshot header.
    pub header: SnapshotHeader,
    /// The frame image's header and column windows.
    pub image: ImageLayout,
    /// The frame image.
    pub payload: &'a [u8],
}

impl Verified<'_> {
    /// A summary of the snapshot.
    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            tick: self.header.tick,
            schema_hash: self.header.schema_hash,
            checksum: self.header.checksum,
            bytes: self.header.header_len() + self.payload.len(),
            capacity: self.image.header.capacity,
        }
    }
}

/// Checks everything a snapshot says about itself, in this order: header (magic,
/// version, reserved bytes, lengths), schema, section table sums, payload checksum, the
/// frame header inside the payload against the snapshot header and section table, and
/// the frame's entity table: whatever passes, [`restore`] accepts. Restores nothing.
pub fn verify<'a>(bytes: &'a [u8], schema: &Schema) -> Result<Verified<'a>, SnapshotError> {
    let verified = verify_envelope(bytes, schema)?;
    tickstep_engine::validate_image(verified.payload, schema)?;
    Ok(verified)
}

/// Everything [`verify`] checks but the entity table (which restoring checks itself).
fn verify_envelope<'a>(bytes: &'a [u8], schema: &Schema) -> Result<Verified<'a>, SnapshotError> {
    let header = read_header(bytes)?;
    if header.schema_hash != schema.hash() {
        return Err(SnapshotError::SchemaMismatch {
            expected: schema.hash(),
            found: header.schema_hash,
        });
    }
    check_table_sums(bytes, &header)?;
    let payload = &bytes[header.header_len()..];
    let found = hash(payload);
    if found != header.checksum {
        return Err(SnapshotError::ChecksumMismatch {
            expected: header.checksum,
            found,
        });
    }
    let image = ImageLayout::parse(payload, schema)?;
    if image.header.tick != header.tick {
        return Err(SnapshotError::TickMismatch {
            header: header.tick,
            payload: image.header.tick,
        });
    }
    check_table_matches(bytes, &header, schema, &image)?;
    Ok(Verified {
        header,
        image,
        payload,
    })
}

/// Verifies `bytes` and, only if every check passes, replaces `frame`'s state with the
/// snapshot's. The snapshot's capacity may not exceed `frame`'s. Reuses `frame`'s
/// buffers: restoring a snapshot no larger than the last allocates nothing.
pub fn restore<G: Pod>(bytes: &[u8], frame: &mut Frame<G>) -> Result<SnapshotInfo, SnapshotError> {
    let limit = frame.world().capacity();
    restore_within(bytes, frame, limit)
}

fn restore_within<G: Pod>(
    bytes: &[u8],
    frame: &mut Frame<G>,
    limit: u32,
) -> Result<SnapshotInfo, SnapshotError> {
    let verified = verify_envelope(bytes, frame.schema())?;
    if verified.image.header.capacity > limit {
        return Err(SnapshotError::CapacityExceeded {
            capacity: verified.image.header.capacity,
            limit,
        });
    }
    frame.restore_image(verified.payload)?;
    Ok(verified.info())
}

/// A new frame of `schema` restored from `bytes`, whose capacity may be at most
/// `max_capacity` entities.
pub fn restore_new<G: Pod>(
    bytes: &[u8],
    schema: Arc<Schema>,
    max_capacity: u32,
) -> Result<Frame<G>, SnapshotError> {
    let mut frame = Frame::new(schema, 0, G::zeroed())?;
    restore_within(bytes, &mut frame, max_capacity)?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::{Pod, Zeroable};

    #[derive(Clone, Copy, Pod, Zeroable)]
    #[repr(C)]
    struct Hp(u32);

    fn snapshot_at(tick: Tick) -> (Vec<u8>, Checksum, SchemaHash) {
        let schema = Schema::builder::<u64>("vouch", 1)
            .component::<Hp>("hp")
            .build()
            .unwrap();
        let mut frame = Frame::new(schema.clone(), 8, 5u64).unwrap();
        frame.world_mut().spawn_with((Hp(7),)).unwrap();
        let mut sim = tickstep_engine::Simulation::<u64, u8>::new();
        let mut inputs = tickstep_engine::TickInputs::new(1).unwrap();
        for t in 1..=tick {
            inputs.reset(t);
            sim.step(&mut frame, &inputs).unwrap();
        }
        let mut bytes = Vec::new();
        let sum = encode(&frame, &mut bytes);
        (bytes, sum, schema.hash())
    }

    #[test]
    fn max_len_bounds_a_full_frame_up_to_its_empty_free_list() {
        let schema = Schema::builder::<u64>("full", 1)
            .component::<Hp>("hp")
            .build()
            .unwrap();
        let mut frame = Frame::new(schema.clone(), 8, 5u64).unwrap();
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes);
        let bound = max_len(&schema, 8);
        assert!((bytes.len() as u64) < bound, "an empty frame is smaller");
        for _ in 0..8 {
            frame.world_mut().spawn_with((Hp(1),)).unwrap();
        }
        encode(&frame, &mut bytes);
        // Every slot live with every component: only the free list (4 bytes a slot)
        // is empty.
        assert_eq!(bytes.len() as u64, bound - 4 * 8);
    }

    #[test]
    fn only_the_vouched_frame_of_the_expected_tick_passes() {
        let (bytes, sum, schema) = snapshot_at(30);
        assert!(check_vouched(&bytes, 30, sum, schema).is_ok());
        assert!(matches!(
            check_vouched(&bytes, 31, sum, schema),
            Err(SnapshotError::UnexpectedTick {
                expected: 31,
                found: 30
            })
        ));
        let other = Checksum::from(blake3::hash(b"other"));
        assert!(matches!(
            check_vouched(&bytes, 30, other, schema),
            Err(SnapshotError::NotVouched { .. })
        ));
        assert!(matches!(
            check_vouched(&bytes, 30, sum, SchemaHash::default()),
            Err(SnapshotError::SchemaMismatch { .. })
        ));
        // A header that claims the vouched checksum over another payload.
        let mut forged = bytes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(
            check_vouched(&forged, 30, sum, schema),
            Err(SnapshotError::ChecksumMismatch { .. })
        ));
        assert!(check_vouched(&bytes[..50], 30, sum, schema).is_err());
    }
}
