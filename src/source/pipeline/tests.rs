use std::io;
use std::sync::{Arc, Mutex};

use super::*;
use crate::disk::{MemDisk, ReadAt};
use crate::layout::ranges::RangeSet;
use crate::proto::digest::hash;

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// An in-memory disk that records every read, and fails one offset.
struct Recorded {
    disk: MemDisk,
    reads: Mutex<Vec<(u64, usize)>>,
    fail_at: Option<u64>,
}

impl ReadAt for Recorded {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.lock().unwrap().push((offset, buf.len()));
        if let Some(at) = self.fail_at
            && (offset..offset + buf.len() as u64).contains(&at)
        {
            return Err(io::Error::other("medium error"));
        }
        self.disk.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.disk.size()
    }
}

fn pattern(len: u64, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4096) ^ (i % 251) ^ seed) as u8)
        .collect()
}

fn volume(
    name: &str,
    size: u64,
    used: &[(u64, u64)],
    fail_at: Option<u64>,
) -> (SourceVolume, Arc<Recorded>) {
    let rec = Arc::new(Recorded {
        disk: MemDisk(pattern(size, name.len() as u64)),
        reads: Mutex::new(Vec::new()),
        fail_at,
    });
    let mut set = RangeSet::new();
    for &(start, len) in used {
        set.insert(start, len);
    }
    let v = SourceVolume {
        name: name.into(),
        size,
        used: set,
        reader: rec.clone(),
        target: 0,
        base: 0,
    };
    (v, rec)
}

fn run(volumes: Vec<SourceVolume>, resume: u64, hash_only: bool) -> Vec<Item> {
    let cfg = SendConfig::new("127.0.0.1:1", [0; 32], "CODE", "t", Vec::new());
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let collector = start_pipeline(&cfg, Arc::new(volumes), resume, tx, hash_only);
    let mut items = Vec::new();
    while let Some(item) = rx.blocking_recv() {
        items.push(item);
    }
    collector.join().unwrap();
    items
}

/// (seq, volume, offset, len, hash) of every item, failing on `Failed`.
fn summary(items: &[Item]) -> Vec<(u64, usize, u64, u32, [u8; 32])> {
    items
        .iter()
        .map(|item| match item {
            Item::Hashed {
                seq,
                volume,
                offset,
                chunk,
            } => (*seq, *volume, *offset, chunk.len, chunk.hash),
            Item::Frame {
                seq,
                volume,
                len,
                hash,
                ..
            } => (*seq, *volume as usize, u64::MAX, *len, *hash),
            Item::Failed(why) => panic!("pipeline failed: {why}"),
        })
        .collect()
}

/// What the chunks must be: pieces of the used map, hashed from the disk.
fn expected(volumes: &[(&SourceVolume, &Recorded)]) -> Vec<(usize, u64, u32, [u8; 32])> {
    let mut out = Vec::new();
    for (vi, (v, rec)) in volumes.iter().enumerate() {
        for (offset, len) in pieces(&v.used, CHUNK_SIZE) {
            let data = &rec.disk.0[offset as usize..offset as usize + len as usize];
            out.push((vi, offset, len, hash(HashAlgo::Blake3, data)));
        }
    }
    out
}

#[test]
fn neighbouring_chunks_are_read_together_and_come_back_in_order() {
    // Volume 0: 3 MiB, a 64 KiB gap (read through), 100 KiB, a 1 MiB gap
    // (a new read), 4 KiB. Volume 1: 2 MiB in one read.
    let a = volume(
        "a",
        8 * MIB,
        &[
            (0, 3 * MIB),
            (3 * MIB + 64 * KIB, 100 * KIB),
            (5 * MIB, 4 * KIB),
        ],
        None,
    );
    let b = volume("b", 4 * MIB, &[(MIB, 2 * MIB)], None);
    let want = expected(&[(&a.0, &a.1), (&b.0, &b.1)]);
    let items = run(vec![a.0, b.0], 0, true);
    let got = summary(&items);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.0, i as u64, "sequence order");
        assert_eq!((g.1, g.2, g.3, g.4), *w, "chunk {i}");
    }
    let mut reads_a = a.1.reads.lock().unwrap().clone();
    reads_a.sort();
    assert_eq!(
        reads_a,
        vec![
            (0, (3 * MIB + 164 * KIB) as usize),
            (5 * MIB, 4 * KIB as usize)
        ]
    );
    assert_eq!(*b.1.reads.lock().unwrap(), vec![(MIB, 2 * MIB as usize)]);
}

#[test]
fn a_long_extent_is_read_in_runs_no_larger_than_the_shape_allows() {
    for (hash_only, shape) in [(true, HASHING), (false, FRAMING)] {
        let size = 3 * shape.run_max + 5 * MIB;
        let a = volume("a", size, &[(0, size)], None);
        let want = expected(&[(&a.0, &a.1)]);
        let items = run(vec![a.0], 0, hash_only);
        let got = summary(&items);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.3, g.4), (w.2, w.3));
        }
        let mut reads = a.1.reads.lock().unwrap().clone();
        reads.sort();
        let whole = shape.run_max as usize;
        assert_eq!(
            reads,
            vec![
                (0, whole),
                (shape.run_max, whole),
                (2 * shape.run_max, whole),
                (3 * shape.run_max, 5 * MIB as usize)
            ]
        );
    }
}

#[test]
fn resume_skips_the_chunks_before_the_checkpoint() {
    let a = volume("a", 8 * MIB, &[(0, 6 * MIB)], None);
    let items = run(vec![a.0], 4, true);
    let got = summary(&items);
    assert_eq!(
        got.iter().map(|g| (g.0, g.2)).collect::<Vec<_>>(),
        vec![(4, 4 * MIB), (5, 5 * MIB)]
    );
    assert_eq!(
        *a.1.reads.lock().unwrap(),
        vec![(4 * MIB, 2 * MIB as usize)]
    );
}

#[test]
fn a_read_error_names_the_volume_and_byte_and_stops_the_pass() {
    let a = volume(
        "disk-a",
        8 * MIB,
        &[(0, MIB), (4 * MIB, MIB)],
        Some(4 * MIB + 10),
    );
    let items = run(vec![a.0], 0, false);
    assert!(matches!(items[0], Item::Frame { seq: 0, .. }));
    match items.last() {
        Some(Item::Failed(why)) => {
            assert!(why.contains("disk-a"), "{why}");
            assert!(why.contains(&format!("byte {}", 4 * MIB)), "{why}");
        }
        _ => panic!("no failure reported"),
    }
    assert_eq!(items.len(), 2);
}
