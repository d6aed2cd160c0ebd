//! XFS: superblock probe, and a used map read from the free-space B+tree.
//!
//! All integers are big-endian. The data device is cut into `sb_agcount`
//! allocation groups (AGs) of `sb_agblocks` blocks (the last may be shorter). Each
//! AG starts with four sectors: a superblock (the primary one in AG 0), the AGF
//! (free-space header), the AGI (inode header) and the AGFL (a reserve of blocks
//! for btree splits). The AGF roots the by-block-number free-space B+tree
//! (bnobt): every block outside its records is in use (AG headers, the internal
//! log, inodes, file data, btree blocks, the AGFL reserve). `agf_freeblks` is
//! the sum of the bnobt records (AGFL blocks are counted apart, in `agf_flcount`).
//!
//! A bnobt block has a short-form header: magic, level, numrecs, left and right
//! siblings (16 bytes, magic `ABTB`); v5 (CRC) filesystems add blkno, lsn, uuid,
//! owner and a CRC32C (56 bytes, magic `AB3B`). Leaves hold `(startblock,
//! blockcount)` records; nodes hold `maxrecs` keys, then `maxrecs` child pointers,
//! all AG-relative.
//!
//! Nothing read is trusted: geometry, levels, siblings, pointers and records are
//! checked, each AG's visit is bounded by its size, and the free total may not
//! exceed `agf_freeblks`. The trees on disk are current only when the log is
//! clean (it ends with an unmount record); otherwise blocks allocated by logged
//! transactions may still look free, so a dirty or external log makes the whole
//! volume count as used, as do features this walk does not know (unknown bits, a
//! zoned realtime section on this device, `needsrepair`, an unfinished mkfs).

use super::{FsInfo, FsKind};
use crate::disk::ReadAt;
use crate::layout::bytes::{be16, be32, be64, cstr, le32, uuid_be};
use crate::layout::crc::crc32c_raw;
use crate::layout::ranges::RangeSet;
use crate::layout::{Result, corrupt, read_opt, read_vec};

const NULL_AGBLOCK: u32 = u32::MAX;
/// Upper bound on bnobt height (the kernel computes at most 7 for 512-byte blocks).
const MAX_LEVELS: usize = 9;
const MIN_AG_BLOCKS: u64 = 64;
const MAX_AG_BYTES: u64 = 1 << 40;
/// v5 incompat features that leave the data section's AG free space as it is:
/// ftype, sparse inodes, meta_uuid, bigtime, nrext64, exchrange, parent, metadir.
const INCOMPAT_OK: u32 = 0x1ef;
/// Known ro-compat features: finobt, rmapbt, reflink, inobtcnt.
const RO_COMPAT_OK: u32 = 0xf;
const INCOMPAT_META_UUID: u32 = 1 << 2;
const SB_CRC_OFF: usize = 224;
const AGF_CRC_OFF: usize = 216;
const BLOCK_CRC_OFF: usize = 52;

/// Checked geometry of the primary superblock.
struct Sb {
    bs: u64,
    sect: u64,
    dblocks: u64,
    agblocks: u64,
    agcount: u64,
    v5: bool,
    /// The uuid stamped in v5 metadata blocks.
    meta_uuid: [u8; 16],
    /// The internal log as (first block, blocks), linear; `None` when external.
    log: Option<(u64, u64)>,
    /// Why the free-space trees may not tell the whole story, if they may not.
    distrust: Option<String>,
}

/// True when the CRC32C of `buf`, with the 4 bytes at `off` taken as zero, matches
/// the value stored there (little-endian, inverted), as XFS computes it.
fn crc_ok(buf: &[u8], off: usize) -> bool {
    let Some(tail) = buf.get(off + 4..) else {
        return false;
    };
    let c = crc32c_raw(!0, &buf[..off]);
    let c = crc32c_raw(c, &[0; 4]);
    !crc32c_raw(c, tail) == le32(buf, off)
}

