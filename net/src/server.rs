//! One shard of the server over QUIC: takes the connections the front door
//! ([`crate::front_door`]) hands it, feeds what they say to its sans-IO [`Server`],
//! sends what that says, and runs its timers, until told to stop. Connection notes are
//! rate-limited so a flood cannot flood the log.
//!
//! The host steers the loop through a [`Control`] channel: drain, stop, or look at
//! the server and the transport's counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::Input;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::connection::{
    CloseReason, Connection, Delivery, INBOUND_QUEUE, Inbound, Queued, TransportConfig,
};
use super::control::{Control, TransportStats};
use super::door::{Arrival, Door, Pending, ShardInbox, Turned};
use super::tls::{Identity, SetupError, quic_transport};
use tickstep_session::{
    ClientMessage, ConnId, Server, ServerMessage, ServerTransmit, decode, encode_into,
};

/// Connection notes passed to the host per second at most; the rest are counted.
const NOTES_PER_SECOND: u32 = 20;

/// What the server loop tells its host after every round of work.
pub trait ServerHost<I> {
    /// Called after each round with the server and the time since the loop started.
    fn after_round(&mut self, server: &mut Server<I>, now: Duration);
    /// A connection ended or was refused at the transport level (logged by the host;
    /// rate-limited).
    fn connection_note(&mut self, conn: u64, note: &str);
    /// A message of `bytes` was queued for sending.
    fn sent(&mut self, _bytes: usize) {}
}

/// Per-connection receive limits on the server: what a peer can make it hold unread.
/// Until its hello the connection as a whole may hold [`HELLO_WINDOW`] of stream data
/// (a hello is at most 8 KiB; out-of-order data past the window is a protocol error),
/// then [`CONNECTION_WINDOW`]; datagrams before the hello are read and dropped.
const STREAM_WINDOW: u32 = 512 << 10;
const HELLO_WINDOW: u32 = 16 << 10;
pub(crate) const CONNECTION_WINDOW: u32 = 1 << 20;
const SEND_WINDOW: u64 = 4 << 20;
/// Datagram bytes held unread at most (QUIC counts a datagram's payload and 32 bytes,
/// though each holds its whole packet, and drops the oldest beyond): most of a second
/// of a player's updates at 60 Hz (each repeats its latest checksum reports), and an
/// update repeats the input not yet verified, so what is dropped comes again.
const DATAGRAM_BUFFER: usize = 16 << 10;

/// A QUIC endpoint serving `identity` on `addr`, with `transport`'s idle timeout. Its
/// UDP I/O runs on the tokio runtime it is made in (`tickstep serve`: its one event
/// loop, or a thread of its own beside several), with deeper socket buffers than the
/// system's default where the system allows; each connection's TLS and packet
/// processing run on the shard that ran its handshake.
pub fn server_endpoint(
    addr: SocketAddr,
    identity: &Identity,
    transport: &TransportConfig,
) -> Result<quinn::Endpoint, SetupError> {
    let mut quic = quic_transport(transport.timeout, None);
    quic.stream_receive_window(STREAM_WINDOW.into())
        .receive_window(HELLO_WINDOW.into())
        .send_window(SEND_WINDOW)
        .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    let mut config = identity.server_config(Arc::new(quic))?;
    config.max_incoming(super::door::MAX_HANDSHAKES);
    let socket = udp_socket(addr)
        .map_err(|e| SetupError::Socket(format!("cannot listen on {addr}: {e}")))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| SetupError::Socket("no async runtime to run QUIC on".into()))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        runtime,
    )
    .map_err(|e| SetupError::Socket(format!("cannot listen on {addr}: {e}")))
}

