//! Just enough HTTP/1.1 for an operator's endpoints (metrics, health) and the Agones
//! SDK's local REST calls: one request per connection, a head of at most
//! [`MAX_HEAD`] bytes read within [`IO_TIMEOUT`] (and so every write), and at most
//! [`MAX_CONNECTIONS`] served at once. A request past a bound is closed unanswered.

use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// A request or response head longer than this is refused.
pub const MAX_HEAD: usize = 8 << 10;
/// Requests served at once at most.
pub const MAX_CONNECTIONS: usize = 32;
/// Each connect, read and write must finish within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What an HTTP exchange can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The connection failed.
    #[error("HTTP connection failed: {0}")]
    Io(String),
    /// The peer took longer than [`IO_TIMEOUT`].
    #[error("HTTP peer did not answer within {} s", IO_TIMEOUT.as_secs())]
    Timeout,
    /// The peer sent something that is not an HTTP head within [`MAX_HEAD`] bytes.
    #[error("malformed HTTP: {0}")]
    Malformed(&'static str),
}

/// An answer to a GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body's media type.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// A 200 with `body` of `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text answer with `status`.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

/// Answers every GET on `listener` with `route(path)` (the path without its query)
/// until the future is dropped; other methods get 405.
pub async fn serve_http<F, Fut>(listener: TcpListener, route: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let route = route.clone();
        tokio::spawn(async move {
            let _ = answer(stream, route).await;
            drop(permit);
        });
    }
}

async fn answer<F, Fut>(mut stream: TcpStream, route: F) -> Result<(), HttpError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Response>,
{
    let response = match read_head(&mut stream).await {
        Ok(head) => match request_line(&head) {
            Some(("GET", path)) => {
                let path = path.split('?').next().unwrap_or_default();
                route(path.to_string()).await
            }
            Some(_) => Response::text(405, "only GET is served\n"),
            None => Response::text(400, "malformed request\n"),
        },
        Err(error) => return Err(error),
    };
    write_response(&mut stream, &response).await
}

/// Writes `response` and ends the stream, each piece of at most [`WRITE_CHUNK`] bytes
/// within [`IO_TIMEOUT`] (a large body on a slow link still gets through; a peer that
/// stops reading is dropped).
pub(crate) async fn write_response(
    stream: &mut (impl AsyncWrite + Unpin),
    response: &Response,
) -> Result<(), HttpError> {
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    let pieces = std::iter::once(head.as_bytes()).chain(response.body.chunks(WRITE_CHUNK));
    for piece in pieces {
        timeout(IO_TIMEOUT, stream.write_all(piece))
            .await
            .map_err(|_| HttpError::Timeout)?
            .map_err(|e| HttpError::Io(e.to_string()))?;
    }
    timeout(IO_TIMEOUT, stream.shutdown())
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|e| HttpError::Io(e.to_string()))
}

/// Bytes of a response written within one [`IO_TIMEOUT`].
pub const WRITE_CHUNK: usize = 64 << 10;

/// A response body read by [`get`] at most; a longer one is cut here.
pub const MAX_BODY: usize = 4 << 20;

/// Sends `POST path` with a JSON `body` to `addr` and returns the response's status
/// code.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Result<u16, HttpError> {
    let (status, _) = request(addr, "POST", path, body, false).await?;
    Ok(status)
}

/// Sends `GET path` to `addr` and returns the response's status code and body (at
/// most [`MAX_BODY`] bytes of it).
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), HttpError> {
    request(addr, "GET", path, "", true).await
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    read_body: bool,
) -> Result<(u16, String), HttpError> {
    let connect = timeout(IO_TIMEOUT, TcpStream::connect(addr));
    let mut stream = connect
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|e| HttpError::Io(e.to_string()))?;
    let content = match method {
        "POST" => format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ),
        _ => String::new(),
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{content}connection: close\r\n\r\n{body}"
    );
    timeout(IO_TIMEOUT, stream.write_all(request.as_bytes()))
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|e| HttpError::Io(e.to_string()))?;
    let head = read_head(&mut stream).await?;
    let (head, already) = head.split_once("\r\n\r\n").unwrap_or((&head, ""));
    let mut words = head.split(' ');
    let status = match (words.next(), words.next().map(str::parse::<u16>)) {
        (Some(version), Some(Ok(status))) if version.starts_with("HTTP/1.") => status,
        _ => return Err(HttpError::Malformed("no status line")),
    };
    let mut answer = already.as_bytes().to_vec();
    if read_body {
        let rest = (&mut stream).take((MAX_BODY - answer.len().min(MAX_BODY)) as u64);
        let mut rest = rest;
        timeout(IO_TIMEOUT, rest.read_to_end(&mut answer))
            .await
            .map_err(|_| HttpError::Timeout)?
            .map_err(|e| HttpError::Io(e.to_string()))?;
    }
    let body = String::from_utf8(answer).map_err(|_| HttpError::Malformed("body is not UTF-8"))?;
    Ok((status, body))
}

