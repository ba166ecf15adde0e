//! The front door of a server whose rooms are spread over shards (event loops, one per
//! thread): it accepts QUIC connections on the one endpoint within the handshake
//! limits, spreads their handshakes over the shards in turn (a connection's packets
//! and TLS are worked on where its handshake ran), reads each connection's first
//! message, and hands the connection with it to the shard that hosts the room that
//! message names. A room lives on one shard; a join always reaches it.
//!
//! Handshakes are bounded: at most [`MAX_HANDSHAKES`] at once (more are refused),
//! beyond [`RETRY_ABOVE`] a client must first prove its address with a stateless
//! retry, and one that has not opened its stream within the connect timeout, or said
//! its first message within the hello timeout, is dropped. Before a handshake
//! completes QUIC itself sends at most three times what the peer sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tickstep_session::{ClientMessage, decode};
use tokio::sync::mpsc;

use crate::connection::Established;
use crate::frame::{Frame, read_frame};

/// Handshakes under way at most; more are refused.
pub const MAX_HANDSHAKES: usize = 1024;
/// Above this many handshakes under way, a client must prove its address first.
pub const RETRY_ABOVE: usize = 64;

/// The front door's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorLimits {
    /// Connections held at most, all shards together (handshakes under way count).
    pub max_connections: usize,
    /// A handshake (the message stream opened included) must finish within this.
    pub connect_timeout: Duration,
    /// A connection's first message must arrive within this of its handshake.
    pub hello_timeout: Duration,
}

impl DoorLimits {
    /// The limits a server with `server`'s settings over `transport` implies.
    pub fn of(
        server: &tickstep_session::ServerConfig,
        transport: &crate::TransportConfig,
    ) -> DoorLimits {
        DoorLimits {
            max_connections: server.max_connections,
            connect_timeout: transport.connect_timeout,
            hello_timeout: server.hello_timeout,
        }
    }
}

/// What the front door has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DoorStats {
    /// Handshakes refused at the handshake or connection cap.
    pub handshakes_refused: u64,
    /// Clients asked to prove their address first.
    pub retries: u64,
}

/// A connection whose first message has arrived, on its way to its room's shard.
pub(crate) struct Arrival {
    pub established: Established,
    pub first: Vec<u8>,
}

/// What one shard's loop takes in from the front door.
pub struct ShardInbox {
    /// This shard's number.
    pub(crate) shard: usize,
    /// Connections whose handshake this shard runs.
    pub(crate) incoming: mpsc::UnboundedReceiver<quinn::Incoming>,
    /// Connections for this shard's rooms, handshake done and first message read.
    pub(crate) arrivals: mpsc::UnboundedReceiver<Arrival>,
    pub(crate) door: Arc<Door>,
}

/// What the front door and every shard share.
pub(crate) struct Door {
    endpoint: quinn::Endpoint,
    limits: DoorLimits,
    /// Each shard's ways in.
    shards: Vec<(
        mpsc::UnboundedSender<quinn::Incoming>,
        mpsc::UnboundedSender<Arrival>,
    )>,
    /// The shard hosting each room.
    rooms: BTreeMap<String, usize>,
    /// Handshakes under way.
    handshaking: AtomicUsize,
    /// Connection numbers, unique over the shards.
    next_id: AtomicU64,
    /// Every live connection's task holds a clone.
    pub(crate) alive: Arc<()>,
    refused: AtomicU64,
    retries: AtomicU64,
}

/// The front door of `endpoint` for `shards` shards, the rooms assigned to them by
/// `rooms` (room name → shard; a connection naming no listed room goes to the shard
/// that ran its handshake, which refuses it). Returns the door (run it with
/// [`FrontDoor::run`]) and one inbox per shard (give each to its shard's
/// [`crate::serve`]).
pub fn front_door(
    endpoint: quinn::Endpoint,
    shards: usize,
    rooms: BTreeMap<String, usize>,
    limits: DoorLimits,
) -> (FrontDoor, Vec<ShardInbox>) {
    let shards = shards.max(1);
    let mut ways = Vec::with_capacity(shards);
    let mut receivers = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
        ways.push((incoming_tx, arrivals_tx));
        receivers.push((incoming, arrivals));
    }
    let door = Arc::new(Door {
        endpoint,
        limits,
        shards: ways,
        rooms,
        handshaking: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        alive: Arc::new(()),
        refused: AtomicU64::new(0),
        retries: AtomicU64::new(0),
    });
    let inboxes = receivers
        .into_iter()
        .enumerate()
        .map(|(shard, (incoming, arrivals))| ShardInbox {
            shard,
            incoming,
            arrivals,
            door: door.clone(),
        })
        .collect();
    (FrontDoor { door }, inboxes)
}

