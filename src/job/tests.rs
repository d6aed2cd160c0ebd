//! Unit tests of `job`.

use super::*;
use clap::ValueEnum;

const FP: &str = "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

fn example() -> String {
    format!(
        r#"
[receiver]
address = "10.0.0.5:8703"
fingerprint = "{FP}"
code = "ABCD-EFGH"

[transfer]
task = "web01"
volumes = ["/dev/sda", "/dev/sdb:2", "vg0/root"]
scan = []
pass = "incremental"
threads = 3
level = 4
hash = "xxh3"
checkpoint_mib = 128
read_limit_mbps = 200

[rate]
mbit = 20

[[rate.window]]
days = "mon-fri"
start = "08:00"
end = "18:00"
mbit = 100

[[rate.window]]
days = "sat,sun"
start = "22:00"
end = "06:00"
mbit = 0
"#
    )
}

fn parse(text: &str) -> Result<Job, JobError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("job.toml");
    std::fs::write(&p, text).unwrap();
    Job::load(&p)
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(j) => panic!("accepted: {j:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_example_loads_resolves_and_round_trips() {
    let job = parse(&example()).unwrap();
    assert_eq!(job.receiver.address.as_deref(), Some("10.0.0.5:8703"));
    assert_eq!(job.transfer.volumes.as_ref().unwrap().len(), 3);
    let s = job.rate.as_ref().unwrap();
    assert_eq!(
        s.to_string(),
        "mon-fri 08:00-18:00=100, sat,sun 22:00-06:00=0, *=20"
    );
    let text = job.to_toml();
    assert_eq!(toml::from_str::<Job>(&text).unwrap(), job, "{text}");
    let sj = job.resolve().unwrap();
    let c = &sj.config;
    assert_eq!(c.receiver, "10.0.0.5:8703");
    assert_eq!(fingerprint_hex(&c.fingerprint), FP);
    assert_eq!(c.code, "ABCD-EFGH");
    assert_eq!(c.task, "web01");
    assert_eq!(c.volumes, ["/dev/sda", "/dev/sdb:2", "vg0/root"]);
    assert!(c.scan.is_empty());
    assert_eq!(c.pass, Pass::Incremental);
    assert_eq!(c.threads, 3);
    assert_eq!(c.level, 4);
    assert_eq!(c.hash, HashAlgo::Xxh3_128);
    assert_eq!(c.checkpoint_bytes, 128 << 20);
    assert_eq!(sj.config.read_limit, 200);
    assert_eq!(&sj.schedule, s);
    assert_eq!(c.rate.get(), s.limit_at(local_now()));
}

#[test]
fn an_empty_job_is_valid_and_serialises_to_nothing() {
    let j = parse("").unwrap();
    assert_eq!(j, Job::default());
    assert_eq!(j.to_toml(), "");
    assert_eq!(j.missing().len(), 4);
    let e = j.resolve().unwrap_err().to_string();
    assert_eq!(
        e,
        "no receiver address: give --receiver IP[:PORT] or set receiver.address in the job file"
    );
}

#[test]
fn precedence_flag_over_file_over_default() {
    let file = parse(&example()).unwrap();
    let flags = Job {
        transfer: TransferSection {
            level: Some(9),
            volumes: Some(vec!["/dev/vda".into()]),
            ..Default::default()
        },
        rate: Some(Schedule::constant(5)),
        ..Default::default()
    };
    let merged = file.clone().overlay(flags);
    let sj = merged.resolve().unwrap();
    assert_eq!(sj.config.level, 9, "flag over file");
    assert_eq!(
        sj.config.volumes,
        ["/dev/vda"],
        "flag volumes replace the file's"
    );
    assert_eq!(sj.config.threads, 3, "file where no flag");
    assert_eq!(
        sj.schedule,
        Schedule::constant(5),
        "the flag's rate replaces the schedule"
    );
    assert_eq!(sj.config.rate.get(), 5);
    // Defaults where neither says.
    let bare = Job {
        receiver: file.receiver.clone(),
        transfer: TransferSection {
            volumes: Some(vec!["disk.img".into()]),
            ..Default::default()
        },
        rate: None,
        plan: None,
    };
    let d = SendConfig::new("", [0; 32], "", "x", Vec::new());
    let sj = Job::default().overlay(bare).resolve().unwrap();
    assert_eq!(sj.config.task, DEFAULT_TASK);
    assert_eq!(sj.config.pass, Pass::Full);
    assert_eq!(sj.config.threads, d.threads);
    assert_eq!(sj.config.level, 1);
    assert_eq!(sj.config.hash, HashAlgo::Blake3);
    assert_eq!(sj.config.checkpoint_bytes, 256 << 20);
    assert_eq!(sj.config.read_limit, 0);
    assert_eq!(sj.schedule, Schedule::default());
    assert_eq!(sj.config.rate.get(), 0);
    // An empty overlay changes nothing.
    assert_eq!(file.clone().overlay(Job::default()), file);
}

