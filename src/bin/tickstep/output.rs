//! What every subcommand shares: progress bars that show only on a terminal, and
//! printing results as text or as one JSON object.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// A progress bar over `total` steps on stderr; invisible when stderr is not a terminal.
pub fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {pos}/{len} ticks ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Prints `report` as one line of JSON, or as `text` when `json` is false.
pub fn emit<T: Serialize>(
    json: bool,
    report: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), String> {
    if json {
        let line = serde_json::to_string(report).map_err(|e| format!("cannot encode JSON: {e}"))?;
        println!("{line}");
    } else {
        println!("{}", text(report));
    }
    Ok(())
}