/// Check the superblock (`sb` is one whole sector), as blkid and the kernel do.
fn parse_sb(sb: &[u8]) -> std::result::Result<Sb, String> {
    let pow =
        |v: u64, log: u8, lo: u64, hi: u64| (lo..=hi).contains(&v) && log < 32 && v == 1 << log;
    let bs = be32(sb, 4) as u64;
    if !pow(bs, sb[120], 512, 65536) {
        return Err(format!("bad block size {bs} (log {})", sb[120]));
    }
    let sect = be16(sb, 102) as u64;
    if !pow(sect, sb[121], 512, 32768) || sect > bs || sb.len() as u64 != sect {
        return Err(format!("bad sector size {sect} (log {})", sb[121]));
    }
    let inode = be16(sb, 104) as u64;
    if !pow(inode, sb[122], 256, 2048) || sb[120].checked_sub(sb[122]) != Some(sb[123]) {
        return Err(format!("bad inode size {inode}"));
    }
    let rext = (be32(sb, 80) as u64) * bs;
    if !(4096..=1 << 30).contains(&rext) || sb[127] > 100 {
        return Err(format!("bad realtime extent size {rext} or imax_pct"));
    }
    let (dblocks, agblocks, agcount) = (be64(sb, 8), be32(sb, 84) as u64, be32(sb, 88) as u64);
    if agcount == 0 || agblocks < MIN_AG_BLOCKS || agblocks * bs > MAX_AG_BYTES {
        return Err(format!(
            "bad AG geometry: {agcount} AGs of {agblocks} blocks"
        ));
    }
    let min = (agcount - 1) * agblocks + MIN_AG_BLOCKS;
    if dblocks < min || dblocks > agcount * agblocks || dblocks.checked_mul(bs).is_none() {
        return Err(format!(
            "{dblocks} blocks do not fit {agcount} AGs of {agblocks}"
        ));
    }
    let agblklog = sb[124] as u32;
    if agblklog != 64 - (agblocks - 1).leading_zeros() {
        return Err(format!(
            "agblklog {agblklog} does not fit {agblocks} blocks per AG"
        ));
    }
    // The internal log lies inside one AG; sb_logstart is agno << agblklog | agbno.
    let (logstart, logblocks) = (be64(sb, 48), be32(sb, 96) as u64);
    let (agno, agbno) = (logstart >> agblklog, logstart & ((1 << agblklog) - 1));
    let fits = |len| agno < agcount && agbno + len <= agblocks.min(dblocks - agno * agblocks);
    if logstart != 0 && (logblocks == 0 || !fits(logblocks)) {
        return Err(format!(
            "internal log {logstart}+{logblocks} is outside its AG"
        ));
    }
    let log = (logstart != 0).then(|| (agno * agblocks + agbno, logblocks));
    let version = be16(sb, 100);
    let v5 = version & 0xf == 5;
    if !(1..=5).contains(&(version & 0xf)) {
        return Err(format!("unknown version {version:#x}"));
    }
    let mut meta_uuid = [0u8; 16];
    meta_uuid.copy_from_slice(&sb[32..48]);
    let mut distrust = (sb[126] != 0).then(|| "mkfs did not finish".to_string());
    if v5 {
        if version & 0x8000 == 0 || be32(sb, 200) & 0x100 == 0 {
            return Err("v5 without the CRC feature bit".into());
        }
        if !crc_ok(sb, SB_CRC_OFF) {
            return Err("bad superblock CRC".into());
        }
        let (ro, incompat, log) = (be32(sb, 212), be32(sb, 216), be32(sb, 220));
        if incompat & INCOMPAT_META_UUID != 0 {
            meta_uuid.copy_from_slice(&sb[248..264]);
        }
        if incompat & !INCOMPAT_OK != 0 {
            distrust = Some(format!("incompat features {incompat:#x} not known safe"));
        } else if ro & !RO_COMPAT_OK != 0 {
            distrust = Some(format!("unknown ro-compat features {ro:#x}"));
        } else if log != 0 {
            distrust = Some(format!("log-incompat features {log:#x}: log not clean"));
        }
    }
    Ok(Sb {
        bs,
        sect,
        dblocks,
        agblocks,
        agcount,
        v5,
        meta_uuid,
        log,
        distrust,
    })
}

/// The primary superblock sector with its geometry or the reason it is unusable;
/// `None` without the magic (or on a short volume).
type SbRead = Option<(Vec<u8>, std::result::Result<Sb, String>)>;

