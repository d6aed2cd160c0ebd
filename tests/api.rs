//! Fast tier: the receiver's control API on a real `ferry receive` process,
//! over HTTPS with the pinned certificate: status, a task's progress while a
//! real `ferry send` runs, stop/start and a live rate-limit change reaching
//! the source, the report, the CSV lists, events, metrics, and refusals.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::{ReceiverProc, spawn_receiver};
use serde_json::Value;

const CODE: &str = "APIT-TEST";

fn call(
    rx: &ReceiverProc,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let fp = ferry::proto::tls::parse_fingerprint(&rx.fingerprint).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ferry::receiver::api::request(
        rx.api, fp, token, method, path, body,
    ))
    .unwrap()
}

fn get_json(rx: &ReceiverProc, path: &str) -> Value {
    let (status, body) = call(rx, &rx.token, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn source(dir: &Path, mib: usize) -> std::path::PathBuf {
    let src = dir.join("src.img");
    let mut data = vec![0u8; mib << 20];
    blake3::Hasher::new()
        .update(b"api")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    src
}

fn sender(rx: &ReceiverProc, src: &Path, task: &str, rate: &str) -> std::process::Child {
    rx.sender(CODE)
        .args(["--task", task, "--rate", rate, "--checkpoint-mib", "2"])
        .arg("--state-dir")
        .arg(src.with_file_name("src-state"))
        .arg(src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Poll the task until `pred` holds (or fail after `secs`).
fn wait_task(rx: &ReceiverProc, task: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, body) = call(rx, &rx.token, "GET", &format!("/v1/tasks/{task}"), None);
        if status == 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "task {task} never got there: {v}"
            );
        } else {
            assert!(Instant::now() < deadline, "task {task}: {status} {body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_progress_stop_start_rate_and_reports() {
    let t = tempfile::tempdir().unwrap();
    let src = source(t.path(), 24);
    let target = t.path().join("target.img");
    let rx = spawn_receiver(t.path(), &[&target], CODE).unwrap();

    let st = get_json(&rx, "/v1/status");
    assert_eq!(st["fingerprint"], rx.fingerprint.as_str());
    assert_eq!(st["targets"][0]["path"], target.display().to_string());
    assert_eq!(st["data"], format!("127.0.0.1:{}", rx.port));
    // The pairing code itself is accepted as the bearer too.
    assert_eq!(call(&rx, "apit-test", "GET", "/v1/status", None).0, 200);

    // 8 Mbit/s: the 24 MiB would take ~25 s.
    let mut child = sender(&rx, &src, "a1", "8");
    let v = wait_task(&rx, "a1", 30, |v| v["bytes_done"].as_u64() > Some(0));
    assert_eq!(v["state"], "syncing");
    assert_eq!(v["bytes_total"].as_u64(), Some(24 << 20));
    assert_eq!(v["chunks_total"].as_u64(), Some(24));

    // Stop: the source holds its data; progress stands still once the chunk
    // it was already pacing out (1 MiB at 8 Mbit/s: ~1 s) has landed.
    let (s, body) = call(&rx, &rx.token, "POST", "/v1/tasks/a1/stop", None);
    assert_eq!(s, 200, "{body}");
    let v = wait_task(&rx, "a1", 10, |v| v["state"] == "stopped");
    assert_eq!(v["paused"], true);
    std::thread::sleep(Duration::from_millis(3000));
    let before = get_json(&rx, "/v1/tasks/a1")["chunks_done"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let after = get_json(&rx, "/v1/tasks/a1")["chunks_done"]
        .as_u64()
        .unwrap();
    assert_eq!(before, after, "no chunk arrives while the task is stopped");
    assert!(after < 24);

    // Lift the limit and start again: the rest arrives at full speed.
    let (s, body) = call(
        &rx,
        &rx.token,
        "PUT",
        "/v1/tasks/a1/rate-limit",
        Some(r#"{"mbit": 0}"#),
    );
    assert_eq!(s, 200, "{body}");
    let (s, _) = call(&rx, &rx.token, "POST", "/v1/tasks/a1/start", None);
    assert_eq!(s, 200);
    let started = Instant::now();
    let out = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(_st) = child.try_wait().unwrap() {
                break child.wait_with_output().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the unlimited rest did not finish in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("the receiver paused the task"), "{err}");
    assert!(err.contains("the receiver started the task again"), "{err}");
    assert!(
        err.contains("the receiver set the rate limit: no limit"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&src).unwrap()
    );

    let v = wait_task(&rx, "a1", 10, |v| v["state"] == "finished");
    assert_eq!(v["bytes_done"], v["bytes_total"]);
    assert_eq!(v["rate_limit_mbit"].as_u64(), Some(0));

    // Report, lists, events, metrics.
    let rep = get_json(&rx, "/v1/tasks/a1/report");
    assert_eq!(rep["state"], "Finished");
    assert_eq!(rep["bytes_written"].as_u64(), Some(24 << 20));
    let (s, total) = call(&rx, &rx.token, "GET", "/v1/tasks/a1/total_list.csv", None);
    assert_eq!(s, 200);
    assert_eq!(total.lines().count(), 25, "header and 24 chunks");
    let (s, errors) = call(&rx, &rx.token, "GET", "/v1/tasks/a1/error_list.csv", None);
    assert_eq!((s, errors.lines().count()), (200, 1), "{errors}");
    let (s, ev) = call(&rx, &rx.token, "GET", "/v1/events?task=a1", None);
    assert_eq!(s, 200);
    let kinds: Vec<String> = ev
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for k in [
        "add-task",
        "session-start",
        "task-start",
        "task-stop",
        "task-rate",
        "task-sync",
        "api-control",
        "result",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let (s, m) = call(&rx, &rx.token, "GET", "/metrics", None);
    assert_eq!(s, 200);
    assert!(
        m.contains("ferry_task_state{task=\"a1\",state=\"finished\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "ferry_task_bytes_done{{task=\"a1\"}} {}",
            24 << 20
        )),
        "{m}"
    );

    // A restarted receiver still knows the task.
    drop(rx);
    let rx = spawn_receiver(t.path(), &[&target], CODE).unwrap();
    assert_eq!(get_json(&rx, "/v1/tasks/a1")["state"], "finished");
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target.img");
    let rx = spawn_receiver(t.path(), &[&target], CODE).unwrap();

    let (s, body) = call(&rx, &rx.token, "GET", "/v1/tasks/nope", None);
    assert_eq!(s, 404);
    assert!(body.contains("no task \\\"nope\\\""), "{body}");
    let (s, _) = call(&rx, &rx.token, "POST", "/v1/tasks/nope/stop", None);
    assert_eq!(s, 404);
    let (s, body) = call(&rx, &rx.token, "GET", "/v1/tasks/nope/report", None);
    assert_eq!(s, 404, "{body}");
    let (s, _) = call(&rx, &rx.token, "GET", "/v1/nothing", None);
    assert_eq!(s, 404);

    // The same through `ferry api`, the client for consoles without curl.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["api", "--receiver", &rx.api.to_string()])
            .args(["--fingerprint", &rx.fingerprint, "--code", CODE])
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["/v1/status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["fingerprint"], rx.fingerprint.as_str());
    let out = cli(&["--method", "POST", "/v1/tasks/nope/stop"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 404") && err.contains("no task"), "{err}");

    // A task to change: a short finished pass.
    let src = source(t.path(), 2);
    let out = sender(&rx, &src, "b1", "0").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (s, body) = call(
        &rx,
        &rx.token,
        "PUT",
        "/v1/tasks/b1/rate-limit",
        Some(r#"{"mbit": 1001}"#),
    );
    assert_eq!(s, 400);
    assert!(body.contains("out of range"), "{body}");
    let (s, body) = call(
        &rx,
        &rx.token,
        "PUT",
        "/v1/tasks/b1/rate-limit",
        Some(r#"{"mbps": 5}"#),
    );
    assert_eq!(s, 400, "{body}");
    let (s, body) = call(
        &rx,
        &rx.token,
        "PUT",
        "/v1/tasks/b1/rate-limit",
        Some(r#"{"mbit": null}"#),
    );
    assert_eq!(s, 200, "{body}");

    // No token, then wrong tokens until the address is locked out.
    let (s, _) = call(&rx, "", "GET", "/v1/status", None);
    assert_eq!(s, 401);
    for _ in 0..5 {
        let (s, _) = call(&rx, "WRONG-CODE", "GET", "/v1/status", None);
        assert_eq!(s, 401);
    }
    let (s, body) = call(&rx, &rx.token, "GET", "/v1/status", None);
    assert_eq!(s, 429, "{body}");
    let ev = std::fs::read_to_string(t.path().join("state/events.jsonl")).unwrap();
    assert!(ev.contains("api-refused"), "{ev}");
}
