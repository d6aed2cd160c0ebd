//! Root tier: a whole migration through the TUI, in tmux. `ferry tui` runs
//! on an image file with a local `ferry receive`; the keys a technician
//! would press go in with `tmux send-keys`, the screen is read with `tmux
//! capture-pane`, from the disk tree to the report. The target's root
//! filesystem (grown by the plan) is then checked clean and its files
//! identical to the source's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::spawn_receiver;
use common::{Loop, Mount, digests, run};

const MIB: u64 = 1 << 20;

/// A 64 MiB GPT image: 1 root (ext4 with files, 32 MiB), 2 swap (8 MiB).
fn source(dir: &Path) -> (PathBuf, PathBuf) {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "web01\n").unwrap();
    let big: Vec<u8> = (0..3 * MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(tree.join("data.bin"), &big).unwrap();
    let p = dir.join("server.img");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(64 * MIB).unwrap();
    drop(f);
    run(
        "sgdisk",
        &[
            "-n",
            "1:1M:+32M",
            "-t",
            "1:8300",
            "-c",
            "1:root",
            "-n",
            "2:33M:+8M",
            "-t",
            "2:8200",
            "-c",
            "2:swap",
            &p.display().to_string(),
        ],
    );
    let st = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "root", "-b", "4096"])
        .args(["-E", "offset=1048576", "-d"])
        .arg(&tree)
        .arg(&p)
        .arg("32M")
        .status()
        .unwrap();
    assert!(st.success());
    let l = Loop::attach(&p, 33 * MIB, Some(8 * MIB), None, false);
    run("mkswap", &["-L", "swap0", &l.0]);
    drop(l);
    (p, tree)
}

/// tmux on its own server socket (nothing shared with a user's tmux).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let t = Tmux {
            socket: format!("ferry-test-{}", std::process::id()),
        };
        let st = Command::new("tmux")
            .args([
                "-L",
                &t.socket,
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .args(["-s", "tui", cmd])
            .status()
            .expect("tmux is needed (scripts/test.sh installs it)");
        assert!(st.success());
        t
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let st = Command::new("tmux")
                .args(["-L", &self.socket, "send-keys", "-t", "tui", k])
                .status()
                .unwrap();
            assert!(st.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Type `s` literally.
    fn text(&self, s: &str) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "tui", "-l", s])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(150));
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "tui"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until the screen shows `what`; the screen is in the panic.
    fn wait(&self, what: &str, secs: u64) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "the screen never showed {what:?} in {secs} s:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn root_a_whole_migration_through_the_tui_in_tmux() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, tree) = source(tmp.path());
    let target = tmp.path().join("target.img");
    let rx = spawn_receiver(tmp.path(), &[&target], "TUI-E2E").unwrap();
    let cmd = format!(
        "cd {} && TERM=xterm-256color {} tui server.img --state-dir src-state; echo FERRY-EXIT $?; sleep 60",
        tmp.path().display(),
        env!("CARGO_BIN_EXE_ferry")
    );
    let t = Tmux::start(&cmd);
    // 1. Disks.
    let s = t.wait("part 2", 30);
    assert!(
        s.contains("server.img") && s.contains("ext4") && s.contains("swap"),
        "{s}"
    );
    // 2. Select and grow: a 96 MiB target, root to max.
    t.keys(&["Enter"]);
    t.wait("Select and grow", 10);
    t.keys(&["t", "C-u"]);
    t.text("96MiB");
    t.keys(&["Enter", "g", "C-u"]);
    t.text("max");
    t.keys(&["Enter"]);
    let s = t.wait("grow +", 10);
    assert!(s.contains("target 0 (96.0 MiB)"), "{s}");
    // A shrink is refused on the screen, with the reason.
    t.keys(&["g", "C-u"]);
    t.text("8MiB");
    t.keys(&["Enter"]);
    t.wait("cannot shrink", 10);
    // 3. Receiver.
    t.keys(&["Enter"]);
    t.wait("pairing code", 10);
    t.text(&format!("127.0.0.1:{}", rx.port));
    t.keys(&["Tab"]);
    t.text(&rx.fingerprint);
    t.keys(&["Tab"]);
    t.text("TUI-E2E");
    t.keys(&["F5"]);
    t.wait("connection test: OK", 30);
    // 4. Preflight: the netcheck runs by itself.
    t.keys(&["Enter"]);
    t.wait("bandwidth", 60);
    // 5. Start (after the confirmation), 6. the report.
    t.keys(&["Enter"]);
    t.wait("OVERWRITTEN", 10);
    t.keys(&["y"]);
    let s = t.wait("FINISHED", 120);
    assert!(s.contains("server.img:1"), "{s}");
    t.keys(&["q"]);
    t.wait("Quit ferry?", 10);
    t.keys(&["y"]);
    t.wait("FERRY-EXIT 0", 10);

    // The receiver applied the plan: table, resize2fs, mkswap not needed.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("state/reports/ferry_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["state"], "Finished", "{report}");
    let steps = report["post_steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["status"] == "ok"), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| s["step"].as_str().unwrap().contains("resize2fs")),
        "{steps:?}"
    );
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 96 * MIB);
    let v = run("sgdisk", &["-v", &target.display().to_string()]);
    assert!(v.contains("No problems found"), "{v}");
    // Root grew to fill up to the moved swap; clean; the same files.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["inventory", "--json"])
        .arg(&target)
        .output()
        .unwrap();
    let inv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = &inv["disks"][0]["partitions"][0];
    let size = root["size"].as_u64().unwrap();
    assert_eq!(root["start"], MIB);
    assert!(size > 80 * MIB, "{root}");
    assert_eq!(root["content"]["fs_size"], size, "{root}");
    let swap = &inv["disks"][0]["partitions"][1];
    assert_eq!(swap["content"]["label"], "swap0", "{swap}");
    let l = Loop::attach(&target, MIB, Some(size), None, false);
    run("e2fsck", &["-fn", &l.0]);
    let m = Mount::new(l.path(), "ext4");
    let mut got = digests(m.path());
    got.retain(|(p, _)| !p.starts_with("lost+found"));
    assert_eq!(got, digests(&tree));
    drop(m);
    drop(l);
    let _ = src;
}
