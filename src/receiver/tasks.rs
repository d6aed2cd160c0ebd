//! The receiver's tasks as the control API and the console see them: a
//! status per task (kept on disk), and a control channel per task through
//! which the operator's stop/start and rate limit reach the session that is
//! running it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::proto::message::Control;
use crate::report::events::utc_now;
use crate::report::files::write_replace;
use crate::report::task::{TaskState, TaskStatus};

/// How often a running task's status is written to disk.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// The window the throughput figure is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);

pub struct Tasks {
    state_dir: PathBuf,
    inner: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    status: TaskStatus,
    control: watch::Sender<Control>,
    /// (when, bytes written) over the last [`RATE_WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    saved: Instant,
}

impl Entry {
    fn new(status: TaskStatus) -> Entry {
        let control = Control {
            rate_mbit: status.rate_limit_mbit,
            paused: status.paused,
        };
        Entry {
            status,
            control: watch::Sender::new(control),
            samples: VecDeque::new(),
            saved: Instant::now(),
        }
    }
}

fn status_path(state_dir: &Path, task: &str) -> PathBuf {
    state_dir.join("tasks").join(format!("{task}.status.json"))
}

impl Tasks {
    /// The tasks recorded in `state_dir`. A task that was live when the
    /// receiver stopped is waiting: its source reconnects to resume it.
    pub fn load(state_dir: &Path) -> Tasks {
        let mut map = BTreeMap::new();
        let dir = state_dir.join("tasks");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".status.json") {
                continue;
            }
            let parsed = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<TaskStatus>(&b).ok());
            let Some(mut s) = parsed else {
                tracing::warn!("{}: not a task status; ignored", e.path().display());
                continue;
            };
            if s.state.live() {
                s.set_state(TaskState::Waiting);
            }
            s.throughput = 0.0;
            map.insert(s.task.clone(), Entry::new(s));
        }
        Tasks {
            state_dir: state_dir.to_path_buf(),
            inner: Mutex::new(map),
        }
    }

    fn save(&self, s: &TaskStatus) {
        let p = status_path(&self.state_dir, &s.task);
        let res = std::fs::create_dir_all(p.parent().expect("tasks dir")).and_then(|()| {
            write_replace(
                &p,
                &serde_json::to_vec_pretty(s).expect("status serialises"),
            )
        });
        if let Err(e) = res {
            tracing::warn!("cannot save {}: {e}", p.display());
        }
    }

    /// A source said Hello for `task`: a task not seen before is added,
    /// Ready, with an `add-task` event.
    pub fn add(&self, task: &str, source: &str, peer: std::net::SocketAddr) {
        let mut map = self.inner.lock().expect("tasks lock");
        if map.contains_key(task) {
            return;
        }
        let mut s = TaskStatus::new(task);
        s.source = source.to_string();
        s.peer = peer.to_string();
        self.save(&s);
        map.insert(task.to_string(), Entry::new(s));
        drop(map);
        crate::report::events::log(
            &self.state_dir,
            task,
            "add-task",
            &format!("from {source} at {peer}"),
        );
    }

    /// A session starts `status.task` (in state Preparing). The operator's
    /// earlier settings for the task (rate limit, paused) carry over. Returns
    /// the control channel the session follows.
    pub fn begin(&self, mut status: TaskStatus) -> watch::Receiver<Control> {
        let mut map = self.inner.lock().expect("tasks lock");
        status.set_state(TaskState::Preparing);
        status.updated = utc_now();
        let entry = match map.remove(&status.task) {
            Some(mut old) => {
                status.rate_limit_mbit = old.status.rate_limit_mbit;
                status.paused = old.status.paused;
                old.status = status;
                old.samples.clear();
                old
            }
            None => Entry::new(status),
        };
        self.save(&entry.status);
        let rx = entry.control.subscribe();
        map.insert(entry.status.task.clone(), entry);
        rx
    }

    /// Change a task's figures; written to disk every few seconds.
    pub fn update(&self, task: &str, f: impl FnOnce(&mut TaskStatus)) {
        let mut map = self.inner.lock().expect("tasks lock");
        let Some(e) = map.get_mut(task) else { return };
        f(&mut e.status);
        let now = Instant::now();
        e.samples.push_back((now, e.status.bytes_written));
        while e
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            e.samples.pop_front();
        }
        e.status.throughput = match (e.samples.front(), e.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                (b1 - b0.min(b1)) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        };
        e.status.updated = utc_now();
        if e.saved.elapsed() >= SAVE_EVERY {
            e.saved = now;
            self.save(&e.status);
        }
    }

    /// Move a task to `state` (recording `error` if any) and save it. A
    /// transition the state machine does not allow is logged and ignored.
    pub fn set_state(&self, task: &str, state: TaskState, error: Option<String>) {
        let mut map = self.inner.lock().expect("tasks lock");
        let Some(e) = map.get_mut(task) else { return };
        if !e.status.state.may_become(state) {
            tracing::debug!("task {task}: {:?} -> {state:?} ignored", e.status.state);
            return;
        }
        e.status.set_state(state);
        if !state.live() {
            e.status.throughput = 0.0;
        }
        e.status.errors.extend(error);
        e.status.updated = utc_now();
        e.saved = Instant::now();
        self.save(&e.status);
    }

    pub fn get(&self, task: &str) -> Option<TaskStatus> {
        let map = self.inner.lock().expect("tasks lock");
        map.get(task).map(|e| e.status.clone())
    }

    pub fn list(&self) -> Vec<TaskStatus> {
        let map = self.inner.lock().expect("tasks lock");
        map.values().map(|e| e.status.clone()).collect()
    }

    /// The operator changes a task's control settings; a running session
    /// passes them to its source at once. `None` for an unknown task.
    pub fn control(&self, task: &str, f: impl FnOnce(&mut Control)) -> Option<TaskStatus> {
        let mut map = self.inner.lock().expect("tasks lock");
        let e = map.get_mut(task)?;
        e.control.send_modify(f);
        let c = *e.control.borrow();
        e.status.rate_limit_mbit = c.rate_mbit;
        e.status.paused = c.paused;
        match (e.status.state, c.paused) {
            (TaskState::Syncing, true) => e.status.set_state(TaskState::Stopped),
            (TaskState::Stopped, false) => e.status.set_state(TaskState::Syncing),
            _ => {}
        }
        e.status.updated = utc_now();
        self.save(&e.status);
        Some(e.status.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_survive_a_restart_and_keep_the_operators_settings() {
        let t = tempfile::tempdir().unwrap();
        let tasks = Tasks::load(t.path());
        tasks.add("t1", "src", "127.0.0.1:9".parse().unwrap());
        assert_eq!(tasks.get("t1").unwrap().state, TaskState::Ready);
        let mut ctl = tasks.begin(TaskStatus::new("t1"));
        assert_eq!(tasks.get("t1").unwrap().state, TaskState::Preparing);
        tasks.set_state("t1", TaskState::Syncing, None);
        tasks.update("t1", |s| {
            s.bytes_written = 10;
            s.bytes_total = 100;
        });
        let s = tasks
            .control("t1", |c| {
                c.rate_mbit = Some(50);
                c.paused = true;
            })
            .unwrap();
        assert_eq!(s.state, TaskState::Stopped);
        assert!(ctl.has_changed().unwrap());
        assert_eq!(
            *ctl.borrow_and_update(),
            Control {
                rate_mbit: Some(50),
                paused: true
            }
        );
        assert!(tasks.control("nope", |_| {}).is_none());
        tasks.set_state("t1", TaskState::Finished, None);
        assert_eq!(
            tasks.get("t1").unwrap().state,
            TaskState::Stopped,
            "not allowed"
        );
        drop(tasks);

        // Restarted: the live task is interrupted; a new session of it keeps
        // the operator's rate limit and pause.
        let tasks = Tasks::load(t.path());
        let s = tasks.get("t1").unwrap();
        assert_eq!(s.state, TaskState::Waiting);
        assert_eq!(s.bytes_total, 100);
        let ctl = tasks.begin(TaskStatus::new("t1"));
        assert_eq!(ctl.borrow().rate_mbit, Some(50));
        assert!(ctl.borrow().paused);
        tasks.set_state("t1", TaskState::InError, Some("boom".into()));
        assert_eq!(tasks.list()[0].errors, vec!["boom".to_string()]);
    }
}
