//! Root tier: `ferry inventory` on fixtures built by scripts/fixtures.sh with
//! real tools, cross-checked against sfdisk, blkid, lvm and dumpe2fs, plus a
//! round trip through the used map and damaged-input runs of the CLI.
//!
//! Needs root, loop devices and FERRY_FIXTURES (scripts/test.sh sets it up).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use ferry::inventory::{Content, Inventory, InventoryConfig, inventory};
use serde_json::Value;

fn images() -> Vec<PathBuf> {
    let dir = fixtures();
    manifest()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| dir.join(i["path"].as_str().unwrap()))
        .collect()
}

fn inv() -> &'static Inventory {
    static I: OnceLock<Inventory> = OnceLock::new();
    I.get_or_init(|| {
        let cfg = InventoryConfig {
            paths: images(),
            with_ranges: true,
            ..Default::default()
        };
        let inv = inventory(&cfg).unwrap();
        assert!(
            inv.errors.is_empty(),
            "fixtures must inventory cleanly: {:?}",
            inv.errors
        );
        inv
    })
}

/// Content of a volume by its name (`gpt.img:3`, `whole.img`, `vg0/root`), with its size.
fn content(name: &str) -> (&'static Content, u64) {
    let inv = inv();
    let short = |p: &str| {
        Path::new(p)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for d in &inv.disks {
        if short(&d.path) == name {
            return (d.content.as_ref().expect("whole-disk content"), d.size);
        }
        for p in &d.partitions {
            if format!("{}:{}", short(&d.path), p.number) == name {
                return (p.content.as_ref().expect("partition content"), p.size);
            }
        }
    }
    for vg in &inv.volume_groups {
        for lv in &vg.lvs {
            if lv.volume == name {
                return (lv.content.as_ref().expect("LV content"), lv.size);
            }
        }
    }
    panic!("volume {name} not in the inventory");
}

fn disk(name: &str) -> &'static ferry::inventory::Disk {
    inv()
        .disks
        .iter()
        .find(|d| d.path.ends_with(&format!("/{name}")))
        .unwrap()
}

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

