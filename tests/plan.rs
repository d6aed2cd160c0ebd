//! A pass that follows a plan, without root: a GPT image file migrated to a
//! smaller target. The selected partitions land where the plan puts them,
//! a deselected one stays empty, bytes outside the used maps are never
//! written, and the receiver writes a valid GPT for the target's size after
//! the data (the backup at its end). Growth needs loop devices: the root
//! tier (tests/root_plan.rs) covers it.

mod common;

use std::path::{Path, PathBuf};

use common::inproc::{CODE, start};
use ferry::inventory::{InventoryConfig, inventory};
use ferry::plan::PlanSpec;
use ferry::plan::spec::Size;
use ferry::source::send::{SendConfig, send};
use gptman::{GPT, GPTPartitionEntry};

const MIB: u64 = 1 << 20;
const SWAP: [u8; 16] = [
    0x6d, 0xfd, 0x57, 0x06, 0xab, 0xa4, 0xc4, 0x43, 0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f, 0x4f,
];

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut v);
    v
}

/// A swap area of `len` bytes: a header page, then garbage (unused).
fn swap(len: usize, seed: u8) -> Vec<u8> {
    let mut d = noise(len, seed);
    d[..4096].fill(0);
    d[1024] = 1;
    let pages = (len / 4096 - 1) as u32;
    d[1028..1032].copy_from_slice(&pages.to_le_bytes());
    d[1036..1052].copy_from_slice(&[seed; 16]);
    d[4086..4096].copy_from_slice(b"SWAPSPACE2");
    d
}

/// 16 MiB: swap at 1 MiB, 2 MiB of unknown data at 3 MiB, swap at 5 MiB;
/// boot code in sector 0.
fn source(dir: &Path) -> PathBuf {
    let mut img = noise(16 << 20, 9);
    img[1 << 20..3 << 20].copy_from_slice(&swap(2 << 20, 1));
    img[5 << 20..7 << 20].copy_from_slice(&swap(2 << 20, 3));
    let mut cur = std::io::Cursor::new(img);
    let mut gpt = GPT::new_from(&mut cur, 512, [5; 16]).unwrap();
    for (n, start, ty) in [(1u32, 1u64, SWAP), (2, 3, [9; 16]), (3, 5, SWAP)] {
        gpt[n] = GPTPartitionEntry {
            partition_type_guid: ty,
            unique_partition_guid: [n as u8; 16],
            starting_lba: start * MIB / 512,
            ending_lba: (start + 2) * MIB / 512 - 1,
            attribute_bits: 0,
            partition_name: format!("p{n}").as_str().into(),
        };
    }
    gpt.write_into(&mut cur).unwrap();
    GPT::write_protective_mbr_into(&mut cur, 512).unwrap();
    let mut img = cur.into_inner();
    img[..440].copy_from_slice(&noise(440, 4));
    let p = dir.join("src.img");
    std::fs::write(&p, img).unwrap();
    p
}

#[test]
fn a_plan_moves_selected_partitions_to_a_smaller_target_and_writes_its_table() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let target = t.path().join("target.img");
    let r = start(t.path(), vec![target.clone()], false);
    let name = src.display().to_string();
    let mut spec = PlanSpec {
        disks: vec![name.clone()],
        ..Default::default()
    };
    spec.target_size.insert(name.clone(), Size(12 * MIB));
    let mut cfg = SendConfig::new(
        &r.addr.to_string(),
        r.rx.fingerprint,
        CODE,
        "plan",
        Vec::new(),
    );
    cfg.plan = Some(spec);
    let rep = send(&cfg).unwrap();
    // Only the swap headers went (and the bytes in front of partition 1).
    assert!(rep.bytes < 2 * MIB, "{} bytes sent", rep.bytes);

    let src_bytes = std::fs::read(&src).unwrap();
    let tgt = std::fs::read(&target).unwrap();
    assert_eq!(tgt.len() as u64, 12 * MIB);
    // Boot code kept; the swap headers at their places; the deselected
    // partition and every unused byte never written.
    assert_eq!(tgt[..440], src_bytes[..440]);
    for p in [1usize, 5] {
        let at = p << 20;
        assert_eq!(
            tgt[at..at + 4096],
            src_bytes[at..at + 4096],
            "swap at {p} MiB"
        );
        assert!(tgt[at + 4096..at + (2 << 20)].iter().all(|&b| b == 0));
    }
    assert!(tgt[3 << 20..5 << 20].iter().all(|&b| b == 0), "deselected");

    let inv = inventory(&InventoryConfig {
        paths: vec![target.clone()],
        ..Default::default()
    })
    .unwrap();
    assert!(inv.errors.is_empty(), "{:?}", inv.errors);
    assert!(inv.warnings.is_empty(), "{:?}", inv.warnings);
    let d = &inv.disks[0];
    let src_inv = inventory(&InventoryConfig {
        paths: vec![src.clone()],
        ..Default::default()
    })
    .unwrap();
    let s = &src_inv.disks[0];
    for (a, b) in d.partitions.iter().zip(&s.partitions) {
        assert_eq!((a.number, a.start, a.size), (b.number, b.start, b.size));
        assert_eq!(
            (&a.unique_guid, &a.name, &a.type_id),
            (&b.unique_guid, &b.name, &b.type_id)
        );
    }
    assert_eq!(d.partitions.len(), 3);
    match (&d.table, &s.table) {
        (
            Some(ferry::inventory::Table::Gpt {
                disk_guid,
                last_usable_lba,
                ..
            }),
            Some(ferry::inventory::Table::Gpt { disk_guid: g2, .. }),
        ) => {
            assert_eq!(disk_guid, g2);
            // The backup array and header at the end of the 12 MiB target.
            assert_eq!(*last_usable_lba, 12 * MIB / 512 - 34);
        }
        other => panic!("not GPT: {other:?}"),
    }
    // The receiver's report lists what it did after the data.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("state/reports/plan_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["state"], "Finished");
    let steps = report["post_steps"].as_array().expect("post_steps");
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["status"], "ok");
    let what = steps[0]["step"].as_str().unwrap();
    assert!(what.starts_with("write GPT: 3 partition(s)"), "{what}");
}

#[test]
fn a_plan_that_does_not_fit_is_refused_before_anything_is_sent() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path());
    let target = t.path().join("target.img");
    let r = start(t.path(), vec![target.clone()], false);
    let name = src.display().to_string();
    let mut spec = PlanSpec {
        disks: vec![name.clone()],
        ..Default::default()
    };
    spec.target_size.insert(name.clone(), Size(6 * MIB));
    let mut cfg = SendConfig::new(
        &r.addr.to_string(),
        r.rx.fingerprint,
        CODE,
        "plan",
        Vec::new(),
    );
    cfg.plan = Some(spec);
    let e = format!("{:#}", send(&cfg).unwrap_err());
    assert!(
        e.contains("does not fit") && e.contains("enlarge the target by"),
        "{e}"
    );
    assert!(!target.exists() || std::fs::metadata(&target).unwrap().len() == 0);
}
