//! The read-back: every chunk a session wrote is read again from the target
//! and hashed before the session answers Finished. Chunks are handed over
//! once a checkpoint has made them durable, and a thread reads them back
//! while the pass goes on, so that Finish only waits for the chunks written
//! since the last checkpoint instead of re-reading the whole pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use super::server::Receiver;
use super::session::{Refusal, refuse};
use super::write::Planned;
use crate::proto::message::{ChunkRef, ErrorCode, HashAlgo};

/// What the read-back found: chunks read, and how many differ.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub chunks: u64,
    pub bad: u64,
}

/// A read-back thread for one session.
pub struct Verifier {
    batches: Option<Sender<Vec<ChunkRef>>>,
    thread: Option<JoinHandle<Result<Checked, Refusal>>>,
    /// Chunks found differing so far (a failure is reported early).
    bad: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Verifier {
    pub fn start(rx: Arc<Receiver>, planned: Planned, algo: HashAlgo) -> Verifier {
        let (tx, batches) = channel::<Vec<ChunkRef>>();
        let bad = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (bad2, stop2) = (bad.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut checked = Checked::default();
            for batch in batches {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let have = rx.holds(&planned, algo, &batch)?;
                let n = have.iter().filter(|h| !**h).count() as u64;
                checked.chunks += have.len() as u64;
                checked.bad += n;
                bad2.fetch_add(n, Ordering::Relaxed);
            }
            Ok(checked)
        });
        Verifier {
            batches: Some(tx),
            thread: Some(thread),
            bad,
            stop,
        }
    }

    /// Read back `chunks`, which a sync has made durable.
    pub fn check(&self, chunks: Vec<ChunkRef>) {
        if chunks.is_empty() {
            return;
        }
        if let Some(tx) = &self.batches {
            // A send fails only when the thread stopped on a read error,
            // which `finish` reports.
            let _ = tx.send(chunks);
        }
    }

    /// Chunks found differing so far.
    pub fn bad_so_far(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    /// Wait for every chunk handed over to be read back (blocks).
    pub fn finish(mut self) -> Result<Checked, Refusal> {
        self.batches.take();
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(refuse(ErrorCode::Internal, "the read-back thread stopped")),
        }
    }
}

impl Drop for Verifier {
    /// A session that ends early stops its read-back after the current batch.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::sysfs::Roots;
    use crate::layout::ranges::RangeSet;
    use crate::proto::digest;
    use crate::proto::message::{ChunkRef, HashAlgo};
    use crate::receiver::server::ReceiveConfig;

    /// A receiver writing `target`, its state under `dir`.
    fn receiver_on(dir: &std::path::Path, target: std::path::PathBuf) -> Arc<Receiver> {
        Receiver::new(&ReceiveConfig {
            targets: vec![target],
            state_dir: dir.join("state"),
            code: Some("TEST-CODE".into()),
            name: "test".into(),
            force: false,
            max_sessions: 1,
            roots: Roots::system(),
        })
        .unwrap()
    }

