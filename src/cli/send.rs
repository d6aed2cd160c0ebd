//! `ferry send --receiver IP[:PORT] --fingerprint SHA256 --code CODE [options]
//! [--job FILE] [VOLUME ...]`
//!
//! Every option may come from a job file instead (docs/job-file.md); a flag
//! given here beats the file, which beats the built-in default.

use std::path::PathBuf;

use clap::Args;

use crate::job::{
    Fingerprint, HashKind, Job, PassKind, ReceiverSection, TransferSection, check_level,
};
use crate::proto::message::Pass;
use crate::proto::tls::parse_fingerprint;
use crate::source::schedule::{self, Schedule};
use crate::source::send::send;

/// Exit status for bad input: a bad job file, a missing required field.
const BAD_INPUT: i32 = 2;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// A job file (TOML; docs/job-file.md). Flags given here override its
    /// fields; VOLUME arguments replace its volumes.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Print the job as it would run (the job file, then the flags, then the
    /// built-in defaults) as TOML and exit.
    #[arg(long)]
    pub print_job: bool,
    /// The receiver's address (IP or IP:PORT; port 8703 by default).
    #[arg(long, value_name = "IP[:PORT]")]
    pub receiver: Option<String>,
    /// The receiver's certificate fingerprint (SHA-256, 64 hex digits).
    #[arg(long, value_name = "SHA256", value_parser = parse_fp)]
    pub fingerprint: Option<Fingerprint>,
    /// The pairing code the receiver shows.
    #[arg(long)]
    pub code: Option<String>,
    /// Task name; the same name resumes [default: ferry].
    #[arg(long)]
    pub task: Option<String>,
    /// Which pass [default: full].
    #[arg(long, value_enum)]
    pub pass: Option<PassKind>,
    /// Worker threads for hashing and compression: the CPU limit
    /// [default: one per CPU].
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// TLS streams carrying chunk data, 1..17 (helps long fat links; passes
    /// that compare hashes use one) [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=crate::job::MAX_STREAMS as u64))]
    pub streams: Option<u64>,
    /// zstd level [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_level)]
    pub level: Option<i32>,
    /// Network rate limit in Mbit/s, 0..1000 (0 = none), at all times;
    /// replaces the job file's schedule [default: 0].
    #[arg(long, value_name = "MBIT", conflicts_with = "rate_schedule",
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub rate: Option<u64>,
    /// Network rate limit by local time, replacing the job file's: entries
    /// `[DAYS] HH:MM-HH:MM=MBIT` and `*=MBIT` (outside the windows),
    /// separated by commas, e.g. "mon-fri 08:00-18:00=100, sat,sun
    /// 00:00-24:00=500, *=0".
    #[arg(long, value_name = "SPEC", value_parser = parse_schedule)]
    pub rate_schedule: Option<Schedule>,
    /// Disk read limit in MB/s (0 = none) [default: 0].
    #[arg(long, value_name = "MBPS")]
    pub read_limit: Option<u64>,
    /// Checkpoint (make durable on the receiver) every this many MiB
    /// [default: 256].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_mib: Option<u64>,
    /// Chunk hash [default: blake3].
    #[arg(long, value_enum)]
    pub hash: Option<HashKind>,
    /// Disks or image files to search for the PVs of named LVs.
    #[arg(long = "scan")]
    pub scan: Vec<PathBuf>,
    /// Where the source keeps its events log and reports ("none": no records).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferry")]
    pub state_dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Volumes as inventory names them: DISK, DISK:N, VG/LV. Volume N goes to
    /// the receiver's target N, at the same offsets. Required unless the job
    /// file lists them.
    pub volumes: Vec<String>,
}

fn parse_fp(s: &str) -> anyhow::Result<Fingerprint> {
    parse_fingerprint(s).map(Fingerprint)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_level(s: &str) -> Result<i32, String> {
    let l: i32 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())?;
    check_level(l).map(|()| l)
}

