//! The TUI without a terminal: key events drive [`App`], screens are drawn
//! on ratatui's TestBackend and compared with insta snapshots at 80x24 and
//! 120x40. The disk is an image file made here (GPT; ext4 made with
//! `mke2fs -E offset=`, a swap header, an empty partition), so no root is
//! needed; its temporary directory is filtered out of the snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Effect, InputFor, Modal, Msg, Screen};
use super::view;
use crate::inventory::{InventoryConfig, inventory};
use crate::proto::message::Pass;
use crate::source::netcheck::{Bottleneck, NetReport};
use crate::source::send::SendReport;
use crate::source::tally::VolumeSummary;
use crate::source::watch::{Snapshot, Stage};

const MIB: u64 = 1 << 20;
const LINUX: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];
const SWAP: [u8; 16] = [
    0x6d, 0xfd, 0x57, 0x06, 0xab, 0xa4, 0xc4, 0x43, 0x84, 0xe5, 0x09, 0x33, 0xc8, 0x4b, 0x4f, 0x4f,
];
const FP: &str = "f249814f0608603527587589ce56813cb4b139ee8d0b8cd40b560b9daa156b07";

/// A 64 MiB GPT image: 1 root (ext4, 32 MiB), 2 swap (8 MiB), 3 empty
/// (16 MiB).
fn disk(dir: &Path) -> PathBuf {
    let p = dir.join("server.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(64 * MIB).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let mut gpt = gptman::GPT::new_from(&mut f, 512, [7; 16]).unwrap();
    for (n, start, size, ty, name) in [
        (1u32, 1, 32, LINUX, "root"),
        (2, 33, 8, SWAP, "swap"),
        (3, 41, 16, LINUX, "spare"),
    ] {
        gpt[n] = gptman::GPTPartitionEntry {
            partition_type_guid: ty,
            unique_partition_guid: [n as u8; 16],
            starting_lba: start * MIB / 512,
            ending_lba: (start + size) * MIB / 512 - 1,
            attribute_bits: 0,
            partition_name: name.into(),
        };
    }
    gpt.write_into(&mut f).unwrap();
    gptman::GPT::write_protective_mbr_into(&mut f, 512).unwrap();
    drop(f);
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "root", "-U"])
        .arg("8a3c1d2e-0000-4000-8000-00000000beef")
        .args(["-E", "offset=1048576,lazy_itable_init=0", "-b", "4096"])
        .arg(&p)
        .arg("32M")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .status()
        .expect("mke2fs (e2fsprogs) is needed");
    assert!(st.success());
    // A swap header: version 1, the page count, a UUID and a label.
    let mut h = vec![0u8; 4096];
    h[1024] = 1;
    h[1028..1032].copy_from_slice(&((8 * MIB / 4096 - 1) as u32).to_le_bytes());
    h[1036..1052].copy_from_slice(&[0x5a; 16]);
    h[1052..1057].copy_from_slice(b"swap0");
    h[4086..4096].copy_from_slice(b"SWAPSPACE2");
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&h, 33 * MIB).unwrap();
    p
}

struct Fixture {
    /// The disk's directory, relative (so the screens show the same names
    /// on every machine).
    dir: String,
    app: App,
}

/// An app on the Disks screen with the test disk (in
/// `target/tui-test/NAME/`) read.
fn fixture(name: &str) -> Fixture {
    let dir = format!("target/tui-test/{name}");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = disk(Path::new(&dir));
    let mut app = App::new(vec![p.clone()]);
    app.screen = Screen::Disks;
    let inv = inventory(&InventoryConfig {
        paths: vec![p],
        with_ranges: true,
        ..Default::default()
    })
    .unwrap();
    app.on_msg(Msg::Inventory(Ok(inv)));
    Fixture { dir, app }
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Answer the open input line with `s`.
fn answer(app: &mut App, s: &str) -> Vec<Effect> {
    match &mut app.modal {
        Some(Modal::Input { text, .. }) => text.clear(),
        other => panic!("no input line open: {other:?}"),
    }
    typed(app, s);
    key(app, KeyCode::Enter)
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

/// The screen as text, trailing blanks cut.
fn screen(f: &Fixture, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|fr| view::draw(fr, &f.app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut s = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn snap(name: &str, f: &Fixture) {
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), screen(f, w, h));
    }
}

fn volume(f: &Fixture, n: u32) -> String {
    format!("{}/server.img:{n}", f.dir)
}

/// To the plan screen with the test disk's target at 96 MiB.
fn on_plan(f: &mut Fixture) {
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.screen, Screen::Plan);
    key(&mut f.app, KeyCode::Char('t'));
    assert!(matches!(
        &f.app.modal,
        Some(Modal::Input { purpose: InputFor::TargetSize(d), .. }) if d.ends_with("server.img")
    ));
    answer(&mut f.app, "96MiB");
    assert!(f.app.planned.is_ok(), "{:?}", f.app.planned.as_ref().err());
}

