//! What `tickstep serve` offers its operator besides the game: a metrics page in
//! Prometheus' format and a health check over HTTP, and a graceful stop on SIGTERM or
//! Ctrl-C (a second one stops at once).

use std::time::Duration;
use tickstep_arena::ArenaInput;
use tickstep_net::http::{Response, serve_http};
use tickstep_net::metrics::{CONTENT_TYPE, process_cpu, render};
use tickstep_net::{Control, DoorStatsHandle, Look, TransportStats};
use tickstep_session::{Server, ServerStats};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How long a page waits for the server loop to answer.
const INSPECT_PATIENCE: Duration = Duration::from_secs(2);

/// Serves `/metrics` and `/healthz` on `listener`, reading every shard's server
/// through `controls` and the front door's counts through `door`, until the future is
/// dropped.
pub async fn serve_metrics(
    listener: TcpListener,
    controls: Vec<mpsc::Sender<Control<ArenaInput>>>,
    door: DoorStatsHandle,
) {
    serve_http(listener, move |path: String| {
        let controls = controls.clone();
        let door = door.clone();
        async move {
            match path.as_str() {
                "/metrics" => match inspect(&controls, &door).await {
                    Some((server, transport)) => {
                        let page = render(&server, &transport, process_cpu());
                        Response::ok(CONTENT_TYPE, page)
                    }
                    None => Response::text(503, "the server loop is not answering\n"),
                },
                "/healthz" => match inspect(&controls, &door).await {
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

/// Every shard's server and transport counters (read between two rounds of its
/// loop) and the front door's, as one; `None` when a loop does not answer in time
/// (stopped or stuck).
async fn inspect(
    controls: &[mpsc::Sender<Control<ArenaInput>>],
    door: &DoorStatsHandle,
) -> Option<(ServerStats, TransportStats)> {
    let mut answers = Vec::with_capacity(controls.len());
    for control in controls {
        let (answer, answered) = oneshot::channel();
        let look: Look<ArenaInput> = Box::new(move |server, transport| {
            let _ = answer.send((server.stats(), *transport));
        });
        control.send(Control::Inspect(look)).await.ok()?;
        answers.push(answered);
    }
    let mut server = ServerStats::default();
    let mut transport = TransportStats {
        handshakes_refused: door.stats().handshakes_refused,
        ..TransportStats::default()
    };
    let deadline = tokio::time::Instant::now() + INSPECT_PATIENCE;
    for answered in answers {
        let (shard, shard_transport) = tokio::time::timeout_at(deadline, answered)
            .await
            .ok()?
            .ok()?;
        server.merge(&shard);
        transport.merge(&shard_transport);
    }
    Some((server, transport))
}

/// After its shard stopped, answers what `orders` asks of its final `served` state
/// until every shard has stopped (the metrics page keeps adding it up).
pub async fn linger(
    served: Option<&(Server<ArenaInput>, TransportStats)>,
    orders: &mut mpsc::Receiver<Control<ArenaInput>>,
    finished: &tokio::sync::Barrier,
) {
    let everyone = finished.wait();
    tokio::pin!(everyone);
    loop {
        tokio::select! {
            _ = &mut everyone => return,
            order = orders.recv() => match (order, served) {
                (Some(Control::Inspect(look)), Some((server, transport))) => look(server, transport),
                (Some(_), _) => {}
                // Nobody asks any more: wait for the others.
                (None, _) => {
                    (&mut everyone).await;
                    return;
                }
            },
        }
    }
}

/// On the first SIGTERM or Ctrl-C, drains every shard (running games get `within`
/// to finish); on the second, stops them.
pub async fn stop_on_signals(controls: Vec<mpsc::Sender<Control<ArenaInput>>>, within: Duration) {
    signalled().await;
    tracing::info!(
        within_secs = within.as_secs(),
        "draining: no new games; running games may finish"
    );
    for control in &controls {
        let _ = control.send(Control::Drain { within }).await;
    }
    signalled().await;
    tracing::info!("stopping now");
    for control in &controls {
        let _ = control.send(Control::Stop).await;
    }
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
