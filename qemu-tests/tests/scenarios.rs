//! The QEMU tier: receiver and source guests boot ferry's image under TCG
//! and migrate fixture disks; the host checks markers in order, the used
//! bytes of every target, fsck, and the receiver's report over its API.
//! Scenario 7 migrates a real Linux disk (scripts/bootdisk.sh) by a plan
//! onto a larger target and boots the target from its disk.
//! Run with `scripts/test.sh qemu` (root; builds the image and fixtures
//! when missing). `FERRY_QEMU=0` skips these tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ferry::plan::PlanSpec;
use ferry::plan::spec::{Grow, Size};
use qemu_tests::bootdisk::{
    Up, boot_disk, bootdisk, copy_image, cut_lv, expect_up, finish_source_guest, plan_digests,
    same_bytes, start_source_with_job,
};
use qemu_tests::check::{
    assert_used_equal, cut, expected_digests, fsck, fsck_lvs, fsck_partitions,
};
use qemu_tests::disks::{
    blank, copy_fixture, ext_cat, ext_file_block, image_entry, poke, vg_entry,
};
use qemu_tests::image::boot_image;
use qemu_tests::migrate::{
    BOOT, PASS, ReceiverGuest, count_before, finish_source, start_receiver, start_source,
};
use qemu_tests::net::{Lan, Nic, RECEIVER_IP};
use qemu_tests::scenario::Scenario;
use qemu_tests::vm::{Boot, VmBuilder};
use qemu_tests::{enabled, require_root};
use serde_json::Value;

/// The receiver's report of `task` once its pass ended, kept as a note.
fn report(sc: &Scenario, rx: &ReceiverGuest, task: &str) -> Value {
    let rep = rx.api.get_json(
        &format!("/v1/tasks/{task}/report"),
        Duration::from_secs(120),
    );
    sc.note(
        &format!("{task}-report.json"),
        &serde_json::to_string_pretty(&rep).unwrap(),
    );
    rep
}

/// Assert the report says Finished for `pass` and, when given, carries
/// the expected digest for every volume in order.
fn assert_report(rep: &Value, pass: &str, digests: Option<&[String]>) {
    assert_eq!(rep["state"], "Finished", "report: {rep:#}");
    assert!(
        rep["pass"]
            .as_str()
            .is_some_and(|p| p.eq_ignore_ascii_case(pass)),
        "pass {pass}: {rep:#}"
    );
    let vols = rep["volumes"].as_array().expect("volumes in the report");
    if let Some(want) = digests {
        assert_eq!(vols.len(), want.len(), "report: {rep:#}");
        for (v, d) in vols.iter().zip(want) {
            assert_eq!(
                v["digest"].as_str(),
                Some(d.as_str()),
                "volume {}: {rep:#}",
                v["name"]
            );
        }
    }
    assert!(
        rep["errors"].as_array().is_none_or(|e| e.is_empty()),
        "report: {rep:#}"
    );
}

/// Copies of fixture images as sources and blank same-size targets.
fn disks(sc: &Scenario, fixtures: &[&str]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut s, mut t) = (Vec::new(), Vec::new());
    for (i, f) in fixtures.iter().enumerate() {
        let src = sc.path(&format!("source{i}.img"));
        let size = copy_fixture(f, &src);
        let tgt = sc.path(&format!("target{i}.img"));
        blank(&tgt, size);
        s.push(src);
        t.push(tgt);
    }
    (s, t)
}

/// Scenario 1: GPT (ESP, BIOS boot, ext4, swap, LVM PV with vg0/root ext4
/// and vg0/data xfs) to a same-size target, unattended; the report comes
/// from the receiver's control API.
#[test]
fn s1_gpt_ext4_swap_lvm_unattended() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s1-gpt-lvm");
    let (src, tgt) = disks(&sc, &["gpt.img"]);
    let want = expected_digests(&src);
    sc.note("expected-digests.txt", &want.join("\n"));
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, &tgt, "QEMU-S1GPT");
    let mut s = start_source(&sc, &lan, "source", &rx, &src, "s1", "");
    finish_source(&sc, &mut s, "s1");
    let rep = report(&sc, &rx, "s1");
    assert_report(&rep, "full", Some(&want));
    rx.vm.kill();
    let n = assert_used_equal(&[(src[0].clone(), tgt[0].clone())]);
    sc.step(&format!("{n} used bytes equal on the target"));
    let parts = fsck_partitions(image_entry("gpt.img"), &tgt[0], &sc.dir);
    let lvs = fsck_lvs(vg_entry("vg0"), &[("gpt.img", tgt[0].as_path())], &sc.dir);
    assert!(
        !parts.is_empty() && lvs.len() == 2,
        "checked {parts:?} and {lvs:?}"
    );
    sc.step(&format!("fsck clean: {parts:?} {lvs:?}"));
}

