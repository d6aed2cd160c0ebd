//! Unit tests of the XFS parser over hand-made images and hostile bytes.

use super::*;
use crate::disk::MemDisk;
use proptest::prelude::*;

const BS: usize = 1024;
const AGB: usize = 100;
/// Two AGs: 100 blocks and a short last one of 70.
const DBLOCKS: usize = 170;

/// A hand-made two-AG filesystem. AG 0: a root leaf at block 2 listing
/// 10+5 and 20+80 free. AG 1: a root node at block 2 over leaves 3 (8+2) and 4
/// (30+40). The cntbt roots sit at block 5.
struct Img {
    d: Vec<u8>,
    v5: bool,
    blocks: Vec<usize>,
}

impl Img {
    fn new(v5: bool) -> Img {
        let mut m = Img {
            d: vec![0; DBLOCKS * BS],
            v5,
            blocks: vec![],
        };
        m.d[0..4].copy_from_slice(b"XFSB");
        m.put(4, BS as u32);
        m.d[8..16].copy_from_slice(&(DBLOCKS as u64).to_be_bytes());
        m.d[32..48].copy_from_slice(&[0x5a; 16]);
        m.put(80, 4); // rextsize
        m.put(84, AGB as u32);
        m.put(88, 2);
        m.d[100..102].copy_from_slice(&(if v5 { 0x8a95u16 } else { 0xb4a4 }).to_be_bytes());
        m.d[102..104].copy_from_slice(&512u16.to_be_bytes());
        m.d[104..106].copy_from_slice(&256u16.to_be_bytes());
        m.d[108..115].copy_from_slice(b"scratch");
        m.d[120..125].copy_from_slice(&[10, 9, 8, 2, 7]);
        m.d[48..56].copy_from_slice(&16u64.to_be_bytes()); // log: blocks 16..20
        m.put(96, 4);
        m.log_record(0, 1);
        m.put(200, 0x18a);
        m.d[248..264].copy_from_slice(&[0x5a; 16]);
        m.agf(0, 2, 1, 85);
        m.agf(1, 2, 2, 42);
        m.leaf(0, 2, &[(10, 5), (20, 80)], N, N);
        m.node(1, 2, &[3, 4]);
        m.leaf(1, 3, &[(8, 2)], N, 4);
        m.leaf(1, 4, &[(30, 40)], 3, N);
        m
    }
    /// A lone unmount record at log BB `bb` (header, then one data BB).
    fn log_record(&mut self, bb: usize, cycle: u32) {
        let o = 16 * BS + bb * 512;
        for (i, v) in [0xFEED_BABE, cycle, 2, 512].into_iter().enumerate() {
            self.put(o + 4 * i, v);
        }
        self.put(o + 40, 1);
        self.put(o + 512, cycle);
        self.d[o + 512 + 9] = 0x20;
    }
    fn put(&mut self, off: usize, v: u32) {
        self.d[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn agf(&mut self, ag: usize, root: u32, levels: u32, free: u32) {
        let o = ag * AGB * BS + 512;
        self.d[o..o + 4].copy_from_slice(b"XAGF");
        let len = if ag == 0 { AGB } else { DBLOCKS - AGB };
        for (i, v) in [1, ag as u32, len as u32, root, 5, 0, levels, 1]
            .iter()
            .enumerate()
        {
            self.put(o + 4 + 4 * i, *v);
        }
        self.put(o + 52, free);
        self.d[o + 64..o + 80].copy_from_slice(&[0x5a; 16]);
    }
    fn header(&mut self, ag: usize, bno: usize, level: u16, n: usize, lr: (u32, u32)) -> usize {
        let o = (ag * AGB + bno) * BS;
        self.d[o..o + 4].copy_from_slice(if self.v5 { b"AB3B" } else { b"ABTB" });
        self.d[o + 4..o + 6].copy_from_slice(&level.to_be_bytes());
        self.d[o + 6..o + 8].copy_from_slice(&(n as u16).to_be_bytes());
        self.put(o + 8, lr.0);
        self.put(o + 12, lr.1);
        if self.v5 {
            self.d[o + 16..o + 24].copy_from_slice(&(o as u64 / 512).to_be_bytes());
            self.d[o + 32..o + 48].copy_from_slice(&[0x5a; 16]);
            self.put(o + 48, ag as u32);
        }
        self.blocks.push(o);
        o + if self.v5 { 56 } else { 16 }
    }
    fn leaf(&mut self, ag: usize, bno: usize, recs: &[(u32, u32)], l: u32, r: u32) {
        let h = self.header(ag, bno, 0, recs.len(), (l, r));
        for (i, &(s, c)) in recs.iter().enumerate() {
            self.put(h + 8 * i, s);
            self.put(h + 8 * i + 4, c);
        }
    }
    fn node(&mut self, ag: usize, bno: usize, ptrs: &[u32]) {
        let h = self.header(ag, bno, 1, ptrs.len(), (N, N));
        let maxrecs = (BS - (h % BS)) / 12;
        for (i, &p) in ptrs.iter().enumerate() {
            self.put(h + maxrecs * 8 + 4 * i, p);
        }
    }
    /// The image with every CRC recomputed (v5).
    fn seal(&self) -> MemDisk {
        let mut d = self.d.clone();
        if self.v5 {
            let fix = |d: &mut Vec<u8>, o: usize, len: usize, at: usize| {
                let b = &mut d[o..o + len];
                b[at..at + 4].fill(0);
                let c = !crc32c_raw(!0, b);
                b[at..at + 4].copy_from_slice(&c.to_le_bytes());
            };
            fix(&mut d, 0, 512, SB_CRC_OFF);
            fix(&mut d, 512, 512, AGF_CRC_OFF);
            fix(&mut d, AGB * BS + 512, 512, AGF_CRC_OFF);
            for &o in &self.blocks {
                fix(&mut d, o, BS, BLOCK_CRC_OFF);
            }
        }
        MemDisk(d)
    }
}

const N: u32 = NULL_AGBLOCK;

fn ranges(d: &MemDisk) -> Vec<(u64, u64)> {
    used(d).unwrap().iter().collect()
}

const K: u64 = BS as u64;
const AG1: u64 = AGB as u64 * K;
const EXPECTED: [(u64, u64); 4] = [
    (0, 10 * K),
    (15 * K, 20 * K),
    (AG1, AG1 + 8 * K),
    (AG1 + 10 * K, AG1 + 30 * K),
];

#[test]
fn v4_and_v5_used_maps_are_exact() {
    for v5 in [false, true] {
        let d = Img::new(v5).seal();
        assert_eq!(ranges(&d), EXPECTED, "v5={v5}");
        let info = probe(&d).unwrap().unwrap();
        assert_eq!(info.kind, FsKind::Xfs);
        assert_eq!(info.label.as_deref(), Some("scratch"));
        assert_eq!(
            info.uuid.as_deref(),
            Some("5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a")
        );
        assert_eq!(info.size, Some(DBLOCKS as u64 * K));
        assert_eq!(info.block_size, Some(BS as u32));
    }
}

#[test]
fn full_ag_and_space_past_the_fs() {
    let mut m = Img::new(false);
    m.agf(0, 2, 1, 0);
    m.leaf(0, 2, &[], NULL_AGBLOCK, NULL_AGBLOCK);
    m.d.resize((DBLOCKS + 50) * BS, 0);
    let got = ranges(&m.seal());
    assert_eq!(
        got[0],
        (0, AG1 + 8 * K),
        "a full AG is all used, nothing past dblocks"
    );
    assert_eq!(got.last(), Some(&(AG1 + 10 * K, AG1 + 30 * K)));
}

fn fails(m: &Img, what: &str) {
    let err = used(&m.seal()).unwrap_err().to_string();
    assert!(err.contains(what), "{err:?} lacks {what:?}");
}

#[test]
fn hostile_trees_are_errors() {
    type Case = (fn(&mut Img), &'static str);
    let cases: [Case; 11] = [
        (|m| m.d[AGB * BS + 512] = b'Y', "AGF: bad magic"),
        (|m| m.node(1, 2, &[3, 500]), "pointer to block 500"),
        (|m| m.node(1, 2, &[2]), "level 1, expected 0"), // a self-loop
        (|m| m.node(1, 2, &[3, 3]), "bnobt block 3: left sibling"),
        (|m| m.leaf(0, 2, &[(10, 5), (20, 81)], N, N), "20+81"),
        (
            |m| m.leaf(0, 2, &[(20, 80), (10, 5)], N, N),
            "10+5: out of order",
        ),
        (|m| m.leaf(0, 2, &[(1, 5), (20, 79)], N, N), "1+5"), // over the AGFL
        (|m| m.agf(1, 2, 2, 41), "agf_freeblks 41"),
        (|m| m.agf(1, 2, 12, 42), "12 levels"),
        (
            |m| m.leaf(1, 4, &[(30, 40)], N, N),
            "left sibling 4294967295",
        ),
        (|m| m.leaf(0, 2, &[(2, 5), (20, 80)], N, N), "btree block 2"),
    ];
    for v5 in [false, true] {
        for (edit, what) in cases {
            let mut m = Img::new(v5);
            edit(&mut m);
            fails(&m, what);
        }
    }
}

#[test]
fn v5_checks_crcs_and_stamps() {
    let m = Img::new(true);
    let mut d = m.seal();
    d.0[(AGB + 3) * BS + 60] ^= 1;
    assert!(used(&d).unwrap_err().to_string().contains("CRC"));
    let mut m = Img::new(true);
    m.put((AGB + 3) * BS + 48, 0); // owner AG 0 in AG 1
    fails(&m, "owner");
    let mut d = Img::new(true).seal();
    d.0[40] ^= 1; // superblock CRC
    assert!(probe(&d).unwrap().is_none());
    assert!(used(&d).is_err());
}

#[test]
fn bad_superblocks() {
    let mut m = Img::new(false);
    m.put(88, u32::MAX); // absurd agcount
    assert!(probe(&m.seal()).unwrap().is_none());
    assert!(
        used(&m.seal())
            .unwrap_err()
            .to_string()
            .contains("do not fit 4294967295 AGs")
    );
    for (off, v) in [(4, 3000), (84, 10), (80, 0)] {
        let mut m = Img::new(false);
        m.put(off, v);
        assert!(probe(&m.seal()).unwrap().is_none(), "offset {off}");
        assert!(used(&m.seal()).is_err());
    }
    assert!(probe(&MemDisk(vec![0; 4096])).unwrap().is_none());
    assert!(probe(&MemDisk(b"XFSB".to_vec())).unwrap().is_none());
    assert!(used(&MemDisk(vec![0; 4096])).is_err());
}

#[test]
fn dirty_or_unknown_means_all_used() {
    let all = vec![(0, DBLOCKS as u64 * K)];
    let mut m = Img::new(true);
    m.put(216, 1 << 9); // zoned: a realtime section may follow on this device
    assert_eq!(ranges(&m.seal()), all);
    let mut m = Img::new(false);
    m.d[16 * BS + 512 + 9] = 0; // the last record is not an unmount record
    assert_eq!(ranges(&m.seal()), all);
    let mut m = Img::new(false);
    m.d[48..56].fill(0); // external log
    assert_eq!(ranges(&m.seal()), all);
    // A ring written whole in one cycle, ending with the unmount record.
    let mut m = Img::new(false);
    for bb in 0..6 {
        m.put(16 * BS + bb * 512, 3);
    }
    m.log_record(6, 3);
    assert_eq!(ranges(&m.seal()), EXPECTED);
    m.put(16 * BS + 3 * 512, 2);
    assert_eq!(ranges(&m.seal()), all, "a hole before the head");
}

proptest! {
    #[test]
    fn mutated_images_never_panic(
        v5 in any::<bool>(),
        edits in prop::collection::vec((0usize..20 * BS, any::<u8>(), any::<bool>()), 1..8),
    ) {
        let m = Img::new(v5);
        let mut d = m.seal();
        for (off, val, ag1) in edits {
            d.0[off + if ag1 { AGB * BS } else { 0 }] = val;
        }
        let _ = probe(&d);
        if let Ok(map) = used(&d) {
            prop_assert!(map.iter().all(|(_, e)| e <= d.0.len() as u64));
        }
    }
}
