//! `ferry plan [DISK ...] [--target-size DISK=SIZE] [--grow VOLUME=SIZE|max]
//! [--select VOLUME] [--deselect VOLUME] [--all-vgs|--no-vgs] [--map
//! DISK=TARGET] [--job FILE] [-o FILE] [--explain]`
//!
//! Works out a migration plan on the source's disks and writes it as a job
//! file (`[plan]`, plus whatever the `--job` template held) for `ferry send
//! --job`. Bad choices (a shrink, a grow that does not fit, a name that is
//! not a volume) exit 2 with the reason.

use std::path::PathBuf;

use clap::Args;

use crate::disk::sysfs::Roots;
use crate::job::Job;
use crate::plan::spec::{Grow, Size, parse_pair};
use crate::plan::{PlanError, PlanSpec, explain};
use crate::source::volumes::open_plan;

const BAD_INPUT: i32 = 2;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Source disks or image files, in target order (the first goes to the
    /// receiver's target 0) [default: the job's, or every disk holding a
    /// selected volume].
    pub disks: Vec<String>,
    /// Start from this job file: its [plan] and its other sections are kept,
    /// the options here change them.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Planned size of the target disk for a source disk [default: the
    /// source disk's size].
    #[arg(long = "target-size", value_name = "DISK=SIZE", value_parser = parse_pair::<Size>)]
    pub target_size: Vec<(String, Size)>,
    /// Grow a partition, LV or whole-disk volume to SIZE (such as 40GiB) or
    /// to `max`, all the room the target leaves. Volumes never shrink.
    #[arg(long = "grow", value_name = "VOLUME=SIZE|max", value_parser = parse_pair::<Grow>)]
    pub grow: Vec<(String, Grow)>,
    /// Add a volume to the default selection (the system and swap
    /// partitions and every volume group).
    #[arg(long, value_name = "VOLUME")]
    pub select: Vec<String>,
    /// Leave a volume out: it is not read and its space stays empty.
    #[arg(long, value_name = "VOLUME")]
    pub deselect: Vec<String>,
    /// Migrate every volume group (the default).
    #[arg(long, conflicts_with = "no_vgs")]
    pub all_vgs: bool,
    /// Migrate no volume group unless its LVs are selected one by one.
    #[arg(long)]
    pub no_vgs: bool,
    /// Send a source disk to this receiver target index instead of its place
    /// in the order.
    #[arg(long = "map", value_name = "DISK=TARGET", value_parser = parse_map)]
    pub map: Vec<(String, u32)>,
    /// Extra disks or image files to search for LVM PVs.
    #[arg(long = "scan")]
    pub scan: Vec<PathBuf>,
    /// Write the job file here (default: print it).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print a before/after table per disk and volume group.
    #[arg(long)]
    pub explain: bool,
}

fn parse_map(s: &str) -> Result<(String, u32), String> {
    let (k, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected DISK=TARGET"))?;
    let t = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not a target index (0, 1, ...)"))?;
    Ok((k.to_string(), t))
}

impl PlanArgs {
    /// The plan: the job's, changed by the options.
    fn spec(&self, base: Option<PlanSpec>) -> PlanSpec {
        let mut p = base.unwrap_or_default();
        if !self.disks.is_empty() {
            p.disks = self.disks.clone();
        }
        p.targets.extend(self.map.iter().cloned());
        p.target_size.extend(self.target_size.iter().cloned());
        p.grow.extend(self.grow.iter().cloned());
        for v in &self.select {
            p.deselect.retain(|d| d != v);
            p.select.push(v.clone());
        }
        for v in &self.deselect {
            p.select.retain(|d| d != v);
            p.deselect.push(v.clone());
        }
        if self.all_vgs {
            p.all_vgs = Some(true);
        }
        if self.no_vgs {
            p.all_vgs = Some(false);
        }
        p
    }
}

pub fn run(a: PlanArgs) -> anyhow::Result<i32> {
    let mut job = match &a.job {
        Some(path) => match Job::load(path) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("ferry: error: {:#}", anyhow::Error::from(e));
                return Ok(BAD_INPUT);
            }
        },
        None => Job::default(),
    };
    let spec = a.spec(job.plan.take());
    let scan = job.transfer.scan.clone().unwrap_or_default();
    let scan: Vec<PathBuf> = scan.into_iter().chain(a.scan.iter().cloned()).collect();
    let planned = match open_plan(&spec, &scan, &Roots::system()) {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("ferry: error: {e:#}");
            return Ok(if e.downcast_ref::<PlanError>().is_some() {
                BAD_INPUT
            } else {
                1
            });
        }
    };
    job.plan = Some(spec);
    // A job with a plan sends what the plan selects.
    job.transfer.volumes = None;
    if let Err(e) = job.validate() {
        eprintln!("ferry: error: {:#}", anyhow::Error::from(e));
        return Ok(BAD_INPUT);
    }
    let text = job.to_toml();
    if a.explain {
        print!("{}", explain(&planned));
    }
    match &a.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            eprintln!(
                "ferry: wrote {}; run it with `ferry send --job {}`",
                path.display(),
                path.display()
            );
        }
        None if !a.explain => print!("{text}"),
        None => {}
    }
    Ok(0)
}
