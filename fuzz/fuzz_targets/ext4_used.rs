//! ext2/3/4 superblock, group descriptors and block bitmaps on arbitrary bytes.
#![no_main]
use ferry::disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = MemDisk(data.to_vec());
    if let Ok(Some(_)) = ferry::layout::fs::ext::probe(&d) {
        let _ = ferry::layout::fs::ext::used(&d);
    }
});
