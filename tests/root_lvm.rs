//! Root tier: LVM volume groups read by ferry's own parser, cross-checked
//! against `vgs`/`pvs`/`lvs --reportformat json` (activation off), and the
//! wrapped metadata ring.
//!
//! Needs root, loop devices and FERRY_FIXTURES (scripts/test.sh sets it up).

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use common::*;
use serde_json::Value;

/// Held by the tests that make PVs or scan every loop device with the LVM
/// tools: a PV made by one must not show up in another's scan.
static LVM_SCAN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lvm_scan() -> std::sync::MutexGuard<'static, ()> {
    LVM_SCAN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn root_lvm_matches_lvs() {
    let _scan = lvm_scan();
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

/// A PV made with two metadata copies keeps the second at its end. It is in
/// the used map, so a target given only the used bytes has both copies:
/// LVM counts two metadata areas there and warns of nothing (without it,
/// the target's second area read as "bad metadata header").
#[test]
fn root_lvm_second_metadata_area_is_used() {
    let _scan = lvm_scan();
    fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("pv2.img");
    let size = 64u64 << 20;
    File::create(&img).unwrap().set_len(size).unwrap();
    // Only the one loop device, activation off, nothing kept on the host.
    let cfg = |dev: &str| {
        format!(
            r#"devices{{filter=["a|^{dev}$|","r|.*|"] obtain_device_list_from_udev=0 hints="none" use_devicesfile=0 scan_lvs=0}} global{{activation=0}} backup{{backup=0 archive=0}}"#
        )
    };
    let lo = Loop::attach(&img, 0, None, None, false);
    let c = cfg(&lo.0);
    run(
        "pvcreate",
        &["-q", "--config", &c, "--pvmetadatacopies", "2", &lo.0],
    );
    run(
        "vgcreate",
        &["-q", "--config", &c, "-s", "1M", "ferrytwomda", &lo.0],
    );
    run(
        "lvcreate",
        &[
            "-q",
            "--config",
            &c,
            "-Wn",
            "-Zn",
            "-an",
            "-n",
            "a",
            "-l",
            "10",
            "ferrytwomda",
        ],
    );
    let mdas = |dev: &str| -> (String, String) {
        let out = std::process::Command::new("pvs")
            .args([
                "--readonly",
                "--nolocking",
                "--noheadings",
                "-o",
                "pv_mda_count",
            ])
            .args(["--config", &cfg(dev), dev])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(mdas(&lo.0).0, "2", "the source PV has two metadata areas");
    drop(lo);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "inventory",
            "--json",
            "--ranges",
            &img.display().to_string(),
        ])
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut used = ferry::layout::ranges::RangeSet::new();
    for r in j["disks"][0]["used_ranges"].as_array().unwrap() {
        let (a, b) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
        used.insert(a, b - a);
    }
    assert!(
        used.iter().any(|(_, b)| b == size),
        "the second metadata area, at the PV's end, is used: {used:?}"
    );
    let target = tmp.path().join("target.img");
    copy_used(&img, 0, size, &used, &target);
    let lt = Loop::attach(&target, 0, None, None, true);
    let (count, warnings) = mdas(&lt.0);
    assert_eq!(count, "2", "{warnings}");
    assert!(!warnings.contains("bad metadata header"), "{warnings}");
}
