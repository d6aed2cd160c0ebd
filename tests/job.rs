//! Fast tier: `ferry send --job` and `--print-job` as a user runs them:
//! precedence (flag > job file > default), bad job files refused with exit
//! status 2 and a message naming the key or window, and a real send driven
//! by a job file to a `ferry receive` on 127.0.0.1 (no root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::receiver::spawn_receiver;

const BIN: &str = env!("CARGO_BIN_EXE_ferry");
const FP: &str = "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

fn ferry(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `ferry send --print-job ARGS`: exit 0, stdout parsed as TOML.
fn print_job(args: &[&str]) -> toml::Table {
    let mut all = vec!["send", "--print-job"];
    all.extend_from_slice(args);
    let out = ferry(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("--print-job printed bad TOML: {e}\n{text}"))
}

/// `ferry send ARGS` refused as bad input: exit 2, one error line, no
/// panic. Returns stderr.
fn refused(args: &[&str]) -> String {
    let out = ferry(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: exit status; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn template(dir: &Path) -> PathBuf {
    write(
        dir,
        "web01.toml",
        &format!(
            r#"# A template: the pairing code comes on the command line.
[receiver]
address = "10.0.0.5:8703"
fingerprint = "{FP}"

[transfer]
task = "web01"
volumes = ["/dev/sda", "vg0/root"]
threads = 3
level = 4
read_limit_mbps = 150

[rate]
mbit = 20

[[rate.window]]
days = "mon-fri"
start = "08:00"
end = "18:00"
mbit = 100
"#
        ),
    )
}

#[test]
fn flag_over_job_file_over_default() {
    let t = tempfile::tempdir().unwrap();
    let job = template(t.path());
    let job = job.to_str().unwrap();
    let j = print_job(&["--job", job, "--level", "7", "--code", "K7QX-3MPA"]);
    let (r, tr) = (&j["receiver"], &j["transfer"]);
    assert_eq!(
        r["address"].as_str(),
        Some("10.0.0.5:8703"),
        "from the file"
    );
    assert_eq!(r["fingerprint"].as_str(), Some(FP), "from the file");
    assert_eq!(r["code"].as_str(), Some("K7QX-3MPA"), "from the flag");
    assert_eq!(tr["level"].as_integer(), Some(7), "the flag beats the file");
    assert_eq!(
        tr["threads"].as_integer(),
        Some(3),
        "the file where no flag"
    );
    assert_eq!(tr["task"].as_str(), Some("web01"));
    assert_eq!(tr["read_limit_mbps"].as_integer(), Some(150));
    assert_eq!(tr["pass"].as_str(), Some("full"), "the default");
    assert_eq!(tr["hash"].as_str(), Some("blake3"), "the default");
    assert_eq!(tr["checkpoint_mib"].as_integer(), Some(256), "the default");
    let vols: Vec<&str> = tr["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(vols, ["/dev/sda", "vg0/root"]);
    let rate = &j["rate"];
    assert_eq!(rate["mbit"].as_integer(), Some(20));
    assert_eq!(rate["window"][0]["days"].as_str(), Some("mon-fri"));
    assert_eq!(rate["window"][0]["mbit"].as_integer(), Some(100));

    // Every flag the file also sets.
    let j = print_job(&[
        "--job",
        job,
        "--receiver",
        "192.0.2.9",
        "--task",
        "db02",
        "--threads",
        "1",
        "--read-limit",
        "0",
        "--pass",
        "verify",
        "--hash",
        "xxh3",
        "--checkpoint-mib",
        "64",
        "/dev/nvme0n1",
    ]);
    let (r, tr) = (&j["receiver"], &j["transfer"]);
    assert_eq!(r["address"].as_str(), Some("192.0.2.9"));
    assert_eq!(tr["task"].as_str(), Some("db02"));
    assert_eq!(tr["threads"].as_integer(), Some(1));
    assert_eq!(tr["read_limit_mbps"].as_integer(), Some(0));
    assert_eq!(tr["pass"].as_str(), Some("verify"));
    assert_eq!(tr["hash"].as_str(), Some("xxh3"));
    assert_eq!(tr["checkpoint_mib"].as_integer(), Some(64));
    assert_eq!(tr["level"].as_integer(), Some(4));
    let vols = tr["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1, "command-line volumes replace the file's");
    assert_eq!(vols[0].as_str(), Some("/dev/nvme0n1"));

    // --rate and --rate-schedule replace the file's whole schedule.
    let j = print_job(&["--job", job, "--rate", "50"]);
    assert_eq!(j["rate"]["mbit"].as_integer(), Some(50));
    assert!(j["rate"].get("window").is_none(), "{j}");
    let j = print_job(&[
        "--job",
        job,
        "--rate-schedule",
        "sat,sun 22:00-06:00=500, *=5",
    ]);
    assert_eq!(j["rate"]["mbit"].as_integer(), Some(5));
    let w = j["rate"]["window"].as_array().unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["days"].as_str(), Some("sat,sun"));
    assert_eq!(w[0]["start"].as_str(), Some("22:00"));
    assert_eq!(w[0]["end"].as_str(), Some("06:00"));
    assert_eq!(w[0]["mbit"].as_integer(), Some(500));

    // No job file: flags and defaults only.
    let j = print_job(&["--task", "solo", "disk.img"]);
    assert_eq!(j["transfer"]["task"].as_str(), Some("solo"));
    assert_eq!(j["transfer"]["level"].as_integer(), Some(1));
    assert_eq!(j["rate"]["mbit"].as_integer(), Some(0));
    assert!(j.get("receiver").is_none(), "{j}");
}

#[test]
fn print_job_output_reads_back_as_the_same_job() {
    let t = tempfile::tempdir().unwrap();
    let job = template(t.path());
    let first = ferry(&["send", "--print-job", "--job", job.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains(
            "ferry: warning: no pairing code: give --code CODE or set receiver.code in the job file"
        ),
        "what a send still needs is named: {}",
        stderr(&first)
    );
    let again = write(
        t.path(),
        "again.toml",
        &String::from_utf8_lossy(&first.stdout),
    );
    let second = ferry(&["send", "--print-job", "--job", again.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(second.stdout, first.stdout);
}

#[test]
fn bad_job_files_are_refused_naming_the_key_or_window() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    let p = write(d, "unknown.toml", "[transfer]\ntask = \"a\"\nspeed = 3\n");
    let err = refused(&["send", "--job", p.to_str().unwrap()]);
    assert!(err.starts_with("ferry: error: job file "), "{err}");
    assert!(err.contains("unknown.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `speed`"), "{err}");

    let p = write(d, "section.toml", "[transfers]\ntask = \"a\"\n");
    let err = refused(&["send", "--job", p.to_str().unwrap(), "--print-job"]);
    assert!(err.contains("unknown field `transfers`"), "{err}");

    let p = write(
        d,
        "mbit.toml",
        "[rate]\n[[rate.window]]\ndays = \"sat,sun\"\nstart = \"00:00\"\nend = \"24:00\"\nmbit = 1001\n",
    );
    let err = refused(&["send", "--job", p.to_str().unwrap(), "--print-job"]);
    assert!(
        err.contains(
            "mbit.toml: rate: window 1 (sat,sun 00:00-24:00=1001): mbit 1001 is above the maximum of 1000"
        ),
        "{err}"
    );

    let p = write(
        d,
        "overlap.toml",
        "[[rate.window]]\ndays = \"fri\"\nstart = \"22:00\"\nend = \"06:00\"\nmbit = 10\n\
         [[rate.window]]\ndays = \"sat\"\nstart = \"05:00\"\nend = \"09:00\"\nmbit = 20\n",
    );
    let err = refused(&["send", "--job", p.to_str().unwrap()]);
    assert!(
        err.contains(
            "rate: window 2 (sat 05:00-09:00=20) overlaps window 1 (fri 22:00-06:00=10) on sat at 05:00"
        ),
        "{err}"
    );

    let p = write(
        d,
        "time.toml",
        "[[rate.window]]\ndays = \"mon\"\nstart = \"25:00\"\nend = \"06:00\"\nmbit = 10\n",
    );
    let err = refused(&["send", "--job", p.to_str().unwrap()]);
    assert!(
        err.contains("line 3") && err.contains("invalid time \"25:00\": hour 25 is above 24"),
        "{err}"
    );

    let p = write(d, "fp.toml", "[receiver]\nfingerprint = \"12:34\"\n");
    let err = refused(&["send", "--job", p.to_str().unwrap()]);
    assert!(
        err.contains("line 2") && err.contains("fingerprint must be 64 hex digits"),
        "{err}"
    );

    let p = write(d, "threads.toml", "[transfer]\nthreads = 0\n");
    let err = refused(&["send", "--job", p.to_str().unwrap()]);
    assert!(
        err.contains("transfer.threads: must be at least 1"),
        "{err}"
    );

    let err = refused(&["send", "--job", d.join("absent.toml").to_str().unwrap()]);
    assert!(
        err.contains("cannot read the job file") && err.contains("absent.toml"),
        "{err}"
    );
}

#[test]
fn what_a_send_needs_is_named_when_missing() {
    let t = tempfile::tempdir().unwrap();
    let job = template(t.path());
    let err = refused(&["send", "--job", job.to_str().unwrap()]);
    assert_eq!(
        err.trim_end(),
        "ferry: error: no pairing code: give --code CODE or set receiver.code in the job file"
    );
    let err = refused(&[
        "send",
        "--receiver",
        "10.0.0.5",
        "--fingerprint",
        FP,
        "--code",
        "X",
    ]);
    assert!(
        err.contains("no volumes: give VOLUME arguments or set transfer.volumes in the job file"),
        "{err}"
    );
    let err = refused(&["send", "disk.img"]);
    assert!(err.contains("no receiver address"), "{err}");
}

#[test]
fn bad_flags_are_refused() {
    let err = refused(&["send", "--rate-schedule", "mon-fri 08:00-18:00=1001", "x"]);
    assert!(
        err.contains("window 1 (mon-fri 08:00-18:00=1001): mbit 1001 is above the maximum of 1000"),
        "{err}"
    );
    let err = refused(&[
        "send",
        "--rate-schedule",
        "mon 08:00-12:00=1, mon 11:00-13:00=2",
        "x",
    ]);
    assert!(
        err.contains("window 2 (mon 11:00-13:00=2) overlaps window 1"),
        "{err}"
    );
    let err = refused(&["send", "--rate", "1001", "x"]);
    assert!(err.contains("--rate"), "{err}");
    let err = refused(&["send", "--rate", "5", "--rate-schedule", "*=5", "x"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = refused(&["send", "--threads", "0", "x"]);
    assert!(err.contains("must be at least 1"), "{err}");
    let err = refused(&["send", "--level", "99", "x"]);
    assert!(err.contains("zstd level 99 is outside"), "{err}");
    let err = refused(&["send", "--fingerprint", "xyz", "x"]);
    assert!(err.contains("fingerprint must be 64 hex digits"), "{err}");
}

#[test]
fn a_job_file_drives_a_real_send() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src.img");
    let mut data = vec![0u8; 8 << 20];
    blake3::Hasher::new()
        .update(b"job file")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let target = dir.join("target.img");
    let rx = spawn_receiver(dir, &[&target], "JOBS-TEST").unwrap();
    let (port, fp) = (rx.port, rx.fingerprint.clone());
    // A schedule in force all week (so the follower thread runs), with a
    // different default that never applies.
    let job = write(
        dir,
        "job.toml",
        &format!(
            r#"[receiver]
address = "127.0.0.1:{port}"
fingerprint = "{fp}"
code = "jobs-test"

[transfer]
task = "from-the-job"
volumes = ["{}"]
threads = 2
checkpoint_mib = 4

[rate]
mbit = 1

[[rate.window]]
days = "daily"
start = "00:00"
end = "24:00"
mbit = 800
"#,
            src.display()
        ),
    );
    let job = job.to_str().unwrap();
    let src_state = dir.join("src-state");
    let src_state = src_state.to_str().unwrap();
    let out = ferry(&["send", "--job", job, "--json", "--state-dir", src_state]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["task"], "from-the-job");
    assert_eq!(r["chunks_sent"].as_u64(), Some(8));
    assert_eq!(
        std::fs::read(&target).unwrap(),
        data,
        "target equals source"
    );
    assert!(dir.join("state/tasks/from-the-job.json").is_file());

    // Flags over the same file: a verify pass of the same task finds
    // nothing to report.
    let out = ferry(&[
        "send",
        "--job",
        job,
        "--pass",
        "verify",
        "--rate",
        "0",
        "--state-dir",
        src_state,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("task from-the-job: verified 8 chunks, 0 differ"),
        "{text}"
    );
    // The source's own records: both passes, with the volume's digest.
    let rep: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("src-state/reports/from-the-job_source_report.json")).unwrap(),
    )
    .unwrap();
    let passes = rep["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2);
    assert_eq!(passes[1]["pass"], "verify");
    let (d0, d1) = (
        &passes[0]["report"]["volumes"][0]["digest"],
        &passes[1]["report"]["volumes"][0]["digest"],
    );
    assert!(d0.is_string() && d0 == d1, "{d0} {d1}");
    let ev = std::fs::read_to_string(dir.join("src-state/events.jsonl")).unwrap();
    assert_eq!(ev.matches("\"add-task\"").count(), 1, "{ev}");
    assert_eq!(ev.matches("\"result\"").count(), 2, "{ev}");
}
