//! Which volumes a plan migrates: the defaults (the system, swap, every
//! volume group) and the technician's additions and removals.

use std::collections::BTreeSet;

use super::layout::{BIOS_BOOT, ESP, PlanError, err};
use super::spec::PlanSpec;
use crate::inventory::{Disk, Inventory, LogicalVolume, Partition};

/// Selected unless deselected: a partition holding a filesystem or swap (or
/// an encrypted container), a BIOS boot or EFI system partition.
pub(super) fn system_partition(p: &Partition) -> bool {
    let ty = p.type_id.to_ascii_uppercase();
    if ty == BIOS_BOOT || ty == ESP || ty == "0XEF" {
        return true;
    }
    matches!(p.content.as_ref().map(|c| c.fs.as_str()), Some(fs) if fs != "unknown")
}

/// What the names in a spec refer to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Named<'a> {
    /// A disk with a partition table.
    Disk(&'a Disk),
    /// A disk with no table: one volume.
    Whole(&'a Disk),
    Part(&'a Partition),
    Lv(&'a LogicalVolume),
}

pub(super) fn lookup<'a>(inv: &'a Inventory, name: &str) -> Option<Named<'a>> {
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

pub(super) fn pv_vg(p: &Partition) -> Option<&str> {
    p.content.as_ref().and_then(|c| c.vg.as_deref())
}

/// The selection: partitions and whole disks by volume name, LVs by `VG/LV`.
pub(super) struct Selection {
    pub(super) volumes: BTreeSet<String>,
    pub(super) lvs: BTreeSet<String>,
    /// VGs with at least one selected LV: their PVs are sent.
    pub(super) vgs: BTreeSet<String>,
}

pub(super) fn select(inv: &Inventory, spec: &PlanSpec) -> Result<Selection, PlanError> {
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
