//! The `tickstep` binary's contract: flags, JSON fields, exit codes, one-line errors.

use std::process::{Command, Output};

fn tickstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tickstep"))
        .args(args)
        .output()
        .expect("the tickstep binary runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON object")
}

#[test]
fn run_json_has_the_documented_fields_and_repeats_exactly() {
    let args = [
        "run",
        "--entities",
        "200",
        "--ticks",
        "90",
        "--seed",
        "7",
        "--json",
    ];
    let first = json(&tickstep(&args));
    assert_eq!(first["tick"], 90);
    let sum = first["checksum"].as_str().unwrap();
    assert!(sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(first["entities"].as_u64().unwrap() >= 202);
    assert!(first["ticks_per_sec"].as_f64().unwrap() > 0.0);
    let second = json(&tickstep(&args));
    assert_eq!(first["checksum"], second["checksum"]);
    let other_seed = json(&tickstep(&[
        "run",
        "--entities",
        "200",
        "--ticks",
        "90",
        "--seed",
        "8",
        "--json",
    ]));
    assert_ne!(first["checksum"], other_seed["checksum"]);
}

#[test]
fn bad_arguments_give_one_line_and_a_nonzero_exit() {
    for args in [
        &["run", "--bogus"][..],
        &["run", "--entities", "many"],
        &["run", "--players", "0"],
        &["run", "--ticks", "-5"],
        &["explode"],
    ] {
        let output = tickstep(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn no_arguments_prints_usage_and_fails() {
    let output = tickstep(&[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage"));
}

#[test]
fn help_exits_zero_and_lists_subcommands() {
    let output = tickstep(&["--help"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("run"));
}
