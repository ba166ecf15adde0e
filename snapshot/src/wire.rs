//! The wire form of a snapshot: compressed for transfer. Local snapshots, their
//! checksums and everything a peer vouches for stay over the raw image; only the bytes
//! in transit are compressed, and the receiver decompresses before it checks anything.
//!
//! Format: the raw length as a little-endian `u32`, the shuffle stride (one byte), then
//! one LZ4 block (`lz4_flex`, safe encoder and decoder) of the snapshot with its bytes
//! shuffled: byte `k` of every 16-byte group goes to plane `k` (the trailing partial
//! group stays as it is). A frame image is columns of small integers and fixed-point
//! values whose high bytes are mostly 0 or 0xff; grouping bytes of equal significance
//! turns them into runs LZ4 finds (a 10k-unit arena: 605 KB raw, 267 KB plain LZ4,
//! 232 KB shuffled, smaller than its postcard form, and faster to compress).
//!
//! A snapshot above [`MAX_COMPRESSED`] bytes is sent stored (stride byte 0, the bytes as
//! they are): LZ4's size bound would overflow a 32-bit `usize` (i686, wasm32) soon after.
//!
//! Decompressing never trusts the input: the announced length is checked against the
//! caller's limit before any memory is taken, and a block that does not decode to exactly
//! that length is an error.

/// Bytes before the LZ4 block: the raw length and the shuffle stride.
const PREFIX_LEN: usize = 5;

/// Bytes per shuffled group.
const STRIDE: usize = 16;

/// The stride byte of a stored (uncompressed) wire form.
const STORED: u8 = 0;

/// Largest snapshot compressed; above it the wire form is stored.
pub const MAX_COMPRESSED: usize = 32 << 20;

/// LZ4 expands at most about 255 times (each extra byte of a match length adds 255
/// bytes), plus a few bytes: anything claiming more is a lie caught before allocating.
const MAX_RATIO: u64 = 256;

/// Why wire bytes did not decompress. Nothing was produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the length prefix.
    #[error("compressed snapshot of {0} bytes is shorter than its prefix")]
    Truncated(usize),
    /// The announced raw length is above the limit.
    #[error("compressed snapshot announces {announced} bytes, above the limit of {limit}")]
    TooLarge {
        /// The announced raw length.
        announced: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// A shuffle stride this build does not know.
    #[error("compressed snapshot uses shuffle stride {0}; this build knows {STRIDE}")]
    UnknownStride(u8),
    /// The LZ4 block is malformed or decodes to another length than announced.
    #[error("compressed snapshot is corrupt: {0}")]
    Corrupt(String),
}

/// The most wire bytes a snapshot of `raw_limit` bytes can take: LZ4's worst case for
/// incompressible input (`16 + 4 + 110%`, computed in `u64` so it cannot overflow on a
/// 32-bit target), plus the prefix.
pub fn max_wire_len(raw_limit: u64) -> u64 {
    (raw_limit.saturating_mul(110) / 100).saturating_add(20 + PREFIX_LEN as u64)
}

