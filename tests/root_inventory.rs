//! Root tier: `ferry inventory` on fixtures built by scripts/fixtures.sh with
//! real tools, cross-checked against sfdisk, blkid and dumpe2fs, plus a round
//! trip through the used map. LVM: root_lvm.rs; damaged input: root_damaged.rs.
//!
//! Needs root, loop devices and FERRY_FIXTURES (scripts/test.sh sets it up).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ferry::inventory::Content;
use serde_json::Value;

#[test]
fn root_partitions_match_sfdisk() {
    let dir = fixtures();
    for img in manifest()["images"].as_array().unwrap() {
        if img["table"] == "none" {
            continue;
        }
        let name = img["name"].as_str().unwrap();
        let path = dir.join(name);
        let ss = img["sector_size"].as_u64().unwrap();
        // sfdisk reads image files as 512-byte-sector disks; give it a 4Kn loop device.
        let lo = (ss != 512).then(|| Loop::attach(&path, 0, None, Some(ss as u32), true));
        let target = lo.as_ref().map_or(path.clone(), |l| l.path().to_path_buf());
        let j: Value =
            serde_json::from_str(&run("sfdisk", &["--json", &target.display().to_string()]))
                .unwrap();
        let pt = &j["partitiontable"];
        let d = disk(name);
        assert_eq!(d.logical_sector_size as u64, ss, "{name}: sector size");
        let ours: Vec<_> = d.partitions.iter().collect();
        let theirs = pt["partitions"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: partition count");
        for t in theirs {
            let node = t["node"].as_str().unwrap();
            let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            let num: u32 = node[node.len() - digits..].parse().unwrap();
            let p = ours
                .iter()
                .find(|p| p.number == num)
                .unwrap_or_else(|| panic!("{name}: no partition {num}"));
            assert_eq!(
                p.start_lba,
                t["start"].as_u64().unwrap(),
                "{name}:{num} start"
            );
            assert_eq!(
                p.end_lba - p.start_lba + 1,
                t["size"].as_u64().unwrap(),
                "{name}:{num} size"
            );
            assert_eq!(p.start, p.start_lba * ss, "{name}:{num} byte offset");
            let ty = t["type"].as_str().unwrap();
            if pt["label"] == "gpt" {
                assert_eq!(p.type_id, ty.to_uppercase(), "{name}:{num} type");
                assert_eq!(
                    p.unique_guid.as_deref(),
                    t["uuid"].as_str(),
                    "{name}:{num} uuid"
                );
                assert_eq!(p.name.as_deref(), t["name"].as_str(), "{name}:{num} name");
            } else {
                let ours = u8::from_str_radix(p.type_id.trim_start_matches("0x"), 16).unwrap();
                assert_eq!(
                    ours,
                    u8::from_str_radix(ty, 16).unwrap(),
                    "{name}:{num} type"
                );
                assert_eq!(
                    p.bootable,
                    Some(t["bootable"].as_bool().unwrap_or(false)),
                    "{name}:{num} boot flag"
                );
            }
        }
        match &d.table {
            Some(ferry::inventory::Table::Gpt {
                disk_guid,
                first_usable_lba,
                last_usable_lba,
                ..
            }) => {
                assert_eq!(disk_guid, pt["id"].as_str().unwrap());
                assert_eq!(*first_usable_lba, pt["firstlba"].as_u64().unwrap());
                assert_eq!(*last_usable_lba, pt["lastlba"].as_u64().unwrap());
            }
            Some(ferry::inventory::Table::Mbr { disk_signature }) => {
                assert_eq!(disk_signature, pt["id"].as_str().unwrap());
            }
            None => panic!("{name}: no table found"),
        }
    }
}

/// blkid -p on a loop device over `[offset, offset+size)` of `file`.
fn blkid(file: &Path, offset: u64, size: u64) -> BTreeMap<String, String> {
    let lo = Loop::attach(file, offset, Some(size), None, true);
    let out = Command::new("blkid")
        .args(["-p", "-o", "export", &lo.0])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_blkid(name: &str, c: &Content, b: &BTreeMap<String, String>) {
    let ty = b.get("TYPE").map(String::as_str).unwrap_or("unknown");
    assert_eq!(c.fs, ty, "{name}: type ({b:?})");
    assert_eq!(
        c.label.as_deref(),
        b.get("LABEL").map(String::as_str),
        "{name}: label"
    );
    assert_eq!(
        c.uuid.as_deref(),
        b.get("UUID").map(String::as_str),
        "{name}: uuid"
    );
}

#[test]
fn root_filesystems_match_blkid() {
    let dir = fixtures();
    let mut checked = 0;
    for (img, v) in manifest_volumes() {
        let name = v["name"].as_str().unwrap();
        if v["type"] == "5" || v["type"] == "05" || v["type"] == "f" {
            continue; // an extended partition is a container, not a volume
        }
        let (c, size) = content(name);
        let b = blkid(
            &dir.join(img["path"].as_str().unwrap()),
            v["offset"].as_u64().unwrap(),
            size,
        );
        check_blkid(name, c, &b);
        checked += 1;
    }
    let tmp = tempfile::tempdir().unwrap();
    for lv in manifest_lvs() {
        let name = lv["name"].as_str().unwrap();
        let (c, size) = content(name);
        let f = tmp.path().join("lv.img");
        rebuild_lv(lv, &f);
        check_blkid(name, c, &blkid(&f, 0, size));
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} volumes checked");
}

/// Every ext volume: (name, file holding it, offset, size).
fn ext_volumes(tmp: &Path) -> Vec<(String, PathBuf, u64, u64)> {
    let dir = fixtures();
    let mut out = Vec::new();
    for (img, v) in manifest_volumes() {
        if v["fstype"].as_str().is_some_and(|t| t.starts_with("ext")) {
            out.push((
                v["name"].as_str().unwrap().to_string(),
                dir.join(img["path"].as_str().unwrap()),
                v["offset"].as_u64().unwrap(),
                v["size"].as_u64().unwrap(),
            ));
        }
    }
    for (i, lv) in manifest_lvs().into_iter().enumerate() {
        if lv["fstype"].as_str().is_some_and(|t| t.starts_with("ext")) {
            let f = tmp.join(format!("lv{i}.img"));
            rebuild_lv(lv, &f);
            out.push((
                lv["name"].as_str().unwrap().to_string(),
                f,
                0,
                lv["size"].as_u64().unwrap(),
            ));
        }
    }
    out
}

#[test]
fn root_ext_used_blocks_match_dumpe2fs() {
    let tmp = tempfile::tempdir().unwrap();
    let vols = ext_volumes(tmp.path());
    assert!(
        vols.len() >= 7,
        "expected every ext fixture, got {}",
        vols.len()
    );
    for (name, file, off, size) in vols {
        let lo = Loop::attach(&file, off, Some(size), None, true);
        let (blocks, free, bs) = dumpe2fs(lo.path());
        let (c, _) = content(&name);
        assert_eq!(
            c.used_bytes,
            (blocks - free) * bs,
            "{name}: used bytes vs dumpe2fs ({blocks} blocks, {free} free, {bs} B)"
        );
    }
}

#[test]
fn root_used_map_round_trip() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let mut vols: Vec<(String, PathBuf, u64, u64, String, String)> = Vec::new();
    for (img, v) in manifest_volumes() {
        if let (Some(t), Some(tree)) = (v["fstype"].as_str(), v["tree"].as_str()) {
            vols.push((
                v["name"].as_str().unwrap().into(),
                dir.join(img["path"].as_str().unwrap()),
                v["offset"].as_u64().unwrap(),
                v["size"].as_u64().unwrap(),
                t.into(),
                tree.into(),
            ));
        }
    }
    for (i, lv) in manifest_lvs().into_iter().enumerate() {
        if let (Some(t), Some(tree)) = (lv["fstype"].as_str(), lv["tree"].as_str()) {
            let f = tmp.path().join(format!("lv{i}.img"));
            rebuild_lv(lv, &f);
            vols.push((
                lv["name"].as_str().unwrap().into(),
                f,
                0,
                lv["size"].as_u64().unwrap(),
                t.into(),
                tree.into(),
            ));
        }
    }
    let mut mounted = 0;
    for (name, file, off, size, fstype, tree) in vols {
        let (c, _) = content(&name);
        let ranges = c.used_ranges.as_ref().unwrap();
        let copy = tmp.path().join("copy.img");
        copy_used(&file, off, size, ranges, &copy);
        let copy_s = copy.display().to_string();
        if matches!(fstype.as_str(), "ext2" | "ext3" | "ext4" | "xfs" | "vfat") {
            assert!(
                c.used_bytes < size / 2,
                "{name}: the used map should skip the free space"
            );
        }
        match fstype.as_str() {
            "ext2" | "ext3" | "ext4" => {
                run("e2fsck", &["-fn", &copy_s]);
            }
            "xfs" => {
                run("xfs_repair", &["-n", "-f", &copy_s]);
            }
            "vfat" => {
                run("fsck.fat", &["-n", &copy_s]);
                // No vfat module on the host: compare through mtools.
                let out = tmp.path().join("vfat-out");
                let _ = std::fs::remove_dir_all(&out);
                std::fs::create_dir(&out).unwrap();
                run(
                    "mcopy",
                    &["-s", "-n", "-i", &copy_s, "::*", &out.display().to_string()],
                );
                assert_eq!(
                    digests(&out),
                    digests(&dir.join(&tree)),
                    "{name}: files after the round trip"
                );
                continue;
            }
            _ => continue,
        }
        let lo_src = Loop::attach(&file, off, Some(size), None, true);
        let lo_copy = Loop::attach(&copy, 0, None, None, true);
        let m_src = Mount::new(lo_src.path(), &fstype);
        let m_copy = Mount::new(lo_copy.path(), &fstype);
        let want = digests(m_src.path());
        assert!(
            !want.is_empty(),
            "{name}: no files in the source filesystem"
        );
        assert_eq!(
            digests(m_copy.path()),
            want,
            "{name}: files after copying only the used ranges"
        );
        assert_eq!(want, digests(&dir.join(&tree)), "{name}: fixture tree");
        drop((m_copy, m_src));
        mounted += 1;
    }
    assert!(mounted >= 8, "only {mounted} filesystems went round trip");
}

#[test]
fn root_block_devices() {
    let dir = fixtures();
    let bin = env!("CARGO_BIN_EXE_ferry");
    for (img, ss) in [("gpt.img", 512u32), ("gpt4k.img", 4096)] {
        let file = dir.join(img);
        let lo = Loop::attach(&file, 0, None, Some(ss), true);
        // One at a time: together they hold the same PVs twice (reported as duplicates).
        let json = |path: &str| -> Value {
            let out = Command::new(bin)
                .args(["inventory", "--json", path])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{err}");
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let (jd, jf) = (json(&lo.0), json(&file.display().to_string()));
        let (dev, f) = (&jd["disks"][0], &jf["disks"][0]);
        assert_eq!(dev["kind"], "block");
        assert_eq!(dev["logical_sector_size"], ss, "BLKSSZGET on {}", lo.0);
        assert_eq!(dev["size"], f["size"]);
        assert_eq!(
            dev["read_only"], true,
            "sysfs ro of a read-only loop device"
        );
        assert_eq!(
            dev["partitions"].as_array().unwrap().len(),
            f["partitions"].as_array().unwrap().len()
        );
        for (a, b) in dev["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .zip(f["partitions"].as_array().unwrap())
        {
            assert_eq!(a["start"], b["start"]);
            assert_eq!(
                a["content"]["used_bytes"], b["content"]["used_bytes"],
                "{img}: {} vs {}",
                a["volume"], b["volume"]
            );
        }
        let used = f["in_use"].as_array().unwrap();
        assert!(
            used.iter()
                .any(|u| u.as_str().unwrap().contains(&lo.0[5..])),
            "{img}: in_use should name {}: {used:?}",
            lo.0
        );
    }
}

#[test]
fn root_ext_feature_variants_match_dumpe2fs() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = fixtures().join("trees/whole-whole");
    let variants: &[(&str, &[&str])] = &[
        ("ext4-1k", &["-t", "ext4", "-b", "1024"]),
        (
            "ext4-64bit-csum",
            &["-t", "ext4", "-O", "64bit,metadata_csum"],
        ),
        (
            "ext4-uninit-bg",
            &["-t", "ext4", "-O", "^metadata_csum,uninit_bg"],
        ),
        ("ext4-no-flex", &["-t", "ext4", "-O", "^flex_bg"]),
        (
            "ext4-meta-bg",
            &["-t", "ext4", "-O", "meta_bg,^resize_inode"],
        ),
        (
            "ext4-bigalloc",
            &["-t", "ext4", "-O", "bigalloc", "-C", "65536"],
        ),
        ("ext3", &["-t", "ext3"]),
        ("ext2-1k", &["-t", "ext2", "-b", "1024"]),
    ];
    for (name, opts) in variants {
        let img = tmp.path().join(format!("{name}.img"));
        File::create(&img).unwrap().set_len(1 << 30).unwrap();
        let mut args: Vec<&str> = vec!["-q", "-F"];
        args.extend_from_slice(opts);
        let (img_s, tree_s) = (img.display().to_string(), tree.display().to_string());
        args.extend_from_slice(&["-d", &tree_s, &img_s]);
        run("mke2fs", &args);
        let (blocks, free, bs) = dumpe2fs(&img);
        let disk = ferry::disk::SourceDisk::open(&img).unwrap();
        let used = ferry::layout::fs::ext::used(&disk).unwrap();
        assert_eq!(
            used.total(),
            (blocks - free) * bs,
            "{name}: used bytes vs dumpe2fs"
        );
        let copy = tmp.path().join("copy.img");
        copy_used(&img, 0, 1 << 30, &used, &copy);
        run("e2fsck", &["-fn", &copy.display().to_string()]);
        std::fs::remove_file(&img).unwrap();
    }
}

#[test]
fn root_whole_disk_used_map_round_trip() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["gpt.img", "mbr.img", "gpt4k.img"] {
        let d = disk(name);
        let src = dir.join(name);
        let copy = tmp.path().join(name);
        let map = d.used_ranges.as_ref().unwrap();
        assert!(
            d.used_bytes < d.size / 2,
            "{name}: the disk map skips free space"
        );
        assert_eq!(d.used_bytes, map.total());
        copy_used(&src, 0, d.size, map, &copy);
        // The copy reads back as the same disk: tables, filesystems, VGs, used maps.
        let inv = |p: &Path| {
            let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(["inventory", "--json", &p.display().to_string()])
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut j: Value = serde_json::from_slice(&out.stdout).unwrap();
            j["disks"][0]["path"] = Value::Null;
            // Other tests may have the source attached and mounted meanwhile.
            j["disks"][0]["in_use"] = Value::Null;
            for p in j["disks"][0]["partitions"].as_array_mut().unwrap() {
                p["volume"] = Value::Null;
            }
            for vg in j["volume_groups"].as_array_mut().unwrap() {
                for pv in vg["pvs"].as_array_mut().unwrap() {
                    pv["volume"] = Value::Null;
                }
            }
            j
        };
        assert_eq!(inv(&copy), inv(&src), "{name}: inventory of the copy");
        if d.logical_sector_size == 512 {
            let v = run("sfdisk", &["--verify", &copy.display().to_string()]);
            assert!(v.contains("No errors detected"), "{name}: {v}");
        }
        for p in &d.partitions {
            let c = p.content.as_ref();
            if c.is_some_and(|c| c.fs.starts_with("ext")) {
                let lo = Loop::attach(&copy, p.start, Some(p.size), None, true);
                run("e2fsck", &["-fn", &lo.0]);
            }
        }
    }
}
