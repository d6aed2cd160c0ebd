//! A scenario's work directory (`target/qemu/<scenario>/`: disks, console
//! logs, QEMU command lines, notes), its wall time, and the failure dump:
//! when the scenario panics, everything but the disk images is copied to
//! `target/qemu-failures/<scenario>/` and the path is printed. On success
//! the disk images are removed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::vm::VmBuilder;

pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    started: Instant,
}

impl Scenario {
    /// A fresh work directory for `name`.
    pub fn new(name: &str) -> Scenario {
        let dir = crate::target_dir().join("qemu").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(failure_dir(name));
        eprintln!("qemu scenario {name}: work dir {}", dir.display());
        Scenario {
            name: name.to_string(),
            dir,
            started: Instant::now(),
        }
    }

    /// A path in the work directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A VM whose console log and command line go to the work directory as
    /// `<vm>.console.log` and `<vm>.cmdline`.
    pub fn vm(&self, name: &str) -> VmBuilder {
        VmBuilder::new(name, &self.dir)
    }

    /// Keep `text` as `<file>` in the work directory (and so in a failure
    /// dump): API answers, inventories, expected digests.
    pub fn note(&self, file: &str, text: &str) {
        let _ = std::fs::write(self.dir.join(file), text);
    }

    /// Print a progress line with the time since the start.
    pub fn step(&self, what: &str) {
        eprintln!(
            "qemu scenario {} [{:6.1} s] {what}",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn failure_dir(name: &str) -> PathBuf {
    crate::target_dir().join("qemu-failures").join(name)
}

fn is_disk(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("img" | "fd" | "raw")
    )
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        if std::thread::panicking() {
            let out = failure_dir(&self.name);
            let _ = std::fs::create_dir_all(&out);
            let mut kept = Vec::new();
            if let Ok(rd) = std::fs::read_dir(&self.dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_file() && !is_disk(&p) {
                        let _ = std::fs::copy(&p, out.join(e.file_name()));
                        kept.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            kept.sort();
            eprintln!(
                "qemu scenario {} FAILED after {secs:.1} s: console logs, QEMU command lines and notes in {} ({}); \
                 disk images left in {}",
                self.name,
                out.display(),
                kept.join(", "),
                self.dir.display()
            );
        } else {
            if let Ok(rd) = std::fs::read_dir(&self.dir) {
                for e in rd.flatten() {
                    if is_disk(&e.path()) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            eprintln!("qemu scenario {} passed in {secs:.1} s", self.name);
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(crate::target_dir().join("qemu").join("times.log"))
                .and_then(|mut f| {
                    use std::io::Write;
                    writeln!(f, "{} {secs:.1}", self.name)
                });
        }
    }
}
