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
