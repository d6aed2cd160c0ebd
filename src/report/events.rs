//! The events log: one JSON object per line in `<state dir>/events.jsonl`,
//! `{"time": "2026-11-22T04:53:32Z", "task": "...", "event": "...", "detail": "..."}`.
//! Events: session-refused, session-start, task-start, task-checkpoint,
//! task-finish, task-error.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Debug, Serialize)]
struct Event<'a> {
    time: String,
    task: &'a str,
    event: &'a str,
    detail: &'a str,
}

/// Append one event; failing to log is reported on stderr, never fatal.
pub fn log(state_dir: &Path, task: &str, event: &str, detail: &str) {
    tracing::info!(task, event, detail);
    let line = serde_json::to_string(&Event {
        time: utc_now(),
        task,
        event,
        detail,
    })
    .expect("events serialise");
    let path = state_dir.join("events.jsonl");
    let res = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = res {
        let _ = writeln!(
            std::io::stderr(),
            "ferry: cannot write {}: {e}",
            path.display()
        );
    }
}

/// The current time as RFC 3339 UTC, to the second.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_322_012), "2026-11-22T04:33:32Z");
    }

    #[test]
    fn appends_json_lines() {
        let t = tempfile::tempdir().unwrap();
        log(t.path(), "task-1", "task-start", "full pass");
        log(t.path(), "task-1", "task-finish", "done \"ok\"");
        let text = std::fs::read_to_string(t.path().join("events.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["detail"], "done \"ok\"");
        assert_eq!(lines[0]["event"], "task-start");
    }
}
