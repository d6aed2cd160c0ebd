//! The grow steps: each reaches its partition, whole disk or LV through a
//! loop device over the target's bytes (device-mapper only for an LV that
//! is not one contiguous run of extents), runs its tools, and reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::loopdev::LoopDevice;
use super::run::{Run, which};
use super::{StepReport, StepStatus};
use crate::inventory::{Inventory, InventoryConfig};
use crate::plan::target::{Place, Step, TargetDisk, TargetTable};

/// A volume of a target disk as the inventory names it: disk index, byte
/// offset on the disk, size.
type Volumes = HashMap<String, (usize, u64, u64)>;

/// A loop device over an LVM PV of a target disk.
struct PvLoop {
    disk: usize,
    place: Place,
    dev: LoopDevice,
}

/// What a step works on.
enum Dev {
    Loop(LoopDevice),
    /// An LV activated with device-mapper, deactivated after the step.
    Mapper {
        path: PathBuf,
        lv: String,
    },
}

impl Dev {
    fn path(&self) -> &Path {
        match self {
            Dev::Loop(l) => l.path(),
            Dev::Mapper { path, .. } => path,
        }
    }
}

/// The state shared by the steps of one application.
pub struct Ctx<'a> {
    disks: &'a [(PathBuf, TargetDisk)],
    /// Loop devices over every PV of the target disks, made on the first
    /// LVM step (after every table is written).
    pvs: Option<Vec<PvLoop>>,
    seq: u32,
}

impl<'a> Ctx<'a> {
    pub fn new(disks: &'a [(PathBuf, TargetDisk)]) -> Self {
        Ctx {
            disks,
            pvs: None,
            seq: 0,
        }
    }

