//! ext2/3/4: superblock identity and the used map from the block bitmaps.
//!
//! Read without mounting. Handles 32- and 64-byte group descriptors (64bit),
//! meta_bg descriptor placement, flex_bg (bitmaps and inode tables living in
//! other groups), BLOCK_UNINIT groups (no bitmap on disk: only the group's base
//! metadata is used), sparse_super backups and bigalloc clusters. Descriptor
//! checksums (metadata_csum or gdt_csum) are verified when the filesystem has
//! them, and every location a descriptor names is range-checked.

use super::{FsInfo, FsKind};
use crate::disk::ReadAt;
use crate::layout::bytes::{cstr, le16, le32, uuid_be};
use crate::layout::crc::{crc16, crc32c_raw};
use crate::layout::ranges::RangeSet;
use crate::layout::{Result, corrupt, read_opt, read_vec};

const SB_OFFSET: u64 = 1024;
const MAGIC: u16 = 0xEF53;

const COMPAT_HAS_JOURNAL: u32 = 0x4;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_EXTENTS: u32 = 0x40;
const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_FLEX_BG: u32 = 0x200;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_BLOCK_UNINIT: u16 = 0x2;

/// The superblock fields the used map needs.
#[derive(Debug, Clone)]
struct Super {
    raw: Vec<u8>,
    blocks: u64,
    free_blocks: u64,
    first_data_block: u64,
    block_size: u64,
    cluster_ratio: u64,
    clusters_per_group: u64,
    blocks_per_group: u64,
    groups: u64,
    desc_size: u64,
    reserved_gdt: u64,
    first_meta_bg: u64,
    compat: u32,
    incompat: u32,
    ro_compat: u32,
}

impl Super {
    fn read(dev: &dyn ReadAt) -> Result<Option<Super>> {
        let Some(raw) = read_opt(dev, SB_OFFSET, 1024)? else {
            return Ok(None);
        };
        if le16(&raw, 56) != MAGIC {
            return Ok(None);
        }
        let bad = |field_off: usize, what: &str| corrupt(SB_OFFSET + field_off as u64, what);
        let log_block = le32(&raw, 24);
        if log_block > 6 {
            return Err(bad(
                24,
                &format!("ext superblock: block size 2^(10+{log_block}) is absurd"),
            ));
        }
        let block_size = 1024u64 << log_block;
        let incompat = le32(&raw, 96);
        let ro_compat = le32(&raw, 100);
        let log_cluster = le32(&raw, 28);
        let cluster_ratio = if ro_compat & RO_COMPAT_BIGALLOC != 0 {
            if log_cluster < log_block || log_cluster > log_block + 16 {
                return Err(bad(
                    28,
                    "ext superblock: bigalloc cluster size out of range",
                ));
            }
            1u64 << (log_cluster - log_block)
        } else {
            1
        };
        let mut blocks = le32(&raw, 4) as u64;
        let mut free_blocks = le32(&raw, 12) as u64;
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            blocks |= (le32(&raw, 336) as u64) << 32;
            free_blocks |= (le32(&raw, 344) as u64) << 32;
            let d = le16(&raw, 254) as u64;
            if !(32..=1024).contains(&d) || !d.is_power_of_two() {
                return Err(bad(
                    254,
                    &format!("ext superblock: descriptor size {d} is invalid"),
                ));
            }
            d
        } else {
            32
        };
        let first_data_block = le32(&raw, 20) as u64;
        let blocks_per_group = le32(&raw, 32) as u64;
        let clusters_per_group = le32(&raw, 36) as u64;
        if clusters_per_group == 0 || clusters_per_group > block_size * 8 {
            return Err(bad(
                36,
                &format!(
                    "ext superblock: {clusters_per_group} clusters per group does not fit one bitmap block"
                ),
            ));
        }
        if blocks_per_group != clusters_per_group * cluster_ratio {
            return Err(bad(
                32,
                "ext superblock: blocks per group disagrees with clusters per group",
            ));
        }
        if blocks <= first_data_block {
            return Err(bad(
                4,
                &format!("ext superblock: block count {blocks} is too small"),
            ));
        }
        let groups = (blocks - first_data_block).div_ceil(blocks_per_group);
        Ok(Some(Super {
            blocks,
            free_blocks,
            first_data_block,
            block_size,
            cluster_ratio,
            clusters_per_group,
            blocks_per_group,
            groups,
            desc_size,
            reserved_gdt: le16(&raw, 206) as u64,
            first_meta_bg: le32(&raw, 260) as u64,
            compat: le32(&raw, 92),
            incompat,
            ro_compat,
            raw,
        }))
    }

    fn kind(&self) -> FsKind {
        let ext4_only = INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
        if self.incompat & ext4_only != 0
            || self.ro_compat & (RO_COMPAT_HUGE_FILE | RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)
                != 0
        {
            FsKind::Ext4
        } else if self.compat & COMPAT_HAS_JOURNAL != 0 {
            FsKind::Ext3
        } else {
            FsKind::Ext2
        }
    }

    fn descs_per_block(&self) -> u64 {
        self.block_size / self.desc_size
    }

    /// Whether group `g` carries a superblock backup (and so descriptor copies).
    fn has_super(&self, g: u64) -> bool {
        if g <= 1 || self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if g.is_multiple_of(2) {
            return false;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                p *= base;
            }
            p == g
        })
    }

    fn group_start(&self, g: u64) -> u64 {
        self.first_data_block + g * self.blocks_per_group
    }

    /// Block holding the descriptor of group `g`.
    fn desc_block(&self, g: u64) -> u64 {
        let per = self.descs_per_block();
        let meta_group = g / per;
        if self.incompat & INCOMPAT_META_BG != 0 && meta_group >= self.first_meta_bg {
            // meta_bg: each meta group's descriptors sit in its first group.
            let first = meta_group * per;
            let mut skip = self.has_super(first) as u64;
            // 1 KiB blocks with first_data_block 0 (bigalloc): block 1 is the superblock.
            if self.block_size == 1024 && meta_group == 0 && self.first_data_block == 0 {
                skip += 1;
            }
            self.group_start(first) + skip
        } else {
            // The superblock's own block (1 for 1 KiB blocks, else 0), then the table.
            SB_OFFSET / self.block_size + 1 + meta_group
        }
    }

    /// Blocks at the start of group `g` taken by superblock and descriptor copies.
    fn base_meta_blocks(&self, g: u64) -> u64 {
        let per = self.descs_per_block();
        let gdt_blocks = self.groups.div_ceil(per);
        let mut n = 0;
        let has = self.has_super(g);
        if has {
            n += 1;
        }
        if self.incompat & INCOMPAT_META_BG == 0 || g / per < self.first_meta_bg {
            if has {
                let old = if self.incompat & INCOMPAT_META_BG != 0 {
                    self.first_meta_bg
                } else {
                    gdt_blocks
                };
                n += old + self.reserved_gdt;
            }
        } else {
            let idx = g % per;
            if idx == 0 || idx == 1 || idx == per - 1 {
                n += 1;
            }
        }
        n
    }

    fn csum_seed(&self) -> u32 {
        if self.incompat & INCOMPAT_CSUM_SEED != 0 {
            le32(&self.raw, 0x270)
        } else {
            crc32c_raw(!0, &self.raw[104..120])
        }
    }
}

