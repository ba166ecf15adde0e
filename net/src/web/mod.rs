//! The browsers' way in: one TCP listener that serves the page's files over HTTP and
//! takes the session over a WebSocket at [`SOCKET_PATH`] (both over TLS when the door
//! has a certificate: `https://`, `wss://`). A WebSocket connection is
//! counted under the same connection caps as a QUIC one from the moment it is
//! accepted (a page request too, while it is answered), must send its request head
//! within the connect timeout and its first message within the hello timeout, and is
//! then handed to the shard hosting the room that message names, where it runs like
//! any connection (see `socket`).

mod ration;
mod socket;

pub(crate) use socket::{Socket, WebStream, refuse, run};

use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use self::ration::{HELLO_RATION, Rationed};
use crate::connection::Link;
use crate::door::{Admission, Arrival, Door};
use crate::http::{HttpError, Response, header, read_head, request_line, write_response};

/// Where a page opens its WebSocket.
pub const SOCKET_PATH: &str = "/ws";

/// A file a [`WebDoor`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: Bytes,
}

/// The files a [`WebDoor`] serves, by path (`/` included when it has an index).
pub type Pages = BTreeMap<String, Page>;

/// Serves pages and takes WebSocket connections for the shards of a
/// [`crate::FrontDoor`] (made by [`crate::FrontDoor::web`]).
pub struct WebDoor {
    listener: TcpListener,
    door: Arc<Door>,
    pages: Arc<Pages>,
    tls: Option<TlsAcceptor>,
}

/// What a visitor asked for.
enum Visit {
    /// A page (or an error) was answered.
    Answered,
    /// A session over a WebSocket, whose first message has arrived.
    Session(Arrival),
}

impl WebDoor {
    pub(crate) fn new(
        listener: TcpListener,
        door: Arc<Door>,
        pages: Pages,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> WebDoor {
        WebDoor {
            listener,
            door,
            pages: Arc::new(pages),
            tls: tls.map(TlsAcceptor::from),
        }
    }

    /// Whether it speaks TLS (`https://`, `wss://`).
    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts visitors until the future is dropped.
    pub async fn run(self) {
        loop {
            let Ok((stream, address)) = self.listener.accept().await else {
                // Out of descriptors, most likely: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Some(admission) = self.door.admit_visitor(address.ip()) else {
                continue;
            };
            let (door, pages, tls) = (self.door.clone(), self.pages.clone(), self.tls.clone());
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let stream: WebStream = match tls {
                    None => Box::new(stream),
                    Some(tls) => {
                        let limit = door.limits().connect_timeout;
                        match timeout(limit, tls.accept(stream)).await {
                            Ok(Ok(secure)) => Box::new(secure),
                            // A failed or slow TLS handshake: dropped.
                            _ => return door.web_visit_failed(),
                        }
                    }
                };
                match visit(&door, &pages, stream, address, admission).await {
                    Ok(Visit::Session(arrival)) => door.deliver(door.next_shard(), arrival),
                    Ok(Visit::Answered) => {}
                    Err(_) => door.web_visit_failed(),
                }
            });
        }
    }
}

/// Reads a visitor's request (within the connect timeout) and answers it: a page,
/// or a WebSocket whose first message is then awaited (within the hello timeout).
async fn visit(
    door: &Door,
    pages: &Pages,
    mut stream: WebStream,
    address: SocketAddr,
    admission: Admission,
) -> Result<Visit, HttpError> {
    let limits = door.limits();
    let head = timeout(limits.connect_timeout, read_head(&mut stream))
        .await
        .map_err(|_| HttpError::Timeout)??;
    let path = match request_line(&head) {
        Some(("GET", target)) => target.split('?').next().unwrap_or_default(),
        Some(_) => return answer(stream, Response::text(405, "only GET is served\n")).await,
        None => return answer(stream, Response::text(400, "malformed request\n")).await,
    };
    if path != SOCKET_PATH {
        let response = match pages.get(path) {
            Some(page) => Response::ok(page.content_type, page.body.clone()),
            None => Response::text(404, "no such page\n"),
        };
        return answer(stream, response).await;
    }
    let upgrade = header(&head, "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = header(&head, "sec-websocket-key").filter(|_| upgrade) else {
        let response = Response::text(426, "a WebSocket is spoken here\n");
        return answer(stream, response).await;
    };
    let accept = derive_accept_key(key.as_bytes());
    let switch = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
    );
    let write = tokio::io::AsyncWriteExt::write_all(&mut stream, switch.as_bytes());
    timeout(limits.connect_timeout, write)
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|e| HttpError::Io(e.to_string()))?;
    // No more than a hello's worth is read before the hello.
    let (stream, ration) = Rationed::new(stream, HELLO_RATION);
    let stream: WebStream = Box::new(stream);
    let mut socket =
        WebSocketStream::from_raw_socket(stream, Role::Server, Some(socket_config())).await;
    let first = match timeout(limits.hello_timeout, socket::first_message(&mut socket)).await {
        // A first message past a hello's frame (the ration counts framing too).
        Ok(Ok(first)) if first.len() > crate::frame::MAX_HELLO_FRAME_LEN => {
            return Err(HttpError::Io("a first message longer than a hello".into()));
        }
        Ok(Ok(first)) => {
            ration.lift();
            first
        }
        Ok(Err(why)) => return Err(HttpError::Io(why)),
        Err(_) => {
            refuse(Box::new(socket), "no hello arrived in time").await;
            return Err(HttpError::Timeout);
        }
    };
    Ok(Visit::Session(Arrival {
        link: Link::Web(Box::new(socket), address),
        first,
        admission,
    }))
}

/// Writes `response` and ends the visit.
async fn answer(mut stream: WebStream, response: Response) -> Result<Visit, HttpError> {
    write_response(&mut stream, &response).await?;
    Ok(Visit::Answered)
}

/// Frames and messages a peer may send: one protocol message at most (its length is
/// checked before anything is buffered beyond it). What waits to be written is capped
/// too: a peer that pings without reading cannot pile up pongs.
fn socket_config() -> WebSocketConfig {
    let max = tickstep_session::MAX_MESSAGE_LEN;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(16 << 10)
        .write_buffer_size(0)
        .max_write_buffer_size(max + (64 << 10))
}