#[test]
fn selection_defaults_and_toggles() {
    let mut f = fixture("select");
    on_plan(&mut f);
    // Root and swap go; the empty partition does not.
    assert!(f.app.is_selected(&volume(&f, 1)));
    assert!(f.app.is_selected(&volume(&f, 2)));
    assert!(!f.app.is_selected(&volume(&f, 3)));
    // Space on swap leaves it out; again brings it back.
    key(&mut f.app, KeyCode::Down);
    key(&mut f.app, KeyCode::Char(' '));
    assert!(!f.app.is_selected(&volume(&f, 2)), "{}", f.app.status);
    assert!(f.app.spec.deselect.contains(&volume(&f, 2)));
    key(&mut f.app, KeyCode::Char(' '));
    assert!(f.app.is_selected(&volume(&f, 2)));
}

#[test]
fn grow_and_a_refused_shrink() {
    let mut f = fixture("grow");
    on_plan(&mut f);
    key(&mut f.app, KeyCode::Char('g'));
    answer(&mut f.app, "max");
    let p = f.app.planned.as_ref().unwrap();
    let root = p.disks[0]
        .rows
        .iter()
        .find(|r| r.number == Some(1))
        .unwrap();
    assert!(root.new_size > 32 * MIB, "{}", root.new_size);
    // A shrink is refused with the planner's reason; the plan stays.
    key(&mut f.app, KeyCode::Char('g'));
    answer(&mut f.app, "16MiB");
    assert!(f.app.status.contains("cannot shrink"), "{}", f.app.status);
    assert_eq!(
        f.app.spec.grow.get(&volume(&f, 1)).map(|g| g.to_string()),
        Some("max".into())
    );
    assert!(f.app.planned.is_ok());
}

#[test]
fn start_stop_and_change_the_rate() {
    let mut f = fixture("start");
    on_plan(&mut f);
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.screen, Screen::Receiver);
    // Nothing typed: the receiver screen says what is missing.
    key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.screen, Screen::Receiver);
    assert!(f.app.status.contains("address"), "{}", f.app.status);
    typed(&mut f.app, "10.0.0.5");
    key(&mut f.app, KeyCode::Tab);
    typed(&mut f.app, FP);
    key(&mut f.app, KeyCode::Tab);
    typed(&mut f.app, "K7QX-3MPA");
    let fx = key(&mut f.app, KeyCode::Enter);
    assert_eq!(f.app.screen, Screen::Preflight);
    assert_eq!(fx, [Effect::Netcheck { full: true }]);
    // Enter asks first, restating what is overwritten.
    assert!(key(&mut f.app, KeyCode::Enter).is_empty());
    let Some(Modal::ConfirmStart(lines)) = &f.app.modal else {
        panic!("no confirmation: {:?}", f.app.modal)
    };
    assert!(
        lines
            .iter()
            .any(|l| l.contains("OVERWRITTEN") && l.contains("server.img"))
    );
    let fx = key(&mut f.app, KeyCode::Char('y'));
    assert_eq!(fx, [Effect::Send(Pass::Full)]);
    assert_eq!(f.app.screen, Screen::Transfer);
    assert!(f.app.running());
    // The rate changes live: the running pass shares the limit.
    key(&mut f.app, KeyCode::Char('r'));
    answer(&mut f.app, "300");
    assert_eq!(f.app.rate.get(), 300);
    key(&mut f.app, KeyCode::Char('r'));
    answer(&mut f.app, "5000");
    assert_eq!(f.app.rate.get(), 300, "over 1000 is refused");
    assert!(f.app.status.contains("0..1000"), "{}", f.app.status);
    // Stop asks, then tells the pass.
    key(&mut f.app, KeyCode::Char('s'));
    assert_eq!(f.app.modal, Some(Modal::ConfirmStop));
    key(&mut f.app, KeyCode::Char('y'));
    assert!(f.app.watch.as_ref().unwrap().stopping());
    // The pass ends: the report.
    f.app
        .on_msg(Msg::Sent(Err("stopped by the operator at chunk 3".into())));
    assert_eq!(f.app.screen, Screen::Report);
    // q asks before quitting.
    key(&mut f.app, KeyCode::Char('q'));
    assert_eq!(f.app.modal, Some(Modal::ConfirmQuit));
    key(&mut f.app, KeyCode::Char('n'));
    assert!(!f.app.quit);
    key(&mut f.app, KeyCode::Char('q'));
    assert_eq!(key(&mut f.app, KeyCode::Char('y')), [Effect::Quit]);
}

