//! Per-volume figures of a pass on the source: bytes used, read, skipped
//! (already on the target), zero, sent and on the wire, and a digest of the
//! volume's used data.
//!
//! The digest is BLAKE3 over the volume's chunk hashes in order, each as
//! lowercase hex and a newline: the receiver's report computes the same from
//! its chunk list, and anyone can recompute it from `<task>_total_list.csv`.
//! It is given only when the pass hashed every chunk of the volume (a resumed
//! pass skips the chunks already durable).

use serde::Serialize;

use super::chunk::pieces;
use super::volumes::SourceVolume;
use crate::proto::digest;
use crate::proto::message::HashAlgo;

#[derive(Debug, Clone, Default, Serialize)]
pub struct VolumeSummary {
    pub name: String,
    pub size: u64,
    pub used_bytes: u64,
    pub chunks: u64,
    /// Read from the source disk in this pass.
    pub bytes_read: u64,
    /// Not sent: durable from an earlier session, or found on the target.
    pub bytes_skipped: u64,
    pub zero_chunks: u64,
    pub chunks_sent: u64,
    /// Used bytes the chunks sent cover.
    pub bytes_sent: u64,
    /// Their size on the wire (compressed).
    pub wire_bytes: u64,
    /// See the module documentation; `None` when not every chunk was hashed.
    pub digest: Option<String>,
}

/// Running figures for every volume of a pass.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub volumes: Vec<VolumeSummary>,
    hashers: Vec<blake3::Hasher>,
    hashed: Vec<u64>,
    algo: Option<HashAlgo>,
}

impl Tally {
    /// Chunks below `resume` (durable on the receiver) count as skipped.
    pub fn new(volumes: &[SourceVolume], chunk_size: u32, resume: u64, algo: HashAlgo) -> Tally {
        let mut seq = 0u64;
        let mut out = Vec::new();
        for v in volumes {
            let mut s = VolumeSummary {
                name: v.name.clone(),
                size: v.size,
                used_bytes: v.used.total(),
                ..Default::default()
            };
            for (_, len) in pieces(&v.used, chunk_size as u64) {
                if seq < resume {
                    s.bytes_skipped += len as u64;
                }
                seq += 1;
                s.chunks += 1;
            }
            out.push(s);
        }
        Tally {
            hashers: vec![blake3::Hasher::new(); out.len()],
            hashed: vec![0; out.len()],
            volumes: out,
            algo: Some(algo),
        }
    }

    /// A chunk of volume `v` was read and hashed.
    pub fn hashed(&mut self, v: usize, len: u32, hash: &[u8; 32]) {
        let Some(algo) = self.algo else { return };
        self.volumes[v].bytes_read += len as u64;
        self.hashed[v] += 1;
        let line = format!("{}\n", digest::hash_hex(algo, hash));
        self.hashers[v].update(line.as_bytes());
    }

    /// The receiver already holds this chunk.
    pub fn held(&mut self, v: usize, len: u32) {
        self.volumes[v].bytes_skipped += len as u64;
    }

    pub fn sent(&mut self, v: usize, len: u32, wire: usize, zero: bool) {
        let s = &mut self.volumes[v];
        s.chunks_sent += 1;
        s.bytes_sent += len as u64;
        s.wire_bytes += wire as u64;
        s.zero_chunks += zero as u64;
    }

    /// The summaries, with digests for the volumes hashed whole.
    pub fn finish(mut self) -> Vec<VolumeSummary> {
        for (i, s) in self.volumes.iter_mut().enumerate() {
            if self.hashed[i] == s.chunks {
                s.digest = Some(self.hashers[i].finalize().to_hex().to_string());
            }
        }
        self.volumes
    }
}

/// The digest of a list of chunk hashes (hex), as [`Tally`] computes it.
pub fn digest_of<'a>(hex_hashes: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = blake3::Hasher::new();
    for x in hex_hashes {
        h.update(x.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;
    use crate::layout::ranges::RangeSet;
    use std::sync::Arc;

    fn volume(used: &[(u64, u64)]) -> SourceVolume {
        let mut r = RangeSet::new();
        for &(a, l) in used {
            r.insert(a, l);
        }
        SourceVolume {
            name: "v".into(),
            size: 8 << 20,
            used: r,
            reader: Arc::new(MemDisk(vec![0u8; 8 << 20])),
            target: 0,
            base: 0,
        }
    }

    #[test]
    fn digests_need_every_chunk_and_match_the_list_form() {
        let vols = [volume(&[(0, 3 << 20)])];
        let mut t = Tally::new(&vols, 1 << 20, 0, HashAlgo::Blake3);
        let hashes = [[1u8; 32], [2u8; 32], [3u8; 32]];
        for h in &hashes {
            t.hashed(0, 1 << 20, h);
        }
        t.sent(0, 1 << 20, 100, false);
        let s = t.finish();
        let hex: Vec<String> = hashes
            .iter()
            .map(|h| digest::hash_hex(HashAlgo::Blake3, h))
            .collect();
        assert_eq!(
            s[0].digest.as_deref(),
            Some(digest_of(hex.iter().map(|x| x.as_str())).as_str())
        );
        assert_eq!(
            (s[0].bytes_read, s[0].bytes_sent, s[0].wire_bytes),
            (3 << 20, 1 << 20, 100)
        );

        // A resume at chunk 2 skips two chunks and cannot give a digest.
        let mut t = Tally::new(&vols, 1 << 20, 2, HashAlgo::Blake3);
        t.hashed(0, 1 << 20, &hashes[2]);
        let s = t.finish();
        assert_eq!(s[0].bytes_skipped, 2 << 20);
        assert_eq!(s[0].digest, None);
    }
}
