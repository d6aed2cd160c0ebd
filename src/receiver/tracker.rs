//! Per-chunk bookkeeping of a session, for the report files: the receiver
//! derives the task's whole chunk list from the layout (the same grid the
//! source cuts), then marks each chunk as it is written, found held, found
//! different, or refused.

use std::path::Path;
use std::time::Instant;

use super::session::{Refusal, refuse};
use crate::layout::ranges::RangeSet;
use crate::proto::digest;
use crate::proto::message::{ChunkHeader, ChunkRef, ErrorCode, HashAlgo, Layout};
use crate::report::events::utc_now;
use crate::report::files::{self, ChunkRow, Status, TaskReport, VolumeReport};
use crate::report::task::TaskStatus;
use crate::source::chunk::pieces;

/// The most chunks one layout may plan (64 TiB of used data at 1 MiB).
pub const MAX_CHUNKS: u64 = 1 << 26;

pub struct Tracker {
    pub rows: Vec<ChunkRow>,
    /// Per row: its volume index and where it lands on the target.
    place: Vec<(usize, u32, u64)>,
    pub volumes: Vec<VolumeReport>,
    algo: HashAlgo,
    started: String,
    start: Instant,
    pub wire_bytes: u64,
    /// Post-steps of a plan, for the report.
    pub post_steps: Vec<serde_json::Value>,
}

impl Tracker {
    /// The chunk list of `layout`; chunks below `resume_seq` are durable.
    pub fn new(layout: &Layout, resume_seq: u64) -> Result<Tracker, Refusal> {
        let chunk = layout.chunk_size as u64;
        let mut count = 0u64;
        for v in &layout.volumes {
            for e in &v.extents {
                count = count.saturating_add(e.len / chunk + 2);
            }
        }
        if count > MAX_CHUNKS {
            return Err(refuse(
                ErrorCode::MalformedFrame,
                format!("the layout plans more than {MAX_CHUNKS} chunks"),
            ));
        }
        let (mut rows, mut place, mut volumes) = (Vec::new(), Vec::new(), Vec::new());
        for (vi, v) in layout.volumes.iter().enumerate() {
            let mut used = RangeSet::new();
            for e in &v.extents {
                used.insert(e.source_offset, e.len);
            }
            let mut vr = VolumeReport {
                name: v.name.clone(),
                target: v.target,
                size: v.size,
                used_bytes: used.total(),
                ..Default::default()
            };
            for (offset, len) in pieces(&used, chunk) {
                let target_offset = v
                    .extents
                    .iter()
                    .find(|e| offset >= e.source_offset && offset < e.source_offset + e.len)
                    .map_or(offset, |e| e.target_offset + (offset - e.source_offset));
                let seq = rows.len() as u64;
                rows.push(ChunkRow {
                    volume: v.name.clone(),
                    offset,
                    len,
                    crc64: None,
                    hash: None,
                    status: if seq < resume_seq {
                        Status::Durable
                    } else {
                        Status::Pending
                    },
                    time: None,
                    error: None,
                });
                place.push((vi, v.target, target_offset));
                vr.chunks += 1;
            }
            volumes.push(vr);
        }
        Ok(Tracker {
            rows,
            place,
            volumes,
            algo: layout.hash,
            started: utc_now(),
            start: Instant::now(),
            wire_bytes: 0,
            post_steps: Vec::new(),
        })
    }

    /// The task's status as a session of this pass begins.
    pub fn status(
        &self,
        task: &str,
        layout: &Layout,
        resume_seq: u64,
        source: &str,
        peer: std::net::SocketAddr,
        session: u64,
    ) -> TaskStatus {
        let durable = self.rows.iter().take(resume_seq as usize);
        TaskStatus {
            pass: format!("{:?}", layout.pass).to_lowercase(),
            source: source.to_string(),
            peer: peer.to_string(),
            session,
            started: self.started.clone(),
            volumes: layout.volumes.iter().map(|v| v.name.clone()).collect(),
            chunks_total: self.rows.len() as u64,
            bytes_total: self.rows.iter().map(|r| r.len as u64).sum(),
            chunks_done: resume_seq.min(self.rows.len() as u64),
            bytes_done: durable.map(|r| r.len as u64).sum(),
            resumed_at: resume_seq,
            ..TaskStatus::new(task)
        }
    }

    /// Whether chunk `seq` is in the plan and not yet written in this pass.
    pub fn pending(&self, seq: u64) -> bool {
        self.rows
            .get(seq as usize)
            .is_some_and(|r| r.status == Status::Pending)
    }

    /// The first chunk at or after `from` that is not yet complete (all
    /// before it are written, durable or held).
    pub fn prefix_from(&self, from: u64) -> u64 {
        let mut s = from as usize;
        while self.rows.get(s).is_some_and(|r| r.status.completed()) {
            s += 1;
        }
        s as u64
    }

