//! Tables written to files and read back with ferry's own parsers; the
//! receiver's refusals of plans that do not fit.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use super::table;
use crate::layout::gpt::{self, HeaderSource};
use crate::layout::mbr::{self, MbrKind};
use crate::plan::target::{GptEntry, MbrEntry, Place, Step, TargetDisk, TargetTable};

const MIB: u64 = 1 << 20;
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

fn code() -> String {
    (0..440).map(|i| format!("{:02x}", i % 251)).collect()
}

fn gpt_disk(ss: u32, parts: &[(u32, u64, u64)]) -> TargetDisk {
    let s = u64::from(ss);
    TargetDisk {
        target: 0,
        source: "src.img".into(),
        min_size: 64 * MIB,
        sector_size: ss,
        table: TargetTable::Gpt {
            disk_guid: "01234567-89AB-CDEF-0123-456789ABCDEF".into(),
            entries: 128,
            boot_code: code(),
            partitions: parts
                .iter()
                .map(|&(n, start, size)| GptEntry {
                    number: n,
                    start_lba: start / s,
                    end_lba: (start + size) / s - 1,
                    type_guid: LINUX.into(),
                    unique_guid: format!("00000000-0000-0000-0000-00000000000{n}"),
                    name: format!("part {n}"),
                    attributes: 0,
                })
                .collect(),
        },
        steps: vec![Step::GrowExt {
            place: Place::Partition { number: parts[0].0 },
        }],
    }
}

fn mbr_disk() -> TargetDisk {
    let e = |number, kind, start: u64, size: u64, ebr: Option<u64>| MbrEntry {
        number,
        kind,
        start_lba: start / 512,
        sectors: size / 512,
        type_byte: if kind == MbrKind::Extended {
            0x05
        } else {
            0x83
        },
        bootable: number == 1,
        ebr_lba: ebr.map(|b| b / 512),
    };
    TargetDisk {
        target: 0,
        source: "src.img".into(),
        min_size: 64 * MIB,
        sector_size: 512,
        table: TargetTable::Mbr {
            boot_code: code(),
            disk_signature: 0x1234_abcd,
            partitions: vec![
                e(1, MbrKind::Primary, MIB, 8 * MIB, None),
                e(2, MbrKind::Extended, 9 * MIB, 55 * MIB, None),
                e(5, MbrKind::Logical, 10 * MIB, 20 * MIB, Some(9 * MIB)),
                e(6, MbrKind::Logical, 31 * MIB, 33 * MIB, Some(30 * MIB)),
            ],
        },
        steps: Vec::new(),
    }
}

fn file(size: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.img");
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    (d, p)
}

fn rw(p: &std::path::Path) -> std::fs::File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

#[test]
fn gpt_written_for_the_real_size_reads_back() {
    for ss in [512u32, 4096] {
        let d = gpt_disk(ss, &[(1, MIB, 8 * MIB), (3, 16 * MIB, 40 * MIB)]);
        d.validate(80 * MIB).unwrap();
        let (_t, p) = file(80 * MIB);
        let text = table::write(&mut rw(&p), &d).unwrap();
        assert!(text.starts_with("write GPT: 2 partition(s)"), "{text}");
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes[..440], table::parse_hex(&code()).unwrap()[..]);
        let g = gpt::read(&crate::disk::MemDisk(bytes.clone()), Some(ss))
            .unwrap()
            .expect("a GPT");
        assert!(matches!(g.header, HeaderSource::Primary), "{:?}", g.header);
        assert!(g.warnings.is_empty(), "{:?}", g.warnings);
        let s = u64::from(ss);
        let arr = (128 * 128u64).div_ceil(s);
        assert_eq!(g.last_usable_lba, 80 * MIB / s - 2 - arr, "{ss}");
        assert_eq!(g.disk_guid, "01234567-89AB-CDEF-0123-456789ABCDEF");
        let got: Vec<_> = g
            .partitions
            .iter()
            .map(|p| {
                (
                    p.number,
                    p.start_lba * s,
                    p.name.as_str(),
                    p.type_guid.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(1, MIB, "part 1", LINUX), (3, 16 * MIB, "part 3", LINUX)]
        );
        // The backup header is valid at the last sector.
        assert_eq!(&bytes[(80 * MIB - s) as usize..][..8], b"EFI PART");
    }
}

