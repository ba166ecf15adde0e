//! What `tickstep serve` offers its operator besides the game: a metrics page in
//! Prometheus' format and a health check over HTTP, and a graceful stop on SIGTERM or
//! Ctrl-C (a second one stops at once).

use std::time::Duration;
use tickstep_arena::ArenaInput;
use tickstep_net::http::{Response, serve_http};
use tickstep_net::metrics::{CONTENT_TYPE, process_cpu, render};
use tickstep_net::{Control, Look, TransportStats};
use tickstep_session::ServerStats;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How long a page waits for the server loop to answer.
const INSPECT_PATIENCE: Duration = Duration::from_secs(2);

/// Serves `/metrics` and `/healthz` on `listener`, reading the server through
/// `control`, until the future is dropped.
pub async fn serve_metrics(listener: TcpListener, control: mpsc::Sender<Control<ArenaInput>>) {
    serve_http(listener, move |path: String| {
        let control = control.clone();
        async move {
            match path.as_str() {
                "/metrics" => match inspect(&control).await {
                    Some((server, transport)) => {
                        let page = render(&server, &transport, process_cpu());
                        Response::ok(CONTENT_TYPE, page)
                    }
                    None => Response::text(503, "the server loop is not answering\n"),
                },
                "/healthz" => match inspect(&control).await {
                    Some((server, _)) if server.draining => Response::text(200, "draining\n"),
                    Some(_) => Response::text(200, "ok\n"),
                    None => Response::text(503, "the server loop is not answering\n"),
                },
                _ => Response::text(404, "try /metrics or /healthz\n"),
            }
        }
    })
    .await
}

/// The server's and the transport's counters, read between two rounds of the loop;
/// `None` when the loop does not answer in time (stopped or stuck).
async fn inspect(
    control: &mpsc::Sender<Control<ArenaInput>>,
) -> Option<(ServerStats, TransportStats)> {
    let (answer, answered) = oneshot::channel();
    let look: Look<ArenaInput> = Box::new(move |server, transport| {
        let _ = answer.send((server.stats(), *transport));
    });
    control.send(Control::Inspect(look)).await.ok()?;
    tokio::time::timeout(INSPECT_PATIENCE, answered)
        .await
        .ok()?
        .ok()
}

/// On the first SIGTERM or Ctrl-C, drains (running games get `within` to finish);
/// on the second, stops.
pub async fn stop_on_signals(control: mpsc::Sender<Control<ArenaInput>>, within: Duration) {
    signalled().await;
    tracing::info!(
        within_secs = within.as_secs(),
        "draining: no new games; running games may finish"
    );
    let _ = control.send(Control::Drain { within }).await;
    signalled().await;
    tracing::info!("stopping now");
    let _ = control.send(Control::Stop).await;
}

/// Completes on Ctrl-C or SIGTERM.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
