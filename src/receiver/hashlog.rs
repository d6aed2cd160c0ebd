//! The receiver's record of what it wrote: `<state dir>/tasks/<task>.hashes`
//! holds, for each chunk of the task's plan (by sequence number), the hash
//! of the bytes the target holds there, as written and checked by this
//! receiver or found there by reading the target.
//!
//! An incremental pass answers the source's hash queries from this record
//! instead of reading every chunk back from the targets, but only when the
//! record is known to describe the targets: the journal says the last pass
//! of the same plan finished with the record complete, and the targets'
//! stamps (an image file's size, inode and times; a device's written and
//! discarded sector counters in this boot) have not moved since. Anything
//! else, and every verify pass, reads the targets.
//!
//! Each record is [`RECORD`] bytes: a flag (1 = known) and the hash padded
//! to 32 bytes. Records are written as chunks are written or found held,
//! made durable with the targets at every checkpoint, and trusted only as a
//! whole after a finished pass.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::Journal;
use super::server::Receiver;
use super::session::{Refusal, refuse};
use super::sink::Target;
use super::tracker::Tracker;
use crate::disk::sysfs;
use crate::proto::codec::{MAX_FRAME, decode, encode};
use crate::proto::message::{ChunkRef, ErrorCode, Layout, Message, Pass};

/// Bytes per chunk record: a known flag and a 32-byte hash.
pub const RECORD: usize = 33;

pub struct HashLog {
    path: PathBuf,
    file: File,
}

pub fn path(state_dir: &Path, task: &str) -> PathBuf {
    state_dir.join("tasks").join(format!("{task}.hashes"))
}

impl HashLog {
    /// Open the task's record; `fresh` empties it (a new plan: its
    /// sequence numbers mean other chunks).
    pub fn open(state_dir: &Path, task: &str, fresh: bool) -> io::Result<HashLog> {
        let path = path(state_dir, task);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(fresh)
            .open(&path)?;
        Ok(HashLog { path, file })
    }

    fn err(&self, what: &str, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {what}: {e}", self.path.display()))
    }

    /// Note that chunk `seq` holds bytes with `hash`.
    pub fn record(&self, seq: u64, hash: &[u8; 32]) -> io::Result<()> {
        let mut rec = [0u8; RECORD];
        rec[0] = 1;
        rec[1..].copy_from_slice(hash);
        self.file
            .write_all_at(&rec, seq * RECORD as u64)
            .map_err(|e| self.err("write", e))
    }

    /// The recorded hashes of chunks `first..first+n` (`None`: not known).
    pub fn get(&self, first: u64, n: usize) -> io::Result<Vec<Option<[u8; 32]>>> {
        let mut buf = vec![0u8; n * RECORD];
        let mut got = 0;
        // A short file: the records past its end are unknown (zeros).
        while got < buf.len() {
            match self
                .file
                .read_at(&mut buf[got..], first * RECORD as u64 + got as u64)
            {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("read", e)),
            }
        }
        Ok(buf
            .chunks_exact(RECORD)
            .map(|r| (r[0] == 1).then(|| r[1..].try_into().expect("32 bytes")))
            .collect())
    }

    /// Whether chunks `0..n` are all known.
    pub fn complete(&self, n: u64) -> io::Result<bool> {
        const BATCH: u64 = 1 << 16;
        let mut first = 0;
        while first < n {
            let k = BATCH.min(n - first);
            if self.get(first, k as usize)?.iter().any(Option::is_none) {
                return Ok(false);
            }
            first += k;
        }
        Ok(true)
    }

    /// Make every record durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data().map_err(|e| self.err("sync", e))
    }
}

/// A session's use of the record: kept up to date by every pass that
/// writes, and answering hash queries when `trusted`.
pub struct SessionRecord {
    log: Option<HashLog>,
    /// The targets are as the last finished pass of this plan left them,
    /// and the record was complete then.
    pub trusted: bool,
}

fn internal(e: io::Error) -> Refusal {
    refuse(ErrorCode::Internal, e.to_string())
}

