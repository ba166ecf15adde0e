//! One QUIC connection as a task. Messages travel as frames on one bidirectional
//! stream, in order and reliably, or, for those the session may lose (verified ticks,
//! updates), as QUIC datagrams when they fit. QUIC finds a silent peer (keep-alives,
//! idle timeout); an intentional close says goodbye with the reason, after what was
//! queued, so the other side never mistakes a leave for a loss. A malformed frame
//! closes this connection only.
//!
//! What the owner may queue is a byte budget, not a message count, and a write the
//! peer does not take within the write timeout (it stopped reading) ends the
//! connection and frees what it held.

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::frame::{Frame, MAX_GOODBYE_REASON, read_frame, write_frame};

/// Transport timing and budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// A peer silent this long is taken as lost (default 10 s).
    pub timeout: Duration,
    /// A client sends a QUIC keep-alive when nothing else went out for this long
    /// (default 1 s).
    pub heartbeat: Duration,
    /// A connection attempt (handshake included) gives up after this (default 5 s).
    pub connect_timeout: Duration,
    /// Bytes queued for one connection at most (default 16 MiB); past it the peer is
    /// too far behind and is cut.
    pub send_budget: usize,
    /// A write the peer has not taken after this ends the connection (default 5 s).
    pub write_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            send_budget: 16 << 20,
            write_timeout: Duration::from_secs(5),
        }
    }
}

impl TransportConfig {
    /// Defaults with a silence timeout of `timeout` (keep-alives at a tenth of it, at
    /// least every second).
    pub fn with_timeout(timeout: Duration) -> TransportConfig {
        TransportConfig {
            timeout,
            heartbeat: (timeout / 10).min(Duration::from_secs(1)),
            ..TransportConfig::default()
        }
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed it on purpose and said why.
    Goodbye(String),
    /// It failed: a network error, a silence past the timeout, a malformed frame, a
    /// peer that stopped reading, or a close without a goodbye.
    Lost(String),
    /// The server could not prove it is the one the client trusts (its certificate
    /// does not match): retrying will not help.
    Untrusted(String),
}

/// What connections report to their owner, tagged with the connection's number.
#[derive(Debug)]
pub enum Inbound {
    /// A message's bytes arrived.
    Message {
        /// The connection.
        conn: u64,
        /// The encoded message (a datagram's is QUIC's own buffer, not a copy).
        bytes: Bytes,
    },
    /// The connection ended (not reported when the owner closed it).
    Closed {
        /// The connection.
        conn: u64,
        /// How.
        reason: CloseReason,
    },
}

/// How a message may travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// On the stream: in order, never lost.
    Reliable,
    /// As a datagram when it fits (it may be lost or reordered), else on the stream.
    Unreliable,
}

/// What the owner asks of a connection's task.
pub(crate) enum Outbound {
    /// Send a message.
    Message {
        bytes: Vec<u8>,
        delivery: Delivery,
        /// Its share of the send budget, returned once written.
        _budget: OwnedSemaphorePermit,
    },
    /// Say goodbye with this reason and close.
    Close(String),
}

/// What became of a message handed to [`Connection::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued for sending.
    Yes,
    /// The peer is too far behind: its send budget is spent.
    Full,
    /// The connection has ended; its end is (or will be) reported as an [`Inbound`].
    Closed,
}

/// Inbound events queued for the owner (from all its connections) before connections
/// wait, and QUIC flow control pushes back on their peers: at most this many messages
/// of at most 256 KiB, however fast peers send.
pub const INBOUND_QUEUE: usize = 64;

/// Bytes each queued message is charged beyond its own, for its bookkeeping: a flood
/// of tiny messages is bounded too.
const MESSAGE_OVERHEAD: usize = 64;

/// How long a closing connection waits for its last words to be acknowledged.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// The owner's handle on a connection task. Dropping it closes the connection with a
/// goodbye.
#[derive(Debug)]
pub struct Connection {
    /// The connection's number.
    pub id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    budget: Arc<Semaphore>,
    task: JoinHandle<()>,
    /// The QUIC connection, once established: datagrams go straight to it.
    quic: Option<quinn::Connection>,
}

/// An established QUIC connection and its message stream.
pub(crate) struct Established {
    pub quic: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
}

/// An established connection of either kind a server takes.
pub(crate) enum Link {
    /// QUIC: a message stream, and datagrams for what may be lost.
    Quic(Established),
    /// A WebSocket (a browser's): every message on it, in order.
    Web(Box<crate::web::Socket>, SocketAddr),
}

