//! Opening a disk: its sysfs facts, what uses it, and its partition table.

use super::build::{Opened, problem};
use super::*;
use crate::disk::sysfs::{self, Roots};
use crate::disk::{ReadAt, SourceDisk};
use crate::layout::fs::{self, FsKind};
use crate::layout::{LayoutError, gpt, mbr};

/// Open-time facts and the partition table.
pub(super) fn open_layout(
    disk: SourceDisk,
    roots: &Roots,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Opened {
    let path = disk.path().display().to_string();
    let block = disk.is_block_device();
    let (attrs, in_use) = if block {
        match sysfs::kernel_name(disk.path()) {
            Some(n) => (sysfs::attrs(roots, &n), sysfs::in_use(roots, &n)),
            None => Default::default(),
        }
    } else {
        let loops = sysfs::loops_backed_by(roots, disk.path());
        let mut why: Vec<String> = loops
            .iter()
            .map(|l| format!("attached to /dev/{l}"))
            .collect();
        for l in &loops {
            why.extend(sysfs::in_use(roots, l));
        }
        (Default::default(), why)
    };
    let mut info = Disk {
        path: path.clone(),
        kind: if block {
            DiskKind::Block
        } else {
            DiskKind::File
        },
        size: disk.size(),
        logical_sector_size: disk.logical_sector_size(),
        physical_sector_size: disk.physical_sector_size(),
        model: attrs.model,
        serial: attrs.serial,
        rotational: attrs.rotational,
        removable: attrs.removable,
        read_only: attrs.read_only,
        in_use,
        table: None,
        partitions: Vec::new(),
        content: None,
        used_bytes: 0,
        used_percent: 0.0,
        used_ranges: None,
    };
    if let Err(e) = read_table(&disk, &mut info, warnings) {
        errors.push(problem(&path, e));
        info.table = None;
        info.partitions.clear();
    }
    Opened { disk, info }
}

fn read_table(
    disk: &SourceDisk,
    info: &mut Disk,
    warnings: &mut Vec<Problem>,
) -> Result<(), LayoutError> {
    let hint = disk.is_block_device().then(|| disk.logical_sector_size());
    let path = info.path.clone();
    if let Some(t) = gpt::read(disk, hint)? {
        let ss = t.sector_size as u64;
        if !disk.is_block_device() {
            info.logical_sector_size = t.sector_size;
            info.physical_sector_size = info.physical_sector_size.max(t.sector_size);
        }
        warnings.extend(t.warnings.iter().map(|w| problem(&path, w)));
        info.partitions = t
            .partitions
            .iter()
            .map(|p| Partition {
                name: Some(p.name.clone()).filter(|n| !n.is_empty()),
                unique_guid: Some(p.unique_guid.clone()),
                attributes: Some(p.attributes),
                attribute_names: p.attribute_names.clone(),
                ..Partition::new(
                    &path,
                    p.number,
                    p.start_lba,
                    p.end_lba - p.start_lba + 1,
                    ss,
                    p.type_guid.clone(),
                    p.type_name,
                )
            })
            .collect();
        info.table = Some(Table::Gpt {
            disk_guid: t.disk_guid,
            first_usable_lba: t.first_usable_lba,
            last_usable_lba: t.last_usable_lba,
            entries: t.entries,
            header: t.header,
            protective_mbr: t.protective_mbr,
        });
        return Ok(());
    }
    // FAT and NTFS boot sectors carry the MBR signature too.
    let whole = fs::detect(disk)?;
    if matches!(whole.kind, FsKind::Vfat | FsKind::Ntfs) || !mbr::looks_like_mbr(disk)? {
        return Ok(());
    }
    let ss = if disk.is_block_device() {
        disk.logical_sector_size()
    } else {
        512
    };
    let t = mbr::read(disk, ss)?;
    warnings.extend(t.warnings.iter().map(|w| problem(&path, w)));
    let ss = ss as u64;
    info.partitions = t
        .partitions
        .iter()
        .map(|p| Partition {
            mbr_kind: Some(p.kind),
            bootable: Some(p.bootable),
            ebr_lba: p.ebr_lba,
            ..Partition::new(
                &path,
                p.number,
                p.start_lba,
                p.sectors,
                ss,
                format!("{:#04x}", p.type_byte),
                p.type_name,
            )
        })
        .collect();
    info.table = Some(Table::Mbr {
        disk_signature: t.disk_signature,
    });
    Ok(())
}
