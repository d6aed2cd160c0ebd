//! Writing and reading the targets for a session: the layout checked
//! against the targets, each chunk checked (plan, bound, hash) then written,
//! hash queries answered from the targets, syncs.

use super::server::Receiver;
use super::session::{Refusal, refuse};
use crate::disk::aligned::AlignedBuf;
use crate::layout::ranges::RangeSet;
use crate::proto::codec::MAX_FRAME;
use crate::proto::digest;
use crate::proto::message::*;

fn too_small(target: &super::sink::Target, have: u64, need: u64) -> Refusal {
    refuse(
        ErrorCode::TargetTooSmall,
        format!(
            "{} holds {have} bytes; the plan needs {need} (enlarge it by {})",
            target.path.display(),
            need - have
        ),
    )
}

/// Reserving an image file's used ranges failed at byte `at`.
fn no_room(target: &super::sink::Target, bytes: u64, at: u64, e: std::io::Error) -> Refusal {
    let full = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT)
    );
    let (code, what) = if full {
        (ErrorCode::TargetTooSmall, "its filesystem has no room for")
    } else {
        (ErrorCode::Internal, "could not reserve")
    };
    refuse(
        code,
        format!(
            "{}: {what} the {} of used data planned for it (at byte {at}: {e}); nothing written",
            target.path.display(),
            crate::units::human(bytes)
        ),
    )
}

/// Whether `[offset, offset+len)` on target `t` lies wholly inside the plan.
fn within_plan(planned: &Planned, t: usize, offset: u64, len: u64) -> bool {
    planned.get(t).is_some_and(|p| {
        offset
            .checked_add(len)
            .is_some_and(|end| p.intersect(offset, end).map(|(a, b)| b - a).sum::<u64>() == len)
    })
}

/// Target byte ranges a layout allows, per target.
pub type Planned = Vec<RangeSet>;

/// What writing chunks reuses from one chunk to the next: a zstd context and
/// an aligned buffer a chunk is decompressed, hashed and written from.
pub struct Scratch {
    dec: zstd::bulk::Decompressor<'static>,
    buf: AlignedBuf,
    /// A patch's parts, decompressed (grown on the first patch).
    parts: Vec<u8>,
}

impl Scratch {
    /// For chunks of up to `chunk_size` bytes (longer ones grow the buffer).
    pub fn new(chunk_size: usize) -> std::io::Result<Scratch> {
        Ok(Scratch {
            dec: zstd::bulk::Decompressor::new()?,
            buf: AlignedBuf::new(chunk_size),
            parts: Vec::new(),
        })
    }
}

/// What the target holds where a chunk goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Bytes with the chunk's hash.
    pub same: bool,
    /// When not the same and part digests were asked: the digest of each
    /// part of the target's bytes; empty past a target file's end.
    pub parts: Vec<u64>,
}

/// Decompress chunk `seq`'s `data` (of `codec`) into exactly `out`.
fn unpack(
    dec: &mut zstd::bulk::Decompressor<'static>,
    seq: u64,
    codec: Codec,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), Refusal> {
    match codec {
        // The decoder checked that raw data is exactly the declared length.
        Codec::None => out.copy_from_slice(data),
        Codec::Zero => out.fill(0),
        Codec::Zstd => {
            // The destination holds exactly the declared length: more
            // is an error from zstd, less is caught below.
            let n = dec.decompress_to_buffer(data, out).map_err(|e| {
                refuse(
                    ErrorCode::DecompressBound,
                    format!(
                        "chunk {seq}: does not decompress to at most {} bytes: {e}",
                        out.len()
                    ),
                )
            })?;
            if n != out.len() {
                return Err(refuse(
                    ErrorCode::DecompressBound,
                    format!("chunk {seq}: {n} bytes, declared {}", out.len()),
                ));
            }
        }
    }
    Ok(())
}

