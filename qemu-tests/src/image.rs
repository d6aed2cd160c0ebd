//! The boot image the guests run: `scripts/build-image.sh`'s outputs in
//! `image/out/` (or `FERRY_IMAGE_DIR`), and a PVH `vmlinux` extracted from
//! its kernel so that direct kernel boots skip the decompressor and
//! SeaBIOS's real-mode path (about 2 s per boot under TCG).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The boot image's files.
#[derive(Debug, Clone)]
pub struct BootImage {
    pub dir: PathBuf,
    /// `ferry-vmlinuz` (bzImage).
    pub vmlinuz: PathBuf,
    /// `ferry-initrd.img`.
    pub initrd: PathBuf,
    /// `ferry.iso` (hybrid BIOS + UEFI).
    pub iso: PathBuf,
    /// The directory holding `ferry.ipxe` beside the kernel and initrd it
    /// loads (the TFTP root): the image directory itself, or its `pxe/`.
    pub pxe: PathBuf,
    /// The kernel QEMU's `-kernel` gets: a PVH `vmlinux` when one could be
    /// extracted, else `vmlinuz`.
    pub kernel: PathBuf,
}

/// The boot image, checked once; panics with the remedy when it is missing.
pub fn boot_image() -> &'static BootImage {
    static I: OnceLock<BootImage> = OnceLock::new();
    I.get_or_init(|| {
        let dir = std::env::var_os("FERRY_IMAGE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::workspace().join("image/out"));
        let img = BootImage {
            vmlinuz: dir.join("ferry-vmlinuz"),
            initrd: dir.join("ferry-initrd.img"),
            iso: dir.join("ferry.iso"),
            pxe: if dir.join("pxe/ferry.ipxe").is_file() {
                dir.join("pxe")
            } else {
                dir.clone()
            },
            kernel: dir.join("ferry-vmlinuz"),
            dir: dir.clone(),
        };
        for p in [&img.vmlinuz, &img.initrd] {
            assert!(
                p.is_file(),
                "{} is missing: build the boot image with scripts/build-image.sh \
                 (scripts/test.sh qemu does it when image/out is missing or stale)",
                p.display()
            );
        }
        let cache = crate::target_dir().join("qemu");
        std::fs::create_dir_all(&cache).unwrap();
        let kernel = pvh_vmlinux(&img.vmlinuz, &cache).unwrap_or(img.vmlinuz.clone());
        BootImage { kernel, ..img }
    })
}

/// The uncompressed kernel (`vmlinux`, an ELF with the PVH note) inside a
/// bzImage whose payload is xz: decompressed once into `cache` and reused
/// while newer than `vmlinuz`. `None` when there is no xz payload or no
/// PVH note (QEMU then boots the bzImage).
pub fn pvh_vmlinux(vmlinuz: &Path, cache: &Path) -> Option<PathBuf> {
    let out = cache.join("vmlinux");
    let newer = |a: &Path, b: &Path| -> bool {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        matches!((m(a), m(b)), (Some(x), Some(y)) if x >= y)
    };
    if out.is_file() && newer(&out, vmlinuz) {
        return Some(out);
    }
    let bytes = std::fs::read(vmlinuz).ok()?;
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
    let at = bytes.windows(XZ.len()).position(|w| w == XZ)?;
    let tmp = cache.join("vmlinux.tmp");
    let file = std::fs::File::create(&tmp).ok()?;
    let mut child = Command::new("xz")
        .args(["-dc", "-q", "-q"])
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        // xz stops at the end of its stream and may complain about the
        // bytes after it; what it wrote is checked below.
        let _ = stdin.write_all(&bytes[at..]);
    }
    let _ = child.wait();
    let elf = std::fs::read(&tmp).ok()?;
    // An ELF whose notes hold Xen's PVH entry (XEN_ELFNOTE_PHYS32_ENTRY, 18).
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || !has_pvh_note(&elf) {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    std::fs::rename(&tmp, &out).ok()?;
    Some(out)
}

/// Whether an ELF64 has a `Xen` note of type 18 (the PVH entry point).
fn has_pvh_note(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    for i in 0..phnum as usize {
        let ph = phoff as usize + i * phentsize as usize;
        if u32_at(ph) != Some(4) {
            continue; // PT_NOTE only
        }
        let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else {
            continue;
        };
        let (mut p, end) = (off as usize, (off + size) as usize);
        while p + 12 <= end {
            let (Some(namesz), Some(descsz), Some(ty)) = (u32_at(p), u32_at(p + 4), u32_at(p + 8))
            else {
                break;
            };
            let name = elf.get(p + 12..p + 12 + namesz as usize).unwrap_or(&[]);
            if ty == 18 && name.starts_with(b"Xen") {
                return true;
            }
            let pad = |n: u32| (n as usize).div_ceil(4) * 4;
            p += 12 + pad(namesz) + pad(descsz);
        }
    }
    false
}