    /// Run one step of disk `disk` and report it.
    pub fn run(&mut self, disk: usize, step: &Step) -> StepReport {
        let start = Instant::now();
        let mut run = Run::default();
        let status = match self.step(disk, step, &mut run) {
            Ok(s) => s,
            Err(e) => {
                run.note(&format!("error: {e}"));
                StepStatus::Failed
            }
        };
        StepReport {
            disk: self.disks[disk].0.display().to_string(),
            step: step.describe(),
            commands: run.commands,
            status,
            output: run.output,
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// Loop devices are detached (dropped) here at the latest.
    pub fn finish(&mut self) {
        self.pvs = None;
    }

    fn step(&mut self, disk: usize, step: &Step, run: &mut Run) -> Result<StepStatus, String> {
        match step {
            Step::GrowExt { place } => {
                let dev = self.device(disk, place, run)?;
                let r = grow_ext(dev.path(), run);
                self.release(dev, run)?;
                r?;
            }
            Step::GrowXfs { place } => {
                let dev = self.device(disk, place, run)?;
                self.seq += 1;
                let r = grow_xfs(dev.path(), run, self.seq);
                self.release(dev, run)?;
                r?;
            }
            Step::GrowNtfs { place } => {
                if which("ntfsresize").is_none() {
                    run.note(
                        "ntfsresize is not in this image: the partition grew, its NTFS filesystem keeps its size (grow it in Windows Disk Management)",
                    );
                    return Ok(StepStatus::Skipped);
                }
                let dev = self.device(disk, place, run)?;
                let r = run.cmd(
                    "ntfsresize",
                    &[
                        "--force".into(),
                        "--no-progress-bar".into(),
                        arg(dev.path()),
                    ],
                    &[0],
                    Some("y\n"),
                );
                self.release(dev, run)?;
                r?;
            }
            Step::Mkswap { place, uuid, label } => {
                let dev = self.device(disk, place, run)?;
                let mut args = Vec::new();
                if let Some(u) = uuid {
                    args.extend(["-U".to_string(), u.clone()]);
                }
                if let Some(l) = label {
                    args.extend(["-L".to_string(), l.clone()]);
                }
                args.push(arg(dev.path()));
                let r = run.cmd("mkswap", &args, &[0], None);
                self.release(dev, run)?;
                r?;
            }
            Step::PvResize { place, .. } => {
                self.pv_loops(run)?;
                let pvs = self.pvs.as_ref().expect("made above");
                let pv = pvs
                    .iter()
                    .find(|p| p.disk == disk && p.place == *place)
                    .ok_or_else(|| format!("{place} of the target holds no LVM PV"))?;
                let dev = arg(pv.dev.path());
                let cfg = self.lvm_config(false);
                run.cmd(
                    "lvm",
                    &lvm_args("pvresize", &cfg, &[dev.as_str()]),
                    &[0],
                    None,
                )?;
            }
            Step::LvExtend { vg, lv, size } => {
                self.pv_loops(run)?;
                let inv = self.inventory()?;
                let cur = find_lv(&inv, vg, lv)?.size;
                if cur >= *size {
                    run.note(&format!(
                        "{vg}/{lv} is already {cur} bytes (asked: {size}); nothing to do"
                    ));
                } else {
                    let cfg = self.lvm_config(false);
                    let name = format!("{vg}/{lv}");
                    let sz = format!("{size}b");
                    run.cmd(
                        "lvm",
                        &lvm_args("lvextend", &cfg, &["-L", &sz, &name]),
                        &[0],
                        None,
                    )?;
                }
            }
        }
        Ok(StepStatus::Ok)
    }

    /// The device a step's place is on.
    fn device(&mut self, disk: usize, place: &Place, run: &mut Run) -> Result<Dev, String> {
        let (path, d) = &self.disks[disk];
        let ss = d.sector_size;
        let (offset, size) = match place {
            Place::Partition { number } => partition_range(d, *number)
                .ok_or_else(|| format!("the table has no partition {number}"))?,
            Place::Disk => (0, disk_size(path)?),
            Place::Lv { vg, lv } => return self.lv_device(vg, lv, run),
        };
        let l = LoopDevice::attach(path, offset, size, ss).map_err(|e| {
            format!(
                "{}: a loop device over {size} bytes at {offset}: {e}",
                path.display()
            )
        })?;
        run.note(&format!(
            "{place}: {} = {} bytes at offset {offset} of {}",
            l.path().display(),
            size,
            path.display()
        ));
        Ok(Dev::Loop(l))
    }

    fn release(&self, dev: Dev, run: &mut Run) -> Result<(), String> {
        match dev {
            Dev::Loop(l) => drop(l),
            Dev::Mapper { lv, .. } => {
                let cfg = self.lvm_config(true);
                run.cmd(
                    "lvm",
                    &lvm_args("lvchange", &cfg, &["-an", &lv]),
                    &[0],
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// An LV's device: a loop device over its extents when they are one
    /// contiguous run on one PV (as an LV grown into the free space behind
    /// it is), else the LV activated with device-mapper.
    fn lv_device(&mut self, vg: &str, lv: &str, run: &mut Run) -> Result<Dev, String> {
        self.pv_loops(run)?;
        let inv = self.inventory()?;
        let vols = volumes(&inv, self.disks);
        let g = inv
            .volume_groups
            .iter()
            .find(|g| g.name == vg)
            .ok_or_else(|| format!("no volume group {vg} on the targets"))?;
        let l = find_lv(&inv, vg, lv)?;
        let mut run_start: Option<(String, u64)> = None;
        let mut next = None;
        let mut contiguous = !l.segments.is_empty();
        for s in &l.segments {
            if s.kind != "linear" || s.stripes.len() != 1 {
                contiguous = false;
                break;
            }
            let st = &s.stripes[0];
            match (&run_start, next) {
                (None, _) => run_start = Some((st.pv.clone(), st.start_extent)),
                (Some((pv, _)), Some(n)) if *pv == st.pv && st.start_extent == n => {}
                _ => {
                    contiguous = false;
                    break;
                }
            }
            next = Some(st.start_extent + s.extent_count);
        }
        if let (true, Some((key, first))) = (contiguous, run_start) {
            let pv = g
                .pvs
                .iter()
                .find(|p| p.key == key)
                .ok_or_else(|| format!("{vg}: no PV {key} in its metadata"))?;
            let (disk, start, _) = pv
                .volume
                .as_ref()
                .and_then(|v| vols.get(v))
                .copied()
                .ok_or_else(|| format!("{vg}: PV {key} is not on a target disk"))?;
            let offset = start + pv.pe_start + first * g.extent_size;
            let path = &self.disks[disk].0;
            let dev = LoopDevice::attach(path, offset, l.size, self.disks[disk].1.sector_size)
                .map_err(|e| format!("{}: a loop device for {vg}/{lv}: {e}", path.display()))?;
            run.note(&format!(
                "{vg}/{lv}: {} = {} bytes at offset {offset} of {}",
                dev.path().display(),
                l.size,
                path.display()
            ));
            return Ok(Dev::Loop(dev));
        }
        let name = format!("{vg}/{lv}");
        let cfg = self.lvm_config(true);
        run.cmd(
            "lvm",
            &lvm_args("lvchange", &cfg, &["-ay", &name]),
            &[0],
            None,
        )?;
        let path = PathBuf::from(format!(
            "/dev/mapper/{}-{}",
            vg.replace('-', "--"),
            lv.replace('-', "--")
        ));
        Ok(Dev::Mapper { path, lv: name })
    }

    /// Loop devices over every LVM PV of the target disks (once).
    fn pv_loops(&mut self, run: &mut Run) -> Result<(), String> {
        if self.pvs.is_some() {
            return Ok(());
        }
        let inv = self.inventory()?;
        let mut pvs = Vec::new();
        for d in &inv.disks {
            let Some(i) = self.disk_index(&d.path) else {
                continue;
            };
            let (path, td) = &self.disks[i];
            let mut add = |place: Place, offset: u64, size: u64| -> Result<(), String> {
                let dev = LoopDevice::attach(path, offset, size, td.sector_size).map_err(|e| {
                    format!(
                        "{}: a loop device over the PV on {place}: {e}",
                        path.display()
                    )
                })?;
                run.note(&format!(
                    "PV on {place} of {}: {}",
                    path.display(),
                    dev.path().display()
                ));
                pvs.push(PvLoop {
                    disk: i,
                    place,
                    dev,
                });
                Ok(())
            };
            if is_pv(d.content.as_ref()) {
                add(Place::Disk, 0, d.size)?;
            }
            for p in &d.partitions {
                if is_pv(p.content.as_ref()) {
                    add(Place::Partition { number: p.number }, p.start, p.size)?;
                }
            }
        }
        self.pvs = Some(pvs);
        Ok(())
    }

    /// `--config` for lvm: only the target's PVs, no udev, no backups in
    /// /etc/lvm, and device-mapper only when `activate`.
    fn lvm_config(&self, activate: bool) -> String {
        let mut filter: Vec<String> = self
            .pvs
            .iter()
            .flatten()
            .map(|p| format!("\"a|^{}$|\"", p.dev.path().display()))
            .collect();
        filter.push("\"r|.*|\"".into());
        let filter = filter.join(",");
        format!(
            "devices{{filter=[{filter}] global_filter=[{filter}] use_devicesfile=0 obtain_device_list_from_udev=0 external_device_info_source=\"none\"}} \
             global{{activation={} use_lvmpolld=0 event_activation=0}} \
             backup{{backup=0 archive=0}} \
             activation{{udev_sync=0 udev_rules=0 verify_udev_operations=1 monitoring=0}}",
            u8::from(activate)
        )
    }

    fn inventory(&self) -> Result<Inventory, String> {
        crate::inventory::inventory(&InventoryConfig {
            paths: self.disks.iter().map(|(p, _)| p.clone()).collect(),
            with_ranges: false,
            ..InventoryConfig::default()
        })
        .map_err(|e| format!("reading the targets back: {e:#}"))
    }

    fn disk_index(&self, name: &str) -> Option<usize> {
        self.disks
            .iter()
            .position(|(p, _)| p.display().to_string() == name)
    }
}

fn is_pv(c: Option<&crate::inventory::Content>) -> bool {
    c.is_some_and(|c| c.fs == "LVM2_member")
}

/// Every partition and table-less disk of the inventory, by volume name.
fn volumes(inv: &Inventory, disks: &[(PathBuf, TargetDisk)]) -> Volumes {
    let mut v = Volumes::new();
    for d in &inv.disks {
        let Some(i) = disks
            .iter()
            .position(|(p, _)| p.display().to_string() == d.path)
        else {
            continue;
        };
        v.insert(d.path.clone(), (i, 0, d.size));
        for p in &d.partitions {
            v.insert(p.volume.clone(), (i, p.start, p.size));
        }
    }
    v
}

fn find_lv<'i>(
    inv: &'i Inventory,
    vg: &str,
    lv: &str,
) -> Result<&'i crate::inventory::LogicalVolume, String> {
    inv.volume_groups
        .iter()
        .find(|g| g.name == vg)
        .ok_or_else(|| format!("no volume group {vg} on the targets"))?
        .lvs
        .iter()
        .find(|l| l.name == lv)
        .ok_or_else(|| format!("no logical volume {vg}/{lv} on the targets"))
}

/// Byte offset and size of partition `number` in the planned table.
fn partition_range(d: &TargetDisk, number: u32) -> Option<(u64, u64)> {
    let ss = u64::from(d.sector_size);
    match &d.table {
        TargetTable::Gpt { partitions, .. } => partitions
            .iter()
            .find(|p| p.number == number)
            .map(|p| (p.start_lba * ss, (p.end_lba + 1 - p.start_lba) * ss)),
        TargetTable::Mbr { partitions, .. } => partitions
            .iter()
            .find(|p| p.number == number)
            .map(|p| (p.start_lba * ss, p.sectors * ss)),
        TargetTable::None => None,
    }
}

fn disk_size(path: &Path) -> Result<u64, String> {
    use crate::disk::ReadAt;
    crate::disk::SourceDisk::open(path)
        .map(|d| d.size())
        .map_err(|e| format!("{}: its size: {e}", path.display()))
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

fn lvm_args(cmd: &str, cfg: &str, rest: &[&str]) -> Vec<String> {
    [cmd, "--config", cfg]
        .iter()
        .chain(rest)
        .map(|s| s.to_string())
        .collect()
}

/// `e2fsck -fy` (0, 1 and 2 mean clean or repaired), then `resize2fs` to
/// fill the device.
fn grow_ext(dev: &Path, run: &mut Run) -> Result<(), String> {
    run.cmd("e2fsck", &["-fy".into(), arg(dev)], &[0, 1, 2], None)?;
    run.cmd("resize2fs", &[arg(dev)], &[0], None)?;
    Ok(())
}

/// Mount (nouuid: the source's twin may be mounted here), `xfs_growfs`,
/// unmount: xfs grows only mounted.
fn grow_xfs(dev: &Path, run: &mut Run, seq: u32) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("ferry-grow-{}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let d = arg(&dir);
    let r = run
        .cmd(
            "mount",
            &[
                "-t".into(),
                "xfs".into(),
                "-o".into(),
                "nouuid".into(),
                arg(dev),
                d.clone(),
            ],
            &[0],
            None,
        )
        .and_then(|_| {
            let g = run.cmd("xfs_growfs", std::slice::from_ref(&d), &[0], None);
            let u = run.cmd("umount", std::slice::from_ref(&d), &[0], None);
            g.and(u)
        });
    let _ = std::fs::remove_dir(&dir);
    r.map(|_| ())
}