#[test]
fn with_defaults_fills_all_but_the_receiver_and_volumes() {
    let j = Job::default().with_defaults();
    let t = &j.transfer;
    assert_eq!(t.task.as_deref(), Some(DEFAULT_TASK));
    assert_eq!(t.pass, Some(PassKind::Full));
    assert_eq!(t.hash, Some(HashKind::Blake3));
    assert_eq!(t.level, Some(1));
    assert_eq!(t.checkpoint_mib, Some(256));
    assert_eq!(t.read_limit_mbps, Some(0));
    assert_eq!(t.volumes, None);
    assert!(j.receiver.is_empty());
    assert_eq!(j.rate, Some(Schedule::default()));
    let text = j.to_toml();
    assert!(text.contains("[rate]\nmbit = 0"), "{text}");
    assert_eq!(toml::from_str::<Job>(&text).unwrap(), j);
}

#[test]
fn toml_errors_name_the_file_line_and_key() {
    let e = parse_err("[transfer]\ntask = \"a\"\nspeed = 3\n");
    assert!(e.starts_with("job file "), "{e}");
    assert!(e.contains("job.toml"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("unknown field `speed`"), "{e}");
    let e = parse_err("[planning]\ngrow = true\n");
    assert!(
        e.contains("unknown field `planning`") && e.contains("line 1"),
        "{e}"
    );
    let e = parse_err(
        "[rate]\nmbit = 1\n[[rate.window]]\ndays = \"mon\"\nstart = \"08:00\"\nend = \"09:00\"\nmbit = 1\nburst = 2\n",
    );
    assert!(
        e.contains("unknown field `burst`") && e.contains("line 8"),
        "{e}"
    );
    let e = parse_err("[transfer]\npass = \"quick\"\n");
    assert!(e.contains("line 2") && e.contains("quick"), "{e}");
    let e = parse_err("[transfer]\nthreads = \"two\"\n");
    assert!(e.contains("line 2") && e.contains("threads"), "{e}");
    let e = parse_err("[receiver]\nfingerprint = \"abc\"\n");
    assert!(
        e.contains("line 2") && e.contains("fingerprint must be 64 hex digits"),
        "{e}"
    );
    let e = parse_err(
        "[[rate.window]]\ndays = \"mon-fry\"\nstart = \"08:00\"\nend = \"09:00\"\nmbit = 1\n",
    );
    assert!(
        e.contains("line 2") && e.contains("unknown day \"fry\""),
        "{e}"
    );
    let e = parse_err("[[rate.window]]\ndays = \"mon\"\nstart = \"08:00\"\nend = \"09:00\"\n");
    assert!(e.contains("missing field `mbit`"), "{e}");
    let e = parse_err("[transfer\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn invalid_values_name_the_key_and_window() {
    let e = parse_err(
        "[rate]\n[[rate.window]]\ndays = \"mon-fri\"\nstart = \"08:00\"\nend = \"18:00\"\nmbit = 1001\n",
    );
    assert!(
            e.ends_with(
                "job.toml: rate: window 1 (mon-fri 08:00-18:00=1001): mbit 1001 is above the maximum of 1000 (0 = no limit)"
            ),
            "{e}"
        );
    let e = parse_err("[rate]\nmbit = 1200\n");
    assert!(
            e.ends_with("rate: the default outside windows: mbit 1200 is above the maximum of 1000 (0 = no limit)"),
            "{e}"
        );
    let two = "[[rate.window]]\ndays = \"daily\"\nstart = \"22:00\"\nend = \"06:00\"\nmbit = 10\n\
                   [[rate.window]]\ndays = \"sun\"\nstart = \"05:00\"\nend = \"07:00\"\nmbit = 20\n";
    let e = parse_err(two);
    assert!(
            e.ends_with("rate: window 2 (sun 05:00-07:00=20) overlaps window 1 (daily 22:00-06:00=10) on sun at 05:00"),
            "{e}"
        );
    let cases = [
        (
            "[transfer]\nthreads = 0\n",
            "transfer.threads: must be at least 1",
        ),
        (
            "[transfer]\ncheckpoint_mib = 0\n",
            "transfer.checkpoint_mib: must be at least 1",
        ),
        (
            "[transfer]\nlevel = 23\n",
            "transfer.level: zstd level 23 is outside",
        ),
        ("[transfer]\ntask = \" \"\n", "transfer.task: is empty"),
        (
            "[transfer]\nvolumes = [\"a\", \"\"]\n",
            "transfer.volumes: volume 2 is empty",
        ),
        ("[receiver]\ncode = \"\"\n", "receiver.code: is empty"),
        (
            "[receiver]\naddress = \"receiver.example\"\n",
            "receiver.address: \"receiver.example\" is not IP or IP:PORT",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(
            e.starts_with("job file ") && e.contains(want),
            "{want:?} in {e}"
        );
    }
    assert!(parse("[receiver]\naddress = \"10.0.0.5\"\n").is_ok());
    assert!(parse("[receiver]\naddress = \"[fd00::5]:9000\"\n").is_ok());
}

#[test]
fn a_missing_or_unreadable_file_is_named() {
    let e = Job::load(Path::new("/nonexistent/job.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot read the job file /nonexistent/job.toml"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn serde_names_match_the_command_line() {
    for p in PassKind::value_variants() {
        let clap_name = p.to_possible_value().unwrap().get_name().to_string();
        let serde_name: String = toml::Value::try_from(p).unwrap().as_str().unwrap().into();
        assert_eq!(clap_name, serde_name);
        assert_eq!(PassKind::from(Pass::from(*p)), *p);
    }
    for h in HashKind::value_variants() {
        let clap_name = h.to_possible_value().unwrap().get_name().to_string();
        let serde_name: String = toml::Value::try_from(h).unwrap().as_str().unwrap().into();
        assert_eq!(clap_name, serde_name);
        assert_eq!(HashKind::from(HashAlgo::from(*h)), *h);
    }
}

#[test]
fn fingerprints_as_typed_are_written_plain() {
    let grouped: String = FP
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let j = parse(&format!(
        "[receiver]\nfingerprint = \"{}\"\n",
        grouped.to_uppercase()
    ))
    .unwrap();
    assert_eq!(j.to_toml(), format!("[receiver]\nfingerprint = \"{FP}\"\n"));
}

#[test]
fn a_plan_replaces_the_volumes_and_volumes_on_top_replace_the_plan() {
    let text = r#"
[receiver]
address = "10.0.0.5"
fingerprint = "3f2a9c0112345678123456781234567812345678123456781234567812345678"
code = "K7QX-3MPA"

[plan]
disks = ["/dev/sda"]
[plan.grow]
"/dev/sda:2" = "max"
"#;
    let job: Job = toml::from_str(text).unwrap();
    job.validate().unwrap();
    assert!(job.missing().is_empty(), "a plan needs no volumes");
    let sj = job.resolve().unwrap();
    assert!(sj.config.volumes.is_empty());
    let plan = sj.config.plan.as_ref().unwrap();
    assert_eq!(plan.disks, ["/dev/sda"]);
    assert_eq!(plan.grow["/dev/sda:2"], crate::plan::spec::Grow::Max);
    // Both in one file: an error naming the key.
    let both: Job =
        toml::from_str(&format!("{text}\n[transfer]\nvolumes = [\"/dev/sdb\"]\n")).unwrap();
    let e = both.validate().unwrap_err().to_string();
    assert!(
        e.contains("transfer.volumes") && e.contains("[plan]"),
        "{e}"
    );
    // VOLUME arguments replace the file's plan.
    let flags = Job {
        transfer: TransferSection {
            volumes: Some(vec!["/dev/sdb".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let merged = job.clone().overlay(flags);
    assert!(merged.plan.is_none());
    assert_eq!(merged.resolve().unwrap().config.volumes, ["/dev/sdb"]);
    // The plan survives a round trip through TOML.
    assert_eq!(toml::from_str::<Job>(&job.to_toml()).unwrap(), job);
    // Unknown keys in [plan] are errors naming the key.
    let e = toml::from_str::<Job>("[plan]\ngrowth = {}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `growth`"), "{e}");
}