/// Boot `b` with no `ferry.role`: /init reaches `ferry: ready` and runs
/// `ferry boot`, which says what is missing (exit 2) and waits at its menu.
fn boot_to_ready(sc: &Scenario, b: VmBuilder) {
    let mut vm = b.spawn();
    sc.step("guest started");
    vm.expect("ferry: init", BOOT);
    sc.step("ferry: init");
    vm.expect("ferry: ready", BOOT);
    sc.step("ferry: ready");
    vm.expect("no ferry.role=", BOOT);
    sc.step("ferry boot ran and asked for a role");
}

/// The ISO, or a failure with the remedy.
fn need_iso() {
    let iso = &boot_image().iso;
    assert!(
        iso.is_file(),
        "{} is missing: build the image with scripts/build-image.sh",
        iso.display()
    );
}

/// Scenario 2a: the hybrid ISO as a CD under SeaBIOS.
#[test]
fn s2_iso_bios_boots_to_ready() {
    if !enabled() {
        return;
    }
    need_iso();
    let sc = Scenario::new("s2-iso-bios");
    boot_to_ready(
        &sc,
        sc.vm("iso-bios").boot(Boot::Iso { uefi: false }).mem(512),
    );
}

/// Scenario 2b: the hybrid ISO as a CD under UEFI (OVMF, a copied VARS file).
#[test]
fn s2_iso_uefi_boots_to_ready() {
    if !enabled() {
        return;
    }
    need_iso();
    let sc = Scenario::new("s2-iso-uefi");
    boot_to_ready(
        &sc,
        sc.vm("iso-uefi").boot(Boot::Iso { uefi: true }).mem(512),
    );
}

/// Scenario 2c: PXE under SeaBIOS: the NIC's iPXE ROM gets `ferry.ipxe`
/// from QEMU's TFTP server, which loads the kernel and initrd beside it;
/// /init then gets an address by DHCP from slirp.
#[test]
fn s2_pxe_bios_boots_to_ready() {
    if !enabled() {
        return;
    }
    let sc = Scenario::new("s2-pxe-bios");
    let pxe = &boot_image().pxe;
    assert!(
        pxe.join("ferry.ipxe").is_file(),
        "{}/ferry.ipxe missing: rebuild the image (scripts/build-image.sh)",
        pxe.display()
    );
    let b = sc
        .vm("pxe-bios")
        .boot(Boot::Pxe { uefi: false })
        .mem(512)
        .nic(Nic::Tftp {
            dir: pxe.display().to_string(),
            bootfile: "ferry.ipxe".into(),
        });
    let mut vm = b.spawn();
    vm.expect("ferry: init", BOOT);
    sc.step("ferry: init");
    let up = vm.expect("ferry: network up", BOOT);
    assert!(up.contains("169.254.100."), "DHCP from slirp: {up}");
    vm.expect("ferry: ready", BOOT);
    sc.step("ferry: ready");
    vm.expect("no ferry.role=", BOOT);
}

/// Scenario 2d: PXE under UEFI (OVMF's network boot through iPXE's EFI ROM).
#[test]
fn s2_pxe_uefi_boots_to_ready() {
    if !enabled() {
        return;
    }
    let sc = Scenario::new("s2-pxe-uefi");
    let pxe = &boot_image().pxe;
    let b = sc
        .vm("pxe-uefi")
        .boot(Boot::Pxe { uefi: true })
        .mem(512)
        .nic(Nic::Tftp {
            dir: pxe.display().to_string(),
            bootfile: "ferry.ipxe".into(),
        });
    boot_to_ready(&sc, b);
}

