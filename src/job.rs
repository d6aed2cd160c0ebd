//! The job file: a migration template in TOML that `ferry send --job` reads
//! (and the TUI will edit and save). Every section and field is optional;
//! what a send needs must come from the file or the command line. Unknown
//! keys are errors. docs/job-file.md describes every field.
//!
//! Precedence, one rule everywhere: a command-line flag beats the job file,
//! which beats the built-in default. [`Job::overlay`] stacks the layers (the
//! command line arrives as a `Job` of the flags it was given);
//! [`Job::resolve`] fills in the defaults and checks that nothing needed is
//! missing.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::PlanSpec;
use crate::proto::message::{HashAlgo, Pass};
use crate::proto::tls::{fingerprint_hex, parse_fingerprint};
use crate::source::rate::RateLimit;
use crate::source::schedule::{Schedule, local_now};
use crate::source::send::SendConfig;

/// The task name when neither the flags nor the job file name one.
pub const DEFAULT_TASK: &str = "ferry";
/// The most TLS streams a pass may use (the receiver takes 16 extra).
pub const MAX_STREAMS: usize = crate::receiver::join::MAX_STREAMS + 1;

/// A job file. Sections are tables: `[receiver]`, `[transfer]`, `[rate]`,
/// `[plan]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Where to send to.
    #[serde(default, skip_serializing_if = "ReceiverSection::is_empty")]
    pub receiver: ReceiverSection,
    /// What to send and how.
    #[serde(default, skip_serializing_if = "TransferSection::is_empty")]
    pub transfer: TransferSection,
    /// The network rate limit: a default and windows of local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Schedule>,
    /// The migration plan: source disks to target disks, selection, growth
    /// (`ferry plan` writes it). Instead of `transfer.volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanSpec>,
}

/// `[receiver]`: the address, the pinned certificate and the pairing code
/// `ferry receive` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSection {
    /// `IP` or `IP:PORT` (port 8703 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// SHA-256 of the receiver's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The pairing code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ReceiverSection {
    pub fn is_empty(&self) -> bool {
        *self == ReceiverSection::default()
    }
}

/// `[transfer]`: the volumes and how a pass moves them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    /// Task name; the same name resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Volumes as inventory names them: `DISK`, `DISK:N`, `VG/LV`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    /// Disks or image files to search for the PVs of named LVs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<Vec<PathBuf>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassKind>,
    /// Worker threads for hashing and compression: the CPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// TLS streams carrying chunk data (1..=16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<usize>,
    /// zstd level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashKind>,
    /// Ask the receiver to make data durable every this many MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_mib: Option<u64>,
    /// Disk read limit in MB/s (0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_limit_mbps: Option<u64>,
}

impl TransferSection {
    pub fn is_empty(&self) -> bool {
        *self == TransferSection::default()
    }
}

/// Which kind of pass; the names `--pass` and the job file use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PassKind {
    /// Send every used chunk.
    Full,
    /// Continue a pass the receiver has a journal for.
    Resume,
    /// Compare chunk hashes; send only the chunks that differ.
    Incremental,
    /// Compare chunk hashes; send nothing; list the chunks that differ.
    Verify,
}

impl From<PassKind> for Pass {
    fn from(p: PassKind) -> Pass {
        match p {
            PassKind::Full => Pass::Full,
            PassKind::Resume => Pass::Resume,
            PassKind::Incremental => Pass::Incremental,
            PassKind::Verify => Pass::Verify,
        }
    }
}

impl From<Pass> for PassKind {
    fn from(p: Pass) -> PassKind {
        match p {
            Pass::Full => PassKind::Full,
            Pass::Resume => PassKind::Resume,
            Pass::Incremental => PassKind::Incremental,
            Pass::Verify => PassKind::Verify,
        }
    }
}

/// Chunk hash; the names `--hash` and the job file use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    Blake3,
    Xxh3,
}

impl From<HashKind> for HashAlgo {
    fn from(h: HashKind) -> HashAlgo {
        match h {
            HashKind::Blake3 => HashAlgo::Blake3,
            HashKind::Xxh3 => HashAlgo::Xxh3_128,
        }
    }
}

impl From<HashAlgo> for HashKind {
    fn from(h: HashAlgo) -> HashKind {
        match h {
            HashAlgo::Blake3 => HashKind::Blake3,
            HashAlgo::Xxh3_128 => HashKind::Xxh3,
        }
    }
}

/// A certificate fingerprint (SHA-256). Read as `ferry receive` prints it,
/// with or without spaces, colons or dashes; written as 64 lowercase hex
/// digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(pub [u8; 32]);

impl TryFrom<String> for Fingerprint {
    type Error = String;
    fn try_from(s: String) -> Result<Fingerprint, String> {
        parse_fingerprint(&s)
            .map(Fingerprint)
            .map_err(|e| e.to_string())
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        fingerprint_hex(&f.0)
    }
}

