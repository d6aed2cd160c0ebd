//! Patches (protocol 2): how a chunk is cut into parts, the part digests a
//! receiver answers with, and which parts a patch carries, with their wire
//! checks. See "Patches" in docs/protocol.md.

use super::super::wire::{Reader, WireError};
use super::{ChunkHeader, Codec, read_bitmap};

/// Bytes in a part of a chunk that a receiver asks patches in: the usual
/// filesystem block, so that scattered block writes travel as themselves.
pub const PART_SIZE: u32 = 4 << 10;
/// Fewest bytes in a patch part; a chunk has at most [`MAX_PARTS`] parts.
pub const MIN_PART: u32 = 512;
pub const MAX_PARTS: usize = 4096;

/// Which fixed-size parts of a chunk a patch carries: part `i` is bytes
/// `[i * part_size, min((i + 1) * part_size, len))` of the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchMap {
    pub part_size: u32,
    pub present: Vec<bool>,
}

impl PatchMap {
    /// Parts of a chunk of `len` bytes.
    pub fn parts(len: u32, part_size: u32) -> usize {
        len.div_ceil(part_size.max(1)) as usize
    }

    /// `(start, end)` of each part carried, in order, for a chunk of `len` bytes.
    pub fn ranges(&self, len: u32) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (ps, len) = (self.part_size as usize, len as usize);
        self.present
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .map(move |(i, _)| (i * ps, ((i + 1) * ps).min(len)))
    }

    /// Bytes of chunk data the patch carries (before compression).
    pub fn carried(&self, len: u32) -> usize {
        self.ranges(len).map(|(s, e)| e - s).sum()
    }
}

/// How the parts of chunks are digested: parts of `size` bytes (the last
/// of a chunk may be shorter), each xxh3-64 with `seed`, a number the
/// receiver draws per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpec {
    pub size: u32,
    pub seed: u64,
}

impl PartSpec {
    /// The digest of each part of `data`, in order (both ends compute them
    /// here, so that they compare).
    pub fn digests(self, data: &[u8]) -> impl Iterator<Item = u64> + '_ {
        data.chunks(self.size as usize)
            .map(move |part| xxhash_rust::xxh3::xxh3_64_with_seed(part, self.seed))
    }
}

/// Part digests of the chunks a receiver lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartDigests {
    pub spec: PartSpec,
    /// One entry per chunk answered lacking, in query order: the digest of
    /// each part of the target's bytes there ([`PatchMap::parts`] of them),
    /// or none when the receiver cannot read them (past a file's end).
    pub lacking: Vec<Vec<u64>>,
}

pub(super) fn read_patch_map(r: &mut Reader, h: &ChunkHeader) -> Result<PatchMap, WireError> {
    let at = r.pos();
    let part_size = r.u32()?;
    let n = PatchMap::parts(h.len, part_size);
    if part_size < MIN_PART || h.len == 0 || n > MAX_PARTS {
        let why = format!(
            "parts of {part_size} bytes for a chunk of {} bytes (at least {MIN_PART} bytes, at most {MAX_PARTS} parts)",
            h.len
        );
        return Err(r.invalid_at("patch part size", at, why));
    }
    if h.codec == Codec::Zero {
        return Err(r.invalid_at("patch codec", at, "a patch cannot be a zero chunk".into()));
    }
    let present = read_bitmap(r, n, "patch parts")?;
    Ok(PatchMap { part_size, present })
}

pub(super) fn read_part_digests(r: &mut Reader, have: &[bool]) -> Result<PartDigests, WireError> {
    let at = r.pos();
    let part_size = r.u32()?;
    if part_size < MIN_PART {
        let why = format!("{part_size} bytes, fewer than {MIN_PART}");
        return Err(r.invalid_at("part size", at, why));
    }
    let seed = r.u64()?;
    let at = r.pos();
    let n = r.u32()? as usize;
    let lacks = have.iter().filter(|h| !**h).count();
    if n != lacks {
        let why = format!("{n} entries for {lacks} chunks answered lacking");
        return Err(r.invalid_at("part digests", at, why));
    }
    let mut lacking = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let m = r.count("part digests of a chunk", MAX_PARTS)?;
        let mut d = Vec::with_capacity(m);
        for _ in 0..m {
            d.push(r.u64()?);
        }
        lacking.push(d);
    }
    Ok(PartDigests {
        spec: PartSpec {
            size: part_size,
            seed,
        },
        lacking,
    })
}
