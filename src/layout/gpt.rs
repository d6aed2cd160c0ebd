//! GPT, read with gptman: header (primary, or the backup with a warning),
//! partition entries, and the MBR in front of it (protective or hybrid).
//!
//! Header fields are sanity-checked before gptman reads the entry array, so a
//! header with a valid CRC but absurd sizes is an error, not a huge allocation.

use gptman::{GPTHeader, GPTPartitionEntry};
use serde::Serialize;

use super::bytes::guid_mixed;
use super::{Result, corrupt, read_vec};
use crate::disk::{Cursor, ReadAt};

/// Which header the table was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderSource {
    Primary,
    Backup,
}

/// What sector 0 holds in front of a GPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectiveMbr {
    /// One 0xEE entry, the rest empty.
    Protective,
    /// A 0xEE entry plus MBR entries mirroring GPT partitions.
    Hybrid,
    /// No MBR signature or no 0xEE entry.
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct GptPartition {
    pub number: u32,
    pub start_lba: u64,
    pub end_lba: u64,
    pub type_guid: String,
    pub type_name: &'static str,
    pub name: String,
    pub unique_guid: String,
    pub attributes: u64,
    pub attribute_names: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GptTable {
    pub disk_guid: String,
    pub sector_size: u32,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    pub entries: u32,
    pub header: HeaderSource,
    pub protective_mbr: ProtectiveMbr,
    pub partitions: Vec<GptPartition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// GPT partition type GUIDs and their names.
const TYPES: &[(&str, &str)] = &[
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI system"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    (
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux root (x86-64)",
    ),
    ("44479540-F297-41B2-9AF7-D131D5F0458A", "Linux root (x86)"),
    ("B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "Linux root (ARM64)"),
    (
        "8484680C-9521-48C6-9C11-B0720656F69E",
        "Linux /usr (x86-64)",
    ),
    (
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "Linux extended boot",
    ),
    ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux /home"),
    ("3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "Linux /srv"),
    ("4D21B016-B534-45C2-A9FB-5C16E091FD2D", "Linux /var"),
    ("7EC6F557-3BC5-4ACA-B293-16EF5DF639D1", "Linux /var/tmp"),
    ("8DA63339-0007-60C0-C436-083AC8230908", "Linux reserved"),
    (
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
    ("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "Windows recovery"),
    (
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3",
        "Windows LDM metadata",
    ),
    ("AF9B60A0-1431-4F62-BC68-3311714A69AD", "Windows LDM data"),
    ("9E1A2D38-C612-4316-AA26-8B49521E5A8B", "PowerPC PReP boot"),
    (
        "6A898CC3-1DD2-11B2-99A6-080020736631",
        "Solaris /usr or Apple ZFS",
    ),
    ("516E7CB4-6ECF-11D6-8FF8-00022D09712B", "FreeBSD data"),
    ("516E7CB5-6ECF-11D6-8FF8-00022D09712B", "FreeBSD swap"),
    ("516E7CBA-6ECF-11D6-8FF8-00022D09712B", "FreeBSD ZFS"),
    ("48465300-0000-11AA-AA11-00306543ECAC", "Apple HFS+"),
    ("7C3457EF-0000-11AA-AA11-00306543ECAC", "Apple APFS"),
    (
        "024DEE41-33E7-11D3-9D69-0008C781F39F",
        "MBR partition scheme",
    ),
    ("D3BFE2DE-3DAF-11DF-BA40-E3A556D89593", "Intel Fast Flash"),
];

/// Friendly name of a GPT type GUID (uppercase text form).
pub fn type_name(guid: &str) -> &'static str {
    TYPES
        .iter()
        .find(|(g, _)| g.eq_ignore_ascii_case(guid))
        .map_or("unknown", |(_, n)| n)
}

fn attribute_names(bits: u64) -> Vec<&'static str> {
    const NAMES: &[(u32, &str)] = &[
        (0, "required"),
        (1, "no-block-io"),
        (2, "legacy-bios-bootable"),
        (60, "read-only"),
        (61, "shadow-copy"),
        (62, "hidden"),
        (63, "no-automount"),
    ];
    NAMES
        .iter()
        .filter(|(b, _)| bits & (1u64 << b) != 0)
        .map(|(_, n)| *n)
        .collect()
}

const MAX_ENTRIES: u32 = 4096;

/// A header with its entries, or why that header is unusable.
type Found = std::result::Result<(GPTHeader, Vec<GPTPartitionEntry>), String>;

/// Read one header at `lba` and its entry array; `Ok(None)` when there is no
/// "EFI PART" signature there.
fn read_at(dev: &dyn ReadAt, ss: u64, lba: u64) -> Result<Option<Found>> {
    let offset = lba * ss;
    if offset + ss > dev.size() {
        return Ok(None);
    }
    let sector = read_vec(dev, offset, 92)?;
    if &sector[..8] != b"EFI PART" {
        return Ok(None);
    }
    let mut cur = Cursor::new(dev);
    use std::io::Seek;
    cur.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| corrupt(offset, e.to_string()))?;
    let header = match GPTHeader::read_from(&mut cur) {
        Ok(h) => h,
        Err(e) => return Ok(Some(Err(format!("GPT header at LBA {lba}: {e}")))),
    };
    let n = header.number_of_partition_entries;
    let esz = header.size_of_partition_entry;
    if n == 0 || n > MAX_ENTRIES || !(128..=4096).contains(&esz) || !esz.is_power_of_two() {
        return Ok(Some(Err(format!(
            "GPT header at LBA {lba}: {n} entries of {esz} bytes is not a sane table"
        ))));
    }
    let array_end = header
        .partition_entry_lba
        .checked_mul(ss)
        .and_then(|s| s.checked_add(n as u64 * esz as u64));
    if array_end.is_none_or(|e| e > dev.size()) {
        return Ok(Some(Err(format!(
            "GPT header at LBA {lba}: entry array at LBA {} runs past the end of the disk",
            header.partition_entry_lba
        ))));
    }
    match header.read_partitions(&mut cur, ss) {
        Ok(parts) => Ok(Some(Ok((header, parts)))),
        Err(e) => Ok(Some(Err(format!(
            "GPT entries of header at LBA {lba}: {e}"
        )))),
    }
}

fn classify_mbr(dev: &dyn ReadAt) -> Result<ProtectiveMbr> {
    let s = read_vec(dev, 0, 512)?;
    if s[510..512] != [0x55, 0xAA] {
        return Ok(ProtectiveMbr::Missing);
    }
    let types: Vec<u8> = (0..4).map(|i| s[446 + i * 16 + 4]).collect();
    if !types.contains(&0xEE) {
        return Ok(ProtectiveMbr::Missing);
    }
    if types.iter().filter(|&&t| t != 0 && t != 0xEE).count() > 0 {
        Ok(ProtectiveMbr::Hybrid)
    } else {
        Ok(ProtectiveMbr::Protective)
    }
}

/// Whether sector 0 is a protective (or hybrid) MBR.
pub fn has_protective_mbr(dev: &dyn ReadAt) -> Result<bool> {
    if dev.size() < 512 {
        return Ok(false);
    }
    Ok(classify_mbr(dev)? != ProtectiveMbr::Missing)
}

/// Read the GPT of `dev`. `sector_size` is the device's logical sector size when
/// the kernel told us; for image files pass `None` and 512 then 4096 are tried.
/// `Ok(None)` when there is no GPT signature at either header location.
pub fn read(dev: &dyn ReadAt, sector_size: Option<u32>) -> Result<Option<GptTable>> {
    let sizes: &[u64] = match sector_size {
        Some(512) => &[512],
        Some(4096) => &[4096],
        Some(other) => {
            return Err(corrupt(
                0,
                format!("unsupported logical sector size {other}"),
            ));
        }
        None => &[512, 4096],
    };
    let mut problems = Vec::new();
    for &ss in sizes {
        let total = dev.size() / ss;
        if total < 3 {
            continue;
        }
        let primary = read_at(dev, ss, 1)?;
        let (found, header_source) = match primary {
            Some(Ok(p)) => (Some(p), HeaderSource::Primary),
            other => {
                // Primary missing or damaged: try the backup at the last LBA.
                if let Some(Err(e)) = other {
                    problems.push(e);
                }
                match read_at(dev, ss, total - 1)? {
                    Some(Ok(b)) => (Some(b), HeaderSource::Backup),
                    Some(Err(e)) => {
                        problems.push(e);
                        (None, HeaderSource::Backup)
                    }
                    None => (None, HeaderSource::Backup),
                }
            }
        };
        let Some((header, entries)) = found else {
            continue;
        };
        let mut warnings = Vec::new();
        if header_source == HeaderSource::Backup {
            warnings.push(format!(
                "primary GPT header at byte {ss} is damaged or missing; using the backup at byte {}",
                (total - 1) * ss
            ));
        }
        return build(dev, ss, header, entries, header_source, warnings).map(Some);
    }
    if !problems.is_empty() {
        return Err(corrupt(
            512,
            format!("both GPT headers are damaged: {}", problems.join("; ")),
        ));
    }
    if has_protective_mbr(dev)? {
        return Err(corrupt(
            512,
            "protective MBR found but no GPT header at either end of the disk",
        ));
    }
    Ok(None)
}

fn build(
    dev: &dyn ReadAt,
    ss: u64,
    header: GPTHeader,
    entries: Vec<GPTPartitionEntry>,
    header_source: HeaderSource,
    mut warnings: Vec<String>,
) -> Result<GptTable> {
    let total = dev.size() / ss;
    let mut partitions = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.is_unused() {
            continue;
        }
        let number = i as u32 + 1;
        let entry_offset =
            header.partition_entry_lba * ss + i as u64 * header.size_of_partition_entry as u64;
        if e.ending_lba < e.starting_lba {
            return Err(corrupt(
                entry_offset,
                format!(
                    "GPT partition {number}: ends (LBA {}) before it starts (LBA {})",
                    e.ending_lba, e.starting_lba
                ),
            ));
        }
        if e.ending_lba >= total {
            return Err(corrupt(
                entry_offset,
                format!(
                    "GPT partition {number} ends at byte {} past the end of the disk ({} bytes): truncated image?",
                    (e.ending_lba + 1).saturating_mul(ss),
                    dev.size()
                ),
            ));
        }
        if e.starting_lba < header.first_usable_lba || e.ending_lba > header.last_usable_lba {
            warnings.push(format!(
                "GPT partition {number} (LBA {}..{}) lies outside the usable area (LBA {}..{})",
                e.starting_lba, e.ending_lba, header.first_usable_lba, header.last_usable_lba
            ));
        }
        let type_guid = guid_mixed(&e.partition_type_guid);
        partitions.push(GptPartition {
            number,
            start_lba: e.starting_lba,
            end_lba: e.ending_lba,
            type_name: type_name(&type_guid),
            type_guid,
            name: e.partition_name.as_str().to_string(),
            unique_guid: guid_mixed(&e.unique_partition_guid),
            attributes: e.attribute_bits,
            attribute_names: attribute_names(e.attribute_bits),
        });
    }
    let mut sorted: Vec<&GptPartition> = partitions.iter().collect();
    sorted.sort_by_key(|p| p.start_lba);
    for w in sorted.windows(2) {
        if w[1].start_lba <= w[0].end_lba {
            return Err(corrupt(
                header.partition_entry_lba * ss,
                format!("GPT partitions {} and {} overlap", w[0].number, w[1].number),
            ));
        }
    }
    Ok(GptTable {
        disk_guid: guid_mixed(&header.disk_guid),
        sector_size: ss as u32,
        first_usable_lba: header.first_usable_lba,
        last_usable_lba: header.last_usable_lba,
        entries: header.number_of_partition_entries,
        header: header_source,
        protective_mbr: classify_mbr(dev)?,
        partitions,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// A GPT written by gptman itself on an in-memory disk.
    fn make(ss: u64, sectors: u64) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(vec![0u8; (ss * sectors) as usize]);
        let mut gpt = gptman::GPT::new_from(&mut cur, ss, [7; 16]).unwrap();
        let esp = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        let first = gpt.header.first_usable_lba.next_multiple_of(8);
        gpt[1] = GPTPartitionEntry {
            partition_type_guid: esp,
            unique_partition_guid: [1; 16],
            starting_lba: first,
            ending_lba: first + 15,
            attribute_bits: 1 | (1 << 62),
            partition_name: "esp".into(),
        };
        gpt[3] = GPTPartitionEntry {
            partition_type_guid: [9; 16],
            unique_partition_guid: [2; 16],
            starting_lba: first + 16,
            ending_lba: first + 31,
            attribute_bits: 0,
            partition_name: "data".into(),
        };
        gpt.write_into(&mut cur).unwrap();
        gptman::GPT::write_protective_mbr_into(&mut cur, ss).unwrap();
        cur.into_inner()
    }

    #[test]
    fn reads_512_and_4096() {
        for ss in [512u64, 4096] {
            let t = read(&MemDisk(make(ss, 256)), None).unwrap().unwrap();
            assert_eq!(t.sector_size as u64, ss);
            assert_eq!(t.header, HeaderSource::Primary);
            assert_eq!(t.protective_mbr, ProtectiveMbr::Protective);
            assert_eq!(t.partitions.len(), 2);
            assert_eq!(t.partitions[0].type_name, "EFI system");
            assert_eq!(t.partitions[0].name, "esp");
            assert_eq!(t.partitions[0].attribute_names, vec!["required", "hidden"]);
            assert_eq!(t.partitions[1].number, 3);
            assert_eq!(t.partitions[1].type_name, "unknown");
            assert_eq!(t.disk_guid, "07070707-0707-0707-0707-070707070707");
            assert!(t.warnings.is_empty());
        }
    }

    #[test]
    fn damaged_primary_uses_backup() {
        let mut d = make(512, 256);
        d[512 + 20] ^= 0xff; // break the primary header CRC
        let t = read(&MemDisk(d.clone()), None).unwrap().unwrap();
        assert_eq!(t.header, HeaderSource::Backup);
        assert_eq!(t.partitions.len(), 2);
        assert!(t.warnings[0].contains("primary GPT header"));
        // Zeroed primary, too.
        d[512..1024].fill(0);
        assert_eq!(
            read(&MemDisk(d), None).unwrap().unwrap().header,
            HeaderSource::Backup
        );
    }

    #[test]
    fn both_damaged_is_an_error() {
        let mut d = make(512, 256);
        d[512 + 20] ^= 0xff;
        let last = d.len() - 512;
        d[last + 20] ^= 0xff;
        let e = read(&MemDisk(d), None).unwrap_err().to_string();
        assert!(e.contains("both GPT headers are damaged"), "{e}");
    }

    #[test]
    fn hybrid_and_no_gpt() {
        let mut d = make(512, 256);
        d[446 + 16 + 4] = 0x83;
        d[446 + 16 + 8] = 40;
        assert_eq!(
            read(&MemDisk(d), None).unwrap().unwrap().protective_mbr,
            ProtectiveMbr::Hybrid
        );
        assert!(read(&MemDisk(vec![0; 1 << 16]), None).unwrap().is_none());
    }

    #[test]
    fn truncated_disk_is_an_error() {
        let d = make(512, 256);
        // Keep the primary but cut the disk inside partition 3.
        let cut = d[..(40 * 512)].to_vec();
        let e = read(&MemDisk(cut), None).unwrap_err().to_string();
        assert!(e.contains("past the end of the disk"), "{e}");
    }

    #[test]
    fn hostile_entry_count_is_refused() {
        let mut d = make(512, 256);
        // 2^31 entries with a recomputed header CRC.
        d[512 + 80..512 + 84].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        d[512 + 16..512 + 20].fill(0);
        let crc = !crate::layout::crc::crc32_raw(!0, &d[512..512 + 92]);
        d[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        let t = read(&MemDisk(d), None).unwrap().unwrap();
        assert_eq!(
            t.header,
            HeaderSource::Backup,
            "the insane primary falls back to the backup"
        );
    }
}