/// Scenario 3: a full pass, then bytes of a file on the source's ext4 root
/// change (the server ran production again), then an incremental pass
/// from a second boot sends only the changed chunk; the target equals the
/// changed source.
#[test]
fn s3_incremental_after_a_change() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s3-incremental");
    let (src, tgt) = disks(&sc, &["gpt.img"]);
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, &tgt, "QEMU-S3INC");
    let mut s = start_source(&sc, &lan, "source", &rx, &src, "s3", "");
    finish_source(&sc, &mut s, "s3");
    drop(s);
    assert_report(&report(&sc, &rx, "s3"), "full", None);

    // Change 4 KiB of a file's data on the source, as production would.
    let root = &image_entry("gpt.img")["volumes"][2];
    assert_eq!(root["name"], "gpt.img:3");
    let (off, size) = (
        root["offset"].as_u64().unwrap(),
        root["size"].as_u64().unwrap(),
    );
    let (at, bs) = ext_file_block(&src[0], off, size, "/usr/bin/tool", 0, &sc.dir);
    let new: Vec<u8> = (0..bs).map(|i| (i * 7 + 3) as u8).collect();
    poke(&src[0], at, &new);
    let want = expected_digests(&src);
    sc.step(&format!(
        "changed {bs} bytes of /usr/bin/tool at byte {at} of the source"
    ));

    let mut s2 = start_source(
        &sc,
        &lan,
        "source-2",
        &rx,
        &src,
        "s3",
        "ferry.pass=incremental",
    );
    let summary = finish_source(&sc, &mut s2, "s3");
    let sent = count_before(&summary, " chunks sent").expect("chunks sent in the summary");
    assert!(
        (1..=2).contains(&sent),
        "an incremental pass after one changed block: {summary}"
    );
    // Each as a patch of the 4 KiB part that changed, not a whole MiB.
    assert_eq!(
        count_before(&summary, " as patches"),
        Some(sent),
        "the changed chunks as patches: {summary}"
    );
    let rep = report(&sc, &rx, "s3");
    assert_report(&rep, "incremental", None);
    if let Some(d) = rep["volumes"][0]["digest"].as_str() {
        assert_eq!(d, want[0], "digest after the incremental pass");
    }
    rx.vm.kill();
    assert_used_equal(&[(src[0].clone(), tgt[0].clone())]);
    let file = ext_cat(&tgt[0], off, size, "/usr/bin/tool", &sc.dir);
    assert_eq!(
        &file[..bs as usize],
        &new[..],
        "the changed file on the target"
    );
    fsck_partitions(image_entry("gpt.img"), &tgt[0], &sc.dir);
    fsck_lvs(vg_entry("vg0"), &[("gpt.img", tgt[0].as_path())], &sc.dir);
}

/// The task's status from the receiver's API.
fn status(rx: &ReceiverGuest, task: &str) -> Value {
    rx.api
        .get_json(&format!("/v1/tasks/{task}"), Duration::from_secs(60))
}

