//! What `tickstep serve` offers its operator besides the game: a metrics page in
//! Prometheus' format and a health check over HTTP, a graceful stop on SIGTERM or
//! Ctrl-C (a second one stops at once), and the bookkeeping that keeps every shard's
//! runtime alive until all have stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tickstep_arena::ArenaInput;
use tickstep_net::http::{Response, serve_http};
use tickstep_net::metrics::{CONTENT_TYPE, process_cpu, render};
use tickstep_net::{Control, DoorStatsHandle, Look, TransportStats};
use tickstep_session::{Server, ServerStats};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

/// How long a page waits for the server loops to answer.
const INSPECT_PATIENCE: Duration = Duration::from_secs(2);

/// How long one look at every loop's figures serves `/metrics`: scrapes at once, or
/// in quick succession, share it, so requests cannot keep the loops adding up their
/// rooms' figures (a walk over every room).
const METRICS_FRESH: Duration = Duration::from_secs(1);

/// Every loop's figures, merged, and when they were read.
type Figures = (ServerStats, TransportStats);
/// The last look and when it was taken: the figures, or `None` when a loop did not
/// answer (a stuck loop then costs queued requests no 2 s wait each).
type LastLook = Arc<tokio::sync::Mutex<Option<(Instant, Option<Figures>)>>>;

/// Serves `/metrics` and `/healthz` on `listener`, reading every shard's server
/// through `controls` and the front door's counts through `door`, until the future is
/// dropped.
pub async fn serve_metrics(
    listener: TcpListener,
    controls: Vec<mpsc::Sender<Control<ArenaInput>>>,
    door: DoorStatsHandle,
) {
    let last = LastLook::default();
    serve_http(listener, move |path: String| {
        let controls = controls.clone();
        let door = door.clone();
        let last = last.clone();
        async move {
            let silent = || Response::text(503, "a server loop is not answering\n");
            match path.as_str() {
                "/metrics" => match figures(&controls, &last).await {
                    Some((server, transport)) => {
                        let page = render(&server, &transport, &door.stats(), process_cpu());
                        Response::ok(CONTENT_TYPE, page)
                    }
                    None => silent(),
                },
                // Every loop answers (a cheap question: no walk over the rooms).
                "/healthz" => match ask(&controls, |server, _| server.is_draining()).await {
                    Some(draining) if draining.contains(&true) => Response::text(200, "draining\n"),
                    Some(_) => Response::text(200, "ok\n"),
                    None => silent(),
                },
                _ => Response::text(404, "try /metrics or /healthz\n"),
            }
        }
    })
    .await
}

/// Every loop's figures, merged (`None` if a loop does not answer): the last look if
/// younger than [`METRICS_FRESH`], else a new one (requests meanwhile wait for it and
/// share it).
async fn figures(
    controls: &[mpsc::Sender<Control<ArenaInput>>],
    last: &LastLook,
) -> Option<Figures> {
    let mut last = last.lock().await;
    if let Some((at, figures)) = &*last
        && at.elapsed() < METRICS_FRESH
    {
        return figures.clone();
    }
    let looks = ask(controls, |server, transport| (server.stats(), *transport)).await;
    let merged = looks.map(|looks| {
        let mut merged = Figures::default();
        for (server, transport) in looks {
            merged.0.merge(&server);
            merged.1.merge(&transport);
        }
        merged
    });
    *last = Some((Instant::now(), merged.clone()));
    merged
}

/// Whether every server loop answers a look within [`INSPECT_PATIENCE`].
pub async fn every_loop_answers(
    controls: Vec<mpsc::Sender<Control<ArenaInput>>>,
) -> Result<(), &'static str> {
    match ask(&controls, |_, _| ()).await {
        Some(_) => Ok(()),
        None => Err("a server loop is not answering"),
    }
}

/// What `look` reads from each shard's server and transport counters (between two
/// rounds of its loop); `None` when a loop does not take the question or answer
/// within [`INSPECT_PATIENCE`] (gone or stuck).
async fn ask<T: Send + 'static>(
    controls: &[mpsc::Sender<Control<ArenaInput>>],
    look: fn(&Server<ArenaInput>, &TransportStats) -> T,
) -> Option<Vec<T>> {
    let deadline = Instant::now() + INSPECT_PATIENCE;
    let mut answers = Vec::with_capacity(controls.len());
    for control in controls {
        let (answer, answered) = oneshot::channel();
        let look: Look<ArenaInput> = Box::new(move |server, transport| {
            let _ = answer.send(look(server, transport));
        });
        timeout_at(deadline, control.send(Control::Inspect(look)))
            .await
            .ok()?
            .ok()?;
        answers.push(answered);
    }
    let mut looks = Vec::with_capacity(answers.len());
    for answered in answers {
        looks.push(timeout_at(deadline, answered).await.ok()?.ok()?);
    }
    Some(looks)
}

/// The shards still serving, so that each keeps its runtime (and the QUIC work of
/// the connections whose handshakes it ran) alive until every shard has stopped.
pub struct Shards {
    serving: AtomicUsize,
    changed: Notify,
}

