//! Opening the volumes a transfer sends, by the names the inventory prints:
//! a whole disk (`/dev/sda`, `disk.img`), a partition (`disk.img:2`) or an LVM
//! logical volume (`vg0/root`). Each comes with its used map and a reader the
//! pipeline's worker threads can share. Everything is opened read-only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::disk::sysfs::{self, Roots};
use crate::disk::{ReadAt, SharedReader, Slice, SourceDisk};
use crate::inventory::{Disk, Inventory, InventoryConfig, inventory};
use crate::layout::lvm::map::SharedLv;
use crate::layout::ranges::RangeSet;
use crate::plan::target::BOOT_CODE_LEN;
use crate::plan::{PlanSpec, Planned, compute};

/// A volume ready to be read.
pub struct SourceVolume {
    /// The inventory's name for it.
    pub name: String,
    pub size: u64,
    /// The byte ranges to send; nothing else is read.
    pub used: RangeSet,
    pub reader: SharedReader,
    /// The receiver's target it goes to; volume byte `x` lands at
    /// `base + x` on it.
    pub target: u32,
    pub base: u64,
}

impl std::fmt::Debug for SourceVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceVolume")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("used", &self.used.total())
            .field("target", &self.target)
            .field("base", &self.base)
            .finish()
    }
}

/// What a volume name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Disk(PathBuf),
    Partition(PathBuf, u32),
    Lv(String, String),
}

fn parse_name(name: &str) -> anyhow::Result<Name> {
    if Path::new(name).exists() {
        return Ok(Name::Disk(name.into()));
    }
    if let Some((disk, Ok(n))) = name.rsplit_once(':').map(|(d, n)| (d, n.parse::<u32>()))
        && Path::new(disk).exists()
    {
        return Ok(Name::Partition(disk.into(), n));
    }
    match name.split_once('/') {
        Some((vg, lv)) if !vg.is_empty() && !lv.is_empty() && !lv.contains('/') => {
            Ok(Name::Lv(vg.into(), lv.into()))
        }
        _ => bail!(
            "{name}: no such disk or image file, partition (DISK:N) or logical volume (VG/LV)"
        ),
    }
}

/// Open `names`. `scan` lists extra disks or image files to search for the
/// PVs of named LVs; when an LV is named and `scan` is empty, every block
/// device is searched. Damage on a disk the volumes live on is an error.
pub fn open_volumes(
    names: &[String],
    scan: &[PathBuf],
    roots: &Roots,
) -> anyhow::Result<Vec<SourceVolume>> {
    anyhow::ensure!(!names.is_empty(), "no volumes to send");
    let parsed: Vec<Name> = names
        .iter()
        .map(|n| parse_name(n))
        .collect::<anyhow::Result<_>>()?;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut add = |p: &Path| {
        if !paths.iter().any(|q| q == p) {
            paths.push(p.to_path_buf());
        }
    };
    for n in &parsed {
        match n {
            Name::Disk(p) | Name::Partition(p, _) => add(p),
            Name::Lv(..) => {}
        }
    }
    scan.iter().for_each(|p| add(p));
    if parsed.iter().any(|n| matches!(n, Name::Lv(..))) && scan.is_empty() {
        for p in sysfs::discover(roots).context("listing block devices to find LVM PVs")? {
            add(&p);
        }
    }
    let cfg = InventoryConfig {
        paths,
        with_ranges: true,
        roots: roots.clone(),
    };
    let inv = inventory(&cfg)?;
    let mut readers = Readers::default();
    // Without a plan, volume N goes to target N at the same offsets.
    parsed
        .iter()
        .zip(names)
        .enumerate()
        .map(|(i, (n, name))| {
            let mut v = open_one(&inv, n, name, &mut readers)?;
            v.target = i as u32;
            Ok(v)
        })
        .collect()
}