impl Receiver {
    /// The layout must name known targets, fit them (image files grow), and
    /// the targets must not be in use. `min` adds a target plan's sizes
    /// (target index, bytes). Returns the planned ranges.
    pub fn check_layout(&self, l: &Layout, min: &[(u32, u64)]) -> Result<Planned, Refusal> {
        if l.chunk_size == 0 || l.chunk_size as usize > MAX_FRAME / 2 {
            return Err(refuse(
                ErrorCode::MalformedFrame,
                format!("chunk size {} is not allowed", l.chunk_size),
            ));
        }
        let mut planned = vec![RangeSet::new(); self.targets.len()];
        let mut need = vec![0u64; self.targets.len()];
        for v in &l.volumes {
            let t = v.target as usize;
            if t >= self.targets.len() {
                return Err(refuse(
                    ErrorCode::TargetTooSmall,
                    format!(
                        "{} is planned for target {t}, but this receiver has {} target(s)",
                        v.name,
                        self.targets.len()
                    ),
                ));
            }
            for e in &v.extents {
                let end = e
                    .target_offset
                    .checked_add(e.len)
                    .ok_or_else(|| refuse(ErrorCode::MalformedFrame, "extent overflows"))?;
                if e.source_offset
                    .checked_add(e.len)
                    .is_none_or(|x| x > v.size)
                {
                    return Err(refuse(
                        ErrorCode::MalformedFrame,
                        format!("{}: extent past the volume's {} bytes", v.name, v.size),
                    ));
                }
                planned[t].insert(e.target_offset, e.len);
                need[t] = need[t].max(end);
            }
            need[t] = need[t].max(v.size);
        }
        for &(t, size) in min {
            if let Some(n) = need.get_mut(t as usize) {
                *n = (*n).max(size);
            }
        }
        // Every check first (in use, devices large enough), then grow image
        // files: a refused layout changes nothing.
        let used: Vec<(usize, &super::sink::Target)> = self
            .targets
            .iter()
            .enumerate()
            .filter(|(t, _)| need[*t] > 0)
            .collect();
        for &(t, target) in &used {
            let busy = target.in_use(&self.roots);
            if !busy.is_empty() && !self.force {
                return Err(refuse(
                    ErrorCode::TargetInUse,
                    format!(
                        "{} is in use ({}); refusing to write it",
                        target.path.display(),
                        busy.join("; ")
                    ),
                ));
            }
            let have = target.size().unwrap_or(0);
            if target.is_block_device() && have < need[t] {
                return Err(too_small(target, have, need[t]));
            }
        }
        for &(t, target) in &used {
            if let Err(have) = target.ensure_size(need[t]) {
                return Err(too_small(target, have, need[t]));
            }
        }
        // Passes that send every chunk reserve the used ranges in image
        // files: their writes then run side by side, and a full disk shows
        // now. Comparing passes write little and find it allocated.
        if matches!(l.pass, Pass::Full | Pass::Resume) {
            for &(t, target) in &used {
                target
                    .reserve(&planned[t])
                    .map_err(|(at, e)| no_room(target, planned[t].total(), at, e))?;
            }
        }
        Ok(planned)
    }

    /// Check and write one chunk; returns the bytes it covers.
    pub fn write_chunk(
        &self,
        planned: &Planned,
        algo: HashAlgo,
        c: &Chunk,
        scratch: &mut Scratch,
    ) -> Result<u64, Refusal> {
        let h = &c.header;
        let t = h.target as usize;
        let len = h.len as u64;
        let inside = within_plan(planned, t, h.offset, len);
        if !inside || len == 0 {
            return Err(refuse(
                ErrorCode::OutOfExtent,
                format!(
                    "chunk {} ({} bytes at {} on target {t}) lies outside the planned extents; nothing written",
                    h.seq, len, h.offset
                ),
            ));
        }
        // The chunk's bytes land in the reused aligned buffer (decompressed
        // straight into it), are hashed there and written from there with
        // O_DIRECT: no allocation and no copy per chunk.
        let Scratch { dec, buf, parts } = scratch;
        if buf.len() < h.len as usize {
            *buf = AlignedBuf::new(h.len as usize);
        }
        let data = &mut buf.as_mut()[..h.len as usize];
        match &c.patch {
            None => unpack(dec, h.seq, h.codec, &c.data, data)?,
            // A patch: what the target holds there, with the parts carried
            // laid over it; the whole is then checked like any chunk.
            Some(p) => {
                let target = &self.targets[t];
                target
                    .read_at(data, h.offset)
                    .map_err(|e| read_failed(target, h.offset, e))?;
                parts.resize(p.carried(h.len), 0);
                unpack(dec, h.seq, h.codec, &c.data, parts)?;
                let mut at = 0;
                for (start, end) in p.ranges(h.len) {
                    data[start..end].copy_from_slice(&parts[at..at + end - start]);
                    at += end - start;
                }
            }
        }
        if digest::hash(algo, data) != h.hash {
            let patched = if c.patch.is_some() {
                " (a patch: the target changed since it answered)"
            } else {
                ""
            };
            return Err(refuse(
                ErrorCode::HashMismatch,
                format!(
                    "chunk {} at {} on target {t}: hash mismatch{patched}; nothing written",
                    h.seq, h.offset
                ),
            ));
        }
        let target = &self.targets[t];
        let res = match h.codec {
            Codec::Zero => target.zero(h.offset, len),
            _ => target.write_at(data, h.offset),
        };
        res.map_err(|e| {
            refuse(
                ErrorCode::Internal,
                format!("{}: write at {}: {e}", target.path.display(), h.offset),
            )
        })?;
        Ok(len)
    }

