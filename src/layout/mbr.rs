//! MBR partition tables, read with mbrman: the four primary entries and the
//! extended partition's chain of EBRs (logical partitions 5+).
//!
//! The EBR chain is walked here rather than by `mbrman::MBR::read_from` so that
//! every step is bounds-checked with checked arithmetic, a loop or an EBR outside
//! the extended partition is a clear error naming its byte offset, and the
//! number of logical partitions is bounded.

use std::collections::HashSet;

use mbrman::{MBRHeader, MBRPartitionEntry};
use serde::Serialize;

use super::{Result, corrupt, read_vec};
use crate::disk::{Cursor, MemDisk, ReadAt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MbrKind {
    Primary,
    Extended,
    Logical,
}

#[derive(Debug, Clone, Serialize)]
pub struct MbrPartition {
    pub number: u32,
    pub kind: MbrKind,
    pub start_lba: u64,
    pub sectors: u64,
    pub type_byte: u8,
    pub type_name: &'static str,
    pub bootable: bool,
    /// LBA of the EBR describing a logical partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebr_lba: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MbrTable {
    /// Disk identifier as `0x%08x`, the way `sfdisk` prints it.
    pub disk_signature: String,
    pub sector_size: u32,
    pub partitions: Vec<MbrPartition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The most logical partitions we accept before calling a chain hostile.
pub const MAX_LOGICAL: usize = 256;

pub fn type_name(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 => "FAT16 <32M",
        0x05 => "Extended",
        0x06 => "FAT16",
        0x07 => "HPFS/NTFS/exFAT",
        0x0b => "W95 FAT32",
        0x0c => "W95 FAT32 (LBA)",
        0x0e => "W95 FAT16 (LBA)",
        0x0f => "W95 extended (LBA)",
        0x11 => "Hidden FAT12",
        0x12 => "Compaq diagnostics",
        0x17 => "Hidden HPFS/NTFS",
        0x1b => "Hidden W95 FAT32",
        0x1c => "Hidden W95 FAT32 (LBA)",
        0x27 => "Hidden NTFS WinRE",
        0x42 => "SFS / Windows LDM",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x85 => "Linux extended",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xa6 => "OpenBSD",
        0xa8 => "Darwin UFS",
        0xa9 => "NetBSD",
        0xaf => "HFS / HFS+",
        0xbe => "Solaris boot",
        0xbf => "Solaris",
        0xda => "Non-FS data",
        0xde => "Dell Utility",
        0xee => "GPT protective",
        0xef => "EFI (FAT-12/16/32)",
        0xfb => "VMware VMFS",
        0xfc => "VMware VMKCORE",
        0xfd => "Linux raid autodetect",
        _ => "unknown",
    }
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0f | 0x85)
}

/// Parse one 512-byte boot record (MBR or EBR) with mbrman.
fn parse_record(dev: &dyn ReadAt, offset: u64, what: &str) -> Result<MBRHeader> {
    let sector = MemDisk(read_vec(dev, offset, 512)?);
    MBRHeader::read_from(&mut Cursor::new(&sector))
        .map_err(|e| corrupt(offset, format!("{what}: {e}")))
}

fn entries(h: &MBRHeader) -> [&MBRPartitionEntry; 4] {
    [
        &h.partition_1,
        &h.partition_2,
        &h.partition_3,
        &h.partition_4,
    ]
}

/// Whether sector 0 looks like an MBR partition table: the 0x55AA signature,
/// valid boot flags and at least one used entry. (Callers rule out a
/// filesystem boot sector first; FAT and NTFS carry the same signature.)
pub fn looks_like_mbr(dev: &dyn ReadAt) -> Result<bool> {
    if dev.size() < 512 {
        return Ok(false);
    }
    let s = read_vec(dev, 0, 512)?;
    if s[510..512] != [0x55, 0xAA] {
        return Ok(false);
    }
    let flags_ok = (0..4).all(|i| matches!(s[446 + i * 16], 0x00 | 0x80));
    let used = (0..4).any(|i| s[446 + i * 16 + 4] != 0);
    Ok(flags_ok && used)
}

