//! Frames: `[u32 little-endian payload length | payload]`, the payload being a
//! kind byte and a message body. The length is checked against a maximum when
//! encoding and before reading anything of a frame, so a peer can never make
//! the other side allocate more than [`MAX_FRAME`].

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::{Chunk, ChunkHeader, HASH_LEN, Message};
use super::wire::{WireError, Writer};

/// Largest payload accepted: a 1 MiB chunk, its worst-case zstd expansion and
/// headers fit with room to spare.
pub const MAX_FRAME: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("malformed message: {0}")]
    Malformed(#[from] WireError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A whole frame, length prefix included; refuses payloads over `max`.
pub fn encode(msg: &Message, max: usize) -> Result<Bytes, FrameError> {
    let mut w = Writer(BytesMut::with_capacity(64));
    w.u32(0);
    msg.encode_payload(&mut w);
    let len = w.0.len() - 4;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    w.0[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(w.0.freeze())
}

/// Bytes of a chunk frame before its data: length prefix, kind byte and
/// chunk header.
pub const CHUNK_HEAD: usize = 4 + 1 + 8 + 4 + 8 + 4 + 1 + HASH_LEN + 8;

/// The head of a chunk frame that `data_len` bytes of chunk data follow:
/// the first [`CHUNK_HEAD`] bytes `encode` gives for that chunk. Lets the
/// sender build a frame around data already in place (compressed straight
/// into the frame buffer) instead of copying the data into a new frame.
pub fn chunk_head(
    header: &ChunkHeader,
    data_len: usize,
    max: usize,
) -> Result<[u8; CHUNK_HEAD], FrameError> {
    let mut w = Writer(BytesMut::with_capacity(CHUNK_HEAD));
    w.u32(0);
    Message::Chunk(Chunk {
        header: *header,
        data: Bytes::new(),
        patch: None,
    })
    .encode_payload(&mut w);
    let len = CHUNK_HEAD - 4 + data_len;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    w.0[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(w.0[..]
        .try_into()
        .expect("a chunk head is CHUNK_HEAD bytes"))
}

/// Decode one frame from the front of `buf` (sync; for tests and fuzzing).
/// Returns the message and the bytes consumed, or `Ok(None)` if `buf` holds
/// less than a whole frame.
pub fn decode(buf: &Bytes, max: usize) -> Result<Option<(Message, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    check_len(len, max)?;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let payload = buf.slice(4..4 + len);
    Ok(Some((Message::decode_payload(&payload)?, 4 + len)))
}

fn check_len(len: usize, max: usize) -> Result<(), FrameError> {
    match len {
        0 => Err(FrameError::Empty),
        n if n > max => Err(FrameError::TooLarge { len: n, max }),
        _ => Ok(()),
    }
}

/// Read one message; `Ok(None)` on a clean end of stream between frames.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Message>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_le_bytes(len) as usize;
    check_len(len, max)?;
    let mut payload = BytesMut::zeroed(len);
    r.read_exact(&mut payload)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => FrameError::Io(e),
        })?;
    Ok(Some(Message::decode_payload(&payload.freeze())?))
}

/// Reads frames into a buffer it keeps between calls, so that [`next`] is
/// cancel-safe: a `tokio::select!` that drops a pending `next` loses no bytes.
///
/// [`next`]: FrameReader::next
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(64 << 10),
            max,
        }
    }

    /// The next message; `Ok(None)` on a clean end of stream between frames.
    pub async fn next(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
                check_len(len, self.max)?;
                if self.buf.len() >= 4 + len {
                    let mut frame = self.buf.split_to(4 + len);
                    let payload = frame.split_off(4).freeze();
                    return Ok(Some(Message::decode_payload(&payload)?));
                }
                self.buf.reserve(4 + len - self.buf.len());
            } else {
                self.buf.reserve(64 << 10);
            }
            // `read_buf` is cancel-safe: bytes are either in `buf` or unread.
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Write one message as a frame.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &Message,
    max: usize,
) -> Result<(), FrameError> {
    let frame = encode(msg, max)?;
    w.write_all(&frame).await?;
    // Over TLS a write may leave records in the session's buffer when the
    // socket is full; a peer that then waits for an answer (Finish, a hash
    // query) would wait for ever. Flushing sends them.
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
