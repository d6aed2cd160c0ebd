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

use super::disk::plan_disk;
use super::lvm::plan_vgs;
use super::select::{Named, lookup, pv_vg, select};
use super::spec::{Grow, PlanSpec};
use super::target::{Place, Step, TargetDisk, TargetPlan};
use crate::inventory::{Content, Disk, Inventory};
use crate::layout::ranges::RangeSet;
use std::collections::{BTreeMap, BTreeSet};

/// New partition starts are aligned to this.
pub const ALIGN: u64 = 1 << 20;
/// GPT entries are this many bytes.
pub(super) const GPT_ENTRY: u64 = 128;
/// The largest sector number (exclusive) an MBR entry can hold.
pub(super) const MBR_LIMIT: u64 = 1 << 32;

pub(super) const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
pub(super) const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// Why a plan cannot be made; one line naming the volume, disk or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
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

pub(super) fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub(super) fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Filesystems ferry grows, and how.
pub(super) fn grow_step(fs: &str, place: Place, content: &Content) -> Result<Option<Step>, String> {
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

pub(super) fn fs_of(c: Option<&Content>) -> &str {
    c.map_or("-", |c| c.fs.as_str())
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

pub(super) fn grow_request(spec: &PlanSpec, volume: &str) -> Option<Grow> {
    spec.grow.get(volume).copied()
}

/// Check a size request against the current size; rounds up to `unit`.
pub(super) fn requested(volume: &str, size: u64, want: u64, unit: u64) -> Result<u64, PlanError> {
    let want = align_up(want, unit);
    if want < size {
        return err(format!(
            "{volume}: cannot shrink from {} to {} ({size} to {want} bytes): volumes only grow",
            crate::units::human(size),
            crate::units::human(want)
        ));
    }
    Ok(want)
}
