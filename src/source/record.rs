//! The source's own records of a task, in its state dir (when it has one):
//! the events log (`events.jsonl`: add-task, task-start, task-stop,
//! task-sync, result, as on the receiver) and
//! `reports/<task>_source_report.json` with every pass's figures.

use std::path::Path;

use serde::Serialize;

use super::send::{SendConfig, SendReport};
use crate::report::events::{self, utc_now};
use crate::report::files::{dir, write_atomic};

/// Log `event` for the task, if the source keeps records.
pub fn event(cfg: &SendConfig, event: &str, detail: &str) {
    if let Some(d) = &cfg.state_dir {
        events::log(d, &cfg.task, event, detail);
    }
}

fn report_path(state_dir: &Path, task: &str) -> std::path::PathBuf {
    dir(state_dir).join(format!("{task}_source_report.json"))
}

/// A pass begins: `add-task` the first time this source runs the task.
pub fn begin(cfg: &SendConfig) {
    let Some(d) = &cfg.state_dir else { return };
    if !report_path(d, &cfg.task).exists() {
        event(cfg, "add-task", &format!("to {}", cfg.receiver));
    }
    event(
        cfg,
        "task-start",
        &format!(
            "{:?} pass of {} to {}",
            cfg.pass,
            cfg.volumes.join(", "),
            cfg.receiver
        ),
    );
}

#[derive(Serialize, serde::Deserialize)]
struct PassEntry {
    pass: String,
    ended: String,
    /// finished, or the error.
    result: String,
    report: Option<serde_json::Value>,
}

/// A pass ended: the `result` event and the pass added to the source report.
pub fn end(cfg: &SendConfig, res: &anyhow::Result<SendReport>) {
    let Some(d) = &cfg.state_dir else { return };
    let result = match res {
        Ok(r) => format!(
            "finished: {} chunks sent, {} bytes, {} on the wire, {} mismatches, {:.1} s",
            r.chunks_sent,
            r.bytes,
            r.wire_bytes,
            r.mismatches.len(),
            r.seconds
        ),
        Err(e) => format!("in_error: {e:#}"),
    };
    event(cfg, "result", &result);
    let p = report_path(d, &cfg.task);
    let mut passes: Vec<PassEntry> = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["passes"].clone()).ok())
        .unwrap_or_default();
    passes.push(PassEntry {
        pass: format!("{:?}", cfg.pass).to_lowercase(),
        ended: utc_now(),
        result,
        report: res.as_ref().ok().and_then(|r| serde_json::to_value(r).ok()),
    });
    let body = serde_json::json!({
        "task": cfg.task,
        "receiver": cfg.receiver,
        "passes": passes,
    });
    let res = std::fs::create_dir_all(dir(d))
        .and_then(|()| write_atomic(&p, &serde_json::to_vec_pretty(&body).expect("serialises")));
    if let Err(e) = res {
        tracing::warn!("cannot write {}: {e}", p.display());
    }
}
