//! MBR reader and EBR chain walk on arbitrary disk bytes.
#![no_main]
use ferry::disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = MemDisk(data.to_vec());
    if ferry::layout::mbr::looks_like_mbr(&d).unwrap_or(false) {
        let _ = ferry::layout::mbr::read(&d, 512);
    }
});