/// One shard's place among the serving: dropped (also by a panic) when it stops.
pub struct Serving(Arc<Shards>);

impl Shards {
    /// `count` shards, and a place for each.
    pub fn new(count: usize) -> (Arc<Shards>, Vec<Serving>) {
        let shards = Arc::new(Shards {
            serving: AtomicUsize::new(count),
            changed: Notify::new(),
        });
        let places = (0..count).map(|_| Serving(shards.clone())).collect();
        (shards, places)
    }

    /// Completes once every shard has stopped.
    async fn all_stopped(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.serving.load(Ordering::Acquire) == 0 {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// After its shard stopped (`place` given up), answers what `orders` asks of its
/// final `served` state until every shard has stopped: the metrics page keeps adding
/// it up.
pub async fn linger(
    place: Serving,
    served: Option<&(Server<ArenaInput>, TransportStats)>,
    orders: &mut mpsc::Receiver<Control<ArenaInput>>,
) {
    let shards = place.0.clone();
    drop(place);
    let everyone = shards.all_stopped();
    tokio::pin!(everyone);
    loop {
        tokio::select! {
            _ = &mut everyone => return,
            Some(order) = orders.recv() => {
                if let (Control::Inspect(look), Some((server, transport))) = (order, served) {
                    look(server, transport);
                }
            }
        }
    }
}

/// The signals that stop the server, listened for from the moment this is made.
pub struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening for SIGTERM and Ctrl-C (must run inside a runtime).
    pub fn listen() -> Result<Signals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
            Ok(Signals {
                terminate: listen(SignalKind::terminate())?,
                interrupt: listen(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Completes on the next SIGTERM or Ctrl-C.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// On the first signal, drains every shard (running games get `within` to finish);
/// on the second, stops them (with goodbyes); on the third, exits at once. Each order goes out at once, whatever a shard's queue
/// holds.
pub async fn stop_on_signals(
    mut signals: Signals,
    controls: Vec<mpsc::Sender<Control<ArenaInput>>>,
    within: Duration,
) {
    signals.next().await;
    tracing::info!(
        within_secs = within.as_secs(),
        "draining: no new games; running games may finish"
    );
    tell(&controls, || Control::Drain { within });
    signals.next().await;
    tracing::info!("stopping now");
    tell(&controls, || Control::Stop);
    signals.next().await;
    tracing::warn!("stopping at once, without goodbyes");
    std::process::exit(1);
}

/// Sends every shard an order, each on a task of its own.
fn tell(controls: &[mpsc::Sender<Control<ArenaInput>>], order: impl Fn() -> Control<ArenaInput>) {
    for control in controls {
        let (control, order) = (control.clone(), order());
        tokio::spawn(async move {
            let _ = control.send(order).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickstep_session::ServerConfig;

    /// A server loop's stand-in: answers every look at a fresh server, counting them.
    fn a_loop() -> (mpsc::Sender<Control<ArenaInput>>, Arc<AtomicUsize>) {
        let (control, mut orders) = mpsc::channel(8);
        let looks = Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        tokio::spawn(async move {
            let server = Server::<ArenaInput>::new(ServerConfig::default());
            while let Some(order) = orders.recv().await {
                if let Control::Inspect(look) = order {
                    counted.fetch_add(1, Ordering::Relaxed);
                    look(&server, &TransportStats::default());
                }
            }
        });
        (control, looks)
    }

    #[tokio::test]
    async fn metrics_requests_within_a_second_share_one_reading_of_the_loops() {
        let (control, looks) = a_loop();
        let controls = vec![control];
        let last = LastLook::default();
        let (first, second) = tokio::join!(figures(&controls, &last), figures(&controls, &last));
        assert_eq!((first.is_some(), second.is_some()), (true, true));
        figures(&controls, &last).await.expect("figures");
        assert_eq!(
            looks.load(Ordering::Relaxed),
            1,
            "one reading for three requests"
        );
        tokio::time::sleep(METRICS_FRESH).await;
        figures(&controls, &last).await.expect("figures");
        assert_eq!(
            looks.load(Ordering::Relaxed),
            2,
            "a second later, a new one"
        );
        let draining = ask(&controls, |server, _| server.is_draining()).await;
        assert_eq!(draining, Some(vec![false]));
    }

    #[tokio::test]
    async fn a_loop_that_does_not_answer_is_asked_once_a_second_not_per_request() {
        // A loop that takes the question and never answers (stuck).
        let (control, mut orders) = mpsc::channel::<Control<ArenaInput>>(8);
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(order) = orders.recv().await {
                counted.fetch_add(1, Ordering::Relaxed);
                kept.push(order);
            }
        });
        let controls = vec![control];
        let last = LastLook::default();
        let answers = tokio::join!(
            figures(&controls, &last),
            figures(&controls, &last),
            figures(&controls, &last)
        );
        assert_eq!(answers, (None, None, None));
        assert_eq!(asked.load(Ordering::Relaxed), 1, "one look, shared");
        held.abort();
    }
}
