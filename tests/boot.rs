//! Fast tier: `ferry boot` turns the `ferry.*` kernel arguments into the
//! `ferry receive`/`ferry send` command and runs it; bad words are refused
//! with their name; without ferry.auto=1 and no terminal it does not start.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::receiver::spawn_receiver;

fn boot(dir: &Path, cmdline: &str, extra: &[&str]) -> Output {
    let f = dir.join("cmdline");
    std::fs::write(&f, format!("{cmdline}\n")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("boot")
        .arg("--cmdline")
        .arg(&f)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn print_shows_the_command_with_the_code_hidden() {
    let t = tempfile::tempdir().unwrap();
    let out = boot(
        t.path(),
        "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 ferry.role=receiver ferry.target=/dev/vdb ferry.code=ABCD-1234 ferry.auto=1",
        &["--print"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ferry receive --target /dev/vdb --code ****\n"
    );
}

#[test]
fn bad_words_exit_2_naming_them() {
    let t = tempfile::tempdir().unwrap();
    for (cmdline, want) in [
        (
            "ferry.role=source ferry.recevier=1.2.3.4",
            "unknown kernel argument ferry.recevier",
        ),
        ("ferry.role=source ferry.rate=2000", "ferry.rate=2000"),
        ("ferry.role=receiver", "needs ferry.target="),
        ("quiet", "no ferry.role="),
    ] {
        let out = boot(t.path(), cmdline, &["--print"]);
        assert_eq!(out.status.code(), Some(2), "{cmdline}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{cmdline}: {err}");
    }
}

#[test]
fn without_auto_and_no_terminal_nothing_starts() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("disk.img");
    std::fs::write(&img, vec![7u8; 1 << 20]).unwrap();
    let out = boot(
        t.path(),
        &format!(
            "ferry.role=source ferry.receiver=127.0.0.1:9 ferry.code=x ferry.volumes={}",
            img.display()
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not started: ferry.auto=1 is not set"));
}

#[test]
fn an_unattended_source_sends_what_the_kernel_arguments_say() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("disk.img");
    let mut data = vec![0u8; 3 << 20];
    blake3::Hasher::new()
        .update(b"boot")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&img, &data).unwrap();
    let target = t.path().join("target.img");
    let rx = spawn_receiver(t.path(), &[&target], "BOOT-TEST").unwrap();
    let out = boot(
        t.path(),
        &format!(
            "console=ttyS0 ferry.role=source ferry.receiver=127.0.0.1:{} ferry.fingerprint={} \
             ferry.code=boot-test ferry.volumes={} ferry.task=boot1 ferry.rate=0 ferry.auto=1 ferry.post=poweroff",
            rx.port,
            rx.fingerprint,
            img.display()
        ),
        &[
            "--run-dir",
            &t.path().join("run").display().to_string(),
            "--state-dir",
            &t.path().join("src-state").display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ferry: from the kernel arguments: ferry send ")
            && stdout.contains(&format!(" --receiver 127.0.0.1:{} ", rx.port)),
        "{stdout}"
    );
    assert!(
        !stdout.contains("boot-test"),
        "the code is not shown: {stdout}"
    );
    drop(rx);
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(t.path().join("state/reports/boot1_report.json").exists());
    assert!(
        t.path()
            .join("src-state/reports/boot1_source_report.json")
            .exists()
    );
}
