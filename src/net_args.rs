//! What the networked subcommands share: transport flags, the app version, logging.

use clap::Args;
use std::time::Duration;

/// The app version `serve` and `play` agree on.
pub const APP_VERSION: &str = concat!("tickstep ", env!("CARGO_PKG_VERSION"));

/// `--timeout`.
#[derive(Args, Clone)]
pub struct NetArgs {
    /// Seconds of silence after which a peer counts as lost.
    #[arg(long = "timeout", default_value_t = 10.0, value_parser = parse_seconds)]
    timeout_secs: f64,
}

impl NetArgs {
    /// The silence timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if (0.1..=3600.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err("the timeout must be between 0.1 and 3600 seconds".into())
    }
}

/// Logs to stderr; `RUST_LOG` picks the level (default: info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