impl SessionRecord {
    /// `journal` is the task's journal before this session. A verify pass
    /// leaves the record alone. The same plan keeps its record. A new plan
    /// starts afresh, except that an incremental pass after a finished one
    /// carries over the hashes of every chunk that lands on the same bytes
    /// of the same target in both plans (files rewritten on the source
    /// change its used map, hence the plan, but most chunks stay put).
    /// An incremental pass trusts the record when the journal says it was
    /// complete and the targets' stamps have not moved.
    pub fn open(
        rx: &Receiver,
        task: &str,
        journal: Option<&Journal>,
        layout: &Layout,
    ) -> Result<SessionRecord, Refusal> {
        let digest = super::session::layout_digest(layout);
        let same_plan = journal.is_some_and(|j| j.layout_digest == digest);
        let trusted = layout.pass == Pass::Incremental
            && journal.is_some_and(|j| {
                j.finished
                    && j.hashes_complete
                    && stamps(&rx.targets, &rx.roots).is_some_and(|now| now == j.stamps)
            });
        if layout.pass == Pass::Verify {
            return Ok(SessionRecord {
                log: None,
                trusted: false,
            });
        }
        let dir = &rx.state_dir;
        if same_plan {
            let log = HashLog::open(dir, task, false).map_err(internal)?;
            return Ok(SessionRecord {
                log: Some(log),
                trusted,
            });
        }
        let old = match journal {
            Some(j) if trusted => load_layout(dir, task, &j.layout_digest),
            _ => None,
        };
        let carried = old.is_some();
        let log = match old {
            Some(old) => carry_over(dir, task, &old, layout)?,
            None => HashLog::open(dir, task, true).map_err(internal)?,
        };
        save_layout(dir, task, layout).map_err(internal)?;
        Ok(SessionRecord {
            log: Some(log),
            trusted: carried,
        })
    }

    /// What a trusted record says of each chunk of a query: held, not
    /// held, or `None` (unknown: read the target). All `None` untrusted.
    pub fn answer(
        &self,
        first_seq: u64,
        chunks: &[ChunkRef],
    ) -> Result<Vec<Option<bool>>, Refusal> {
        let known = match (&self.log, self.trusted) {
            (Some(l), true) => l.get(first_seq, chunks.len()).map_err(internal)?,
            _ => vec![None; chunks.len()],
        };
        Ok(chunks
            .iter()
            .zip(known)
            .map(|(c, k)| k.map(|h| h == c.hash))
            .collect())
    }

    /// Chunk `seq` now holds bytes with `hash` (written, or found held).
    pub fn note(&self, seq: u64, hash: &[u8; 32]) -> Result<(), Refusal> {
        self.log
            .as_ref()
            .map_or(Ok(()), |l| l.record(seq, hash).map_err(internal))
    }

    pub fn sync(&self) -> Result<(), Refusal> {
        self.log
            .as_ref()
            .map_or(Ok(()), |l| l.sync().map_err(internal))
    }

    /// At the end of a pass that wrote: the stamps to keep in the journal
    /// when the record holds all `chunks` of the plan (a state dir from
    /// before hash records, or a lost file, does not), else `None`.
    pub fn finish(&self, rx: &Receiver, chunks: u64) -> Result<Option<Vec<Stamp>>, Refusal> {
        let Some(l) = &self.log else { return Ok(None) };
        l.sync().map_err(internal)?;
        if !l.complete(chunks).map_err(internal)? {
            return Ok(None);
        }
        Ok(stamps(&rx.targets, &rx.roots))
    }
}

fn layout_path(state_dir: &Path, task: &str) -> PathBuf {
    state_dir.join("tasks").join(format!("{task}.layout"))
}

/// Keep the plan the record is indexed by (its Layout frame).
fn save_layout(state_dir: &Path, task: &str, layout: &Layout) -> io::Result<()> {
    let frame = encode(&Message::Layout(layout.clone()), MAX_FRAME)
        .map_err(|e| io::Error::other(e.to_string()))?;
    crate::report::files::write_atomic(&layout_path(state_dir, task), &frame)
}

/// The plan the record was indexed by, if it is the journal's (`digest`).
fn load_layout(state_dir: &Path, task: &str, digest: &str) -> Option<Layout> {
    let bytes = bytes::Bytes::from(std::fs::read(layout_path(state_dir, task)).ok()?);
    match decode(&bytes, MAX_FRAME) {
        Ok(Some((Message::Layout(l), _))) if super::session::layout_digest(&l) == digest => Some(l),
        _ => None,
    }
}

/// A fresh record for `new` holding the old record's hash of every chunk
/// that has the same target, offset and length in both plans.
fn carry_over(
    state_dir: &Path,
    task: &str,
    old: &Layout,
    new: &Layout,
) -> Result<HashLog, Refusal> {
    let old_places: Vec<(u32, u64, u32)> = Tracker::new(old, 0)?.places().collect();
    let mut by_place: Vec<((u32, u64, u32), u64)> = old_places
        .into_iter()
        .enumerate()
        .map(|(s, p)| (p, s as u64))
        .collect();
    by_place.sort_unstable();
    let old_log = HashLog::open(state_dir, task, false).map_err(internal)?;
    let known: Vec<Option<[u8; 32]>> = old_log.get(0, by_place.len()).map_err(internal)?;
    drop(old_log);
    let log = HashLog::open(state_dir, task, true).map_err(internal)?;
    for (seq, place) in Tracker::new(new, 0)?.places().enumerate() {
        if let Ok(i) = by_place.binary_search_by(|(p, _)| p.cmp(&place))
            && let Some(h) = known[by_place[i].1 as usize]
        {
            log.record(seq as u64, &h).map_err(internal)?;
        }
    }
    Ok(log)
}

