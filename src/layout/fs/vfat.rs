//! FAT12/16/32 (vfat): identity from the boot sector, used map from the FATs.
//!
//! Layout (sectors): reserved area (boot sector, FAT32 FSInfo and backup boot),
//! `fats` copies of the File Allocation Table, on FAT12/16 a fixed root
//! directory, then the data clusters numbered from 2. A data cluster is in use
//! when its FAT entry is non-zero (chain link, end of chain, bad or reserved).
//! The FAT width is decided by the cluster count as in Microsoft's spec (below
//! 4085 FAT12, below 65525 FAT16), except that a FAT32-style BPB (16-bit FAT
//! length zero) is always FAT32, as Linux mounts it.

use super::{FsInfo, FsKind};
use crate::disk::ReadAt;
use crate::layout::bytes::{cstr, le16, le32};
use crate::layout::ranges::RangeSet;
use crate::layout::{Result, corrupt, read_opt, read_vec};

/// The 11-byte label mkfs writes when there is none.
const NO_NAME: &[u8] = b"NO NAME    ";
/// FAT entries read at a time (FAT16/32), to bound memory on huge FATs.
const CHUNK_ENTRIES: u64 = 1 << 18;
/// Root-directory clusters searched for the label on FAT32 (blkid's limit).
const LABEL_MAX_CLUSTERS: u32 = 100;

/// Boot-sector geometry; every field checked against the others.
#[derive(Debug, Clone)]
struct Geometry {
    /// Bytes per sector.
    sector: u64,
    /// Bytes per cluster.
    cluster: u64,
    /// Byte offset of the first FAT and of the first data cluster.
    fat_start: u64,
    data_start: u64,
    /// Bytes per FAT copy, and the number of copies.
    fat_bytes: u64,
    fats: u64,
    root_entries: u64,
    total_sectors: u64,
    clusters: u64,
    /// FAT entry width in bits: 12, 16 or 32.
    bits: u64,
    root_cluster: u32,
}

/// Parse and sanity-check the BPB; `Err` names the offending field.
fn parse(b: &[u8]) -> std::result::Result<Geometry, (u64, String)> {
    let bad = |off: u64, what: &str| Err((off, format!("vfat boot sector: {what}")));
    if b.len() < 512 {
        return bad(0, "short");
    }
    if b[0] != 0xEB && b[0] != 0xE9 {
        return bad(0, "no x86 jump instruction");
    }
    if &b[3..11] == b"NTFS    " || &b[3..11] == b"EXFAT   " {
        return bad(3, "NTFS or exFAT OEM name");
    }
    let sector = le16(b, 0x0B) as u64;
    if !(512..=4096).contains(&sector) || !sector.is_power_of_two() {
        return bad(0x0B, &format!("{sector} bytes per sector"));
    }
    let spc = b[0x0D] as u64;
    if !spc.is_power_of_two() {
        return bad(0x0D, &format!("{spc} sectors per cluster"));
    }
    let reserved = le16(b, 0x0E) as u64;
    if reserved == 0 {
        return bad(0x0E, "no reserved sectors");
    }
    let fats = b[0x10] as u64;
    if !(1..=4).contains(&fats) {
        return bad(0x10, &format!("{fats} FAT copies"));
    }
    let media = b[0x15];
    if media != 0xF0 && media < 0xF8 {
        return bad(0x15, &format!("media byte {media:#04x}"));
    }
    let root_entries = le16(b, 0x11) as u64;
    let total_sectors = match le16(b, 0x13) {
        0 => le32(b, 0x20) as u64,
        n => n as u64,
    };
    let fat16_len = le16(b, 0x16) as u64;
    let fat_len = if fat16_len == 0 {
        le32(b, 0x24) as u64
    } else {
        fat16_len
    };
    if fat_len == 0 {
        return bad(0x16, "FAT length is zero");
    }
    let root_sectors = (root_entries * 32).div_ceil(sector);
    let data_sector = reserved + fats * fat_len + root_sectors;
    if total_sectors <= data_sector {
        return bad(0x13, &format!("{total_sectors} sectors leave no data area"));
    }
    let clusters = (total_sectors - data_sector) / spc;
    let bits = match (fat16_len, clusters) {
        (0, 0..=0x0FFF_FFF5) => 32,
        (0, _) => return bad(0x20, &format!("{clusters} clusters is too many for FAT32")),
        (_, 0) => return bad(0x13, "no data clusters"),
        (_, 1..4085) => 12,
        (_, 4085..65525) => 16,
        _ => {
            return bad(
                0x16,
                &format!("{clusters} clusters need FAT32 but the BPB is FAT16"),
            );
        }
    };
    let fat_bytes = fat_len * sector;
    if fat_bytes * 8 / bits < clusters + 2 {
        return bad(
            0x16,
            &format!("a {fat_bytes}-byte FAT can not map {clusters} clusters"),
        );
    }
    Ok(Geometry {
        sector,
        cluster: spc * sector,
        fat_start: reserved * sector,
        data_start: data_sector * sector,
        fat_bytes,
        fats,
        root_entries,
        total_sectors,
        clusters,
        bits,
        root_cluster: le32(b, 0x2C),
    })
}

