//! Watching a pass from outside (the TUI): the stage it is in and the
//! running per-volume figures, refreshed a few times a second, and a stop
//! request the pass honours at the next chunk (after a checkpoint, so the
//! same task resumes from there).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tally::VolumeSummary;

/// Where a pass is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stage {
    /// Reading the disks' layout, planning, connecting.
    #[default]
    Preparing,
    /// Sending (or comparing) chunks.
    Syncing,
    /// Every chunk sent: the receiver syncs, reads back, applies a plan.
    Processing,
    /// Closing the session, writing the reports.
    Cleaning,
    Done,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Preparing => "Preparing",
            Stage::Syncing => "Syncing",
            Stage::Processing => "Processing",
            Stage::Cleaning => "Cleaning",
            Stage::Done => "Done",
        }
    }
}

/// The figures of a pass at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stage: Stage,
    pub volumes: Vec<VolumeSummary>,
    /// Chunk bytes on the wire so far.
    pub wire_bytes: u64,
    /// Used bytes the chunks sent cover.
    pub bytes_sent: u64,
    /// When the data started to move.
    pub started: Option<Instant>,
}

impl Snapshot {
    pub fn used_bytes(&self) -> u64 {
        self.volumes.iter().map(|v| v.used_bytes).sum()
    }

    /// Used bytes dealt with: sent, or skipped because the target holds them.
    pub fn done_bytes(&self) -> u64 {
        self.volumes
            .iter()
            .map(|v| v.bytes_sent + v.bytes_skipped)
            .sum()
    }
}

/// Shared between a pass and its watcher.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    snap: Arc<Mutex<Snapshot>>,
    stop: Arc<AtomicBool>,
    last: Arc<Mutex<Option<Instant>>>,
}

/// How often the running figures are copied out.
const EVERY: Duration = Duration::from_millis(200);

impl Watch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snap.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Set every figure at once (tests of what watches a pass).
    pub fn set(&self, snap: Snapshot) {
        if let Ok(mut s) = self.snap.lock() {
            *s = snap;
        }
    }

    /// Ask the pass to stop after its next checkpoint.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn stage(&self, stage: Stage) {
        if let Ok(mut s) = self.snap.lock() {
            s.stage = stage;
            if stage == Stage::Syncing && s.started.is_none() {
                s.started = Some(Instant::now());
            }
        }
    }

    /// The running figures, at most every [`EVERY`] unless `force`.
    pub(crate) fn figures(&self, volumes: &[VolumeSummary], bytes: u64, wire: u64, force: bool) {
        if let Ok(mut last) = self.last.lock() {
            if !force && last.is_some_and(|t| t.elapsed() < EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Ok(mut s) = self.snap.lock() {
            s.volumes = volumes.to_vec();
            s.bytes_sent = bytes;
            s.wire_bytes = wire;
        }
    }
}
