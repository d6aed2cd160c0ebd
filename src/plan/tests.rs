//! The planner over synthetic layouts: every rule and every refusal.

use super::layout::{ALIGN, Planned, compute};
use super::spec::{Grow, PlanSpec, Size};
use super::target::{MbrEntry, Place, Step, TargetTable};
use crate::inventory::{
    Content, Disk, DiskKind, Inventory, LogicalVolume, Partition, SCHEMA_VERSION, Table, VgPv,
    VolumeGroup,
};
use crate::layout::fs::UsedMethod;
use crate::layout::gpt::{HeaderSource, ProtectiveMbr};
use crate::layout::lvm::meta::{Segment, Stripe};
use crate::layout::mbr::MbrKind;
use crate::layout::ranges::RangeSet;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";

fn content(fs: &str, size: u64) -> Content {
    // Used: the first and the last MiB of the volume.
    let mut used = RangeSet::new();
    used.insert(0, MIB.min(size));
    used.insert(size.saturating_sub(MIB), MIB.min(size));
    Content {
        fs: fs.into(),
        label: Some(format!("{fs}-label")),
        uuid: Some("11111111-2222-3333-4444-555555555555".into()),
        fs_size: Some(size),
        block_size: Some(4096),
        used_bytes: used.total(),
        used_percent: 0.0,
        used_method: UsedMethod::Allocation,
        vg: None,
        used_ranges: Some(used),
        error: None,
    }
}

fn disk(path: &str, size: u64, table: Option<Table>) -> Disk {
    Disk {
        path: path.into(),
        kind: DiskKind::File,
        size,
        logical_sector_size: 512,
        physical_sector_size: 512,
        model: None,
        serial: None,
        rotational: None,
        removable: None,
        read_only: None,
        in_use: Vec::new(),
        table,
        partitions: Vec::new(),
        content: None,
        used_bytes: 0,
        used_percent: 0.0,
        used_ranges: None,
    }
}

fn gpt(path: &str, size: u64) -> Disk {
    disk(
        path,
        size,
        Some(Table::Gpt {
            disk_guid: "01234567-89AB-CDEF-0123-456789ABCDEF".into(),
            first_usable_lba: 34,
            last_usable_lba: size / 512 - 34,
            entries: 128,
            header: HeaderSource::Primary,
            protective_mbr: ProtectiveMbr::Protective,
        }),
    )
}

fn mbr(path: &str, size: u64) -> Disk {
    disk(
        path,
        size,
        Some(Table::Mbr {
            disk_signature: "0xdeadbeef".into(),
        }),
    )
}

fn part<'a>(
    d: &'a mut Disk,
    number: u32,
    start: u64,
    size: u64,
    fs: Option<&str>,
) -> &'a mut Partition {
    let gpt = matches!(d.table, Some(Table::Gpt { .. }));
    d.partitions.push(Partition {
        number,
        volume: format!("{}:{number}", d.path),
        start,
        size,
        start_lba: start / 512,
        end_lba: (start + size) / 512 - 1,
        type_id: if gpt { LINUX.into() } else { "0x83".into() },
        type_name: String::new(),
        name: gpt.then(|| format!("part{number}")),
        unique_guid: gpt.then(|| format!("00000000-0000-0000-0000-{number:012}")),
        attributes: gpt.then_some(0),
        attribute_names: Vec::new(),
        mbr_kind: (!gpt).then_some(MbrKind::Primary),
        bootable: (!gpt).then_some(false),
        ebr_lba: None,
        content: fs.map(|f| content(f, size)),
    });
    d.partitions.last_mut().unwrap()
}

fn inv(disks: Vec<Disk>, vgs: Vec<VolumeGroup>) -> Inventory {
    Inventory {
        schema: SCHEMA_VERSION,
        disks,
        volume_groups: vgs,
        errors: Vec::new(),
        warnings: Vec::new(),
    }
}

fn plan(i: &Inventory, spec: &PlanSpec) -> Result<Planned, String> {
    compute(i, spec, &mut |_| Ok(vec![0xEB; 440])).map_err(|e| e.0)
}

fn grow(spec: &mut PlanSpec, v: &str, g: Grow) {
    spec.grow.insert(v.into(), g);
}