#[test]
fn the_choices_round_trip_through_a_job_file() {
    let mut f = fixture("job");
    on_plan(&mut f);
    f.app.fields = ["10.0.0.5".into(), FP.into(), "K7QX-3MPA".into()];
    f.app.schedule = "mon-fri 08:00-18:00=100, *=0".parse().unwrap();
    f.app.pass = Pass::Incremental;
    let text = f.app.to_job().to_toml();
    let job: crate::job::Job = toml::from_str(&text).unwrap();
    job.validate().unwrap();
    let mut back = App::new(Vec::new());
    back.load_job(&job);
    assert_eq!(back.fields, f.app.fields);
    assert_eq!(back.spec, f.app.spec);
    assert_eq!(back.schedule, f.app.schedule);
    assert_eq!(back.pass, f.app.pass);
    // w on the plan screen asks for a file name and saves there.
    key(&mut f.app, KeyCode::Char('w'));
    assert_eq!(
        answer(&mut f.app, "/tmp/x.toml"),
        [Effect::SaveJob("/tmp/x.toml".into())]
    );
}

#[test]
fn snapshots_of_every_screen() {
    let mut f = fixture("snap");
    f.app.screen = Screen::Role;
    snap("role", &f);
    f.app.screen = Screen::Disks;
    key(&mut f.app, KeyCode::Down);
    snap("disks", &f);
    f.app.modal = Some(Modal::Help);
    snap("help", &f);
    f.app.modal = None;
    on_plan(&mut f);
    key(&mut f.app, KeyCode::Char('g'));
    answer(&mut f.app, "max");
    snap("plan", &f);
    key(&mut f.app, KeyCode::Enter);
    f.app.fields = ["10.0.0.5".into(), FP.into(), "K7QX-3MPA".into()];
    f.app.conn_test = Some(Ok(
        "connected to 10.0.0.5:8703 (rx01): latency 0.4 ms, loss 0.0%, 940 Mbit/s".into(),
    ));
    snap("receiver", &f);
    f.app.screen = Screen::Preflight;
    f.app.schedule = "mon-fri 08:00-18:00=100, *=0".parse().unwrap();
    f.app.net = Some(Ok(NetReport {
        receiver: "10.0.0.5:8703".into(),
        receiver_name: "rx01".into(),
        probes_sent: 50,
        probes_received: 50,
        latency_min_ms: Some(0.2),
        latency_avg_ms: Some(0.4),
        latency_max_ms: Some(1.1),
        jitter_ms: Some(0.1),
        bandwidth_mbit_s: 940.0,
        used_bytes: Some(21 * MIB),
        disk_read_mb_s: Some(480.0),
        compression_mb_s: Some(390.0),
        compression_ratio: Some(3.5),
        estimated_wire_bytes: Some(6 * MIB),
        eta_seconds: Some(75.0),
        bottleneck: Some(Bottleneck::Network),
        ..Default::default()
    }));
    snap("preflight", &f);
    key(&mut f.app, KeyCode::Enter);
    snap("confirm_start", &f);
    key(&mut f.app, KeyCode::Char('y'));
    let vols = vec![
        VolumeSummary {
            name: volume(&f, 1),
            size: 32 * MIB,
            used_bytes: 20 * MIB,
            bytes_sent: 12 * MIB,
            ..Default::default()
        },
        VolumeSummary {
            name: volume(&f, 2),
            size: 8 * MIB,
            used_bytes: 4096,
            ..Default::default()
        },
    ];
    f.app.watch.as_ref().unwrap().set(Snapshot {
        stage: Stage::Syncing,
        volumes: vols.clone(),
        wire_bytes: 4 * MIB,
        bytes_sent: 12 * MIB,
        started: None,
    });
    f.app.speed = [10u64, 40, 80, 120, 90, 110, 130, 125]
        .iter()
        .map(|x| x * MIB / 10)
        .collect();
    snap("transfer", &f);
    f.app.show_log = true;
    f.app.log = vec!["full pass of task ferry started".into()];
    snap("transfer_log", &f);
    f.app.show_log = false;
    let mut done = vols;
    done[0].bytes_sent = 20 * MIB;
    done[0].digest = Some("5d1c23174b9f0a".into());
    done[1].bytes_sent = 4096;
    done[1].digest = Some("9ce551fe782f11".into());
    let mut rep = SendReport::default();
    rep.task = "ferry".into();
    rep.chunks = 21;
    rep.chunks_sent = 21;
    rep.bytes = 20 * MIB + 4096;
    rep.wire_bytes = 6 * MIB;
    rep.seconds = 75.0;
    rep.seconds_connecting = 0.4;
    rep.seconds_finishing = 4.6;
    rep.volumes = done;
    f.app.on_msg(Msg::Sent(Ok(rep)));
    snap("report", &f);
    f.app.ascii = true;
    snap("report_ascii", &f);
}

