//! The receiver's checks of a [`TargetDisk`] before anything is written:
//! every LBA inside the target, no overlap, numbers and GUIDs well formed,
//! and every step's place in the table.

use std::collections::BTreeSet;

use super::table::{gpt_array_sectors, parse_guid, parse_hex};
use crate::layout::mbr::MbrKind;
use crate::plan::target::{BOOT_CODE_LEN, MbrEntry, Place, Step, TargetDisk, TargetTable};

/// GPT entry arrays larger than this are refused (the usual is 128).
const MAX_GPT_ENTRIES: u32 = 1024;

impl TargetDisk {
    /// Whether this plan fits a target of `size` bytes; the error says which
    /// field is wrong and why.
    pub fn validate(&self, size: u64) -> Result<(), String> {
        let ss = u64::from(self.sector_size);
        if !matches!(ss, 512 | 1024 | 2048 | 4096) {
            return Err(format!("sector size {ss} is not 512, 1024, 2048 or 4096"));
        }
        if size < self.min_size {
            return Err(format!(
                "the target has {size} bytes ({}); the plan needs at least {} bytes ({})",
                crate::units::human(size),
                self.min_size,
                crate::units::human(self.min_size)
            ));
        }
        let sectors = size / ss;
        let mut numbers = BTreeSet::new();
        match &self.table {
            TargetTable::None => {}
            TargetTable::Gpt {
                disk_guid,
                entries,
                boot_code,
                partitions,
            } => {
                parse_guid(disk_guid).map_err(|e| format!("disk GUID: {e}"))?;
                check_boot_code(boot_code)?;
                if *entries == 0 || *entries > MAX_GPT_ENTRIES {
                    return Err(format!(
                        "GPT entries: {entries} is not between 1 and {MAX_GPT_ENTRIES}"
                    ));
                }
                let array = gpt_array_sectors(*entries, ss);
                let first = 2 + array;
                let last = sectors.saturating_sub(2 + array);
                if last <= first {
                    return Err(format!("a GPT does not fit {size} bytes"));
                }
                let mut spans = Vec::new();
                for p in partitions {
                    let what = format!("GPT partition {}", p.number);
                    if p.number == 0 || p.number > *entries {
                        return Err(format!("{what}: number outside 1..={entries}"));
                    }
                    if !numbers.insert(p.number) {
                        return Err(format!("{what}: listed twice"));
                    }
                    if p.start_lba < first || p.end_lba > last || p.start_lba > p.end_lba {
                        return Err(format!(
                            "{what}: LBA {}..={} is outside the usable area {first}..={last} of a {size}-byte target",
                            p.start_lba, p.end_lba
                        ));
                    }
                    let t = parse_guid(&p.type_guid).map_err(|e| format!("{what}: type: {e}"))?;
                    if t == [0; 16] {
                        return Err(format!("{what}: the type GUID is zero (an unused entry)"));
                    }
                    parse_guid(&p.unique_guid).map_err(|e| format!("{what}: unique GUID: {e}"))?;
                    if p.name.encode_utf16().count() > 36 {
                        return Err(format!("{what}: the name is longer than 36 UTF-16 units"));
                    }
                    spans.push((p.start_lba, p.end_lba, what));
                }
                no_overlap(spans)?;
            }
            TargetTable::Mbr {
                boot_code,
                partitions,
                ..
            } => {
                check_boot_code(boot_code)?;
                check_mbr(partitions, sectors, &mut numbers)?;
            }
        }
        for s in &self.steps {
            let place = match s {
                Step::GrowExt { place }
                | Step::GrowXfs { place }
                | Step::GrowNtfs { place }
                | Step::Mkswap { place, .. }
                | Step::PvResize { place, .. } => place,
                Step::LvExtend { .. } => continue,
            };
            match place {
                Place::Partition { number } => {
                    let usable = match &self.table {
                        TargetTable::Mbr { partitions, .. } => partitions
                            .iter()
                            .any(|p| p.number == *number && p.kind != MbrKind::Extended),
                        TargetTable::Gpt { .. } => numbers.contains(number),
                        TargetTable::None => false,
                    };
                    if !usable {
                        return Err(format!(
                            "step `{}`: the table has no partition {number}",
                            s.describe()
                        ));
                    }
                }
                Place::Disk if !matches!(self.table, TargetTable::None) => {
                    return Err(format!(
                        "step `{}`: the whole disk is not a volume when it has a partition table",
                        s.describe()
                    ));
                }
                Place::Disk | Place::Lv { .. } => {}
            }
        }
        Ok(())
    }
}