fn sized(spec: &mut PlanSpec, d: &str, n: u64) {
    spec.target_size.insert(d.into(), Size(n));
}

/// BIOS boot, ext4 root, swap, ext4 data on a 10 GiB GPT disk.
fn server() -> Disk {
    let mut d = gpt("sda", 10 * GIB);
    part(&mut d, 1, MIB, MIB, Some("unknown")).type_id = BIOS_BOOT.into();
    part(&mut d, 2, 2 * MIB, 4 * GIB, Some("ext4"));
    part(&mut d, 3, 2 * MIB + 4 * GIB, GIB, Some("swap"));
    part(&mut d, 4, 2 * MIB + 5 * GIB, 2 * GIB, Some("ext4"));
    d
}

fn starts(p: &Planned) -> Vec<(u64, u64)> {
    p.disks[0]
        .rows
        .iter()
        .map(|r| (r.new_start, r.new_size))
        .collect()
}

#[test]
fn nothing_grown_copies_in_place_and_keeps_the_boot_area() {
    let i = inv(vec![server()], vec![]);
    let p = plan(&i, &PlanSpec::default()).unwrap();
    let d = &p.disks[0];
    assert_eq!(d.target, 0);
    assert_eq!(d.target_size, 10 * GIB);
    assert!(
        d.rows.iter().all(|r| r.selected && r.action == "copy"),
        "{:?}",
        d.rows
    );
    // The bytes between the GPT and partition 1 go at the same offset.
    let front = &d.volumes[0];
    assert_eq!(front.name, "sda");
    assert_eq!(front.used.iter().collect::<Vec<_>>(), vec![(34 * 512, MIB)]);
    assert!(
        d.volumes[1..]
            .iter()
            .all(|v| v.base == d.rows[v.partition.unwrap() as usize - 1].start)
    );
    assert!(d.target_disk.steps.is_empty());
    let TargetTable::Gpt {
        partitions,
        boot_code,
        ..
    } = &d.target_disk.table
    else {
        panic!()
    };
    assert_eq!(boot_code.len(), 880);
    assert_eq!(partitions[1].start_lba, 2 * MIB / 512);
    assert_eq!(
        partitions[1].unique_guid,
        "00000000-0000-0000-0000-000000000002"
    );
}

#[test]
fn last_partition_grows_to_the_end_of_a_larger_target() {
    let i = inv(vec![server()], vec![]);
    let mut s = PlanSpec::default();
    sized(&mut s, "sda", 15 * GIB);
    grow(&mut s, "sda:4", Grow::Max);
    let p = plan(&i, &s).unwrap();
    let r = starts(&p);
    assert_eq!(
        &r[..3],
        &[(MIB, MIB), (2 * MIB, 4 * GIB), (2 * MIB + 4 * GIB, GIB)]
    );
    // Up to the last usable sector: the backup array and header behind it.
    assert_eq!(r[3].0 + r[3].1, 15 * GIB - 33 * 512);
    assert_eq!(
        p.disks[0].target_disk.steps,
        vec![Step::GrowExt {
            place: Place::Partition { number: 4 }
        }]
    );
    assert_eq!(p.disks[0].target_disk.min_size, 15 * GIB);
}

#[test]
fn a_middle_partition_grows_and_the_two_behind_it_move() {
    let i = inv(vec![server()], vec![]);
    let mut s = PlanSpec::default();
    sized(&mut s, "sda", 12 * GIB);
    grow(&mut s, "sda:2", Grow::To(5 * GIB));
    let p = plan(&i, &s).unwrap();
    let r = starts(&p);
    assert_eq!(r[0], (MIB, MIB));
    assert_eq!(r[1], (2 * MIB, 5 * GIB));
    assert_eq!(r[2], (2 * MIB + 5 * GIB, GIB));
    assert_eq!(r[3], (2 * MIB + 6 * GIB, 2 * GIB));
    assert!(r.iter().all(|(s, _)| s % ALIGN == 0));
    let d = &p.disks[0];
    assert_eq!(d.rows[2].action, "move");
    assert_eq!(d.rows[1].action, "grow +1.0 GiB");
    // Data of the moved partitions is written at their new starts.
    let swap = d.volumes.iter().find(|v| v.name == "sda:3").unwrap();
    assert_eq!(swap.base, 2 * MIB + 5 * GIB);
    // Partition 1 (BIOS boot) is in front of the change: untouched.
    assert_eq!(
        d.volumes.iter().find(|v| v.name == "sda:1").unwrap().base,
        MIB
    );
    assert_eq!(
        d.target_disk.steps,
        vec![Step::GrowExt {
            place: Place::Partition { number: 2 }
        }]
    );
}