/// Compresses `snapshot` into `out` (replacing its contents). Snapshots above 4 GiB are
/// not supported by the wire form: they are sent with a length every receiver refuses.
pub fn compress(snapshot: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let len = u32::try_from(snapshot.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    if snapshot.len() <= MAX_COMPRESSED {
        let mut shuffled = vec![0; snapshot.len()];
        shuffle(snapshot, &mut shuffled);
        out.push(STRIDE as u8);
        let bound = lz4_flex::block::get_maximum_output_size(snapshot.len());
        out.resize(PREFIX_LEN + bound, 0);
        if let Ok(written) = lz4_flex::block::compress_into(&shuffled, &mut out[PREFIX_LEN..]) {
            out.truncate(PREFIX_LEN + written);
            return;
        }
        out.truncate(PREFIX_LEN - 1);
    }
    out.push(STORED);
    out.extend_from_slice(snapshot);
}

/// Decompresses `wire` into `out` (replacing its contents), refusing more than `limit`
/// raw bytes before allocating anything.
pub fn decompress(wire: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    let Some((&[a, b, c, d, stride], block)) = wire.split_first_chunk::<PREFIX_LEN>() else {
        return Err(WireError::Truncated(wire.len()));
    };
    let announced = u32::from_le_bytes([a, b, c, d]) as u64;
    if announced > limit {
        return Err(WireError::TooLarge { announced, limit });
    }
    if stride == STORED {
        if block.len() as u64 != announced {
            return Err(WireError::Corrupt(format!(
                "stored snapshot of {} bytes announces {announced}",
                block.len()
            )));
        }
        out.extend_from_slice(block);
        return Ok(());
    }
    if stride as usize != STRIDE {
        return Err(WireError::UnknownStride(stride));
    }
    if announced
        > (block.len() as u64)
            .saturating_mul(MAX_RATIO)
            .saturating_add(64)
    {
        return Err(WireError::Corrupt(format!(
            "{} bytes cannot decode to the {announced} announced",
            block.len()
        )));
    }
    let mut shuffled = vec![0; announced as usize];
    match lz4_flex::block::decompress_into(block, &mut shuffled) {
        Ok(n) if n as u64 == announced => {
            out.resize(n, 0);
            unshuffle(&shuffled, out);
            Ok(())
        }
        Ok(n) => Err(WireError::Corrupt(format!(
            "decodes to {n} bytes, not the {announced} announced"
        ))),
        Err(error) => Err(WireError::Corrupt(error.to_string())),
    }
}

/// Byte `k` of group `i` goes to `out[k * groups + i]`; the partial tail is copied.
/// Sixteen groups at a time are a 16x16 byte matrix, transposed in registers.
fn shuffle(input: &[u8], out: &mut [u8]) {
    let groups = input.len() / STRIDE;
    let whole = groups / STRIDE * STRIDE;
    for (b, block) in input.chunks_exact(STRIDE * STRIDE).enumerate() {
        let mut rows = [[0u8; STRIDE]; STRIDE];
        for (row, group) in rows.iter_mut().zip(block.chunks_exact(STRIDE)) {
            row.copy_from_slice(group);
        }
        for (k, plane) in transpose(rows).iter().enumerate() {
            let at = k * groups + b * STRIDE;
            out[at..at + STRIDE].copy_from_slice(plane);
        }
    }
    for i in whole..groups {
        for k in 0..STRIDE {
            out[k * groups + i] = input[i * STRIDE + k];
        }
    }
    out[groups * STRIDE..].copy_from_slice(&input[groups * STRIDE..]);
}

/// The inverse of [`shuffle`] (a transpose is its own inverse).
fn unshuffle(input: &[u8], out: &mut [u8]) {
    let groups = input.len() / STRIDE;
    let whole = groups / STRIDE * STRIDE;
    for (b, block) in out.chunks_exact_mut(STRIDE * STRIDE).enumerate() {
        let mut planes = [[0u8; STRIDE]; STRIDE];
        for (k, plane) in planes.iter_mut().enumerate() {
            let at = k * groups + b * STRIDE;
            plane.copy_from_slice(&input[at..at + STRIDE]);
        }
        for (group, row) in block.chunks_exact_mut(STRIDE).zip(transpose(planes)) {
            group.copy_from_slice(&row);
        }
    }
    for i in whole..groups {
        for k in 0..STRIDE {
            out[i * STRIDE + k] = input[k * groups + i];
        }
    }
    out[groups * STRIDE..].copy_from_slice(&input[groups * STRIDE..]);
}

/// A 16x16 byte matrix transposed: byte `c` of row `r` becomes byte `r` of row `c`.
/// Four rounds interleave the bytes of row `i` with those of row `i + 8` (SSE2's
/// unpack): each rotates an element's 8-bit (row, column) address left by one bit, so
/// four of them swap row and column. The compiler's own vectorizing of the same loops
/// came and went with inlining (from 27 us to 165 us a 605 KB shuffle), so the unpacks
/// are spelled out.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn transpose(rows: [[u8; STRIDE]; STRIDE]) -> [[u8; STRIDE]; STRIDE] {
    use safe_arch::{m128i, unpack_high_i8_m128i, unpack_low_i8_m128i};
    const HALF: usize = STRIDE / 2;
    let mut m: [m128i; STRIDE] = rows.map(m128i::from);
    for _ in 0..4 {
        let before = m;
        for i in 0..HALF {
            m[2 * i] = unpack_low_i8_m128i(before[i], before[i + HALF]);
            m[2 * i + 1] = unpack_high_i8_m128i(before[i], before[i + HALF]);
        }
    }
    m.map(<[u8; STRIDE]>::from)
}

/// A 16x16 byte matrix transposed: byte `c` of row `r` becomes byte `r` of row `c`.
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
fn transpose(rows: [[u8; STRIDE]; STRIDE]) -> [[u8; STRIDE]; STRIDE] {
    transpose_plain(rows)
}

