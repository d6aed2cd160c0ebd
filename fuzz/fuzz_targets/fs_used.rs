//! Every filesystem probe and used map (xfs, vfat, ntfs, swap, btrfs, LUKS,
//! RAID, ...) on arbitrary volume bytes.
#![no_main]
use ferry::disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = MemDisk(data.to_vec());
    if let Ok(info) = ferry::layout::fs::detect(&d) {
        let _ = ferry::layout::fs::used_map(&d, &info);
    }
});
