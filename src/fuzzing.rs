//! Properties shared by the cargo-fuzz targets in `fuzz/` and their proptest twins in
//! `tests/`, so stable `cargo test` checks what the fuzzers check, with the same code.

use crate::arena::{self, ArenaConfig, ArenaGlobals, ArenaRun};
use crate::engine::checksum;
use crate::snapshot::{self, Chunk, Reassembler};

/// A valid arena snapshot after `ticks % 64` ticks: the starting point for edits.
pub fn valid_snapshot(ticks: u8) -> Vec<u8> {
    let config = ArenaConfig {
        units: 24,
        players: 2,
        seed: 7,
    };
    let mut game = ArenaRun::new(&config).expect("a small arena always builds");
    game.run_to(ticks as u64 % 64, |_| {})
        .expect("bot input is always for the next tick");
    let mut bytes = Vec::new();
    snapshot::encode(&game.frame, &mut bytes);
    bytes
}

/// `valid_snapshot(ticks)` with `edits` (position, byte) applied and cut to `cut` bytes.
pub fn edited_snapshot(ticks: u8, edits: &[(u16, u8)], cut: Option<u16>) -> Vec<u8> {
    let mut bytes = valid_snapshot(ticks);
    for &(at, value) in edits {
        let at = at as usize % bytes.len();
        bytes[at] = value;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut as usize % (bytes.len() + 1));
    }
    bytes
}

/// Decodes hostile `bytes` every way a snapshot is read: inspect, diff, verify, restore,
/// and one tick of simulation on whatever restores. Panics (the property fails) only if
/// a restored frame does not hash to the checksum its header claims, or if anything
/// inside panics.
pub fn decode_hostile_snapshot(bytes: &[u8]) {
    let schema = arena::schema();
    let _ = snapshot::inspect(bytes);
    let _ = snapshot::diff(bytes, bytes, &schema, 8);
    if let Ok(frame) = snapshot::restore_new::<ArenaGlobals>(bytes, schema.clone(), 1 << 16) {
        let claimed = snapshot::verify(bytes, &schema)
            .expect("a restored snapshot verifies")
            .header
            .checksum;
        assert_eq!(checksum(&frame), claimed);
        let mut game = ArenaRun::from_frame(frame, 1);
        let _ = game.step();
    }
}

/// Feeds `chunks` to a reassembler limited to `limit` bytes; decodes whatever completes.
pub fn reassemble_hostile_chunks(limit: u64, chunks: &[Chunk]) {
    let mut reassembler = Reassembler::new(limit);
    for chunk in chunks {
        let _ = reassembler.add(chunk);
    }
    let _ = reassembler.missing().count();
    if let Ok(bytes) = reassembler.finish() {
        decode_hostile_snapshot(&bytes);
    }
}