/// A group descriptor's fields.
struct Desc {
    block_bitmap: u64,
    inode_bitmap: u64,
    inode_table: u64,
    flags: u16,
}

pub fn probe(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sb) = Super::read(dev)? else {
        return Ok(None);
    };
    let mut info = FsInfo::new(sb.kind());
    info.uuid = Some(uuid_be(&sb.raw[104..120]));
    info.label = cstr(&sb.raw[120..136]);
    info.size = sb.blocks.checked_mul(sb.block_size);
    info.block_size = u32::try_from(sb.block_size * sb.cluster_ratio).ok();
    Ok(Some(info))
}

/// Read and check every group descriptor.
fn read_descs(dev: &dyn ReadAt, sb: &Super) -> Result<Vec<Desc>> {
    let inode_table_blocks = {
        let ipg = le32(&sb.raw, 40) as u64;
        let isz = if le32(&sb.raw, 76) == 0 {
            128
        } else {
            le16(&sb.raw, 88) as u64
        };
        (ipg * isz.max(1)).div_ceil(sb.block_size)
    };
    let seed = sb.csum_seed();
    let mut descs = Vec::with_capacity(sb.groups.min(1 << 20) as usize);
    let mut cached: Option<(u64, Vec<u8>)> = None;
    for g in 0..sb.groups {
        let blk = sb.desc_block(g);
        if blk >= sb.blocks {
            return Err(corrupt(
                SB_OFFSET,
                format!(
                    "ext: descriptor block {blk} of group {g} lies past the end of the filesystem"
                ),
            ));
        }
        if cached.as_ref().map(|c| c.0) != Some(blk) {
            cached = Some((
                blk,
                read_vec(dev, blk * sb.block_size, sb.block_size as usize)?,
            ));
        }
        let buf = &cached.as_ref().expect("just filled").1;
        let at = ((g % sb.descs_per_block()) * sb.desc_size) as usize;
        let d = &buf[at..at + sb.desc_size as usize];
        let offset = blk * sb.block_size + at as u64;
        let wide = sb.desc_size >= 64;
        let hi = |o: usize| if wide { (le32(d, o) as u64) << 32 } else { 0 };
        let desc = Desc {
            block_bitmap: le32(d, 0) as u64 | hi(0x20),
            inode_bitmap: le32(d, 4) as u64 | hi(0x24),
            inode_table: le32(d, 8) as u64 | hi(0x28),
            flags: le16(d, 18),
        };
        check_desc_csum(sb, seed, g, d, offset)?;
        let within = |b: u64, n: u64| {
            b >= sb.first_data_block && b.checked_add(n).is_some_and(|e| e <= sb.blocks)
        };
        if !within(desc.block_bitmap, 1)
            || !within(desc.inode_bitmap, 1)
            || !within(desc.inode_table, inode_table_blocks)
        {
            return Err(corrupt(
                offset,
                format!(
                    "ext group descriptor {g}: bitmap or inode table location outside the filesystem \
                     (block bitmap {}, inode bitmap {}, inode table {})",
                    desc.block_bitmap, desc.inode_bitmap, desc.inode_table
                ),
            ));
        }
        descs.push(desc);
    }
    Ok(descs)
}