    #[test]
    fn the_read_back_counts_chunks_the_target_does_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.img");
        let mut bytes = vec![7u8; 3 << 12];
        bytes[(2 << 12) + 5] = 8; // the third chunk is damaged on the target
        std::fs::write(&target, &bytes).unwrap();
        let rx = receiver_on(dir.path(), target);
        let mut planned = RangeSet::new();
        planned.insert(0, 3 << 12);
        let written: Vec<ChunkRef> = (0..3u64)
            .map(|i| ChunkRef {
                target: 0,
                offset: i << 12,
                len: 1 << 12,
                hash: digest::hash(HashAlgo::Blake3, &[7u8; 1 << 12]),
            })
            .collect();
        let v = Verifier::start(rx.clone(), vec![planned.clone()], HashAlgo::Blake3);
        v.check(written[..2].to_vec());
        v.check(Vec::new());
        v.check(written[2..].to_vec());
        assert_eq!(v.finish().unwrap(), Checked { chunks: 3, bad: 1 });
        // A chunk outside the plan is an error, not a pass.
        let v = Verifier::start(rx, vec![planned], HashAlgo::Blake3);
        let mut outside = written[0];
        outside.offset = 3 << 12;
        v.check(vec![outside]);
        assert!(v.finish().is_err());
    }

    #[test]
    fn holds_reads_neighbours_together_and_answers_per_chunk() {
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.img");
        // 20 MiB on the target; chunks are checked against what the file
        // holds, one byte differs in chunk 9, and the plan runs past the end.
        let mut bytes: Vec<u8> = (0..20 * MIB).map(|i| (i / 4096 % 251) as u8).collect();
        let hashes: Vec<[u8; 32]> = (0..22)
            .map(|i| {
                let at = (i * MIB) as usize;
                let data = if i < 20 {
                    bytes[at..at + MIB as usize].to_vec()
                } else {
                    vec![0; MIB as usize]
                };
                digest::hash(HashAlgo::Blake3, &data)
            })
            .collect();
        bytes[(9 * MIB + 77) as usize] ^= 1;
        std::fs::write(&target, &bytes).unwrap();
        let rx = receiver_on(dir.path(), target);
        let mut planned = RangeSet::new();
        planned.insert(0, 22 * MIB);
        // Chunks 0..=13 in a row (more than one read), 15, then 18..=21
        // (the last two past the end of the file).
        let picks: Vec<u64> = (0..14).chain([15]).chain(18..22).collect();
        let chunks: Vec<ChunkRef> = picks
            .iter()
            .map(|&i| ChunkRef {
                target: 0,
                offset: i * MIB,
                len: MIB as u32,
                hash: hashes[i as usize],
            })
            .collect();
        let have = rx.holds(&vec![planned], HashAlgo::Blake3, &chunks).unwrap();
        let want: Vec<bool> = picks.iter().map(|&i| i != 9 && i < 20).collect();
        assert_eq!(have, want);
    }

    #[test]
    fn patches_lay_parts_over_the_target_and_check_the_whole() {
        use crate::proto::codec::{MAX_FRAME, decode};
        use crate::proto::message::{Message, PART_SIZE, PartSpec};
        use crate::receiver::write::Scratch;
        use crate::source::chunk::{Preparer, patch_map};
        const MIB: usize = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.img");
        let old: Vec<u8> = (0..MIB).map(|i| (i / 4096 % 251) as u8).collect();
        std::fs::write(&target, &old).unwrap();
        // The source changed two bytes, in parts 0 and 40.
        let mut new = old.clone();
        new[77] ^= 1;
        new[40 * PART_SIZE as usize + 3] ^= 1;
        let rx = receiver_on(dir.path(), target.clone());
        let mut range = RangeSet::new();
        range.insert(0, MIB as u64);
        let planned = vec![range];
        let chunk = ChunkRef {
            target: 0,
            offset: 0,
            len: MIB as u32,
            hash: digest::hash(HashAlgo::Blake3, &new),
        };
        let spec = PartSpec {
            size: PART_SIZE,
            seed: 99,
        };
        let held = rx
            .examine(&planned, Some(HashAlgo::Blake3), Some(spec), &[chunk])
            .unwrap();
        assert!(!held[0].same);
        assert_eq!(held[0].parts.len(), MIB / PART_SIZE as usize);
        let map = patch_map(Some(spec), &held[0].parts, &new).unwrap();
        let carried: Vec<usize> = (0..map.present.len()).filter(|&i| map.present[i]).collect();
        assert_eq!(carried, vec![0, 40]);
        let mut prep = Preparer::new(1, HashAlgo::Blake3).unwrap();
        let (_, frame) = prep.patch(0, 0, 0, &new, map).unwrap();
        assert!(frame.len() < 2 * PART_SIZE as usize);
        let Some((Message::Chunk(c), _)) = decode(&frame, MAX_FRAME).unwrap() else {
            panic!("a chunk frame")
        };
        let mut scratch = Scratch::new(MIB).unwrap();
        // The target changed since its answer: refused, nothing written.
        let mut moved = old.clone();
        moved[20 * PART_SIZE as usize] ^= 1;
        std::fs::write(&target, &moved).unwrap();
        let e = rx
            .write_chunk(&planned, HashAlgo::Blake3, &c, &mut scratch)
            .unwrap_err();
        assert!(
            e.message.contains("hash mismatch (a patch"),
            "{}",
            e.message
        );
        assert_eq!(std::fs::read(&target).unwrap(), moved);
        // As answered: the target becomes the source's chunk.
        std::fs::write(&target, &old).unwrap();
        rx.write_chunk(&planned, HashAlgo::Blake3, &c, &mut scratch)
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), new);
        // A chunk of zeros never goes as a patch; nor does one without digests.
        assert!(patch_map(Some(spec), &held[0].parts, &vec![0; MIB]).is_none());
        assert!(patch_map(Some(spec), &[], &new).is_none());
    }
}
