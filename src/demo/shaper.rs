//! A shaped link on loopback, in process (these machines have no netem): a UDP relay
//! between a client and the server that delays every datagram by the link's latency
//! plus a random share of its jitter (so datagrams reorder, as on a real network) and
//! drops the link's share of them. QUIC sees a real lossy path: it retransmits what
//! went on its stream, and the session copes with lost datagrams.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tickstep_engine::Rng;
use tickstep_session::sim::LinkConfig;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// Starts a relay on loopback for one client's link to `server`; returns the address to
/// connect to instead. Datagrams from each client address go upstream from a socket of
/// their own, shaped by `link` both ways with randomness from `seed`. The relay lives
/// as long as the runtime's local set.
pub async fn relay(server: SocketAddr, link: LinkConfig, seed: u64) -> std::io::Result<String> {
    let front = Rc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let address = front.local_addr()?.to_string();
    tokio::task::spawn_local(async move {
        let mut upstreams: BTreeMap<SocketAddr, mpsc::UnboundedSender<(Instant, Vec<u8>)>> =
            BTreeMap::new();
        let mut rng = Rng::new(seed);
        let mut buffer = vec![0u8; MAX_DATAGRAM];
        while let Ok((len, client)) = front.recv_from(&mut buffer).await {
            let to_server = match upstreams.entry(client) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => {
                    let seed = seed ^ (client.port() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    let back = Target::Client(front.clone(), client);
                    let Ok(to_server) = upstream(server, back, link, seed).await else {
                        continue;
                    };
                    new.insert(to_server)
                }
            };
            if let Some(at) = shaped(&mut rng, link) {
                let _ = to_server.send((at, buffer[..len].to_vec()));
            }
        }
    });
    Ok(address)
}

/// Opens a socket to `server` for one client: what goes in the returned channel
/// reaches the server when due; what the server answers goes `back`, shaped.
async fn upstream(
    server: SocketAddr,
    back: Target,
    link: LinkConfig,
    seed: u64,
) -> std::io::Result<mpsc::UnboundedSender<(Instant, Vec<u8>)>> {
    let upstream = UdpSocket::bind("127.0.0.1:0").await?;
    upstream.connect(server).await?;
    let upstream = Rc::new(upstream);
    let (to_server, due) = mpsc::unbounded_channel();
    tokio::task::spawn_local(deliver(due, Target::Server(upstream.clone())));
    tokio::task::spawn_local(downstream(upstream, back, link, seed));
    Ok(to_server)
}

/// When a datagram sent now arrives over `link`, or `None` when it is lost.
fn shaped(rng: &mut Rng, link: LinkConfig) -> Option<Instant> {
    if rng.below(100) < u32::from(link.loss_percent) {
        return None;
    }
    let jitter = link.jitter.as_micros() as u64;
    let extra = if jitter == 0 {
        0
    } else {
        rng.next_u64() % (jitter + 1)
    };
    Some(Instant::now() + link.latency + Duration::from_micros(extra))
}

/// Relays the server's datagrams from `upstream` back to the client, shaped.
async fn downstream(upstream: Rc<UdpSocket>, back: Target, link: LinkConfig, seed: u64) {
    let (to_client, due) = mpsc::unbounded_channel();
    tokio::task::spawn_local(deliver(due, back));
    let mut rng = Rng::new(seed);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    while let Ok(len) = upstream.recv(&mut buffer).await {
        if let Some(at) = shaped(&mut rng, link)
            && to_client.send((at, buffer[..len].to_vec())).is_err()
        {
            return;
        }
    }
}

/// Where a direction delivers.
enum Target {
    Server(Rc<UdpSocket>),
    Client(Rc<UdpSocket>, SocketAddr),
}

/// Sends each datagram when it falls due, in order of due time.
async fn deliver(mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>, target: Target) {
    // By (due time, arrival order): a priority queue that keeps equal times in order.
    let mut queue: BTreeMap<(Instant, u64), Vec<u8>> = BTreeMap::new();
    let mut sequence = 0u64;
    loop {
        let next = queue.first_key_value().map(|(&(at, _), _)| at);
        tokio::select! {
            incoming = rx.recv() => match incoming {
                Some((at, datagram)) => {
                    sequence += 1;
                    queue.insert((at, sequence), datagram);
                }
                None => return,
            },
            _ = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                while let Some(entry) = queue.first_entry() {
                    if entry.key().0 > Instant::now() {
                        break;
                    }
                    let datagram = entry.remove();
                    let _ = match &target {
                        Target::Server(socket) => socket.send(&datagram).await,
                        Target::Client(socket, to) => socket.send_to(&datagram, to).await,
                    };
                }
            }
        }
    }
}