fn read_sb(dev: &dyn ReadAt) -> Result<SbRead> {
    let Some(head) = read_opt(dev, 0, 512)? else {
        return Ok(None);
    };
    if &head[0..4] != b"XFSB" {
        return Ok(None);
    }
    let sect = be16(&head, 102) as usize;
    if !(512..=32768).contains(&sect) {
        return Ok(Some((head, Err(format!("bad sector size {sect}")))));
    }
    let Some(sector) = read_opt(dev, 0, sect)? else {
        return Ok(None);
    };
    let sb = parse_sb(&sector);
    Ok(Some((sector, sb)))
}

/// Identify XFS by its superblock at byte 0. Like blkid, a superblock that fails
/// its sanity checks (or its CRC on v5) is not XFS.
pub fn probe(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some((raw, Ok(sb))) = read_sb(dev)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(FsKind::Xfs);
    info.label = cstr(&raw[108..120]);
    info.uuid = Some(uuid_be(&raw[32..48]));
    info.size = Some(sb.dblocks * sb.bs);
    info.block_size = Some(sb.bs as u32);
    Ok(Some(info))
}

/// Byte ranges of the data section in use: everything below `dblocks` that no
/// bnobt record lists as free. A realtime or log device elsewhere is not mapped.
pub fn used(dev: &dyn ReadAt) -> Result<RangeSet> {
    Ok(used_checked(dev)?.0)
}

/// Like [`used`], and when the free-space trees cannot be trusted (dirty or
/// external log, unknown features) also why: the map is then the whole volume.
pub fn used_checked(dev: &dyn ReadAt) -> Result<(RangeSet, Option<String>)> {
    let sb = match read_sb(dev)? {
        None => return Err(corrupt(0, "xfs: no superblock (magic XFSB)")),
        Some((_, Err(why))) => return Err(corrupt(0, format!("xfs superblock: {why}"))),
        Some((_, Ok(sb))) => sb,
    };
    let why = match &sb.distrust {
        Some(why) => Some(why.clone()),
        None => log_unclean(dev, &sb)?,
    };
    if let Some(why) = why {
        tracing::debug!("xfs: {why}; counting the whole volume as used");
        return Ok((RangeSet::full(dev.size()), Some(why)));
    }
    let mut used = RangeSet::new();
    for agno in 0..sb.agcount {
        let ag_len = sb.agblocks.min(sb.dblocks - agno * sb.agblocks);
        let base = agno * sb.agblocks * sb.bs;
        let mut next = 0;
        for (start, len) in ag_free(dev, &sb, agno, ag_len)? {
            used.insert(base + next * sb.bs, (start - next) * sb.bs);
            next = start + len;
        }
        used.insert(base + next * sb.bs, (ag_len - next) * sb.bs);
    }
    Ok((used, None))
}