    /// For each chunk, whether the target already holds bytes with its hash.
    pub fn holds(
        &self,
        planned: &Planned,
        algo: HashAlgo,
        chunks: &[ChunkRef],
    ) -> Result<Vec<bool>, Refusal> {
        let held = self.examine(planned, Some(algo), None, chunks)?;
        Ok(held.into_iter().map(|h| h.same).collect())
    }

    /// What the target holds where each chunk goes: whether it is the
    /// chunk (when `algo` is given) and, where it is not, the digests of its
    /// parts (when `parts` is given).
    pub fn examine(
        &self,
        planned: &Planned,
        algo: Option<HashAlgo>,
        parts: Option<PartSpec>,
        chunks: &[ChunkRef],
    ) -> Result<Vec<Held>, Refusal> {
        // Reads and hashes on a few threads (a batch is up to 64 MiB): the
        // source waits for the answer.
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4);
        let per = chunks.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let all: Vec<_> = chunks
                .chunks(per)
                .map(|part| s.spawn(move || self.examine_part(planned, algo, parts, part)))
                .collect();
            let mut out = Vec::with_capacity(chunks.len());
            for p in all {
                out.extend(p.join().expect("a hashing thread panicked")?);
            }
            Ok(out)
        })
    }

    fn examine_part(
        &self,
        planned: &Planned,
        algo: Option<HashAlgo>,
        spec: Option<PartSpec>,
        chunks: &[ChunkRef],
    ) -> Result<Vec<Held>, Refusal> {
        for c in chunks {
            let (t, len) = (c.target as usize, c.len as u64);
            if !within_plan(planned, t, c.offset, len) || len == 0 {
                return Err(refuse(
                    ErrorCode::OutOfExtent,
                    format!(
                        "hash query for {len} bytes at {} on target {t} outside the planned extents",
                        c.offset
                    ),
                ));
            }
        }
        let look = |c: &ChunkRef, bytes: Option<&[u8]>| -> Held {
            let Some(bytes) = bytes else {
                return Held::default();
            };
            if algo.is_some_and(|a| digest::hash(a, bytes) == c.hash) {
                return Held {
                    same: true,
                    parts: Vec::new(),
                };
            }
            let parts = spec.map_or_else(Vec::new, |p| p.digests(bytes).collect());
            Held { same: false, parts }
        };
        // Neighbouring chunks are read with one I/O of up to HOLDS_READ_MAX
        // into one aligned buffer (O_DIRECT: no page-cache fill and copy
        // per byte), and hashed as slices of it.
        let most = chunks.iter().map(|c| c.len as usize).max().unwrap_or(0);
        let total: usize = chunks.iter().map(|c| c.len as usize).sum();
        let mut scratch = AlignedBuf::new(total.min(HOLDS_READ_MAX).max(most));
        let mut held = Vec::with_capacity(chunks.len());
        let mut i = 0;
        while i < chunks.len() {
            let (t, start) = (chunks[i].target, chunks[i].offset);
            let mut end = start + chunks[i].len as u64;
            let mut j = i + 1;
            while j < chunks.len()
                && chunks[j].target == t
                && chunks[j].offset == end
                && end + chunks[j].len as u64 - start <= scratch.len() as u64
            {
                end += chunks[j].len as u64;
                j += 1;
            }
            let target = &self.targets[t as usize];
            let buf = &mut scratch.as_mut()[..(end - start) as usize];
            match target.read_at(buf, start) {
                Ok(()) => held.extend(chunks[i..j].iter().map(|c| {
                    let at = (c.offset - start) as usize;
                    look(c, Some(&buf[at..at + c.len as usize]))
                })),
                // Past the end of a target file: chunk by chunk, so that
                // those before the end still count.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    for c in &chunks[i..j] {
                        let one = &mut buf[..c.len as usize];
                        held.push(match target.read_at(one, c.offset) {
                            Ok(()) => look(c, Some(one)),
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                look(c, None)
                            }
                            Err(e) => return Err(read_failed(target, c.offset, e)),
                        });
                    }
                }
                Err(e) => return Err(read_failed(target, start, e)),
            }
            i = j;
        }
        Ok(held)
    }

    /// fdatasync every target.
    pub fn sync(&self) -> Result<(), Refusal> {
        for t in &self.targets {
            t.sync().map_err(|e| {
                refuse(
                    ErrorCode::Internal,
                    format!("{}: sync: {e}", t.path.display()),
                )
            })?;
        }
        Ok(())
    }
}

/// The largest single read of a target when checking what it holds.
const HOLDS_READ_MAX: usize = 8 << 20;

fn read_failed(target: &super::sink::Target, offset: u64, e: std::io::Error) -> Refusal {
    refuse(
        ErrorCode::Internal,
        format!("{}: read at {offset}: {e}", target.path.display()),
    )
}
