//! Chunks are decompressed, hashed and written on a small pool of threads,
//! so that the session loop goes on reading (and decrypting) the next frames
//! while earlier chunks are checked and written, and a chunk's write waits
//! on the device while the next one is decompressed. Each chunk is checked
//! (plan, bound, hash) by the thread that writes it, before writing it.
//!
//! Chunks complete out of order; the session drains the pool before every
//! sync, hash answer and Finish, so a checkpoint covers only chunks that
//! were written.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::server::Receiver;
use super::session::{Refusal, refuse};
use super::write::{Planned, Scratch};
use crate::proto::message::{Chunk, ChunkHeader, ErrorCode, HashAlgo};

/// A chunk the pool finished: written (the bytes it covers) or refused.
pub struct Done {
    pub header: ChunkHeader,
    /// Its data bytes on the wire.
    pub wire: usize,
    /// It came as a patch of what the target held.
    pub patched: bool,
    pub result: Result<u64, Refusal>,
}

pub struct WritePool {
    jobs: mpsc::Sender<Chunk>,
    done: mpsc::UnboundedReceiver<Done>,
    /// Chunks handed over and not yet reported done.
    pub in_flight: usize,
}

impl WritePool {
    pub fn start(
        rx: Arc<Receiver>,
        planned: Planned,
        algo: HashAlgo,
        chunk_size: usize,
        threads: usize,
    ) -> Result<WritePool, Refusal> {
        let threads = threads.max(1);
        let (jobs, jobs_rx) = mpsc::channel::<Chunk>(threads);
        let (done_tx, done) = mpsc::unbounded_channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let planned = Arc::new(planned);
        for _ in 0..threads {
            let mut scratch =
                Scratch::new(chunk_size).map_err(|e| refuse(ErrorCode::Internal, e.to_string()))?;
            let (rx, planned, jobs_rx, done_tx) = (
                rx.clone(),
                planned.clone(),
                jobs_rx.clone(),
                done_tx.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let job = jobs_rx.lock().expect("chunk queue").blocking_recv();
                    let Some(c) = job else { return };
                    let result = rx.write_chunk(&planned, algo, &c, &mut scratch);
                    let done = Done {
                        header: c.header,
                        wire: c.data.len(),
                        patched: c.patch.is_some(),
                        result,
                    };
                    if done_tx.send(done).is_err() {
                        return;
                    }
                }
            });
        }
        Ok(WritePool {
            jobs,
            done,
            in_flight: 0,
        })
    }

    /// Hand a checked chunk to the pool (waits while every thread is busy
    /// and the queue is full).
    pub async fn submit(&mut self, c: Chunk) -> Result<(), Refusal> {
        self.jobs
            .send(c)
            .await
            .map_err(|_| refuse(ErrorCode::Internal, "the chunk writers stopped"))?;
        self.in_flight += 1;
        Ok(())
    }

    /// The next finished chunk; only call with chunks in flight.
    pub async fn next_done(&mut self) -> Result<Done, Refusal> {
        let d = self
            .done
            .recv()
            .await
            .ok_or_else(|| refuse(ErrorCode::Internal, "the chunk writers stopped"))?;
        self.in_flight -= 1;
        Ok(d)
    }
}
