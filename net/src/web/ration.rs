//! `Rationed`: a browser's stream that reads at most a ration of bytes until the ration
//! is lifted. Before its hello a socket may send no more than a hello's worth, as a
//! QUIC connection's first frame may not (see [`crate::frame::MAX_HELLO_FRAME_LEN`]):
//! without it, each of an address's connections could hold a whole protocol message
//! (256 KiB) of "hello" in the WebSocket's buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::WebStream;

/// Bytes a socket may send before its hello has arrived: a hello's frame, its
/// WebSocket framing and a few control frames.
pub(crate) const HELLO_RATION: usize = crate::frame::MAX_HELLO_FRAME_LEN + 1024;

/// What is left of a stream's ration; [`Ration::lift`] ends it.
#[derive(Clone, Debug)]
pub(crate) struct Ration(Arc<AtomicUsize>);

/// A lifted ration.
const LIFTED: usize = usize::MAX;

impl Ration {
    /// Reading is no longer rationed.
    pub(crate) fn lift(&self) {
        self.0.store(LIFTED, Ordering::Relaxed);
    }
}

/// `inner`, reading at most what its [`Ration`] has left until the ration is lifted.
pub(crate) struct Rationed {
    inner: WebStream,
    left: Ration,
}

impl Rationed {
    /// `inner` with a ration of `bytes`, and the ration (to lift it).
    pub(crate) fn new(inner: WebStream, bytes: usize) -> (Rationed, Ration) {
        let left = Ration(Arc::new(AtomicUsize::new(bytes)));
        (
            Rationed {
                inner,
                left: left.clone(),
            },
            left,
        )
    }
}

impl AsyncRead for Rationed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let left = this.left.0.load(Ordering::Relaxed);
        if left == LIFTED {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if left == 0 {
            let why = "more than a hello's worth before the hello";
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
        }
        // Through a buffer no longer than the ration (a copy, before the hello only).
        let mut scratch = [0u8; 1024];
        let room = left.min(scratch.len()).min(buf.remaining());
        let mut limited = ReadBuf::new(&mut scratch[..room]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let read = limited.filled();
        buf.put_slice(read);
        this.left.0.fetch_sub(read.len(), Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rationed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_stream_reads_its_ration_then_fails_until_the_ration_is_lifted() {
        let (mut peer, ours) = tokio::io::duplex(64 << 10);
        let (mut rationed, ration) = Rationed::new(Box::new(ours), 3000);
        peer.write_all(&[7; 5000]).await.unwrap();
        let mut got = vec![0u8; 5000];
        let mut read = 0;
        let error = loop {
            match rationed.read(&mut got[read..]).await {
                Ok(n) => read += n,
                Err(error) => break error,
            }
        };
        assert_eq!(read, 3000, "exactly the ration");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        ration.lift();
        rationed.read_exact(&mut got[read..]).await.unwrap();
        assert_eq!(got, vec![7; 5000], "the rest once lifted, nothing lost");
    }
}