impl Link {
    /// The peer's address.
    pub(crate) fn address(&self) -> IpAddr {
        match self {
            Link::Quic(established) => established.quic.remote_address().ip(),
            Link::Web(_, address) => address.ip(),
        }
    }

    /// Closes the link at once with `why` (nothing was queued on it yet).
    pub(crate) fn refuse(self, why: &'static str) {
        match self {
            Link::Quic(established) => established.quic.close(0u32.into(), why.as_bytes()),
            Link::Web(socket, _) => {
                tokio::spawn(crate::web::refuse(socket, why));
            }
        }
    }
}

impl Connection {
    fn new(
        id: u64,
        config: TransportConfig,
        run: impl FnOnce(mpsc::UnboundedReceiver<Outbound>) -> JoinHandle<()>,
    ) -> Connection {
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = config.send_budget.min(Semaphore::MAX_PERMITS);
        Connection {
            id,
            tx,
            budget: Arc::new(Semaphore::new(permits)),
            task: run(rx),
            quic: None,
        }
    }

    /// Runs an established connection, reporting to `inbound`; the task holds `held`
    /// until it ends (the owner counts live connections by it).
    pub(crate) fn spawn(
        id: u64,
        link: Link,
        inbound: mpsc::Sender<Inbound>,
        (config, held): (TransportConfig, impl Send + 'static),
    ) -> Connection {
        match link {
            Link::Quic(established) => {
                let quic = established.quic.clone();
                let mut connection = Connection::new(id, config, |rx| {
                    tokio::spawn(async move {
                        run(id, established, rx, inbound, config).await;
                        drop(held);
                    })
                });
                connection.quic = Some(quic);
                connection
            }
            Link::Web(socket, _) => Connection::new(id, config, |rx| {
                tokio::spawn(async move {
                    crate::web::run(id, *socket, rx, inbound, config).await;
                    drop(held);
                })
            }),
        }
    }

    /// Connects through `endpoint` (see [`crate::client_endpoint`]) to `addr`
    /// (host:port), then runs the connection, reporting what arrives to `inbound`
    /// tagged `id`; what is sent meanwhile is queued. A failed attempt is reported as a
    /// loss, or as [`CloseReason::Untrusted`] when the server's certificate is refused.
    pub fn connect(
        id: u64,
        endpoint: quinn::Endpoint,
        addr: String,
        inbound: mpsc::Sender<Inbound>,
        config: TransportConfig,
    ) -> Connection {
        Connection::new(id, config, |rx| {
            tokio::spawn(async move {
                let attempt = tokio::time::timeout(config.connect_timeout, open(&endpoint, &addr));
                let reason = match attempt.await {
                    Ok(Ok(established)) => return run(id, established, rx, inbound, config).await,
                    Ok(Err(reason)) => reason,
                    Err(_) => CloseReason::Lost(format!("connecting to {addr} timed out")),
                };
                let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
            })
        })
    }

    /// Queues a copy of a message (so the caller may reuse its buffer), charged to the
    /// send budget until it is written. On a connection the server accepted, a message
    /// that may be lost goes straight to QUIC as a datagram when it fits (QUIC holds at
    /// most a few KiB of them and drops the oldest): one allocation, the datagram's
    /// own. Elsewhere (a client's connection, a WebSocket) the connection's task sends
    /// it.
    pub fn send(&self, bytes: &[u8], delivery: Delivery) -> Queued {
        if self.tx.is_closed() {
            return Queued::Closed;
        }
        if let (Some(quic), Delivery::Unreliable) = (&self.quic, delivery)
            && quic
                .max_datagram_size()
                .is_some_and(|max| bytes.len() <= max)
        {
            match quic.send_datagram(Bytes::copy_from_slice(bytes)) {
                Ok(()) => return Queued::Yes,
                // Its end is reported by the task as an inbound event.
                Err(quinn::SendDatagramError::ConnectionLost(_)) => return Queued::Closed,
                // Too large after all, or datagrams off: the stream takes it.
                Err(_) => {}
            }
        }
        let bytes = bytes.to_vec();
        let cost = (bytes.len() + MESSAGE_OVERHEAD).min(u32::MAX as usize) as u32;
        let Ok(budget) = self.budget.clone().try_acquire_many_owned(cost) else {
            return Queued::Full;
        };
        let message = Outbound::Message {
            bytes,
            delivery,
            _budget: budget,
        };
        match self.tx.send(message) {
            Ok(()) => Queued::Yes,
            Err(_) => Queued::Closed,
        }
    }

    /// Closes with a goodbye naming `reason` (after what was queued).
    pub fn close(self, reason: &str) {
        let _ = self.tx.send(Outbound::Close(reason.to_string()));
    }

    /// Drops the connection at once, with no goodbye: every handle on it goes, so QUIC
    /// closes it without a reason (the peer reads that as a loss).
    pub fn cut(self) {
        self.task.abort();
    }
}

/// A task that is stopped when this guard drops (with the task that owns it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves `addr`, makes the QUIC connection and opens the message stream.
async fn open(endpoint: &quinn::Endpoint, addr: &str) -> Result<Established, CloseReason> {
    let lost = |what: String| CloseReason::Lost(format!("cannot connect to {addr}: {what}"));
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| lost(e.to_string()))?
        .next()
        .ok_or_else(|| lost("the name has no address".into()))?;
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connecting = endpoint
        .connect(target, host)
        .map_err(|e| lost(e.to_string()))?;
    let quic = connecting.await.map_err(|error| match error {
        quinn::ConnectionError::TransportError(e) if is_crypto(e.code) => {
            CloseReason::Untrusted(format!("the server at {addr} is not trusted: {}", e.reason))
        }
        quinn::ConnectionError::ConnectionClosed(close) if is_crypto(close.error_code) => {
            CloseReason::Untrusted(format!(
                "the server at {addr} refused the handshake: {close}"
            ))
        }
        other => lost(other.to_string()),
    })?;
    let (send, recv) = quic.open_bi().await.map_err(|e| lost(e.to_string()))?;
    Ok(Established { quic, send, recv })
}

