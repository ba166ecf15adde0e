//! `corpus-trace DIR`: decodes every file of a `determinism` fuzz corpus as the fuzz
//! target does and prints one line per file: its name and the blake3 of the straight
//! run's checksum at every tick. Two architectures that print the same lines played
//! every corpus game identically.
#![forbid(unsafe_code)]

use arbitrary::{Arbitrary, Unstructured};
use std::process::ExitCode;
use tickstep_fuzzing::{DeterminismPlan, straight_run};

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: corpus-trace DIR");
        return ExitCode::FAILURE;
    };
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(error) => {
            eprintln!("corpus-trace: {dir}: {error}");
            return ExitCode::FAILURE;
        }
    };
    files.sort();
    if files.is_empty() {
        eprintln!("corpus-trace: {dir} holds no corpus");
        return ExitCode::FAILURE;
    }
    for path in files {
        let plan = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                DeterminismPlan::arbitrary_take_rest(Unstructured::new(&bytes))
                    .map_err(|e| e.to_string())
            });
        let plan = match plan {
            Ok(plan) => plan,
            Err(error) => {
                eprintln!("corpus-trace: {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        };
        // As the fuzz target plays it.
        let plan = DeterminismPlan {
            ticks: plan.ticks % 64,
            ..plan
        };
        let mut hasher = blake3::Hasher::new();
        for sum in straight_run(&plan) {
            hasher.update(sum.as_bytes());
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        println!(
            "{} {}",
            name.unwrap_or_default(),
            hasher.finalize().to_hex()
        );
    }
    ExitCode::SUCCESS
}
