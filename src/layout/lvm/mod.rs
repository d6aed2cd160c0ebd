//! LVM2, read-only and in pure Rust: PV labels, metadata areas, the VG text,
//! and volume groups assembled across every disk and partition scanned.
//!
//! (The C library `lvm2app` that bindings used to wrap was removed in LVM2
//! 2.03; changes on a target are made later with the real `lvm` tools.)

pub mod label;
pub mod map;
pub mod meta;
pub mod text;

use std::collections::BTreeMap;

use crate::disk::ReadAt;
use crate::layout::{LayoutError, corrupt};
pub use label::{MdaText, PvLabel};
pub use meta::{LvMeta, PvMeta, Segment, VgMeta};

/// LVM's PV/VG/LV UUID text form: 32 characters grouped 6-4-4-4-4-4-6.
pub fn format_uuid(raw: &[u8]) -> String {
    let s: String = raw
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    let groups = [6, 4, 4, 4, 4, 4, 6];
    let mut out = String::new();
    let mut rest: &str = &s;
    for (i, g) in groups.iter().enumerate() {
        if rest.is_empty() {
            break;
        }
        let n = (*g).min(rest.len());
        if i > 0 {
            out.push('-');
        }
        out.push_str(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn bare(uuid: &str) -> String {
    uuid.chars().filter(|&c| c != '-').collect()
}

/// A PV found on a scanned volume.
pub struct FoundPv<'a> {
    /// The volume's name (`disk.img:5`, `/dev/sdb`).
    pub volume: String,
    pub dev: &'a dyn ReadAt,
    pub label: PvLabel,
    pub text: Option<MdaText>,
}

/// The device behind one of a VG's PVs.
#[derive(Clone, Copy)]
pub struct PvDevice<'a> {
    /// Index into the `found` slice given to [`assemble`].
    pub found: usize,
    pub dev: &'a dyn ReadAt,
}

/// A volume group with its PVs matched to scanned devices.
pub struct VolumeGroup<'a> {
    pub meta: VgMeta,
    /// One entry per `meta.pvs`; `None` when that PV was not found.
    pub devices: Vec<Option<PvDevice<'a>>>,
}

impl<'a> VolumeGroup<'a> {
    pub fn missing_pvs(&self) -> impl Iterator<Item = &PvMeta> {
        self.meta
            .pvs
            .iter()
            .zip(&self.devices)
            .filter(|(_, d)| d.is_none())
            .map(|(p, _)| p)
    }

    /// A readable view of LV `i` (reads of extents on missing PVs fail).
    pub fn lv_view(&self, i: usize) -> map::LvView<'_> {
        let pvs = self.devices.iter().map(|d| d.map(|d| d.dev)).collect();
        map::LvView::new(&self.meta, &self.meta.lvs[i], pvs)
    }

    /// Whether every segment of LV `i` is mapped and on a present PV.
    pub fn lv_complete(&self, i: usize) -> bool {
        self.meta.lvs[i].segments.iter().all(|s| {
            s.is_mapped()
                && s.stripes.iter().all(|st| {
                    self.meta
                        .pvs
                        .iter()
                        .position(|p| p.key == st.pv)
                        .is_some_and(|k| self.devices[k].is_some())
                })
        })
    }
}

/// Result of assembling VGs from every PV found.
pub struct Assembly<'a> {
    pub vgs: Vec<VolumeGroup<'a>>,
    /// Indexes into `found` of PVs that belong to no VG (fresh `pvcreate`).
    pub orphans: Vec<usize>,
    /// Metadata that could not be parsed: `(index into found, error)`.
    pub errors: Vec<(usize, LayoutError)>,
    /// PVs whose UUID an earlier PV already has (the same disk seen twice,
    /// multipath, a cloned disk): `(index, index of the first)`. They are not
    /// used to assemble VGs.
    pub duplicates: Vec<(usize, usize)>,
}

