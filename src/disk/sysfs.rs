//! Block-device discovery and attributes from /sys, and what is using a disk
//! (mounts, swaps, holders, loop devices backed by an image file).
//!
//! Every function takes the sysfs and procfs roots so tests can point them at
//! a fake tree.

use std::fs;
use std::path::{Path, PathBuf};

/// Where to look; `Roots::system()` for the real machine.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Roots {
    pub fn system() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

/// Attributes of a block device as sysfs reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub rotational: Option<bool>,
    pub removable: Option<bool>,
    pub read_only: Option<bool>,
}

fn read_trim(p: &Path) -> Option<String> {
    let s = fs::read_to_string(p).ok()?;
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn read_bool(p: &Path) -> Option<bool> {
    read_trim(p).map(|s| s != "0")
}

/// Kernel name prefixes not listed unless named: loop, RAM disks, zram, and
/// device-mapper nodes (which map volumes already found on the real disks).
const SKIPPED: &[&str] = &["loop", "ram", "zram", "dm-"];

/// Whole-disk block devices under `/sys/block`, sorted by name, as `/dev/NAME`.
pub fn discover(roots: &Roots) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(roots.sys.join("block"))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if SKIPPED.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        // Empty drives (a CD tray with no medium) report size 0.
        if read_trim(&roots.sys.join("block").join(&name).join("size")).as_deref() == Some("0") {
            continue;
        }
        out.push(PathBuf::from("/dev").join(name));
    }
    out.sort();
    Ok(out)
}

/// The kernel name of a block device path (`/dev/sda` -> `sda`), following symlinks.
pub fn kernel_name(dev: &Path) -> Option<String> {
    let real = fs::canonicalize(dev).ok()?;
    Some(real.file_name()?.to_string_lossy().into_owned())
}

pub fn attrs(roots: &Roots, name: &str) -> Attrs {
    let b = roots.sys.join("block").join(name);
    let dev = b.join("device");
    Attrs {
        model: read_trim(&dev.join("model")),
        serial: read_trim(&dev.join("serial"))
            .or_else(|| read_trim(&b.join("serial")))
            .or_else(|| read_trim(&dev.join("wwid"))),
        rotational: read_bool(&b.join("queue/rotational")),
        removable: read_bool(&b.join("removable")),
        read_only: read_bool(&b.join("ro")),
    }
}

/// `major:minor` of the disk and each of its partitions, with kernel names.
fn dev_numbers(roots: &Roots, name: &str) -> Vec<(String, String)> {
    let b = roots.sys.join("block").join(name);
    let mut out = Vec::new();
    if let Some(d) = read_trim(&b.join("dev")) {
        out.push((name.to_string(), d));
    }
    if let Ok(rd) = fs::read_dir(&b) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(d) = read_trim(&e.path().join("dev")).filter(|_| n.starts_with(name)) {
                out.push((n, d));
            }
        }
    }
    out.sort();
    out
}

/// Why a block device (by kernel name) is in use: mounts, swaps and holders of
/// the disk or any of its partitions. Empty when nothing uses it.
pub fn in_use(roots: &Roots, name: &str) -> Vec<String> {
    let mut why = Vec::new();
    let numbers = dev_numbers(roots, name);
    if let Ok(mi) = fs::read_to_string(roots.proc.join("self/mountinfo")) {
        for line in mi.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 5 {
                continue;
            }
            if let Some((n, _)) = numbers.iter().find(|(_, d)| d == f[2]) {
                why.push(format!("{n} mounted on {}", f[4]));
            }
        }
    }
    if let Ok(sw) = fs::read_to_string(roots.proc.join("swaps")) {
        for line in sw.lines().skip(1) {
            let file = line.split_whitespace().next().unwrap_or("");
            let base = file.rsplit('/').next().unwrap_or("");
            if numbers.iter().any(|(n, _)| n == base) {
                why.push(format!("{base} is active swap"));
            }
        }
    }
    let b = roots.sys.join("block").join(name);
    for (n, _) in &numbers {
        let dir = if n == name {
            b.join("holders")
        } else {
            b.join(n).join("holders")
        };
        if let Ok(rd) = fs::read_dir(dir) {
            for h in rd.flatten() {
                why.push(format!(
                    "{n} is held by {}",
                    h.file_name().to_string_lossy()
                ));
            }
        }
    }
    why
}

/// Loop devices whose backing file is `file`, as kernel names.
pub fn loops_backed_by(roots: &Roots, file: &Path) -> Vec<String> {
    let Ok(want) = fs::canonicalize(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(roots.sys.join("block")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !n.starts_with("loop") {
                continue;
            }
            let bf = read_trim(&e.path().join("loop/backing_file"));
            if bf.is_some_and(|bf| Path::new(&bf) == want) {
                out.push(n);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    #[test]
    fn fake_tree() {
        let t = tempfile::tempdir().unwrap();
        let roots = Roots {
            sys: t.path().join("sys"),
            proc: t.path().join("proc"),
        };
        let s = &roots.sys;
        write(&s.join("block/sda/dev"), "8:0\n");
        write(&s.join("block/sda/size"), "2048\n");
        write(&s.join("block/sda/device/model"), "QEMU HARDDISK   \n");
        write(&s.join("block/sda/device/serial"), "QM00001\n");
        write(&s.join("block/sda/queue/rotational"), "1\n");
        write(&s.join("block/sda/removable"), "0\n");
        write(&s.join("block/sda/ro"), "0\n");
        write(&s.join("block/sda/sda1/dev"), "8:1\n");
        write(&s.join("block/sda/sda2/dev"), "8:2\n");
        write(&s.join("block/sda/sda2/holders/dm-0"), "");
        write(&s.join("block/sr0/size"), "0\n");
        write(&s.join("block/loop0/size"), "100\n");
        write(&s.join("block/nvme0n1/size"), "100\n");
        write(
            &roots.proc.join("self/mountinfo"),
            "22 1 8:1 / /boot rw,relatime - ext4 /dev/sda1 rw\n23 1 0:5 / /proc rw - proc proc rw\n",
        );
        write(
            &roots.proc.join("swaps"),
            "Filename Type Size Used Priority\n",
        );

        let disks = discover(&roots).unwrap();
        assert_eq!(
            disks,
            vec![PathBuf::from("/dev/nvme0n1"), PathBuf::from("/dev/sda")]
        );
        let a = attrs(&roots, "sda");
        assert_eq!(a.model.as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(a.serial.as_deref(), Some("QM00001"));
        assert_eq!(a.rotational, Some(true));
        assert_eq!(a.read_only, Some(false));
        let why = in_use(&roots, "sda");
        assert_eq!(
            why,
            vec![
                "sda1 mounted on /boot".to_string(),
                "sda2 is held by dm-0".to_string()
            ]
        );
        assert!(in_use(&roots, "nvme0n1").is_empty());
    }
}