/// Why the log may hold transactions not yet written back, if it may: anything
/// but a log that ends with an unmount record, as the kernel's recovery finds it.
///
/// The log is a ring of 512-byte basic blocks (BBs), each stamped in its first
/// word with the pass (cycle) that wrote it; a record header (magic `FEEDBABE`)
/// keeps its cycle in its second word. The head is where the cycle drops.
fn log_unclean(dev: &dyn ReadAt, sb: &Sb) -> Result<Option<String>> {
    let Some((start, blocks)) = sb.log else {
        return Ok(Some("external log: cannot tell it is clean".into()));
    };
    let (base, n) = (start * sb.bs, blocks * sb.bs / 512);
    let bb = |i: u64| read_vec(dev, base + i * 512, 512);
    let cycle = |b: &[u8]| be32(b, if be32(b, 0) == 0xFEED_BABE { 4 } else { 0 });
    let (first, last) = (cycle(&bb(0)?), cycle(&bb(n - 1)?));
    // The first BB with the last BB's cycle, by bisection (the whole ring when equal).
    let (mut lo, mut head) = (0, if first == last { n } else { n - 1 });
    while head - lo > 1 {
        let mid = lo + (head - lo) / 2;
        match cycle(&bb(mid)?) {
            c if c == first => lo = mid,
            c if c == last => head = mid,
            c => return Ok(Some(format!("log BB {mid}: cycle {c}, not {first}/{last}"))),
        }
    }
    // Like recovery, look at up to 8 iclogs of 256 KiB before the head: a BB of
    // another cycle there is a hole left by a torn write. Then the record ending at
    // the head must be a lone unmount record. Data BBs start with a cycle number,
    // so the last magic found is the last record's header.
    let w = head.min(4096) as usize;
    let win = read_vec(dev, base + (head - w as u64) * 512, w * 512)?;
    let want = cycle(&win[(w - 1) * 512..]);
    if (0..w).any(|i| cycle(&win[i * 512..]) != want) {
        return Ok(Some(format!("log: a hole before the head (BB {head})")));
    }
    if let Some(i) = (0..w).rev().find(|&i| be32(&win, i * 512) == 0xFEED_BABE) {
        let r = &win[i * 512..];
        let v2 = be32(r, 8) & 2 != 0; // extended headers for iclogs over 32 KiB
        let hblks = (if v2 { be32(r, 320) as usize } else { 0 })
            .div_ceil(32768)
            .max(1);
        let end = i + hblks + (be32(r, 12) as usize).div_ceil(512);
        let flags = win.get((i + hblks) * 512 + 9).copied().unwrap_or(0);
        if be32(r, 4) == want && end == w && be32(r, 40) == 1 && flags & 0x20 != 0 {
            return Ok(None);
        }
    }
    Ok(Some(format!(
        "the log needs replay (head at BB {head} of {n})"
    )))
}

/// The free extents of one AG, ascending and disjoint, from its bnobt.
fn ag_free(dev: &dyn ReadAt, sb: &Sb, agno: u64, ag_len: u64) -> Result<Vec<(u64, u64)>> {
    let ag_start = agno * sb.agblocks * sb.bs;
    let agf_off = ag_start + sb.sect;
    let agf = read_vec(dev, agf_off, sb.sect as usize)?;
    let bad = |what: String| corrupt(agf_off, format!("xfs AG {agno}: AGF: {what}"));
    if &agf[0..4] != b"XAGF" {
        return Err(bad(format!("bad magic {:02x?}", &agf[0..4])));
    }
    let (version, seqno, length) = (be32(&agf, 4), be32(&agf, 8) as u64, be32(&agf, 12) as u64);
    if version != 1 || seqno != agno || length != ag_len {
        let want = format!("expected 1, {agno}, {ag_len}");
        return Err(bad(format!(
            "version {version}, seqno {seqno}, length {length} ({want})"
        )));
    }
    if sb.v5 && (agf[64..80] != sb.meta_uuid || !crc_ok(&agf, AGF_CRC_OFF)) {
        return Err(bad("bad uuid or CRC".into()));
    }
    let (root, levels) = (be32(&agf, 16), be32(&agf, 28) as usize);
    if !(1..=MAX_LEVELS).contains(&levels) {
        return Err(bad(format!("bnobt has {levels} levels")));
    }
    let mut w = Walk {
        dev,
        sb,
        agno,
        ag_start,
        ag_len,
        // Blocks up to and including the one holding the AGFL are headers.
        min_block: 3 * sb.sect / sb.bs + 1,
        free: Vec::new(),
        tree: Vec::new(),
        prev: [None; MAX_LEVELS],
        end: 0,
    };
    w.block(root, levels - 1, agf_off)?;
    if let Some(l) = (0..levels).find(|&l| w.prev[l].is_some_and(|p| p.1 != NULL_AGBLOCK)) {
        return Err(bad(format!(
            "bnobt level {l}: last block has a right sibling"
        )));
    }
    let sum: u64 = w.free.iter().map(|e| e.1).sum();
    let freeblks = be32(&agf, 52) as u64;
    // More free space in the tree than the header counts means a stale or damaged
    // tree. Less is safe (more is copied) and happens: some mkfs.xfs versions leave
    // agf_freeblks too high in an AG filled by a stripe-aligned log.
    if sum > freeblks {
        return Err(bad(format!(
            "bnobt lists {sum} free blocks, agf_freeblks {freeblks}"
        )));
    } else if sum < freeblks {
        tracing::warn!("xfs AG {agno}: bnobt lists {sum} free blocks, agf_freeblks {freeblks}");
    }
    w.tree.push(be32(&agf, 20) as u64); // the cntbt root must not be free either
    for &b in &w.tree {
        let i = w.free.partition_point(|&(s, l)| s + l <= b);
        if b < w.min_block || b >= ag_len || w.free.get(i).is_some_and(|&(s, _)| s <= b) {
            return Err(bad(format!(
                "btree block {b} outside the AG or listed free"
            )));
        }
    }
    Ok(w.free)
}

