//! Scenario 7's disk and the guests around it that [`crate::vm::VmBuilder`]
//! does not start.
//!
//! - [`bootdisk`]: a small real Linux disk built by `scripts/bootdisk.sh`
//!   (GPT: BIOS boot partition with GRUB's core.img, ext4 root with the boot
//!   image's kernel, swap, an LVM PV holding `vgboot/data`), cached in
//!   `target/qemu/bootdisk/` and rebuilt when the script or the boot image
//!   changed. Booted by SeaBIOS, its /init checks the disk and prints
//!   `bootdisk: up root=BYTES swap=UUID lv=ok|missing data=BYTES`.
//! - [`initrd_with`]: the boot image's initrd with an uncompressed newc cpio
//!   appended (a job file for the source), since QEMU takes one `-initrd`.
//! - [`Guest`]: a QEMU process started from an explicit argument list, with
//!   the same console capture, logs and process-group handling as a
//!   [`crate::vm::Vm`]: a source whose initrd carries its job
//!   ([`start_source_with_job`]) and a machine booting a disk through its
//!   firmware ([`boot_disk`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::console::Console;
use crate::migrate::{BOOT, BOOT_MARKERS, PASS};
use crate::net::{Lan, MTU, PREFIX, SOURCE_IP};
use crate::scenario::Scenario;

/// `scripts/bootdisk.sh`'s image and the ids and sizes it wrote to
/// `bootdisk.env`.
#[derive(Debug)]
pub struct BootDisk {
    pub image: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl BootDisk {
    /// A value of `bootdisk.env` (`SWAP_UUID`, `ROOT_PARTUUID`).
    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in bootdisk.env: {:?}", self.env))
    }

    /// A number of `bootdisk.env` (`ROOT_SIZE`, `DATA_SIZE`).
    pub fn num(&self, key: &str) -> u64 {
        self.var(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key}={} is not a number", self.var(key)))
    }
}

/// The boot disk, built (as root) by `scripts/bootdisk.sh` into
/// `target/qemu/bootdisk/` once per test process; the script does nothing
/// when its image is newer than its inputs.
pub fn bootdisk() -> &'static BootDisk {
    static B: OnceLock<BootDisk> = OnceLock::new();
    B.get_or_init(|| {
        crate::require_root();
        let dir = crate::target_dir().join("qemu").join("bootdisk");
        let img = crate::image::boot_image();
        let st = Command::new("bash")
            .arg(crate::workspace().join("scripts/bootdisk.sh"))
            .arg(&dir)
            .env("FERRY_IMAGE_DIR", &img.dir)
            .status()
            .expect("running scripts/bootdisk.sh");
        assert!(st.success(), "scripts/bootdisk.sh {} failed", dir.display());
        let text = std::fs::read_to_string(dir.join("bootdisk.env")).unwrap();
        BootDisk {
            image: dir.join("bootdisk.img"),
            env: parse_env(&text),
        }
    })
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A newc cpio archive (what the kernel unpacks into its rootfs) of
/// `files`: each path's parent directories first, then the file (mode
/// 0644, owned by root), then the trailer.
pub fn newc(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
        let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            1_700_000_000,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut out = Vec::new();
    let mut ino = 1;
    let mut dirs: Vec<String> = Vec::new();
    for (path, data) in files {
        let path = path.trim_start_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let d = parts[..i].join("/");
            if !dirs.contains(&d) {
                entry(&mut out, ino, &d, 0o040755, &[]);
                ino += 1;
                dirs.push(d);
            }
        }
        entry(&mut out, ino, path, 0o100644, data);
        ino += 1;
    }
    entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    out
}

