//! `tickstep snapshot verify|inspect|diff`: examine arena snapshot files.

use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use tickstep_arena as arena;
use tickstep_snapshot::{self as snapshot, Summary};

use crate::files;
use crate::output::{difference_line, emit};

/// `tickstep snapshot ...`.
#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Check a snapshot's header, schema and checksum; exit non-zero if anything is wrong.
    Verify(VerifyArgs),
    /// Summarise a snapshot: tick, schema hash, checksum, size, entity and component counts.
    Inspect(InspectArgs),
    /// Name every entity, component and field that differs between two snapshots.
    Diff(DiffArgs),
}

/// Arguments of `snapshot verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The snapshot file.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `snapshot inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The snapshot file.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `snapshot diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// Snapshot A.
    a: PathBuf,
    /// Snapshot B.
    b: PathBuf,
    /// Most differences to list (all are counted).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs this subcommand; an error is the one line `main` prints.
pub fn run(command: &SnapshotCommand) -> Result<(), String> {
    match command {
        SnapshotCommand::Verify(args) => verify(args),
        SnapshotCommand::Inspect(args) => inspect(args),
        SnapshotCommand::Diff(args) => diff(args),
    }
}

#[derive(Serialize)]
struct VerifyReport {
    ok: bool,
    tick: u64,
    checksum: String,
    bytes: usize,
}

fn verify(args: &VerifyArgs) -> Result<(), String> {
    let bytes = files::read(&args.file)?;
    let verified = snapshot::verify(&bytes, &arena::schema()).map_err(|e| e.to_string())?;
    let info = verified.info();
    let report = VerifyReport {
        ok: true,
        tick: info.tick,
        checksum: info.checksum.to_hex(),
        bytes: info.bytes,
    };
    emit(args.json, &report, |r| {
        format!(
            "ok: tick {}  checksum {}  {} bytes",
            r.tick, r.checksum, r.bytes
        )
    })
}

#[derive(Serialize)]
struct InspectReport {
    #[serde(flatten)]
    summary: Summary,
    /// Component counts by name (the arena's schema), when the schema matches.
    component_counts: Vec<(String, u32)>,
}

fn inspect(args: &InspectArgs) -> Result<(), String> {
    let bytes = files::read(&args.file)?;
    let summary = snapshot::inspect(&bytes).map_err(|e| e.to_string())?;
    let schema = arena::schema();
    let names: Vec<String> = if summary.schema_hash == schema.hash() {
        schema
            .components()
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    } else {
        (0..summary.components.len())
            .map(|i| format!("component {i}"))
            .collect()
    };
    let component_counts = names
        .into_iter()
        .zip(summary.components.iter().copied())
        .collect();
    let report = InspectReport {
        summary,
        component_counts,
    };
    emit(args.json, &report, |r| {
        let s = &r.summary;
        let counts: Vec<String> = r
            .component_counts
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect();
        format!(
            "tick {}\nschema {}\nchecksum {}\nbytes {}\nentities {} (slots {}, capacity {})\ncomponents: {}",
            s.tick,
            s.schema_hash,
            s.checksum,
            s.bytes,
            s.entities,
            s.slots,
            s.capacity,
            counts.join(", ")
        )
    })
}

fn diff(args: &DiffArgs) -> Result<(), String> {
    let (a, b) = (files::read(&args.a)?, files::read(&args.b)?);
    let report = snapshot::diff(&a, &b, &arena::schema(), args.limit).map_err(|e| e.to_string())?;
    emit(args.json, &report, |r| {
        if r.is_empty() {
            return format!("identical (tick {})", r.tick_a);
        }
        let mut lines = vec![format!(
            "{} difference(s) between tick {} (A) and tick {} (B):",
            r.total, r.tick_a, r.tick_b
        )];
        for d in &r.differences {
            lines.push(difference_line(d, "A", "B"));
        }
        if r.total > r.differences.len() {
            lines.push(format!(
                "  ... {} more (raise --limit)",
                r.total - r.differences.len()
            ));
        }
        lines.join("\n")
    })
}
