//! Working out a plan: from the inventory and the technician's choices
//! ([`PlanSpec`]) to what each target disk looks like, what is read from
//! where and written to where, and the steps that grow what was grown.
//!
//! The rules (docs/plan.md):
//! - partitions and LVs grow, never shrink; btrfs and filesystems ferry does
//!   not know are not grown;
//! - everything in front of the first partition that moves or grows stays
//!   byte for byte where it was (the first MiB, a BIOS boot partition);
//!   partitions behind a grown one move only as far as they must, to a
//!   1 MiB-aligned start; numbers, types, GUIDs and names are kept;
//! - an LVM volume group goes whole (its PVs) when any of its LVs is
//!   selected; deselected LVs are not read and stay empty on the target;
//! - a target disk must hold the planned partitions (and a GPT's backup);
//!   the error says by how much to enlarge it.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{Grow, PlanSpec};
use super::target::{
    BOOT_CODE_LEN, GptEntry, MbrEntry, Place, Step, TargetDisk, TargetPlan, TargetTable,
};
use crate::inventory::{Content, Disk, Inventory, LogicalVolume, Partition, Table};
use crate::layout::lvm::map;
use crate::layout::mbr::MbrKind;
use crate::layout::ranges::RangeSet;

/// New partition starts are aligned to this.
pub const ALIGN: u64 = 1 << 20;
/// GPT entries are this many bytes.
const GPT_ENTRY: u64 = 128;
/// The largest sector number (exclusive) an MBR entry can hold.
const MBR_LIMIT: u64 = 1 << 32;

const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// Why a plan cannot be made; one line naming the volume, disk or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(msg.into()))
}

/// A computed plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub disks: Vec<DiskPlan>,
    pub vgs: Vec<VgPlan>,
    /// Things the technician should know (a vfat left at its size, ...).
    pub notes: Vec<String>,
}

/// One source disk and the target it becomes.
#[derive(Debug, Clone)]
pub struct DiskPlan {
    pub source: String,
    pub target: u32,
    pub source_size: u64,
    /// The planned target size (the target must be at least this large).
    pub target_size: u64,
    /// The least target size the planned partitions need.
    pub needed: u64,
    pub sector_size: u32,
    /// `gpt`, `mbr` or `none`.
    pub table: &'static str,
    /// Before and after, one row per partition (or one for a whole disk).
    pub rows: Vec<Row>,
    /// What is read and where it lands.
    pub volumes: Vec<PlannedVolume>,
    pub target_disk: TargetDisk,
}

/// One partition (or whole-disk volume) before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub number: Option<u32>,
    pub volume: String,
    /// GPT partition name or MBR kind.
    pub name: String,
    pub fs: String,
    pub start: u64,
    pub size: u64,
    pub new_start: u64,
    pub new_size: u64,
    /// Bytes that will be read (0 when not selected).
    pub used: u64,
    pub selected: bool,
    pub action: String,
}

/// An LVM volume group and its LVs, before and after.
#[derive(Debug, Clone)]
pub struct VgPlan {
    pub name: String,
    pub sent: bool,
    pub extent_size: u64,
    pub free_before: u64,
    pub free_after: u64,
    pub lvs: Vec<LvRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvRow {
    pub volume: String,
    pub fs: String,
    pub size: u64,
    pub new_size: u64,
    pub used: u64,
    pub selected: bool,
    pub action: String,
}

/// A range of a source disk read as one volume: the disk's own bytes in
/// front of the partitions (name = the disk), or a partition (`DISK:N`).
/// Volume byte `x` lands at `base + x` on target `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVolume {
    pub name: String,
    pub disk: String,
    pub partition: Option<u32>,
    pub size: u64,
    pub used: RangeSet,
    pub base: u64,
    pub target: u32,
}

impl Planned {
    /// The receiver's part: tables and steps for every target disk.
    pub fn target_plan(&self) -> TargetPlan {
        TargetPlan {
            disks: self.disks.iter().map(|d| d.target_disk.clone()).collect(),
        }
    }

    /// Every volume read, in target order.
    pub fn volumes(&self) -> impl Iterator<Item = &PlannedVolume> {
        self.disks.iter().flat_map(|d| &d.volumes)
    }
}