/// Accepts connections and spreads them over the shards.
pub struct FrontDoor {
    door: Arc<Door>,
}

impl FrontDoor {
    /// Accepts connections until the endpoint closes, handing each shard in turn a
    /// handshake to run (within the limits).
    pub async fn run(self) {
        let door = &self.door;
        let mut turn = 0usize;
        while let Some(incoming) = door.endpoint.accept().await {
            let handshaking = door.handshaking.load(Ordering::Relaxed);
            let live = Arc::strong_count(&door.alive) - 1 + handshaking;
            if handshaking >= MAX_HANDSHAKES || live >= door.limits.max_connections {
                door.refused.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
            } else if handshaking >= RETRY_ABOVE && !incoming.remote_address_validated() {
                door.retries.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = incoming.retry() {
                    error.into_incoming().ignore();
                }
            } else {
                door.handshaking.fetch_add(1, Ordering::Relaxed);
                turn = (turn + 1) % door.shards.len();
                if let Err(lost) = door.shards[turn].0.send(incoming) {
                    // That shard has stopped: the server is going down.
                    door.handshaking.fetch_sub(1, Ordering::Relaxed);
                    lost.0.refuse();
                }
            }
        }
    }

    /// What the door has done so far (readable while it runs, through a clone).
    pub fn stats(&self) -> DoorStats {
        self.door.stats()
    }

    /// A handle to read [`FrontDoor::stats`] from elsewhere.
    pub fn stats_handle(&self) -> DoorStatsHandle {
        DoorStatsHandle(self.door.clone())
    }
}

/// Reads a running front door's [`DoorStats`].
#[derive(Clone)]
pub struct DoorStatsHandle(Arc<Door>);

impl DoorStatsHandle {
    /// What the door has done so far.
    pub fn stats(&self) -> DoorStats {
        self.0.stats()
    }
}

impl Door {
    fn stats(&self) -> DoorStats {
        DoorStats {
            handshakes_refused: self.refused.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    /// The endpoint connections arrive on.
    pub(crate) fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// A fresh connection number.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A handshake ended (done or failed).
    pub(crate) fn handshake_over(&self) {
        self.handshaking.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sends `arrival` to the shard hosting the room its first message names (or
    /// keeps it at `here`); `Some` is the arrival back when it stays here.
    pub(crate) fn route(&self, here: usize, arrival: Arrival) -> Option<Arrival> {
        let room = match decode::<ClientMessage>(&arrival.first) {
            Ok(ClientMessage::Hello(hello)) => self.rooms.get(&hello.room).copied(),
            _ => None,
        };
        match room {
            Some(shard) if shard != here => match self.shards[shard].1.send(arrival) {
                Ok(()) => None,
                Err(back) => Some(back.0),
            },
            _ => Some(arrival),
        }
    }

    /// Completes a handshake, accepts the client's message stream and reads its first
    /// message, within the limits.
    pub(crate) async fn welcome(&self, incoming: quinn::Incoming) -> Result<Arrival, String> {
        let limits = self.limits;
        let attempt = async {
            let quic = incoming.await.map_err(|e| e.to_string())?;
            let (send, recv) = quic.accept_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(Established { quic, send, recv })
        };
        let mut established = tokio::time::timeout(limits.connect_timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                let ms = limits.connect_timeout.as_millis();
                Err(format!("handshake not done within {ms} ms"))
            })?;
        let first = tokio::time::timeout(limits.hello_timeout, read_frame(&mut established.recv));
        match first.await {
            Ok(Ok(Frame::Message(first))) => Ok(Arrival { established, first }),
            Ok(Ok(Frame::Goodbye(why))) => Err(format!("left before saying hello: {why}")),
            Ok(Err(e)) => Err(format!("no hello: {e}")),
            Err(_) => {
                let reason = b"no hello arrived in time";
                established.quic.close(2u32.into(), reason);
                Err("no hello within the hello timeout".into())
            }
        }
    }
}
