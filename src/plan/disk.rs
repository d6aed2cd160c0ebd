//! One disk's new layout: partitions grown and moved, the bytes in front
//! of them kept, and the table the receiver writes.

use std::collections::BTreeMap;

use super::layout::*;
use super::lvm::pv_used;
use super::select::{Selection, pv_vg};
use super::spec::{Grow, PlanSpec};
use super::target::{BOOT_CODE_LEN, GptEntry, MbrEntry, Place, Step, TargetDisk, TargetTable};
use crate::inventory::{Disk, Inventory, Table};
use crate::layout::mbr::MbrKind;
use crate::layout::ranges::RangeSet;

/// A top-level slot in a partition table, or a logical partition inside the
/// extended one. `lead` is the room in front of it that moves with it (a
/// logical partition's EBR).
#[derive(Debug, Clone)]
pub(super) struct Item {
    part: usize,
    start: u64,
    size: u64,
    lead: u64,
    grow: Option<u64>,
    children: Vec<Item>,
}

/// Where a partition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Placed {
    start: u64,
    size: u64,
}

/// Lay items out in order: each stays where it is (shifted with its
/// container) unless the one before now runs into it; then it moves to the
/// next aligned start. Returns the end of the last one.
pub(super) fn lay(
    items: &[Item],
    mut cursor: u64,
    delta: i128,
    out: &mut BTreeMap<usize, Placed>,
) -> u64 {
    for it in items {
        let shifted = (it.start as i128 + delta).max(0) as u64;
        let start = if shifted >= cursor + it.lead {
            shifted
        } else {
            align_up(cursor + it.lead, ALIGN)
        };
        let mut size = it.grow.unwrap_or(it.size);
        if !it.children.is_empty() {
            let d = start as i128 - it.start as i128;
            let last = it.children.last().expect("not empty");
            let slack = (it.start + it.size).saturating_sub(last.start + last.size);
            let end = lay(&it.children, start, d, out);
            size = size.max(end + slack - start);
        }
        out.insert(it.part, Placed { start, size });
        cursor = start + size;
    }
    cursor
}

/// The byte just past the last place a partition may end on a target of
/// `size` bytes.
pub(super) fn usable_end(table: &Table, size: u64, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => {
            let array = (*entries as u64 * GPT_ENTRY).div_ceil(ss);
            (size / ss).saturating_sub(1 + array) * ss
        }
        Table::Mbr { .. } => size / ss * ss,
    }
}

/// Bytes a table needs behind the last partition (GPT's backup).
pub(super) fn tail(table: &Table, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => ((*entries as u64 * GPT_ENTRY).div_ceil(ss) + 1) * ss,
        Table::Mbr { .. } => 0,
    }
}