/// What is wrong with a job; the CLI exits 2 on every kind.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read the job file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, types and unknown keys; toml's message names the line,
    /// the column and the key.
    #[error("job file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A value out of range; `key` is its dotted path (`transfer.threads`).
    #[error("{}{key}: {message}", in_file(path))]
    Invalid {
        path: Option<PathBuf>,
        key: String,
        message: String,
    },
    #[error("no {what}: give {flag} or set {key} in the job file")]
    Missing {
        what: &'static str,
        flag: &'static str,
        key: &'static str,
    },
}

/// The fields a send cannot do without.
#[derive(Debug, Clone, Copy)]
enum Need {
    Address,
    Fingerprint,
    Code,
    Volumes,
}

fn missing(n: Need) -> JobError {
    let (what, flag, key) = match n {
        Need::Address => (
            "receiver address",
            "--receiver IP[:PORT]",
            "receiver.address",
        ),
        Need::Fingerprint => (
            "receiver fingerprint",
            "--fingerprint SHA256",
            "receiver.fingerprint",
        ),
        Need::Code => ("pairing code", "--code CODE", "receiver.code"),
        Need::Volumes => ("volumes", "VOLUME arguments", "transfer.volumes"),
    };
    JobError::Missing { what, flag, key }
}

fn in_file(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or_else(String::new, |p| format!("job file {}: ", p.display()))
}

/// A job resolved for `ferry send`: flags over the file over the defaults.
#[derive(Debug, Clone)]
pub struct SendJob {
    /// Ready for [`crate::source::send::send`]; `config.rate` starts at the
    /// schedule's limit for local now. Keep it in step during the pass with
    /// [`crate::source::schedule::follow`]`(schedule, config.rate.clone())`.
    pub config: SendConfig,
    pub schedule: Schedule,
}

