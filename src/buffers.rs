//! The per-thread buffer pools, in one place: what encoding, framing and
//! socket I/O reuse instead of allocating per frame.
//!
//! - the encoding buffer ([`scratch`], given back by [`to_message`]);
//! - the chunk small frames are cut from ([`cut_frame`]);
//! - the socket's gathering and read buffers of
//!   [`LeanIo`](crate::connection::lean_io::LeanIo) ([`take_out`] /
//!   [`give_out`], [`take_spill`] / [`give_spill`]).
//!
//! Each pool keeps at most one spare buffer per thread, of bounded size: a
//! connection that is idle holds none of them.

use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::codec::{Codec, FrameKind};
use crate::error::{CodecError, SendError};

// ----- encoding and frames ----------------------------------------------

/// Frames up to this size are copied out of the encoding buffer.
pub(crate) const COPY_LIMIT: usize = 16 * 1024;
/// The largest encoding buffer kept for reuse, per thread.
pub(crate) const KEEP_LIMIT: usize = 64 * 1024;

thread_local! {
    /// This thread's spare encoding buffer (see [`scratch`]).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An empty buffer to encode a frame into: this thread's spare one when it
/// has one, so that encoding reuses its capacity instead of growing a new
/// buffer; [`to_message`] gives it back.
pub(crate) fn scratch() -> Vec<u8> {
    SCRATCH.with(|spare| spare.take())
}

/// Keeps `buf` as this thread's spare encoding buffer, unless it holds a
/// larger one already.
pub(crate) fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() > KEEP_LIMIT {
        return;
    }
    buf.clear();
    SCRATCH.with(|spare| {
        let kept = spare.take();
        spare.set(if kept.capacity() >= buf.capacity() { kept } else { buf });
    });
}

/// Frames up to this size may be cut from a shared chunk.
pub(crate) const CUT_LIMIT: usize = 512;
/// The size of a chunk frames are cut from.
pub(crate) const CHUNK: usize = 4096;

thread_local! {
    /// This thread's chunk of frame bytes (see [`cut_frame`]).
    static CHUNKS: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// A copy of a small frame cut from this thread's chunk: no allocation of
/// its own. Once every frame cut from the chunk is dropped (written), the
/// chunk is reused; while one is still held, the next frames go to a new
/// chunk. A frame that has to wait behind others in a backlog is copied
/// out of the chunk (the link does it), so a connection that is behind
/// holds few chunks. While the thread is being torn down, the frame is
/// copied out exact.
pub(crate) fn cut_frame(frame: &[u8]) -> Bytes {
    CHUNKS
        .try_with(|chunk| {
            let mut chunk = chunk.try_borrow_mut().ok()?;
            if chunk.capacity() - chunk.len() < frame.len() && !chunk.try_reclaim(CHUNK) {
                *chunk = BytesMut::with_capacity(CHUNK);
            }
            chunk.extend_from_slice(frame);
            Some(chunk.split().freeze())
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Bytes::copy_from_slice(frame))
}

pub(crate) fn to_message<C: Codec>(buf: Vec<u8>) -> Result<Message, SendError> {
    // A small frame is copied out, exact, and the buffer kept for the next
    // one: one allocation per frame. A large one is cut to size (a frame
    // waiting in backlogs holds none of the encoder's slack) and becomes
    // `Bytes` with no second allocation.
    let bytes = if buf.len() <= COPY_LIMIT {
        let bytes = Bytes::copy_from_slice(&buf);
        recycle(buf);
        bytes
    } else {
        Bytes::from(buf.into_boxed_slice())
    };
    bytes_to_message::<C>(bytes)
}

pub(crate) fn bytes_to_message<C: Codec>(bytes: Bytes) -> Result<Message, SendError> {
    match C::FRAME_KIND {
        FrameKind::Binary => Ok(Message::Binary(bytes)),
        FrameKind::Text => Utf8Bytes::try_from(bytes)
            .map(Message::Text)
            .map_err(|_| SendError::Encode(CodecError::encode("a text codec produced invalid UTF-8"))),
    }
}

// ----- socket buffers ------------------------------------------------------

/// Size of the chunk read from the socket when data keeps coming.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Writes are gathered up to this size before going to the socket.
pub(crate) const WRITE_CHUNK: usize = 64 * 1024;
/// The gathering buffer's first size.
pub(crate) const FIRST_GATHER: usize = 512;
/// Writes this large skip the gathering buffer when it is empty.
pub(crate) const DIRECT_WRITE: usize = 16 * 1024;
/// The largest gathering buffer kept as a thread's spare.
pub(crate) const KEEP_GATHER: usize = WRITE_CHUNK + DIRECT_WRITE;

thread_local! {
    /// This thread's spare gathering buffer (empty, at most `KEEP_GATHER`
    /// bytes of capacity), or none.
    pub(crate) static SPARE_OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// This thread's spare read buffer (`READ_CHUNK` bytes long; what it
    /// holds is stale and only ever overwritten), or none.
    pub(crate) static SPARE_SPILL: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A gathering buffer for at least `want` bytes: the thread's spare when it
/// has one (its capacity grows as needed), else a new one.
pub(crate) fn take_out(want: usize) -> Vec<u8> {
    let mut out = SPARE_OUT.try_with(Cell::take).unwrap_or_default();
    out.reserve(want.max(FIRST_GATHER));
    out
}

/// Keeps a gathering buffer as the thread's spare if the thread has none
/// and it is not too large; frees it otherwise.
pub(crate) fn give_out(mut out: Vec<u8>) {
    if out.capacity() == 0 || out.capacity() > KEEP_GATHER {
        return;
    }
    out.clear();
    let _ = SPARE_OUT.try_with(|spare| {
        let kept = spare.take();
        spare.set(if kept.capacity() == 0 { out } else { kept });
    });
}

/// A read buffer of `READ_CHUNK` bytes: the thread's spare when it has one,
/// else a new, zeroed one.
pub(crate) fn take_spill() -> Vec<u8> {
    let spill = SPARE_SPILL.try_with(Cell::take).unwrap_or_default();
    if spill.len() == READ_CHUNK {
        spill
    } else {
        vec![0; READ_CHUNK]
    }
}

/// Keeps a read buffer as the thread's spare if the thread has none; its
/// length stays `READ_CHUNK`, so it needs no zeroing again.
pub(crate) fn give_spill(spill: Vec<u8>) {
    if spill.len() != READ_CHUNK {
        return;
    }
    let _ = SPARE_SPILL.try_with(|spare| {
        let kept = spare.take();
        spare.set(if kept.len() == READ_CHUNK { kept } else { spill });
    });
}