/// Group PVs by VG (newest metadata wins), match each metadata PV to a scanned
/// device by UUID. A PV the metadata names but no scanned device carries is
/// reported missing, not fatal.
pub fn assemble<'a>(found: &[FoundPv<'a>]) -> Assembly<'a> {
    let mut errors = Vec::new();
    let mut duplicates = Vec::new();
    let mut newest: BTreeMap<String, VgMeta> = BTreeMap::new();
    for (i, pv) in found.iter().enumerate() {
        if let Some(first) = found[..i]
            .iter()
            .position(|f| f.label.uuid == pv.label.uuid)
        {
            duplicates.push((i, first));
            continue;
        }
        let Some(t) = &pv.text else { continue };
        let parsed = text::parse(&t.text)
            .map_err(|e| e.to_string())
            .and_then(|top| meta::vg_from_text(&top));
        match parsed {
            Ok(vg) => {
                let keep = newest.get(&vg.uuid).is_none_or(|old| old.seqno < vg.seqno);
                if keep {
                    newest.insert(vg.uuid.clone(), vg);
                }
            }
            Err(e) => errors.push((i, corrupt(t.mda_offset, format!("LVM metadata: {e}")))),
        }
    }
    let mut claimed = vec![false; found.len()];
    let mut vgs: Vec<VolumeGroup> = newest
        .into_values()
        .map(|meta| {
            let devices = meta
                .pvs
                .iter()
                .map(|p| {
                    let want = bare(&p.uuid);
                    found.iter().position(|f| f.label.uuid == want).map(|k| {
                        claimed[k] = true;
                        PvDevice {
                            found: k,
                            dev: found[k].dev,
                        }
                    })
                })
                .collect();
            VolumeGroup { meta, devices }
        })
        .collect();
    vgs.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    let orphans = (0..found.len())
        .filter(|&i| {
            !claimed[i]
                && !errors.iter().any(|(k, _)| *k == i)
                && !duplicates.iter().any(|(k, _)| *k == i)
        })
        .collect();
    Assembly {
        vgs,
        orphans,
        errors,
        duplicates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    #[test]
    fn assembles_across_disks_and_reports_missing() {
        let text = meta::tests_sample();
        // The label UUID in make_pv is AAAAAAbbbb...; it matches pv0.
        let d = MemDisk(label::tests::make_pv(
            4 << 20,
            1 << 16,
            text.as_bytes(),
            512,
        ));
        let (lab, t) = label::read_pv(&d).unwrap().unwrap();
        let found = vec![FoundPv {
            volume: "a.img".into(),
            dev: &d,
            label: lab,
            text: t,
        }];
        let asm = assemble(&found);
        assert!(asm.errors.is_empty());
        assert_eq!(asm.vgs.len(), 1);
        let vg = &asm.vgs[0];
        assert_eq!(vg.meta.name, "vg0");
        assert!(vg.devices[0].is_some());
        assert_eq!(
            vg.missing_pvs().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            vec!["pv1"]
        );
        assert!(!vg.lv_complete(0), "root has a segment on the missing pv1");

        // The same PV seen twice is reported, and not an orphan.
        let (lab, t) = label::read_pv(&d).unwrap().unwrap();
        let mut found = found;
        found.push(FoundPv {
            volume: "b.img".into(),
            dev: &d,
            label: lab,
            text: t,
        });
        let asm = assemble(&found);
        assert_eq!(asm.duplicates, vec![(1, 0)]);
        assert!(asm.orphans.is_empty());
        assert!(asm.vgs[0].devices[0].is_some_and(|d| d.found == 0));
    }

    #[test]
    fn uuid_format() {
        assert_eq!(
            format_uuid(b"AAAAAAbbbbccccddddeeeeffffGGGGGG"),
            "AAAAAA-bbbb-cccc-dddd-eeee-ffff-GGGGGG"
        );
        assert_eq!(format_uuid("é".as_bytes()), "??");
    }
}