#[test]
fn mbr_with_an_ebr_chain_reads_back() {
    let d = mbr_disk();
    d.validate(64 * MIB).unwrap();
    let (_t, p) = file(64 * MIB);
    table::write(&mut rw(&p), &d).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    let m = mbr::read(&crate::disk::MemDisk(bytes.clone()), 512).unwrap();
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let got: Vec<_> = m
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.kind,
                p.start_lba * 512,
                p.sectors * 512,
                p.ebr_lba.map(|e| e * 512),
                p.bootable,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, MbrKind::Primary, MIB, 8 * MIB, None, true),
            (2, MbrKind::Extended, 9 * MIB, 55 * MIB, None, false),
            (
                5,
                MbrKind::Logical,
                10 * MIB,
                20 * MIB,
                Some(9 * MIB),
                false
            ),
            (
                6,
                MbrKind::Logical,
                31 * MIB,
                33 * MIB,
                Some(30 * MIB),
                false
            ),
        ]
    );
    assert_eq!(&bytes[440..444], &0x1234_abcdu32.to_le_bytes());
}

#[test]
fn wipe_clears_old_tables_and_nothing_else() {
    let (_t, p) = file(64 * MIB);
    // An old GPT disk of this size, with data in its first partition.
    let old = gpt_disk(512, &[(1, MIB, 8 * MIB)]);
    table::write(&mut rw(&p), &old).unwrap();
    let f = rw(&p);
    f.write_all_at(&[7u8; 4096], MIB).unwrap();
    let before = std::fs::read(&p).unwrap();
    // An MBR plan: sector 0, and the backup header only because no planned
    // partition covers the last sector.
    let mut d = mbr_disk();
    if let TargetTable::Mbr { partitions, .. } = &mut d.table {
        partitions.truncate(1);
    }
    let done = table::wipe(&f, &d, 64 * MIB).unwrap();
    assert_eq!(
        done,
        ["old MBR (LBA 0)", "old backup GPT header (LBA 131071)"]
    );
    let after = std::fs::read(&p).unwrap();
    assert!(after[..512].iter().all(|&b| b == 0));
    // LBA 1 is the front area of an MBR disk: the data pass owns it.
    assert_eq!(after[512..1024], before[512..1024]);
    assert_eq!(after[MIB as usize..][..4096], [7u8; 4096]);
    // A GPT plan wipes the primary header too; again, only what it owns.
    table::write(&mut rw(&p), &old).unwrap();
    let done = table::wipe(&f, &old, 64 * MIB).unwrap();
    assert_eq!(done.len(), 3, "{done:?}");
    // No table: nothing.
    let mut none = old.clone();
    none.table = TargetTable::None;
    table::write(&mut rw(&p), &old).unwrap();
    assert!(table::wipe(&f, &none, 64 * MIB).unwrap().is_empty());
}

#[test]
fn plans_that_do_not_fit_are_refused_with_the_field() {
    let ok = gpt_disk(512, &[(1, MIB, 8 * MIB), (2, 16 * MIB, 40 * MIB)]);
    let err = |d: &TargetDisk, size: u64| d.validate(size).unwrap_err();
    assert!(err(&ok, 32 * MIB).contains("the plan needs at least 67108864 bytes"));
    let mut d = ok.clone();
    d.min_size = 0;
    assert!(
        err(&d, 50 * MIB).contains("GPT partition 2: LBA"),
        "{}",
        err(&d, 50 * MIB)
    );
    let overlap = gpt_disk(512, &[(1, MIB, 16 * MIB), (2, 8 * MIB, 8 * MIB)]);
    assert!(err(&overlap, 64 * MIB).contains("overlaps"));
    let twice = gpt_disk(512, &[(1, MIB, MIB), (1, 4 * MIB, MIB)]);
    assert!(err(&twice, 64 * MIB).contains("listed twice"));
    let mut bad = ok.clone();
    if let TargetTable::Gpt { boot_code, .. } = &mut bad.table {
        boot_code.truncate(10);
    }
    assert!(err(&bad, 64 * MIB).contains("boot code: 5 bytes"));
    let mut step = ok.clone();
    step.steps = vec![Step::GrowXfs {
        place: Place::Partition { number: 9 },
    }];
    assert!(err(&step, 64 * MIB).contains("the table has no partition 9"));
    let mut m = mbr_disk();
    if let TargetTable::Mbr { partitions, .. } = &mut m.table {
        partitions[3].sectors += 2048;
    }
    assert!(err(&m, 80 * MIB).contains("outside the extended partition"));
    let mut m = mbr_disk();
    if let TargetTable::Mbr { partitions, .. } = &mut m.table {
        partitions[2].ebr_lba = Some(partitions[2].start_lba);
    }
    assert!(err(&m, 64 * MIB).contains("is not in front of its start"));
    let mut m = mbr_disk();
    m.sector_size = 520;
    assert!(err(&m, 64 * MIB).contains("sector size 520"));
}
