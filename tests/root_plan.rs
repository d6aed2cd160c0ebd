//! Root tier: plans applied to larger targets. `ferry plan` writes the job,
//! `ferry send --job` moves the data to a local `ferry receive` writing an
//! image file, and the receiver writes the tables and grows (loop devices).
//! Then: `sgdisk -v` / `sfdisk -V` clean, `e2fsck -fn` clean, filesystem and
//! LV sizes as planned (ferry's own inventory of the target and
//! `dumpe2fs`/`lvs`), files identical, swap UUIDs kept.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::receiver::spawn_receiver;
use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

/// A copy of a fixture image (sources are never written, but a copy keeps
/// the fixture's file times out of it).
fn source(tmp: &Path, name: &str) -> PathBuf {
    let src = tmp.join(name);
    run(
        "cp",
        &[
            "--sparse=always",
            &fixtures().join(name).display().to_string(),
            &src.display().to_string(),
        ],
    );
    src
}

/// `ferry plan ARGS -o job.toml`, then a send of it to a fresh receiver
/// writing `target`. Returns the receiver's report.
fn migrate(tmp: &Path, plan: &[String], target: &Path) -> Value {
    let job = tmp.join("job.toml");
    let out = ferry()
        .arg("plan")
        .args(plan)
        .arg("--explain")
        .arg("-o")
        .arg(&job)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ferry plan failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let rx = spawn_receiver(tmp, &[target], "PLAN-TEST").unwrap();
    let out = rx
        .sender("PLAN-TEST")
        .args(["--state-dir", "none", "--task", "plan"])
        .arg("--job")
        .arg(&job)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ferry send failed: {}\nreceiver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        rx.log()
    );
    let report = tmp.join("state/reports/plan_report.json");
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

