//! The read side of a pass: a dispatcher walks the chunks in order and
//! gathers neighbours into runs read with one I/O; a few reader threads
//! (several reads in flight: O_DIRECT has no readahead) read the runs into
//! a circulating pool of aligned buffers (O_DIRECT where the disk allows);
//! a pool of workers hashes and compresses the chunks
//! into frames (one zstd context each); a collector puts the results back
//! in order for the network side. Every queue is bounded, so memory stays
//! flat whatever the disk size.

use std::sync::mpsc::{Receiver as StdReceiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;

use super::chunk::{CHUNK_SIZE, Preparer, patch_map, pieces};
use super::rate::Pacer;
use super::send::SendConfig;
use super::volumes::SourceVolume;
use crate::disk::aligned::AlignedBuf;
use crate::proto::message::*;

/// How the source disks are read: by how many reader threads (several
/// O_DIRECT reads in flight, as there is no readahead), and the largest
/// single read, for neighbouring chunks of a volume read with one I/O and
/// handed to the workers as slices of it.
#[derive(Clone, Copy)]
struct ReadShape {
    readers: usize,
    run_max: u64,
}

impl ReadShape {
    /// Read buffers: one per reader and one whose chunks are with the workers.
    fn buffers(self) -> usize {
        self.readers + 1
    }
}

/// A pass that sends data: compression is its limit, and 8 MiB reads keep
/// it fed (buffers: 5 x 8 MiB).
const FRAMING: ReadShape = ReadShape {
    readers: 4,
    run_max: 8 << 20,
};

/// A comparison pass (incremental, verify) only hashes, so the disk is its
/// limit, and what the disk gives grows with the bytes in flight: on this
/// project's VM disk, 4 x 32 MiB read the benchmark disk's used data in
/// about 25% less time than 4 x 1 MiB (docs/benchmarks.md). Buffers: 5 x 32 MiB.
const HASHING: ReadShape = ReadShape {
    readers: 4,
    run_max: 32 << 20,
};

/// Unused bytes between two chunks that are still read in the same I/O
/// (and dropped): one more request costs more than reading this much.
const GAP_MAX: u64 = 128 << 10;

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

/// Neighbouring chunks of one volume, read with one I/O from `start`.
struct Run {
    volume: usize,
    start: u64,
    end: u64,
    jobs: Vec<Job>,
}

impl Run {
    /// Whether `job` joins this run: same volume, close behind the last
    /// chunk, and the whole read still within `run_max`.
    fn takes(&self, job: &Job, run_max: u64) -> bool {
        job.volume == self.volume
            && job.offset >= self.end
            && job.offset - self.end <= GAP_MAX
            && job.offset + job.len as u64 - self.start <= run_max
    }
}

/// A read buffer shared by the chunks of one run; the last chunk done puts
/// it back in the pool.
struct Lease {
    buf: Option<AlignedBuf>,
    pool: SyncSender<AlignedBuf>,
}

impl Lease {
    fn bytes(&self) -> &[u8] {
        self.buf.as_ref().map(|b| b.as_ref()).unwrap_or(&[])
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let _ = self.pool.send(buf);
        }
    }
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
    // A chunk for a worker: the run's buffer and where the chunk sits in it.
    type Work = (Job, Arc<Lease>, usize, SyncSender<Result<Item, String>>);
    let (work_tx, work_rx) = sync_channel::<Work>(threads * 2);
    // Read buffers go round: reader -> workers (shared by a run's chunks)
    // -> back here when the run's last chunk is done. They are aligned so
    // that the reader can use O_DIRECT, and reused so that no read pays
    // for fresh memory.
    let shape = if hash_only { HASHING } else { FRAMING };
    let (pool_tx, pool_rx) = sync_channel::<AlignedBuf>(shape.buffers());
    for _ in 0..shape.buffers() {
        let _ = pool_tx.send(AlignedBuf::new(shape.run_max as usize));
    }
    type Slots = Vec<StdReceiver<Result<Item, String>>>;
    let (order_tx, order_rx) = sync_channel::<Slots>(shape.buffers());
    let work_rx = Arc::new(Mutex::new(work_rx));
    for _ in 0..threads {
        let rx = work_rx.clone();
        let (level, algo) = (cfg.level, cfg.hash);
        std::thread::spawn(move || {
            let mut prep = match Preparer::new(level, algo) {
                Ok(p) => p,
                Err(_) => return,
            };
            loop {
                let next = rx.lock().expect("work queue").recv();
                let Ok((job, lease, at, reply)) = next else {
                    return;
                };
                let data = &lease.bytes()[at..at + job.len as usize];
                if hash_only {
                    let chunk = ChunkRef {
                        target: job.target,
                        offset: job.target_offset,
                        len: job.len,
                        hash: crate::proto::digest::hash(algo, data),
                    };
                    drop(lease);
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
                drop(lease);
                let _ = reply.send(item);
            }
        });
    }
    // Reads: the dispatcher walks the chunks in order (pacing the read
    // limit), gathers neighbours into runs and queues each run's reply
    // slots with the collector first, so order holds whichever reader
    // finishes first; `shape.readers` threads read, so that O_DIRECT (no kernel
    // readahead) keeps several reads in flight.
    type Read = (Run, Vec<SyncSender<Result<Item, String>>>);
    let (read_tx, read_rx) = sync_channel::<Read>(shape.readers);
    let read_rx = Arc::new(Mutex::new(read_rx));
    let pool_rx = Arc::new(Mutex::new(pool_rx));
    for _ in 0..shape.readers {
        let (read_rx, pool_rx, pool_tx, work_tx, volumes) = (
            read_rx.clone(),
            pool_rx.clone(),
            pool_tx.clone(),
            work_tx.clone(),
            volumes.clone(),
        );
        std::thread::spawn(move || {
            loop {
                let next = read_rx.lock().expect("read queue").recv();
                let Ok((run, replies)) = next else { return };
                let Ok(mut buf) = pool_rx.lock().expect("buffer pool").recv() else {
                    return;
                };
                let v = &volumes[run.volume];
                let data = &mut buf.as_mut()[..(run.end - run.start) as usize];
                if let Err(e) = v.reader.read_exact_at(data, run.start) {
                    let why = format!("reading {} at byte {}: {e}", v.name, run.start);
                    let _ = pool_tx.send(buf);
                    for reply_tx in replies {
                        let _ = reply_tx.send(Err(why.clone()));
                    }
                    return;
                }
                let lease = Arc::new(Lease {
                    buf: Some(buf),
                    pool: pool_tx.clone(),
                });
                for (job, reply_tx) in run.jobs.into_iter().zip(replies) {
                    let at = (job.offset - run.start) as usize;
                    if work_tx.send((job, lease.clone(), at, reply_tx)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(work_tx);
    drop(pool_tx);
    let read_mbit = cfg.read_limit.saturating_mul(8);
    std::thread::spawn(move || {
        // Hands a run to the readers, its reply slots to the collector first.
        let dispatch = |run: Run| -> bool {
            let (txs, rxs): (Vec<_>, Vec<_>) = run.jobs.iter().map(|_| sync_channel(1)).unzip();
            order_tx.send(rxs).is_ok() && read_tx.send((run, txs)).is_ok()
        };
        let mut seq = 0u64;
        let mut pacer = Pacer::default();
        let mut run: Option<Run> = None;
        for (vi, v) in volumes.iter().enumerate() {
            for (offset, len) in pieces(&v.used, CHUNK_SIZE) {
                let s = seq;
                seq += 1;
                if s < resume {
                    continue;
                }
                let wait = pacer.delay(len as u64, read_mbit, Instant::now());
                if !wait.is_zero() {
                    // Paced: what is gathered goes now rather than after the wait.
                    if let Some(r) = run.take()
                        && !dispatch(r)
                    {
                        return;
                    }
                    std::thread::sleep(wait);
                }
                let job = Job {
                    seq: s,
                    volume: vi,
                    offset,
                    len,
                    target: v.target,
                    target_offset: v.base + offset,
                };
                match &mut run {
                    Some(r) if r.takes(&job, shape.run_max) => {
                        r.end = offset + len as u64;
                        r.jobs.push(job);
                    }
                    _ => {
                        if let Some(r) = run.take()
                            && !dispatch(r)
                        {
                            return;
                        }
                        run = Some(Run {
                            volume: vi,
                            start: offset,
                            end: offset + len as u64,
                            jobs: vec![job],
                        });
                    }
                }
            }
        }
        if let Some(r) = run {
            dispatch(r);
        }
    });
    std::thread::spawn(move || {
        for rx in order_rx.iter().flatten() {
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

/// A chunk framed again: what a comparison pass found the receiver lacks.
pub(super) struct Reframed {
    pub(super) volume: u32,
    pub(super) len: u32,
    pub(super) zero: bool,
    /// Sent as a patch of the parts that differ.
    pub(super) patched: bool,
    pub(super) frame: Bytes,
}

/// A chunk the receiver lacks: its sequence number, volume (index), offset
/// in the volume, place and hash, and the receiver's digests of the parts
/// it holds there (empty: unknown).
pub(super) struct Lack {
    pub(super) seq: u64,
    pub(super) volume: usize,
    pub(super) offset: u64,
    pub(super) chunk: ChunkRef,
    pub(super) parts: Vec<u64>,
}

/// Read and frame again the chunks that a comparison pass found the
/// receiver lacks: their bytes were hashed and let go. A chunk whose part
/// digests came with the answer (cut and digested as `spec` says) goes as a
/// patch of the parts that differ when that saves enough. Several at a
/// time, because each read waits behind the pass's own reads in the disk's
/// queue. In the order given.
pub(super) fn reframe(
    volumes: &[SourceVolume],
    level: i32,
    algo: HashAlgo,
    spec: Option<PartSpec>,
    wanted: &[Lack],
) -> Result<Vec<Reframed>, String> {
    let threads = wanted.len().min(FRAMING.readers);
    let mut done: Vec<(usize, Reframed)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<Vec<(usize, Reframed)>, String> {
                    let mut prep = Preparer::new(level, algo).map_err(|e| format!("zstd: {e}"))?;
                    let mut buf = AlignedBuf::new(CHUNK_SIZE as usize);
                    let mut out = Vec::new();
                    for (i, w) in wanted.iter().enumerate().skip(t).step_by(threads) {
                        let (seq, offset, c) = (w.seq, w.offset, w.chunk);
                        let v = &volumes[w.volume];
                        let data = &mut buf.as_mut()[..c.len as usize];
                        v.reader
                            .read_exact_at(data, offset)
                            .map_err(|e| format!("reading {} at byte {offset}: {e}", v.name))?;
                        let map = patch_map(spec, &w.parts, data);
                        let patched = map.is_some();
                        let (header, frame) = match map {
                            Some(map) => prep.patch(seq, c.target, c.offset, data, map),
                            None => prep.frame(seq, c.target, c.offset, data),
                        }
                        .map_err(|e| format!("compressing chunk {seq}: {e}"))?;
                        out.push((
                            i,
                            Reframed {
                                volume: w.volume as u32,
                                len: c.len,
                                zero: header.codec == Codec::Zero,
                                patched,
                                frame,
                            },
                        ));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(wanted.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| "a read thread panicked".to_string())??,
            );
        }
        Ok::<_, String>(all)
    })?;
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests;
