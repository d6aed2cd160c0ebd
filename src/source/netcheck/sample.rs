//! The source side of a netcheck: reading a sample of the volumes' used
//! chunks, and hashing and compressing it as the transfer's workers would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{COMPRESS_SAMPLE_BYTES, NetcheckConfig, PROGRESS_EVERY, Stage};
use crate::disk::ReadAt;
use crate::source::chunk::{CHUNK_SIZE, Preparer, pieces};
use crate::source::volumes::SourceVolume;

/// Compression is timed over at least this long (the sample is compressed
/// again, up to [`MAX_COMPRESS_ROUNDS`] times, until it is).
const MIN_COMPRESS_TIME: Duration = Duration::from_millis(500);
const MAX_COMPRESS_ROUNDS: usize = 16;
/// Consecutive chunks read at each sampled place (sequential reads, as the
/// transfer does them).
const SAMPLE_RUN: u64 = 8;

/// The disk sample: what was read, how fast, and the part kept to compress.
pub(super) struct Sample {
    /// Used bytes of the volumes.
    pub used: u64,
    /// Bytes read, and seconds.
    pub bytes: u64,
    pub secs: f64,
    pub kept: Vec<Vec<u8>>,
}

/// Read used chunks of `volumes` on one thread, as the transfer's reader
/// does: all of them if they fit in `cfg.sample_bytes`, else runs of
/// [`SAMPLE_RUN`] chunks spread evenly over them; stop at `cfg.sample_time`.
/// Every so many chunks read is kept, up to [`COMPRESS_SAMPLE_BYTES`].
pub(super) fn read(
    cfg: &NetcheckConfig,
    volumes: &[SourceVolume],
    progress: &mut impl FnMut(Stage),
) -> anyhow::Result<Sample> {
    let chunks = || {
        volumes
            .iter()
            .flat_map(|v| pieces(&v.used, CHUNK_SIZE).map(move |(o, l)| (v, o, l)))
    };
    let used: u64 = volumes.iter().map(|v| v.used.total()).sum();
    let total = chunks().count() as u64;
    let budget = (cfg.sample_bytes / CHUNK_SIZE).max(1);
    // Read chunk i when i % stride < run.
    let (stride, run, planned) = if total <= budget {
        (1, 1, total)
    } else {
        let runs = (budget / SAMPLE_RUN).max(1);
        let run = SAMPLE_RUN.min(budget);
        (total / runs, run, runs * run)
    };
    let keep_every = planned
        .div_ceil((COMPRESS_SAMPLE_BYTES / CHUNK_SIZE).max(1))
        .max(1);
    let total_bytes = (planned * CHUNK_SIZE).min(used);
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    let mut kept = Vec::new();
    let (mut bytes, mut read) = (0u64, 0u64);
    let start = Instant::now();
    let mut shown = start;
    progress(Stage::DiskRead {
        bytes: 0,
        total: total_bytes,
    });
    for (i, (v, offset, len)) in chunks().enumerate() {
        if (i as u64) % stride >= run {
            continue;
        }
        if read > 0 && (bytes >= cfg.sample_bytes || start.elapsed() >= cfg.sample_time) {
            break;
        }
        let data = &mut buf[..len as usize];
        v.reader
            .read_exact_at(data, offset)
            .with_context(|| format!("reading {} at byte {offset}", v.name))?;
        if read % keep_every == 0 && (kept.len() as u64) * CHUNK_SIZE < COMPRESS_SAMPLE_BYTES {
            kept.push(data.to_vec());
        }
        read += 1;
        bytes += len as u64;
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            progress(Stage::DiskRead {
                bytes,
                total: total_bytes,
            });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    progress(Stage::DiskRead {
        bytes,
        total: total_bytes,
    });
    Ok(Sample {
        used,
        bytes,
        secs,
        kept,
    })
}

/// The compression measurement.
pub(super) struct Compressed {
    pub threads: usize,
    /// Used bytes per second through Preparer and framing on `threads`.
    pub rate: f64,
    /// One pass over the kept chunks: their bytes, and their frames' bytes.
    pub used: u64,
    pub wire: u64,
}

/// Prepare (hash, zero check, zstd) and frame the kept chunks on
/// `cfg.threads` threads, as the transfer's workers do, repeating the
/// sample until [`MIN_COMPRESS_TIME`] has passed; the ratio is of one pass.
pub(super) fn compress(
    cfg: &NetcheckConfig,
    kept: &[Vec<u8>],
    progress: &mut impl FnMut(Stage),
) -> anyhow::Result<Compressed> {
    let threads = cfg.threads.max(1);
    if kept.is_empty() {
        return Ok(Compressed {
            threads,
            rate: f64::INFINITY,
            used: 0,
            wire: 0,
        });
    }
    progress(Stage::Compression { bytes: 0 });
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let limit = kept.len() * MAX_COMPRESS_ROUNDS;
    let results: Vec<anyhow::Result<(u64, u64, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let next = &next;
                s.spawn(move || -> anyhow::Result<(u64, u64, u64)> {
                    let mut prep = Preparer::new(cfg.level, cfg.hash)?;
                    // (bytes prepared, bytes of the first pass, its frames)
                    let (mut all, mut first, mut wire) = (0u64, 0u64, 0u64);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= limit || (i >= kept.len() && start.elapsed() >= MIN_COMPRESS_TIME) {
                            return Ok((all, first, wire));
                        }
                        let data = &kept[i % kept.len()];
                        let (_, frame) = prep.frame(i as u64, 0, 0, data)?;
                        all += data.len() as u64;
                        if i < kept.len() {
                            first += data.len() as u64;
                            wire += frame.len() as u64;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a compression thread panicked"))
            })
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let (mut all, mut used, mut wire) = (0, 0, 0);
    for r in results {
        let (a, u, w) = r.context("compressing the sample")?;
        all += a;
        used += u;
        wire += w;
    }
    progress(Stage::Compression { bytes: all });
    Ok(Compressed {
        threads,
        rate: all as f64 / secs.max(1e-9),
        used,
        wire,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::disk::MemDisk;
    use crate::layout::ranges::RangeSet;

    fn cfg() -> NetcheckConfig {
        let mut c = NetcheckConfig::new("127.0.0.1", [0; 32], "CODE", Vec::new());
        c.threads = 2;
        c
    }

    #[test]
    fn a_large_volume_is_sampled_in_runs_spread_over_it() {
        // 64 chunks, chunk i filled with byte i; 16 MiB to read: two runs of
        // eight chunks, at the start and the middle.
        let data: Vec<u8> = (0..64u8)
            .flat_map(|i| vec![i; CHUNK_SIZE as usize])
            .collect();
        let v = SourceVolume {
            name: "mem".into(),
            size: data.len() as u64,
            used: RangeSet::full(data.len() as u64),
            reader: Arc::new(MemDisk(data)),
            target: 0,
            base: 0,
        };
        let mut c = cfg();
        c.sample_bytes = 16 << 20;
        let mut seen = Vec::new();
        let s = read(&c, &[v], &mut |st| seen.push(st)).unwrap();
        assert_eq!(s.used, 64 << 20);
        assert_eq!(s.bytes, 16 << 20);
        let firsts: Vec<u8> = s.kept.iter().map(|k| k[0]).collect();
        let want: Vec<u8> = (0..8).chain(32..40).collect();
        assert_eq!(firsts, want);
        assert_eq!(
            seen.last(),
            Some(&Stage::DiskRead {
                bytes: 16 << 20,
                total: 16 << 20
            })
        );
    }

    #[test]
    fn compression_counts_frames_of_one_pass() {
        let mut noise = vec![0u8; CHUNK_SIZE as usize];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let kept = vec![noise, vec![0u8; CHUNK_SIZE as usize]];
        let c = compress(&cfg(), &kept, &mut |_| {}).unwrap();
        assert_eq!(c.threads, 2);
        assert_eq!(c.used, 2 << 20);
        // Noise travels raw, zeros as a header: one MiB and headers.
        assert!(
            (1 << 20) < c.wire && c.wire < (1 << 20) + 1024,
            "{}",
            c.wire
        );
        assert!(c.rate > 0.0 && c.rate.is_finite());
    }
}
