//! What the networked subcommands share: transport flags, how a client trusts the
//! server, the app version, logging.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tickstep_net::{Fingerprint, Trust};

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

/// How `play` knows the server: `--server-cert-sha256` or `--ca`.
#[derive(Args, Clone)]
pub struct TrustArgs {
    /// The SHA-256 of the server's certificate, as `serve` prints it ("certificate
    /// sha256 ..."): the connection goes ahead only with that certificate.
    #[arg(long, value_name = "HEX", conflicts_with = "ca")]
    server_cert_sha256: Option<String>,
    /// Trust server certificates issued by the CA certificates in this PEM file (the
    /// certificate must name the --server host).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

impl TrustArgs {
    /// The trust these flags ask for; one of them is required.
    pub fn trust(&self) -> Result<Trust, String> {
        match (&self.server_cert_sha256, &self.ca) {
            (Some(hex), _) => Ok(Trust::Pinned(
                Fingerprint::parse(hex).map_err(|e| e.to_string())?,
            )),
            (None, Some(path)) => Trust::ca_file(path).map_err(|e| e.to_string()),
            (None, None) => Err(
                "say how to trust the server: --server-cert-sha256 HEX (printed by serve) or --ca FILE"
                    .into(),
            ),
        }
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