fn parse_schedule(s: &str) -> Result<Schedule, schedule::ScheduleError> {
    s.parse()
}

impl SendArgs {
    /// The flags given on the command line, as a job to lay over the file.
    fn flags(&self) -> Job {
        Job {
            receiver: ReceiverSection {
                address: self.receiver.clone(),
                fingerprint: self.fingerprint,
                code: self.code.clone(),
            },
            transfer: TransferSection {
                task: self.task.clone(),
                volumes: (!self.volumes.is_empty()).then(|| self.volumes.clone()),
                scan: (!self.scan.is_empty()).then(|| self.scan.clone()),
                pass: self.pass,
                threads: self.threads,
                streams: self.streams.map(|n| n as usize),
                level: self.level,
                hash: self.hash,
                checkpoint_mib: self.checkpoint_mib,
                read_limit_mbps: self.read_limit,
            },
            rate: self
                .rate_schedule
                .clone()
                .or(self.rate.map(Schedule::constant)),
            plan: None,
        }
    }
}

/// Report bad input the way every subcommand does; returns the exit status.
fn bad_input(e: crate::job::JobError) -> i32 {
    eprintln!("ferry: error: {:#}", anyhow::Error::from(e));
    BAD_INPUT
}

pub fn run(a: SendArgs) -> anyhow::Result<i32> {
    let file = match &a.job {
        Some(path) => match Job::load(path) {
            Ok(j) => j,
            Err(e) => return Ok(bad_input(e)),
        },
        None => Job::default(),
    };
    let job = file.overlay(a.flags());
    if a.print_job {
        for e in job.missing() {
            eprintln!("ferry: warning: {e}");
        }
        print!("{}", job.with_defaults().to_toml());
        return Ok(0);
    }
    let sj = match job.resolve() {
        Ok(sj) => sj,
        Err(e) => return Ok(bad_input(e)),
    };
    let mut cfg = sj.config;
    if a.state_dir.as_os_str() != "none" {
        match std::fs::create_dir_all(&a.state_dir) {
            Ok(()) => cfg.state_dir = Some(a.state_dir.clone()),
            Err(e) => eprintln!(
                "ferry: warning: no events log or report on this side: {}: {e}",
                a.state_dir.display()
            ),
        }
    }
    let _schedule = schedule::follow(sj.schedule, cfg.rate.clone());
    let r = match send(&cfg) {
        Ok(r) => r,
        // A plan that cannot be made is bad input, like a bad job file.
        Err(e) if e.downcast_ref::<crate::plan::PlanError>().is_some() => {
            eprintln!("ferry: error: {e:#}");
            return Ok(BAD_INPUT);
        }
        Err(e) => return Err(e),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else if cfg.pass == Pass::Verify {
        println!(
            "task {}: verified {} chunks, {} differ",
            r.task,
            r.compared,
            r.mismatches.len()
        );
        for m in &r.mismatches {
            println!(
                "  differs: {} at byte {}, {} bytes",
                m.volume, m.offset, m.len
            );
        }
    } else {
        // A comparison pass says what it compared instead of a rate.
        let pace = match r.used_rate() {
            Some(rate) => format!("{:.1} s, {:.0} MB/s", r.seconds, rate / 1e6),
            None => format!("{} chunks compared, {:.1} s", r.compared, r.seconds),
        };
        println!(
            "task {}: {}, {pace}{}",
            r.task,
            r.sent_line(),
            if r.resumed_at > 0 {
                format!(", resumed at chunk {}", r.resumed_at)
            } else {
                String::new()
            }
        );
    }
    if cfg.pass == Pass::Verify && !r.mismatches.is_empty() {
        eprintln!(
            "ferry: error: verify: {} chunk(s) on the target differ from the source",
            r.mismatches.len()
        );
        return Ok(1);
    }
    Ok(0)
}