#[test]
fn a_partition_moves_only_as_far_as_it_must() {
    let mut d = gpt("sda", 10 * GIB);
    part(&mut d, 1, MIB, GIB, Some("ext4"));
    // 1 GiB of free space behind partition 1.
    part(&mut d, 2, MIB + 2 * GIB, GIB, Some("ext4"));
    let i = inv(vec![d], vec![]);
    let mut s = PlanSpec::default();
    grow(&mut s, "sda:1", Grow::To(GIB + 512 * MIB));
    let r = starts(&plan(&i, &s).unwrap());
    assert_eq!(r[1], (MIB + 2 * GIB, GIB));
}

fn logical(d: &mut Disk, number: u32, ebr: u64, start: u64, size: u64, fs: &str) {
    let p = part(d, number, start, size, Some(fs));
    p.mbr_kind = Some(MbrKind::Logical);
    p.ebr_lba = Some(ebr / 512);
}

/// MBR: a primary, then an extended partition with two logicals, then a
/// primary behind it.
fn dos() -> Disk {
    let mut d = mbr("sdb", 8 * GIB);
    part(&mut d, 1, MIB, GIB, Some("ext4")).bootable = Some(true);
    let e = part(&mut d, 2, MIB + GIB, 3 * GIB, None);
    e.mbr_kind = Some(MbrKind::Extended);
    e.type_id = "0x05".into();
    logical(&mut d, 5, MIB + GIB, 2 * MIB + GIB, GIB, "ext4");
    logical(&mut d, 6, 2 * MIB + 2 * GIB, 3 * MIB + 2 * GIB, GIB, "swap");
    part(&mut d, 3, MIB + 4 * GIB, GIB, Some("xfs"));
    d
}

#[test]
fn a_logical_partition_grows_inside_its_extended_partition() {
    let i = inv(vec![dos()], vec![]);
    let mut s = PlanSpec::default();
    sized(&mut s, "sdb", 10 * GIB);
    grow(&mut s, "sdb:5", Grow::To(2 * GIB));
    let p = plan(&i, &s).unwrap();
    let d = &p.disks[0];
    let TargetTable::Mbr {
        partitions,
        disk_signature,
        ..
    } = &d.target_disk.table
    else {
        panic!()
    };
    assert_eq!(*disk_signature, 0xdeadbeef);
    let by = |n: u32| partitions.iter().find(|e| e.number == n).unwrap().clone();
    assert_eq!(
        by(1),
        MbrEntry {
            number: 1,
            kind: MbrKind::Primary,
            start_lba: 2048,
            sectors: GIB / 512,
            type_byte: 0x83,
            bootable: true,
            ebr_lba: None
        }
    );
    // Logical 5 keeps its start and grows; logical 6 and its EBR move behind it.
    assert_eq!(
        (by(5).start_lba, by(5).sectors),
        ((2 * MIB + GIB) / 512, 2 * GIB / 512)
    );
    let l6 = by(6);
    assert_eq!(l6.start_lba * 512, 2 * MIB + 3 * GIB + MIB);
    assert_eq!(l6.ebr_lba.unwrap() * 512, l6.start_lba * 512 - MIB);
    assert_eq!(l6.start_lba * 512 % ALIGN, 0);
    // The extended partition covers them; partition 3 moves behind it.
    let e = by(2);
    assert_eq!(e.start_lba * 512, MIB + GIB);
    assert!(e.start_lba + e.sectors >= l6.start_lba + l6.sectors);
    assert!(by(3).start_lba >= e.start_lba + e.sectors);
    assert_eq!(
        d.target_disk.steps,
        vec![Step::GrowExt {
            place: Place::Partition { number: 5 }
        }]
    );
    // Only the MBR sector itself is left out of the front area.
    assert_eq!(
        d.volumes[0].used.iter().collect::<Vec<_>>(),
        vec![(512, MIB)]
    );
}

