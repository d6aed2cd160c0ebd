//! Applying a [`TargetPlan`](super::target::TargetPlan) to target disks or
//! image files: the receiver does it after a pass's data is durable, and
//! the same code runs on the host over image files (root tier tests).
//!
//! 1. [`prepare`] (before data): the target must fit the plan
//!    ([`TargetDisk::validate`]), a disk's logical sector size must be the
//!    plan's, and the old partition tables are wiped.
//! 2. [`apply_all`] (after data): every disk's table is written (GPT with
//!    its backup at the real end; MBR with its EBR chain) and, on a block
//!    device, re-read by the kernel (BLKRRPART, bounded retries); then each
//!    disk's steps run in order: `e2fsck -fy` + `resize2fs`, mount +
//!    `xfs_growfs`, `mkswap` keeping UUID and label, `ntfsresize` when
//!    present, `lvm pvresize`, `lvm lvextend`. Steps reach partitions and
//!    LVs through loop devices over byte ranges of the target, so they work
//!    on image files and without device-mapper; `lvm` only ever sees the
//!    target's own PVs (a device filter of those loop devices).
//!
//! Each step is reported ([`StepReport`]) as it ends; the first failure
//! stops the rest and is returned, naming the step. Nothing here writes
//! outside the target's tables and the planned volumes.

mod loopdev;
mod run;
mod steps;
pub mod table;
mod validate;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use loopdev::LoopDevice;

use super::target::TargetDisk;
use crate::disk::ioctl;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    /// Not run, for a reason given in the output (a tool the image lacks,
    /// a kernel that keeps the old partitions).
    Skipped,
    Failed,
}

/// One step of a plan's application, for events and the task report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The target (device or image file).
    pub disk: String,
    /// What the step does, naming its tools.
    pub step: String,
    /// The commands run, in order.
    pub commands: Vec<String>,
    pub status: StepStatus,
    /// The commands' output (stdout and stderr), or why it was skipped.
    pub output: String,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: step `{step}` failed: {detail}")]
    Step {
        path: String,
        step: String,
        detail: String,
    },
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> ApplyError {
    let path = path.display().to_string();
    let what = what.to_string();
    move |source| ApplyError::Io { path, what, source }
}

/// A target opened for its table: the file, whether it is a block device,
/// and its size.
struct Opened {
    file: File,
    block: bool,
    size: u64,
}

fn open(path: &Path, d: &TargetDisk) -> Result<Opened, ApplyError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path, "opening it"))?;
    let meta = file
        .metadata()
        .map_err(io_err(path, "reading its metadata"))?;
    let block = meta.file_type().is_block_device();
    let size = if block {
        let ss = ioctl::logical_sector_size(&file).map_err(io_err(path, "BLKSSZGET"))?;
        if ss != d.sector_size {
            return Err(ApplyError::Invalid {
                path: path.display().to_string(),
                message: format!(
                    "its logical sectors are {ss} bytes, the plan's ({}) are {} bytes: the partition table's LBAs would be wrong",
                    d.source, d.sector_size
                ),
            });
        }
        ioctl::size_bytes(&file).map_err(io_err(path, "BLKGETSIZE64"))?
    } else {
        meta.len()
    };
    d.validate(size).map_err(|message| ApplyError::Invalid {
        path: path.display().to_string(),
        message,
    })?;
    Ok(Opened { file, block, size })
}

/// Before data is written: check the target against the plan and wipe its
/// old partition tables. Returns what was wiped (for the events log).
pub fn prepare(path: &Path, d: &TargetDisk) -> Result<Vec<String>, ApplyError> {
    let t = open(path, d)?;
    table::wipe(&t.file, d, t.size).map_err(io_err(path, "wiping its old partition tables"))
}

/// After the data: write every disk's table, then run every disk's steps.
/// `log` sees each step as it ends. The first failure is returned.
pub fn apply_all(
    disks: &[(PathBuf, TargetDisk)],
    log: &mut dyn FnMut(&StepReport),
) -> Result<(), ApplyError> {
    // Tables first, all of them: an LV step may need every PV of a VG
    // spanning target disks.
    for (path, d) in disks {
        let mut t = open(path, d)?;
        let start = Instant::now();
        let text = table::write(&mut t.file, d).map_err(|detail| ApplyError::Step {
            path: path.display().to_string(),
            step: "write the partition table".into(),
            detail,
        })?;
        log(&StepReport {
            disk: path.display().to_string(),
            step: text,
            commands: Vec::new(),
            status: StepStatus::Ok,
            output: String::new(),
            seconds: start.elapsed().as_secs_f64(),
        });
        if t.block && !matches!(d.table, super::target::TargetTable::None) {
            log(&reread(path, &t.file));
        }
    }
    let mut ctx = steps::Ctx::new(disks);
    for (i, (path, d)) in disks.iter().enumerate() {
        for s in &d.steps {
            let r = ctx.run(i, s);
            log(&r);
            if r.status == StepStatus::Failed {
                return Err(ApplyError::Step {
                    path: path.display().to_string(),
                    step: r.step,
                    detail: last_lines(&r.output, 3),
                });
            }
        }
    }
    ctx.finish();
    Ok(())
}

/// [`apply_all`] for one disk.
pub fn apply(
    path: &Path,
    d: &TargetDisk,
    log: &mut dyn FnMut(&StepReport),
) -> Result<(), ApplyError> {
    apply_all(&[(path.to_path_buf(), d.clone())], log)
}

/// BLKRRPART, retried while the kernel says the disk is busy. A kernel that
/// keeps the old partitions does not fail the task (the table on the disk
/// is right; the steps do not use the kernel's partition nodes).
fn reread(path: &Path, f: &File) -> StepReport {
    let start = Instant::now();
    let mut tries = 0;
    let (status, output) = loop {
        tries += 1;
        match ioctl::reread_partitions(f) {
            Ok(()) => break (StepStatus::Ok, format!("re-read after {tries} attempt(s)")),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 10 => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                break (
                    StepStatus::Skipped,
                    format!("this device has no kernel partitions to re-read ({e})"),
                );
            }
            Err(e) => {
                break (
                    StepStatus::Skipped,
                    format!(
                        "BLKRRPART failed after {tries} attempt(s): {e}; the kernel shows the old partitions until the disk is released or rescanned (the table on the disk is the new one)"
                    ),
                );
            }
        }
    };
    StepReport {
        disk: path.display().to_string(),
        step: "re-read the partition table (BLKRRPART)".into(),
        commands: Vec::new(),
        status,
        output,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests;
