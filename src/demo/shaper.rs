//! A shaped link on loopback, in process (these machines have no netem): a relay
//! between a client and the server that delays every message by the link's latency
//! plus a random share of its jitter (so messages reorder, as on a real network) and
//! drops the link's share of them. It speaks the transport's framing, so it shapes
//! whole messages; heartbeats and goodbyes are delayed but never dropped.

use std::collections::BTreeMap;
use tickstep_engine::Rng;
use tickstep_net::frame::{Frame, read_frame, write_frame};
use tickstep_session::sim::LinkConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// Starts a relay on loopback for one client's link to `server`; returns the address to
/// connect to instead. Every connection made to it is relayed, shaped by `link`, with
/// randomness from `seed`. The relay lives as long as the runtime's local set.
pub async fn relay(server: String, link: LinkConfig, seed: u64) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::task::spawn_local(async move {
        let mut connection = 0u64;
        while let Ok((client, _)) = listener.accept().await {
            connection += 1;
            let _ = client.set_nodelay(true);
            let server = server.clone();
            let seed = seed ^ connection.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            tokio::task::spawn_local(async move {
                // The server unreachable: dropping `client` tells the client so.
                let Ok(upstream) = TcpStream::connect(&server).await else {
                    return;
                };
                let _ = upstream.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::task::spawn_local(shape(client_read, server_write, link, seed));
                tokio::task::spawn_local(shape(server_read, client_write, link, !seed));
            });
        }
    });
    Ok(address)
}

/// What one direction carries to its writer, due at a time.
enum Due {
    Frame(Frame),
    /// The reader ended: close after everything before it.
    End,
}

/// Relays frames from `from` to `to` with the link's delay and loss, until `from` ends;
/// then ends `to` after the frames still in flight.
async fn shape(
    mut from: impl AsyncRead + Unpin,
    to: impl AsyncWrite + Unpin + 'static,
    link: LinkConfig,
    seed: u64,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::task::spawn_local(deliver(rx, to));
    let mut rng = Rng::new(seed);
    let mut last = Instant::now();
    loop {
        let frame = read_frame(&mut from).await;
        let now = Instant::now();
        let frame = match frame {
            Ok(frame) => frame,
            Err(_) => {
                // After everything already on its way.
                let _ = tx.send((last.max(now), Due::End));
                return;
            }
        };
        let lost =
            matches!(frame, Frame::Message(_)) && rng.below(100) < u32::from(link.loss_percent);
        if lost {
            continue;
        }
        let jitter = link.jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            rng.next_u64() % (jitter + 1)
        };
        let due = now + link.latency + std::time::Duration::from_micros(extra);
        last = last.max(due);
        let goodbye = matches!(frame, Frame::Goodbye(_));
        if tx.send((due, Due::Frame(frame))).is_err() || goodbye {
            let _ = tx.send((last, Due::End));
            return;
        }
    }
}

/// Writes each frame when it falls due, in order of due time.
async fn deliver(mut rx: mpsc::UnboundedReceiver<(Instant, Due)>, mut to: impl AsyncWrite + Unpin) {
    // By (due time, arrival order): a priority queue that keeps equal times in order.
    let mut queue: BTreeMap<(Instant, u64), Due> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut open = true;
    loop {
        let next = queue.first_key_value().map(|(&(at, _), _)| at);
        if !open && next.is_none() {
            break;
        }
        tokio::select! {
            incoming = rx.recv(), if open => match incoming {
                Some((at, due)) => {
                    sequence += 1;
                    queue.insert((at, sequence), due);
                }
                None => open = false,
            },
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                while let Some(entry) = queue.first_entry() {
                    if entry.key().0 > Instant::now() {
                        break;
                    }
                    match entry.remove() {
                        Due::Frame(frame) => {
                            if write_frame(&mut to, &frame).await.is_err() {
                                return;
                            }
                        }
                        Due::End => {
                            let _ = to.shutdown().await;
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = to.shutdown().await;
}
