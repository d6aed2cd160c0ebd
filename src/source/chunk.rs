//! Cutting used maps into chunks and preparing each chunk for the wire.
//!
//! A chunk is the used bytes of one cell of a fixed grid (1 MiB by default)
//! over a volume: a used range that crosses a grid line is split there, and
//! two used ranges inside one cell stay separate chunks, so unused bytes are
//! never read. The grid keeps chunk boundaries stable from pass to pass, which
//! is what lets a later pass compare hashes chunk by chunk.

use bytes::Bytes;

use crate::layout::ranges::RangeSet;
use crate::proto::codec::{CHUNK_HEAD, MAX_FRAME, chunk_head, encode};
use crate::proto::digest;
use crate::proto::message::{Chunk, ChunkHeader, Codec, HashAlgo, Message, PartSpec, PatchMap};

/// Default chunk size: the unit of transfer and hashing.
pub const CHUNK_SIZE: u64 = 1 << 20;

/// `(offset, len)` of each chunk of `used`, in order.
pub fn pieces(used: &RangeSet, chunk: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
    used.iter().flat_map(move |(start, end)| {
        let mut pos = start;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let cell_end = (pos / chunk + 1) * chunk;
            let next = cell_end.min(end);
            let piece = (pos, (next - pos) as u32);
            pos = next;
            Some(piece)
        })
    })
}

/// Hashes, zero detection and compression of one chunk's bytes.
pub struct Preparer {
    compressor: zstd::bulk::Compressor<'static>,
    algo: HashAlgo,
}

impl Preparer {
    pub fn new(level: i32, algo: HashAlgo) -> std::io::Result<Self> {
        Ok(Preparer {
            compressor: zstd::bulk::Compressor::new(level)?,
            algo,
        })
    }

    /// The wire chunk for `data` going to `target` at `offset`: zero chunks
    /// carry no data; data that does not shrink travels raw. The reference
    /// that [`Preparer::frame`], which every pass uses, is tested against.
    #[cfg(test)]
    pub fn prepare(
        &mut self,
        seq: u64,
        target: u32,
        offset: u64,
        data: &[u8],
    ) -> std::io::Result<crate::proto::message::Chunk> {
        let hash = digest::hash(self.algo, data);
        let crc64 = digest::crc64(data);
        let (codec, payload) = if digest::is_zero(data) {
            (Codec::Zero, Bytes::new())
        } else {
            let packed = self.compressor.compress(data)?;
            if packed.len() < data.len() {
                (Codec::Zstd, Bytes::from(packed))
            } else {
                (Codec::None, Bytes::copy_from_slice(data))
            }
        };
        Ok(crate::proto::message::Chunk {
            header: ChunkHeader {
                seq,
                target,
                offset,
                len: data.len() as u32,
                codec,
                hash,
                crc64,
            },
            data: payload,
            patch: None,
        })
    }
}

impl Preparer {
    /// The whole wire frame for `data` (what `encode(&Message::Chunk(
    /// prepare(..)))` gives) and its header, built in one buffer: zstd
    /// compresses straight into the frame after room for its head, and raw
    /// data is copied in once. Saves the separate compression buffer and the
    /// copy of every chunk's data into a frame.
    pub fn frame(
        &mut self,
        seq: u64,
        target: u32,
        offset: u64,
        data: &[u8],
    ) -> std::io::Result<(ChunkHeader, Bytes)> {
        let hash = digest::hash(self.algo, data);
        let crc64 = digest::crc64(data);
        let mut buf: Vec<u8> = Vec::new();
        let codec = if digest::is_zero(data) {
            buf.resize(CHUNK_HEAD, 0);
            Codec::Zero
        } else {
            buf.reserve_exact(CHUNK_HEAD + zstd::zstd_safe::compress_bound(data.len()));
            buf.resize(CHUNK_HEAD, 0);
            let mut tail = std::io::Cursor::new(&mut buf);
            tail.set_position(CHUNK_HEAD as u64);
            let packed = self.compressor.compress_to_buffer(data, &mut tail)?;
            if packed < data.len() {
                Codec::Zstd
            } else {
                buf.truncate(CHUNK_HEAD);
                buf.extend_from_slice(data);
                Codec::None
            }
        };
        let header = ChunkHeader {
            seq,
            target,
            offset,
            len: data.len() as u32,
            codec,
            hash,
            crc64,
        };
        let head = chunk_head(&header, buf.len() - CHUNK_HEAD, MAX_FRAME)
            .map_err(std::io::Error::other)?;
        buf[..CHUNK_HEAD].copy_from_slice(&head);
        // Not shrunk to fit: a shrunk (mremap'ed) block would keep malloc
        // from reusing it for the next frame, and fresh pages fault in.
        Ok((header, Bytes::from(buf)))
    }
}

