//! Fast tier: `ferry netcheck` against an in-process receiver on 127.0.0.1
//! (no root): UDP probes echoed on the data port's UDP side, bandwidth over
//! the TLS data path with the bytes counted by the receiver, disk and
//! compression figures for a small image file, refusals, and `--json`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::inproc::{CODE, Running, start};
use ferry::proto::tls::fingerprint_hex;
use ferry::source::netcheck::{Bottleneck, NetReport, NetcheckConfig, Stage, netcheck};
use serde_json::Value;

/// A 6 MiB disk of unknown content (all used): 2 MiB noise, a zero MiB,
/// 3 MiB of text.
fn disk_image(dir: &Path) -> PathBuf {
    let mut d = vec![0u8; 2 << 20];
    blake3::Hasher::new()
        .update(b"netcheck")
        .finalize_xof()
        .fill(&mut d);
    d.extend(vec![0u8; 1 << 20]);
    d.extend(b"ferry moves used blocks ".repeat((3 << 20) / 24));
    d.resize(6 << 20, 7);
    let p = dir.join("disk.img");
    std::fs::write(&p, d).unwrap();
    p
}

fn config(r: &Running, volumes: &[&Path]) -> NetcheckConfig {
    let mut c = NetcheckConfig::new(
        &r.addr.to_string(),
        r.rx.fingerprint,
        CODE,
        volumes.iter().map(|p| p.display().to_string()).collect(),
    );
    c.probes = 20;
    c.probe_interval = Duration::from_millis(5);
    c.bandwidth_secs = 1.0;
    c.threads = 2;
    c
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("state/events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn netcheck_measures_the_link_the_disk_and_compression() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let r = start(t.path(), vec![t.path().join("t0.img")], true);
    let mut stages = Vec::new();
    let rep = netcheck(&config(&r, &[&disk]), |s| stages.push(s)).unwrap();

    assert_eq!(rep.receiver, r.addr.to_string());
    assert_eq!(rep.receiver_name, "test-receiver");
    assert_eq!((rep.probes_sent, rep.probes_received), (20, 20), "{rep:?}");
    assert_eq!(rep.loss_percent, 0.0);
    let (min, avg, max) = (
        rep.latency_min_ms.unwrap(),
        rep.latency_avg_ms.unwrap(),
        rep.latency_max_ms.unwrap(),
    );
    assert!(
        0.0 < min && min <= avg && avg <= max && max < 1000.0,
        "{rep:?}"
    );
    assert!(rep.jitter_ms.unwrap() >= 0.0);
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);

    assert!(rep.bandwidth_bytes >= 1 << 20, "{rep:?}");
    assert_eq!(rep.bandwidth_bytes % (1 << 20), 0, "whole 1 MiB frames");
    assert!(rep.bandwidth_secs >= 1.0, "{rep:?}");
    assert!(rep.bandwidth_mbit_s > 0.0);
    // The receiver counted exactly the bytes sent (netcheck checks its
    // Finished answer) and logged the run.
    let ev = events(t.path());
    let nc: Vec<&Value> = ev.iter().filter(|e| e["event"] == "netcheck").collect();
    assert_eq!(nc.len(), 1, "{ev:?}");
    assert_eq!(nc[0]["task"], "netcheck");
    let frames = rep.bandwidth_bytes >> 20;
    let detail = nc[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "{} bytes in {frames} frames over ",
            rep.bandwidth_bytes
        )),
        "{detail}"
    );
    // Nothing was written and no task state made.
    assert!(!t.path().join("state/tasks/netcheck.json").exists());
    assert_eq!(std::fs::metadata(t.path().join("t0.img")).unwrap().len(), 0);

    assert_eq!(rep.volumes, vec![disk.display().to_string()]);
    assert_eq!(rep.used_bytes, Some(6 << 20), "an unknown disk is all used");
    assert_eq!(
        rep.sample_bytes,
        Some(6 << 20),
        "small enough to read whole"
    );
    assert!(rep.disk_read_mb_s.unwrap() > 0.0);
    assert_eq!(rep.compression_threads, Some(2));
    assert!(rep.compression_mb_s.unwrap() > 0.0);
    // Noise stays, zeros and text shrink: 6 MiB in a little over 2 MiB.
    let ratio = rep.compression_ratio.unwrap();
    assert!(2.0 < ratio && ratio < 3.0, "ratio {ratio}");
    let wire = rep.estimated_wire_bytes.unwrap();
    assert!((2 << 20) < wire && wire < (3 << 20), "{wire}");
    assert!(rep.eta_seconds.unwrap() > 0.0);
    assert!(rep.bottleneck.is_some());

    // Progress came in order and ended with Done.
    let kinds: Vec<&str> = stages
        .iter()
        .map(|s| match s {
            Stage::OpeningVolumes => "open",
            Stage::Connecting { .. } => "connect",
            Stage::Probing { .. } => "probe",
            Stage::Bandwidth { .. } => "bandwidth",
            Stage::DiskRead { .. } => "disk",
            Stage::Compression { .. } => "compress",
            Stage::Done => "done",
        })
        .collect();
    let mut order = kinds.clone();
    order.dedup();
    assert_eq!(
        order,
        [
            "open",
            "connect",
            "probe",
            "bandwidth",
            "disk",
            "compress",
            "done"
        ]
    );
    assert!(stages.contains(&Stage::Probing {
        sent: 20,
        received: 20,
        total: 20
    }));
}

