//! Formats identified by a magic number whose used map is trivial: swap (header
//! page only) and containers ferry copies whole (LUKS, btrfs, RAID members), plus
//! the LVM PV label (the PV itself is handled in `layout::lvm`).

use super::{FsInfo, FsKind};
use crate::disk::ReadAt;
use crate::layout::bytes::{be16, cstr, le32, le64, uuid_be};
use crate::layout::ranges::RangeSet;
use crate::layout::{Result, read_opt};

/// Swap's header page; the kernel's page size on x86_64.
pub const SWAP_PAGE: u64 = 4096;

pub fn probe_swap(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(page) = read_opt(dev, 0, SWAP_PAGE as usize)? else {
        return Ok(None);
    };
    let magic = &page[SWAP_PAGE as usize - 10..];
    if magic != b"SWAPSPACE2" && magic != b"SWAP-SPACE" {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsKind::Swap);
    if magic == b"SWAPSPACE2" {
        let last_page = le32(&page, 1028) as u64;
        info.size = Some((last_page + 1) * SWAP_PAGE);
        if page[1036..1052].iter().any(|&b| b != 0) {
            info.uuid = Some(uuid_be(&page[1036..1052]));
        }
        info.label = cstr(&page[1052..1068]);
    }
    info.block_size = Some(SWAP_PAGE as u32);
    Ok(Some(info))
}

/// Swap keeps only its header page: the rest is disposable and `mkswap` on the
/// target re-creates it anyway.
pub fn swap_used(dev: &dyn ReadAt) -> Result<RangeSet> {
    Ok(RangeSet::full(SWAP_PAGE.min(dev.size())))
}

pub fn probe_btrfs(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(sb) = read_opt(dev, 65536, 4096)? else {
        return Ok(None);
    };
    if &sb[64..72] != b"_BHRfS_M" {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsKind::Btrfs);
    info.uuid = Some(uuid_be(&sb[32..48]));
    info.size = Some(le64(&sb, 0x70));
    info.block_size = Some(le32(&sb, 0x90)); // sectorsize
    info.label = cstr(&sb[0x12b..0x12b + 256]);
    Ok(Some(info))
}

pub fn probe_luks(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(h) = read_opt(dev, 0, 512)? else {
        return Ok(None);
    };
    if &h[0..6] != b"LUKS\xba\xbe" {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsKind::Luks);
    info.uuid = cstr(&h[168..208]);
    if be16(&h, 6) == 2 {
        info.label = cstr(&h[24..72]);
    }
    Ok(Some(info))
}

/// An LVM2 physical volume label in one of the first four sectors.
pub fn probe_lvm_pv(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(head) = read_opt(dev, 0, 2048)? else {
        return Ok(None);
    };
    for sector in head.chunks_exact(512) {
        if &sector[0..8] == b"LABELONE" && &sector[24..32] == b"LVM2 001" {
            let mut info = FsInfo::new(FsKind::LvmPv);
            let off = le32(sector, 20) as usize;
            if let Some(uuid) = sector.get(off..off + 32) {
                info.uuid = Some(crate::layout::lvm::format_uuid(uuid));
            }
            return Ok(Some(info));
        }
    }
    Ok(None)
}

const MD_MAGIC: u32 = 0xa92b_4efc;

fn md_v1_at(dev: &dyn ReadAt, offset: u64) -> Result<Option<FsInfo>> {
    let Some(sb) = read_opt(dev, offset, 256)? else {
        return Ok(None);
    };
    if le32(&sb, 0) != MD_MAGIC || le32(&sb, 4) != 1 {
        return Ok(None);
    }
    let mut info = FsInfo::new(FsKind::RaidMember);
    info.uuid = Some(uuid_be(&sb[16..32]));
    info.label = cstr(&sb[32..64]);
    Ok(Some(info))
}

/// md superblocks 1.1 (at 0) and 1.2 (at 4 KiB).
pub fn probe_raid_start(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    if let Some(i) = md_v1_at(dev, 0)? {
        return Ok(Some(i));
    }
    md_v1_at(dev, 4096)
}

/// md superblocks 1.0 (8 KiB before the end, 4 KiB aligned) and 0.90 (64 KiB
/// aligned, 64 KiB before the end).
pub fn probe_raid_end(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let size = dev.size();
    if size < 128 * 1024 {
        return Ok(None);
    }
    if let Some(i) = md_v1_at(dev, (size - 8192) & !4095)? {
        return Ok(Some(i));
    }
    let off = (size & !65535) - 65536;
    let Some(sb) = read_opt(dev, off, 64)? else {
        return Ok(None);
    };
    if le32(&sb, 0) == MD_MAGIC && le32(&sb, 4) == 0 {
        let mut info = FsInfo::new(FsKind::RaidMember);
        let mut uuid = [0u8; 16];
        uuid[0..4].copy_from_slice(&sb[20..24]);
        uuid[4..16].copy_from_slice(&sb[52..64]);
        info.uuid = Some(uuid_be(&uuid));
        return Ok(Some(info));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    #[test]
    fn swap_header() {
        let mut d = vec![0u8; 64 * 1024];
        d[4086..4096].copy_from_slice(b"SWAPSPACE2");
        d[1024] = 1;
        d[1028..1032].copy_from_slice(&15u32.to_le_bytes());
        d[1036..1052].copy_from_slice(&[0x11; 16]);
        d[1052..1057].copy_from_slice(b"swap0");
        let info = probe_swap(&MemDisk(d.clone())).unwrap().unwrap();
        assert_eq!(info.kind, FsKind::Swap);
        assert_eq!(info.size, Some(16 * 4096));
        assert_eq!(info.label.as_deref(), Some("swap0"));
        assert_eq!(swap_used(&MemDisk(d)).unwrap().total(), 4096);
    }

    #[test]
    fn short_volumes_are_not_anything() {
        let d = MemDisk(vec![0u8; 100]);
        assert_eq!(super::super::detect(&d).unwrap().kind, FsKind::Unknown);
    }

    #[test]
    fn raid_superblocks() {
        let mut d = vec![0u8; 1 << 20];
        d[4096..4100].copy_from_slice(&MD_MAGIC.to_le_bytes());
        d[4100] = 1;
        d[4096 + 32..4096 + 37].copy_from_slice(b"host0");
        let info = probe_raid_start(&MemDisk(d)).unwrap().unwrap();
        assert_eq!(info.kind, FsKind::RaidMember);
        assert_eq!(info.label.as_deref(), Some("host0"));

        let mut d = vec![0u8; 1 << 20];
        let off = (1 << 20) - 65536;
        d[off..off + 4].copy_from_slice(&MD_MAGIC.to_le_bytes());
        assert!(probe_raid_end(&MemDisk(d)).unwrap().is_some());
    }
}
