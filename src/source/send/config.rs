//! What a pass is asked to do: where to, what, and how.

use std::path::PathBuf;

use crate::disk::sysfs::Roots;
use crate::proto::message::{HashAlgo, Pass};
use crate::source::rate::RateLimit;

#[derive(Debug, Clone)]
pub struct SendConfig {
    /// `HOST[:PORT]` of the receiver (an IP address; names are not resolved
    /// in the boot image).
    pub receiver: String,
    pub fingerprint: [u8; 32],
    pub code: String,
    /// The task name; the same name resumes.
    pub task: String,
    pub volumes: Vec<String>,
    /// A plan instead of `volumes`: disks to target disks, grown as it says.
    pub plan: Option<crate::plan::PlanSpec>,
    /// Extra disks to search for the PVs of named LVs.
    pub scan: Vec<PathBuf>,
    pub pass: Pass,
    /// Worker threads for hashing and compression.
    pub threads: usize,
    /// TLS streams for chunk data (1 = the session's own); passes that
    /// compare hashes use one.
    pub streams: usize,
    pub level: i32,
    pub hash: HashAlgo,
    /// Ask the receiver to make data durable after this many bytes.
    pub checkpoint_bytes: u64,
    /// Network rate limit in Mbit/s (0 = none); may change during the pass.
    pub rate: RateLimit,
    /// Source read limit in MB/s (0 = none).
    pub read_limit: u64,
    /// Where the source keeps its events log and reports (none: no records).
    pub state_dir: Option<PathBuf>,
    pub roots: Roots,
    /// A watcher of the pass (the TUI): stage, running figures, stop.
    pub watch: Option<crate::source::watch::Watch>,
}

impl SendConfig {
    /// Defaults for everything but where to and what.
    pub fn new(
        receiver: &str,
        fingerprint: [u8; 32],
        code: &str,
        task: &str,
        volumes: Vec<String>,
    ) -> Self {
        SendConfig {
            receiver: receiver.to_string(),
            fingerprint,
            code: code.to_string(),
            task: task.to_string(),
            volumes,
            plan: None,
            scan: Vec::new(),
            pass: Pass::Full,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            streams: 1,
            level: 1,
            hash: HashAlgo::Blake3,
            checkpoint_bytes: 256 << 20,
            rate: RateLimit::default(),
            read_limit: 0,
            state_dir: None,
            roots: Roots::system(),
            watch: None,
        }
    }
}