/// A verify pass found the targets differ from the source: the record
/// (which says they match) is not to answer the next incremental pass.
pub fn distrust(state_dir: &Path, task: &str) {
    if let Ok(Some(mut j)) = Journal::load(state_dir, task)
        && j.hashes_complete
    {
        j.hashes_complete = false;
        if let Err(e) = j.save(state_dir) {
            tracing::warn!("{task}: journal: {e}");
        }
    }
}

/// What a target looked like when a pass finished: if it still looks the
/// same, nothing wrote to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    pub path: String,
    pub size: u64,
    /// Image files: inode, modification and change times in nanoseconds.
    #[serde(default)]
    pub file: Option<(u64, i128, i128)>,
    /// Devices: this boot's id and the sectors written and discarded.
    #[serde(default)]
    pub device: Option<(String, u64, u64)>,
}

/// The stamps of `targets` now; `None` when one cannot be taken (then the
/// record is never trusted).
pub fn stamps(targets: &[Target], roots: &sysfs::Roots) -> Option<Vec<Stamp>> {
    targets.iter().map(|t| stamp(t, roots)).collect()
}

fn stamp(t: &Target, roots: &sysfs::Roots) -> Option<Stamp> {
    let size = t.size().ok()?;
    let path = t.path.display().to_string();
    if !t.is_block_device() {
        let m = std::fs::metadata(&t.path).ok()?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        return Some(Stamp {
            path,
            size,
            file: Some((
                m.ino(),
                ns(m.mtime(), m.mtime_nsec()),
                ns(m.ctime(), m.ctime_nsec()),
            )),
            device: None,
        });
    }
    let name = sysfs::kernel_name(&t.path)?;
    let boot = std::fs::read_to_string(roots.proc.join("sys/kernel/random/boot_id")).ok()?;
    let stat =
        std::fs::read_to_string(roots.sys.join("class/block").join(&name).join("stat")).ok()?;
    let (written, discarded) = sectors(&stat)?;
    Some(Stamp {
        path,
        size,
        file: None,
        device: Some((boot.trim().to_string(), written, discarded)),
    })
}

/// Sectors written and discarded from a block device's `stat` file
/// (fields 7 and 14; kernels before 4.18 have no discard fields: 0).
fn sectors(stat: &str) -> Option<(u64, u64)> {
    let f: Vec<u64> = stat
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some((*f.get(6)?, f.get(13).copied().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_past_the_end() {
        let t = tempfile::tempdir().unwrap();
        let log = HashLog::open(t.path(), "t1", true).unwrap();
        log.record(2, &[7u8; 32]).unwrap();
        log.record(0, &[1u8; 32]).unwrap();
        let got = log.get(0, 5).unwrap();
        assert_eq!(
            got,
            vec![Some([1u8; 32]), None, Some([7u8; 32]), None, None]
        );
        // Reopened without `fresh`, the records stay; with it they go.
        drop(log);
        let log = HashLog::open(t.path(), "t1", false).unwrap();
        assert_eq!(log.get(2, 1).unwrap(), vec![Some([7u8; 32])]);
        let log = HashLog::open(t.path(), "t1", true).unwrap();
        assert_eq!(log.get(0, 3).unwrap(), vec![None, None, None]);
    }

    #[test]
    fn device_stat_fields() {
        let s = "  100 2 3000 40 500 6 70000 80 0 90 100 11 0 12000 13 14 15\n";
        assert_eq!(sectors(s), Some((70000, 12000)));
        // An old kernel without discard fields.
        assert_eq!(sectors("1 2 3 4 5 6 7 8 9 10 11"), Some((7, 0)));
        assert_eq!(sectors("1 2 x"), None);
    }

    #[test]
    fn a_file_stamp_moves_when_the_file_is_written() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("tgt.img");
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        let target = Target::open(&p).unwrap();
        let roots = sysfs::Roots::system();
        let before = stamps(std::slice::from_ref(&target), &roots).unwrap();
        assert_eq!(
            before,
            stamps(std::slice::from_ref(&target), &roots).unwrap()
        );
        // Coarse timestamps: make sure the clock moves past the first write.
        std::thread::sleep(std::time::Duration::from_millis(20));
        target.write_at(&[1u8; 512], 4096).unwrap();
        target.sync().unwrap();
        assert_ne!(
            before,
            stamps(std::slice::from_ref(&target), &roots).unwrap()
        );
    }
}
