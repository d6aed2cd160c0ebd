//! Building the inventory: open disks, read tables, scan volumes, assemble LVM.

use anyhow::Context;

use super::*;
use crate::disk::sysfs;
use crate::disk::{ReadAt, Slice, SourceDisk};
use crate::layout::fs::{self, FsKind};
use crate::layout::lvm::{self, FoundPv, label, map};
use crate::layout::{LayoutError, mbr};

/// An opened disk and its table, before volumes are scanned.
pub(super) struct Opened {
    pub(super) disk: SourceDisk,
    pub(super) info: Disk,
}

/// A volume to scan: a partition or a whole disk without a table.
struct Vol<'a> {
    disk: usize,
    /// Index into the disk's partitions; None for the whole disk.
    part: Option<usize>,
    name: String,
    start: u64,
    view: Slice<&'a SourceDisk>,
}

/// Inventory the disks `cfg` names (or every block device).
///
/// Damaged structures do not fail the call: they are recorded in
/// `errors` with the volume and byte offset, and that volume is treated as
/// fully used. Only a failure to list /sys/block is an `Err`.
pub fn inventory(cfg: &InventoryConfig) -> anyhow::Result<Inventory> {
    let paths = if cfg.paths.is_empty() {
        sysfs::discover(&cfg.roots).context("listing block devices in /sys/block")?
    } else {
        cfg.paths.clone()
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut opened = Vec::new();
    for p in &paths {
        match SourceDisk::open(p) {
            Ok(disk) => opened.push(super::tables::open_layout(
                disk,
                &cfg.roots,
                &mut errors,
                &mut warnings,
            )),
            Err(e) => errors.push(Problem {
                volume: p.display().to_string(),
                message: match e.kind() {
                    std::io::ErrorKind::PermissionDenied => {
                        format!("cannot open: {e} (run ferry as root)")
                    }
                    _ => format!("cannot open: {e}"),
                },
                unavailable: true,
            }),
        }
    }
    // Ranges are always gathered (the disk maps are built from them) and
    // dropped at the end unless asked for.
    let mut vgs = scan_volumes(&mut opened, true, &mut errors, &mut warnings);
    let mut disks: Vec<Disk> = opened.into_iter().map(|o| o.info).collect();
    for d in &mut disks {
        let map = disk_used_map(d);
        d.used_bytes = map.total();
        d.used_percent = percent(d.used_bytes, d.size);
        d.used_ranges = Some(map);
    }
    if !cfg.with_ranges {
        let contents = disks
            .iter_mut()
            .flat_map(|d| {
                d.used_ranges = None;
                d.content
                    .iter_mut()
                    .chain(d.partitions.iter_mut().filter_map(|p| p.content.as_mut()))
            })
            .chain(
                vgs.iter_mut()
                    .flat_map(|g| g.lvs.iter_mut().filter_map(|l| l.content.as_mut())),
            );
        for c in contents {
            c.used_ranges = None;
        }
    }
    Ok(Inventory {
        schema: SCHEMA_VERSION,
        disks,
        volume_groups: vgs,
        errors,
        warnings,
    })
}

/// What copying the whole disk reads: everything before the first partition
/// (the table, a boot loader in the gap), each partition's used map at its
/// offset, the EBR of each logical partition, and the backup GPT at the end.
/// A disk without a table is its content's map; an unreadable one is all used.
fn disk_used_map(d: &Disk) -> RangeSet {
    let Some(table) = &d.table else {
        return match &d.content {
            Some(c) => c
                .used_ranges
                .clone()
                .unwrap_or_else(|| RangeSet::full(d.size)),
            None => RangeSet::full(d.size),
        };
    };
    let ss = d.logical_sector_size as u64;
    let mut map = RangeSet::new();
    let first = d.partitions.iter().map(|p| p.start).min().unwrap_or(d.size);
    map.insert(0, first);
    if let Table::Gpt {
        last_usable_lba, ..
    } = table
    {
        let backup = (last_usable_lba + 1) * ss;
        map.insert(backup, d.size.saturating_sub(backup));
    }
    for p in &d.partitions {
        if let Some(ebr) = p.ebr_lba {
            map.insert(ebr * ss, ss);
        }
        match p.content.as_ref().and_then(|c| c.used_ranges.as_ref()) {
            Some(r) => map.union_shifted(r, p.start),
            None if p.mbr_kind == Some(mbr::MbrKind::Extended) => {}
            None => map.insert(p.start, p.size),
        }
    }
    map.clip(d.size);
    map
}

pub(super) fn problem(volume: &str, e: impl std::fmt::Display) -> Problem {
    Problem {
        volume: volume.to_string(),
        message: e.to_string(),
        unavailable: false,
    }
}

/// What one volume holds.
enum Scanned {
    /// An LVM PV: its VG is assembled once every volume is scanned.
    Pv(label::PvLabel, Option<lvm::MdaText>),
    Fs(fs::FsInfo, fs::UsedMap),
}

/// Detect what `dev` holds and read its used map (or its PV label). A failure
/// carries what was detected, when detection got that far.
fn scan_volume(dev: &dyn ReadAt) -> Result<Scanned, (Option<fs::FsInfo>, LayoutError)> {
    let info = fs::detect(dev).map_err(|e| (None, e))?;
    if info.kind == FsKind::LvmPv {
        return match label::read_pv(dev) {
            Ok(Some((label, text))) => Ok(Scanned::Pv(label, text)),
            Ok(None) => Err((
                Some(info),
                crate::layout::corrupt(0, "LVM label vanished between reads"),
            )),
            Err(e) => Err((Some(info), e)),
        };
    }
    if let Some(fs_size) = info
        .size
        .filter(|&n| n > dev.size() && info.kind != FsKind::Swap)
    {
        let msg = format!(
            "the filesystem spans {fs_size} bytes but its volume holds {}: truncated volume?",
            dev.size()
        );
        return Err((Some(info), crate::layout::corrupt(0, msg)));
    }
    match fs::used_map(dev, &info) {
        Ok(u) => Ok(Scanned::Fs(info, u)),
        Err(e) => Err((Some(info), e)),
    }
}

/// One line for a volume that failed: the format (when known), then the error.
fn failure(info: Option<&fs::FsInfo>, e: &LayoutError) -> String {
    match info {
        Some(i) => format!("{}: {e}", i.kind.name()),
        None => e.to_string(),
    }
}

/// Content for a volume that could not be parsed: everything counts as used.
fn broken(kind: Option<&fs::FsInfo>, size: u64, msg: String, with_ranges: bool) -> Content {
    let unknown = fs::FsInfo::unknown();
    let mut c = Content::new(
        kind.unwrap_or(&unknown),
        &RangeSet::full(size),
        UsedMethod::All,
        size,
        with_ranges,
    );
    c.error = Some(msg);
    c
}

fn scan_volumes(
    opened: &mut [Opened],
    with_ranges: bool,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Vec<VolumeGroup> {
    // Contents found, by (disk, partition): filled after the borrows below end.
    let mut results: Vec<(usize, Option<usize>, Content)> = Vec::new();
    let mut vg_out = Vec::new();
    {
        let mut vols = Vec::new();
        for (d, o) in opened.iter().enumerate() {
            if o.info.table.is_none() {
                if errors.iter().any(|e| e.volume == o.info.path) {
                    continue; // the table was damaged: do not guess at the whole disk
                }
                vols.push(Vol {
                    disk: d,
                    part: None,
                    name: o.info.path.clone(),
                    start: 0,
                    view: Slice::new(&o.disk, 0, o.disk.size()).expect("whole disk fits itself"),
                });
                continue;
            }
            for (i, p) in o.info.partitions.iter().enumerate() {
                if p.mbr_kind == Some(mbr::MbrKind::Extended) {
                    continue;
                }
                match Slice::new(&o.disk, p.start, p.size) {
                    Ok(view) => vols.push(Vol {
                        disk: d,
                        part: Some(i),
                        name: p.volume.clone(),
                        start: p.start,
                        view,
                    }),
                    Err(e) => errors.push(problem(&p.volume, e)),
                }
            }
        }

        let mut found: Vec<FoundPv> = Vec::new();
        let mut found_vol: Vec<usize> = Vec::new();
        for (k, v) in vols.iter().enumerate() {
            let size = v.view.size();
            match scan_volume(&v.view) {
                Ok(Scanned::Pv(label, text)) => {
                    found.push(FoundPv {
                        volume: v.name.clone(),
                        dev: &v.view,
                        label,
                        text,
                    });
                    found_vol.push(k);
                }
                Ok(Scanned::Fs(info, u)) => {
                    if let Some(note) = &u.note {
                        warnings.push(problem(&v.name, note));
                    }
                    let c = Content::new(&info, &u.ranges, u.method, size, with_ranges);
                    results.push((v.disk, v.part, c));
                }
                Err((info, e)) => {
                    let e = e.rebase(v.start);
                    let msg = failure(info.as_ref(), &e);
                    errors.push(problem(&v.name, &msg));
                    results.push((
                        v.disk,
                        v.part,
                        broken(info.as_ref(), size, msg, with_ranges),
                    ));
                }
            }
        }

        let asm = lvm::assemble(&found);
        for (i, e) in asm.errors {
            let v = &vols[found_vol[i]];
            let info = pv_info(&found[i]);
            let msg = failure(Some(&info), &e.rebase(v.start));
            errors.push(problem(&v.name, &msg));
            results.push((
                v.disk,
                v.part,
                broken(Some(&info), v.view.size(), msg, with_ranges),
            ));
        }
        for &(i, first) in &asm.duplicates {
            let v = &vols[found_vol[i]];
            let msg = format!(
                "LVM PV has the same UUID as {} (the same disk seen twice?); it is not used for its VG and counts as fully used",
                found[first].volume
            );
            warnings.push(problem(&v.name, msg));
            let info = pv_info(&found[i]);
            let all = RangeSet::full(v.view.size());
            results.push((
                v.disk,
                v.part,
                Content::new(&info, &all, UsedMethod::All, v.view.size(), with_ranges),
            ));
        }
        for i in asm.orphans {
            let v = &vols[found_vol[i]];
            let mut used = RangeSet::new();
            used.insert(0, pv_header_end(&found[i].label));
            add_metadata_areas(&found[i].label, &mut used, v.view.size());
            warnings.push(problem(&v.name, "LVM PV belongs to no volume group"));
            let info = pv_info(&found[i]);
            results.push((
                v.disk,
                v.part,
                Content::new(&info, &used, UsedMethod::Lvm, v.view.size(), with_ranges),
            ));
        }
        for vg in &asm.vgs {
            let names: Vec<Option<String>> = vg
                .devices
                .iter()
                .map(|d| d.map(|d| found[d.found].volume.clone()))
                .collect();
            let (out, mut pv_used) = scan_vg(vg, &names, with_ranges, errors, warnings);
            for (k, dev) in vg.devices.iter().enumerate() {
                let Some(dev) = dev else { continue };
                let v = &vols[found_vol[dev.found]];
                let info = pv_info(&found[dev.found]);
                let used = &mut pv_used[k];
                add_metadata_areas(&found[dev.found].label, used, v.view.size());
                let mut c = Content::new(&info, used, UsedMethod::Lvm, v.view.size(), with_ranges);
                c.vg = Some(vg.meta.name.clone());
                results.push((v.disk, v.part, c));
            }
            vg_out.push(out);
        }
    }
    for (d, part, c) in results {
        match part {
            Some(i) => opened[d].info.partitions[i].content = Some(c),
            None => opened[d].info.content = Some(c),
        }
    }
    vg_out
}

fn pv_info(pv: &FoundPv) -> fs::FsInfo {
    let mut info = fs::FsInfo::new(FsKind::LvmPv);
    info.uuid = Some(lvm::format_uuid(pv.label.uuid.as_bytes()));
    info.size = Some(pv.label.device_size);
    info
}

/// Every metadata area the PV's label lists is used: besides the first,
/// before the data area, a PV made with `--pvmetadatacopies 2` keeps a
/// second one at its end, which a target without it reports as a bad
/// metadata header.
fn add_metadata_areas(label: &label::PvLabel, used: &mut RangeSet, size: u64) {
    for &(o, s) in &label.metadata_areas {
        used.insert(o, s);
    }
    used.clip(size);
}

/// End of an orphan PV's label and metadata region: where its data area starts.
fn pv_header_end(label: &label::PvLabel) -> u64 {
    label.data_areas.first().map_or(1 << 20, |d| d.0)
}

/// LV contents and per-PV used maps of one volume group.
fn scan_vg(
    vg: &lvm::VolumeGroup,
    pv_names: &[Option<String>],
    with_ranges: bool,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> (VolumeGroup, Vec<RangeSet>) {
    let m = &vg.meta;
    let mut pv_used: Vec<RangeSet> = vec![RangeSet::new(); m.pvs.len()];
    let mut whole = false;
    let mut lvs = Vec::new();
    for (i, lv) in m.lvs.iter().enumerate() {
        let name = format!("{}/{}", m.name, lv.name);
        let complete = vg.lv_complete(i);
        let size = lv.extents() * m.extent_size;
        let mut content = None;
        let mut mapped = false;
        if complete {
            let view = vg.lv_view(i);
            match scan_volume(&view) {
                Ok(Scanned::Fs(info, u)) => {
                    if let Some(note) = &u.note {
                        warnings.push(problem(&name, note));
                    }
                    mapped = map::used_on_pvs(m, lv, &u.ranges, &mut pv_used);
                    content = Some(Content::new(&info, &u.ranges, u.method, size, with_ranges));
                }
                Ok(Scanned::Pv(label, _)) => {
                    // A PV inside an LV (nested LVM): copied whole, not assembled.
                    let mut info = fs::FsInfo::new(FsKind::LvmPv);
                    info.uuid = Some(lvm::format_uuid(label.uuid.as_bytes()));
                    let all = RangeSet::full(size);
                    content = Some(Content::new(
                        &info,
                        &all,
                        UsedMethod::All,
                        size,
                        with_ranges,
                    ));
                }
                Err((info, e)) => {
                    let msg = format!("at LV {}", failure(info.as_ref(), &e));
                    errors.push(problem(&name, &msg));
                    content = Some(broken(info.as_ref(), size, msg, with_ranges));
                }
            }
        } else if lv.visible {
            let why = if vg.missing_pvs().next().is_some() {
                "a PV it uses is missing"
            } else {
                "its segment type is not mapped by ferry"
            };
            warnings.push(problem(
                &name,
                format!("not scanned: {why}; its extents count as used"),
            ));
        }
        if !mapped && !map::allocated_on_pvs(m, lv, &mut pv_used) {
            whole = true;
        }
        lvs.push(LogicalVolume {
            name: lv.name.clone(),
            volume: name,
            uuid: lv.uuid.clone(),
            visible: lv.visible,
            size,
            complete,
            segments: lv.segments.clone(),
            content,
        });
    }
    let mut pvs = Vec::new();
    for (k, p) in m.pvs.iter().enumerate() {
        let dev = vg.devices[k];
        let pv_size = dev.map_or(0, |d| d.dev.size());
        let pv_end = p
            .pe_count
            .checked_mul(m.extent_size)
            .and_then(|n| n.checked_add(p.pe_start));
        if dev.is_some() && pv_end.is_none_or(|e| e > pv_size) {
            errors.push(problem(
                pv_names[k].as_deref().unwrap_or(&m.name),
                format!(
                    "LVM2_member: at byte {}: {} extents of {} bytes run past the end of the volume ({pv_size} bytes): truncated PV?",
                    p.pe_start, p.pe_count, m.extent_size
                ),
            ));
        }
        if whole {
            pv_used[k] = RangeSet::full(pv_size);
        }
        pv_used[k].insert(0, p.pe_start);
        pv_used[k].clip(pv_size);
        pvs.push(VgPv {
            key: p.key.clone(),
            uuid: p.uuid.clone(),
            volume: pv_names[k].clone(),
            device_hint: p.device_hint.clone(),
            pe_start: p.pe_start,
            pe_count: p.pe_count,
            missing: dev.is_none(),
        });
        if dev.is_none() {
            warnings.push(problem(
                &m.name,
                format!(
                    "PV {} ({}) is missing; LVs on it are incomplete",
                    p.key, p.uuid
                ),
            ));
        }
    }
    let extent_count: u64 = m.pvs.iter().map(|p| p.pe_count).sum();
    let allocated: u64 = m
        .lvs
        .iter()
        .flat_map(|l| &l.segments)
        .filter(|s| !s.stripes.is_empty())
        .map(|s| s.extent_count)
        .sum();
    (
        VolumeGroup {
            name: m.name.clone(),
            uuid: m.uuid.clone(),
            seqno: m.seqno,
            extent_size: m.extent_size,
            extent_count,
            free_extents: extent_count.saturating_sub(allocated),
            pvs,
            lvs,
        },
        pv_used,
    )
}