/// Reads the 440 bytes of boot code in front of a disk's partition table.
pub type BootCode<'a> = dyn FnMut(&Disk) -> Result<Vec<u8>, String> + 'a;

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Filesystems ferry grows, and how.
fn grow_step(fs: &str, place: Place, content: &Content) -> Result<Option<Step>, String> {
    Ok(match fs {
        "ext2" | "ext3" | "ext4" => Some(Step::GrowExt { place }),
        "xfs" => Some(Step::GrowXfs { place }),
        "ntfs" => Some(Step::GrowNtfs { place }),
        "swap" => Some(Step::Mkswap {
            place,
            uuid: content.uuid.clone(),
            label: content.label.clone(),
        }),
        "vfat" => None,
        "btrfs" => return Err("btrfs partitions are not resized".into()),
        "LVM2_member" => None,
        other => {
            return Err(format!(
                "ferry does not grow a volume holding {other}: it cannot grow what is inside"
            ));
        }
    })
}

fn fs_of(c: Option<&Content>) -> &str {
    c.map_or("-", |c| c.fs.as_str())
}

/// Selected unless deselected: a partition holding a filesystem or swap (or
/// an encrypted container), a BIOS boot or EFI system partition.
fn system_partition(p: &Partition) -> bool {
    let ty = p.type_id.to_ascii_uppercase();
    if ty == BIOS_BOOT || ty == ESP || ty == "0XEF" {
        return true;
    }
    matches!(p.content.as_ref().map(|c| c.fs.as_str()), Some(fs) if fs != "unknown")
}

/// What the names in a spec refer to.
#[derive(Debug, Clone, Copy)]
enum Named<'a> {
    /// A disk with a partition table.
    Disk(&'a Disk),
    /// A disk with no table: one volume.
    Whole(&'a Disk),
    Part(&'a Partition),
    Lv(&'a LogicalVolume),
}

fn lookup<'a>(inv: &'a Inventory, name: &str) -> Option<Named<'a>> {
    for d in &inv.disks {
        if d.path == name {
            return Some(if d.table.is_some() {
                Named::Disk(d)
            } else {
                Named::Whole(d)
            });
        }
        if let Some(p) = d.partitions.iter().find(|p| p.volume == name) {
            return Some(Named::Part(p));
        }
    }
    inv.volume_groups
        .iter()
        .find_map(|vg| vg.lvs.iter().find(|l| l.volume == name).map(Named::Lv))
}

fn pv_vg(p: &Partition) -> Option<&str> {
    p.content.as_ref().and_then(|c| c.vg.as_deref())
}

/// The selection: partitions and whole disks by volume name, LVs by `VG/LV`.
struct Selection {
    volumes: BTreeSet<String>,
    lvs: BTreeSet<String>,
    /// VGs with at least one selected LV: their PVs are sent.
    vgs: BTreeSet<String>,
}

fn select(inv: &Inventory, spec: &PlanSpec) -> Result<Selection, PlanError> {
    let mut s = Selection {
        volumes: BTreeSet::new(),
        lvs: BTreeSet::new(),
        vgs: BTreeSet::new(),
    };
    for d in &inv.disks {
        if d.table.is_none() {
            if d.content
                .as_ref()
                .is_some_and(|c| c.fs != "unknown" && c.vg.is_none())
            {
                s.volumes.insert(d.path.clone());
            }
            continue;
        }
        for p in &d.partitions {
            if p.content.is_some() && pv_vg(p).is_none() && system_partition(p) {
                s.volumes.insert(p.volume.clone());
            }
        }
    }
    if spec.all_vgs() {
        for vg in &inv.volume_groups {
            s.lvs.extend(
                vg.lvs
                    .iter()
                    .filter(|l| l.visible)
                    .map(|l| l.volume.clone()),
            );
        }
    }
    for (list, add) in [(&spec.select, true), (&spec.deselect, false)] {
        let key = if add { "select" } else { "deselect" };
        for name in list {
            let set = |s: &mut BTreeSet<String>, v: &str| {
                if add {
                    s.insert(v.to_string());
                } else {
                    s.remove(v);
                }
            };
            match lookup(inv, name) {
                None => {
                    return err(format!(
                        "{key}: {name} is not a volume on the disks planned (use the names `ferry inventory` prints: DISK, DISK:N, VG/LV)"
                    ));
                }
                Some(Named::Disk(d)) => {
                    for p in d
                        .partitions
                        .iter()
                        .filter(|p| p.content.is_some() && pv_vg(p).is_none())
                    {
                        set(&mut s.volumes, &p.volume);
                    }
                }
                Some(Named::Whole(d)) => {
                    if let Some(vg) = d.content.as_ref().and_then(|c| c.vg.as_deref()) {
                        return err(format!(
                            "{key}: {name} is an LVM PV of {vg}: {key} its logical volumes (VG/LV), or use all_vgs"
                        ));
                    }
                    set(&mut s.volumes, &d.path);
                }
                Some(Named::Part(p)) => {
                    if let Some(vg) = pv_vg(p) {
                        return err(format!(
                            "{key}: {name} is an LVM PV of {vg}: {key} its logical volumes (VG/LV), or use all_vgs"
                        ));
                    }
                    if p.content.is_none() {
                        return err(format!(
                            "{key}: {name} is an extended partition: {key} its logical partitions"
                        ));
                    }
                    set(&mut s.volumes, &p.volume);
                }
                Some(Named::Lv(l)) => set(&mut s.lvs, &l.volume),
            }
        }
    }
    for vg in &inv.volume_groups {
        let chosen: Vec<&LogicalVolume> = vg
            .lvs
            .iter()
            .filter(|l| s.lvs.contains(&l.volume))
            .collect();
        if chosen.is_empty() {
            continue;
        }
        if let Some(l) = chosen.iter().find(|l| !l.complete) {
            return err(format!(
                "{}: incomplete (a PV is missing or a segment type ferry does not map); deselect it",
                l.volume
            ));
        }
        if let Some(p) = vg.pvs.iter().find(|p| p.missing) {
            return err(format!(
                "{}: PV {} ({}) is missing, so the volume group cannot be migrated; deselect its LVs",
                vg.name, p.key, p.uuid
            ));
        }
        s.vgs.insert(vg.name.clone());
    }
    Ok(s)
}

/// A top-level slot in a partition table, or a logical partition inside the
/// extended one. `lead` is the room in front of it that moves with it (a
/// logical partition's EBR).
#[derive(Debug, Clone)]
struct Item {
    part: usize,
    start: u64,
    size: u64,
    lead: u64,
    grow: Option<u64>,
    children: Vec<Item>,
}

/// Where a partition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placed {
    start: u64,
    size: u64,
}

