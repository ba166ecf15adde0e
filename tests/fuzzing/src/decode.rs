//! Hostile bytes for every decoder: snapshots, chunks and replay files.

use tickstep_arena::{
    self as arena, ArenaConfig, ArenaGlobals, ArenaInput, ArenaRun, RecordOptions,
};
use tickstep_engine::checksum;
use tickstep_replay::{self as replay, Replay};
use tickstep_snapshot::{self as snapshot, Chunk, Reassembler};

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
    snapshot::encode(game.frame(), &mut bytes);
    bytes
}

/// Applies `edits` (position modulo the length, byte) to `bytes`, then cuts them to
/// `cut` bytes (modulo the length + 1).
fn edit_and_cut(bytes: &mut Vec<u8>, edits: &[(u16, u8)], cut: Option<u16>) {
    if bytes.is_empty() {
        return;
    }
    for &(at, value) in edits {
        let at = at as usize % bytes.len();
        bytes[at] = value;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut as usize % (bytes.len() + 1));
    }
}

/// `valid_snapshot(ticks)` with `edits` (position, byte) applied and cut to `cut` bytes.
/// With `reseal`, the header's payload checksum is recomputed after the edits, as a
/// forger would: blake3 is not a MAC, so the checks behind the checksum must hold alone.
pub fn edited_snapshot(ticks: u8, edits: &[(u16, u8)], cut: Option<u16>, reseal: bool) -> Vec<u8> {
    let mut bytes = valid_snapshot(ticks);
    edit_and_cut(&mut bytes, edits, cut);
    if reseal && let Ok(header) = snapshot::format::read_header(&bytes) {
        let sum = blake3::hash(&bytes[header.header_len()..]);
        bytes[64..96].copy_from_slice(sum.as_bytes());
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

/// A valid arena snapshot's wire form (LZ4) with `edits` applied and cut to `cut` bytes.
pub fn edited_wire(ticks: u8, edits: &[(u16, u8)], cut: Option<u16>) -> Vec<u8> {
    let mut wire = Vec::new();
    snapshot::wire::compress(&valid_snapshot(ticks), &mut wire);
    edit_and_cut(&mut wire, edits, cut);
    wire
}

/// Decompresses hostile wire bytes within `limit` raw bytes and decodes whatever comes
/// out as a snapshot. Panics only if the output breaks the limit or a decoder panics.
pub fn decode_hostile_wire(bytes: &[u8], limit: u64) {
    let mut out = Vec::new();
    if snapshot::wire::decompress(bytes, limit, &mut out).is_ok() {
        assert!(out.len() as u64 <= limit, "decompressed past the limit");
        decode_hostile_snapshot(&out);
    } else {
        assert!(out.is_empty(), "an error produces nothing");
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
        decode_hostile_wire(&bytes, limit);
    }
}

/// A valid arena replay of `ticks % 48` ticks: the starting point for edits.
pub fn valid_replay(ticks: u8) -> Vec<u8> {
    let config = ArenaConfig {
        units: 16,
        players: 2,
        seed: 3,
    };
    let options = RecordOptions {
        checksum_every: 4,
        checkpoint_every: 16,
    };
    let mut bytes = Vec::new();
    arena::record(&config, ticks as u64 % 48, options, &mut bytes, |_| {})
        .expect("recording into memory cannot fail");
    bytes
}

/// `valid_replay(ticks)` with `edits` applied and cut to `cut` bytes.
pub fn edited_replay(ticks: u8, edits: &[(u16, u8)], cut: Option<u16>) -> Vec<u8> {
    let mut bytes = valid_replay(ticks);
    edit_and_cut(&mut bytes, edits, cut);
    bytes
}

/// Reads hostile `bytes` as an arena replay and, if that works, verifies it and seeks
/// into it. Panics (the property fails) only if something inside panics, or if a replay
/// that parsed cannot be re-simulated up to its last tick.
pub fn decode_hostile_replay(bytes: &[u8]) {
    let schema = arena::schema();
    let Ok(parsed) = Replay::<ArenaInput>::parse(bytes, &schema) else {
        return;
    };
    let mut simulation = arena::simulation();
    if let Ok(report) = replay::verify(&parsed, &schema, &mut simulation, |_| {}) {
        let stopped_early = report.checkpoint_diff.is_some();
        assert!(stopped_early || report.ticks == parsed.last_tick());
    }
    let middle = parsed.initial.0 + (parsed.last_tick() - parsed.initial.0) / 2;
    let _ = replay::seek(&parsed, &schema, &mut simulation, middle);
}
