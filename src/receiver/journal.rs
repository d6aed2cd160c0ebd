//! The receiver's per-task journal, `<state dir>/tasks/<task>.json`: which
//! layout the task runs and how far its chunks are durable on the targets.
//! Written atomically (temporary file, fsync, rename) at every checkpoint.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub task: String,
    /// BLAKE3 of the layout frame: a different plan never resumes this one.
    pub layout_digest: String,
    /// Every chunk with a smaller sequence number is durable.
    pub durable_seq: u64,
    pub durable_bytes: u64,
    pub finished: bool,
    /// The hash record (`<task>.hashes`) held every chunk of this plan when
    /// the pass finished, and the targets looked like `stamps`.
    #[serde(default)]
    pub hashes_complete: bool,
    #[serde(default)]
    pub stamps: Vec<super::hashlog::Stamp>,
}

/// Task names become file names: keep them tame.
pub fn valid_task(task: &str) -> bool {
    !task.is_empty()
        && task.len() <= 128
        && task
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !task.starts_with('.')
}

fn path(state_dir: &Path, task: &str) -> PathBuf {
    state_dir.join("tasks").join(format!("{task}.json"))
}

impl Journal {
    pub fn load(state_dir: &Path, task: &str) -> anyhow::Result<Option<Journal>> {
        let p = path(state_dir, task);
        match fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", p.display())),
        }
    }

    pub fn save(&self, state_dir: &Path) -> anyhow::Result<()> {
        let p = path(state_dir, &self.task);
        fs::create_dir_all(p.parent().expect("tasks dir"))?;
        let tmp = p.with_extension("json.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &p)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load() {
        let t = tempfile::tempdir().unwrap();
        assert!(Journal::load(t.path(), "t1").unwrap().is_none());
        let j = Journal {
            task: "t1".into(),
            layout_digest: "ab".into(),
            durable_seq: 5,
            durable_bytes: 5 << 20,
            finished: false,
            hashes_complete: false,
            stamps: Vec::new(),
        };
        j.save(t.path()).unwrap();
        assert_eq!(Journal::load(t.path(), "t1").unwrap(), Some(j));
        assert!(valid_task("task-2026_11.a"));
        assert!(!valid_task("../etc/passwd"));
        assert!(!valid_task(""));
        assert!(!valid_task(".hidden"));
    }
}
