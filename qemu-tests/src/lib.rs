//! ferry's QEMU harness: boots guests from the boot image (`image/out/`)
//! under TCG, joins them with socket netdevs on 127.0.0.1, captures their
//! serial consoles, waits for markers with deadlines, and checks the
//! target disks and the receiver's report afterwards.
//!
//! - [`vm`]: the VM builder (kernel+initrd, ISO in BIOS or UEFI, PXE),
//!   disks, NICs, the QEMU process (its own process group, killed on drop).
//! - [`console`]: the serial console, read by a thread into a log file and
//!   a buffer that markers are awaited in.
//! - [`scenario`]: a scenario's work directory, its timing and the failure
//!   dump (console logs, QEMU command lines, notes) under
//!   `target/qemu-failures/<scenario>/`.
//! - [`disks`]: fixture images (scripts/fixtures.sh), source copies, blank
//!   targets.
//! - [`check`]: used-range comparison, fsck, expected digests, the control
//!   API's report.
//! - [`image`]: where the boot image is, and a PVH `vmlinux` made from its
//!   kernel for faster direct boots.
//! - [`bootdisk`]: scenario 7's real Linux disk (scripts/bootdisk.sh), a
//!   source whose initrd carries its job file, and guests that boot a disk
//!   through SeaBIOS.

pub mod bootdisk;
pub mod check;
pub mod console;
pub mod disks;
pub mod image;
pub mod migrate;
pub mod net;
pub mod scenario;
pub mod switch;
pub mod vm;

use std::path::PathBuf;

/// The workspace root (the ferry repository).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qemu-tests lives inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target/`
/// of the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace().join(p)
            }
        }
        _ => workspace().join("target"),
    }
}

/// Whether the QEMU scenarios run. They always do, unless `FERRY_QEMU=0`
/// says not to (a developer box without QEMU); CI never sets it.
pub fn enabled() -> bool {
    match std::env::var("FERRY_QEMU") {
        Ok(v) if v == "0" => {
            eprintln!("FERRY_QEMU=0: skipping the QEMU scenario");
            false
        }
        _ => true,
    }
}

/// Panics with the remedy unless running as root (fixtures need loop
/// devices and mkfs; QEMU itself does not).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the QEMU tier needs root (the fixtures use loop devices): run `scripts/test.sh qemu` as root"
    );
}