fn inventory(p: &Path) -> Value {
    let out = ferry()
        .args(["inventory", "--json", &p.display().to_string()])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn partition(inv: &Value, n: u64) -> &Value {
    inv["disks"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["number"] == n)
        .unwrap_or_else(|| panic!("no partition {n}"))
}

fn steps_ok(report: &Value) -> Vec<String> {
    let steps = report["post_steps"].as_array().expect("post_steps");
    for s in steps {
        assert_eq!(s["status"], "ok", "{s}");
    }
    steps
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// A loop device over `size` bytes at `offset` of `img`.
fn part_loop(img: &Path, offset: u64, size: u64, sector: u32) -> Loop {
    Loop::attach(img, offset, Some(size), Some(sector), false)
}

fn same_files(dev: &Path, fs: &str, tree: &str) {
    let m = Mount::new(dev, fs);
    assert_eq!(
        digests(m.path()),
        digests(&fixtures().join(tree)),
        "{tree}: files differ"
    );
}

fn fsck_ext(dev: &Path) {
    run("e2fsck", &["-fn", &dev.display().to_string()]);
}

#[test]
fn root_gpt_grow_middle_partition_pv_and_lv() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path(), "gpt.img");
    let target = tmp.path().join("target.img");
    let s = src.display().to_string();
    let plan: Vec<String> = vec![
        s.clone(),
        format!("--target-size={s}=900MiB"),
        format!("--grow={s}:3=200MiB"),
        format!("--grow={s}:5=max"),
        "--grow=vg0/data=max".into(),
    ];
    let report = migrate(tmp.path(), &plan, &target);
    let steps = steps_ok(&report);
    assert!(steps.iter().any(|s| s.contains("resize2fs")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("pvresize")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("lvextend")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("xfs_growfs")), "{steps:?}");
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 900 * MIB);

    let v = run("sgdisk", &["-v", &target.display().to_string()]);
    assert!(v.contains("No problems found"), "{v}");
    let inv = inventory(&target);
    assert!(
        inv["errors"].as_array().unwrap().is_empty(),
        "{}",
        inv["errors"]
    );
    let src_inv = inventory(&src);
    // In front of the first grown partition nothing moved.
    for n in [1, 2, 3] {
        assert_eq!(partition(&inv, n)["start"], partition(&src_inv, n)["start"]);
    }
    let root = partition(&inv, 3);
    assert_eq!(root["size"], 200 * MIB);
    assert_eq!(root["content"]["fs_size"], 200 * MIB);
    // Swap and the PV moved behind it, names and GUIDs kept.
    let swap = partition(&inv, 4);
    assert_eq!(swap["start"], 266 * MIB);
    assert_eq!(
        swap["content"]["uuid"],
        partition(&src_inv, 4)["content"]["uuid"]
    );
    assert_eq!(swap["content"]["label"], "swap0");
    for n in 1..=5 {
        for k in ["name", "unique_guid", "type_id"] {
            assert_eq!(partition(&inv, n)[k], partition(&src_inv, n)[k], "{n} {k}");
        }
    }
    let pv = partition(&inv, 5);
    assert_eq!(pv["start"], 298 * MIB);
    assert_eq!(
        pv["start"].as_u64().unwrap() + pv["size"].as_u64().unwrap(),
        900 * MIB - 33 * 512
    );
    // The VG: data (xfs, the LV in front of the free extents) took every
    // free extent of the grown PV and stays one piece; root kept its size.
    let vg = &inv["volume_groups"][0];
    assert_eq!(vg["free_extents"], 0);
    let lv = |name: &str| {
        vg["lvs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()
            .clone()
    };
    let es = vg["extent_size"].as_u64().unwrap();
    let pe_count = vg["pvs"][0]["pe_count"].as_u64().unwrap();
    assert_eq!(pe_count, (pv["size"].as_u64().unwrap() - MIB) / es);
    let lv_data = lv("data");
    assert_eq!(lv_data["size"].as_u64().unwrap(), (pe_count - 12) * es);
    assert_eq!(lv_data["content"]["fs_size"], lv_data["size"]);
    assert_eq!(lv("root")["size"], 48 * MIB);
    // lvm itself agrees (metadata only, filtered to the target's PV).
    let pv_start = pv["start"].as_u64().unwrap();
    let pv_size = pv["size"].as_u64().unwrap();
    let pvl = part_loop(&target, pv_start, pv_size, 512);
    let cfg = format!(
        "global{{activation=0}} devices{{filter=[\"a|^{}$|\",\"r|.*|\"] use_devicesfile=0}}",
        pvl.0
    );
    let lvs = run(
        "lvs",
        &[
            "--config",
            &cfg,
            "--readonly",
            "--nolocking",
            "--noheadings",
            "--units",
            "b",
            "--nosuffix",
            "--separator",
            ":",
            "-o",
            "lv_name,lv_size",
            "vg0",
        ],
    );
    assert!(
        lvs.lines()
            .any(|l| l.trim() == format!("data:{}", lv_data["size"])),
        "{lvs}"
    );
    drop(pvl);

    // Filesystems clean, files identical.
    let r = part_loop(&target, root["start"].as_u64().unwrap(), 200 * MIB, 512);
    fsck_ext(r.path());
    let (blocks, _, bs) = dumpe2fs(r.path());
    assert_eq!(blocks * bs, 200 * MIB);
    same_files(r.path(), "ext4", "trees/gpt-root");
    drop(r);
    let esp = partition(&inv, 1);
    let e = part_loop(
        &target,
        esp["start"].as_u64().unwrap(),
        esp["size"].as_u64().unwrap(),
        512,
    );
    run("fsck.vfat", &["-n", &e.0]);
    drop(e);
    for (name, fs, tree) in [
        ("root", "ext4", "trees/gpt-lvroot"),
        ("data", "xfs", "trees/gpt-lvdata"),
    ] {
        let l = lv(name);
        let segs = l["segments"].as_array().unwrap();
        assert_eq!(segs.len(), 1, "{name}: one linear segment");
        let first = segs[0]["stripes"][0]["start_extent"].as_u64().unwrap();
        let off = pv_start + vg["pvs"][0]["pe_start"].as_u64().unwrap() + first * es;
        let d = part_loop(&target, off, l["size"].as_u64().unwrap(), 512);
        if fs == "ext4" {
            fsck_ext(d.path());
        } else {
            run("xfs_repair", &["-n", &d.0]);
        }
        same_files(d.path(), fs, tree);
    }
}