/// The transpose by its definition: what runs without SSE2, and what tests hold the
/// SSE2 one to.
#[cfg(any(
    test,
    not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ))
))]
fn transpose_plain(rows: [[u8; STRIDE]; STRIDE]) -> [[u8; STRIDE]; STRIDE] {
    std::array::from_fn(|c| std::array::from_fn(|r| rows[r][c]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_puts_byte_k_of_group_i_at_k_groups_plus_i_and_unshuffle_undoes_it() {
        for len in [0, 1, 15, 16, 17, 100, 255, 256, 257, 511, 1000, 4099, 8192] {
            let raw: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut shuffled = vec![0; len];
            shuffle(&raw, &mut shuffled);
            let groups = len / STRIDE;
            for (at, &byte) in raw.iter().enumerate() {
                let (i, k) = (at / STRIDE, at % STRIDE);
                let to = if i < groups { k * groups + i } else { at };
                assert_eq!(shuffled[to], byte, "length {len}, byte {at}");
            }
            let mut back = vec![0; len];
            unshuffle(&shuffled, &mut back);
            assert_eq!(back, raw, "length {len}");
        }
    }

    #[test]
    fn the_transpose_in_use_is_the_plain_one() {
        for seed in 0..64u32 {
            let rows: [[u8; STRIDE]; STRIDE] = std::array::from_fn(|r| {
                std::array::from_fn(|c| {
                    let at = (r * STRIDE + c) as u32;
                    (at.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 7) as u8
                })
            });
            assert_eq!(transpose(rows), transpose_plain(rows), "seed {seed}");
            assert_eq!(transpose_plain(transpose_plain(rows)), rows);
        }
    }

    #[test]
    fn round_trips_and_refuses_oversized_truncated_and_corrupt_input() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect();
        let mut wire = Vec::new();
        compress(&raw, &mut wire);
        assert!(
            wire.len() < raw.len() / 2,
            "{} of {}",
            wire.len(),
            raw.len()
        );
        assert!(wire.len() as u64 <= max_wire_len(raw.len() as u64));
        let mut back = Vec::new();
        decompress(&wire, raw.len() as u64, &mut back).expect("round trip");
        assert_eq!(back, raw);

        assert_eq!(
            decompress(&wire, raw.len() as u64 - 1, &mut back),
            Err(WireError::TooLarge {
                announced: raw.len() as u64,
                limit: raw.len() as u64 - 1
            })
        );
        assert_eq!(
            decompress(&wire[..3], u64::MAX, &mut back),
            Err(WireError::Truncated(3))
        );
        assert!(matches!(
            decompress(&wire[..wire.len() / 2], u64::MAX, &mut back),
            Err(WireError::Corrupt(_))
        ));
        // A lying prefix: a small block claiming a huge length.
        let mut lying = wire.clone();
        lying[..4].copy_from_slice(&(raw.len() as u32 * 2).to_le_bytes());
        assert!(matches!(
            decompress(&lying, u64::MAX, &mut back),
            Err(WireError::Corrupt(_))
        ));
        assert!(back.is_empty(), "nothing is produced on an error");

        // A stored wire form round-trips; a stored one of the wrong length does not.
        let mut stored = wire[..4].to_vec();
        stored.push(STORED);
        stored.extend_from_slice(&raw);
        decompress(&stored, u64::MAX, &mut back).expect("stored");
        assert_eq!(back, raw);
        stored.pop();
        assert!(matches!(
            decompress(&stored, u64::MAX, &mut back),
            Err(WireError::Corrupt(_))
        ));
        // A few bytes claiming a huge snapshot are refused before any allocation.
        let mut bomb = u32::MAX.to_le_bytes().to_vec();
        bomb.extend_from_slice(&[STRIDE as u8, 0, 0]);
        assert!(matches!(
            decompress(&bomb, u64::MAX, &mut back),
            Err(WireError::Corrupt(_))
        ));
        let mut strange = wire.clone();
        strange[4] = 8;
        assert_eq!(
            decompress(&strange, u64::MAX, &mut back),
            Err(WireError::UnknownStride(8))
        );
        assert_eq!(max_wire_len(u64::MAX), u64::MAX / 100 + 25);
    }

    #[test]
    fn the_most_compressible_snapshots_pass_the_ratio_check() {
        for len in [0, 1, 100, 10_000, 1_000_000] {
            let zeros = vec![0u8; len];
            let mut wire = Vec::new();
            compress(&zeros, &mut wire);
            let mut back = Vec::new();
            decompress(&wire, len as u64, &mut back).expect("zeros decompress");
            assert_eq!(back.len(), len);
        }
    }

    #[test]
    fn snapshots_above_the_compression_limit_travel_stored() {
        let raw = vec![7u8; MAX_COMPRESSED + 1];
        let mut wire = Vec::new();
        compress(&raw, &mut wire);
        assert_eq!(wire[4], STORED);
        assert_eq!(wire.len(), PREFIX_LEN + raw.len());
        let mut back = Vec::new();
        decompress(&wire, raw.len() as u64, &mut back).expect("stored");
        assert!(back == raw);
    }
}