#[test]
fn the_receiver_role_chooses_targets_then_shows_code_and_tasks() {
    let mut f = fixture("receiver");
    f.app.screen = Screen::Role;
    assert!(
        key(&mut f.app, KeyCode::Char('r')).is_empty(),
        "disks already read"
    );
    assert_eq!(f.app.screen, Screen::Targets);
    // Nothing chosen: Enter says so.
    key(&mut f.app, KeyCode::Enter);
    assert!(f.app.modal.is_none());
    assert!(
        f.app.status.contains("choose the target disks"),
        "{}",
        f.app.status
    );
    key(&mut f.app, KeyCode::Char(' '));
    snap("targets", &f);
    key(&mut f.app, KeyCode::Enter);
    let Some(Modal::ConfirmReceive(lines)) = &f.app.modal else {
        panic!("no confirmation: {:?}", f.app.modal)
    };
    assert!(
        lines
            .iter()
            .any(|l| l.contains("target 0") && l.contains("model") && l.contains("64.0 MiB")),
        "{lines:?}"
    );
    snap("confirm_receive", &f);
    let fx = key(&mut f.app, KeyCode::Char('y'));
    assert_eq!(
        fx,
        [Effect::Receive(vec![PathBuf::from(format!(
            "{}/server.img",
            f.dir
        ))])]
    );
    f.app.addresses = vec!["10.0.0.5 (eth0)".into()];
    f.app.state_dir = Some("/var/lib/ferry".into());
    f.app.on_msg(Msg::Receiving(Ok(super::app::RxView {
        data: "0.0.0.0:8703".parse().unwrap(),
        api: "0.0.0.0:8080".parse().unwrap(),
        fingerprint: [0x3f; 32],
        code: "K7QM-4XPD".into(),
        token: String::new(),
        handle: None,
    })));
    assert_eq!(f.app.screen, Screen::Receiving);
    let task = |name: &str, state: &str, running: bool, done: u64| {
        serde_json::from_value::<crate::report::task::TaskStatus>(serde_json::json!({
            "task": name, "state": state, "running": running, "pass": "full",
            "source": "web01", "peer": "10.0.0.9:41234", "session": 1, "streams": 1,
            "started": "", "updated": "", "volumes": [], "chunks_total": 100,
            "bytes_total": 100 * MIB, "chunks_done": done, "bytes_done": done * MIB,
            "chunks_written": done, "bytes_written": done * MIB, "wire_bytes": 0,
            "zero_chunks": 0, "chunks_held": 0, "chunks_differ": 0, "resumed_at": 0,
            "throughput": 52428800.0, "rate_limit_mbit": null, "paused": false, "errors": []
        }))
        .unwrap()
    };
    f.app.rx_tasks = vec![
        task("web01", "syncing", true, 40),
        task("db02", "finished", false, 100),
    ];
    // The ended task's report, one line.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("reports")).unwrap();
    std::fs::write(
        d.path().join("reports/db02_report.json"),
        serde_json::json!({
            "state": "Finished", "pass": "Full", "seconds": 75.0, "bytes_written": 100 * MIB,
            "volumes": [{}, {}],
            "post_steps": [{"status": "ok", "step": "write MBR"}, {"status": "ok", "step": "resize2fs"}]
        })
        .to_string(),
    )
    .unwrap();
    let line = super::app::report_line(d.path(), "db02").unwrap();
    assert_eq!(
        line,
        "result: Finished Full pass in 1m15s, 2 volume(s), 100.0 MiB written; post-steps 2/2 ok"
    );
    f.app
        .rx_reports
        .insert("db02".into(), (String::new(), line));
    snap("receiving", &f);

    // More tasks than fit at 80x24: a line each, the running ones first,
    // an error kept with its task, and a count of the rest.
    let mut failed = task("app03", "in_error", false, 10);
    failed.errors = vec!["HashMismatch: chunk 9 at 9437184 on target 0".into()];
    f.app.rx_tasks = vec![
        task("old04", "finished", false, 100),
        task("old05", "finished", false, 100),
        failed,
        task("old06", "finished", false, 100),
        task("old07", "finished", false, 100),
        task("web01", "syncing", true, 40),
    ];
    let small = screen(&f, 80, 24);
    assert!(small.contains("Sessions and tasks (6)"), "{small}");
    let body: Vec<&str> = small
        .lines()
        .skip_while(|l| !l.contains("Sessions and tasks"))
        .skip(1)
        .take_while(|l| !l.starts_with('└'))
        .collect();
    assert!(
        body[0].contains("web01") && body[0].contains("Syncing"),
        "{small}"
    );
    let err = body
        .iter()
        .position(|l| l.contains("error: HashMismatch: chunk 9"))
        .expect(&small);
    assert!(body[err - 1].contains("app03"), "{small}");
    assert!(
        body.last().unwrap().contains("... 2 more task(s)"),
        "{small}"
    );
    // With room, every task in full.
    let big = screen(&f, 120, 40);
    assert!(
        big.contains("old07") && !big.contains("more task(s)"),
        "{big}"
    );
    assert!(
        big.contains("report /var/lib/ferry/reports/old04_report.json"),
        "{big}"
    );
}