/// Read the MBR table of `dev` with logical sector size `ss`.
pub fn read(dev: &dyn ReadAt, ss: u32) -> Result<MbrTable> {
    let ssz = ss as u64;
    let total = dev.size() / ssz;
    let header = parse_record(dev, 0, "MBR")?;
    let mut partitions = Vec::new();
    let mut warnings = Vec::new();
    let mut extended = None;
    for (i, e) in entries(&header).into_iter().enumerate() {
        if e.is_unused() {
            continue;
        }
        let number = i as u32 + 1;
        let entry_off = 446 + i as u64 * 16;
        let (start, sectors) = (e.starting_lba as u64, e.sectors as u64);
        if start == 0 || sectors == 0 {
            return Err(corrupt(
                entry_off,
                format!("MBR partition {number}: start {start}, {sectors} sectors"),
            ));
        }
        if start + sectors > total {
            return Err(corrupt(
                entry_off,
                format!(
                    "MBR partition {number} ends at byte {} past the end of the disk ({} bytes): truncated image?",
                    (start + sectors) * ssz,
                    dev.size()
                ),
            ));
        }
        let kind = if is_extended(e.sys) {
            if extended.is_some() {
                return Err(corrupt(
                    entry_off,
                    "MBR has more than one extended partition",
                ));
            }
            extended = Some((start, sectors));
            MbrKind::Extended
        } else {
            MbrKind::Primary
        };
        partitions.push(MbrPartition {
            number,
            kind,
            start_lba: start,
            sectors,
            type_byte: e.sys,
            type_name: type_name(e.sys),
            bootable: e.boot == 0x80,
            ebr_lba: None,
        });
    }
    if let Some((ext_start, ext_sectors)) = extended {
        read_logicals(
            dev,
            ssz,
            ext_start,
            ext_sectors,
            &mut partitions,
            &mut warnings,
        )?;
    }
    let mut sorted: Vec<&MbrPartition> = partitions
        .iter()
        .filter(|p| p.kind != MbrKind::Extended)
        .collect();
    sorted.sort_by_key(|p| p.start_lba);
    for w in sorted.windows(2) {
        if w[1].start_lba < w[0].start_lba + w[0].sectors {
            warnings.push(format!(
                "MBR partitions {} and {} overlap",
                w[0].number, w[1].number
            ));
        }
    }
    Ok(MbrTable {
        disk_signature: format!("0x{:08x}", u32::from_le_bytes(header.disk_signature)),
        sector_size: ss,
        partitions,
        warnings,
    })
}

