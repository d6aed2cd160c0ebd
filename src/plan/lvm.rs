//! LVM in a plan: which bytes of a PV go, the extents a grown PV frees,
//! LV growth and its steps.

use std::collections::BTreeMap;

use super::layout::*;
use super::select::Selection;
use super::spec::{Grow, PlanSpec};
use super::target::{Place, Step};
use crate::inventory::Inventory;
use crate::layout::lvm::map;
use crate::layout::ranges::RangeSet;

/// A PV's bytes to send: its label and metadata, and the used bytes of the
/// selected LVs (hidden LVs, such as pool metadata, always go).
pub(super) fn pv_used(
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
pub(super) fn plan_vgs(
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