/// `base` (the boot image's initrd) padded to 4 bytes with zeros, then a
/// newc cpio of `files`, written to `out`. The kernel unpacks both; a file
/// in the second archive wins.
pub fn initrd_with(base: &Path, out: &Path, files: &[(&str, &[u8])]) {
    let mut bytes = std::fs::read(base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
    bytes.extend_from_slice(&newc(files));
    std::fs::write(out, bytes).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// A QEMU guest started from an explicit argument list: its console goes
/// to `<name>.console.log`, its command line to `<name>.cmdline`, QEMU's
/// own messages to `<name>.qemu-stderr.log` (all in the work directory);
/// it runs in its own process group and is killed when dropped.
pub struct Guest {
    pub name: String,
    child: Option<Child>,
    pub console: Console,
    stderr: PathBuf,
    monitor: Option<PathBuf>,
}

impl Guest {
    pub fn spawn(dir: &Path, name: &str, args: &[String]) -> Guest {
        let cmdline = crate::vm::shell_words(args);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.cmdline")))
            .unwrap();
        writeln!(f, "qemu-system-x86_64 {cmdline}").unwrap();
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = crate::vm::spawn_qemu(cmd);
        let console = Console::capture(
            name,
            child.stdout.take().unwrap(),
            &dir.join(format!("{name}.console.log")),
        );
        let stderr = dir.join(format!("{name}.qemu-stderr.log"));
        let mut err = child.stderr.take().unwrap();
        let path = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&buf));
        });
        let monitor = args
            .iter()
            .find_map(|a| a.strip_prefix("unix:"))
            .and_then(|a| a.split(',').next())
            .map(PathBuf::from);
        Guest {
            name: name.to_string(),
            child: Some(child),
            console,
            stderr,
            monitor,
        }
    }

    /// Wait for `marker` on the console (in order, see
    /// [`Console::wait_for`]); panics with the last lines and QEMU's own
    /// messages.
    pub fn expect(&mut self, marker: &str, timeout: Duration) -> String {
        match self.console.wait_for(marker, timeout) {
            Ok(line) => line,
            Err(e) => {
                self.console.wait_closed(Duration::from_millis(500));
                std::thread::sleep(Duration::from_millis(200));
                let qemu = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                if qemu.trim().is_empty() {
                    panic!("{e}")
                }
                panic!("{e}\nQEMU said:\n{}", qemu.trim_end())
            }
        }
    }

    /// Wait for QEMU to exit by itself (the guest powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut().expect("not yet reaped");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.console.wait_closed(Duration::from_secs(5));
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: QEMU still running {} s after it should have powered off; last lines:\n{}",
                self.name,
                timeout.as_secs(),
                crate::console::tail(&self.console.text(), 25)
            );
            self.console.wait_closed(Duration::from_millis(200));
        }
    }

    /// Kill QEMU (its process group) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::vm::kill_group(&mut child);
            self.console.wait_closed(Duration::from_secs(5));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
        if let Some(m) = &self.monitor {
            let _ = std::fs::remove_file(m);
        }
    }
}

/// Where the source's job file lies in its initrd.
pub const JOB_PATH: &str = "/etc/ferry/job.toml";

/// Boot a source guest with `disks` whose only instructions are the job
/// file `job` (a TOML text, put at [`JOB_PATH`] in a copy of the boot
/// image's initrd) and `ferry.job=`: no receiver, code or task on the
/// kernel command line. Unattended, powers off after the send.
pub fn start_source_with_job(
    sc: &Scenario,
    lan: &Lan,
    name: &str,
    disks: &[PathBuf],
    job: &str,
) -> Guest {
    sc.note(&format!("{name}-job.toml"), job);
    let initrd = sc.path(&format!("{name}-initrd.img"));
    let img = crate::image::boot_image();
    initrd_with(&img.initrd, &initrd, &[(JOB_PATH, job.as_bytes())]);
    let args = format!(
        "ferry.role=source ferry.auto=1 ferry.ip={SOURCE_IP}/{PREFIX} ferry.mtu={MTU} \
         ferry.job={JOB_PATH} ferry.post=poweroff"
    );
    let mut b = sc.vm(name).kernel(&args).mac(2).nic(lan.nic());
    for d in disks {
        b = b.disk(d);
    }
    let mut a = b.args();
    let at = a
        .iter()
        .position(|x| x == "-initrd")
        .expect("a kernel boot has -initrd");
    a[at + 1] = initrd.display().to_string();
    let g = Guest::spawn(&sc.dir, name, &a);
    sc.step(&format!("{name} guest started (job in its initrd)"));
    g
}

/// Wait for a source guest's whole unattended run (as
/// [`crate::migrate::finish_source`]): boot markers, the `ferry send`
/// command (with `--job`), the summary line, `ferry: done rc=0`, power-off.
/// Returns the summary line.
pub fn finish_source_guest(sc: &Scenario, src: &mut Guest, task: &str) -> String {
    for m in BOOT_MARKERS {
        src.expect(m, BOOT);
    }
    let cmd = src.expect("ferry: from the kernel arguments: ferry send", BOOT);
    assert!(
        cmd.contains(&format!("--job {JOB_PATH}")),
        "{}: the send does not use the job file: {cmd}",
        src.name
    );
    sc.step(&format!("{} sending", src.name));
    let summary = src.expect(&format!("task {task}: "), PASS);
    sc.step(&format!("{}: {}", src.name, summary.trim()));
    let done = src.expect("ferry: done rc=", PASS);
    assert!(
        done.trim().ends_with("rc=0"),
        "{}: ferry send failed: {done}",
        src.name
    );
    let st = src.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{}: QEMU exited with {st}", src.name);
    sc.step(&format!("{} powered off", src.name));
    summary
}