#[test]
fn an_mbr_partition_cannot_grow_past_2_tib() {
    let mut d = mbr("sdb", 3 << 40);
    part(&mut d, 1, MIB, GIB, Some("ext4"));
    let i = inv(vec![d], vec![]);
    let mut s = PlanSpec::default();
    grow(&mut s, "sdb:1", Grow::To(5 << 40 >> 1));
    let e = plan(&i, &s).unwrap_err();
    assert!(e.contains("sdb:1") && e.contains("MBR can address"), "{e}");
    // Up to the limit is fine.
    grow(&mut s, "sdb:1", Grow::To((2 << 40) - 2 * MIB));
    plan(&i, &s).unwrap();
}

/// A GPT disk with a PV of vg0 (root ext4 2 GiB, data xfs 1 GiB, 1 GiB free).
fn lvm_server() -> Inventory {
    let mut d = gpt("sdc", 6 * GIB);
    part(&mut d, 1, MIB, 512 * MIB, Some("ext4"));
    let pv_start = MIB + 512 * MIB;
    let p = part(&mut d, 2, pv_start, 4 * GIB + 4 * MIB, Some("LVM2_member"));
    p.content.as_mut().unwrap().vg = Some("vg0".into());
    let es = 4 * MIB;
    let seg = |start: u64, count: u64| Segment {
        start_extent: 0,
        extent_count: count,
        kind: "linear".into(),
        stripe_size: None,
        stripes: vec![Stripe {
            pv: "pv0".into(),
            start_extent: start,
        }],
    };
    let lv = |name: &str, fs: &str, first: u64, count: u64| LogicalVolume {
        name: name.into(),
        volume: format!("vg0/{name}"),
        uuid: format!("uuid-{name}"),
        visible: true,
        size: count * es,
        complete: true,
        segments: vec![seg(first, count)],
        content: Some(content(fs, count * es)),
    };
    let vg = VolumeGroup {
        name: "vg0".into(),
        uuid: "vg0-uuid".into(),
        seqno: 3,
        extent_size: es,
        extent_count: 1024,
        free_extents: 256,
        pvs: vec![VgPv {
            key: "pv0".into(),
            uuid: "pv0-uuid".into(),
            volume: Some("sdc:2".into()),
            device_hint: None,
            pe_start: MIB,
            pe_count: 1024,
            missing: false,
        }],
        lvs: vec![lv("root", "ext4", 0, 512), lv("data", "xfs", 512, 256)],
    };
    inv(vec![d], vec![vg])
}

#[test]
fn an_lv_grows_into_a_grown_pv() {
    let i = lvm_server();
    let mut s = PlanSpec::default();
    sized(&mut s, "sdc", 10 * GIB);
    grow(&mut s, "sdc:2", Grow::Max);
    grow(&mut s, "vg0/root", Grow::Max);
    grow(&mut s, "vg0/data", Grow::To(GIB + 512 * MIB));
    let p = plan(&i, &s).unwrap();
    let d = &p.disks[0];
    let pv = &d.rows[1];
    assert_eq!(pv.new_start, pv.start);
    assert_eq!(pv.new_start + pv.new_size, 10 * GIB - 33 * 512);
    let extents = (pv.new_size - MIB) / (4 * MIB);
    let vg = &p.vgs[0];
    assert_eq!(vg.lvs[1].new_size, GIB + 512 * MIB);
    assert_eq!(vg.lvs[0].new_size, (extents - 256 - 128) * 4 * MIB);
    assert_eq!(vg.free_after, 0);
    assert_eq!(
        d.target_disk.steps,
        vec![
            Step::PvResize {
                place: Place::Partition { number: 2 },
                vg: "vg0".into()
            },
            Step::LvExtend {
                vg: "vg0".into(),
                lv: "root".into(),
                size: vg.lvs[0].new_size
            },
            Step::GrowExt {
                place: Place::Lv {
                    vg: "vg0".into(),
                    lv: "root".into()
                }
            },
            Step::LvExtend {
                vg: "vg0".into(),
                lv: "data".into(),
                size: GIB + 512 * MIB
            },
            Step::GrowXfs {
                place: Place::Lv {
                    vg: "vg0".into(),
                    lv: "data".into()
                }
            },
        ]
    );
}