/// The sectors a table occupies at the front (written by the receiver, so
/// never sent as data).
pub(super) fn head(table: &Table, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => ((*entries as u64 * GPT_ENTRY).div_ceil(ss) + 2) * ss,
        Table::Mbr { .. } => ss,
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_disk(
    inv: &Inventory,
    spec: &PlanSpec,
    sel: &Selection,
    d: &Disk,
    target: u32,
    boot: &mut BootCode<'_>,
    notes: &mut Vec<String>,
) -> Result<DiskPlan, PlanError> {
    let ss = d.logical_sector_size as u64;
    let target_size = spec.target_size.get(&d.path).map_or(d.size, |s| s.0);
    if !target_size.is_multiple_of(ss) {
        return err(format!(
            "target_size for {}: {target_size} bytes is not a whole number of {ss}-byte sectors",
            d.path
        ));
    }
    let Some(table) = &d.table else {
        return plan_whole(spec, sel, d, target, target_size, notes);
    };
    if let Some(g) = grow_request(spec, &d.path) {
        return err(format!(
            "grow: {} has a partition table; grow its partitions ({g} asked for the disk)",
            d.path
        ));
    }
    let usable = usable_end(table, target_size, ss);
    // Grow requests, checked; the one `max` is resolved below.
    let mut grows: BTreeMap<usize, u64> = BTreeMap::new();
    let mut max: Option<usize> = None;
    let mut steps = Vec::new();
    for (i, p) in d.partitions.iter().enumerate() {
        let Some(g) = grow_request(spec, &p.volume) else {
            continue;
        };
        let Some(c) = &p.content else {
            return err(format!(
                "grow: {} is an extended partition; grow its logical partitions",
                p.volume
            ));
        };
        let is_pv = pv_vg(p).is_some_and(|vg| sel.vgs.contains(vg));
        if !sel.volumes.contains(&p.volume) && !is_pv {
            return err(format!("grow: {} is not selected", p.volume));
        }
        let place = Place::Partition { number: p.number };
        match grow_step(&c.fs, place.clone(), c) {
            Err(why) => return err(format!("grow: {}: {why}", p.volume)),
            Ok(step) => {
                if c.fs == "vfat" {
                    notes.push(format!(
                        "{}: the partition grows; its vfat filesystem keeps its size",
                        p.volume
                    ));
                }
                if let Some(vg) = pv_vg(p) {
                    steps.push(Step::PvResize {
                        place,
                        vg: vg.to_string(),
                    });
                } else {
                    steps.extend(step);
                }
            }
        }
        match g {
            Grow::Max => {
                if let Some(o) = max {
                    return err(format!(
                        "grow: {} and {} both ask for max on {}; only one volume per disk can",
                        d.partitions[o].volume, p.volume, d.path
                    ));
                }
                max = Some(i);
            }
            Grow::To(n) => {
                grows.insert(i, requested(&p.volume, p.size, n, ss)?);
            }
        }
    }
    // Items in disk order; logicals inside their extended partition.
    let mut order: Vec<usize> = (0..d.partitions.len()).collect();
    order.sort_by_key(|&i| d.partitions[i].start);
    let mut items: Vec<Item> = Vec::new();
    let mut ext: Option<usize> = None;
    for &i in &order {
        let p = &d.partitions[i];
        let item = Item {
            part: i,
            start: p.start,
            size: p.size,
            lead: p.ebr_lba.map_or(0, |e| p.start.saturating_sub(e * ss)),
            grow: grows.get(&i).copied(),
            children: Vec::new(),
        };
        match p.mbr_kind {
            Some(MbrKind::Logical) => match ext {
                Some(e) => items[e].children.push(item),
                None => {
                    return err(format!(
                        "{}: a logical partition with no extended partition",
                        p.volume
                    ));
                }
            },
            Some(MbrKind::Extended) => {
                ext = Some(items.len());
                items.push(item);
            }
            _ => items.push(item),
        }
    }
    let mut placed = BTreeMap::new();
    let mut end = lay(&items, 0, 0, &mut placed);
    if let Some(m) = max {
        let set = |items: &mut Vec<Item>, extra: u64| {
            for it in items.iter_mut() {
                if it.part == m {
                    it.grow = Some(it.size + extra);
                }
                for c in it.children.iter_mut().filter(|c| c.part == m) {
                    c.grow = Some(c.size + extra);
                }
            }
        };
        let last = order
            .iter()
            .rev()
            .find(|&&i| d.partitions[i].mbr_kind != Some(MbrKind::Extended));
        let mut extra = usable.saturating_sub(end);
        if last != Some(&m) {
            extra = align_down(extra, ALIGN);
        }
        extra = align_down(extra, ss);
        loop {
            set(&mut items, extra);
            placed.clear();
            end = lay(&items, 0, 0, &mut placed);
            if end <= usable || extra < ALIGN {
                break;
            }
            extra -= ALIGN;
        }
        if extra == 0 {
            notes.push(format!(
                "{}: max leaves it at its size: the target has no room to spare",
                d.partitions[m].volume
            ));
        }
    }
    let needed = end + tail(table, ss);
    if end > usable {
        return err(format!(
            "{} does not fit its target (planned at {target_size} bytes): the partitions need {needed}; enlarge the target by {} bytes ({})",
            d.path,
            needed - target_size,
            crate::units::human(needed - target_size)
        ));
    }
    if matches!(table, Table::Mbr { .. }) {
        for (&i, pl) in &placed {
            let p = &d.partitions[i];
            if (pl.start + pl.size) / ss > MBR_LIMIT {
                return err(format!(
                    "{}: would end at byte {}, past the {} an MBR can address with {ss}-byte sectors; grow it less or use a GPT disk",
                    p.volume,
                    pl.start + pl.size,
                    crate::units::human(MBR_LIMIT * ss)
                ));
            }
        }
    }
    // The first partition that moves or grows: everything in front of it stays.
    let first_change = placed
        .iter()
        .filter(|(i, pl)| pl.start != d.partitions[**i].start || pl.size != d.partitions[**i].size)
        .map(|(i, _)| d.partitions[*i].start)
        .min()
        .unwrap_or(u64::MAX);
    let front_end = order
        .first()
        .map_or(0, |&i| d.partitions[i].start)
        .min(first_change)
        .min(usable);
    let mut volumes = Vec::new();
    let front = head(table, ss);
    if front_end > front {
        let mut used = RangeSet::new();
        used.insert(front, front_end - front);
        volumes.push(PlannedVolume {
            name: d.path.clone(),
            disk: d.path.clone(),
            partition: None,
            // The front area only: the target may be smaller than the disk.
            size: front_end,
            used,
            base: 0,
            target,
        });
    }
    let mut rows = Vec::new();
    for &i in &order {
        let p = &d.partitions[i];
        let pl = placed[&i];
        let pv = pv_vg(p).filter(|vg| sel.vgs.contains(*vg));
        let selected = p.content.is_some() && (sel.volumes.contains(&p.volume) || pv.is_some());
        let used = if selected {
            match pv {
                Some(vg) => pv_used(inv, vg, &p.volume, sel)?,
                None => p
                    .content
                    .as_ref()
                    .and_then(|c| c.used_ranges.clone())
                    .ok_or_else(|| {
                        PlanError(format!("{}: the inventory has no used map", p.volume))
                    })?,
            }
        } else {
            RangeSet::new()
        };
        let mut action = Vec::new();
        if p.content.is_none() {
            action.push("container of the logical partitions".to_string());
        } else if !selected {
            action.push("not selected: stays empty".to_string());
        }
        if pl.start != p.start {
            action.push("move".into());
        }
        if pl.size != p.size {
            action.push(format!("grow +{}", crate::units::human(pl.size - p.size)));
        }
        if action.is_empty() {
            action.push("copy".into());
        }
        rows.push(Row {
            number: Some(p.number),
            volume: p.volume.clone(),
            name: p
                .name
                .clone()
                .or_else(|| p.mbr_kind.map(|k| format!("{k:?}").to_lowercase()))
                .unwrap_or_default(),
            fs: fs_of(p.content.as_ref()).to_string(),
            start: p.start,
            size: p.size,
            new_start: pl.start,
            new_size: pl.size,
            used: used.total(),
            selected,
            action: action.join(", "),
        });
        if selected {
            volumes.push(PlannedVolume {
                name: p.volume.clone(),
                disk: d.path.clone(),
                partition: Some(p.number),
                size: p.size,
                used,
                base: pl.start,
                target,
            });
        }
    }
    let code = boot(d).map_err(|e| PlanError(format!("{}: reading its boot code: {e}", d.path)))?;
    if code.len() != BOOT_CODE_LEN {
        return err(format!(
            "{}: boot code is {} bytes, not {BOOT_CODE_LEN}",
            d.path,
            code.len()
        ));
    }
    let boot_code = hex(&code);
    let table_out = match table {
        Table::Gpt {
            disk_guid, entries, ..
        } => TargetTable::Gpt {
            disk_guid: disk_guid.clone(),
            entries: *entries,
            boot_code,
            partitions: order
                .iter()
                .map(|&i| {
                    let p = &d.partitions[i];
                    let pl = placed[&i];
                    GptEntry {
                        number: p.number,
                        start_lba: pl.start / ss,
                        end_lba: (pl.start + pl.size) / ss - 1,
                        type_guid: p.type_id.clone(),
                        unique_guid: p.unique_guid.clone().unwrap_or_default(),
                        name: p.name.clone().unwrap_or_default(),
                        attributes: p.attributes.unwrap_or(0),
                    }
                })
                .collect(),
        },
        Table::Mbr { disk_signature } => TargetTable::Mbr {
            boot_code,
            disk_signature: parse_signature(disk_signature).ok_or_else(|| {
                PlanError(format!(
                    "{}: disk signature {disk_signature:?} is not hex",
                    d.path
                ))
            })?,
            partitions: order
                .iter()
                .map(|&i| {
                    let p = &d.partitions[i];
                    let pl = placed[&i];
                    let lead = p.ebr_lba.map(|e| p.start - e * ss);
                    MbrEntry {
                        number: p.number,
                        kind: p.mbr_kind.unwrap_or(MbrKind::Primary),
                        start_lba: pl.start / ss,
                        sectors: pl.size / ss,
                        type_byte: parse_type_byte(&p.type_id).unwrap_or(0x83),
                        bootable: p.bootable.unwrap_or(false),
                        ebr_lba: lead.map(|l| (pl.start - l) / ss),
                    }
                })
                .collect(),
        },
    };
    Ok(DiskPlan {
        source: d.path.clone(),
        target,
        source_size: d.size,
        target_size,
        needed,
        sector_size: d.logical_sector_size,
        table: if matches!(table, Table::Gpt { .. }) {
            "gpt"
        } else {
            "mbr"
        },
        rows,
        volumes,
        target_disk: TargetDisk {
            target,
            source: d.path.clone(),
            min_size: target_size,
            sector_size: d.logical_sector_size,
            table: table_out,
            steps,
        },
    })
}

/// A disk with no partition table: one volume, grown to the target's size.
pub(super) fn plan_whole(
    spec: &PlanSpec,
    sel: &Selection,
    d: &Disk,
    target: u32,
    target_size: u64,
    notes: &mut Vec<String>,
) -> Result<DiskPlan, PlanError> {
    let c = d.content.as_ref();
    let pv = c
        .and_then(|c| c.vg.as_deref())
        .filter(|vg| sel.vgs.contains(*vg));
    let selected = sel.volumes.contains(&d.path) || pv.is_some();
    let mut steps = Vec::new();
    let mut new_size = d.size;
    if let Some(g) = grow_request(spec, &d.path) {
        if !selected {
            return err(format!("grow: {} is not selected", d.path));
        }
        let c = c.expect("selected disks have content");
        new_size = match g {
            Grow::Max => target_size,
            Grow::To(n) => requested(&d.path, d.size, n, d.logical_sector_size as u64)?,
        };
        match grow_step(&c.fs, Place::Disk, c) {
            Err(why) => return err(format!("grow: {}: {why}", d.path)),
            Ok(s) => match pv {
                Some(vg) => steps.push(Step::PvResize {
                    place: Place::Disk,
                    vg: vg.to_string(),
                }),
                None => steps.extend(s),
            },
        }
        if c.fs == "vfat" {
            notes.push(format!("{}: its vfat filesystem keeps its size", d.path));
        }
    }
    if new_size > target_size {
        return err(format!(
            "{} does not fit its target (planned at {target_size} bytes): it needs {new_size}; enlarge the target by {} bytes",
            d.path,
            new_size - target_size
        ));
    }
    let used = if selected {
        match pv {
            Some(_) => c.and_then(|c| c.used_ranges.clone()).unwrap_or_default(),
            None => c.and_then(|c| c.used_ranges.clone()).unwrap_or_default(),
        }
    } else {
        RangeSet::new()
    };
    let row = Row {
        number: None,
        volume: d.path.clone(),
        name: String::new(),
        fs: fs_of(c).to_string(),
        start: 0,
        size: d.size,
        new_start: 0,
        new_size,
        used: used.total(),
        selected,
        action: if !selected {
            "not selected".into()
        } else if new_size > d.size {
            format!("grow +{}", crate::units::human(new_size - d.size))
        } else {
            "copy".into()
        },
    };
    let volumes = if selected {
        vec![PlannedVolume {
            name: d.path.clone(),
            disk: d.path.clone(),
            partition: None,
            size: d.size,
            used,
            base: 0,
            target,
        }]
    } else {
        Vec::new()
    };
    Ok(DiskPlan {
        source: d.path.clone(),
        target,
        source_size: d.size,
        target_size,
        needed: new_size,
        sector_size: d.logical_sector_size,
        table: "none",
        rows: vec![row],
        volumes,
        target_disk: TargetDisk {
            target,
            source: d.path.clone(),
            min_size: target_size,
            sector_size: d.logical_sector_size,
            table: TargetTable::None,
            steps,
        },
    })
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn parse_signature(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

pub(super) fn parse_type_byte(s: &str) -> Option<u8> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}
