//! One TCP connection as a task: frames in and out, a heartbeat when nothing else was
//! sent for a while, the peer taken as lost after a silence, and a goodbye with the
//! reason on an intentional close, so the other side never mistakes a leave for a loss.
//! A malformed or oversized frame closes this connection only.

use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::frame::{Frame, read_frame, write_frame};

/// Transport timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// A peer silent this long is taken as lost (default 10 s).
    pub timeout: Duration,
    /// A heartbeat goes out when nothing was sent for this long (default 1 s).
    pub heartbeat: Duration,
    /// A connection attempt gives up after this (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl TransportConfig {
    /// Defaults with a silence timeout of `timeout` (heartbeats at a tenth of it, at
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
    /// It failed: an I/O error, a silence past the timeout, a malformed frame, or a
    /// close without a goodbye.
    Lost(String),
}

/// What connections report to their owner, tagged with the connection's number.
#[derive(Debug)]
pub enum Inbound {
    /// A message's bytes arrived.
    Message {
        /// The connection.
        conn: u64,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// The connection ended (not reported when the owner closed it).
    Closed {
        /// The connection.
        conn: u64,
        /// How.
        reason: CloseReason,
    },
}

enum Outbound {
    Message(Vec<u8>),
    Close(String),
}

/// What became of a message handed to [`Connection::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued for sending.
    Yes,
    /// The peer is too far behind: its queue is full.
    Full,
    /// The connection has ended; its end is (or will be) reported as an [`Inbound`].
    Closed,
}

/// Inbound events queued for the owner before connections wait (and TCP pushes back on
/// their peers): a peer that sends faster than the owner handles cannot grow memory.
pub const INBOUND_QUEUE: usize = 1024;

/// Messages queued for one connection before it counts as too slow.
const QUEUE: usize = 4096;

/// The owner's handle on a connection task. Dropping it closes the connection with a
/// goodbye.
#[derive(Debug)]
pub struct Connection {
    /// The connection's number.
    pub id: u64,
    tx: mpsc::Sender<Outbound>,
    task: JoinHandle<()>,
}

impl Connection {
    /// Runs the connection on `stream`, reporting to `inbound`.
    pub fn spawn(
        id: u64,
        stream: TcpStream,
        inbound: mpsc::Sender<Inbound>,
        config: TransportConfig,
    ) -> Connection {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(id, stream, rx, inbound, config));
        Connection { id, tx, task }
    }

    /// Connects to `addr`, then runs the connection; what is sent meanwhile is queued.
    /// A failed attempt is reported as a loss.
    pub fn connect(
        id: u64,
        addr: String,
        inbound: mpsc::Sender<Inbound>,
        config: TransportConfig,
    ) -> Connection {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            let attempt =
                tokio::time::timeout(config.connect_timeout, TcpStream::connect(&addr)).await;
            match attempt {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    run(id, stream, rx, inbound, config).await;
                }
                Ok(Err(e)) => {
                    let reason = CloseReason::Lost(format!("cannot connect to {addr}: {e}"));
                    let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
                }
                Err(_) => {
                    let reason = CloseReason::Lost(format!("connecting to {addr} timed out"));
                    let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
                }
            }
        });
        Connection { id, tx, task }
    }

    /// Queues a message.
    pub fn send(&self, bytes: Vec<u8>) -> Queued {
        match self.tx.try_send(Outbound::Message(bytes)) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::Closed,
        }
    }

    /// Closes with a goodbye naming `reason` (after what was queued).
    pub fn close(self, reason: &str) {
        let _ = self.tx.try_send(Outbound::Close(reason.to_string()));
    }

    /// Drops the socket at once, with no goodbye: the peer sees the connection die.
    pub fn cut(self) {
        self.task.abort();
    }
}

async fn run(
    id: u64,
    stream: TcpStream,
    mut outbound: mpsc::Receiver<Outbound>,
    inbound: mpsc::Sender<Inbound>,
    config: TransportConfig,
) {
    let (reader, mut writer) = stream.into_split();
    // Buffered: one read brings in every frame that has arrived.
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    // Reading is not cancel-safe, so it runs on its own and hands frames over.
    let (frames_tx, mut frames) = mpsc::channel(64);
    let reading = tokio::spawn(async move {
        loop {
            let frame = read_frame(&mut reader).await;
            let last = !matches!(frame, Ok(Frame::Message(_) | Frame::Heartbeat));
            if frames_tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    let mut heard = Instant::now();
    let mut sent = Instant::now();
    let ended = loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(Frame::Message(bytes))) => {
                    heard = Instant::now();
                    if inbound.send(Inbound::Message { conn: id, bytes }).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Frame::Heartbeat)) => heard = Instant::now(),
                Some(Ok(Frame::Goodbye(reason))) => break Some(CloseReason::Goodbye(reason)),
                Some(Err(error)) => break Some(CloseReason::Lost(error.to_string())),
                None => break Some(CloseReason::Lost("the reader stopped".into())),
            },
            command = outbound.recv() => match command {
                Some(Outbound::Message(bytes)) => {
                    if let Err(e) = write_frame(&mut writer, &Frame::Message(bytes)).await {
                        break Some(CloseReason::Lost(format!("send failed: {e}")));
                    }
                    sent = Instant::now();
                }
                Some(Outbound::Close(reason)) => {
                    let _ = write_frame(&mut writer, &Frame::Goodbye(reason)).await;
                    let _ = writer.shutdown().await;
                    break None;
                }
                None => {
                    let _ = write_frame(&mut writer, &Frame::Goodbye("closed".into())).await;
                    let _ = writer.shutdown().await;
                    break None;
                }
            },
            _ = sleep_until(sent + config.heartbeat) => {
                if let Err(e) = write_frame(&mut writer, &Frame::Heartbeat).await {
                    break Some(CloseReason::Lost(format!("send failed: {e}")));
                }
                sent = Instant::now();
            }
            _ = sleep_until(heard + config.timeout) => {
                let silent = format!("silent for {} ms", config.timeout.as_millis());
                break Some(CloseReason::Lost(silent));
            }
        }
    };
    reading.abort();
    let Some(mut reason) = ended else { return };
    // A write can fail because the peer closed after its last words: pass on what it
    // said before reporting the end (a leave must not read as a loss).
    while let Ok(frame) = frames.try_recv() {
        match frame {
            Ok(Frame::Message(bytes)) => {
                let _ = inbound.send(Inbound::Message { conn: id, bytes }).await;
            }
            Ok(Frame::Goodbye(why)) => reason = CloseReason::Goodbye(why),
            _ => {}
        }
    }
    let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
}