#[test]
fn an_lv_cannot_grow_past_the_free_extents() {
    let i = lvm_server();
    let mut s = PlanSpec::default();
    grow(&mut s, "vg0/root", Grow::To(4 * GIB));
    let e = plan(&i, &s).unwrap_err();
    assert!(e.contains("vg0/root") && e.contains("256 free"), "{e}");
    grow(&mut s, "vg0/root", Grow::To(3 * GIB));
    plan(&i, &s).unwrap();
}

#[test]
fn a_deselected_lv_is_not_read_and_a_vg_with_none_selected_is_not_sent() {
    let i = lvm_server();
    let mut s = PlanSpec::default();
    let all = plan(&i, &s).unwrap();
    let pv = |p: &Planned| {
        p.volumes()
            .find(|v| v.name == "sdc:2")
            .map(|v| v.used.clone())
    };
    let everything = pv(&all).unwrap();
    s.deselect.push("vg0/data".into());
    let some = pv(&plan(&i, &s).unwrap()).unwrap();
    // data's first and last MiB (extents 512.. on the PV) are gone.
    let data_start = MIB + 512 * 4 * MIB;
    assert!(everything.intersect(data_start, data_start + MIB).count() > 0);
    assert_eq!(some.intersect(data_start, data_start + MIB).count(), 0);
    assert_eq!(some.total(), everything.total() - 2 * MIB);
    let p = plan(&i, &s).unwrap();
    assert_eq!(p.vgs[0].lvs[1].action, "not selected: stays empty");
    s.deselect.push("vg0/root".into());
    assert!(pv(&plan(&i, &s).unwrap()).is_none());
    // The same with the switch off.
    let off = PlanSpec {
        all_vgs: Some(false),
        ..Default::default()
    };
    assert!(pv(&plan(&i, &off).unwrap()).is_none());
    let one = PlanSpec {
        all_vgs: Some(false),
        select: vec!["vg0/data".into()],
        ..Default::default()
    };
    assert!(pv(&plan(&i, &one).unwrap()).is_some());
}

#[test]
fn a_smaller_target_is_fine_when_the_partitions_fit() {
    let mut d = gpt("sdd", 100 * GIB);
    part(&mut d, 1, MIB, 60 * GIB - MIB, Some("ext4"));
    let i = inv(vec![d], vec![]);
    let mut s = PlanSpec::default();
    sized(&mut s, "sdd", 64 * GIB);
    let p = plan(&i, &s).unwrap();
    assert_eq!(p.disks[0].target_disk.min_size, 64 * GIB);
    sized(&mut s, "sdd", 59 * GIB);
    let e = plan(&i, &s).unwrap_err();
    // 60 GiB of partitions plus the backup GPT's 33 sectors.
    let more = GIB + 33 * 512;
    assert!(
        e.contains("sdd does not fit") && e.contains(&format!("by {more} bytes")),
        "{e}"
    );
}

