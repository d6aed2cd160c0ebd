//! Fast tier: resume after a killed `ferry send` and a restarted `ferry
//! receive`, with real processes on 127.0.0.1 (no root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::{ReceiverProc, spawn_receiver};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send_cmd(port: u16, fp: &str, src: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "send",
        "--receiver",
        &format!("127.0.0.1:{port}"),
        "--fingerprint",
        fp,
        "--code",
        "rsme-test",
    ])
    .args([
        "--task",
        "r1",
        "--checkpoint-mib",
        "4",
        "--state-dir",
        "none",
    ])
    .args(extra)
    .arg(src);
    c
}

fn durable_seq(dir: &Path) -> u64 {
    std::fs::read(dir.join("state/tasks/r1.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|j| j["durable_seq"].as_u64())
        .unwrap_or(0)
}

/// Wait until the receiver's journal shows a checkpoint, then kill the sender.
fn kill_after_checkpoint(dir: &Path, mut sender: Proc) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    while durable_seq(dir) == 0 {
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        assert!(
            sender.0.try_wait().unwrap().is_none(),
            "the sender finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(sender);
    durable_seq(dir)
}

/// A pass of a 48 MiB source (noise from `seed`) to `dir/target.img`, the
/// sender killed after the receiver's first checkpoint (80 Mbit/s: the whole
/// would take ~5 s). Returns the source's bytes and path, the target, the
/// durable chunk the journal recorded, and the still running receiver.
fn partial_pass(dir: &Path, seed: &[u8]) -> (Vec<u8>, PathBuf, PathBuf, u64, ReceiverProc) {
    let src = dir.join("src.img");
    let mut data = vec![0u8; 48 << 20];
    blake3::Hasher::new()
        .update(seed)
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let target = dir.join("target.img");
    let rx = spawn_receiver(dir, &[&target], "RSME-TEST").unwrap();
    let sender = Proc(
        send_cmd(rx.port, &rx.fingerprint, &src, &["--rate", "80"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first = kill_after_checkpoint(dir, sender);
    assert!(first > 0);
    (data, src, target, first, rx)
}

#[test]
fn resume_after_killed_sender_and_restarted_receiver() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    // 1. Kill the sender mid-transfer.
    let (data, src, target, first, rx) = partial_pass(dir, b"resume");
    let fp = rx.fingerprint.clone();

    // 2. Kill the receiver too, restart it on the same state dir: same identity.
    drop(rx);
    let rx = spawn_receiver(dir, &[&target], "RSME-TEST").unwrap();
    let port = rx.port;
    assert_eq!(rx.fingerprint, fp, "the identity survives a restart");

    // 3. Resume: only what is past the checkpoint travels.
    let out = send_cmd(port, &fp, &src, &["--pass", "resume", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resumed = r["resumed_at"].as_u64().unwrap();
    assert!(
        resumed >= first,
        "resumed at {resumed}, journal said {first}"
    );
    assert_eq!(r["chunks"].as_u64().unwrap(), 48);
    assert_eq!(r["chunks_sent"].as_u64().unwrap(), 48 - resumed);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "target equals source"
    );
}

#[test]
fn resume_without_a_journal_hashes_the_target() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();

    // Part of a pass lands, then the receiver loses its journal.
    let (data, src, target, first, rx) = partial_pass(dir, b"no journal");
    drop(rx);
    std::fs::remove_file(dir.join("state/tasks/r1.json")).unwrap();

    // The resume asks the target what it holds, chunk by chunk.
    let rx = spawn_receiver(dir, &[&target], "RSME-TEST").unwrap();
    let out = send_cmd(
        rx.port,
        &rx.fingerprint,
        &src,
        &["--pass", "resume", "--json"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no journal of this task"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["resumed_at"].as_u64(), Some(0));
    assert_eq!(
        r["compared"].as_u64(),
        Some(48),
        "every chunk's hash offered"
    );
    let sent = r["chunks_sent"].as_u64().unwrap();
    assert!(
        sent <= 48 - first,
        "sent {sent}, but {first} chunks were durable on the target"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "target equals source"
    );
    let ev = std::fs::read_to_string(dir.join("state/events.jsonl")).unwrap();
    assert!(ev.contains("hashing the target"), "{ev}");
}

/// A source whose link dies without a FIN (here: a stopped process) leaves
/// its session waiting for the idle timeout. A new session of the same task
/// takes the targets over at once and resumes; another task is still
/// refused while the silent session holds them.
#[test]
fn a_silent_session_is_taken_over_by_a_new_session_of_its_task() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src.img");
    let mut data = vec![0u8; 48 << 20];
    blake3::Hasher::new()
        .update(b"takeover")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let target = dir.join("target.img");
    let rx = spawn_receiver(dir, &[&target], "RSME-TEST").unwrap();
    let sender = Proc(
        send_cmd(rx.port, &rx.fingerprint, &src, &["--rate", "80"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while durable_seq(dir) == 0 {
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-STOP", &sender.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // Another task: refused, naming the task that holds the targets.
    let other = Command::new(BIN)
        .args(["send", "--receiver", &format!("127.0.0.1:{}", rx.port)])
        .args(["--fingerprint", &rx.fingerprint, "--code", "rsme-test"])
        .args(["--task", "r2", "--state-dir", "none"])
        .arg(&src)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(err.contains("another session (task r1)"), "{err}");
    // The same task: takes over and resumes from the checkpoint.
    let start = Instant::now();
    let out = send_cmd(
        rx.port,
        &rx.fingerprint,
        &src,
        &["--pass", "resume", "--json"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\nreceiver:\n{}",
        String::from_utf8_lossy(&out.stderr),
        rx.log()
    );
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "{:?}",
        start.elapsed()
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["resumed_at"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "target equals source"
    );
    let events = std::fs::read_to_string(dir.join("state/events.jsonl")).unwrap();
    assert!(events.contains("ending the last one"), "{events}");
    drop(sender);
}