/// Lay items out in order: each stays where it is (shifted with its
/// container) unless the one before now runs into it; then it moves to the
/// next aligned start. Returns the end of the last one.
fn lay(items: &[Item], mut cursor: u64, delta: i128, out: &mut BTreeMap<usize, Placed>) -> u64 {
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
fn usable_end(table: &Table, size: u64, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => {
            let array = (*entries as u64 * GPT_ENTRY).div_ceil(ss);
            (size / ss).saturating_sub(1 + array) * ss
        }
        Table::Mbr { .. } => size / ss * ss,
    }
}

/// Bytes a table needs behind the last partition (GPT's backup).
fn tail(table: &Table, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => ((*entries as u64 * GPT_ENTRY).div_ceil(ss) + 1) * ss,
        Table::Mbr { .. } => 0,
    }
}

/// The sectors a table occupies at the front (written by the receiver, so
/// never sent as data).
fn head(table: &Table, ss: u64) -> u64 {
    match table {
        Table::Gpt { entries, .. } => ((*entries as u64 * GPT_ENTRY).div_ceil(ss) + 2) * ss,
        Table::Mbr { .. } => ss,
    }
}

/// Work out the plan.
pub fn compute(
    inv: &Inventory,
    spec: &PlanSpec,
    boot: &mut BootCode<'_>,
) -> Result<Planned, PlanError> {
    let sel = select(inv, spec)?;
    for name in spec.grow.keys() {
        if lookup(inv, name).is_none() {
            return err(format!("grow: {name} is not a volume on the disks planned"));
        }
    }
    for name in spec
        .target_size
        .keys()
        .chain(spec.targets.keys())
        .chain(&spec.disks)
    {
        match lookup(inv, name) {
            Some(Named::Disk(_) | Named::Whole(_)) => {}
            _ => {
                return err(format!(
                    "{name} is not a disk (the plan maps whole disks to targets)"
                ));
            }
        }
    }
    // Which disks go, in target order.
    let holds = |d: &Disk| -> bool {
        sel.volumes.contains(&d.path)
            || d.partitions.iter().any(|p| {
                sel.volumes.contains(&p.volume) || pv_vg(p).is_some_and(|vg| sel.vgs.contains(vg))
            })
            || d.content
                .as_ref()
                .and_then(|c| c.vg.as_deref())
                .is_some_and(|vg| sel.vgs.contains(vg))
    };
    let disks: Vec<&Disk> = if spec.disks.is_empty() {
        inv.disks.iter().filter(|d| holds(d)).collect()
    } else {
        let mut seen = BTreeSet::new();
        let mut v = Vec::new();
        for name in &spec.disks {
            if !seen.insert(name) {
                return err(format!("disks: {name} is listed twice"));
            }
            v.push(
                inv.disks
                    .iter()
                    .find(|d| &d.path == name)
                    .expect("looked up"),
            );
        }
        if let Some(d) = inv
            .disks
            .iter()
            .find(|d| holds(d) && !seen.contains(&d.path))
        {
            return err(format!(
                "{} holds selected volumes but is not in the plan's disks; add it or deselect them",
                d.path
            ));
        }
        v
    };
    if disks.is_empty() {
        return err("nothing is selected");
    }
    let mut targets = BTreeMap::new();
    for (i, d) in disks.iter().enumerate() {
        let t = spec.targets.get(&d.path).copied().unwrap_or(i as u32);
        if let Some(other) = targets.insert(t, d.path.clone()) {
            return err(format!("{} and {other} both map to target {t}", d.path));
        }
    }
    for vg in inv
        .volume_groups
        .iter()
        .filter(|vg| sel.vgs.contains(&vg.name))
    {
        for p in &vg.pvs {
            let on = p.volume.as_deref().unwrap_or("?");
            if !disks
                .iter()
                .any(|d| on == d.path || on.starts_with(&format!("{}:", d.path)))
            {
                return err(format!(
                    "{}: its PV {on} is on a disk the plan does not migrate; add that disk",
                    vg.name
                ));
            }
        }
    }

    let mut notes = Vec::new();
    let mut out = Vec::new();
    // New sizes of PV partitions (by volume name), for the VG arithmetic.
    let mut pv_sizes: BTreeMap<String, u64> = BTreeMap::new();
    for d in &disks {
        let target = targets
            .iter()
            .find(|(_, p)| **p == d.path)
            .map(|(t, _)| *t)
            .expect("mapped");
        let dp = plan_disk(inv, spec, &sel, d, target, boot, &mut notes)?;
        for r in &dp.rows {
            pv_sizes.insert(r.volume.clone(), r.new_size);
        }
        out.push(dp);
    }
    let vgs = plan_vgs(inv, spec, &sel, &pv_sizes, &mut out, &mut notes)?;
    Ok(Planned {
        disks: out,
        vgs,
        notes,
    })
}