#[test]
fn root_mbr_grow_a_logical_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path(), "mbr.img");
    let target = tmp.path().join("target.img");
    let s = src.display().to_string();
    let plan: Vec<String> = vec![
        s.clone(),
        format!("--target-size={s}=400MiB"),
        format!("--grow={s}:5=max"),
    ];
    let report = migrate(tmp.path(), &plan, &target);
    steps_ok(&report);
    let v = run("sfdisk", &["-V", &target.display().to_string()]);
    assert!(v.contains("No errors detected"), "{v}");
    let inv = inventory(&target);
    assert!(
        inv["errors"].as_array().unwrap().is_empty(),
        "{}",
        inv["errors"]
    );
    let src_inv = inventory(&src);
    assert_eq!(
        inv["disks"][0]["table"]["disk_signature"],
        src_inv["disks"][0]["table"]["disk_signature"]
    );
    for n in [1, 2, 3] {
        assert_eq!(
            partition(&inv, n)["start"],
            partition(&src_inv, n)["start"],
            "{n}"
        );
    }
    assert_eq!(partition(&inv, 1)["bootable"], true);
    let l5 = partition(&inv, 5);
    let l6 = partition(&inv, 6);
    // Logical 5 fills the room up to logical 6, which moved to the end.
    assert_eq!(
        l6["start"].as_u64().unwrap() + l6["size"].as_u64().unwrap(),
        400 * MIB
    );
    assert_eq!(l5["content"]["fs_size"], l5["size"]);
    assert!(l5["size"].as_u64().unwrap() > partition(&src_inv, 5)["size"].as_u64().unwrap());
    assert_eq!(
        l6["content"]["uuid"],
        partition(&src_inv, 6)["content"]["uuid"]
    );
    let ext = partition(&inv, 3);
    assert_eq!(
        ext["start"].as_u64().unwrap() + ext["size"].as_u64().unwrap(),
        400 * MIB
    );
    for (n, tree, fs) in [
        (5u64, "trees/mbr-log5", "ext3"),
        (1, "trees/mbr-boot", "ext4"),
    ] {
        let p = partition(&inv, n);
        let d = part_loop(
            &target,
            p["start"].as_u64().unwrap(),
            p["size"].as_u64().unwrap(),
            512,
        );
        fsck_ext(d.path());
        same_files(d.path(), fs, tree);
    }
}

#[test]
fn root_gpt_4k_sectors_grow_xfs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path(), "gpt4k.img");
    let target = tmp.path().join("target.img");
    let s = src.display().to_string();
    let size = std::fs::metadata(&src).unwrap().len();
    let plan: Vec<String> = vec![
        s.clone(),
        format!("--target-size={s}={}", size * 2),
        format!("--grow={s}:2=max"),
    ];
    let report = migrate(tmp.path(), &plan, &target);
    let steps = steps_ok(&report);
    assert!(steps.iter().any(|s| s.contains("xfs_growfs")), "{steps:?}");
    let v = run("sgdisk", &["-v", &target.display().to_string()]);
    assert!(v.contains("No problems found"), "{v}");
    let inv = inventory(&target);
    assert!(
        inv["errors"].as_array().unwrap().is_empty(),
        "{}",
        inv["errors"]
    );
    assert_eq!(inv["disks"][0]["logical_sector_size"], 4096);
    let p = partition(&inv, 2);
    let end = p["start"].as_u64().unwrap() + p["size"].as_u64().unwrap();
    // The backup GPT at 4096-byte sectors: header and a 4-sector array.
    assert_eq!(end, size * 2 - 5 * 4096);
    assert_eq!(p["content"]["fs_size"], p["size"]);
    let d = part_loop(
        &target,
        p["start"].as_u64().unwrap(),
        p["size"].as_u64().unwrap(),
        4096,
    );
    run("xfs_repair", &["-n", &d.0]);
    same_files(d.path(), "xfs", "trees/gpt4k-k4xfs");
}

#[test]
fn root_plan_refusals_exit_2_and_name_the_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path(), "gpt.img");
    let s = src.display().to_string();
    for (args, want) in [
        (vec![format!("--grow={s}:3=10MiB")], "cannot shrink"),
        (vec![format!("--grow={s}:3=2GiB")], "enlarge the target by"),
        (
            vec![format!("--grow={s}:1=max"), format!("--grow={s}:3=max")],
            "both ask for max",
        ),
        (
            vec!["--deselect=vg9/x".to_string()],
            "vg9/x is not a volume",
        ),
    ] {
        let out = ferry().arg("plan").arg(&s).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
