//! Report files of a task, in `<state dir>/reports/`: the three CSV lists
//! (`<task>_total_list.csv`, `<task>_completed_list.csv`,
//! `<task>_error_list.csv`: one row per chunk with volume, offset, length,
//! CRC-64, hash, status, time, error) and `<task>_report.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One chunk's line in the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    pub volume: String,
    /// Byte offset in the volume.
    pub offset: u64,
    pub len: u32,
    pub crc64: Option<u64>,
    pub hash: Option<String>,
    pub status: Status,
    pub time: Option<String>,
    pub error: Option<String>,
}

/// Where a chunk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not reached (yet).
    Pending,
    /// Written and durable in an earlier session of the task.
    Durable,
    /// Written in this session.
    Written,
    /// Already on the target with the same hash (incremental, verify).
    Held,
    /// Differs from the source (verify).
    Differs,
    /// Refused or failed.
    Error,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Durable => "durable",
            Status::Written => "written",
            Status::Held => "held",
            Status::Differs => "differs",
            Status::Error => "error",
        }
    }
    pub fn completed(self) -> bool {
        matches!(self, Status::Durable | Status::Written | Status::Held)
    }
    pub fn failed(self) -> bool {
        matches!(self, Status::Differs | Status::Error)
    }
}

/// Per-volume totals in `report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VolumeReport {
    pub name: String,
    pub target: u32,
    pub size: u64,
    /// Bytes of the volume's used map (what the plan covers).
    pub used_bytes: u64,
    pub chunks: u64,
    pub chunks_written: u64,
    pub bytes_written: u64,
    pub zero_chunks: u64,
    /// Written from a patch: only the parts that differed travelled.
    pub chunks_patched: u64,
    pub chunks_held: u64,
    pub chunks_failed: u64,
    /// Bytes not sent in this pass: durable from an earlier session, or
    /// found on the target with the right hash.
    pub bytes_skipped: u64,
    /// BLAKE3 over the volume's chunk hashes (hex, one per line, in order),
    /// the same as the source's; `None` when this pass did not see every
    /// chunk's hash (a resumed pass).
    pub digest: Option<String>,
}

/// One line of a task's pass history in `report.json`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PassRecord {
    pub pass: String,
    pub state: String,
    pub started: String,
    pub ended: String,
    pub bytes_written: u64,
    pub wire_bytes: u64,
    pub errors: usize,
}

/// `<task>_report.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskReport {
    pub task: String,
    pub pass: String,
    /// Finished or InError.
    pub state: String,
    pub source: String,
    pub started: String,
    pub ended: String,
    pub seconds: f64,
    pub volumes: Vec<VolumeReport>,
    pub bytes_written: u64,
    /// Chunk data received on the wire (compressed).
    pub wire_bytes: u64,
    /// Bytes written per wire byte.
    pub compression_ratio: f64,
    /// Bytes written per second.
    pub throughput: f64,
    pub errors: Vec<String>,
    /// After the data, with a plan: the partition tables written and the
    /// grow steps run, each with its command, status and output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_steps: Vec<serde_json::Value>,
    /// Every pass of the task so far, this one last.
    pub passes: Vec<PassRecord>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_row(r: &ChunkRow) -> String {
    format!(
        "{},{},{},{},{},{},{},{}\n",
        csv_field(&r.volume),
        r.offset,
        r.len,
        r.crc64.map_or(String::new(), |c| format!("{c:016x}")),
        r.hash.as_deref().unwrap_or(""),
        r.status.name(),
        r.time.as_deref().unwrap_or(""),
        csv_field(r.error.as_deref().unwrap_or(""))
    )
}

const HEADER: &str = "volume,offset,length,crc64,hash,status,time,error\n";

/// Replace `path` with `body` whole (a temporary file renamed over it), not
/// waiting for the disk: for records that are rewritten often and need not
/// survive a power cut (a task's status).
pub(crate) fn write_replace(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, body)?;
    fs::rename(tmp, path)
}

pub(crate) fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}

/// Where a task's report files go.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("reports")
}

/// Write the three lists and the JSON report; returns the files written.
pub fn write(
    state_dir: &Path,
    report: &TaskReport,
    rows: &[ChunkRow],
) -> std::io::Result<Vec<PathBuf>> {
    let d = dir(state_dir);
    fs::create_dir_all(&d)?;
    let task = &report.task;
    type Keep = fn(&ChunkRow) -> bool;
    let lists: [(&str, Keep); 3] = [
        ("total_list", |_| true),
        ("completed_list", |r| r.status.completed()),
        ("error_list", |r| r.status.failed()),
    ];
    let mut files = Vec::new();
    for (name, keep) in lists {
        let mut body = String::from(HEADER);
        for r in rows.iter().filter(|r| keep(r)) {
            body.push_str(&csv_row(r));
        }
        let p = d.join(format!("{task}_{name}.csv"));
        write_atomic(&p, body.as_bytes())?;
        files.push(p);
    }
    let p = d.join(format!("{task}_report.json"));
    // The pass history carries over from the task's previous report.
    let mut report = report.clone();
    let earlier: Vec<PassRecord> = fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::from_value(v["passes"].clone()).ok())
        .unwrap_or_default();
    report.passes = earlier;
    report.passes.push(PassRecord {
        pass: report.pass.clone(),
        state: report.state.clone(),
        started: report.started.clone(),
        ended: report.ended.clone(),
        bytes_written: report.bytes_written,
        wire_bytes: report.wire_bytes,
        errors: report.errors.len(),
    });
    write_atomic(
        &p,
        &serde_json::to_vec_pretty(&report).expect("reports serialise"),
    )?;
    files.push(p);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_by_status() {
        let t = tempfile::tempdir().unwrap();
        let row = |offset, status, error: Option<&str>| ChunkRow {
            volume: "disk,1.img".into(),
            offset,
            len: 4096,
            crc64: Some(0xabc),
            hash: Some("ff".into()),
            status,
            time: Some("2026-11-22T00:00:00Z".into()),
            error: error.map(String::from),
        };
        let rows = vec![
            row(0, Status::Written, None),
            row(4096, Status::Error, Some("hash \"mismatch\"")),
            row(8192, Status::Pending, None),
        ];
        let rep = TaskReport {
            task: "t1".into(),
            ..Default::default()
        };
        let files = write(t.path(), &rep, &rows).unwrap();
        assert_eq!(files.len(), 4);
        let total = fs::read_to_string(&files[0]).unwrap();
        assert_eq!(total.lines().count(), 4);
        assert_eq!(
            total.lines().nth(1).unwrap(),
            "\"disk,1.img\",0,4096,0000000000000abc,ff,written,2026-11-22T00:00:00Z,"
        );
        let done = fs::read_to_string(&files[1]).unwrap();
        assert_eq!(done.lines().count(), 2);
        let err = fs::read_to_string(&files[2]).unwrap();
        assert!(
            err.contains("error,2026-11-22T00:00:00Z,\"hash \"\"mismatch\"\"\""),
            "{err}"
        );
        let j: serde_json::Value = serde_json::from_slice(&fs::read(&files[3]).unwrap()).unwrap();
        assert_eq!(j["task"], "t1");
        assert_eq!(j["passes"].as_array().unwrap().len(), 1);
        // A second pass appends to the history.
        write(t.path(), &rep, &rows).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&fs::read(&files[3]).unwrap()).unwrap();
        assert_eq!(j["passes"].as_array().unwrap().len(), 2);
    }
}
