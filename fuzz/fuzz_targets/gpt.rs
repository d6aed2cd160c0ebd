//! GPT reader on arbitrary disk bytes (both sector sizes are tried).
#![no_main]
use ferry::disk::MemDisk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferry::layout::gpt::read(&MemDisk(data.to_vec()), None);
});