/// Reads up to the blank line ending an HTTP head (or the end of the stream), at most
/// [`MAX_HEAD`] bytes within [`IO_TIMEOUT`] in all, and returns it as text.
pub(crate) async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> Result<String, HttpError> {
    let read = async {
        let mut head = Vec::with_capacity(1024);
        let mut buffer = [0u8; 1024];
        loop {
            let read = stream
                .read(&mut buffer)
                .await
                .map_err(|e| HttpError::Io(e.to_string()))?;
            if read == 0 {
                break;
            }
            if head.len() + read > MAX_HEAD {
                return Err(HttpError::Malformed("head too large"));
            }
            // Only what just arrived (and the 3 bytes before it) can end the head: a
            // peer sending a byte at a time costs a scan of 4 bytes each, not the head.
            let from = head.len().saturating_sub(3);
            head.extend_from_slice(&buffer[..read]);
            if head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        String::from_utf8(head).map_err(|_| HttpError::Malformed("head is not UTF-8"))
    };
    timeout(IO_TIMEOUT, read)
        .await
        .map_err(|_| HttpError::Timeout)?
}

/// The method and target of a request head's first line.
pub(crate) fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    version.starts_with("HTTP/1.").then_some((method, target))
}

/// The value of the header `name` (any case) in a request head.
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn raw(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[test]
    fn routes_gets_and_refuses_the_rest() {
        runtime().block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(serve_http(listener, |path: String| async move {
                match path.as_str() {
                    "/hello" => Response::ok("text/plain", "hi\n"),
                    _ => Response::text(404, "no\n"),
                }
            }));
            let hello = raw(addr, b"GET /hello?x=1 HTTP/1.1\r\nhost: a\r\n\r\n").await;
            assert!(hello.starts_with("HTTP/1.1 200 OK\r\n"), "{hello}");
            assert!(hello.contains("content-length: 3\r\n"), "{hello}");
            assert!(hello.ends_with("\r\n\r\nhi\n"), "{hello}");
            let missing = raw(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
            assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
            let posted = raw(addr, b"POST /hello HTTP/1.1\r\n\r\n").await;
            assert!(posted.starts_with("HTTP/1.1 405 "), "{posted}");
            // Past the bound, closed unanswered (or reset: the rest is never read).
            let mut huge = b"GET /hello HTTP/1.1\r\nx: ".to_vec();
            huge.resize(MAX_HEAD + 100, b'a');
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(&huge).await.unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            assert_eq!(answer, b"", "no answer past the bound");
            // The client half reads what the server half says.
            assert_eq!(post(addr, "/hello", "{}").await, Ok(405));
            assert_eq!(get(addr, "/hello").await, Ok((200, "hi\n".to_string())));
            assert_eq!(get(addr, "/nope").await, Ok((404, "no\n".to_string())));
        });
    }

    /// The head as it arrives `step` bytes at a time (through a pipe that holds `step`).
    async fn head_in_steps(text: &'static [u8], step: usize) -> Result<String, HttpError> {
        let (mut writer, mut reader) = tokio::io::duplex(step);
        let writing = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = writer.write_all(text).await;
        });
        let head = read_head(&mut reader).await;
        writing.abort();
        head
    }

    #[tokio::test]
    async fn a_head_ends_at_its_blank_line_however_its_bytes_arrive() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nafter";
        let whole = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for step in [1, 2, 3, 5, 1024] {
            // The blank line is found whichever reads it is split over: reading stops
            // with the read that completes it.
            let head = head_in_steps(request, step).await.unwrap();
            assert!(head.starts_with(whole), "{step}: {head:?}");
            assert!(head.len() < whole.len() + step, "{step}: {head:?}");
        }
        // A head that never ends is refused at its limit, a byte at a time too.
        let endless: &'static [u8] = Box::leak(vec![b'a'; MAX_HEAD + 1].into_boxed_slice());
        assert!(matches!(
            head_in_steps(endless, 1).await,
            Err(HttpError::Malformed("head too large"))
        ));
    }
}