fn read_logicals(
    dev: &dyn ReadAt,
    ssz: u64,
    ext_start: u64,
    ext_sectors: u64,
    partitions: &mut Vec<MbrPartition>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let ext_end = ext_start + ext_sectors;
    let mut seen = HashSet::new();
    let mut ebr = ext_start;
    let mut number = 5u32;
    loop {
        let offset = ebr * ssz;
        if !seen.insert(ebr) {
            return Err(corrupt(
                offset,
                format!("EBR chain loops back to LBA {ebr}"),
            ));
        }
        if seen.len() > MAX_LOGICAL {
            return Err(corrupt(
                offset,
                format!("EBR chain is longer than {MAX_LOGICAL} entries"),
            ));
        }
        let rec = match parse_record(dev, offset, &format!("EBR at LBA {ebr}")) {
            Ok(r) => r,
            // An extended partition may be empty: no EBR at its start.
            Err(_) if ebr == ext_start && read_vec(dev, offset, 512)?[510..] != [0x55, 0xAA] => {
                warnings.push(format!(
                    "extended partition at LBA {ext_start} holds no EBR"
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let [this, next, ..] = entries(&rec);
        if this.is_used() {
            let start = ebr.checked_add(this.starting_lba as u64);
            let end = start.and_then(|s| s.checked_add(this.sectors as u64));
            match (start, end) {
                (Some(s), Some(e)) if s > ebr && e <= ext_end && this.sectors > 0 => {
                    partitions.push(MbrPartition {
                        number,
                        kind: MbrKind::Logical,
                        start_lba: s,
                        sectors: this.sectors as u64,
                        type_byte: this.sys,
                        type_name: type_name(this.sys),
                        bootable: this.boot == 0x80,
                        ebr_lba: Some(ebr),
                    });
                    number += 1;
                }
                _ => {
                    return Err(corrupt(
                        offset + 446,
                        format!(
                            "logical partition {number} (EBR at LBA {ebr}: start +{}, {} sectors) lies outside the extended partition (LBA {ext_start}..{ext_end})",
                            this.starting_lba, this.sectors
                        ),
                    ));
                }
            }
        }
        if next.is_unused() || next.starting_lba == 0 {
            return Ok(());
        }
        if !is_extended(next.sys) {
            warnings.push(format!(
                "EBR at LBA {ebr}: link entry has type {:#04x}, not extended",
                next.sys
            ));
        }
        let target = ext_start + next.starting_lba as u64;
        if target >= ext_end {
            return Err(corrupt(
                offset + 462,
                format!(
                    "EBR at LBA {ebr} links to LBA {target}, outside the extended partition (LBA {ext_start}..{ext_end})"
                ),
            ));
        }
        ebr = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(d: &mut [u8], sector: usize, slot: usize, boot: u8, t: u8, start: u32, len: u32) {
        let o = sector * 512 + 446 + slot * 16;
        d[o] = boot;
        d[o + 4] = t;
        d[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
        d[o + 12..o + 16].copy_from_slice(&len.to_le_bytes());
        d[sector * 512 + 510] = 0x55;
        d[sector * 512 + 511] = 0xAA;
    }

    /// MBR: p1 primary, p2 extended at 100..400 with logicals at EBRs 100 and 200.
    fn sample() -> Vec<u8> {
        let mut d = vec![0u8; 512 * 512];
        d[440..444].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        entry(&mut d, 0, 0, 0x80, 0x83, 2048 / 512 * 4, 90);
        entry(&mut d, 0, 1, 0, 0x05, 100, 300);
        entry(&mut d, 100, 0, 0, 0x83, 1, 50);
        entry(&mut d, 100, 1, 0, 0x05, 100, 101);
        entry(&mut d, 200, 0, 0, 0x82, 1, 60);
        d
    }

    #[test]
    fn primaries_and_logicals() {
        let d = MemDisk(sample());
        assert!(looks_like_mbr(&d).unwrap());
        let t = read(&d, 512).unwrap();
        assert_eq!(t.disk_signature, "0xdeadbeef");
        let summary: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.kind, p.start_lba, p.sectors))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, MbrKind::Primary, 16, 90),
                (2, MbrKind::Extended, 100, 300),
                (5, MbrKind::Logical, 101, 50),
                (6, MbrKind::Logical, 201, 60),
            ]
        );
        assert!(t.partitions[0].bootable);
        assert_eq!(t.partitions[3].type_name, "Linux swap");
        assert_eq!(t.partitions[3].ebr_lba, Some(200));
    }

    #[test]
    fn ebr_loop_is_an_error() {
        let mut d = sample();
        entry(&mut d, 200, 1, 0, 0x05, 100, 101); // second EBR links to itself
        let e = read(&MemDisk(d), 512).unwrap_err().to_string();
        assert!(e.contains("loops back to LBA 200"), "{e}");
    }

    #[test]
    fn ebr_out_of_range_is_an_error() {
        let mut d = sample();
        entry(&mut d, 200, 1, 0, 0x05, 5000, 10);
        let e = read(&MemDisk(d), 512).unwrap_err().to_string();
        assert!(e.contains("outside the extended partition"), "{e}");
        let mut d = sample();
        entry(&mut d, 200, 0, 0, 0x83, 1, 500);
        assert!(read(&MemDisk(d), 512).is_err());
    }

    #[test]
    fn truncated_is_an_error() {
        let d = sample()[..300 * 512].to_vec();
        let e = read(&MemDisk(d), 512).unwrap_err().to_string();
        assert!(e.contains("past the end of the disk"), "{e}");
    }

    #[test]
    fn not_a_table() {
        assert!(!looks_like_mbr(&MemDisk(vec![0; 4096])).unwrap());
        let mut d = sample();
        d[446] = 0x12; // invalid boot flag
        assert!(!looks_like_mbr(&MemDisk(d)).unwrap());
    }
}
