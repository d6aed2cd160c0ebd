//! `ferry send --receiver IP[:PORT] --fingerprint SHA256 --code CODE [options] VOLUME ...`

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::disk::sysfs::Roots;
use crate::proto::message::{HashAlgo, Pass};
use crate::proto::tls::parse_fingerprint;
use crate::source::send::{SendConfig, send};
use crate::units::human;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PassArg {
    /// Send every used chunk.
    Full,
    /// Continue a pass the receiver has a journal for.
    Resume,
    /// Compare chunk hashes; send only the chunks that differ.
    Incremental,
    /// Compare chunk hashes; send nothing; list the chunks that differ.
    Verify,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashArg {
    Blake3,
    Xxh3,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The receiver's address (IP or IP:PORT; port 8703 by default).
    #[arg(long)]
    pub receiver: String,
    /// The receiver's certificate fingerprint (SHA-256, 64 hex digits).
    #[arg(long)]
    pub fingerprint: String,
    /// The pairing code the receiver shows.
    #[arg(long)]
    pub code: String,
    /// Task name; the same name resumes.
    #[arg(long, default_value = "ferry")]
    pub task: String,
    #[arg(long, value_enum, default_value = "full")]
    pub pass: PassArg,
    /// Worker threads for hashing and compression (the CPU limit).
    #[arg(long)]
    pub threads: Option<usize>,
    /// zstd level.
    #[arg(long, default_value_t = 1)]
    pub level: i32,
    /// Network rate limit in Mbit/s (0 = none).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub rate: u64,
    /// Checkpoint (make durable on the receiver) every this many MiB.
    #[arg(long, default_value_t = 256)]
    pub checkpoint_mib: u64,
    #[arg(long, value_enum, default_value = "blake3")]
    pub hash: HashArg,
    /// Disks or image files to search for the PVs of named LVs.
    #[arg(long = "scan")]
    pub scan: Vec<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Volumes as inventory names them: DISK, DISK:N, VG/LV. Volume N goes to
    /// the receiver's target N, at the same offsets.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

pub fn run(a: SendArgs) -> anyhow::Result<i32> {
    let fp = parse_fingerprint(&a.fingerprint)?;
    let mut cfg = SendConfig::new(&a.receiver, fp, &a.code, &a.task, a.volumes);
    cfg.scan = a.scan;
    cfg.pass = match a.pass {
        PassArg::Full => Pass::Full,
        PassArg::Resume => Pass::Resume,
        PassArg::Incremental => Pass::Incremental,
        PassArg::Verify => Pass::Verify,
    };
    if let Some(t) = a.threads {
        cfg.threads = t.max(1);
    }
    cfg.level = a.level;
    cfg.rate.set(a.rate);
    cfg.checkpoint_bytes = a.checkpoint_mib.max(1) << 20;
    cfg.hash = match a.hash {
        HashArg::Blake3 => HashAlgo::Blake3,
        HashArg::Xxh3 => HashAlgo::Xxh3_128,
    };
    cfg.roots = Roots::system();
    let r = send(&cfg)?;
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
        let rate = r.bytes as f64 / r.seconds.max(1e-9) / 1e6;
        println!(
            "task {}: {} chunks sent ({} zero), {} of used data as {} on the wire, {:.1} s, {:.0} MB/s{}",
            r.task,
            r.chunks_sent,
            r.zero_chunks,
            human(r.bytes),
            human(r.wire_bytes),
            r.seconds,
            rate,
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
