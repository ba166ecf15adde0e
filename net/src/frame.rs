//! Framing on a connection's stream: every frame is a 5-byte header (payload length
//! as a little-endian u32, then a kind byte) and the payload. The length is checked
//! against [`MAX_FRAME_LEN`] before anything is allocated. (Liveness is QUIC's job:
//! its keep-alives and idle timeout.)

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tickstep_session::MAX_MESSAGE_LEN;

/// Largest payload a frame may carry: one protocol message.
pub const MAX_FRAME_LEN: usize = MAX_MESSAGE_LEN;

/// Largest first frame a connection may send: its hello, a few hundred bytes. A server
/// reads no more than this before it knows whom it is talking to, so a connection that
/// never finishes its hello holds little.
pub const MAX_HELLO_FRAME_LEN: usize = 8 * 1024;

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 5;

/// Bytes of a goodbye's reason kept when it is read: a reason is a line for a log (the
/// server's own are shorter), and a peer's could otherwise fill a frame.
pub const MAX_GOODBYE_REASON: usize = 512;

/// What a frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An encoded protocol message.
    Message(Vec<u8>),
    /// The sender is closing the connection on purpose, and why.
    Goodbye(String),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the stream (between frames or inside one) without a goodbye.
    #[error("connection closed without a goodbye")]
    Closed,
    /// The header announces more bytes than the reader takes ([`MAX_FRAME_LEN`], or
    /// [`MAX_HELLO_FRAME_LEN`] for a connection's first frame).
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The announced length.
        len: u32,
        /// The limit.
        limit: usize,
    },
    /// The header's kind byte is unknown.
    #[error("malformed frame header (kind {kind}, length {len})")]
    Malformed {
        /// The kind byte.
        kind: u8,
        /// The announced length.
        len: u32,
    },
}

const KIND_MESSAGE: u8 = 0;
const KIND_GOODBYE: u8 = 2;

/// Checks a frame header: the payload length and kind, or why the frame is refused.
pub fn parse_header(header: [u8; HEADER_LEN]) -> Result<(u8, usize), FrameError> {
    parse_header_up_to(header, MAX_FRAME_LEN)
}

/// [`parse_header`] for a payload of at most `limit` bytes.
fn parse_header_up_to(header: [u8; HEADER_LEN], limit: usize) -> Result<(u8, usize), FrameError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let kind = header[4];
    if len as usize > limit.min(MAX_FRAME_LEN) {
        let limit = limit.min(MAX_FRAME_LEN);
        return Err(FrameError::TooLarge { len, limit });
    }
    match kind {
        KIND_MESSAGE | KIND_GOODBYE => Ok((kind, len as usize)),
        _ => Err(FrameError::Malformed { kind, len }),
    }
}

/// Reads one frame.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Frame, FrameError> {
    read_frame_up_to(reader, MAX_FRAME_LEN).await
}

/// Reads one frame of at most `limit` bytes (and at most [`MAX_FRAME_LEN`]): a longer
/// one is refused from its header, before anything is allocated for it. A goodbye's
/// reason is cut to [`MAX_GOODBYE_REASON`] bytes.
pub async fn read_frame_up_to<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Frame, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let (kind, len) = parse_header_up_to(header, limit)?;
    // Bounded by the limit, checked above, and grown as the bytes arrive (doubling
    // from 4 KiB, never past `len`): a header alone costs nothing.
    let mut payload = Vec::new();
    while payload.len() < len {
        let step = (len - payload.len()).min(payload.len().max(4096));
        payload.reserve_exact(step);
        if (&mut *reader)
            .take(step as u64)
            .read_buf(&mut payload)
            .await?
            == 0
        {
            return Err(FrameError::Closed);
        }
    }
    Ok(match kind {
        KIND_GOODBYE => {
            let reason = &payload[..len.min(MAX_GOODBYE_REASON)];
            Frame::Goodbye(String::from_utf8_lossy(reason).into_owned())
        }
        _ => Frame::Message(payload),
    })
}