#[test]
fn network_settings_and_a_shell_from_the_role_screen() {
    let mut f = fixture("network");
    f.app.screen = Screen::Role;
    f.app.ifaces = vec![
        super::net::Iface {
            name: "eno1".into(),
            state: "up".into(),
            carrier: true,
            mac: "52:54:00:00:87:02".into(),
            addrs: vec!["10.0.0.9/24".into()],
        },
        super::net::Iface {
            name: "eno2".into(),
            state: "down".into(),
            carrier: false,
            mac: "52:54:00:00:87:03".into(),
            addrs: vec![],
        },
    ];
    snap("role_network", &f);
    key(&mut f.app, KeyCode::Down);
    assert_eq!(
        key(&mut f.app, KeyCode::Char('d')),
        [Effect::Dhcp("eno2".into())]
    );
    key(&mut f.app, KeyCode::Char('i'));
    assert_eq!(
        answer(&mut f.app, "10.0.0.5/24,10.0.0.1"),
        [Effect::StaticIp(
            "eno2".into(),
            "10.0.0.5/24,10.0.0.1".into()
        )]
    );
    f.app.on_msg(Msg::NetConfig(Err(
        "ip -4 addr add: RTNETLINK answers: File exists".into(),
    )));
    assert!(
        f.app.status.starts_with("network: ip -4 addr add"),
        "{}",
        f.app.status
    );
    assert_eq!(key(&mut f.app, KeyCode::Char('!')), [Effect::Shell]);
}

#[test]
fn tab_gives_the_keys_to_the_second_pane() {
    let mut f = fixture("tab");
    key(&mut f.app, KeyCode::Down);
    assert_eq!(f.app.tree_cursor, 1);
    key(&mut f.app, KeyCode::Tab);
    key(&mut f.app, KeyCode::Down);
    key(&mut f.app, KeyCode::Down);
    assert_eq!(f.app.tree_cursor, 1, "j scrolls the details, not the tree");
    assert_eq!(f.app.pane_scroll, 2);
    key(&mut f.app, KeyCode::Tab);
    key(&mut f.app, KeyCode::Down);
    assert_eq!(f.app.tree_cursor, 2);
}