fn check_boot_code(hex: &str) -> Result<(), String> {
    let b = parse_hex(hex).map_err(|e| format!("boot code: {e}"))?;
    if b.len() != BOOT_CODE_LEN {
        return Err(format!("boot code: {} bytes, not {BOOT_CODE_LEN}", b.len()));
    }
    Ok(())
}

fn no_overlap(mut spans: Vec<(u64, u64, String)>) -> Result<(), String> {
    spans.sort_by_key(|s| s.0);
    for w in spans.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(format!(
                "{} (LBA {}..={}) overlaps {} (from LBA {})",
                w[1].2, w[1].0, w[1].1, w[0].2, w[0].0
            ));
        }
    }
    Ok(())
}

fn check_mbr(
    partitions: &[MbrEntry],
    sectors: u64,
    numbers: &mut BTreeSet<u32>,
) -> Result<(), String> {
    let mut primaries = Vec::new();
    let mut logicals = Vec::new();
    let mut extended: Option<&MbrEntry> = None;
    for p in partitions {
        let what = format!("MBR partition {}", p.number);
        if !numbers.insert(p.number) {
            return Err(format!("{what}: listed twice"));
        }
        let end = p.start_lba.saturating_add(p.sectors);
        if p.start_lba == 0 || p.sectors == 0 || end > sectors {
            return Err(format!(
                "{what}: LBA {} + {} sectors is outside the target's sectors 1..{sectors}",
                p.start_lba, p.sectors
            ));
        }
        if p.start_lba > u64::from(u32::MAX) || p.sectors > u64::from(u32::MAX) {
            return Err(format!("{what}: past the 2 TiB limit of MBR fields"));
        }
        if p.type_byte == 0 {
            return Err(format!("{what}: type byte 0 (an unused entry)"));
        }
        match p.kind {
            MbrKind::Logical => {
                if p.number < 5 {
                    return Err(format!("{what}: a logical partition numbered below 5"));
                }
                let Some(ebr) = p.ebr_lba else {
                    return Err(format!("{what}: a logical partition without its EBR"));
                };
                if ebr >= p.start_lba {
                    return Err(format!(
                        "{what}: its EBR at LBA {ebr} is not in front of its start {}",
                        p.start_lba
                    ));
                }
                logicals.push((ebr, end - 1, what, p.number));
            }
            MbrKind::Primary | MbrKind::Extended => {
                if !(1..=4).contains(&p.number) {
                    return Err(format!("{what}: a primary entry numbered outside 1..=4"));
                }
                if p.kind == MbrKind::Extended {
                    if extended.is_some() {
                        return Err(format!("{what}: a second extended partition"));
                    }
                    extended = Some(p);
                }
                primaries.push((p.start_lba, end - 1, what));
            }
        }
    }
    no_overlap(primaries)?;
    if logicals.is_empty() {
        return Ok(());
    }
    let Some(ext) = extended else {
        return Err("logical partitions without an extended partition".into());
    };
    let ext_end = ext.start_lba + ext.sectors - 1;
    logicals.sort_by_key(|l| l.3);
    for (i, l) in logicals.iter().enumerate() {
        if l.0 < ext.start_lba || l.1 > ext_end {
            return Err(format!(
                "{}: LBA {}..={} (EBR included) is outside the extended partition {}..={ext_end}",
                l.2, l.0, l.1, ext.start_lba
            ));
        }
        if l.3 != 5 + i as u32 {
            return Err(format!(
                "{}: logical partitions are numbered from 5 without gaps",
                l.2
            ));
        }
        if i == 0 && l.0 != ext.start_lba {
            return Err(format!(
                "{}: the first EBR must be at the extended partition's start (LBA {})",
                l.2, ext.start_lba
            ));
        }
        if i > 0 && l.0 <= logicals[i - 1].1 {
            return Err(format!(
                "{}: EBR chain out of order (its EBR at LBA {} is not behind {})",
                l.2,
                l.0,
                logicals[i - 1].2
            ));
        }
    }
    Ok(())
}
