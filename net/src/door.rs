//! The front door of a server whose rooms are spread over shards (event loops, one per
//! thread): it accepts QUIC connections on the one endpoint within the connection
//! limits, spreads their handshakes over the shards in turn (a connection's packets
//! and TLS are worked on where its handshake ran), reads each connection's first
//! message, and hands the connection with it to the shard that hosts the room that
//! message names. A room lives on one shard; a join always reaches it.
//!
//! Connections are bounded for the whole server: at most [`MAX_HANDSHAKES`]
//! handshakes at once, [`MAX_HANDSHAKES_PER_ADDRESS`] from one address (more are
//! refused), beyond [`RETRY_ABOVE`] a client must first
//! prove its address with a stateless retry, a handshake that has not opened its
//! stream within the connect timeout is dropped, and once it has, the connection
//! counts against the connection caps (in all and per address) while its first message
//! is awaited, within the hello timeout. Before a handshake completes QUIC itself
//! sends at most three times what the peer sent.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickstep_session::{ClientMessage, ServerConfig, decode};
use tokio::sync::mpsc;

use crate::connection::{Established, Link, TransportConfig};
use crate::frame::{Frame, MAX_HELLO_FRAME_LEN, read_frame_up_to};
use crate::web::{Pages, WebDoor};

/// Handshakes under way at most; more are refused.
pub const MAX_HANDSHAKES: usize = 1024;
/// Handshakes under way from one proved address (an IPv6 /64) at most; more are
/// refused. A client past [`RETRY_ABOVE`] has proved its address, so without this one
/// host could hold every handshake slot by never finishing its handshakes.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 64;
/// Above this many handshakes under way, a client must prove its address first.
pub const RETRY_ABOVE: usize = 64;

/// The front door's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorLimits {
    /// Connections held at most, all shards together (handshakes under way count).
    pub max_connections: usize,
    /// Connections held at most from one address, all shards together.
    pub max_connections_per_address: usize,
    /// A handshake (the message stream opened included) must finish within this.
    pub connect_timeout: Duration,
    /// A connection's first message must arrive within this of its opening its message
    /// stream (which the connect timeout bounds).
    pub hello_timeout: Duration,
}

impl DoorLimits {
    /// The limits a server with `server`'s settings over `transport` implies.
    pub fn of(server: &ServerConfig, transport: &TransportConfig) -> DoorLimits {
        DoorLimits {
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            connect_timeout: transport.connect_timeout,
            hello_timeout: server.hello_timeout,
        }
    }
}

/// What the front door has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DoorStats {
    /// Connections refused at the door: at the handshake cap or a connection cap.
    pub refused: u64,
    /// Clients asked to prove their address first.
    pub retries: u64,
    /// Browser visits ([`crate::WebDoor`]) that failed: a malformed or slow request,
    /// a failed TLS handshake, a socket that said no hello in time.
    pub web_failed: u64,
}

/// A connection whose handshake one shard is to run. It holds its place under the
/// handshake caps until dropped.
pub(crate) struct Pending {
    incoming: quinn::Incoming,
    _slot: Slot,
}