/// Work out a plan on the disks it names (every block device when it names
/// none, plus `scan`) and open what it reads: the bytes in front of each
/// disk's partitions and the selected partitions (an LV travels inside its
/// PVs). Damage on a planned disk is an error.
pub fn open_plan(
    spec: &PlanSpec,
    scan: &[PathBuf],
    roots: &Roots,
) -> anyhow::Result<(Planned, Vec<SourceVolume>)> {
    let mut paths: Vec<PathBuf> = spec
        .disks
        .iter()
        .chain(spec.targets.keys())
        .chain(spec.target_size.keys())
        .map(PathBuf::from)
        .chain(scan.iter().cloned())
        .collect();
    if spec.disks.is_empty() {
        paths.extend(sysfs::discover(roots).context("listing block devices")?);
    }
    paths.sort();
    paths.dedup();
    let cfg = InventoryConfig {
        paths,
        with_ranges: true,
        roots: roots.clone(),
    };
    let inv = inventory(&cfg)?;
    let mut readers = Readers::default();
    let planned = compute(&inv, spec, &mut |d| {
        let disk = readers.disk(&d.path).map_err(|e| format!("{e:#}"))?;
        let mut code = vec![0u8; BOOT_CODE_LEN];
        disk.read_exact_at(&mut code, 0)
            .map_err(|e| e.to_string())?;
        Ok(code)
    })?;
    for d in &planned.disks {
        let disk = inv
            .disks
            .iter()
            .find(|x| x.path == d.source)
            .expect("planned from this inventory");
        check_clean(&inv, disk, &d.source)?;
    }
    let volumes = planned
        .volumes()
        .map(|p| {
            Ok(SourceVolume {
                name: p.name.clone(),
                size: p.size,
                used: p.used.clone(),
                reader: readers.volume(&inv, &p.name)?,
                target: p.target,
                base: p.base,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((planned, volumes))
}

/// Opened disks and partition readers, shared between volumes.
#[derive(Default)]
struct Readers {
    disks: HashMap<String, Arc<SourceDisk>>,
}

impl Readers {
    fn disk(&mut self, path: &str) -> anyhow::Result<Arc<SourceDisk>> {
        if let Some(d) = self.disks.get(path) {
            return Ok(d.clone());
        }
        let d = Arc::new(
            SourceDisk::open(Path::new(path))
                .with_context(|| format!("opening {path}"))?
                .with_direct(),
        );
        self.disks.insert(path.to_string(), d.clone());
        Ok(d)
    }

    /// A reader for a disk or partition volume name as the inventory spells it.
    fn volume(&mut self, inv: &Inventory, volume: &str) -> anyhow::Result<SharedReader> {
        for d in &inv.disks {
            if d.path == volume {
                return Ok(self.disk(&d.path)?);
            }
            if let Some(p) = d.partitions.iter().find(|p| p.volume == volume) {
                let disk = self.disk(&d.path)?;
                return Ok(Arc::new(Slice::new(disk, p.start, p.size)?));
            }
        }
        bail!("{volume}: not found")
    }
}

fn check_clean(inv: &Inventory, disk: &Disk, name: &str) -> anyhow::Result<()> {
    let mine = |v: &str| v == disk.path || v.starts_with(&format!("{}:", disk.path));
    let problems: Vec<String> = inv
        .errors
        .iter()
        .filter(|e| mine(&e.volume))
        .map(|e| e.to_string())
        .collect();
    if !problems.is_empty() {
        bail!(
            "{name}: its disk has damage ferry will not copy around:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

fn open_one(
    inv: &Inventory,
    n: &Name,
    name: &str,
    readers: &mut Readers,
) -> anyhow::Result<SourceVolume> {
    let find_disk = |p: &Path| -> anyhow::Result<&Disk> {
        let want = p.display().to_string();
        inv.disks
            .iter()
            .find(|d| d.path == want)
            .ok_or_else(|| anyhow::anyhow!("{name}: {want} could not be opened"))
    };
    match n {
        Name::Disk(p) => {
            let d = find_disk(p)?;
            check_clean(inv, d, name)?;
            Ok(SourceVolume {
                name: name.to_string(),
                size: d.size,
                used: d.used_ranges.clone().expect("ranges were asked for"),
                reader: readers.volume(inv, &d.path)?,
                target: 0,
                base: 0,
            })
        }
        Name::Partition(p, num) => {
            let d = find_disk(p)?;
            check_clean(inv, d, name)?;
            let part = d
                .partitions
                .iter()
                .find(|x| x.number == *num)
                .ok_or_else(|| anyhow::anyhow!("{name}: {} has no partition {num}", d.path))?;
            let used = match &part.content {
                Some(c) => c.used_ranges.clone().expect("ranges were asked for"),
                None => bail!(
                    "{name}: an extended partition is a container; name its logical partitions"
                ),
            };
            Ok(SourceVolume {
                name: name.to_string(),
                size: part.size,
                used,
                reader: readers.volume(inv, &part.volume)?,
                target: 0,
                base: 0,
            })
        }
        Name::Lv(vg_name, lv_name) => {
            let vg = inv
                .volume_groups
                .iter()
                .find(|g| &g.name == vg_name)
                .ok_or_else(|| {
                    anyhow::anyhow!("{name}: no volume group {vg_name} on the disks scanned")
                })?;
            let i = vg
                .lvs
                .iter()
                .position(|l| &l.name == lv_name)
                .ok_or_else(|| {
                    anyhow::anyhow!("{name}: volume group {vg_name} has no LV {lv_name}")
                })?;
            let lv = &vg.lvs[i];
            anyhow::ensure!(
                lv.complete,
                "{name}: incomplete (a PV is missing or a segment type is not mapped by ferry)"
            );
            let c = lv
                .content
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("{name}: not scanned"))?;
            if let Some(e) = &c.error {
                bail!("{name}: {e}");
            }
            let pvs = vg
                .pvs
                .iter()
                .map(|p| {
                    p.volume
                        .as_deref()
                        .map(|v| readers.volume(inv, v))
                        .transpose()
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let reader = SharedLv::new(Arc::new(vg.meta()), i, pvs)?;
            Ok(SourceVolume {
                name: name.to_string(),
                size: lv.size,
                used: c.used_ranges.clone().expect("ranges were asked for"),
                reader: Arc::new(reader),
                target: 0,
                base: 0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("d.img");
        std::fs::write(&img, b"x").unwrap();
        let s = img.display().to_string();
        assert_eq!(parse_name(&s).unwrap(), Name::Disk(img.clone()));
        assert_eq!(
            parse_name(&format!("{s}:3")).unwrap(),
            Name::Partition(img.clone(), 3)
        );
        assert_eq!(
            parse_name("vg0/root").unwrap(),
            Name::Lv("vg0".into(), "root".into())
        );
        assert!(parse_name("nothing").is_err());
        assert!(parse_name(&format!("{s}:x")).is_err());
        assert!(parse_name("/nonexistent/dir/file.img").is_err());
    }
}