#[test]
fn a_rate_limit_below_the_link_bounds_the_eta() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let r = start(t.path(), vec![t.path().join("t0.img")], true);
    let mut c = config(&r, &[&disk]);
    c.rate_mbit = 1;
    let rep = netcheck(&c, |_| {}).unwrap();
    assert_eq!(rep.bottleneck, Some(Bottleneck::RateLimit), "{rep:?}");
    assert_eq!(rep.rate_limit_mbit_s, 1);
    // 1 Mbit/s = 125 kB/s of frames.
    let expect = rep.estimated_wire_bytes.unwrap() as f64 / 125_000.0;
    let eta = rep.eta_seconds.unwrap();
    assert!((eta - expect).abs() < 0.01 * expect, "{eta} vs {expect}");
}

#[test]
fn without_volumes_only_the_network_is_measured() {
    let t = tempfile::tempdir().unwrap();
    let r = start(t.path(), vec![t.path().join("t0.img")], true);
    let rep = netcheck(&config(&r, &[]), |_| {}).unwrap();
    assert_eq!(rep.probes_received, 20);
    assert!(rep.bandwidth_mbit_s > 0.0);
    assert_eq!(rep.used_bytes, None);
    assert_eq!(rep.disk_read_mb_s, None);
    assert_eq!(rep.compression_ratio, None);
    assert_eq!(rep.eta_seconds, None);
    assert_eq!(rep.bottleneck, None);
}

#[test]
fn unanswered_probes_are_full_loss_and_a_warning_not_a_failure() {
    let t = tempfile::tempdir().unwrap();
    let r = start(t.path(), vec![t.path().join("t0.img")], false);
    let rep: NetReport = netcheck(&config(&r, &[]), |_| {}).unwrap();
    assert_eq!((rep.probes_sent, rep.probes_received), (20, 0));
    assert_eq!(rep.loss_percent, 100.0);
    assert_eq!(rep.latency_avg_ms, None);
    assert_eq!(rep.jitter_ms, None);
    let port = r.addr.port();
    assert!(
        rep.warnings.iter().any(
            |w| w.starts_with(&format!("UDP probes unanswered: is {port}/udp blocked?"))
                // Loopback answers a closed UDP port with ICMP.
                && w.contains("port unreachable")
        ),
        "{:?}",
        rep.warnings
    );
    assert!(rep.bandwidth_mbit_s > 0.0, "TCP still measured");
}

#[test]
fn a_wrong_code_or_fingerprint_fails_clearly() {
    let t = tempfile::tempdir().unwrap();
    let r = start(t.path(), vec![t.path().join("t0.img")], true);
    let mut bad = config(&r, &[]);
    bad.code = "WRONG-ONE".into();
    let e = format!("{:#}", netcheck(&bad, |_| {}).unwrap_err());
    assert!(
        e.contains("wrong pairing code") && e.contains("BadPairingCode"),
        "{e}"
    );
    let mut bad = config(&r, &[]);
    bad.fingerprint[0] ^= 1;
    let e = format!("{:#}", netcheck(&bad, |_| {}).unwrap_err());
    assert!(
        e.contains("TLS with the receiver") && e.contains("does not match the pinned"),
        "{e}"
    );
    // Nothing listening: a connection error naming the address.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    let mut bad = config(&r, &[]);
    bad.receiver = gone.to_string();
    let e = format!("{:#}", netcheck(&bad, |_| {}).unwrap_err());
    assert!(
        e.contains(&format!("connecting to the receiver at {gone}")),
        "{e}"
    );
    let ev = events(t.path());
    assert!(
        ev.iter().any(|e| e["event"] == "session-refused"
            && e["detail"].as_str().unwrap().contains("wrong pairing code")),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e["event"] == "netcheck"), "{ev:?}");
}

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_prints_json_and_a_table() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let r = start(t.path(), vec![t.path().join("t0.img")], true);
    let (addr, fp) = (r.addr.to_string(), fingerprint_hex(&r.rx.fingerprint));
    let disk = disk.display().to_string();
    let base = [
        "netcheck",
        "--receiver",
        &addr,
        "--fingerprint",
        &fp,
        "--code",
        CODE,
        "--probes",
        "10",
        "--seconds",
        "0.5",
        "--threads",
        "1",
    ];
    let mut args = base.to_vec();
    args.extend(["--json", &disk]);
    let out = ferry(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in [
        "receiver",
        "receiver_name",
        "probes_sent",
        "probes_received",
        "loss_percent",
        "latency_min_ms",
        "latency_avg_ms",
        "latency_max_ms",
        "jitter_ms",
        "bandwidth_mbit_s",
        "bandwidth_bytes",
        "bandwidth_secs",
        "volumes",
        "used_bytes",
        "sample_bytes",
        "disk_read_mb_s",
        "compression_threads",
        "compression_mb_s",
        "compression_ratio",
        "estimated_wire_bytes",
        "rate_limit_mbit_s",
        "eta_seconds",
        "bottleneck",
        "warnings",
    ] {
        assert!(j.get(f).is_some(), "no {f} in {j}");
    }
    assert_eq!(j.as_object().unwrap().len(), 24, "documented fields: {j}");
    assert_eq!(j["probes_sent"], 10);
    assert_eq!(j["loss_percent"], 0.0);
    assert_eq!(j["used_bytes"], 6 << 20);
    assert_eq!(j["compression_threads"], 1);
    assert!(j["eta_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        ["network", "disk", "compression"].contains(&j["bottleneck"].as_str().unwrap()),
        "{j}"
    );

    let out = ferry(&base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("receiver     {addr} (test-receiver)\n")),
        "{text}"
    );
    assert!(
        text.contains("\npacket loss  0.0% (10 of 10 UDP probes answered)\n"),
        "{text}"
    );
    assert!(!text.contains("ETA"), "no volumes, no ETA: {text}");

    let mut args = base.to_vec();
    args[6] = "WRONG-ONE";
    let out = ferry(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ferry: error: the receiver refused: wrong pairing code (BadPairingCode)"),
        "{err}"
    );
}