/// One handshake under way, counted in all and (once its address is proved) for its
/// address.
struct Slot {
    handshaking: Arc<AtomicUsize>,
    _from: Option<AddressPlace>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What is held per address (connections, or handshakes under way).
type PerAddress = Arc<Mutex<BTreeMap<IpAddr, usize>>>;

/// One place in an address's count, given back when dropped.
struct AddressPlace {
    address: IpAddr,
    counts: PerAddress,
}

impl AddressPlace {
    /// A place for `address` (its IPv6 /64: one host's share) among `counts`, if it
    /// holds fewer than `cap`.
    fn take(counts: &PerAddress, address: IpAddr, cap: usize) -> Option<AddressPlace> {
        let address = tickstep_session::host_address(address);
        let mut held = counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(address).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        let counts = counts.clone();
        Some(AddressPlace { address, counts })
    }
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A connection's place under the connection caps, held until it ends.
pub(crate) struct Admission {
    _alive: Arc<()>,
    _from: AddressPlace,
}

/// Why a connection did not get through the door.
#[derive(Debug)]
pub(crate) enum Turned {
    /// Refused by a cap (counted by the door).
    Refused(&'static str),
    /// Its handshake failed, or no hello came.
    Failed(String),
}

/// A connection whose first message has arrived, on its way to its room's shard.
pub(crate) struct Arrival {
    pub link: Link,
    pub first: Vec<u8>,
    pub admission: Admission,
}

/// What one shard's loop takes in from the front door.
pub struct ShardInbox {
    /// This shard's number.
    pub(crate) shard: usize,
    /// Connections whose handshake this shard runs.
    pub(crate) incoming: mpsc::UnboundedReceiver<Pending>,
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
        mpsc::UnboundedSender<Pending>,
        mpsc::UnboundedSender<Arrival>,
    )>,
    /// The shard hosting each room.
    rooms: BTreeMap<String, usize>,
    /// Handshakes under way.
    handshaking: Arc<AtomicUsize>,
    /// Every admitted connection holds a clone.
    alive: Arc<()>,
    /// Admitted connections per address.
    per_address: PerAddress,
    /// Handshakes under way per address.
    handshakes_from: PerAddress,
    /// Connection numbers, unique over the shards.
    next_id: AtomicU64,
    /// The shard whose turn it was last to run a handshake.
    turn: AtomicUsize,
    refused: AtomicU64,
    retries: AtomicU64,
    web_failed: AtomicU64,
}

/// The front door of `endpoint` for `shards` shards, the rooms assigned to them by
/// `rooms` (room name → shard; a connection naming no listed room stays on the shard
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
        handshaking: Arc::new(AtomicUsize::new(0)),
        alive: Arc::new(()),
        per_address: PerAddress::default(),
        handshakes_from: PerAddress::default(),
        next_id: AtomicU64::new(0),
        turn: AtomicUsize::new(0),
        refused: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        web_failed: AtomicU64::new(0),
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
    /// handshake to run (within the limits; a shard that has stopped is skipped).
    pub async fn run(self) {
        let door = &self.door;
        while let Some(incoming) = door.endpoint.accept().await {
            let handshaking = door.handshaking.load(Ordering::Relaxed);
            if handshaking >= MAX_HANDSHAKES || door.is_full() {
                door.refused.fetch_add(1, Ordering::Relaxed);
                incoming.refuse();
                continue;
            }
            if handshaking >= RETRY_ABOVE && !incoming.remote_address_validated() {
                door.retries.fetch_add(1, Ordering::Relaxed);
                if let Err(error) = incoming.retry() {
                    error.into_incoming().ignore();
                }
                continue;
            }
            // Counted for its address only once the address is proved: a spoofed
            // one could otherwise fill a victim's share (unproved handshakes are
            // bounded in all, by RETRY_ABOVE).
            let from = match incoming.remote_address_validated() {
                true => {
                    let (at, cap) = (incoming.remote_address().ip(), MAX_HANDSHAKES_PER_ADDRESS);
                    let Some(place) = AddressPlace::take(&door.handshakes_from, at, cap) else {
                        door.refused.fetch_add(1, Ordering::Relaxed);
                        incoming.refuse();
                        continue;
                    };
                    Some(place)
                }
                false => None,
            };
            door.handshaking.fetch_add(1, Ordering::Relaxed);
            let handshaking = door.handshaking.clone();
            let _slot = Slot {
                handshaking,
                _from: from,
            };
            door.hand_out(Pending { incoming, _slot });
        }
    }

    /// A door for browsers on `listener` that shares this one's shards and limits:
    /// it serves `pages` and takes WebSocket connections at `/ws`, over TLS when `tls`
    /// is given (`https://`, `wss://`; see [`crate::Identity::web_tls`]). Run it with
    /// [`WebDoor::run`].
    pub fn web(
        &self,
        listener: tokio::net::TcpListener,
        pages: Pages,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> WebDoor {
        WebDoor::new(listener, self.door.clone(), pages, tls)
    }

    /// A handle to read the door's [`DoorStats`] while it runs.
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
        DoorStats {
            refused: self.0.refused.load(Ordering::Relaxed),
            retries: self.0.retries.load(Ordering::Relaxed),
            web_failed: self.0.web_failed.load(Ordering::Relaxed),
        }
    }
}

impl Door {
    /// The endpoint connections arrive on.
    pub(crate) fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// The door's limits.
    pub(crate) fn limits(&self) -> DoorLimits {
        self.limits
    }