/// Boot `disk` the way a server boots its disk: SeaBIOS, the disk as the
/// first (virtio) drive, no `-kernel`. `snapshot` keeps the image as it
/// was (the guest's writes go to a temporary overlay).
pub fn boot_disk(sc: &Scenario, name: &str, disk: &Path, snapshot: bool) -> Guest {
    let snap = if snapshot { ",snapshot=on" } else { "" };
    let args: Vec<String> = [
        "-name",
        name,
        "-machine",
        "pc,accel=tcg",
        "-cpu",
        "qemu64",
        "-m",
        "512",
        "-smp",
        "1",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-boot",
        "c",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "-drive".to_string(),
        format!(
            "file={},format=raw,if=virtio,cache=unsafe{snap}",
            disk.display()
        ),
        // SeaBIOS's own log (which disk it tried, "No bootable device"),
        // kept beside the console for a failure dump.
        "-chardev".to_string(),
        format!(
            "file,id=seabios,path={}",
            sc.path(&format!("{name}.seabios.log")).display()
        ),
        "-device".to_string(),
        "isa-debugcon,iobase=0x402,chardev=seabios".to_string(),
    ])
    .collect();
    let g = Guest::spawn(&sc.dir, name, &args);
    sc.step(&format!("{name}: booting {} from its disk", disk.display()));
    g
}

/// What the boot disk's /init found, from its `bootdisk: up` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Up {
    /// The root filesystem's size in bytes.
    pub root: u64,
    /// The swap partition's UUID.
    pub swap: String,
    /// `ok` when vgboot/data activated, checked clean and its files intact.
    pub lv: String,
    /// vgboot/data's filesystem size in bytes (0 unless `lv` is ok).
    pub data: u64,
}

/// Parse `bootdisk: up root=N swap=UUID lv=ok data=N`.
pub fn parse_up(line: &str) -> Option<Up> {
    let rest = &line[line.find("bootdisk: up ")? + "bootdisk: up ".len()..];
    let kv: BTreeMap<&str, &str> = rest
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    Some(Up {
        root: kv.get("root")?.parse().ok()?,
        swap: kv.get("swap")?.to_string(),
        lv: kv.get("lv")?.to_string(),
        data: kv.get("data")?.parse().ok()?,
    })
}

/// Wait for a disk-booted guest's `bootdisk: up` line (GRUB, the kernel,
/// the checks) and its power-off; returns what it found. A failed check
/// (`bootdisk: FAIL ...`) powers the guest off, which fails the wait at
/// once with the console's last lines.
pub fn expect_up(sc: &Scenario, g: &mut Guest) -> Up {
    g.expect("Booting `bootdisk'", BOOT);
    sc.step(&format!("{}: GRUB boots the kernel", g.name));
    g.expect("bootdisk: init", BOOT);
    let line = g.expect("bootdisk: up ", BOOT);
    let up = parse_up(&line).unwrap_or_else(|| panic!("{}: cannot parse {line:?}", g.name));
    sc.step(&format!("{}: {}", g.name, line.trim()));
    let st = g.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{}: QEMU exited with {st}", g.name);
    up
}

/// What a source sends for plan `spec` on the host's image files, as
/// `(volume name, digest)` in the plan's order: the same volumes and used
/// maps `ferry send --job` opens (the bytes in front of the partitions,
/// then each selected partition), each digest BLAKE3 over the BLAKE3 hashes
/// of its 1 MiB chunks, as [`crate::check::expected_digests`] computes it
/// for whole disks.
pub fn plan_digests(spec: &ferry::plan::PlanSpec) -> Vec<(String, String)> {
    use ferry::disk::ReadAt;
    use ferry::proto::digest;
    use ferry::proto::message::HashAlgo;
    use ferry::source::chunk::{CHUNK_SIZE, pieces};
    let (_, vols) =
        ferry::source::volumes::open_plan(spec, &[], &ferry::disk::sysfs::Roots::system())
            .unwrap_or_else(|e| panic!("planning {spec:?} on the host: {e:#}"));
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    vols.iter()
        .map(|v| {
            let hashes: Vec<String> = pieces(&v.used, CHUNK_SIZE)
                .map(|(off, len)| {
                    let b = &mut buf[..len as usize];
                    v.reader.read_exact_at(b, off).unwrap();
                    digest::hash_hex(HashAlgo::Blake3, &digest::hash(HashAlgo::Blake3, b))
                })
                .collect();
            (
                v.name.clone(),
                ferry::source::tally::digest_of(hashes.iter().map(String::as_str)),
            )
        })
        .collect()
}

