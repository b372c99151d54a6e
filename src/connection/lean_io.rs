//! A socket wrapper that holds buffers only while data moves.
//!
//! tungstenite keeps a read buffer and a write buffer per connection for the
//! connection's whole life. Server connections run it with tiny buffers
//! (see [`server_config`]) over [`LeanIo`], which reads and writes in large
//! chunks through buffers it allocates when data comes and frees as soon as
//! they are drained: an idle connection holds none, a busy one still makes
//! one system call per 64 KiB.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Size of the chunk read from the socket when data keeps coming.
const READ_CHUNK: usize = 64 * 1024;
/// Writes are gathered up to this size before going to the socket.
const WRITE_CHUNK: usize = 64 * 1024;
/// The gathering buffer's first size.
const FIRST_GATHER: usize = 512;
/// Writes this large skip the gathering buffer when it is empty.
const DIRECT_WRITE: usize = 16 * 1024;

/// tungstenite settings for a connection over [`LeanIo`]: a small read
/// buffer (LeanIo does the large reads) and no write buffering (LeanIo
/// gathers writes until the flush).
pub(crate) fn server_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// A socket whose read and write buffers exist only while data moves.
#[derive(Debug)]
pub(crate) struct LeanIo<S: AsyncRead + AsyncWrite + Unpin> {
    inner: S,
    /// The large read buffer (`READ_CHUNK` bytes, or none), and the data
    /// in it not yet handed out: `spill[spill_pos..spill_end]`.
    spill: Vec<u8>,
    spill_pos: usize,
    spill_end: usize,
    /// The last read filled the caller's buffer: more is likely waiting.
    busy: bool,
    /// Writes gathered until the next flush.
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> LeanIo<S> {
    pub(crate) fn new(inner: S) -> Self {
        LeanIo {
            inner,
            spill: Vec::new(),
            spill_pos: 0,
            spill_end: 0,
            busy: false,
            out: Vec::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> LeanIo<S> {
    /// Frees the read buffer.
    fn drop_spill(&mut self) {
        self.spill = Vec::new();
        self.spill_pos = 0;
        self.spill_end = 0;
    }

    /// Writes the gathered bytes to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        while written < self.out.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.out[written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")))
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.out.drain(..written);
                    return Poll::Pending;
                }
            }
        }
        // Drained: give the buffer back.
        self.out = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for LeanIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.spill_pos < this.spill_end {
            let n = buf.remaining().min(this.spill_end - this.spill_pos);
            buf.put_slice(&this.spill[this.spill_pos..this.spill_pos + n]);
            this.spill_pos += n;
            if this.spill_pos == this.spill_end && !this.busy {
                this.drop_spill();
            }
            return Poll::Ready(Ok(()));
        }
        let want = buf.remaining();
        if !this.busy || want >= READ_CHUNK {
            // Idle so far: read straight into the caller's buffer.
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(())) = polled {
                this.busy = want > 0 && buf.filled().len() - before == want;
            }
            return polled;
        }
        // Data keeps coming: read a large chunk, hand it out piece by piece.
        // The buffer is zeroed once, when it is allocated, and reused while
        // the data keeps coming.
        if this.spill.is_empty() {
            this.spill = vec![0; READ_CHUNK];
        }
        let mut chunk = ReadBuf::new(&mut this.spill);
        match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
            Poll::Ready(Ok(())) => {
                let got = chunk.filled().len();
                this.busy = got == READ_CHUNK;
                let n = got.min(want);
                buf.put_slice(&this.spill[..n]);
                if n == got && !this.busy {
                    this.drop_spill();
                } else {
                    this.spill_pos = n;
                    this.spill_end = got;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // Nothing waiting after all: back to idle, buffer freed.
                this.busy = false;
                this.drop_spill();
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LeanIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.is_empty() && data.len() >= DIRECT_WRITE {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        if this.out.len() + data.len() > WRITE_CHUNK {
            std::task::ready!(this.poll_drain(cx))?;
            if data.len() >= DIRECT_WRITE {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        if this.out.capacity() == 0 {
            // One allocation for the frames gathered until the flush.
            this.out.reserve(data.len().max(FIRST_GATHER));
        }
        this.out.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Drop for LeanIo<S> {
    /// tungstenite writes its last frames (the answer to a peer's close,
    /// say) and drops the socket without a flush: hand what was gathered to
    /// the socket now, as far as it takes it without waiting.
    fn drop(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = self.poll_drain(&mut cx);
        let _ = Pin::new(&mut self.inner).poll_flush(&mut cx);
    }
}
