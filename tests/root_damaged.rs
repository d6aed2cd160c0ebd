//! Root tier: damaged and incomplete input. Every case gives a clear message
//! naming the disk or volume and a byte offset, the documented exit status,
//! and no panic.
//!
//! Needs root, loop devices and FERRY_FIXTURES (scripts/test.sh sets it up).

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// Run the CLI on one damaged image: exit code 2, one error line naming the
/// image and a byte offset, no panic. Returns stderr.
fn expect_damaged(path: &Path, needle: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["inventory", &path.display().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}: exit code; stderr: {err}",
        path.display()
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ferry: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line: {err}");
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        lines[0].contains(name.as_ref()) && lines[0].contains("at byte"),
        "names disk and offset: {}",
        lines[0]
    );
    assert!(lines[0].contains(needle), "{needle:?} in {}", lines[0]);
    err
}

fn damaged_copy(tmp: &Path, src: &str, dst: &str, edit: impl FnOnce(&File, u64)) -> PathBuf {
    let p = tmp.join(dst);
    run(
        "cp",
        &[
            "--sparse=always",
            &fixtures().join(src).display().to_string(),
            &p.display().to_string(),
        ],
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let len = f.metadata().unwrap().len();
    edit(&f, len);
    p
}

fn flip(f: &File, at: u64) {
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn root_damaged_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    let p = damaged_copy(t, "gpt.img", "truncated.img", |f, len| {
        f.set_len(len / 2).unwrap()
    });
    expect_damaged(&p, "past the end of the disk");

    let p = damaged_copy(t, "gpt.img", "bothgpt.img", |f, len| {
        flip(f, 512 + 40);
        flip(f, len - 512 + 40);
    });
    expect_damaged(&p, "both GPT headers are damaged");

    // The last EBR (of logical 6) links back to itself.
    let table = ferry::layout::mbr::read(
        &ferry::disk::SourceDisk::open(&fixtures().join("mbr.img")).unwrap(),
        512,
    )
    .unwrap();
    let ebr6 = table
        .partitions
        .iter()
        .find(|p| p.number == 6)
        .unwrap()
        .ebr_lba
        .unwrap();
    let ext = table
        .partitions
        .iter()
        .find(|p| p.number == 3)
        .unwrap()
        .start_lba;
    let p = damaged_copy(t, "mbr.img", "ebrloop.img", |f, _| {
        let link = ebr6 * 512 + 446 + 16;
        f.write_all_at(&[0, 0, 0, 0, 0x05, 0, 0, 0], link).unwrap();
        f.write_all_at(&((ebr6 - ext) as u32).to_le_bytes(), link + 8)
            .unwrap();
        f.write_all_at(&1u32.to_le_bytes(), link + 12).unwrap();
    });
    expect_damaged(&p, "loops back");

    // One byte of the newest metadata text on the first spanning PV.
    let p = damaged_copy(t, "span1.img", "badlvm.img", |f, _| {
        let mut h = [0u8; 512];
        f.read_exact_at(&mut h, 4096).unwrap();
        let off = u64::from_le_bytes(h[40..48].try_into().unwrap());
        flip(f, 4096 + off + 10);
    });
    expect_damaged(&p, "metadata text checksum");

    // Group descriptor 0 of the whole-disk ext4 (descriptors follow the superblock's block).
    let (_, _, bs) = {
        let lo = Loop::attach(&fixtures().join("whole.img"), 0, None, None, true);
        dumpe2fs(lo.path())
    };
    let p = damaged_copy(t, "whole.img", "badext.img", |f, _| {
        flip(f, if bs == 1024 { 2048 } else { bs } + 2)
    });
    expect_damaged(&p, "group descriptor 0");

    // A zeroed primary GPT is not an error: the backup is used, with a warning.
    let p = damaged_copy(t, "gpt.img", "noprimary.img", |f, _| {
        f.write_all_at(&[0u8; 512], 512).unwrap()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["inventory", "--json", &p.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("using the backup"),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["disks"][0]["table"]["header"], "backup");
    assert_eq!(j["disks"][0]["partitions"].as_array().unwrap().len(), 5);
}

#[test]
fn root_missing_pv_is_reported_not_fatal() {
    let span1 = fixtures().join("span1.img");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["inventory", "--json", &span1.display().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: vgspan: PV pv1") && err.contains("is missing"),
        "{err}"
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let vg = &j["volume_groups"][0];
    assert_eq!(vg["pvs"][1]["missing"], true);
    for lv in vg["lvs"].as_array().unwrap() {
        assert_eq!(
            lv["complete"], false,
            "{} uses the missing PV",
            lv["volume"]
        );
        assert!(lv["content"].is_null());
    }
    // Unscanned LVs count by their extents: 1 MiB of label and metadata, lin's
    // first segment (4 extents) and str's first stripe (4 extents) on span1.
    let used = j["disks"][0]["content"]["used_bytes"].as_u64().unwrap();
    assert_eq!(used, (1 << 20) + 8 * (4 << 20));
}

#[test]
fn root_xfs_dirty_log_counts_everything() {
    fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("dirty.img");
    File::create(&img).unwrap().set_len(320 << 20).unwrap();
    let img_s = img.display().to_string();
    run("mkfs.xfs", &["-q", "-f", &img_s]);
    let clean = || {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["inventory", "--json", &img_s])
            .output()
            .unwrap();
        (
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (j, err) = clean();
    assert_eq!(
        j["disks"][0]["content"]["used_method"], "allocation",
        "{err}"
    );
    {
        let lo = Loop::attach(&img, 0, None, None, false);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        run("mount", &["-t", "xfs", &lo.0, &d]);
        std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
        // Leave transactions in the log, as a crash would.
        run("xfs_io", &["-x", "-c", "shutdown -f", &d]);
        run("umount", &[&d]);
    }
    let (j, err) = clean();
    let c = &j["disks"][0]["content"];
    assert_eq!(c["used_method"], "all");
    assert_eq!(c["used_bytes"], 320 << 20);
    assert!(
        err.contains("warning") && err.contains("log needs replay"),
        "{err}"
    );
}

#[test]
fn root_truncated_pv_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = damaged_copy(tmp.path(), "span2.img", "shortpv.img", |f, _| {
        f.set_len(100 << 20).unwrap()
    });
    let span1 = fixtures().join("span1.img");
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "inventory",
            &span1.display().to_string(),
            &p.display().to_string(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ferry: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("shortpv.img: LVM2_member: at byte 1048576")
            && lines[0].contains("truncated PV"),
        "{err}"
    );
}
