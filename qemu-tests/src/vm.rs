//! The VM builder and a running guest.
//!
//! Always TCG (`-accel tcg`; the machine's /dev/kvm cannot run a stock
//! kernel), `-nodefaults -no-reboot -display none`, the first serial port
//! on QEMU's stdout (captured by [`Console`]), an HMP monitor on a unix
//! socket in the work directory (`set_link`, `quit`). QEMU runs in its own
//! process group and dies with the test: killed on drop (also while a
//! panic unwinds) and by `PR_SET_PDEATHSIG` if the test process dies first.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::console::Console;
use crate::net::Nic;

/// How the guest boots.
#[derive(Debug, Clone)]
pub enum Boot {
    /// `-kernel`/`-initrd`/`-append`: the fast path for scenarios.
    Kernel { append: String },
    /// The hybrid ISO as a CD (`-cdrom`), BIOS (SeaBIOS) or UEFI (OVMF).
    Iso { uefi: bool },
    /// The network: the NIC's iPXE ROM fetches `bootfile` from QEMU's
    /// TFTP server (give the VM a [`Nic::Tftp`]).
    Pxe { uefi: bool },
}

static NEXT_MAC: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0x10);

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// A guest to start.
pub struct VmBuilder {
    name: String,
    dir: PathBuf,
    boot: Option<Boot>,
    mem_mib: u32,
    disks: Vec<(PathBuf, bool)>,
    nics: Vec<Nic>,
    mac: Option<u8>,
    /// Keep the serial port's input open for [`Vm::keys`].
    keyboard: bool,
}

impl VmBuilder {
    /// A guest called `name` (used for its log files) in work dir `dir`.
    pub fn new(name: &str, dir: &Path) -> VmBuilder {
        VmBuilder {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            boot: None,
            mem_mib: 768,
            disks: Vec::new(),
            nics: Vec::new(),
            mac: None,
            keyboard: false,
        }
    }

    /// Boot the image's kernel and initrd directly with these kernel
    /// arguments after the harness's own (`console=ttyS0 panic=-1 quiet`).
    pub fn kernel(mut self, ferry_args: &str) -> Self {
        self.boot = Some(Boot::Kernel {
            append: format!("console=ttyS0,115200 panic=-1 quiet {ferry_args}"),
        });
        self
    }

    pub fn boot(mut self, boot: Boot) -> Self {
        self.boot = Some(boot);
        self
    }

    /// Guest memory, 512..=1024 MiB (768 by default).
    pub fn mem(mut self, mib: u32) -> Self {
        assert!(
            (512..=1024).contains(&mib),
            "memory {mib} MiB: keep guests at 512..1024 MiB"
        );
        self.mem_mib = mib;
        self
    }

    /// A raw disk image as the next virtio disk (`/dev/vda`, `/dev/vdb`...).
    pub fn disk(mut self, path: &Path) -> Self {
        self.disks.push((path.to_path_buf(), false));
        self
    }

    /// A raw disk image the guest cannot write (QEMU opens it read-only).
    pub fn disk_ro(mut self, path: &Path) -> Self {
        self.disks.push((path.to_path_buf(), true));
        self
    }

    /// The last byte of the first NIC's MAC (`52:54:00:00:87:XX`): a guest
    /// booted again keeps its address in its peers' ARP caches. Without
    /// it, each NIC gets a new one.
    pub fn mac(mut self, last: u8) -> Self {
        self.mac = Some(last);
        self
    }

