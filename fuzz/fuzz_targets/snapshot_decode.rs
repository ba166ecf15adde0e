//! Snapshot decoding on hostile input: arbitrary bytes, a valid snapshot with arbitrary
//! edits, arbitrary chunks, and the LZ4 wire form (raw or edited). See `tickstep_fuzzing` for the properties; the proptest
//! twin in `tests/snapshot.rs` runs the same code on stable.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tickstep_engine::Digest;
use tickstep_fuzzing::{
    decode_hostile_snapshot, decode_hostile_wire, edited_snapshot, edited_wire,
    reassemble_hostile_chunks,
};
use tickstep_snapshot::Chunk;

#[derive(Arbitrary, Debug)]
struct FuzzChunk {
    same_snapshot: bool,
    index: u32,
    count: u32,
    total_len: u16,
    chunk_size: u16,
    honest_hash: bool,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Edited { ticks: u8, edits: Vec<(u16, u8)>, cut: Option<u16>, reseal: bool },
    Chunks { limit: u16, chunks: Vec<FuzzChunk> },
    /// The LZ4 wire form: raw bytes, or a valid snapshot's with edits.
    Wire { raw: Vec<u8>, limit: u32 },
    EditedWire { ticks: u8, edits: Vec<(u16, u8)>, cut: Option<u16>, limit: u32 },
}

fuzz_target!(|input: Input| match input {
    Input::Raw(bytes) => decode_hostile_snapshot(&bytes),
    Input::Edited { ticks, edits, cut, reseal } => {
        decode_hostile_snapshot(&edited_snapshot(ticks, &edits, cut, reseal))
    }
    Input::Chunks { limit, chunks } => {
        let chunks: Vec<Chunk> = chunks
            .into_iter()
            .map(|c| Chunk {
                snapshot: Digest([c.same_snapshot as u8; 32]),
                index: c.index,
                count: c.count,
                total_len: c.total_len as u64,
                chunk_size: c.chunk_size as u32,
                hash: if c.honest_hash { Digest::from(blake3::hash(&c.data)) } else { Digest::default() },
                data: c.data,
            })
            .collect();
        reassemble_hostile_chunks(limit as u64, &chunks);
    }
    Input::Wire { raw, limit } => decode_hostile_wire(&raw, limit as u64),
    Input::EditedWire { ticks, edits, cut, limit } => {
        decode_hostile_wire(&edited_wire(ticks, &edits, cut), limit as u64)
    }
});