    /// Whether the connections held (handshakes under way included) reach the cap.
    fn is_full(&self) -> bool {
        let handshaking = self.handshaking.load(Ordering::Relaxed);
        Arc::strong_count(&self.alive) - 1 + handshaking >= self.limits.max_connections
    }

    /// Counts a connection that needs no handshake (a browser's) under the caps, or
    /// refuses it (counted).
    pub(crate) fn admit_visitor(&self, address: IpAddr) -> Option<Admission> {
        let admitted = (!self.is_full()).then(|| self.admit(address)).flatten();
        if admitted.is_none() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Counts a browser visit that failed.
    pub(crate) fn web_visit_failed(&self) {
        self.web_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The next shard in turn (for a connection no room claims).
    pub(crate) fn next_shard(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed) % self.shards.len()
    }

    /// A fresh connection number.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Hands `pending` to the next shard in turn that still runs. (When every shard
    /// has stopped, the server is going down: it is dropped, and QUIC answers the
    /// client that it is refused.)
    pub(crate) fn hand_out(&self, mut pending: Pending) {
        let count = self.shards.len();
        for _ in 0..count {
            let turn = self.turn.fetch_add(1, Ordering::Relaxed) % count;
            match self.shards[turn].0.send(pending) {
                Ok(()) => return,
                Err(back) => pending = back.0,
            }
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends `arrival` to the shard hosting the room its first message names (or, for
    /// none, keeps it `here`); when that shard has stopped, to any that runs.
    pub(crate) fn deliver(&self, here: usize, arrival: Arrival) {
        let room = match decode::<ClientMessage>(&arrival.first) {
            Ok(ClientMessage::Hello(hello)) => self.rooms.get(&hello.room).copied(),
            _ => None,
        };
        let first = room.unwrap_or(here);
        let count = self.shards.len();
        let mut arrival = arrival;
        for shard in (0..count).map(|i| (first + i) % count) {
            match self.shards[shard].1.send(arrival) {
                Ok(()) => return,
                Err(back) => arrival = back.0,
            }
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        arrival.link.refuse("the server is shutting down");
    }

    /// Counts a connection from `address` under the caps, or refuses it.
    fn admit(&self, address: IpAddr) -> Option<Admission> {
        let cap = self.limits.max_connections_per_address;
        let from = AddressPlace::take(&self.per_address, address, cap)?;
        Some(Admission {
            _alive: self.alive.clone(),
            _from: from,
        })
    }

    /// Completes a handshake (within the connect timeout), admits the connection under
    /// the caps, accepts its message stream (within what is left of the connect
    /// timeout) and reads its first message (within the hello timeout).
    pub(crate) async fn welcome(&self, pending: Pending) -> Result<Arrival, Turned> {
        let Pending { incoming, _slot } = pending;
        let limits = self.limits;
        let deadline = tokio::time::Instant::now() + limits.connect_timeout;
        let late = || {
            let ms = limits.connect_timeout.as_millis();
            Turned::Failed(format!("handshake not done within {ms} ms"))
        };
        let quic = tokio::time::timeout_at(deadline, incoming)
            .await
            .map_err(|_| late())?
            .map_err(|e| Turned::Failed(e.to_string()))?;
        let Some(admission) = self.admit(quic.remote_address().ip()) else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let why = "too many connections from this address";
            quic.close(3u32.into(), why.as_bytes());
            return Err(Turned::Refused(why));
        };
        // Counted as a connection now, no longer as a handshake.
        drop(_slot);
        let stream = tokio::time::timeout_at(deadline, quic.accept_bi());
        let (send, mut recv) = discarding_datagrams(&quic, stream)
            .await
            .map_err(|_| late())?
            .map_err(|e| Turned::Failed(e.to_string()))?;
        // A hello is small: a longer first frame is refused before it is read.
        let hello = read_frame_up_to(&mut recv, MAX_HELLO_FRAME_LEN);
        let first = tokio::time::timeout(limits.hello_timeout, hello);
        let first = match discarding_datagrams(&quic, first).await {
            Ok(Ok(Frame::Message(first))) => first,
            Ok(Ok(Frame::Goodbye(why))) => {
                return Err(Turned::Failed(format!("left before saying hello: {why}")));
            }
            Ok(Err(e)) => return Err(Turned::Failed(format!("no hello: {e}"))),
            Err(_) => {
                quic.close(2u32.into(), b"no hello arrived in time");
                return Err(Turned::Failed("no hello within the hello timeout".into()));
            }
        };
        // Said hello: now it may send a room what a player sends (a buddy's snapshot).
        quic.set_receive_window(crate::server::CONNECTION_WINDOW.into());
        Ok(Arrival {
            link: Link::Quic(Established { quic, send, recv }),
            first,
            admission,
        })
    }
}

/// Runs `work` while reading and dropping the datagrams `quic` receives: a connection's
/// datagrams before its hello are no one's, and QUIC would keep them (each holding its
/// whole packet) until read.
async fn discarding_datagrams<T>(
    quic: &quinn::Connection,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            datagram = quic.read_datagram() => {
                if datagram.is_err() {
                    // Closed, or datagrams off: nothing more will come.
                    return work.await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::write_frame;
    use crate::tls::{Identity, Trust};
    use bytes::Bytes;

    #[tokio::test]
    async fn datagrams_before_the_hello_are_dropped_and_after_it_kept() {
        let identity = Identity::self_signed(&["localhost".into()]).unwrap();
        let transport = TransportConfig::default();
        let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        let server = crate::server_endpoint(loopback, &identity, &transport).unwrap();
        let addr = server.local_addr().unwrap();
        let trust = Trust::Pinned(identity.fingerprint());
        let client = crate::client_endpoint(loopback, &trust, &transport).unwrap();
        let accepting = tokio::spawn(async move { server.accept().await.unwrap().await });
        let quic = client.connect(addr, "localhost").unwrap().await.unwrap();
        let served = accepting.await.unwrap().unwrap();
        for i in 0..5u8 {
            quic.send_datagram(Bytes::from(vec![i; 100])).unwrap();
        }
        // The stream reaches the server with the hello, after the datagrams.
        let (mut send, _recv) = quic.open_bi().await.unwrap();
        let hello = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let hello = Frame::Message(b"hello".to_vec());
            write_frame(&mut send, &hello).await.unwrap();
        };
        let waiting = async {
            let (_send, mut recv) = served.accept_bi().await.unwrap();
            read_frame_up_to(&mut recv, MAX_HELLO_FRAME_LEN)
                .await
                .unwrap()
        };
        let (first, ()) = tokio::join!(discarding_datagrams(&served, waiting), hello);
        assert_eq!(first, Frame::Message(b"hello".to_vec()));
        let kept = tokio::time::timeout(Duration::from_millis(200), served.read_datagram()).await;
        assert!(
            kept.is_err(),
            "a datagram from before the hello was kept: {kept:?}"
        );
        quic.send_datagram(Bytes::from_static(b"input")).unwrap();
        let after = tokio::time::timeout(Duration::from_secs(5), served.read_datagram()).await;
        assert_eq!(&after.unwrap().unwrap()[..], b"input");
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_gives_it_back() {
        let counts = PerAddress::default();
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let mut held: Vec<_> = (0..3)
            .map(|_| AddressPlace::take(&counts, a, 3).expect("within the share"))
            .collect();
        assert!(
            AddressPlace::take(&counts, a, 3).is_none(),
            "a's share is full"
        );
        let other = AddressPlace::take(&counts, b, 3).expect("b has its own share");
        held.pop();
        let again = AddressPlace::take(&counts, a, 3).expect("a place given back");
        drop((again, other));
        assert_eq!(
            counts.lock().unwrap().get(&b),
            None,
            "an address holding none is forgotten"
        );
        assert_eq!(counts.lock().unwrap().get(&a), Some(&2));
    }
}