#[test]
fn root_lvm_matches_lvs() {
    let dir = fixtures();
    let m = manifest();
    let cfg = m["lvm_config"].as_str().unwrap();
    // Attach every PV read-only and remember which loop device is which volume.
    let mut loops = Vec::new();
    let mut by_dev = BTreeMap::new();
    for vg in m["vgs"].as_array().unwrap() {
        for pv in vg["pvs"].as_array().unwrap() {
            let lo = Loop::attach(
                &dir.join(pv["image"].as_str().unwrap()),
                pv["pv_offset"].as_u64().unwrap(),
                None,
                None,
                true,
            );
            by_dev.insert(lo.0.clone(), pv["volume"].as_str().unwrap().to_string());
            loops.push(lo);
        }
    }
    let report = |cmd: &str, fields: &str| -> Vec<Value> {
        let out = run(
            cmd,
            &[
                "--readonly",
                "--nolocking",
                "--reportformat",
                "json",
                "--units",
                "b",
                "--nosuffix",
                "--config",
                cfg,
                "-o",
                fields,
            ],
        );
        let j: Value = serde_json::from_str(&out).unwrap();
        j["report"][0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let vgs = report(
        "vgs",
        "vg_name,vg_uuid,vg_seqno,vg_extent_size,vg_extent_count,vg_free_count",
    );
    assert_eq!(vgs.len(), inv().volume_groups.len());
    for v in &vgs {
        let ours = inv()
            .volume_groups
            .iter()
            .find(|g| g.name == v["vg_name"])
            .unwrap();
        assert_eq!(ours.uuid, v["vg_uuid"].as_str().unwrap());
        assert_eq!(ours.seqno.to_string(), v["vg_seqno"].as_str().unwrap());
        assert_eq!(
            ours.extent_size.to_string(),
            v["vg_extent_size"].as_str().unwrap()
        );
        assert_eq!(
            ours.extent_count.to_string(),
            v["vg_extent_count"].as_str().unwrap()
        );
        assert_eq!(
            ours.free_extents.to_string(),
            v["vg_free_count"].as_str().unwrap(),
            "{}: free extents",
            ours.name
        );
    }
    let pvs = report("pvs", "pv_name,pv_uuid,vg_name,pe_start,pv_pe_count");
    for p in &pvs {
        let vol = &by_dev[p["pv_name"].as_str().unwrap()];
        let vg = inv()
            .volume_groups
            .iter()
            .find(|g| g.name == p["vg_name"])
            .unwrap();
        let ours = vg
            .pvs
            .iter()
            .find(|x| {
                x.volume
                    .as_deref()
                    .is_some_and(|v| v.ends_with(vol.as_str()))
            })
            .unwrap();
        assert_eq!(ours.uuid, p["pv_uuid"].as_str().unwrap());
        assert_eq!(ours.pe_start.to_string(), p["pe_start"].as_str().unwrap());
        assert_eq!(
            ours.pe_count.to_string(),
            p["pv_pe_count"].as_str().unwrap()
        );
    }
    let segs = report(
        "lvs",
        "vg_name,lv_name,lv_uuid,lv_size,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges",
    );
    let mut seen = 0;
    for s in &segs {
        let vg = inv()
            .volume_groups
            .iter()
            .find(|g| g.name == s["vg_name"])
            .unwrap();
        let lv = vg.lvs.iter().find(|l| l.name == s["lv_name"]).unwrap();
        assert_eq!(lv.uuid, s["lv_uuid"].as_str().unwrap());
        assert_eq!(lv.size.to_string(), s["lv_size"].as_str().unwrap());
        let start: u64 = s["seg_start_pe"].as_str().unwrap().parse().unwrap();
        let seg = lv
            .segments
            .iter()
            .find(|x| x.start_extent == start)
            .unwrap();
        assert_eq!(
            seg.kind,
            s["segtype"].as_str().unwrap(),
            "{}: segment type",
            lv.volume
        );
        assert_eq!(
            seg.extent_count.to_string(),
            s["seg_size_pe"].as_str().unwrap()
        );
        assert_eq!(
            seg.stripes.len().to_string(),
            s["stripes"].as_str().unwrap()
        );
        if seg.kind == "striped" {
            assert_eq!(
                seg.stripe_size.unwrap().to_string(),
                s["stripe_size"].as_str().unwrap()
            );
        }
        // "/dev/loop3:0-11 /dev/loop4:0-11": PV and first extent per stripe.
        for (i, r) in s["seg_pe_ranges"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .enumerate()
        {
            let (dev, range) = r.rsplit_once(':').unwrap();
            let first: u64 = range.split('-').next().unwrap().parse().unwrap();
            let pv = vg.pvs.iter().find(|p| p.key == seg.stripes[i].pv).unwrap();
            assert!(
                pv.volume
                    .as_deref()
                    .unwrap()
                    .ends_with(by_dev[dev].as_str()),
                "{}: stripe {i} PV",
                lv.volume
            );
            assert_eq!(
                seg.stripes[i].start_extent, first,
                "{}: stripe {i} first extent",
                lv.volume
            );
        }
        seen += 1;
    }
    let ours: usize = inv()
        .volume_groups
        .iter()
        .flat_map(|g| &g.lvs)
        .map(|l| l.segments.len())
        .sum();
    assert_eq!(seen, ours, "segment count");
    drop(loops);
}

/// `(block count, free blocks, block size)` from dumpe2fs -h.
fn dumpe2fs(dev: &Path) -> (u64, u64, u64) {
    let out = run("dumpe2fs", &["-h", &dev.display().to_string()]);
    let field = |k: &str| -> u64 {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (
        field("Block count"),
        field("Free blocks"),
        field("Block size"),
    )
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

/// Copy only `ranges` of `[off, off+size)` of `src` into a new zeroed file.
fn copy_used(
    src: &Path,
    off: u64,
    size: u64,
    ranges: &ferry::layout::ranges::RangeSet,
    dst: &Path,
) {
    let s = File::open(src).unwrap();
    let d = File::create(dst).unwrap();
    d.set_len(size).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for (a, b) in ranges.iter() {
        let mut p = a;
        while p < b {
            let n = ((b - p) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], off + p).unwrap();
            d.write_all_at(&buf[..n], p).unwrap();
            p += n as u64;
        }
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
fn root_lvm_metadata_ring_wraps() {
    // The fixture commits until the newest text wraps past the end of the ring.
    let f = File::open(fixtures().join("ring.img")).unwrap();
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, 4096).unwrap();
    let le = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
    let (mda, off, size) = (le(32), le(40), le(48));
    assert!(
        off + size > mda,
        "ring.img: metadata at {off}+{size} does not wrap the {mda}-byte area"
    );
    let vg = inv()
        .volume_groups
        .iter()
        .find(|g| g.name == "vgring")
        .expect("vgring assembled");
    assert!(vg.seqno > 20, "vgring seqno {}", vg.seqno);
    let keep = vg
        .lvs
        .iter()
        .find(|l| l.name == "keep")
        .expect("vgring/keep");
    assert_eq!(keep.size, 3 << 20);
    assert_eq!(
        vg.lvs.len(),
        1,
        "temporary LVs are gone in the newest metadata"
    );
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