    /// Where each chunk of the plan lands, in sequence order: target,
    /// offset on it and length.
    pub fn places(&self) -> impl Iterator<Item = (u32, u64, u32)> + '_ {
        self.place
            .iter()
            .zip(&self.rows)
            .map(|(&(_, target, offset), r)| (target, offset, r.len))
    }

    /// A chunk must be the one its sequence number names in the plan.
    pub fn check(&self, h: &ChunkHeader) -> Result<(), Refusal> {
        self.is_planned(h.seq, h.target, h.offset, h.len, "chunk")
    }

    /// Each chunk of a hash query must be the one the plan has at its place.
    pub fn check_query(&self, first_seq: u64, chunks: &[ChunkRef]) -> Result<(), Refusal> {
        chunks.iter().enumerate().try_for_each(|(i, c)| {
            let seq = first_seq.saturating_add(i as u64);
            self.is_planned(seq, c.target, c.offset, c.len, "hash query for chunk")
        })
    }

    fn is_planned(
        &self,
        seq: u64,
        target: u32,
        offset: u64,
        len: u32,
        what: &str,
    ) -> Result<(), Refusal> {
        let s = seq as usize;
        match (self.rows.get(s), self.place.get(s)) {
            (Some(r), Some(&(_, t, o))) if r.len == len && t == target && o == offset => Ok(()),
            _ => Err(refuse(
                ErrorCode::OutOfExtent,
                format!(
                    "{what} {seq} ({len} bytes at {offset} on target {target}) is not the chunk the plan has there; nothing written"
                ),
            )),
        }
    }

    pub fn written(&mut self, h: &ChunkHeader, zero: bool, patched: bool, wire: usize) {
        let s = h.seq as usize;
        let (vi, ..) = self.place[s];
        let r = &mut self.rows[s];
        r.crc64 = Some(h.crc64);
        r.hash = Some(digest::hash_hex(self.algo, &h.hash));
        r.status = Status::Written;
        r.time = Some(utc_now());
        let v = &mut self.volumes[vi];
        v.chunks_written += 1;
        v.bytes_written += h.len as u64;
        v.zero_chunks += zero as u64;
        v.chunks_patched += patched as u64;
        self.wire_bytes += wire as u64;
    }

    /// Hash answers: held chunks are complete; in a verify pass the others differ.
    pub fn answered(&mut self, first_seq: u64, have: &[bool], hashes: &[[u8; 32]], verify: bool) {
        for (i, (&held, h)) in have.iter().zip(hashes).enumerate() {
            let s = first_seq as usize + i;
            let Some(r) = self.rows.get_mut(s) else {
                continue;
            };
            r.hash = Some(digest::hash_hex(self.algo, h));
            r.time = Some(utc_now());
            let vi = self.place[s].0;
            if held {
                r.status = Status::Held;
                self.volumes[vi].chunks_held += 1;
            } else if verify {
                r.status = Status::Differs;
                r.error = Some("the target differs from the source".into());
                self.volumes[vi].chunks_failed += 1;
            }
        }
    }

    /// Chunks a verify pass found different on the target.
    pub fn differing(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.status == Status::Differs)
            .count()
    }

    pub fn failed(&mut self, seq: u64, why: &str) {
        if let Some(r) = self.rows.get_mut(seq as usize) {
            r.status = Status::Error;
            r.error = Some(why.to_string());
            r.time = Some(utc_now());
            let vi = self.place[seq as usize].0;
            self.volumes[vi].chunks_failed += 1;
        }
    }

    /// Write the report files; failing to write them is logged, not fatal.
    pub fn write(
        &self,
        state_dir: &Path,
        task: &str,
        pass: &str,
        source: &str,
        errors: Vec<String>,
    ) {
        let seconds = self.start.elapsed().as_secs_f64();
        let mut volumes = self.volumes.clone();
        for (vi, v) in volumes.iter_mut().enumerate() {
            let rows = || {
                self.rows
                    .iter()
                    .zip(&self.place)
                    .filter(move |(_, p)| p.0 == vi)
                    .map(|(r, _)| r)
            };
            v.bytes_skipped = rows()
                .filter(|r| matches!(r.status, Status::Durable | Status::Held))
                .map(|r| r.len as u64)
                .sum();
            v.digest = rows()
                .map(|r| r.hash.as_deref())
                .collect::<Option<Vec<&str>>>()
                .map(crate::source::tally::digest_of);
        }
        let bytes_written: u64 = self.volumes.iter().map(|v| v.bytes_written).sum();
        let report = TaskReport {
            task: task.to_string(),
            pass: pass.to_string(),
            state: if errors.is_empty() {
                "Finished"
            } else {
                "InError"
            }
            .to_string(),
            source: source.to_string(),
            started: self.started.clone(),
            ended: utc_now(),
            seconds,
            volumes,
            bytes_written,
            wire_bytes: self.wire_bytes,
            compression_ratio: if self.wire_bytes > 0 {
                bytes_written as f64 / self.wire_bytes as f64
            } else {
                0.0
            },
            throughput: bytes_written as f64 / seconds.max(1e-9),
            errors,
            post_steps: self.post_steps.clone(),
            passes: Vec::new(),
        };
        if let Err(e) = files::write(state_dir, &report, &self.rows) {
            super::server::console(format_args!(
                "ferry receive: cannot write the report of {task}: {e}"
            ));
        }
    }
}