/// Whether a QUIC error code is a TLS alert (the handshake's verdict).
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// How a QUIC connection error reads to the owner (`None`: this side closed it).
fn closed_reason(error: &quinn::ConnectionError, timeout: Duration) -> Option<CloseReason> {
    Some(match error {
        quinn::ConnectionError::LocallyClosed => return None,
        quinn::ConnectionError::ApplicationClosed(close) if !close.reason.is_empty() => {
            let reason = &close.reason[..close.reason.len().min(MAX_GOODBYE_REASON)];
            CloseReason::Goodbye(String::from_utf8_lossy(reason).into_owned())
        }
        quinn::ConnectionError::ApplicationClosed(_) => {
            CloseReason::Lost("closed without a goodbye".into())
        }
        quinn::ConnectionError::TimedOut => {
            CloseReason::Lost(format!("silent for {} ms", timeout.as_millis()))
        }
        other => CloseReason::Lost(other.to_string()),
    })
}

async fn run(
    id: u64,
    Established {
        quic,
        mut send,
        mut recv,
    }: Established,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    inbound: mpsc::Sender<Inbound>,
    config: TransportConfig,
) {
    // Reading is not cancel-safe, so it runs on its own and hands frames over, one at
    // a time: at most three whole frames (768 KiB) wait (one the reader holds, one in
    // the channel, one this loop is handing to the room), the rest in QUIC's flow
    // control.
    let (frames_tx, mut frames) = mpsc::channel(1);
    let reading = AbortOnDrop(tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut recv).await;
            let last = !matches!(frame, Ok(Frame::Message(_)));
            if frames_tx.send(frame).await.is_err() || last {
                break;
            }
        }
    }));
    let ended = loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(Frame::Message(bytes))) => {
                    let bytes = Bytes::from(bytes);
                    if inbound.send(Inbound::Message { conn: id, bytes }).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Frame::Goodbye(reason))) => break Some(CloseReason::Goodbye(reason)),
                Some(Err(error)) => {
                    // A stream that failed because the connection closed: say how.
                    let reason = quic.close_reason().map_or_else(
                        || Some(CloseReason::Lost(error.to_string())),
                        |e| closed_reason(&e, config.timeout),
                    );
                    break reason;
                }
                None => break Some(CloseReason::Lost("the reader stopped".into())),
            },
            datagram = quic.read_datagram() => match datagram {
                Ok(bytes) => {
                    if inbound.send(Inbound::Message { conn: id, bytes }).await.is_err() {
                        break None;
                    }
                }
                Err(error) => break closed_reason(&error, config.timeout),
            },
            command = outbound.recv() => match command {
                Some(Outbound::Message { bytes, delivery, .. }) => {
                    let fits = quic.max_datagram_size().is_some_and(|max| bytes.len() <= max);
                    let bytes = if delivery == Delivery::Unreliable && fits {
                        let datagram = Bytes::from(bytes);
                        match quic.send_datagram(datagram.clone()) {
                            Ok(()) => continue,
                            Err(quinn::SendDatagramError::ConnectionLost(error)) => {
                                break closed_reason(&error, config.timeout);
                            }
                            // Too large after all, or datagrams off: the stream takes it.
                            Err(_) => datagram.to_vec(),
                        }
                    } else {
                        bytes
                    };
                    let frame = Frame::Message(bytes);
                    let write = write_frame(&mut send, &frame);
                    match tokio::time::timeout(config.write_timeout, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            // Closed here too (the stream failed, the connection may
                            // not have): the reader then ends with what it holds.
                            let why = format!("send failed: {e}");
                            quic.close(1u32.into(), why.as_bytes());
                            break Some(CloseReason::Lost(why));
                        }
                        Err(_) => {
                            let why = "the peer stopped reading (write timed out)";
                            quic.close(1u32.into(), why.as_bytes());
                            break Some(CloseReason::Lost(why.into()));
                        }
                    }
                }
                Some(Outbound::Close(reason)) => {
                    goodbye(&quic, &mut send, &reason).await;
                    break None;
                }
                None => {
                    goodbye(&quic, &mut send, "closed").await;
                    break None;
                }
            },
        }
    };
    let Some(mut reason) = ended else { return };
    // The end can be known (a datagram read fails on the close) before the reader has
    // taken the peer's last words off the stream, which QUIC keeps readable: pass on
    // all of them before reporting the end (a refusal or a leave must not read as a
    // loss). Every way here closed the connection or ended the stream, which ends the
    // reader once it has handed over what it holds; LINGER bounds the wait for the
    // reader, not the owner's taking of each message (as in the loop above).
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(LINGER, frames.recv()).await {
        match frame {
            Frame::Message(bytes) => {
                let bytes = Bytes::from(bytes);
                let _ = inbound.send(Inbound::Message { conn: id, bytes }).await;
            }
            Frame::Goodbye(why) => reason = CloseReason::Goodbye(why),
        }
    }
    drop(reading);
    let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
}

