//! Helpers shared by the root-tier tests: fixtures, loop devices, tools.
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ferry::inventory::{Content, Inventory, InventoryConfig, inventory};
use serde_json::Value;

pub mod inproc;
pub mod receiver;

/// The fixture directory built by `scripts/fixtures.sh`, or a loud failure
/// with the remedy. Root tests never skip.
pub fn fixtures() -> PathBuf {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "root-tier tests need root (loop devices, mount): run scripts/test.sh as root"
    );
    let dir = std::env::var_os("FERRY_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "FERRY_FIXTURES is not set: build the fixtures with `scripts/fixtures.sh DIR` and set \
             FERRY_FIXTURES=DIR (scripts/test.sh does both)"
        )
    });
    assert!(
        dir.join("manifest.json").is_file(),
        "{}/manifest.json missing: run scripts/fixtures.sh {}",
        dir.display(),
        dir.display()
    );
    assert!(
        Path::new("/dev/loop-control").exists(),
        "no /dev/loop-control: load the loop module (modprobe loop)"
    );
    dir
}

pub fn manifest() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// Run a command, panic with its stderr on failure, return stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device, detached on drop.
pub struct Loop(pub String);

impl Loop {
    pub fn attach(
        file: &Path,
        offset: u64,
        size: Option<u64>,
        sector: Option<u32>,
        read_only: bool,
    ) -> Loop {
        let mut args = vec![
            "--find".to_string(),
            "--show".into(),
            "--offset".into(),
            offset.to_string(),
        ];
        if let Some(s) = size {
            args.extend(["--sizelimit".into(), s.to_string()]);
        }
        if let Some(s) = sector {
            args.extend(["--sector-size".into(), s.to_string()]);
        }
        if read_only {
            args.push("--read-only".into());
        }
        args.push(file.display().to_string());
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        Loop(run("losetup", &a).trim().to_string())
    }
    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// A mount point, unmounted on drop.
pub struct Mount(pub tempfile::TempDir);

impl Mount {
    /// Read-only, without replaying a journal.
    pub fn new(dev: &Path, fstype: &str) -> Mount {
        let opts = match fstype {
            "xfs" => "ro,nouuid,norecovery",
            "ext2" => "ro",
            _ => "ro,noload",
        };
        Mount::with(dev, fstype, opts)
    }
    /// Read-write, for files written inside it.
    pub fn writable(dev: &Path, fstype: &str) -> Mount {
        Mount::with(dev, fstype, "rw")
    }
    fn with(dev: &Path, fstype: &str, opts: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                fstype,
                "-o",
                opts,
                &dev.display().to_string(),
                &dir.path().display().to_string(),
            ],
        );
        Mount(dir)
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// sha256 of every regular file and the target of every symlink under `root`,
/// keyed by relative path.
pub fn digests(root: &Path) -> Vec<(String, String)> {
    let out = run(
        "sh",
        &[
            "-c",
            &format!(
                "cd '{}' && find . -type f -print0 | sort -z | xargs -0r sha256sum; find . -type l -printf '%p -> %l\\n' | sort",
                root.display()
            ),
        ],
    );
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.contains("lost+found"))
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap_or((l, ""));
            (b.trim().to_string(), a.to_string())
        })
        .collect();
    v.sort();
    v
}

/// Every volume of the manifest: (image, volume json).
pub fn manifest_volumes() -> Vec<(&'static Value, &'static Value)> {
    let m = manifest();
    let mut out = Vec::new();
    for img in m["images"].as_array().unwrap() {
        for v in img["volumes"].as_array().unwrap() {
            out.push((img, v));
        }
    }
    out
}

/// The LVs of the manifest.
pub fn manifest_lvs() -> Vec<&'static Value> {
    manifest()["vgs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vg| vg["lvs"].as_array().unwrap())
        .collect()
}

