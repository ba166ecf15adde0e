//! `tickstep bench snapshot`: snapshot encode, verify and restore against memcpy,
//! blake3 and the checksummed postcard snapshot, over the same arena frame.

use clap::Args;
use serde::Serialize;
use std::hint::black_box;
use tickstep_arena::serde_snapshot::SerdeWorld;
use tickstep_arena::{self as arena, ArenaConfig, ArenaRun};
use tickstep_snapshot as snapshot;

use super::seconds_per_call;
use crate::output::{emit, progress_bar_of};

/// Arguments of `bench snapshot`.
#[derive(Args)]
pub struct SnapshotBenchArgs {
    /// Units in the arena whose frame is snapshotted.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    entities: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The figures of `bench snapshot`; field names are a stable contract.
#[derive(Serialize)]
struct SnapshotBenchReport {
    entities: u32,
    /// Bytes of the in-memory world (the frame image); every throughput is over these.
    bytes: usize,
    snapshot_bytes: usize,
    postcard_bytes: usize,
    memcpy_gbps: f64,
    blake3_gbps: f64,
    bound_gbps: f64,
    encode_gbps: f64,
    verify_gbps: f64,
    restore_gbps: f64,
    encode_vs_bound: f64,
    restore_vs_bound: f64,
    postcard_encode_gbps: f64,
    postcard_decode_gbps: f64,
    vs_postcard: f64,
    restore_vs_postcard: f64,
    /// Bytes of the snapshot's wire form (LZ4), what a transfer sends.
    wire_bytes: usize,
    /// Compressing the snapshot for the wire, over `bytes`.
    compress_gbps: f64,
    /// Decompressing the wire form, over `bytes`.
    decompress_gbps: f64,
    /// The time compress + decompress adds to encode + restore, as a fraction.
    wire_overhead: f64,
}

/// Runs `bench snapshot`.
pub(crate) fn run(args: &SnapshotBenchArgs) -> Result<(), String> {
    let config = ArenaConfig {
        units: args.entities,
        players: 4,
        seed: 1,
    };
    let mut game = ArenaRun::new(&config).map_err(|e| e.to_string())?;
    game.run_to(60, |_| {}).map_err(|e| e.to_string())?;
    let frame = game.frame();
    let bytes = frame.image_len();
    let gbps = |seconds: f64| bytes as f64 / seconds / 1e9;
    let bar = progress_bar_of(9, "measuring", "steps");

    let source = vec![0x5au8; bytes];
    let mut target = vec![0u8; bytes];
    let memcpy = gbps(seconds_per_call(|| {
        target.copy_from_slice(black_box(&source))
    }));
    bar.inc(1);
    let blake3 = gbps(seconds_per_call(|| {
        black_box(blake3::hash(black_box(&source)));
    }));
    bar.inc(1);

    let mut encoded = Vec::new();
    snapshot::encode(frame, &mut encoded);
    let encode = gbps(seconds_per_call(|| {
        snapshot::encode(black_box(frame), &mut encoded);
    }));
    bar.inc(1);
    let schema = arena::schema();
    let verify = gbps(seconds_per_call(|| {
        black_box(snapshot::verify(black_box(&encoded), &schema).is_ok());
    }));
    bar.inc(1);
    let mut restored = frame.clone();
    let restore = gbps(seconds_per_call(|| {
        black_box(snapshot::restore(black_box(&encoded), &mut restored).is_ok());
    }));
    bar.inc(1);

    let mut wire = Vec::new();
    snapshot::wire::compress(&encoded, &mut wire);
    let compress = gbps(seconds_per_call(|| {
        snapshot::wire::compress(black_box(&encoded), &mut wire);
    }));
    bar.inc(1);
    let mut unpacked = Vec::new();
    let limit = encoded.len() as u64;
    let decompress = gbps(seconds_per_call(|| {
        black_box(snapshot::wire::decompress(black_box(&wire), limit, &mut unpacked).is_ok());
    }));
    if unpacked != encoded {
        return Err("the wire form did not decompress to the snapshot (a bug)".into());
    }
    bar.inc(1);

    let world = SerdeWorld::from_frame(frame);
    let (mut postcard, hash) = world
        .encode_checked(Vec::new())
        .map_err(|e| e.to_string())?;
    let postcard_encode = gbps(seconds_per_call(|| {
        let out = std::mem::take(&mut postcard);
        if let Ok((out, hash)) = world.encode_checked(out) {
            black_box(hash);
            postcard = out;
        }
    }));
    bar.inc(1);
    let postcard_decode = gbps(seconds_per_call(|| {
        black_box(SerdeWorld::decode_checked(black_box(&postcard), &hash));
    }));
    bar.finish_and_clear();

    let bound = 1.0 / (1.0 / memcpy + 1.0 / blake3);
    let report = SnapshotBenchReport {
        entities: args.entities,
        bytes,
        snapshot_bytes: encoded.len(),
        postcard_bytes: postcard.len(),
        memcpy_gbps: memcpy,
        blake3_gbps: blake3,
        bound_gbps: bound,
        encode_gbps: encode,
        verify_gbps: verify,
        restore_gbps: restore,
        encode_vs_bound: encode / bound,
        restore_vs_bound: restore / bound,
        postcard_encode_gbps: postcard_encode,
        postcard_decode_gbps: postcard_decode,
        vs_postcard: encode / postcard_encode,
        restore_vs_postcard: restore / postcard_decode,
        wire_bytes: wire.len(),
        compress_gbps: compress,
        decompress_gbps: decompress,
        wire_overhead: (1.0 / compress + 1.0 / decompress) / (1.0 / encode + 1.0 / restore),
    };
    emit(args.json, &report, |r| {
        format!(
            "world {} bytes ({} entities); snapshot {} bytes, postcard {} bytes\n\
             memcpy {:.2} GB/s, blake3 {:.2} GB/s, bound (memcpy+blake3) {:.2} GB/s\n\
             encode  {:.2} GB/s = {:.2}x bound, {:.1}x postcard+blake3 ({:.2} GB/s)\n\
             verify  {:.2} GB/s\n\
             restore {:.2} GB/s = {:.2}x bound, {:.1}x blake3+postcard decode ({:.2} GB/s)\n\
             wire (LZ4) {} bytes; compress {:.2} GB/s, decompress {:.2} GB/s: +{:.0}% on encode + restore",
            r.bytes,
            r.entities,
            r.snapshot_bytes,
            r.postcard_bytes,
            r.memcpy_gbps,
            r.blake3_gbps,
            r.bound_gbps,
            r.encode_gbps,
            r.encode_vs_bound,
            r.vs_postcard,
            r.postcard_encode_gbps,
            r.verify_gbps,
            r.restore_gbps,
            r.restore_vs_bound,
            r.restore_vs_postcard,
            r.postcard_decode_gbps,
            r.wire_bytes,
            r.compress_gbps,
            r.decompress_gbps,
            r.wire_overhead * 100.0
        )
    })
}
