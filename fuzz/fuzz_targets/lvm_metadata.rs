//! LVM: PV label and metadata area on arbitrary bytes, and the metadata text
//! parser plus VG extraction on arbitrary text.
#![no_main]
use ferry::disk::MemDisk;
use ferry::layout::lvm::{label, meta, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(top) = text::parse(data) {
        let _ = meta::vg_from_text(&top);
    }
    let _ = label::read_pv(&MemDisk(data.to_vec()));
});