impl Geometry {
    /// Byte offset of data cluster `n` (n >= 2).
    fn cluster_offset(&self, n: u64) -> u64 {
        self.data_start + (n - 2) * self.cluster
    }

    /// Entry `n` of a FAT slice that starts at entry `first`.
    fn entry(&self, fat: &[u8], first: u64, n: u64) -> u32 {
        let at = |i: u64| (i * self.bits / 8 - first * self.bits / 8) as usize;
        match self.bits {
            12 if n % 2 == 1 => (le16(fat, at(n)) >> 4) as u32,
            12 => (le16(fat, at(n)) & 0xFFF) as u32,
            16 => le16(fat, at(n)) as u32,
            _ => le32(fat, at(n)) & 0x0FFF_FFFF,
        }
    }
}

/// Read the boot sector and parse it; `None` when the volume is too short.
fn geometry(dev: &dyn ReadAt) -> Result<Option<std::result::Result<Geometry, (u64, String)>>> {
    Ok(read_opt(dev, 0, 512)?.map(|b| parse(&b)))
}

/// Search directory entries for the volume label: `(label, reached the end)`.
fn search_label(dir: &[u8]) -> (Option<String>, bool) {
    for e in dir.chunks_exact(32) {
        let attr = e[11];
        if e[0] == 0 {
            return (None, true);
        }
        let cluster = le16(e, 20) as u32 | le16(e, 26) as u32;
        if e[0] == 0xE5 || cluster != 0 || attr & 0x3F == 0x0F {
            continue;
        }
        if attr & 0x18 == 0x08 {
            let label = (&e[..11] != NO_NAME).then(|| cstr(&e[..11])).flatten();
            return (label, true);
        }
    }
    (None, false)
}

/// The label from the root directory's volume-ID entry, as blkid reports it
/// (the boot-sector copy is what blkid calls `LABEL_FATBOOT`).
fn root_label(dev: &dyn ReadAt, g: &Geometry) -> Result<Option<String>> {
    if g.bits != 32 {
        let root = g.fat_start + g.fats * g.fat_bytes;
        let dir = read_opt(dev, root, (g.root_entries * 32) as usize)?;
        return Ok(dir.and_then(|d| search_label(&d).0));
    }
    let mut next = g.root_cluster as u64;
    for _ in 0..LABEL_MAX_CLUSTERS {
        if next < 2 || next >= g.clusters + 2 {
            break;
        }
        let Some(dir) = read_opt(dev, g.cluster_offset(next), g.cluster as usize)? else {
            break;
        };
        match search_label(&dir) {
            (Some(l), _) => return Ok(Some(l)),
            (None, true) => break,
            (None, false) => {}
        }
        let Some(fat) = read_opt(dev, g.fat_start + next * 4, 4)? else {
            break;
        };
        next = (le32(&fat, 0) & 0x0FFF_FFFF) as u64;
    }
    Ok(None)
}