fn check_desc_csum(sb: &Super, seed: u32, g: u64, d: &[u8], offset: u64) -> Result<()> {
    let stored = le16(d, 0x1E);
    let group = (g as u32).to_le_bytes();
    let want = if sb.ro_compat & RO_COMPAT_METADATA_CSUM != 0 {
        let mut c = crc32c_raw(seed, &group);
        c = crc32c_raw(c, &d[..0x1E]);
        c = crc32c_raw(c, &[0, 0]);
        c = crc32c_raw(c, &d[0x20..]);
        (c & 0xFFFF) as u16
    } else if sb.ro_compat & RO_COMPAT_GDT_CSUM != 0 {
        let mut c = crc16(!0, &sb.raw[104..120]);
        c = crc16(c, &group);
        c = crc16(c, &d[..0x1E]);
        if d.len() > 0x20 {
            c = crc16(c, &d[0x20..]);
        }
        c
    } else {
        return Ok(());
    };
    if stored != want {
        return Err(corrupt(
            offset,
            format!("ext group descriptor {g}: checksum {stored:#06x} does not match {want:#06x}"),
        ));
    }
    Ok(())
}

/// Byte ranges the filesystem uses, from its block bitmaps.
pub fn used(dev: &dyn ReadAt) -> Result<RangeSet> {
    let Some(sb) = Super::read(dev)? else {
        return Err(corrupt(SB_OFFSET, "no ext superblock"));
    };
    let descs = read_descs(dev, &sb)?;
    let bs = sb.block_size;
    let ratio = sb.cluster_ratio;
    let mut map = RangeSet::new();
    // The boot block and the primary superblock.
    map.insert(0, (SB_OFFSET + 1024).max(bs));
    for (g, d) in descs.iter().enumerate() {
        let g = g as u64;
        let start = sb.group_start(g);
        let end = (start + sb.blocks_per_group).min(sb.blocks);
        if d.flags & BG_BLOCK_UNINIT != 0 {
            // No bitmap on disk: only the group's own base metadata is in use.
            let n = sb.base_meta_blocks(g).min(end - start);
            let n = n.div_ceil(ratio) * ratio;
            map.insert(start * bs, n.min(end - start) * bs);
            continue;
        }
        let bitmap = read_vec(dev, d.block_bitmap * bs, bs as usize)?;
        let clusters = (end - start).div_ceil(ratio);
        let mut run: Option<u64> = None;
        for c in 0..=clusters {
            let set = c < clusters
                && c < sb.clusters_per_group
                && bitmap[(c / 8) as usize] & (1 << (c % 8)) != 0;
            match (set, run) {
                (true, None) => run = Some(c),
                (false, Some(r)) => {
                    let first = start + r * ratio;
                    let last = (start + c * ratio).min(end);
                    map.insert(first * bs, (last - first) * bs);
                    run = None;
                }
                _ => {}
            }
        }
    }
    // Every group's bitmaps and inode table are used whatever the flags say
    // (flex_bg places them in other groups, possibly uninitialised ones).
    let ipg = le32(&sb.raw, 40) as u64;
    let isz = if le32(&sb.raw, 76) == 0 {
        128
    } else {
        le16(&sb.raw, 88) as u64
    };
    let itb = (ipg * isz.max(1)).div_ceil(bs);
    for d in &descs {
        map.insert(d.block_bitmap * bs, bs);
        map.insert(d.inode_bitmap * bs, bs);
        map.insert(d.inode_table * bs, itb * bs);
    }
    Ok(map)
}

/// `(block count, used blocks per our map, free blocks per the superblock)`, for
/// cross-checking against `dumpe2fs` (used + free must equal the block count).
pub fn block_counts(dev: &dyn ReadAt) -> Result<(u64, u64, u64)> {
    let Some(sb) = Super::read(dev)? else {
        return Err(corrupt(SB_OFFSET, "no ext superblock"));
    };
    let map = used(dev)?;
    Ok((sb.blocks, map.total() / sb.block_size, sb.free_blocks))
}
