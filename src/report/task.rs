//! A task's state machine and the status the receiver shows for it (control
//! API, console, TUI). The status is kept in `<state dir>/tasks/<task>.status.json`
//! so a restarted receiver still answers for past tasks.

use serde::{Deserialize, Serialize};

/// Where a task stands (DESIGN.md's vocabulary): Ready, Running (one of
/// Preparing, Syncing, Processing, Cleaning), Stopped, InError, Finished,
/// Waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Known (a source said Hello for it), no pass started yet.
    Ready,
    /// Running: a session is checking the layout and the targets.
    Preparing,
    /// Running: chunks arrive (or, in comparison passes, hashes are compared).
    Syncing,
    /// Running: the source finished; syncing, reading back what was written.
    Processing,
    /// Running: writing the journal and the report files.
    Cleaning,
    /// The operator stopped the task; the source holds its data until started.
    Stopped,
    /// Refused or failed; the reason is the last of `errors`.
    InError,
    Finished,
    /// The session ended before the pass did; waiting for the source to
    /// reconnect and resume.
    Waiting,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Ready => "ready",
            TaskState::Preparing => "preparing",
            TaskState::Syncing => "syncing",
            TaskState::Processing => "processing",
            TaskState::Cleaning => "cleaning",
            TaskState::Stopped => "stopped",
            TaskState::InError => "in_error",
            TaskState::Finished => "finished",
            TaskState::Waiting => "waiting",
        }
    }

    pub const ALL: [TaskState; 9] = [
        TaskState::Ready,
        TaskState::Preparing,
        TaskState::Syncing,
        TaskState::Processing,
        TaskState::Cleaning,
        TaskState::Stopped,
        TaskState::InError,
        TaskState::Finished,
        TaskState::Waiting,
    ];

    /// One of the Running states.
    pub fn running(self) -> bool {
        matches!(
            self,
            TaskState::Preparing | TaskState::Syncing | TaskState::Processing | TaskState::Cleaning
        )
    }

    /// Whether a session is working on the task (running or stopped).
    pub fn live(self) -> bool {
        self.running() || self == TaskState::Stopped
    }

    /// The transitions a task may take. A new pass may start from any state
    /// without a session; a live task may always end waiting or in error.
    pub fn may_become(self, to: TaskState) -> bool {
        use TaskState::*;
        match (self, to) {
            (from, Ready | Preparing) => !from.live(),
            (_, Waiting | InError) => self.live(),
            (Preparing, Syncing) => true,
            (Syncing, Stopped) | (Stopped, Syncing) => true,
            (Syncing | Stopped, Processing) => true,
            (Processing, Cleaning) => true,
            (Cleaning, Finished) => true,
            _ => false,
        }
    }
}

/// What the receiver knows of a task, as the control API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task: String,
    pub state: TaskState,
    /// The state is one of the Running ones.
    pub running: bool,
    /// full, resume, incremental or verify.
    pub pass: String,
    /// The source's name for itself, and the address it connected from.
    pub source: String,
    pub peer: String,
    pub session: u64,
    /// TLS streams carrying the pass (1 + extra streams joined).
    pub streams: u32,
    pub started: String,
    pub updated: String,
    pub volumes: Vec<String>,
    /// Chunks and used bytes the pass covers.
    pub chunks_total: u64,
    pub bytes_total: u64,
    /// Chunks and bytes done: durable from earlier sessions, written, or found
    /// already held.
    pub chunks_done: u64,
    pub bytes_done: u64,
    /// Chunks whose bytes arrived in this pass, and their compressed size.
    pub chunks_written: u64,
    pub bytes_written: u64,
    pub wire_bytes: u64,
    pub zero_chunks: u64,
    /// Of the chunks written, those that came as patches of what the target
    /// held (absent from a status saved before patches were counted).
    #[serde(default)]
    pub chunks_patched: u64,
    /// Comparison passes: chunks held (equal) and differing.
    pub chunks_held: u64,
    pub chunks_differ: u64,
    /// Chunks below this were durable when the pass began.
    pub resumed_at: u64,
    /// Bytes per second written over the last few seconds.
    pub throughput: f64,
    /// The operator's rate limit for the source, Mbit/s (0 = none), if set.
    pub rate_limit_mbit: Option<u32>,
    /// Stopped through the control API.
    pub paused: bool,
    pub errors: Vec<String>,
}

impl TaskStatus {
    pub fn new(task: &str) -> TaskStatus {
        let now = super::events::utc_now();
        TaskStatus {
            task: task.to_string(),
            state: TaskState::Ready,
            running: false,
            pass: String::new(),
            source: String::new(),
            peer: String::new(),
            session: 0,
            streams: 1,
            started: now.clone(),
            updated: now,
            volumes: Vec::new(),
            chunks_total: 0,
            bytes_total: 0,
            chunks_done: 0,
            bytes_done: 0,
            chunks_written: 0,
            bytes_written: 0,
            wire_bytes: 0,
            zero_chunks: 0,
            chunks_patched: 0,
            chunks_held: 0,
            chunks_differ: 0,
            resumed_at: 0,
            throughput: 0.0,
            rate_limit_mbit: None,
            paused: false,
            errors: Vec::new(),
        }
    }

    /// Move to `state` (no checks: see [`TaskState::may_become`]).
    pub fn set_state(&mut self, state: TaskState) {
        self.state = state;
        self.running = state.running();
    }

    /// Done as a fraction of the pass, 0..=1.
    pub fn progress(&self) -> f64 {
        if self.bytes_total == 0 {
            return if self.state == TaskState::Finished {
                1.0
            } else {
                0.0
            };
        }
        (self.bytes_done as f64 / self.bytes_total as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn the_state_machine() {
        let path = [
            Ready, Preparing, Syncing, Stopped, Syncing, Processing, Cleaning, Finished,
        ];
        for w in path.windows(2) {
            assert!(w[0].may_become(w[1]), "{:?} -> {:?}", w[0], w[1]);
        }
        // A finished, waiting or failed task starts again with a session.
        for s in [Finished, Waiting, InError] {
            assert!(s.may_become(Preparing));
            assert!(!s.may_become(Syncing));
            assert!(!s.may_become(InError), "{s:?} is not live");
        }
        for s in TaskState::ALL.into_iter().filter(|s| s.live()) {
            assert!(!s.may_become(Preparing), "{s:?} has a session");
            assert!(s.may_become(Waiting) && s.may_become(InError));
        }
        assert!(!Syncing.may_become(Finished), "only through processing");
        assert!(!Preparing.may_become(Processing));
    }

    #[test]
    fn status_round_trips_as_json() {
        let mut s = TaskStatus::new("t1");
        s.state = Syncing;
        s.bytes_total = 200;
        s.bytes_done = 50;
        s.rate_limit_mbit = Some(100);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"state\":\"syncing\""), "{j}");
        let back: TaskStatus = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.progress(), 0.25);
    }
}