pub fn probe(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(Ok(g)) = geometry(dev)? else {
        return Ok(None);
    };
    // An MBR can carry a stale BPB copy (GRUB keeps one); a real FAT starts
    // with the media byte and 0xFF.
    let Some(fat0) = read_opt(dev, g.fat_start, 2)? else {
        return Ok(None);
    };
    if (fat0[0] != 0xF0 && fat0[0] < 0xF8) || fat0[1] != 0xFF {
        return Ok(None);
    }
    let boot = read_vec(dev, 0, 512)?;
    let serial_at = if le16(&boot, 0x16) == 0 { 0x43 } else { 0x27 };
    let sig = boot[serial_at - 1];
    let mut info = FsInfo::new(FsKind::Vfat);
    if serial_at == 0x43 || sig == 0x28 || sig == 0x29 {
        let s = &boot[serial_at..serial_at + 4];
        info.uuid = Some(format!("{:02X}{:02X}-{:02X}{:02X}", s[3], s[2], s[1], s[0]));
    }
    info.label = root_label(dev, &g)?;
    info.size = Some(g.total_sectors * g.sector);
    info.block_size = u32::try_from(g.cluster).ok();
    Ok(Some(info))
}

/// Used map: everything before the data area, plus every data cluster whose
/// entry is non-zero in any FAT copy (copies can disagree after a crash).
pub fn used(dev: &dyn ReadAt) -> Result<RangeSet> {
    let g = match geometry(dev)? {
        Some(Ok(g)) => g,
        Some(Err((off, what))) => return Err(corrupt(off, what)),
        None => return Err(corrupt(0, "vfat: volume shorter than a boot sector")),
    };
    let mut map = RangeSet::new();
    map.insert(0, g.data_start);
    let end = g.clusters + 2;
    // FAT12 entries straddle bytes: read it whole (at most 6 KiB).
    let chunk = if g.bits == 12 { end } else { CHUNK_ENTRIES };
    let mut first = 0;
    while first < end {
        let last = end.min(first + chunk);
        let lo = first * g.bits / 8;
        let len = (last * g.bits).div_ceil(8) - lo;
        let copies = (0..g.fats)
            .map(|i| read_vec(dev, g.fat_start + i * g.fat_bytes + lo, len as usize))
            .collect::<Result<Vec<_>>>()?;
        for n in first.max(2)..last {
            if copies.iter().any(|fat| g.entry(fat, first, n) != 0) {
                map.insert(g.cluster_offset(n), g.cluster);
            }
        }
        first = last;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// A FAT image: 512-byte sectors, 1 sector per cluster, 2 FATs, one
    /// reserved sector; `fat32` selects the FAT32 BPB. Entries `used` get an
    /// end-of-chain marker.
    fn image(clusters: u64, fat32: bool, used: &[u64], label: Option<&[u8; 11]>) -> Vec<u8> {
        let bits = if fat32 {
            32
        } else if clusters < 4085 {
            12
        } else {
            16
        };
        let fat_len = ((clusters + 2) * bits).div_ceil(8 * 512);
        let root = if fat32 { 0 } else { 32 };
        let total = 1 + 2 * fat_len + root + clusters;
        let mut d = vec![0u8; (total * 512) as usize];
        d[0] = 0xEB;
        d[3..11].copy_from_slice(b"mkfs.fat");
        d[0x0B..0x0D].copy_from_slice(&512u16.to_le_bytes());
        d[0x0D] = 1;
        d[0x0E] = 1;
        d[0x10] = 2;
        d[0x11..0x13].copy_from_slice(&((root * 16) as u16).to_le_bytes());
        d[0x15] = 0xF8;
        d[0x20..0x24].copy_from_slice(&(total as u32).to_le_bytes());
        let ext = if fat32 {
            d[0x24..0x28].copy_from_slice(&(fat_len as u32).to_le_bytes());
            d[0x2C] = 2;
            0x42
        } else {
            d[0x16..0x18].copy_from_slice(&(fat_len as u16).to_le_bytes());
            0x26
        };
        d[ext] = 0x29;
        d[ext + 1..ext + 5].copy_from_slice(&[0x0E, 0x83, 0x84, 0x63]);
        d[ext + 5..ext + 16].copy_from_slice(b"BOOTLABEL  ");
        let g = parse(&d).unwrap();
        for copy in 0..2 {
            let fat = (g.fat_start + copy * g.fat_bytes) as usize;
            d[fat..fat + 4].copy_from_slice(&[0xF8, 0xFF, 0xFF, 0x0F]);
            for &n in used.iter().chain(fat32.then_some(&2)) {
                let at = fat + (n * bits / 8) as usize;
                match bits {
                    12 => {
                        let v = le16(&d, at) | if n % 2 == 1 { 0xFFF0 } else { 0x0FFF };
                        d[at..at + 2].copy_from_slice(&v.to_le_bytes());
                    }
                    16 => d[at..at + 2].copy_from_slice(&[0xFF, 0xFF]),
                    _ => d[at..at + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0x0F]),
                }
            }
        }
        if let Some(l) = label {
            let dir = if fat32 {
                g.cluster_offset(2)
            } else {
                g.data_start - 32 * 512
            } as usize;
            d[dir..dir + 11].copy_from_slice(l);
            d[dir + 11] = 0x08;
        }
        d
    }

    fn used_clusters(d: &[u8]) -> u64 {
        let g = parse(d).unwrap();
        let map = used(&MemDisk(d.to_vec())).unwrap();
        (map.total() - g.data_start) / g.cluster
    }

    #[test]
    fn fat12_fat16_fat32() {
        for (clusters, fat32, bits) in [(1000, false, 12), (5000, false, 16), (3000, true, 32)] {
            let d = image(
                clusters,
                fat32,
                &[2, 3, 7, clusters + 1],
                Some(b"MY DISK    "),
            );
            assert_eq!(parse(&d).unwrap().bits, bits);
            let info = probe(&MemDisk(d.clone())).unwrap().unwrap();
            assert_eq!(info.label.as_deref(), Some("MY DISK"));
            assert_eq!(info.uuid.as_deref(), Some("6384-830E"));
            assert_eq!(info.size, Some(d.len() as u64));
            assert_eq!(used_clusters(&d), 4);
            let map = used(&MemDisk(d.clone())).unwrap();
            assert_eq!(
                map.iter().last().unwrap().1,
                d.len() as u64,
                "last cluster used"
            );
        }
    }

    #[test]
    fn second_fat_copy_counts_and_bad_clusters_are_used() {
        let mut d = image(5000, false, &[], None);
        let g = parse(&d).unwrap();
        let fat2 = (g.fat_start + g.fat_bytes) as usize;
        d[fat2 + 2 * 10..fat2 + 2 * 10 + 2].copy_from_slice(&0xFFF7u16.to_le_bytes());
        assert_eq!(used_clusters(&d), 1);
        assert_eq!(probe(&MemDisk(d)).unwrap().unwrap().label, None);
    }

    #[test]
    fn rejects_mbr_ntfs_and_garbage() {
        let mut mbr = vec![0u8; 4096];
        mbr[0x1BE..0x1CE].copy_from_slice(&[0x80, 0, 2, 0, 0x0C, 0, 0, 0, 0, 8, 0, 0, 0, 0, 1, 0]);
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert!(probe(&MemDisk(mbr.clone())).unwrap().is_none());
        // An MBR holding a stale BPB copy, but no FAT behind it.
        let fat = image(1000, false, &[], None);
        mbr[..0x5A].copy_from_slice(&fat[..0x5A]);
        mbr.resize(fat.len(), 0);
        assert!(probe(&MemDisk(mbr)).unwrap().is_none());
        for oem in [b"NTFS    ", b"EXFAT   "] {
            let mut other = fat.clone();
            other[3..11].copy_from_slice(oem);
            assert!(probe(&MemDisk(other)).unwrap().is_none());
        }
        assert!(probe(&MemDisk(vec![0xEB; 100])).unwrap().is_none());
        assert!(used(&MemDisk(vec![0; 100])).is_err());
    }

    #[test]
    fn truncated_and_inconsistent() {
        let d = image(5000, false, &[2], None);
        let g = parse(&d).unwrap();
        let short = MemDisk(d[..(g.fat_start + 100) as usize].to_vec());
        assert!(used(&short).is_err());
        let mut tiny_fat = d.clone();
        tiny_fat[0x16] = 1;
        let e = used(&MemDisk(tiny_fat)).unwrap_err().to_string();
        assert!(e.contains("can not map"), "{e}");
        let mut huge = d.clone();
        huge[0x20..0x24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(used(&MemDisk(huge)).is_err());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let base = image(1000, true, &[3], Some(b"X          "));
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            let mut d = base.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % 0x60) as usize;
                d[at] = (seed >> 32) as u8;
            }
            let dev = MemDisk(d);
            let _ = probe(&dev);
            let _ = used(&dev);
        }
    }
}
