//! Partition tables on a target: the old ones wiped before data is written
//! (an interrupted migration never looks like a disk that boots), the
//! planned one written after (gptman, mbrman).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use gptman::{GPTHeader, GPTPartitionEntry};
use mbrman::{CHS, LogicalPartition, MBR, MBRPartitionEntry};

use crate::layout::mbr::MbrKind;
use crate::plan::target::{BOOT_CODE_LEN, GptEntry, MbrEntry, TargetDisk, TargetTable};

/// Sectors of a GPT partition entry array of `entries` 128-byte entries.
pub fn gpt_array_sectors(entries: u32, ss: u64) -> u64 {
    (u64::from(entries) * 128).div_ceil(ss)
}

/// A GUID's text form to its on-disk (mixed-endian) bytes.
pub fn parse_guid(s: &str) -> Result<[u8; 16], String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    if groups != [8, 4, 4, 4, 12] {
        return Err(format!("{s:?} is not a GUID"));
    }
    let b = parse_hex(&hex).map_err(|e| format!("{s:?}: {e}"))?;
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g[8..16].copy_from_slice(&b[8..16]);
    Ok(g)
}

/// Hex text to bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("not hex at character {i}"))
        })
        .collect()
}

const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";

/// Before data: make the target's old partition tables unreadable, touching
/// only sectors the planned table owns (data of an earlier pass stays).
///
/// - GPT plan: sector 0, the primary header, and the header in the last
///   sector (the backup's place on this target).
/// - MBR plan: sector 0 (LBA 1.. is the front area the data pass writes),
///   and an old backup GPT header in the last sector when no planned
///   partition covers it.
/// - No table: nothing (the whole disk is data).
///
/// Returns what was wiped, for the events log.
pub fn wipe(f: &File, d: &TargetDisk, size: u64) -> std::io::Result<Vec<String>> {
    let ss = u64::from(d.sector_size);
    let mut done = Vec::new();
    if size < 2 * ss {
        return Ok(done);
    }
    let last = size / ss - 1;
    let zero = vec![0u8; ss as usize];
    let mut sector = vec![0u8; ss as usize];
    let mut wipe_if = |lba: u64, what: &str, test: &dyn Fn(&[u8]) -> bool| {
        f.read_exact_at(&mut sector, lba * ss)?;
        if test(&sector) {
            f.write_all_at(&zero, lba * ss)?;
            done.push(format!("{what} (LBA {lba})"));
        }
        std::io::Result::Ok(())
    };
    let mbr_sig = |b: &[u8]| b[510] == 0x55 && b[511] == 0xaa;
    let gpt_sig = |b: &[u8]| &b[..8] == GPT_SIGNATURE;
    match &d.table {
        TargetTable::None => {}
        TargetTable::Gpt { .. } => {
            wipe_if(0, "old MBR", &mbr_sig)?;
            wipe_if(1, "old GPT header", &gpt_sig)?;
            wipe_if(last, "old backup GPT header", &gpt_sig)?;
        }
        TargetTable::Mbr { partitions, .. } => {
            wipe_if(0, "old MBR", &mbr_sig)?;
            let covered = partitions
                .iter()
                .any(|p| p.start_lba <= last && last < p.start_lba + p.sectors);
            if !covered {
                wipe_if(last, "old backup GPT header", &gpt_sig)?;
            }
        }
    }
    if !done.is_empty() {
        f.sync_data()?;
    }
    Ok(done)
}

/// Write the planned table to `f` (its real size decides where a GPT's
/// backup goes). Returns a one-line description.
pub fn write(f: &mut File, d: &TargetDisk) -> Result<String, String> {
    let ss = u64::from(d.sector_size);
    let text = match &d.table {
        TargetTable::None => return Ok("no partition table (the disk is one volume)".into()),
        TargetTable::Gpt {
            disk_guid,
            entries,
            boot_code,
            partitions,
        } => write_gpt(f, ss, disk_guid, *entries, boot_code, partitions)?,
        TargetTable::Mbr {
            boot_code,
            disk_signature,
            partitions,
        } => write_mbr(f, d.sector_size, boot_code, *disk_signature, partitions)?,
    };
    f.sync_all()
        .map_err(|e| format!("flushing the table: {e}"))?;
    Ok(text)
}

