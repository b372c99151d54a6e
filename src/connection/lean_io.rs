//! A socket wrapper that holds buffers only while data moves.
//!
//! tungstenite keeps a read buffer and a write buffer per connection for the
//! connection's whole life. Server connections run it with tiny buffers
//! (see [`server_config`]) over [`LeanIo`], which reads and writes in large
//! chunks through buffers it takes when data comes and gives back as soon
//! as they are drained: an idle connection holds none, a busy one still
//! makes one system call per 64 KiB. A buffer given back is kept as its
//! thread's spare (one of each kind per thread, not per connection), so the
//! next connection to need one on that thread does not allocate it again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::buffers::{give_out, give_spill, take_out, take_spill, DIRECT_WRITE, READ_CHUNK, WRITE_CHUNK};

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
    /// Gives the read buffer back.
    fn drop_spill(&mut self) {
        give_spill(std::mem::take(&mut self.spill));
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
        give_out(std::mem::take(&mut self.out));
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
        // the data keeps coming (and by the thread's next connection).
        if this.spill.is_empty() {
            this.spill = take_spill();
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
            // One buffer for the frames gathered until the flush.
            this.out = take_out(data.len());
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
        self.drop_spill();
        if self.out.is_empty() {
            give_out(std::mem::take(&mut self.out));
            return;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = self.poll_drain(&mut cx);
        let _ = Pin::new(&mut self.inner).poll_flush(&mut cx);
        give_out(std::mem::take(&mut self.out));
    }
}

#[cfg(test)]
mod tests {
    //! The buffers over a loopback socket: held only while data moves, and
    //! handed on through the thread's spares.
    //! `cargo test -p ws-messaging --lib lean_io`.

    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use std::cell::Cell;

    use super::*;
    use crate::buffers::{FIRST_GATHER, KEEP_GATHER, SPARE_OUT, SPARE_SPILL};

    const WAIT: Duration = Duration::from_secs(10);

    async fn pair() -> (LeanIo<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, peer) = tokio::time::timeout(WAIT, async { tokio::join!(listener.accept(), peer) })
            .await
            .expect("loopback connect");
        (LeanIo::new(accepted.unwrap().0), peer.unwrap())
    }

    fn spare_out() -> (usize, *const u8) {
        let out = SPARE_OUT.with(Cell::take);
        let seen = (out.capacity(), out.as_ptr());
        SPARE_OUT.with(|spare| spare.set(out));
        seen
    }

    fn spare_spill() -> (usize, *const u8) {
        let spill = SPARE_SPILL.with(Cell::take);
        let seen = (spill.len(), spill.as_ptr());
        SPARE_SPILL.with(|spare| spare.set(spill));
        seen
    }

    // One thread (the default current-thread runtime): the spares seen
    // are the ones the socket uses.
    #[tokio::test]
    async fn the_write_buffer_is_the_threads_spare_between_flushes() {
        SPARE_OUT.with(Cell::take);
        let (mut io, mut peer) = pair().await;
        io.write_all(b"first").await.unwrap();
        assert!(io.out.capacity() >= FIRST_GATHER);
        let first = io.out.as_ptr();
        io.flush().await.unwrap();
        // Drained: the connection holds nothing, the thread keeps it.
        assert_eq!(io.out.capacity(), 0);
        let (capacity, spare) = spare_out();
        assert!(capacity >= FIRST_GATHER);
        assert_eq!(spare, first);
        io.write_all(b"second").await.unwrap();
        assert_eq!(io.out.as_ptr(), first);
        assert_eq!(spare_out().0, 0);
        io.flush().await.unwrap();
        assert_eq!(spare_out().1, first);
        let mut got = [0; 11];
        tokio::time::timeout(WAIT, peer.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"firstsecond");
        // A buffer grown past the limit is not kept.
        SPARE_OUT.with(Cell::take);
        io.out = Vec::with_capacity(KEEP_GATHER + 1);
        io.write_all(b"x").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(spare_out().0, 0);
    }

    #[tokio::test]
    async fn the_read_buffer_is_the_threads_spare_between_bursts() {
        SPARE_SPILL.with(Cell::take);
        let (mut io, mut peer) = pair().await;
        let data: Vec<u8> = (0..3 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        let mut first_spill = None;
        for burst in 0..2 {
            let writer = tokio::spawn({
                let data = data.clone();
                async move {
                    peer.write_all(&data).await.unwrap();
                    peer
                }
            });
            let mut got = Vec::new();
            let mut buf = [0; 512];
            while got.len() < data.len() {
                let n = tokio::time::timeout(WAIT, io.read(&mut buf)).await.unwrap().unwrap();
                assert!(n > 0, "the peer closed early");
                got.extend_from_slice(&buf[..n]);
                if let (Some(first), false) = (first_spill, io.spill.is_empty()) {
                    // The second burst reads into the buffer the first gave back.
                    assert_eq!(io.spill.as_ptr(), first, "burst {burst}");
                }
            }
            assert_eq!(got, data);
            peer = tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
            // Nothing more waiting: the buffer goes back to the thread.
            let waiting = poll_fn(|cx| {
                let mut buf = [0; 512];
                let mut buf = ReadBuf::new(&mut buf);
                Poll::Ready(Pin::new(&mut io).poll_read(cx, &mut buf).is_pending())
            })
            .await;
            assert!(waiting);
            assert_eq!(io.spill.capacity(), 0);
            let (len, spare) = spare_spill();
            assert_eq!(len, READ_CHUNK, "a burst this large is read in chunks");
            assert_eq!(*first_spill.get_or_insert(spare), spare);
        }
    }
}