impl Job {
    /// Read and check a job file. Errors name the file, and the line and key
    /// where TOML can tell.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let job: Job = toml::from_str(&text).map_err(|e| JobError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        job.validate().map_err(|e| match e {
            JobError::Invalid { key, message, .. } => JobError::Invalid {
                path: Some(path.to_path_buf()),
                key,
                message,
            },
            e => e,
        })?;
        Ok(job)
    }

    /// The job as TOML, sections in the order `[receiver]`, `[transfer]`,
    /// `[rate]`; [`Job::load`] reads it back to an equal `Job`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Job holds only strings, integers, lists and tables")
    }

    /// Check every value that is present: ranges, the receiver's address and
    /// the rate schedule (limits and overlaps).
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |key: &str, message: String| {
            Err(JobError::Invalid {
                path: None,
                key: key.to_string(),
                message,
            })
        };
        let r = &self.receiver;
        if let Some(a) = &r.address {
            check_address(a).or_else(|m| bad("receiver.address", m))?;
        }
        if r.code.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return bad("receiver.code", "is empty".into());
        }
        let t = &self.transfer;
        if t.task.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return bad("transfer.task", "is empty".into());
        }
        if let Some(v) = &t.volumes
            && let Some(i) = v.iter().position(|v| v.trim().is_empty())
        {
            return bad("transfer.volumes", format!("volume {} is empty", i + 1));
        }
        if t.threads == Some(0) {
            return bad("transfer.threads", "must be at least 1".into());
        }
        if let Some(n) = t.streams
            && !(1..=MAX_STREAMS).contains(&n)
        {
            return bad(
                "transfer.streams",
                format!("{n} is not in 1..{MAX_STREAMS}"),
            );
        }
        if let Some(l) = t.level {
            check_level(l).or_else(|m| bad("transfer.level", m))?;
        }
        if t.checkpoint_mib == Some(0) {
            return bad("transfer.checkpoint_mib", "must be at least 1".into());
        }
        if let Some(s) = &self.rate {
            s.validate().or_else(|e| bad("rate", e.to_string()))?;
        }
        if self.plan.is_some() && t.volumes.is_some() {
            return bad(
                "transfer.volumes",
                "a job with a [plan] sends what the plan selects; leave volumes out".into(),
            );
        }
        Ok(())
    }

    /// This job with every field `top` sets taken from `top`: lists and the
    /// rate schedule are replaced whole, not merged.
    pub fn overlay(self, top: Job) -> Job {
        let (r, t) = (self.receiver, self.transfer);
        let (tr, tt) = (top.receiver, top.transfer);
        // Volumes named on top replace the plan below, as they replace its
        // volumes.
        let plan = match tt.volumes {
            Some(_) => top.plan,
            None => top.plan.or(self.plan),
        };
        Job {
            receiver: ReceiverSection {
                address: tr.address.or(r.address),
                fingerprint: tr.fingerprint.or(r.fingerprint),
                code: tr.code.or(r.code),
            },
            transfer: TransferSection {
                task: tt.task.or(t.task),
                volumes: tt.volumes.or(t.volumes),
                scan: tt.scan.or(t.scan),
                pass: tt.pass.or(t.pass),
                threads: tt.threads.or(t.threads),
                streams: tt.streams.or(t.streams),
                level: tt.level.or(t.level),
                hash: tt.hash.or(t.hash),
                checkpoint_mib: tt.checkpoint_mib.or(t.checkpoint_mib),
                read_limit_mbps: tt.read_limit_mbps.or(t.read_limit_mbps),
            },
            rate: top.rate.or(self.rate),
            plan,
        }
    }

    /// This job with the built-in defaults filled in where nothing is set
    /// (the receiver and the volumes have none). The defaults are
    /// [`SendConfig::new`]'s, the task [`DEFAULT_TASK`], no read or rate
    /// limit.
    pub fn with_defaults(self) -> Job {
        let d = SendConfig::new("", [0; 32], "", DEFAULT_TASK, Vec::new());
        let t = self.transfer;
        Job {
            receiver: self.receiver,
            transfer: TransferSection {
                task: t.task.or(Some(d.task)),
                volumes: t.volumes,
                scan: t.scan.or(Some(d.scan)),
                pass: t.pass.or(Some(d.pass.into())),
                threads: t.threads.or(Some(d.threads)),
                streams: t.streams.or(Some(d.streams)),
                level: t.level.or(Some(d.level)),
                hash: t.hash.or(Some(d.hash.into())),
                checkpoint_mib: t.checkpoint_mib.or(Some(d.checkpoint_bytes >> 20)),
                read_limit_mbps: t.read_limit_mbps.or(Some(0)),
            },
            rate: self.rate.or_else(|| Some(Schedule::default())),
            plan: self.plan,
        }
    }

    /// What is needed for a send and not set, as errors (empty when
    /// nothing is missing).
    pub fn missing(&self) -> Vec<JobError> {
        let r = &self.receiver;
        let mut v = Vec::new();
        if r.address.is_none() {
            v.push(missing(Need::Address));
        }
        if r.fingerprint.is_none() {
            v.push(missing(Need::Fingerprint));
        }
        if r.code.is_none() {
            v.push(missing(Need::Code));
        }
        if self.plan.is_none() && self.transfer.volumes.as_ref().is_none_or(Vec::is_empty) {
            v.push(missing(Need::Volumes));
        }
        v
    }

    /// Check this (merged) job and turn it into what `send` takes, with the
    /// built-in defaults for whatever is not set.
    pub fn resolve(&self) -> Result<SendJob, JobError> {
        self.validate()?;
        if let Some(e) = self.missing().into_iter().next() {
            return Err(e);
        }
        let j = self.clone().with_defaults();
        let (r, t) = (j.receiver, j.transfer);
        let address = r.address.ok_or_else(|| missing(Need::Address))?;
        let fp = r.fingerprint.ok_or_else(|| missing(Need::Fingerprint))?;
        let code = r.code.ok_or_else(|| missing(Need::Code))?;
        let volumes = match &j.plan {
            Some(_) => Vec::new(),
            None => t.volumes.ok_or_else(|| missing(Need::Volumes))?,
        };
        let task = t.task.unwrap_or_else(|| DEFAULT_TASK.to_string());
        let mut config = SendConfig::new(&address, fp.0, &code, &task, volumes);
        config.plan = j.plan.clone();
        let schedule = j.rate.unwrap_or_default();
        if let Some(scan) = t.scan {
            config.scan = scan;
        }
        if let Some(p) = t.pass {
            config.pass = p.into();
        }
        if let Some(n) = t.threads {
            config.threads = n;
        }
        if let Some(n) = t.streams {
            config.streams = n;
        }
        if let Some(l) = t.level {
            config.level = l;
        }
        if let Some(h) = t.hash {
            config.hash = h.into();
        }
        if let Some(c) = t.checkpoint_mib {
            config.checkpoint_bytes = c.saturating_mul(1 << 20);
        }
        config.rate = RateLimit::new(schedule.limit_at(local_now()));
        config.read_limit = t.read_limit_mbps.unwrap_or(0);
        Ok(SendJob { config, schedule })
    }
}

/// `IP` or `IP:PORT`, as [`crate::source::send::send`] takes it (names are
/// not resolved in the boot image).
pub fn check_address(a: &str) -> Result<(), String> {
    if a.parse::<SocketAddr>().is_ok() || a.parse::<IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(format!(
            "{a:?} is not IP or IP:PORT (such as 10.0.0.5 or 10.0.0.5:8703)"
        ))
    }
}

/// A zstd level the compressor accepts.
pub fn check_level(level: i32) -> Result<(), String> {
    let r = zstd::compression_level_range();
    if r.contains(&level) {
        Ok(())
    } else {
        Err(format!(
            "zstd level {level} is outside {}..={}",
            r.start(),
            r.end()
        ))
    }
}

#[cfg(test)]
mod tests;