/// Says goodbye after everything queued: the frame, the stream's end, a short wait
/// for the peer to acknowledge it, then the connection's close with the same reason
/// (which a peer reads as the goodbye if the frame did not reach it).
async fn goodbye(quic: &quinn::Connection, send: &mut quinn::SendStream, reason: &str) {
    let frame = Frame::Goodbye(reason.to_string());
    let said = async {
        write_frame(send, &frame).await.ok()?;
        send.finish().ok()?;
        send.stopped().await.ok()
    };
    let _ = tokio::time::timeout(LINGER, said).await;
    let reason = &reason.as_bytes()[..reason.len().min(512)];
    quic.close(0u32.into(), reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Identity, Trust};

    const MESSAGES: usize = 20;

    /// The server's side of one connection: after the client's first message it sends
    /// [`MESSAGES`] messages and a goodbye, then closes as soon as the client's QUIC
    /// stack (not the client's reader) has acknowledged them.
    async fn say_and_close(endpoint: quinn::Endpoint) {
        let quic = endpoint.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = quic.accept_bi().await.unwrap();
        read_frame(&mut recv).await.unwrap();
        for i in 0..MESSAGES {
            let frame = Frame::Message(vec![i as u8; 1000]);
            write_frame(&mut send, &frame).await.unwrap();
        }
        let goodbye = Frame::Goodbye("refused".into());
        write_frame(&mut send, &goodbye).await.unwrap();
        send.finish().unwrap();
        send.stopped().await.unwrap();
        quic.close(0u32.into(), b"refused");
    }

    #[tokio::test]
    async fn what_arrived_before_the_close_is_all_reported_before_the_end() {
        let identity = Identity::self_signed(&["localhost".into()]).unwrap();
        let transport = TransportConfig::default();
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let server = crate::server_endpoint(loopback, &identity, &transport).unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let closing = tokio::spawn(say_and_close(server));
        let trust = Trust::Pinned(identity.fingerprint());
        let client = crate::client_endpoint(loopback, &trust, &transport).unwrap();
        // Room for one message: the connection's task waits on it while the rest and
        // the close arrive, so the end is known before most messages are passed on.
        let (inbound, mut heard) = mpsc::channel(1);
        let connection = Connection::connect(7, client, addr, inbound, transport);
        assert_eq!(connection.send(b"hello", Delivery::Reliable), Queued::Yes);
        closing.await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..MESSAGES {
            match heard.recv().await {
                Some(Inbound::Message { conn: 7, bytes }) => assert_eq!(bytes[..], [i as u8; 1000]),
                other => panic!("message {i}: {other:?}"),
            }
        }
        match heard.recv().await {
            Some(Inbound::Closed { conn: 7, reason }) => {
                assert_eq!(reason, CloseReason::Goodbye("refused".into()));
            }
            other => panic!("the end: {other:?}"),
        }
    }
}