#[test]
fn refusals_name_the_volume_and_the_rule() {
    let mut d = server();
    part(&mut d, 5, 8 * GIB, GIB, Some("btrfs"));
    part(&mut d, 6, 9 * GIB, 512 * MIB, None).content = Some(content("unknown", 512 * MIB));
    let i = inv(vec![d], vec![]);
    let cases: &[(&[(&str, Grow)], &str)] = &[
        (&[("sda:2", Grow::To(GIB))], "sda:2: cannot shrink"),
        (
            &[("sda:5", Grow::To(2 * GIB))],
            "btrfs partitions are not resized",
        ),
        (&[("sda:6", Grow::To(GIB))], "sda:6 is not selected"),
        (
            &[("sda:2", Grow::To(20 * GIB))],
            "sda does not fit its target",
        ),
        (
            &[("sda:2", Grow::Max), ("sda:4", Grow::Max)],
            "both ask for max on sda",
        ),
        (&[("sdz:1", Grow::Max)], "grow: sdz:1 is not a volume"),
        (&[("sda", Grow::Max)], "grow its partitions"),
    ];
    for (grows, want) in cases {
        let mut s = PlanSpec::default();
        for (v, g) in grows.iter() {
            grow(&mut s, v, *g);
        }
        let e = plan(&i, &s).unwrap_err();
        assert!(e.contains(want), "{grows:?}: {e}");
    }
    let s = PlanSpec {
        select: vec!["sda:6".into()],
        ..Default::default()
    };
    let mut s2 = s.clone();
    grow(&mut s2, "sda:6", Grow::To(GIB));
    let e = plan(&i, &s2).unwrap_err();
    assert!(e.contains("does not grow a volume holding unknown"), "{e}");
    plan(&i, &s).unwrap();
    let e = plan(
        &i,
        &PlanSpec {
            deselect: vec!["vgx/lv".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("deselect: vgx/lv is not a volume"), "{e}");
    let i = lvm_server();
    let e = plan(
        &i,
        &PlanSpec {
            deselect: vec!["sdc:2".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("LVM PV of vg0"), "{e}");
    let mut s = PlanSpec::default();
    grow(&mut s, "vg0/root", Grow::Max);
    grow(&mut s, "vg0/data", Grow::Max);
    assert!(
        plan(&i, &s)
            .unwrap_err()
            .contains("both ask for max in vg0")
    );
}

#[test]
fn default_selection_is_the_system_and_swap() {
    let mut d = server();
    part(&mut d, 5, 8 * GIB, GIB, None).content = Some(content("unknown", GIB));
    let i = inv(vec![d], vec![]);
    let p = plan(&i, &PlanSpec::default()).unwrap();
    let rows = &p.disks[0].rows;
    assert!(rows[..4].iter().all(|r| r.selected));
    assert!(!rows[4].selected);
    assert_eq!(rows[4].action, "not selected: stays empty");
    assert!(p.volumes().all(|v| v.name != "sda:5"));
}

#[test]
fn disks_map_to_targets_in_order_or_as_told() {
    let mut a = gpt("a.img", GIB);
    part(&mut a, 1, MIB, 256 * MIB, Some("ext4"));
    let mut b = gpt("b.img", GIB);
    part(&mut b, 1, MIB, 256 * MIB, Some("ext4"));
    let i = inv(vec![a, b], vec![]);
    let p = plan(&i, &PlanSpec::default()).unwrap();
    assert_eq!(
        p.disks.iter().map(|d| d.target).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let mut s = PlanSpec::default();
    s.targets.insert("a.img".into(), 1);
    s.targets.insert("b.img".into(), 0);
    let p = plan(&i, &s).unwrap();
    assert_eq!(
        p.disks
            .iter()
            .map(|d| (d.source.as_str(), d.target))
            .collect::<Vec<_>>(),
        vec![("a.img", 1), ("b.img", 0)]
    );
    assert!(
        p.volumes()
            .all(|v| v.target == if v.disk == "a.img" { 1 } else { 0 })
    );
    s.targets.insert("b.img".into(), 1);
    assert!(plan(&i, &s).unwrap_err().contains("both map to target 1"));
    let only = PlanSpec {
        disks: vec!["a.img".into()],
        ..Default::default()
    };
    assert!(
        plan(&i, &only)
            .unwrap_err()
            .contains("b.img holds selected volumes")
    );
}

#[test]
fn a_whole_disk_filesystem_grows_with_its_disk() {
    let mut d = disk("w.img", GIB, None);
    d.content = Some(content("ext4", GIB));
    let i = inv(vec![d], vec![]);
    let mut s = PlanSpec::default();
    sized(&mut s, "w.img", 2 * GIB);
    grow(&mut s, "w.img", Grow::Max);
    let p = plan(&i, &s).unwrap();
    assert_eq!(p.disks[0].rows[0].new_size, 2 * GIB);
    assert_eq!(p.disks[0].target_disk.table, TargetTable::None);
    assert_eq!(
        p.disks[0].target_disk.steps,
        vec![Step::GrowExt { place: Place::Disk }]
    );
    let text = super::explain(&p);
    assert!(
        text.contains("w.img (none, 1.0 GiB) -> target 0 (2.0 GiB)"),
        "{text}"
    );
    assert!(
        text.contains("grow ext filesystem on the whole disk"),
        "{text}"
    );
}
