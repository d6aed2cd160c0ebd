//! The TUI in the boot image: a source guest booted without `ferry.auto=1`
//! shows the TUI on its serial console (ASCII, 80x24: the console reports
//! no size), with the receiver's address, fingerprint and code from the
//! kernel arguments. Keys typed on the serial port plan mbr.img onto a
//! larger target (logical 5 grown to max), check the network and start;
//! the receiver guest writes the target and applies the plan (the MBR and
//! its EBR chain, resize2fs on loop devices in the image). The host then
//! checks the target: `sfdisk -V`, ferry's inventory (logical 5 grown and
//! its filesystem with it, swap kept), and `e2fsck -fn` of the grown
//! filesystem.

use std::path::Path;
use std::time::Duration;

use qemu_tests::check::{cut, fsck};
use qemu_tests::disks::{blank, copy_fixture};
use qemu_tests::migrate::{BOOT, BOOT_MARKERS, PASS, start_receiver};
use qemu_tests::net::{Lan, MTU, PREFIX, RECEIVER_IP, SOURCE_IP};
use qemu_tests::scenario::Scenario;
use qemu_tests::{enabled, require_root};
use serde_json::Value;

const MIB: u64 = 1 << 20;
/// Enter, and Ctrl-U (clears an input line).
const ENTER: &str = "\r";
const CLEAR: &str = "\x15";

fn inventory(p: &Path) -> Value {
    let inv = ferry::inventory::inventory(&ferry::inventory::InventoryConfig {
        paths: vec![p.to_path_buf()],
        ..Default::default()
    })
    .unwrap();
    serde_json::to_value(&inv).unwrap()
}

#[test]
fn s8_tui_on_the_serial_console_migrates_and_grows() {
    if !enabled() {
        return;
    }
    require_root();
    let sc = Scenario::new("s8-tui");
    let src = sc.path("source0.img");
    let size = copy_fixture("mbr.img", &src);
    let tgt = sc.path("target0.img");
    let target_size = size + 128 * MIB;
    blank(&tgt, target_size);
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, std::slice::from_ref(&tgt), "QEMU-S8TUI");
    let args = format!(
        "ferry.role=source ferry.ip={SOURCE_IP}/{PREFIX} ferry.mtu={MTU} \
         ferry.receiver={RECEIVER_IP} ferry.fingerprint={} ferry.code={} ferry.task=s8",
        rx.fingerprint, rx.code
    );
    let mut s = sc
        .vm("source")
        .kernel(&args)
        .mac(2)
        .nic(lan.nic())
        .disk(&src)
        .keyboard()
        .spawn();
    sc.step("source guest started (no ferry.auto)");
    for m in BOOT_MARKERS {
        s.expect(m, BOOT);
    }
    // 1. Disks: the tree, drawn whole on the serial console.
    s.expect("ferry: from the kernel arguments: ferry send", BOOT);
    s.expect_screen("1.Disks", BOOT);
    s.expect_screen("part 6", BOOT);
    sc.step("the TUI shows the disk tree");
    // 2. Select and grow: the target's size, then logical 5 to max.
    s.keys(ENTER);
    s.expect_screen("Select and grow", BOOT);
    s.keys("t");
    s.expect_screen("target disk size for", BOOT);
    s.keys(&format!("{CLEAR}{target_size}{ENTER}"));
    s.keys("jj");
    s.keys("g");
    s.expect_screen("grow /dev/vda:5 to", BOOT);
    s.keys(&format!("{CLEAR}max{ENTER}"));
    s.expect_screen("/dev/vda:5: grow set to max", BOOT);
    sc.step("planned: logical 5 grown to max");
    // 3. Receiver: filled in from the kernel arguments.
    s.keys(ENTER);
    s.expect_screen("Compare with the fingerprint", BOOT);
    // 4. Preflight: the netcheck runs when the screen opens.
    s.keys(ENTER);
    s.expect_screen("latency    min", PASS);
    sc.step("preflight measured");
    // 5. Start, after the confirmation; 6. the report.
    s.keys(ENTER);
    s.expect_screen("OVERWRITTEN", BOOT);
    s.keys("y");
    s.expect_screen("FINISHED", PASS);
    sc.step("the TUI's report: FINISHED");
    let rep = rx
        .api
        .get_json("/v1/tasks/s8/report", Duration::from_secs(120));
    sc.note(
        "s8-report.json",
        &serde_json::to_string_pretty(&rep).unwrap(),
    );
    assert_eq!(rep["state"], "Finished", "{rep:#}");
    let steps = rep["post_steps"].as_array().expect("post_steps");
    assert!(steps.iter().all(|s| s["status"] == "ok"), "{steps:#?}");
    assert!(
        steps
            .iter()
            .any(|s| s["step"].as_str().unwrap().contains("resize2fs")),
        "{steps:#?}"
    );
    sc.step("the receiver applied the plan in the guest");
    s.kill();
    rx.vm.kill();

    // The target on the host.
    let out = std::process::Command::new("sfdisk")
        .arg("-V")
        .arg(&tgt)
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.contains("No errors detected"), "{v}");
    let inv = inventory(&tgt);
    let src_inv = inventory(&src);
    assert!(
        inv["errors"].as_array().unwrap().is_empty(),
        "{}",
        inv["errors"]
    );
    let part = |inv: &Value, n: u64| -> Value {
        inv["disks"][0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["number"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no partition {n}"))
    };
    let l5 = part(&inv, 5);
    let l6 = part(&inv, 6);
    assert!(l5["size"].as_u64().unwrap() > part(&src_inv, 5)["size"].as_u64().unwrap());
    assert_eq!(l5["content"]["fs_size"], l5["size"], "{l5}");
    assert_eq!(
        l6["start"].as_u64().unwrap() + l6["size"].as_u64().unwrap(),
        target_size,
        "{l6}"
    );
    assert_eq!(l6["content"]["uuid"], part(&src_inv, 6)["content"]["uuid"]);
    let f = sc.path("l5.ext");
    cut(
        &tgt,
        l5["start"].as_u64().unwrap(),
        l5["size"].as_u64().unwrap(),
        &f,
    );
    assert!(fsck(&f, "ext3", "target logical 5"));
    sc.step("target: sfdisk -V clean, logical 5 grown with its filesystem, e2fsck clean");
}
