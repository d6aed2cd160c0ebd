//! The read side of a pass: a dispatcher walks the chunks in order, and a
//! few reader threads (several reads in flight: O_DIRECT has no readahead)
//! read them into a circulating pool of aligned buffers (O_DIRECT where the
//! disk allows); a pool of workers hashes and compresses them
//! into frames (one zstd context each); a collector puts the results back
//! in order for the network side. Every queue is bounded, so memory stays
//! flat whatever the disk size.

use std::sync::mpsc::{Receiver as StdReceiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::chunk::{CHUNK_SIZE, Preparer, pieces};
use super::rate::Pacer;
use super::send::SendConfig;
use super::volumes::SourceVolume;
use crate::disk::aligned::AlignedBuf;
use crate::proto::message::*;

/// Reads kept in flight on the source disks. On this project's VM disk 1
/// and 4 measured the same (the disk is the limit either way); RAID
/// controllers and NVMe drives want more than one O_DIRECT read queued.
const READERS: usize = 4;

/// One chunk to read: which volume, where, and its sequence number.
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) volume: usize,
    pub(super) offset: u64,
    pub(super) len: u32,
    /// Where it lands: target index and byte offset on the target.
    pub(super) target: u32,
    pub(super) target_offset: u64,
}

/// A framed chunk, or why the pipeline stopped.
pub(super) enum Item {
    /// Comparison passes: a chunk's place and hash, no data.
    Hashed {
        seq: u64,
        /// The volume (index) and the byte offset in it; `chunk` has the
        /// place on the target.
        volume: usize,
        offset: u64,
        chunk: ChunkRef,
    },
    Frame {
        seq: u64,
        volume: u32,
        len: u32,
        zero: bool,
        hash: [u8; 32],
        frame: Bytes,
    },
    Failed(String),
}

/// Reader -> workers -> in-order collector -> `out`. Returns the collector's handle.
pub(super) fn start_pipeline(
    cfg: &SendConfig,
    volumes: Arc<Vec<SourceVolume>>,
    resume: u64,
    out: tokio::sync::mpsc::Sender<Item>,
    hash_only: bool,
) -> std::thread::JoinHandle<()> {
    let threads = cfg.threads.max(1);
    type Work = (Job, AlignedBuf, SyncSender<Result<Item, String>>);
    let (work_tx, work_rx) = sync_channel::<Work>(threads * 2);
    // Chunk buffers go round: reader -> worker -> back here. They are
    // aligned so that the reader can use O_DIRECT, and reused so that no
    // chunk pays for fresh memory. Enough for every queue slot, every
    // worker and the reader.
    let buffers = threads * 3 + 2 + READERS;
    let (pool_tx, pool_rx) = sync_channel::<AlignedBuf>(buffers);
    for _ in 0..buffers {
        let _ = pool_tx.send(AlignedBuf::new(CHUNK_SIZE as usize));
    }
    let (order_tx, order_rx) = sync_channel::<StdReceiver<Result<Item, String>>>(threads * 4);
    let work_rx = Arc::new(Mutex::new(work_rx));
    for _ in 0..threads {
        let rx = work_rx.clone();
        let pool = pool_tx.clone();
        let (level, algo) = (cfg.level, cfg.hash);
        std::thread::spawn(move || {
            let mut prep = match Preparer::new(level, algo) {
                Ok(p) => p,
                Err(_) => return,
            };
            loop {
                let next = rx.lock().expect("work queue").recv();
                let Ok((job, buf, reply)) = next else { return };
                let data = &buf.as_ref()[..job.len as usize];
                if hash_only {
                    let chunk = ChunkRef {
                        target: job.target,
                        offset: job.target_offset,
                        len: job.len,
                        hash: crate::proto::digest::hash(algo, data),
                    };
                    let _ = pool.send(buf);
                    let _ = reply.send(Ok(Item::Hashed {
                        seq: job.seq,
                        volume: job.volume,
                        offset: job.offset,
                        chunk,
                    }));
                    continue;
                }
                let item = prep
                    .frame(job.seq, job.target, job.target_offset, data)
                    .map_err(|e| format!("compressing chunk {}: {e}", job.seq))
                    .map(|(header, frame)| Item::Frame {
                        seq: job.seq,
                        volume: job.volume as u32,
                        len: job.len,
                        zero: header.codec == Codec::Zero,
                        hash: header.hash,
                        frame,
                    });
                let _ = pool.send(buf);
                let _ = reply.send(item);
            }
        });
    }
    // Reads: the dispatcher walks the chunks in order (pacing the read
    // limit) and queues each one's reply slot with the collector first, so
    // order holds whichever reader finishes first; READERS threads read, so
    // that O_DIRECT (no kernel readahead) keeps several reads in flight.
    type Read = (Job, SyncSender<Result<Item, String>>);
    let (read_tx, read_rx) = sync_channel::<Read>(READERS * 2);
    let read_rx = Arc::new(Mutex::new(read_rx));
    let pool_rx = Arc::new(Mutex::new(pool_rx));
    for _ in 0..READERS {
        let (read_rx, pool_rx, work_tx, volumes) = (
            read_rx.clone(),
            pool_rx.clone(),
            work_tx.clone(),
            volumes.clone(),
        );
        std::thread::spawn(move || {
            loop {
                let next = read_rx.lock().expect("read queue").recv();
                let Ok((job, reply_tx)) = next else { return };
                let Ok(mut buf) = pool_rx.lock().expect("buffer pool").recv() else {
                    return;
                };
                let v = &volumes[job.volume];
                let data = &mut buf.as_mut()[..job.len as usize];
                if let Err(e) = v.reader.read_exact_at(data, job.offset) {
                    let why = format!("reading {} at byte {}: {e}", v.name, job.offset);
                    let _ = reply_tx.send(Err(why));
                    return;
                }
                if work_tx.send((job, buf, reply_tx)).is_err() {
                    return;
                }
            }
        });
    }
    drop(work_tx);
    let read_mbit = cfg.read_limit.saturating_mul(8);
    std::thread::spawn(move || {
        let mut seq = 0u64;
        let mut pacer = Pacer::default();
        for (vi, v) in volumes.iter().enumerate() {
            for (offset, len) in pieces(&v.used, CHUNK_SIZE) {
                let s = seq;
                seq += 1;
                if s < resume {
                    continue;
                }
                let wait = pacer.delay(len as u64, read_mbit, Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                let (reply_tx, reply_rx) = sync_channel(1);
                if order_tx.send(reply_rx).is_err() {
                    return;
                }
                let job = Job {
                    seq: s,
                    volume: vi,
                    offset,
                    len,
                    target: v.target,
                    target_offset: v.base + offset,
                };
                if read_tx.send((job, reply_tx)).is_err() {
                    return;
                }
            }
        }
    });
    std::thread::spawn(move || {
        for rx in order_rx {
            let item = match rx.recv() {
                Ok(Ok(item)) => item,
                Ok(Err(why)) => Item::Failed(why),
                Err(_) => Item::Failed("a worker thread stopped".into()),
            };
            let failed = matches!(item, Item::Failed(_));
            if out.blocking_send(item).is_err() || failed {
                return;
            }
        }
    })
}
