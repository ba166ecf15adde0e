//! A server process as an Agones GameServer, through the SDK sidecar's local REST
//! endpoints (`POST /ready`, `/health`, `/allocate`, `/shutdown` on
//! `localhost:$AGONES_SDK_HTTP_PORT`). [`run_lifecycle`] says Ready once the sidecar
//! answers, Health every [`HEALTH_EVERY`], and Allocate and Shutdown when the host
//! says so, in order.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::http::{HttpError, post};

/// The environment variable Agones sets to the SDK's REST port.
pub const SDK_PORT_VARIABLE: &str = "AGONES_SDK_HTTP_PORT";
/// The SDK's REST port when the variable is not set.
pub const DEFAULT_SDK_PORT: u16 = 9358;
/// Health pings are this far apart (Agones' default check period is 5 s).
pub const HEALTH_EVERY: Duration = Duration::from_secs(2);
/// The sidecar may start after the server: Ready is retried this long.
const READY_PATIENCE: Duration = Duration::from_secs(60);

/// What an SDK call can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgonesError {
    /// The port variable does not hold a port number.
    #[error("{SDK_PORT_VARIABLE} is {0:?}, not a port number")]
    BadPort(String),
    /// The sidecar could not be reached.
    #[error("the Agones SDK at {addr} cannot be reached: {error}")]
    Unreachable {
        /// Where it was called.
        addr: SocketAddr,
        /// What failed.
        error: HttpError,
    },
    /// The sidecar answered with an error.
    #[error("the Agones SDK answered {path} with HTTP {status}")]
    Status {
        /// The call.
        path: &'static str,
        /// Its status code.
        status: u16,
    },
    /// Health was not said: the server is not well (a loop did not answer).
    #[error("health not said: {0}")]
    Unwell(&'static str),
}

/// The SDK sidecar's REST endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgonesSdk {
    addr: SocketAddr,
}

impl AgonesSdk {
    /// The sidecar on localhost at the port `AGONES_SDK_HTTP_PORT` names (default
    /// 9358).
    pub fn from_env() -> Result<AgonesSdk, AgonesError> {
        let port = match std::env::var(SDK_PORT_VARIABLE) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| AgonesError::BadPort(text))?,
            Err(_) => DEFAULT_SDK_PORT,
        };
        Ok(AgonesSdk::at((Ipv4Addr::LOCALHOST, port).into()))
    }

    /// The sidecar at `addr`.
    pub fn at(addr: SocketAddr) -> AgonesSdk {
        AgonesSdk { addr }
    }

    /// Where the sidecar is called.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server is ready to take players.
    pub async fn ready(&self) -> Result<(), AgonesError> {
        self.call("/ready").await
    }

    /// The server is alive.
    pub async fn health(&self) -> Result<(), AgonesError> {
        self.call("/health").await
    }

    /// The server has a game: mark it allocated (a fleet scales down only idle ones).
    pub async fn allocate(&self) -> Result<(), AgonesError> {
        self.call("/allocate").await
    }

    /// The server's work is done: Agones may delete it.
    pub async fn shutdown(&self) -> Result<(), AgonesError> {
        self.call("/shutdown").await
    }

    async fn call(&self, path: &'static str) -> Result<(), AgonesError> {
        let addr = self.addr;
        match post(addr, path, "{}").await {
            Ok(200..=299) => Ok(()),
            Ok(status) => Err(AgonesError::Status { path, status }),
            Err(error) => Err(AgonesError::Unreachable { addr, error }),
        }
    }
}

/// What the host tells the lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// A game started: Allocate.
    Allocated,
    /// The last game ended: Shutdown.
    Finished,
}

/// Says Ready (retried while the sidecar is not up yet), then Health every
/// [`HEALTH_EVERY`] while `well` says the server is (so a stuck server loop is seen by
/// Agones, which restarts the GameServer), and what `said` asks for, in the order
/// asked, until Shutdown was said or `said` closes. Failures go to `note` and do not
/// stop the lifecycle.
pub async fn run_lifecycle<W: Future<Output = Result<(), &'static str>>>(
    sdk: AgonesSdk,
    mut said: mpsc::UnboundedReceiver<Lifecycle>,
    mut well: impl FnMut() -> W,
    mut note: impl FnMut(&str, Result<(), AgonesError>),
) {
    let patience = tokio::time::Instant::now() + READY_PATIENCE;
    loop {
        let ready = sdk.ready().await;
        let retry = ready.is_err() && tokio::time::Instant::now() < patience;
        if !retry {
            note("ready", ready);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut health = tokio::time::interval(HEALTH_EVERY);
    let mut allocated = false;
    loop {
        tokio::select! {
            _ = health.tick() => {
                let said = match well().await {
                    Ok(()) => sdk.health().await,
                    Err(why) => Err(AgonesError::Unwell(why)),
                };
                if let Err(error) = said {
                    note("health", Err(error));
                }
            }
            order = said.recv() => match order {
                Some(Lifecycle::Allocated) if !allocated => {
                    allocated = true;
                    note("allocate", sdk.allocate().await);
                }
                Some(Lifecycle::Allocated) => {}
                Some(Lifecycle::Finished) => {
                    note("shutdown", sdk.shutdown().await);
                    return;
                }
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;

    /// A stand-in SDK sidecar: answers every request 200 and logs its path.
    async fn stand_in() -> (AgonesSdk, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sdk = AgonesSdk::at(listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let head = crate::http::read_head(&mut stream)
                    .await
                    .unwrap_or_default();
                if let Some((_, path)) = crate::http::request_line(&head) {
                    log.lock().unwrap().push(path.to_string());
                }
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.write_all(answer).await;
            }
        });
        (sdk, calls)
    }

    /// The calls a lifecycle makes when the server is `well` (or not) for its first
    /// health tick, then finishes.
    async fn calls_when(well: Result<(), &'static str>) -> (Vec<String>, Vec<String>) {
        let (sdk, calls) = stand_in().await;
        let (tell, said) = mpsc::unbounded_channel();
        let mut notes = Vec::new();
        let lifecycle = run_lifecycle(
            sdk,
            said,
            || async move { well },
            |call, result| {
                if result.is_err() {
                    notes.push(call.to_string());
                }
            },
        );
        let finish = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tell.send(Lifecycle::Finished).unwrap();
        };
        tokio::join!(lifecycle, finish);
        let calls = calls.lock().unwrap().clone();
        (calls, notes)
    }

    #[tokio::test]
    async fn health_is_said_only_while_the_server_is_well() {
        let (calls, notes) = calls_when(Ok(())).await;
        assert_eq!(calls, ["/ready", "/health", "/shutdown"]);
        assert!(notes.is_empty(), "{notes:?}");
        let (calls, notes) = calls_when(Err("a loop is stuck")).await;
        assert_eq!(calls, ["/ready", "/shutdown"]);
        assert_eq!(notes, ["health"]);
    }
}
