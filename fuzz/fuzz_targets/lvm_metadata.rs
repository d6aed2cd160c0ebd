//! LVM: PV label and metadata area on arbitrary bytes, and the metadata text
//! parser, VG extraction and LV-to-PV mapping on arbitrary text.
#![no_main]
use ferry::disk::MemDisk;
use ferry::layout::lvm::{label, map, meta, text};
use ferry::layout::ranges::RangeSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(top) = text::parse(data) {
        if let Ok(vg) = meta::vg_from_text(&top) {
            for lv in &vg.lvs {
                let size = lv.extents() * vg.extent_size;
                let _ = map::locate(&vg, lv, size / 2, u64::MAX);
                let mut out = vec![RangeSet::new(); vg.pvs.len()];
                let _ = map::used_on_pvs(&vg, lv, &RangeSet::full(size), &mut out);
                let _ = map::allocated_on_pvs(&vg, lv, &mut out);
            }
        }
    }
    let _ = label::read_pv(&MemDisk(data.to_vec()));
});