fn grow_request(spec: &PlanSpec, volume: &str) -> Option<Grow> {
    spec.grow.get(volume).copied()
}

/// Check a size request against the current size; rounds up to `unit`.
fn requested(volume: &str, size: u64, want: u64, unit: u64) -> Result<u64, PlanError> {
    let want = align_up(want, unit);
    if want < size {
        return err(format!(
            "{volume}: cannot shrink from {size} to {want} bytes: volumes only grow"
        ));
    }
    Ok(want)
}

#[allow(clippy::too_many_arguments)]
fn plan_disk(
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
            size: d.size,
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
            action.push("container".to_string());
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
fn plan_whole(
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

/// A PV's bytes to send: its label and metadata, and the used bytes of the
/// selected LVs (hidden LVs, such as pool metadata, always go).
fn pv_used(
    inv: &Inventory,
    vg_name: &str,
    volume: &str,
    sel: &Selection,
) -> Result<RangeSet, PlanError> {
    let vg = inv
        .volume_groups
        .iter()
        .find(|v| v.name == vg_name)
        .ok_or_else(|| PlanError(format!("{volume}: volume group {vg_name} not found")))?;
    let k = vg
        .pvs
        .iter()
        .position(|p| p.volume.as_deref() == Some(volume))
        .ok_or_else(|| PlanError(format!("{volume}: not a PV of {vg_name}")))?;
    let meta = vg.meta();
    let mut out = vec![RangeSet::new(); meta.pvs.len()];
    for (i, l) in vg.lvs.iter().enumerate() {
        if l.visible && !sel.lvs.contains(&l.volume) {
            continue;
        }
        let lv = &meta.lvs[i];
        let mapped = l
            .content
            .as_ref()
            .and_then(|c| c.used_ranges.as_ref())
            .is_some_and(|u| map::used_on_pvs(&meta, lv, u, &mut out));
        if !mapped && !map::allocated_on_pvs(&meta, lv, &mut out) {
            return err(format!(
                "{}: its extents cannot be mapped onto its PVs",
                l.volume
            ));
        }
    }
    let mut used = std::mem::take(&mut out[k]);
    used.insert(0, vg.pvs[k].pe_start);
    Ok(used)
}

/// LVM: free extents after the PVs grew, LV growth, and the steps (on the
/// last target disk holding a PV of the group, after its pvresize).
fn plan_vgs(
    inv: &Inventory,
    spec: &PlanSpec,
    sel: &Selection,
    pv_sizes: &BTreeMap<String, u64>,
    disks: &mut [DiskPlan],
    notes: &mut Vec<String>,
) -> Result<Vec<VgPlan>, PlanError> {
    let mut out = Vec::new();
    for vg in &inv.volume_groups {
        let sent = sel.vgs.contains(&vg.name);
        let es = vg.extent_size.max(1);
        let extents_after: u64 = vg
            .pvs
            .iter()
            .map(|p| {
                let size = p.volume.as_deref().and_then(|v| pv_sizes.get(v)).copied();
                size.map_or(p.pe_count, |s| {
                    (s.saturating_sub(p.pe_start) / es).max(p.pe_count)
                })
            })
            .sum();
        let allocated = vg.extent_count - vg.free_extents;
        let mut free = extents_after.saturating_sub(allocated);
        let mut rows = Vec::new();
        let mut steps = Vec::new();
        let mut max: Option<usize> = None;
        let mut news: Vec<u64> = vg.lvs.iter().map(|l| l.size).collect();
        for (i, l) in vg.lvs.iter().enumerate() {
            let Some(g) = grow_request(spec, &l.volume) else {
                continue;
            };
            if !sel.lvs.contains(&l.volume) {
                return err(format!("grow: {} is not selected", l.volume));
            }
            let c = l
                .content
                .as_ref()
                .ok_or_else(|| PlanError(format!("grow: {}: not scanned", l.volume)))?;
            grow_step(
                &c.fs,
                Place::Lv {
                    vg: vg.name.clone(),
                    lv: l.name.clone(),
                },
                c,
            )
            .map_err(|why| PlanError(format!("grow: {}: {why}", l.volume)))?;
            match g {
                Grow::Max => {
                    if let Some(o) = max {
                        return err(format!(
                            "grow: {} and {} both ask for max in {}; only one LV per volume group can",
                            vg.lvs[o].volume, l.volume, vg.name
                        ));
                    }
                    max = Some(i);
                }
                Grow::To(n) => {
                    let want = requested(&l.volume, l.size, n, es)?;
                    let more = (want - l.size) / es;
                    if more > free {
                        return err(format!(
                            "grow: {} to {want} bytes needs {more} more extents, but {} has {free} free ({}) after its PVs grow; grow a PV or ask for less",
                            l.volume,
                            vg.name,
                            crate::units::human(free * es)
                        ));
                    }
                    free -= more;
                    news[i] = want;
                }
            }
        }
        if let Some(m) = max {
            news[m] += free * es;
            if free == 0 {
                notes.push(format!(
                    "{}: max leaves it at its size: {} has no free extents",
                    vg.lvs[m].volume, vg.name
                ));
            }
            free = 0;
        }
        for (i, l) in vg.lvs.iter().enumerate() {
            let selected = sel.lvs.contains(&l.volume) || (sent && !l.visible);
            if news[i] > l.size {
                steps.push(Step::LvExtend {
                    vg: vg.name.clone(),
                    lv: l.name.clone(),
                    size: news[i],
                });
                let c = l.content.as_ref().expect("checked above");
                let place = Place::Lv {
                    vg: vg.name.clone(),
                    lv: l.name.clone(),
                };
                if let Ok(Some(s)) = grow_step(&c.fs, place, c) {
                    steps.push(s);
                }
            }
            rows.push(LvRow {
                volume: l.volume.clone(),
                fs: fs_of(l.content.as_ref()).to_string(),
                size: l.size,
                new_size: news[i],
                used: if selected {
                    l.content.as_ref().map_or(0, |c| c.used_bytes)
                } else {
                    0
                },
                selected,
                action: if !sent {
                    "not selected".into()
                } else if !selected {
                    "not selected: stays empty".into()
                } else if news[i] > l.size {
                    format!("grow +{}", crate::units::human(news[i] - l.size))
                } else {
                    "copy".into()
                },
            });
        }
        if !steps.is_empty() {
            // After the pvresize of every PV: on the last disk holding one.
            let last = disks
                .iter_mut()
                .filter(|d| {
                    vg.pvs.iter().any(|p| {
                        p.volume.as_deref().is_some_and(|v| {
                            v == d.source || v.starts_with(&format!("{}:", d.source))
                        })
                    })
                })
                .max_by_key(|d| d.target)
                .expect("a sent VG's PVs are on planned disks");
            last.target_disk.steps.extend(steps);
        }
        out.push(VgPlan {
            name: vg.name.clone(),
            sent,
            extent_size: es,
            free_before: vg.free_extents * es,
            free_after: free * es,
            lvs: rows,
        });
    }
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_signature(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn parse_type_byte(s: &str) -> Option<u8> {
    u8::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}