/// Wait until the receiver counts at least `chunks` done for `task`.
fn wait_chunks(sc: &Scenario, rx: &ReceiverGuest, task: &str, chunks: u64) -> Value {
    let deadline = std::time::Instant::now() + PASS;
    loop {
        if let Ok((200, body)) = rx.api.request("GET", &format!("/v1/tasks/{task}")) {
            let st: Value = serde_json::from_str(&body).unwrap();
            if st["chunks_done"].as_u64().unwrap_or(0) >= chunks {
                sc.step(&format!(
                    "receiver: {} of {} chunks done, state {}",
                    st["chunks_done"], st["chunks_total"], st["state"]
                ));
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "task {task} never reached {chunks} chunks: {st}"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Scenario 4: the network is cut twice during a rate-limited full pass.
/// A short cut (the source's link down for 3 s, QEMU's `set_link`) is
/// ridden out by TCP; then the receiver guest is killed and booted again
/// (its state dir was in RAM: a new certificate, no journal), the source's
/// pass fails, and a second boot of the source with `ferry.pass=resume`
/// sends only what the target lacks and finishes identical.
#[test]
fn s4_network_cut_and_resume() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s4-cut-resume");
    let (src, tgt) = disks(&sc, &["gpt.img"]);
    let lan = Lan::start();
    let rx = start_receiver(&sc, &lan, &tgt, "QEMU-S4CUT");
    let mut s = start_source(&sc, &lan, "source", &rx, &src, "s4", "ferry.rate=8");
    s.expect("ferry: from the kernel arguments: ferry send", BOOT);
    let total = wait_chunks(&sc, &rx, "s4", 10)["chunks_total"]
        .as_u64()
        .unwrap();
    let link = s.monitor("set_link n0 off");
    sc.note("set_link.txt", &link);
    assert!(!link.contains("rror"), "set_link: {link}");
    sc.step("source link down");
    // What was in flight lands; then nothing arrives while the link is down.
    std::thread::sleep(Duration::from_secs(1));
    let during = status(&rx, "s4")["chunks_done"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let after = status(&rx, "s4")["chunks_done"].as_u64().unwrap();
    assert_eq!(
        during, after,
        "chunks arrived while the source's link was down"
    );
    s.monitor("set_link n0 on");
    sc.step("source link up again");
    let before = status(&rx, "s4")["chunks_done"].as_u64().unwrap();
    let mid = wait_chunks(&sc, &rx, "s4", before + 10)["chunks_done"]
        .as_u64()
        .unwrap();
    assert!(
        mid < total,
        "the pass ended before the second cut: {mid} of {total}"
    );

    // The hard cut: the receiver guest dies and boots again.
    let mut rx = rx;
    rx.vm.kill();
    sc.step("receiver guest killed");
    drop(rx);
    let rx = start_receiver_again(&sc, &lan, &tgt, "QEMU-S4CUT");
    let done = s.expect("ferry: done rc=", PASS);
    assert!(
        !done.trim().ends_with("rc=0"),
        "the cut pass must fail: {done}"
    );
    s.wait_exit(Duration::from_secs(60));
    drop(s);
    sc.step("the cut pass failed and the source powered off");

    let mut s2 = start_source(&sc, &lan, "source-2", &rx, &src, "s4", "ferry.pass=resume");
    let summary = finish_source(&sc, &mut s2, "s4");
    let sent = count_before(&summary, " chunks sent").expect("chunks sent in the summary");
    assert!(
        sent < total,
        "the resume sent {sent} of {total} chunks: {summary}"
    );
    let rep = report(&sc, &rx, "s4");
    assert_report(&rep, "resume", None);
    let mut rx = rx;
    rx.vm.kill();
    assert_used_equal(&[(src[0].clone(), tgt[0].clone())]);
    fsck_partitions(image_entry("gpt.img"), &tgt[0], &sc.dir);
    fsck_lvs(vg_entry("vg0"), &[("gpt.img", tgt[0].as_path())], &sc.dir);
}

/// A second boot of the receiver guest (logs as `receiver-2`).
fn start_receiver_again(sc: &Scenario, lan: &Lan, tgt: &[PathBuf], code: &str) -> ReceiverGuest {
    qemu_tests::migrate::start_receiver_named(sc, lan, "receiver-2", tgt, code)
}

/// Scenario 5: MBR with two primaries (ext4 bootable, ext2) and an
/// extended partition holding two logicals (ext3, swap).
#[test]
fn s5_mbr_with_logical_partitions() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s5-mbr");
    let (src, tgt) = disks(&sc, &["mbr.img"]);
    let want = expected_digests(&src);
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, &tgt, "QEMU-S5MBR");
    let mut s = start_source(&sc, &lan, "source", &rx, &src, "s5", "");
    finish_source(&sc, &mut s, "s5");
    assert_report(&report(&sc, &rx, "s5"), "full", Some(&want));
    rx.vm.kill();
    assert_used_equal(&[(src[0].clone(), tgt[0].clone())]);
    let parts = fsck_partitions(image_entry("mbr.img"), &tgt[0], &sc.dir);
    assert_eq!(
        parts,
        ["mbr.img:1", "mbr.img:2", "mbr.img:5"],
        "fsck'd partitions"
    );
    sc.step(&format!("fsck clean: {parts:?}"));
}

/// Scenario 6: a VG spanning two source disks (a linear LV with one
/// segment on each, a striped LV over both) to two targets.
#[test]
fn s6_vg_spanning_two_disks() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s6-span");
    let (src, tgt) = disks(&sc, &["span1.img", "span2.img"]);
    let want = expected_digests(&src);
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, &tgt, "QEMU-S6SPAN");
    let mut s = start_source(&sc, &lan, "source", &rx, &src, "s6", "");
    finish_source(&sc, &mut s, "s6");
    assert_report(&report(&sc, &rx, "s6"), "full", Some(&want));
    rx.vm.kill();
    assert_used_equal(&[
        (src[0].clone(), tgt[0].clone()),
        (src[1].clone(), tgt[1].clone()),
    ]);
    let lvs = fsck_lvs(
        vg_entry("vgspan"),
        &[
            ("span1.img", tgt[0].as_path()),
            ("span2.img", tgt[1].as_path()),
        ],
        &sc.dir,
    );
    assert_eq!(lvs, ["vgspan/lin", "vgspan/str"], "fsck'd LVs");
    sc.step(&format!("fsck clean: {lvs:?}"));
}