impl Preparer {
    /// The frame of a patch: `data`'s hash and CRC as for the whole chunk,
    /// and only the parts `map` marks, compressed together when that
    /// shrinks them.
    pub fn patch(
        &mut self,
        seq: u64,
        target: u32,
        offset: u64,
        data: &[u8],
        map: PatchMap,
    ) -> std::io::Result<(ChunkHeader, Bytes)> {
        let len = data.len() as u32;
        let mut raw = Vec::with_capacity(map.carried(len));
        for (start, end) in map.ranges(len) {
            raw.extend_from_slice(&data[start..end]);
        }
        let packed = if raw.is_empty() {
            None
        } else {
            Some(self.compressor.compress(&raw)?)
        };
        let (codec, payload) = match packed {
            Some(p) if p.len() < raw.len() => (Codec::Zstd, p),
            _ => (Codec::None, raw),
        };
        let header = ChunkHeader {
            seq,
            target,
            offset,
            len,
            codec,
            hash: digest::hash(self.algo, data),
            crc64: digest::crc64(data),
        };
        let chunk = Chunk {
            header,
            data: Bytes::from(payload),
            patch: Some(map),
        };
        let frame = encode(&Message::Chunk(chunk), MAX_FRAME).map_err(std::io::Error::other)?;
        Ok((header, frame))
    }
}

/// Which parts of `data` differ from what the receiver holds (`theirs`:
/// its digests of the parts as `spec` cuts them), when
/// sending only those saves enough to be worth a patch: at most three
/// quarters of the chunk, and never for a chunk of zeros (that travels as
/// nothing at all).
pub fn patch_map(spec: Option<PartSpec>, theirs: &[u64], data: &[u8]) -> Option<PatchMap> {
    let spec = spec?;
    let len = data.len() as u32;
    if theirs.is_empty() || theirs.len() != PatchMap::parts(len, spec.size) || digest::is_zero(data)
    {
        return None;
    }
    let present = spec
        .digests(data)
        .zip(theirs)
        .map(|(d, t)| d != *t)
        .collect();
    let map = PatchMap {
        part_size: spec.size,
        present,
    };
    (map.carried(len) * 4 <= data.len() * 3).then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_the_grid() {
        let mut used = RangeSet::new();
        used.insert(100, 50);
        used.insert(1000, 3000); // crosses two grid lines at 1024
        used.insert(4096, 10);
        let p: Vec<_> = pieces(&used, 1024).collect();
        assert_eq!(
            p,
            vec![
                (100, 50),
                (1000, 24),
                (1024, 1024),
                (2048, 1024),
                (3072, 928),
                (4096, 10)
            ]
        );
        let total: u64 = p.iter().map(|x| x.1 as u64).sum();
        assert_eq!(total, used.total());
    }

    #[test]
    fn prepare_picks_the_codec() {
        let mut p = Preparer::new(1, HashAlgo::Blake3).unwrap();
        let zero = p.prepare(0, 0, 0, &[0u8; 4096]).unwrap();
        assert_eq!(zero.header.codec, Codec::Zero);
        assert!(zero.data.is_empty());
        let text = b"ferry ".repeat(1000);
        let z = p.prepare(1, 0, 4096, &text).unwrap();
        assert_eq!(z.header.codec, Codec::Zstd);
        assert!(z.data.len() < text.len());
        assert_eq!(zstd::bulk::decompress(&z.data, text.len()).unwrap(), text);
        assert_eq!(z.header.hash, digest::hash(HashAlgo::Blake3, &text));
        let mut noise = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let raw = p.prepare(2, 0, 0, &noise).unwrap();
        assert_eq!(raw.header.codec, Codec::None);
        assert_eq!(&raw.data[..], &noise[..]);
    }

    #[test]
    fn frames_are_the_encoded_chunks() {
        use crate::proto::codec::encode;
        use crate::proto::message::Message;
        let mut noise = vec![0u8; 8192];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let text = b"ferry ".repeat(1000);
        for (i, data) in [&[0u8; 4096][..], &text, &noise].into_iter().enumerate() {
            let mut a = Preparer::new(1, HashAlgo::Blake3).unwrap();
            let mut b = Preparer::new(1, HashAlgo::Blake3).unwrap();
            let chunk = a.prepare(i as u64, 1, 4096, data).unwrap();
            let (header, frame) = b.frame(i as u64, 1, 4096, data).unwrap();
            assert_eq!(header, chunk.header);
            assert_eq!(frame, encode(&Message::Chunk(chunk), MAX_FRAME).unwrap());
        }
    }
}
