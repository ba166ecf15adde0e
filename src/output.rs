//! What every subcommand shares: progress bars that show only on a terminal, and
//! printing results as text or as one JSON object.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// A progress bar over `total` steps on stderr; invisible when stderr is not a terminal.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    progress_bar_of(total, what, "ticks")
}

/// [`progress_bar`] counting `unit` (e.g. "seconds", "rounds") instead of ticks.
pub fn progress_bar_of(total: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template =
        format!("{{msg:>10}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// One snapshot difference as `entity component field: A=a B=b` (with `a`/`b` as the
/// two sides' names).
pub fn difference_line(d: &tickstep_snapshot::Difference, a: &str, b: &str) -> String {
    let place = [
        d.entity.as_deref(),
        d.component.as_deref(),
        Some(d.field.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    format!("  {place}: {a}={} {b}={}", d.a, d.b)
}

/// Prints `report` as one line of JSON, or as `text` when `json` is false.
pub fn emit<T: Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    if json {
        let line = serde_json::to_string(report).map_err(|e| format!("cannot encode JSON: {e}"))?;
        say(line)
    } else {
        say(text(report))
    }
}

/// Prints `line` on standard output. A reader that went away (a closed pipe, as in
/// `| head -1`) is no error: nobody is left to tell.
pub fn say(line: impl std::fmt::Display) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

/// `value` rounded to `digits` decimal places, for reports.
pub fn rounded(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