/// Copy the image `from` to `dest`, sparse; returns its size.
pub fn copy_image(from: &Path, dest: &Path) -> u64 {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(dest)
        .status()
        .expect("running cp");
    assert!(
        st.success(),
        "cp {} {} failed",
        from.display(),
        dest.display()
    );
    std::fs::metadata(dest).unwrap().len()
}

/// Whether two files hold the same bytes.
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    let (fa, fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let len = fa.metadata().unwrap().len();
    if fb.metadata().unwrap().len() != len {
        return false;
    }
    use std::os::unix::fs::FileExt;
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut p = 0;
    while p < len {
        let n = ((len - p) as usize).min(x.len());
        fa.read_exact_at(&mut x[..n], p).unwrap();
        fb.read_exact_at(&mut y[..n], p).unwrap();
        if x[..n] != y[..n] {
            return false;
        }
        p += n as u64;
    }
    true
}

/// The byte runs of LV `vg/lv` in the disk image ferry's inventory `inv`
/// (its JSON) describes, from the LV's linear segments and its PV's
/// partition and `pe_start`: `(lv_offset, length, image_offset)`.
pub fn lv_runs(inv: &serde_json::Value, vg: &str, lv: &str) -> Vec<(u64, u64, u64)> {
    let g = inv["volume_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == vg)
        .unwrap_or_else(|| panic!("no VG {vg} in {inv:#}"));
    let ext = g["extent_size"].as_u64().unwrap();
    let l = g["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == lv)
        .unwrap_or_else(|| panic!("no LV {vg}/{lv} in {g:#}"));
    let part_start = |volume: &str| -> u64 {
        inv["disks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["partitions"].as_array().unwrap())
            .find(|p| p["volume"] == volume)
            .unwrap_or_else(|| panic!("no partition {volume}"))["start"]
            .as_u64()
            .unwrap()
    };
    l["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["type"], "linear", "{vg}/{lv}: {s}");
            let st = &s["stripes"][0];
            let pv = g["pvs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["key"] == st["pv"])
                .unwrap();
            let at = part_start(pv["volume"].as_str().unwrap())
                + pv["pe_start"].as_u64().unwrap()
                + st["start_extent"].as_u64().unwrap() * ext;
            (
                s["start_extent"].as_u64().unwrap() * ext,
                s["extent_count"].as_u64().unwrap() * ext,
                at,
            )
        })
        .collect()
}

/// LV `vg/lv` of image `img` copied out into `out` (sparse), from
/// [`lv_runs`].
pub fn cut_lv(img: &Path, inv: &serde_json::Value, vg: &str, lv: &str, out: &Path) {
    use std::os::unix::fs::FileExt;
    let runs = lv_runs(inv, vg, lv);
    let size = runs.iter().map(|r| r.0 + r.1).max().unwrap_or(0);
    let s = std::fs::File::open(img).unwrap();
    let d = std::fs::File::create(out).unwrap();
    d.set_len(size).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    for (lv_off, len, at) in runs {
        let mut p = 0;
        while p < len {
            let n = ((len - p) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], at + p).unwrap();
            if buf[..n].iter().any(|b| *b != 0) {
                d.write_all_at(&buf[..n], lv_off + p).unwrap();
            }
            p += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_up_line_parses() {
        let u = parse_up("bootdisk: up root=167772160 swap=b007-3 lv=ok data=213909504").unwrap();
        assert_eq!(
            u,
            Up {
                root: 167772160,
                swap: "b007-3".into(),
                lv: "ok".into(),
                data: 213909504
            }
        );
        assert_eq!(parse_up("bootdisk: up root=x swap=a lv=ok data=1"), None);
        assert_eq!(parse_up("bootdisk: FAIL no root"), None);
    }

    #[test]
    fn newc_archives_list_dirs_files_and_the_trailer() {
        let a = newc(&[("/etc/ferry/job.toml", b"[plan]\n")]);
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&a);
        let names: Vec<&str> = [
            "etc\0",
            "etc/ferry\0",
            "etc/ferry/job.toml\0",
            "TRAILER!!!\0",
        ]
        .into_iter()
        .filter(|n| text.contains(n))
        .collect();
        assert_eq!(names.len(), 4, "{text:?}");
        assert!(text.contains("[plan]\n"));
        // cpio itself reads it back, when installed.
        if let Ok(mut c) = Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            c.stdin.take().unwrap().write_all(&a).unwrap();
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "etc\netc/ferry\netc/ferry/job.toml\n"
            );
        }
    }

    #[test]
    fn env_files_parse() {
        let e = parse_env("A=1\nSWAP_UUID=b007\n\n");
        assert_eq!(e["A"], "1");
        assert_eq!(e["SWAP_UUID"], "b007");
    }
}