/// Writes one frame (a goodbye's reason is cut to fit).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
) -> std::io::Result<()> {
    let (kind, payload): (u8, &[u8]) = match frame {
        Frame::Message(bytes) => (KIND_MESSAGE, bytes),
        Frame::Goodbye(reason) => (KIND_GOODBYE, reason.as_bytes()),
    };
    let payload = &payload[..payload.len().min(MAX_FRAME_LEN)];
    // One write per frame: header and payload together.
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(payload);
    writer.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_headers_are_refused() {
        let frames = [
            Frame::Message(vec![1, 2, 3]),
            Frame::Message(vec![]),
            Frame::Goodbye("leaving".into()),
        ];
        let mut wire = Vec::new();
        for frame in &frames {
            write_frame(&mut wire, frame).await.unwrap();
        }
        let mut reader = &wire[..];
        for frame in &frames {
            assert_eq!(&read_frame(&mut reader).await.unwrap(), frame);
        }
        assert!(matches!(
            read_frame(&mut reader).await,
            Err(FrameError::Closed)
        ));
        let mut cut = &wire[..7];
        read_frame(&mut cut).await.unwrap_err();
        let huge = ((MAX_FRAME_LEN as u32 + 1).to_le_bytes(), 0u8);
        let header = [huge.0[0], huge.0[1], huge.0[2], huge.0[3], huge.1];
        assert!(matches!(
            parse_header(header),
            Err(FrameError::TooLarge {
                limit: MAX_FRAME_LEN,
                ..
            })
        ));
        assert!(matches!(
            parse_header([1, 0, 0, 0, 1]),
            Err(FrameError::Malformed { .. })
        ));
        assert!(matches!(
            parse_header([0, 0, 0, 0, 9]),
            Err(FrameError::Malformed { .. })
        ));
    }

    /// A reader that remembers the most room a read ever offered it.
    struct Watched<R> {
        inner: R,
        most_offered: usize,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.most_offered = self.most_offered.max(buf.remaining());
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    #[tokio::test]
    async fn a_frame_costs_what_arrived_of_it_not_what_its_header_announced() {
        let (mut peer, ours) = tokio::io::duplex(64 << 10);
        // A header announcing the largest frame, then 10 bytes, then nothing more.
        let header = (MAX_FRAME_LEN as u32).to_le_bytes();
        peer.write_all(&header).await.unwrap();
        peer.write_all(&[KIND_MESSAGE]).await.unwrap();
        peer.write_all(&[1; 10]).await.unwrap();
        let mut reader = Watched {
            inner: ours,
            most_offered: 0,
        };
        let read = read_frame(&mut reader);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), read)
                .await
                .is_err(),
            "the frame is not all there"
        );
        assert!(reader.most_offered <= 4096, "{} bytes", reader.most_offered);
        // The same frame once it is all there.
        let mut whole = header.to_vec();
        whole.push(KIND_MESSAGE);
        whole.extend(std::iter::repeat_n(2, MAX_FRAME_LEN));
        let Frame::Message(payload) = read_frame(&mut &whole[..]).await.unwrap() else {
            panic!("a message");
        };
        assert_eq!(payload, vec![2; MAX_FRAME_LEN]);
        assert_eq!(payload.capacity(), MAX_FRAME_LEN, "no room to spare");
    }

    #[tokio::test]
    async fn a_goodbyes_reason_is_cut_to_a_log_line() {
        let mut wire = Vec::new();
        let long = "é".repeat(MAX_FRAME_LEN / 2);
        write_frame(&mut wire, &Frame::Goodbye(long)).await.unwrap();
        let Frame::Goodbye(reason) = read_frame(&mut &wire[..]).await.unwrap() else {
            panic!("a goodbye");
        };
        assert_eq!(reason, "é".repeat(MAX_GOODBYE_REASON / 2));
    }

    #[tokio::test]
    async fn a_first_frame_longer_than_a_hello_is_refused_from_its_header() {
        let mut wire = Vec::new();
        for len in [MAX_HELLO_FRAME_LEN, MAX_HELLO_FRAME_LEN + 1] {
            write_frame(&mut wire, &Frame::Message(vec![7; len]))
                .await
                .unwrap();
        }
        let mut reader = &wire[..];
        let hello = read_frame_up_to(&mut reader, MAX_HELLO_FRAME_LEN).await;
        assert_eq!(hello.unwrap(), Frame::Message(vec![7; MAX_HELLO_FRAME_LEN]));
        let long = read_frame_up_to(&mut reader, MAX_HELLO_FRAME_LEN).await;
        assert!(matches!(
            long,
            Err(FrameError::TooLarge { len, limit: MAX_HELLO_FRAME_LEN })
                if len as usize == MAX_HELLO_FRAME_LEN + 1
        ));
        // Refused from the header: the payload was not read.
        assert_eq!(reader.len(), MAX_HELLO_FRAME_LEN + 1);
        // A limit above the frame limit is the frame limit.
        let mut huge = &[0xff, 0xff, 0xff, 0x00, 0][..];
        let refused = read_frame_up_to(&mut huge, usize::MAX).await;
        assert!(matches!(
            refused,
            Err(FrameError::TooLarge {
                limit: MAX_FRAME_LEN,
                ..
            })
        ));
    }
}