/// Scenario 7: a real Linux disk (scripts/bootdisk.sh: GPT, GRUB's boot.img
/// in sector 0 and core.img in the BIOS boot partition, an ext4 root with
/// the kernel and an initrd whose /init checks the disk, swap, an LVM PV
/// with vgboot/data) boots under SeaBIOS as it is; a source guest told only
/// by a job file with a `[plan]` sends it to a target 1.5 times its size:
/// root grown by 64 MiB, swap and the PV moved, the PV and vgboot/data grown
/// to max. The receiver writes the GPT and grows everything (every post-step
/// ok); the target's GPT is valid, its root and LV are clean, and the target
/// boots from its disk: GRUB finds its kernel on the grown root, which has
/// the planned size, the swap keeps its UUID and vgboot/data activates,
/// checks clean and holds its files, at its new size.
#[test]
fn s7_migrated_disk_boots_after_growth() {
    if !enabled() {
        return;
    }
    require_root();
    const MIB: u64 = 1 << 20;
    let sc = Scenario::new("s7-bootdisk");
    let bd = bootdisk();
    let src = sc.path("source0.img");
    let size = copy_image(&bd.image, &src);
    let tgt = sc.path("target0.img");
    let target_size = size / 2 * 3;
    blank(&tgt, target_size);
    let swap_uuid = bd.var("SWAP_UUID");
    let (root_size, data_size) = (bd.num("ROOT_SIZE"), bd.num("DATA_SIZE"));
    let root_new = root_size + 64 * MIB;
    // What the source must send, worked out on the host from the same plan
    // on the image file.
    let src_name = src.display().to_string();
    let spec = PlanSpec {
        disks: vec![src_name.clone()],
        target_size: [(src_name.clone(), Size(target_size))].into(),
        grow: [
            (format!("{src_name}:2"), Grow::To(root_new)),
            (format!("{src_name}:4"), Grow::Max),
            ("vgboot/data".to_string(), Grow::Max),
        ]
        .into(),
        ..Default::default()
    };
    let (names, want): (Vec<String>, Vec<String>) = plan_digests(&spec)
        .into_iter()
        .map(|(n, d)| (n.replace(&src_name, "/dev/vda"), d))
        .unzip();
    sc.note(
        "expected-digests.txt",
        &names
            .iter()
            .zip(&want)
            .map(|(n, d)| format!("{n} {d}\n"))
            .collect::<String>(),
    );

    // The disk boots as it is (its writes go to a snapshot), while the
    // receiver guest starts.
    let mut before = boot_disk(&sc, "source-disk", &src, true);
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, std::slice::from_ref(&tgt), "QEMU-S7BOOT");
    let up = expect_up(&sc, &mut before);
    assert_eq!(
        up,
        Up {
            root: root_size,
            swap: swap_uuid.to_string(),
            lv: "ok".into(),
            data: data_size,
        },
        "the source disk as built"
    );
    drop(before);

    // Everything the source does comes from its job file.
    let job = format!(
        r#"[receiver]
address = "{RECEIVER_IP}"
fingerprint = "{fp}"
code = "{code}"

[transfer]
task = "s7"

[plan]
disks = ["/dev/vda"]

[plan.target_size]
"/dev/vda" = "{tsize}MiB"

[plan.grow]
"/dev/vda:2" = "{rsize}MiB"
"/dev/vda:4" = "max"
"vgboot/data" = "max"
"#,
        fp = rx.fingerprint,
        code = rx.code,
        tsize = target_size / MIB,
        rsize = root_new / MIB,
    );
    let mut s = start_source_with_job(&sc, &lan, "source", std::slice::from_ref(&src), &job);
    finish_source_guest(&sc, &mut s, "s7");
    drop(s);
    let rep = report(&sc, &rx, "s7");
    assert_report(&rep, "full", Some(&want));
    let sent: Vec<&str> = rep["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(sent, names, "the volumes the plan sends");
    let steps = rep["post_steps"]
        .as_array()
        .expect("post_steps in the report");
    for st in steps {
        assert_eq!(st["status"], "ok", "post-step: {st:#}");
    }
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    sc.note("post-steps.txt", &names.join("\n"));
    for (what, words) in [
        ("the root grown", &["partition 2", "resize2fs"][..]),
        ("the PV grown", &["vgboot", "pvresize"]),
        ("the LV extended", &["vgboot/data", "lvextend"]),
        ("the LV's filesystem grown", &["vgboot/data", "resize2fs"]),
    ] {
        assert!(
            names.iter().any(|n| words.iter().all(|w| n.contains(w))),
            "no post-step for {what} ({words:?}) in {names:#?}"
        );
    }
    sc.step(&format!("report Finished, {} post-steps ok", steps.len()));
    rx.vm.kill();
    assert!(
        same_bytes(&src, &bd.image),
        "the source disk changed during the migration"
    );

    // The target on the host: a valid GPT for its size, the plan's sizes,
    // clean filesystems.
    let out = Command::new("sgdisk").arg("-v").arg(&tgt).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    sc.note("sgdisk-v.txt", &text);
    assert!(
        out.status.success() && text.contains("No problems found"),
        "sgdisk -v {}: {text}",
        tgt.display()
    );
    let inv = serde_json::to_value(
        ferry::inventory::inventory(&ferry::inventory::InventoryConfig {
            paths: vec![tgt.clone()],
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    sc.note(
        "target-inventory.json",
        &serde_json::to_string_pretty(&inv).unwrap(),
    );
    let parts = inv["disks"][0]["partitions"].as_array().unwrap();
    let part = |n: u64| parts.iter().find(|p| p["number"] == n).unwrap();
    assert_eq!(part(1)["start"], MIB, "BIOS boot partition: {:#}", part(1));
    assert_eq!(part(2)["size"], root_new, "root: {:#}", part(2));
    assert_eq!(
        part(2)["content"]["fs_size"],
        root_new,
        "root: {:#}",
        part(2)
    );
    assert_eq!(part(3)["content"]["uuid"], swap_uuid, "swap: {:#}", part(3));
    assert_eq!(
        part(4)["end_lba"],
        inv["disks"][0]["table"]["last_usable_lba"],
        "the PV's partition takes the rest: {:#}",
        part(4)
    );
    let vg = &inv["volume_groups"][0];
    assert_eq!(vg["name"], "vgboot");
    assert_eq!(vg["free_extents"], 0, "vgboot/data takes the VG: {vg:#}");
    let lv_size = vg["lvs"][0]["size"].as_u64().unwrap();
    assert!(lv_size > data_size, "vgboot/data did not grow: {vg:#}");
    assert_eq!(vg["lvs"][0]["content"]["fs_size"], lv_size, "{vg:#}");
    let cut_root = sc.path("fsck-root.img");
    cut(
        &tgt,
        part(2)["start"].as_u64().unwrap(),
        root_new,
        &cut_root,
    );
    fsck(&cut_root, "ext4", "the target's root");
    let cut_data = sc.path("fsck-data.img");
    cut_lv(&tgt, &inv, "vgboot", "data", &cut_data);
    fsck(&cut_data, "ext4", "the target's vgboot/data");
    let _ = std::fs::remove_file(&cut_root);
    let _ = std::fs::remove_file(&cut_data);
    sc.step(&format!(
        "target: GPT valid, root {} MiB and vgboot/data {} MiB clean",
        root_new / MIB,
        lv_size / MIB
    ));

    // The target boots from its disk and finds itself grown.
    let mut after = boot_disk(&sc, "target-disk", &tgt, false);
    let up = expect_up(&sc, &mut after);
    assert_eq!(
        up,
        Up {
            root: root_new,
            swap: swap_uuid.to_string(),
            lv: "ok".into(),
            data: lv_size,
        },
        "the migrated disk booted"
    );
}