/// Depth-first, in-order walk of one AG's bnobt.
struct Walk<'a> {
    dev: &'a dyn ReadAt,
    sb: &'a Sb,
    agno: u64,
    ag_start: u64,
    ag_len: u64,
    min_block: u64,
    free: Vec<(u64, u64)>,
    /// Blocks of the tree, visited so far.
    tree: Vec<u64>,
    /// Per level: the last block visited and its right sibling.
    prev: [Option<(u32, u32)>; MAX_LEVELS],
    /// End of the last free extent seen: records must ascend.
    end: u64,
}

impl Walk<'_> {
    /// Visit block `bno`, expected at `level`, pointed to from byte `from`.
    fn block(&mut self, bno: u32, level: usize, from: u64) -> Result<()> {
        let (sb, agno) = (self.sb, self.agno);
        let b = bno as u64;
        if b < self.min_block || b >= self.ag_len || self.tree.len() as u64 >= self.ag_len {
            let what = format!("xfs AG {agno}: bnobt pointer to block {bno}: out of range or loop");
            return Err(corrupt(from, what));
        }
        self.tree.push(b);
        let off = self.ag_start + b * sb.bs;
        let blk = read_vec(self.dev, off, sb.bs as usize)?;
        let bad = |what: String| corrupt(off, format!("xfs AG {agno}: bnobt block {bno}: {what}"));
        let (magic, hdr): (&[u8], usize) = if sb.v5 { (b"AB3B", 56) } else { (b"ABTB", 16) };
        if &blk[0..4] != magic {
            return Err(bad(format!("bad magic {:02x?}", &blk[0..4])));
        }
        let (lvl, n) = (be16(&blk, 4) as usize, be16(&blk, 6) as usize);
        if lvl != level {
            return Err(bad(format!("level {lvl}, expected {level}")));
        }
        if sb.v5 {
            if be64(&blk, 16) != off / 512 || blk[32..48] != sb.meta_uuid {
                return Err(bad("blkno or uuid does not match (stale block?)".into()));
            }
            if be32(&blk, 48) as u64 != agno || !crc_ok(&blk, BLOCK_CRC_OFF) {
                return Err(bad("bad owner or CRC".into()));
            }
        }
        // Siblings chain the blocks of each level, left to right.
        let (left, right) = (be32(&blk, 8), be32(&blk, 12));
        let want_left = self.prev[level].map_or(NULL_AGBLOCK, |p| p.0);
        if left != want_left || self.prev[level].is_some_and(|p| p.1 != bno) {
            return Err(bad(format!(
                "left sibling {left}, expected {want_left} (or unlinked)"
            )));
        }
        self.prev[level] = Some((bno, right));
        let room = sb.bs as usize - hdr;
        if level == 0 {
            if n > room / 8 {
                return Err(bad(format!("{n} records do not fit")));
            }
            for i in 0..n {
                let rec = hdr + 8 * i;
                let (s, l) = (be32(&blk, rec) as u64, be32(&blk, rec + 4) as u64);
                if l == 0 || s < self.min_block.max(self.end) || s + l > self.ag_len {
                    return Err(bad(format!("free extent {s}+{l}: out of order or outside")));
                }
                self.free.push((s, l));
                self.end = s + l;
            }
        } else {
            let maxrecs = room / 12;
            if n == 0 || n > maxrecs {
                return Err(bad(format!("{n} pointers (at most {maxrecs})")));
            }
            for i in 0..n {
                self.block(be32(&blk, hdr + maxrecs * 8 + 4 * i), level - 1, off)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "xfs_tests.rs"]
mod tests;
