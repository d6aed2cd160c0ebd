//! The QEMU tier: receiver and source guests boot ferry's image under TCG
//! and migrate fixture disks; the host checks markers in order, the used
//! bytes of every target, fsck, and the receiver's report over its API.
//! Run with `scripts/test.sh qemu` (root; builds the image and fixtures
//! when missing). `FERRY_QEMU=0` skips these tests.

use std::path::PathBuf;
use std::time::Duration;

use qemu_tests::check::{assert_used_equal, expected_digests, fsck_lvs, fsck_partitions};
use qemu_tests::disks::{blank, copy_fixture, image_entry, vg_entry};
use qemu_tests::migrate::{ReceiverGuest, finish_source, start_receiver, start_source};
use qemu_tests::net::Lan;
use qemu_tests::scenario::Scenario;
use qemu_tests::{enabled, require_root};
use serde_json::Value;

/// The receiver's report of `task` once its pass ended, kept as a note.
fn report(sc: &Scenario, rx: &ReceiverGuest, task: &str) -> Value {
    let rep = rx
        .api
        .get_json(&format!("/v1/tasks/{task}/report"), Duration::from_secs(120));
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
        rep["pass"].as_str().is_some_and(|p| p.eq_ignore_ascii_case(pass)),
        "pass {pass}: {rep:#}"
    );
    let vols = rep["volumes"].as_array().expect("volumes in the report");
    if let Some(want) = digests {
        assert_eq!(vols.len(), want.len(), "report: {rep:#}");
        for (v, d) in vols.iter().zip(want) {
            assert_eq!(v["digest"].as_str(), Some(d.as_str()), "volume {}: {rep:#}", v["name"]);
        }
    }
    assert!(rep["errors"].as_array().is_none_or(|e| e.is_empty()), "report: {rep:#}");
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
    assert!(!parts.is_empty() && lvs.len() == 2, "checked {parts:?} and {lvs:?}");
    sc.step(&format!("fsck clean: {parts:?} {lvs:?}"));
}