    /// Keep the first serial port's input open: [`Vm::keys`] types on it.
    pub fn keyboard(mut self) -> Self {
        self.keyboard = true;
        self
    }

    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    /// The full QEMU argument list (without the program).
    pub fn args(&self) -> Vec<String> {
        let img = crate::image::boot_image();
        let mut a: Vec<String> = [
            "-name",
            &self.name,
            "-machine",
            "pc,accel=tcg",
            "-cpu",
            "qemu64",
            "-m",
            &self.mem_mib.to_string(),
            "-smp",
            "1",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(format!(
            "unix:{},server=on,wait=off",
            self.monitor_path().display()
        ));
        let boot = self
            .boot
            .clone()
            .expect("VmBuilder: say how the guest boots");
        let uefi = matches!(boot, Boot::Iso { uefi: true } | Boot::Pxe { uefi: true });
        if uefi {
            let vars = self.dir.join(format!("{}-OVMF_VARS.fd", self.name));
            std::fs::copy(OVMF_VARS, &vars).unwrap_or_else(|e| {
                panic!("{OVMF_VARS}: {e} (apt-get install ovmf; scripts/test.sh qemu does)")
            });
            a.push("-drive".into());
            a.push(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
            a.push("-drive".into());
            a.push(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        match &boot {
            Boot::Kernel { append } => {
                a.extend([
                    "-kernel".into(),
                    img.kernel.display().to_string(),
                    "-initrd".into(),
                    img.initrd.display().to_string(),
                    "-append".into(),
                    append.clone(),
                ]);
            }
            Boot::Iso { .. } => {
                a.extend(["-cdrom".into(), img.iso.display().to_string()]);
                a.extend(["-boot".into(), "d".into()]);
            }
            Boot::Pxe { .. } => {
                a.extend(["-boot".into(), "n".into()]);
            }
        }
        for (path, ro) in &self.disks {
            let ro = if *ro { ",readonly=on" } else { "" };
            a.push("-drive".into());
            a.push(format!(
                "file={},format=raw,if=virtio,cache=unsafe{ro}",
                path.display()
            ));
        }
        let pxe = matches!(boot, Boot::Pxe { .. });
        for (i, nic) in self.nics.iter().enumerate() {
            // Unique in this test process: guests on one segment must differ.
            let mac = match self.mac {
                Some(m) if i == 0 => m,
                _ => NEXT_MAC.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            };
            let bootindex = (pxe && uefi && i == 0).then_some(0);
            a.extend(nic.args(i, mac, bootindex));
        }
        a
    }

    fn monitor_path(&self) -> PathBuf {
        self.dir.join(format!("{}.monitor", self.name))
    }

    /// Start QEMU. Its command line goes to `<name>.cmdline`, its console
    /// to `<name>.console.log` (appended to when the same name boots again:
    /// a second boot's log follows the first).
    pub fn spawn(self) -> Vm {
        let args = self.args();
        let cmdline = shell_words(&args);
        let cmd_file = self.dir.join(format!("{}.cmdline", self.name));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cmd_file)
            .unwrap();
        writeln!(f, "qemu-system-x86_64 {cmdline}").unwrap();
        let _ = std::fs::remove_file(self.monitor_path());
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(&args)
            .stdin(if self.keyboard {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_qemu(cmd);
        let keys = child.stdin.take();
        let log = self.dir.join(format!("{}.console.log", self.name));
        let console = Console::capture(&self.name, child.stdout.take().unwrap(), &log);
        // QEMU's own messages (bad arguments, warnings) go to a side file.
        let mut err = child.stderr.take().unwrap();
        let err_path = self.dir.join(format!("{}.qemu-stderr.log", self.name));
        let stderr = err_path.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(err_path)
                .and_then(|mut f| f.write_all(&buf));
        });
        Vm {
            name: self.name.clone(),
            pid: child.id(),
            keys,
            child: Some(child),
            console,
            cmdline,
            monitor: self.monitor_path(),
            stderr,
            started: Instant::now(),
        }
    }
}

/// A running guest.
pub struct Vm {
    pub name: String,
    pub pid: u32,
    /// The serial port's input, with [`VmBuilder::keyboard`].
    keys: Option<std::process::ChildStdin>,
    child: Option<Child>,
    pub console: Console,
    pub cmdline: String,
    monitor: PathBuf,
    stderr: PathBuf,
    pub started: Instant,
}

impl Vm {
    /// Wait for `marker` on the console (see [`Console::expect`]).
    /// Wait for `marker` on the console (see [`Console::wait_for`]);
    /// panics with the console's last lines and QEMU's own messages.
    pub fn expect(&mut self, marker: &str, timeout: Duration) -> String {
        match self.console.wait_for(marker, timeout) {
            Ok(line) => line,
            Err(e) => {
                // QEMU's stderr is written when it exits: give it a moment.
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

    /// Wait for `marker` anywhere on the console (a full-screen program's
    /// output has no lines; see [`Console::wait_text`]).
    pub fn expect_screen(&mut self, marker: &str, timeout: Duration) {
        if let Err(e) = self.console.wait_text(marker, timeout) {
            panic!("{e}")
        }
    }

    /// Type `text` on the first serial port (`\r` is Enter).
    pub fn keys(&mut self, text: &str) {
        let k = self
            .keys
            .as_mut()
            .unwrap_or_else(|| panic!("{}: built without .keyboard()", self.name));
        k.write_all(text.as_bytes())
            .and_then(|()| k.flush())
            .unwrap_or_else(|e| panic!("{}: typing on the serial port: {e}", self.name));
    }

    /// An HMP monitor command (`set_link n0 off`); returns its output.
    pub fn monitor(&self, command: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match UnixStream::connect(&self.monitor) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    panic!("{}: monitor {}: {e}", self.name, self.monitor.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        // Read until the next prompt after the echoed command.
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            let t = String::from_utf8_lossy(&out);
            if t.matches("(qemu)").count() >= 2 {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Wait for QEMU to exit by itself (the guest powered off), up to
    /// `timeout`; panics with the console's tail when it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("not yet reaped");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.console.wait_closed(Duration::from_secs(5));
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: QEMU still running {} s after it should have powered off; last lines:\n{}",
                    self.name,
                    timeout.as_secs(),
                    crate::console::tail(&self.console.text(), 25)
                );
            }
            self.console.wait_closed(Duration::from_millis(200));
        }
    }

    /// Kill QEMU (its whole process group) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
            self.console.wait_closed(Duration::from_secs(5));
        }
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// Start a QEMU command in its own process group, to be killed with the
/// test: `PR_SET_PDEATHSIG` kills it if the spawning thread dies first.
pub fn spawn_qemu(mut cmd: Command) -> Child {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; it only asks the kernel to kill the child if the thread that
    // spawned it exits first.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start qemu-system-x86_64: {e} (apt-get install qemu-system-x86; scripts/test.sh qemu does)"
        )
    })
}

/// Kill a child started by [`spawn_qemu`] (its whole process group) and
/// reap it.
pub fn kill_group(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        // SAFETY: kill(2) with a negative pid signals the process group the
        // child leads (process_group(0) made its pgid its pid); no memory
        // is involved.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.monitor);
    }
}

/// Arguments quoted for a shell, to paste when reproducing a failure.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,.:/+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_what_needs_it() {
        let a = [
            "-append".to_string(),
            "console=ttyS0 ferry.auto=1".into(),
            "it's".into(),
        ];
        assert_eq!(
            shell_words(&a),
            "-append 'console=ttyS0 ferry.auto=1' 'it'\\''s'"
        );
    }

    #[test]
    fn a_killed_process_group_leaves_nothing_behind() {
        // The same spawning and killing as a Vm, on a shell that starts a
        // grandchild: both die.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 32];
        let n = out.read(&mut buf).unwrap();
        let grandchild: i32 = String::from_utf8_lossy(&buf[..n]).trim().parse().unwrap();
        // SAFETY: signals the group the test's own child leads.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for whoever reaps orphans here.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        };
        while alive(grandchild) {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