/// Rebuild an LV's bytes from its segments as the manifest (i.e. `lvs`) describes
/// them, independently of ferry's own mapping; written to a new sparse file.
pub fn rebuild_lv(lv: &Value, out: &Path) {
    let dir = fixtures();
    let f = File::create(out).unwrap();
    f.set_len(lv["size"].as_u64().unwrap()).unwrap();
    for seg in lv["segments"].as_array().unwrap() {
        let lv_off = seg["lv_offset"].as_u64().unwrap();
        let size = seg["size"].as_u64().unwrap();
        let stripes: Vec<(File, u64)> = seg["stripes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    File::open(dir.join(s["image"].as_str().unwrap())).unwrap(),
                    s["offset"].as_u64().unwrap(),
                )
            })
            .collect();
        let chunk = match seg["stripe_size"].as_u64().unwrap() {
            0 => size,
            n => n,
        };
        let n = stripes.len() as u64;
        let mut buf = vec![0u8; chunk.min(8 << 20) as usize];
        let mut pos = 0;
        while pos < size {
            let c = pos / chunk;
            let (src, base) = &stripes[(c % n) as usize];
            let src_off = base + (c / n) * chunk + pos % chunk;
            let len = (chunk - pos % chunk).min(size - pos).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..len], src_off).unwrap();
            f.write_all_at(&buf[..len], lv_off + pos).unwrap();
            pos += len as u64;
        }
    }
}

/// `(block count, free blocks, block size)` from dumpe2fs -h.
pub fn dumpe2fs(dev: &Path) -> (u64, u64, u64) {
    let out = run("dumpe2fs", &["-h", &dev.display().to_string()]);
    let field = |k: &str| -> u64 {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (
        field("Block count"),
        field("Free blocks"),
        field("Block size"),
    )
}

/// Copy only `ranges` of `[off, off+size)` of `src` into a new zeroed file.
pub fn copy_used(
    src: &Path,
    off: u64,
    size: u64,
    ranges: &ferry::layout::ranges::RangeSet,
    dst: &Path,
) {
    let s = File::open(src).unwrap();
    let d = File::create(dst).unwrap();
    d.set_len(size).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for (a, b) in ranges.iter() {
        let mut p = a;
        while p < b {
            let n = ((b - p) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], off + p).unwrap();
            d.write_all_at(&buf[..n], p).unwrap();
            p += n as u64;
        }
    }
}

pub fn images() -> Vec<PathBuf> {
    let dir = fixtures();
    manifest()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| dir.join(i["path"].as_str().unwrap()))
        .collect()
}

pub fn inv() -> &'static Inventory {
    static I: OnceLock<Inventory> = OnceLock::new();
    I.get_or_init(|| {
        let cfg = InventoryConfig {
            paths: images(),
            with_ranges: true,
            ..Default::default()
        };
        let inv = inventory(&cfg).unwrap();
        assert!(
            inv.errors.is_empty(),
            "fixtures must inventory cleanly: {:?}",
            inv.errors
        );
        inv
    })
}

/// Content of a volume by its name (`gpt.img:3`, `whole.img`, `vg0/root`), with its size.
pub fn content(name: &str) -> (&'static Content, u64) {
    let inv = inv();
    let short = |p: &str| {
        Path::new(p)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for d in &inv.disks {
        if short(&d.path) == name {
            return (d.content.as_ref().expect("whole-disk content"), d.size);
        }
        for p in &d.partitions {
            if format!("{}:{}", short(&d.path), p.number) == name {
                return (p.content.as_ref().expect("partition content"), p.size);
            }
        }
    }
    for vg in &inv.volume_groups {
        for lv in &vg.lvs {
            if lv.volume == name {
                return (lv.content.as_ref().expect("LV content"), lv.size);
            }
        }
    }
    panic!("volume {name} not in the inventory");
}

pub fn disk(name: &str) -> &'static ferry::inventory::Disk {
    inv()
        .disks
        .iter()
        .find(|d| d.path.ends_with(&format!("/{name}")))
        .unwrap()
}