/// What the server's UDP socket asks the kernel to hold, each way: the datagrams of
/// every room's tick arrive together, and while the loop is busy with a round of room
/// ticks they wait here rather than being dropped. The kernel may grant less (Linux
/// caps it at `net.core.rmem_max` / `wmem_max`): the server then says so in its log.
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr` with buffers of 4 MiB (`SOCKET_BUFFER`) where the system's
/// default is smaller (never shrinking one): the server's, and the one `bench server`'s
/// UDP floor echoes on.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner. (Linux reports
    // twice what was asked, its own bookkeeping included.)
    let (receive, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    if receive < SOCKET_BUFFER {
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    }
    if send < SOCKET_BUFFER {
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    }
    let (receive, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    if receive < SOCKET_BUFFER || send < SOCKET_BUFFER {
        tracing::warn!(
            receive,
            send,
            wanted = SOCKET_BUFFER,
            "the system granted smaller UDP buffers than asked: under load, datagrams may \
             be dropped (raise net.core.rmem_max and wmem_max)"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What woke the server loop.
enum Wake<I> {
    Incoming(Box<Pending>),
    Handshake(Turned),
    Arrival(Arrival),
    Inbound(Option<Inbound>),
    Control(Option<Control<I>>),
    Timer,
}

/// Passes at most [`NOTES_PER_SECOND`] notes a second, then one line counting the
/// rest.
struct NoteLimit {
    second: Instant,
    passed: u32,
    suppressed: u64,
}

impl NoteLimit {
    fn note<I>(&mut self, host: &mut impl ServerHost<I>, conn: u64, note: &str) {
        let now = Instant::now();
        if now >= self.second + Duration::from_secs(1) {
            if self.suppressed > 0 {
                let summary = format!("{} more connection notes suppressed", self.suppressed);
                host.connection_note(0, &summary);
            }
            *self = NoteLimit {
                second: now,
                passed: 0,
                suppressed: 0,
            };
        }
        if self.passed < NOTES_PER_SECOND {
            self.passed += 1;
            host.connection_note(conn, note);
        } else {
            self.suppressed += 1;
        }
    }
}

/// Serves `server`'s rooms with the connections `inbox` (this shard's way in from
/// the front door) brings, until `control` says stop (or a drain is done, or every
/// sender is dropped), then says goodbye to every connection and returns the server
/// and the transport's counts (`control` stays the caller's, to answer what comes
/// after). Time for the session is measured from `epoch`. Connections still winding
/// down count against the server's connection cap, so closing and reconnecting cannot
/// pile them up.
pub async fn serve<I: Input>(
    mut inbox: ShardInbox,
    mut server: Server<I>,
    transport: TransportConfig,
    epoch: Instant,
    host: &mut impl ServerHost<I>,
    control: &mut mpsc::Receiver<Control<I>>,
) -> std::io::Result<(Server<I>, TransportStats)> {
    let door = inbox.door.clone();
    let (inbound_tx, mut inbound) = mpsc::channel(INBOUND_QUEUE);
    let (handshakes_tx, mut handshakes) = mpsc::channel(64);
    let mut conns: BTreeMap<u64, Connection> = BTreeMap::new();
    let mut notes = NoteLimit {
        second: Instant::now(),
        passed: 0,
        suppressed: 0,
    };
    let mut stats = TransportStats::default();
    // While draining: when the loop stops at the latest.
    let mut drain_by: Option<Instant> = None;
    // Every message is encoded here, then copied once into what the connection sends.
    let mut encoded = Vec::new();
    loop {
        let timer = server
            .poll_timeout()
            .map_or(Instant::now() + Duration::from_secs(1), |at| epoch + at);
        let wake = drain_by.map_or(timer, |by| by.min(timer));
        let woke = tokio::select! {
            // These channels never close: the loop holds a sender of each.
            Some(pending) = inbox.incoming.recv() => Wake::Incoming(Box::new(pending)),
            Some(why) = handshakes.recv() => Wake::Handshake(why),
            Some(arrival) = inbox.arrivals.recv() => Wake::Arrival(arrival),
            event = inbound.recv() => Wake::Inbound(event),
            order = control.recv() => Wake::Control(order),
            _ = sleep_until(wake) => Wake::Timer,
        };
        // The time is read after the wait, so what arrived is handled at its own time.
        let now = epoch.elapsed();
        match woke {
            Wake::Incoming(pending) => {
                let failed = handshakes_tx.clone();
                let door = door.clone();
                let here = inbox.shard;
                tokio::spawn(async move {
                    match door.welcome(*pending).await {
                        Ok(arrival) => door.deliver(here, arrival),
                        Err(why) => {
                            let _ = failed.send(why).await;
                        }
                    }
                });
            }
            Wake::Handshake(Turned::Failed(why)) => {
                stats.handshakes_failed += 1;
                notes.note(host, 0, &format!("handshake failed: {why}"));
            }
            // Counted by the door.
            Wake::Handshake(Turned::Refused(why)) => notes.note(host, 0, why),
            Wake::Arrival(arrival) => {
                let on = (door.as_ref(), &inbound_tx, transport);
                let links = (&mut conns, &mut stats, &mut notes);
                adopt(arrival, now, &mut server, on, links, host);
            }
            // What a connection said after the server closed it no longer counts.
            Wake::Inbound(Some(Inbound::Message { conn, .. })) if !conns.contains_key(&conn) => {}
            Wake::Inbound(Some(Inbound::Message { conn, bytes })) => {
                let links = (&mut conns, &mut stats, &mut notes);
                hear(conn, &bytes, now, &mut server, links, host);
            }
            Wake::Inbound(Some(Inbound::Closed { conn, reason })) => {
                conns.remove(&conn);
                let note = match &reason {
                    CloseReason::Goodbye(why) => format!("closed by the client: {why}"),
                    CloseReason::Lost(why) | CloseReason::Untrusted(why) => format!("lost: {why}"),
                };
                notes.note(host, conn, &note);
                server.handle_disconnect(now, ConnId(conn));
            }
            Wake::Control(None | Some(Control::Stop)) => break,
            Wake::Control(Some(Control::Drain { within })) => {
                server.drain();
                let by = Instant::now().checked_add(within);
                let by = by.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
                drain_by = Some(drain_by.map_or(by, |earlier| earlier.min(by)));
            }
            Wake::Control(Some(Control::Inspect(look))) => look(&server, &stats),
            Wake::Inbound(None) | Wake::Timer => {}
        }
        // Timers due by now run in this turn, whatever woke the loop.
        if server.poll_timeout().is_some_and(|at| at <= now) {
            server.handle_timeout(now);
        }
        while let Some(transmit) = server.poll_transmit() {
            match &transmit {
                ServerTransmit::Send { to, message } => {
                    let to = *to;
                    let delivery = match message {
                        ServerMessage::Verified { .. } => Delivery::Unreliable,
                        _ => Delivery::Reliable,
                    };
                    encode_into(message, &mut encoded);
                    // A closed connection's end arrives as an inbound event, after
                    // whatever it said last.
                    let queued = conns.get(&to.0).map(|c| c.send(&encoded, delivery));
                    if queued == Some(Queued::Yes) {
                        stats.messages_out += 1;
                        stats.bytes_out += encoded.len() as u64;
                        host.sent(encoded.len());
                    }
                    if queued == Some(Queued::Full)
                        && let Some(slow) = conns.remove(&to.0)
                    {
                        stats.connections_cut += 1;
                        notes.note(host, to.0, "closed: too far behind (send budget spent)");
                        slow.cut();
                        server.handle_disconnect(now, to);
                    }
                }
                ServerTransmit::Close { conn } => {
                    if let Some(connection) = conns.remove(&conn.0) {
                        connection.close("closed by the server");
                    }
                }
            }
            // Sent: its buffers go back for the next room-tick.
            server.recycle(transmit);
        }
        host.after_round(&mut server, epoch.elapsed());
        if let Some(by) = drain_by
            && (server.games_in_play() == 0 || Instant::now() >= by)
        {
            break;
        }
    }
    // No more connections come here: what waits goes to the shards still running.
    inbox.incoming.close();
    inbox.arrivals.close();
    while let Ok(pending) = inbox.incoming.try_recv() {
        door.hand_out(pending);
    }
    while let Ok(arrival) = inbox.arrivals.try_recv() {
        door.deliver(inbox.shard, arrival);
    }
    let now = epoch.elapsed();
    for (id, connection) in std::mem::take(&mut conns) {
        connection.close("the server is shutting down");
        server.handle_disconnect(now, ConnId(id));
    }
    while server.poll_transmit().is_some() {}
    host.after_round(&mut server, epoch.elapsed());
    // Give the goodbyes a moment to leave, reading (and dropping) what the
    // connections still say so that none waits on a full queue instead of closing.
    drop(inbound_tx);
    let idle = door.endpoint().wait_idle();
    let drained = async { while inbound.recv().await.is_some() {} };
    let goodbyes = async { tokio::join!(idle, drained) };
    let _ = tokio::time::timeout(Duration::from_millis(500), goodbyes).await;
    Ok((server, stats))
}

/// Takes `arrival` in: runs its connection on this shard, announces it to the server
/// and hands over its first message.
fn adopt<I: Input>(
    arrival: Arrival,
    now: Duration,
    server: &mut Server<I>,
    (door, inbound, transport): (&Door, &mpsc::Sender<Inbound>, TransportConfig),
    (conns, stats, notes): Links,
    host: &mut impl ServerHost<I>,
) {
    let id = door.new_id();
    let address = arrival.link.address();
    let on = (transport, arrival.admission);
    let conn = Connection::spawn(id, arrival.link, inbound.clone(), on);
    conns.insert(id, conn);
    stats.connections_accepted += 1;
    // A refusal (too many connections) is queued with its close.
    if let Err(refusal) = server.handle_connection(now, ConnId(id), address) {
        notes.note(host, id, &format!("refused: {refusal}"));
        return;
    }
    hear(id, &arrival.first, now, server, (conns, stats, notes), host);
}

/// A shard's connections, its transport's counts and its note limit.
type Links<'a> = (
    &'a mut BTreeMap<u64, Connection>,
    &'a mut TransportStats,
    &'a mut NoteLimit,
);

/// Hands what connection `conn` said to the server; a message that does not decode
/// closes that connection.
fn hear<I: Input>(
    conn: u64,
    bytes: &[u8],
    now: Duration,
    server: &mut Server<I>,
    (conns, stats, notes): (
        &mut BTreeMap<u64, Connection>,
        &mut TransportStats,
        &mut NoteLimit,
    ),
    host: &mut impl ServerHost<I>,
) {
    stats.messages_in += 1;
    stats.bytes_in += bytes.len() as u64;
    let message = decode::<ClientMessage>(bytes);
    if message.is_err()
        && let Some(refusal) = server.refuse_other_version(now, ConnId(conn), bytes)
    {
        notes.note(host, conn, &format!("refused: {refusal}"));
        return;
    }
    match message {
        Ok(message) => server.handle_message(now, ConnId(conn), message),
        Err(e) => {
            stats.connections_cut += 1;
            notes.note(host, conn, &format!("closed: {e}"));
            if let Some(connection) = conns.remove(&conn) {
                connection.close("malformed message");
            }
            server.handle_disconnect(now, ConnId(conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receive and send buffers the kernel granted a socket.
    fn granted(socket: &std::net::UdpSocket) -> [usize; 2] {
        let socket = socket2::SockRef::from(socket);
        [socket.recv_buffer_size(), socket.send_buffer_size()].map(Result::unwrap)
    }

    /// The system's cap on a socket buffer one way (Linux), if it can be read.
    fn cap(name: &str) -> Option<usize> {
        let path = format!("/proc/sys/net/core/{name}");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    #[test]
    fn the_servers_socket_asks_for_deeper_buffers_than_the_default() {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let ours = granted(&udp_socket(loopback).unwrap());
        let default = granted(&std::net::UdpSocket::bind(loopback).unwrap());
        for ((ours, default), cap) in ours
            .into_iter()
            .zip(default)
            .zip([cap("rmem_max"), cap("wmem_max")])
        {
            assert!(
                ours >= default,
                "granted {ours}, default {default}: never less"
            );
            // Linux grants twice what is asked, up to twice its cap.
            if let Some(cap) = cap
                && default < SOCKET_BUFFER
                && cap * 2 > default
            {
                assert_eq!(ours, (cap * 2).min(SOCKET_BUFFER * 2), "default {default}");
            }
        }
    }
}
