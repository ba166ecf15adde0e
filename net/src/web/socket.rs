//! One WebSocket connection as a task, the browser's twin of the QUIC connection's
//! (see [`crate::Connection`]): every message travels as one binary WebSocket message,
//! in order. An intentional close is a close frame with code 1000 and the reason
//! (what a page's `onclose` reads as a goodbye); any other end is a loss. The server
//! pings every heartbeat and takes a peer silent past the timeout (no message, no
//! pong) as lost; a write the peer does not take within the write timeout ends the
//! connection.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::connection::{CloseReason, Inbound, LINGER, Outbound, TransportConfig};

/// A byte stream a browser reached us on: TCP, or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A visitor's stream, plain or secure.
pub(crate) type WebStream = Box<dyn Io>;

/// A browser's WebSocket, once upgraded.
pub(crate) type Socket = WebSocketStream<WebStream>;

/// Bytes of a close frame's reason at most (the frame's limit).
const MAX_REASON: usize = 123;

/// The first binary message (a ping or pong before it is passed over), or why none
/// came.
pub(crate) async fn first_message(socket: &mut Socket) -> Result<Vec<u8>, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes.to_vec()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Text(_))) => return Err("a text message before the hello".into()),
            Some(Ok(Message::Close(_))) | None => return Err("left before saying hello".into()),
            Some(Err(e)) => return Err(format!("no hello: {e}")),
        }
    }
}

/// Closes `socket` with a goodbye naming `why`, lingering for the peer's reply.
pub(crate) async fn refuse(socket: Box<Socket>, why: &'static str) {
    let (mut sink, mut stream) = (*socket).split();
    goodbye(&mut sink, &mut stream, close_frame(why)).await;
}

/// Sends the close `frame`, then reads (and drops) what the peer still sends until its
/// close in reply, within [`LINGER`]: closing a TCP socket with unread data resets it,
/// which could lose the close and what was queued before it.
async fn goodbye(
    sink: &mut SplitSink<Socket, Message>,
    stream: &mut SplitStream<Socket>,
    frame: CloseFrame,
) {
    let said = async {
        sink.send(Message::Close(Some(frame))).await.ok()?;
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        Some(())
    };
    let _ = timeout(LINGER, said).await;
}

/// A normal close naming `reason` (cut to fit, on a character boundary).
fn close_frame(reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code: CloseCode::Normal,
        reason: reason[..end].to_string().into(),
    }
}

/// Runs connection `id` over `socket` until either side ends it, reporting what
/// arrives to `inbound` (and the end, unless this side closed it).
pub(crate) async fn run(
    id: u64,
    socket: Socket,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    inbound: mpsc::Sender<Inbound>,
    config: TransportConfig,
) {
    let (mut sink, mut stream) = socket.split();
    let mut heard = Instant::now();
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    let lost = |why: String| Some(CloseReason::Lost(why));
    let ended = loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    heard = Instant::now();
                    let message = Inbound::Message { conn: id, bytes };
                    if inbound.send(message).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                    heard = Instant::now();
                }
                Some(Ok(Message::Close(Some(frame))))
                    if frame.code == CloseCode::Normal && !frame.reason.is_empty() =>
                {
                    break Some(CloseReason::Goodbye(frame.reason.to_string()));
                }
                Some(Ok(Message::Close(_))) | None => break lost("closed without a goodbye".into()),
                Some(Ok(Message::Text(_))) => {
                    let why = "a text message (the session speaks binary messages)";
                    let frame = CloseFrame { code: CloseCode::Policy, ..close_frame(why) };
                    goodbye(&mut sink, &mut stream, frame).await;
                    break lost(why.into());
                }
                Some(Err(e)) => break lost(e.to_string()),
            },
            _ = heartbeat.tick() => {
                if heard.elapsed() >= config.timeout {
                    break lost(format!("silent for {} ms", config.timeout.as_millis()));
                }
                let ping = sink.send(Message::Ping(Default::default()));
                match timeout(config.write_timeout, ping).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break lost(format!("send failed: {e}")),
                    Err(_) => break lost("the peer stopped reading (write timed out)".into()),
                }
            }
            command = outbound.recv() => match command {
                Some(Outbound::Message { bytes, .. }) => {
                    let write = sink.send(Message::Binary(bytes.into()));
                    match timeout(config.write_timeout, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break lost(format!("send failed: {e}")),
                        Err(_) => break lost("the peer stopped reading (write timed out)".into()),
                    }
                }
                Some(Outbound::Close(reason)) => {
                    goodbye(&mut sink, &mut stream, close_frame(&reason)).await;
                    break None;
                }
                None => {
                    goodbye(&mut sink, &mut stream, close_frame("closed")).await;
                    break None;
                }
            },
        }
    };
    if let Some(reason) = ended {
        let _ = inbound.send(Inbound::Closed { conn: id, reason }).await;
    }
}