fn write_gpt(
    f: &mut File,
    ss: u64,
    disk_guid: &str,
    entries: u32,
    boot_code: &str,
    partitions: &[GptEntry],
) -> Result<String, String> {
    let gerr = |e: gptman::Error| format!("writing the GPT: {e}");
    let mut header = GPTHeader::new_from(f, ss, parse_guid(disk_guid)?).map_err(gerr)?;
    header.number_of_partition_entries = entries;
    header.update_from(f, ss).map_err(gerr)?;
    let mut array = vec![GPTPartitionEntry::empty(); entries as usize];
    for p in partitions {
        array[p.number as usize - 1] = GPTPartitionEntry {
            partition_type_guid: parse_guid(&p.type_guid)?,
            unique_partition_guid: parse_guid(&p.unique_guid)?,
            starting_lba: p.start_lba,
            ending_lba: p.end_lba,
            attribute_bits: p.attributes,
            partition_name: p.name.as_str().into(),
        };
    }
    // The backup first (at the end), so that a crash in between leaves no
    // valid primary pointing at it.
    let mut backup = header.clone();
    backup.primary_lba = header.backup_lba;
    backup.backup_lba = header.primary_lba;
    backup.partition_entry_lba = header.last_usable_lba + 1;
    backup.write_into(f, ss, &array).map_err(gerr)?;
    header.write_into(f, ss, &array).map_err(gerr)?;
    // Sector 0: the source's boot code, then a protective MBR.
    let code = parse_hex(boot_code)?;
    let mut sector0 = vec![0u8; 446];
    sector0[..BOOT_CODE_LEN].copy_from_slice(&code[..BOOT_CODE_LEN]);
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(&sector0))
        .map_err(|e| format!("writing sector 0: {e}"))?;
    gptman::GPT::write_protective_mbr_into(f, ss).map_err(gerr)?;
    Ok(format!(
        "write GPT: {} partition(s), {entries} entries, usable LBA {}..={}, backup header at LBA {}",
        partitions.len(),
        header.first_usable_lba,
        header.last_usable_lba,
        header.backup_lba
    ))
}

/// CHS for an LBA in the usual 255-head, 63-sector geometry; past 1023
/// cylinders the conventional maximum.
fn chs(lba: u64) -> CHS {
    let (heads, secs) = (255u64, 63u64);
    let c = lba / (heads * secs);
    if c > 1023 {
        return CHS::new(1023, 254, 63);
    }
    CHS::new(
        c as u16,
        ((lba / secs) % heads) as u8,
        (lba % secs + 1) as u8,
    )
}

fn mbr_entry(p: &MbrEntry) -> MBRPartitionEntry {
    MBRPartitionEntry {
        boot: if p.bootable { 0x80 } else { 0x00 },
        first_chs: chs(p.start_lba),
        sys: p.type_byte,
        last_chs: chs(p.start_lba + p.sectors - 1),
        // Checked against u32 by validate.
        starting_lba: p.start_lba as u32,
        sectors: p.sectors as u32,
    }
}

fn write_mbr(
    f: &mut File,
    ss: u32,
    boot_code: &str,
    signature: u32,
    partitions: &[MbrEntry],
) -> Result<String, String> {
    let merr = |e: mbrman::Error| format!("writing the MBR: {e}");
    let mut mbr = MBR::new_from(f, ss, signature.to_le_bytes()).map_err(merr)?;
    let code = parse_hex(boot_code)?;
    mbr.header
        .bootstrap_code
        .copy_from_slice(&code[..BOOT_CODE_LEN]);
    let mut logicals: Vec<&MbrEntry> = Vec::new();
    for p in partitions {
        match p.kind {
            MbrKind::Logical => logicals.push(p),
            _ => mbr.header[p.number as usize] = mbr_entry(p),
        }
    }
    logicals.sort_by_key(|p| p.number);
    for p in &logicals {
        let ebr = p.ebr_lba.unwrap_or(p.start_lba - 1);
        let end = p.start_lba + p.sectors;
        mbr.logical_partitions.push(LogicalPartition {
            partition: mbr_entry(p),
            absolute_ebr_lba: ebr as u32,
            ebr_sectors: Some((end - ebr) as u32),
            ebr_first_chs: chs(ebr),
            ebr_last_chs: Some(chs(end - 1)),
            bootstrap_code: [0; 446],
        });
    }
    mbr.write_into(f).map_err(merr)?;
    // Sector 0 of a 4096-byte-sector disk: the rest of the sector is zero
    // (wipe cleared it), nothing to do.
    let mut check = [0u8; 512];
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_exact(&mut check))
        .map_err(|e| format!("reading sector 0 back: {e}"))?;
    if check[510..512] != [0x55, 0xaa] {
        return Err("sector 0 has no MBR signature after writing it".into());
    }
    Ok(format!(
        "write MBR: {} primary/extended, {} logical partition(s), disk signature {signature:08x}",
        partitions.len() - logicals.len(),
        logicals.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::bytes::guid_mixed;

    #[test]
    fn guid_round_trip() {
        let text = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
        let g = parse_guid(text).unwrap();
        assert_eq!(guid_mixed(&g), text);
        assert!(parse_guid("0FC63DAF-8483-4772-8E793D69D8477DE4").is_err());
        assert!(parse_guid("0FC63DAF-8483-4772-8E79-3D69D8477DZ4").is_err());
    }

    #[test]
    fn chs_of_small_and_large_lbas() {
        assert_eq!(chs(2048), CHS::new(0, 32, 33));
        assert_eq!(chs(1 << 40), CHS::new(1023, 254, 63));
    }
}
