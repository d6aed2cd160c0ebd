//! Kernel arguments: the unattended way to run ferry from the boot image.
//!
//! The `ferry.*` words of the kernel command line (DESIGN.md) name the same
//! fields as the CLI flags and the job file, and turn into the same
//! `ferry receive` or `ferry send` command line; the job file a source is
//! given is read by `ferry send --job`, so the precedence is the CLI's:
//! kernel argument (a flag) > job file > built-in default.
//!
//! /init handles `ferry.ip`, `ferry.mtu` and `ferry.post` itself; they are
//! parsed here too, so that a typo in any `ferry.*` word is an error that
//! names it rather than a silently ignored setting.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::disk::sysfs::{self, Roots};
use crate::proto::tls::parse_fingerprint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Receiver,
}

/// What /init does after an unattended run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    Poweroff,
    Reboot,
    Shell,
}

/// The `ferry.*` kernel arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootArgs {
    pub role: Option<Role>,
    /// `HOST[:PORT]` of the receiver (source).
    pub receiver: Option<String>,
    pub fingerprint: Option<String>,
    pub code: Option<String>,
    /// A job file: a path in the image or an `http://` URL (source).
    pub job: Option<String>,
    /// Start without questions.
    pub auto: bool,
    /// `dhcp` or `ADDR/PREFIX[,GW]` (applied by /init).
    pub ip: Option<String>,
    pub mtu: Option<u32>,
    /// Mbit/s, 0..=1000 (0: none).
    pub rate: Option<u64>,
    pub post: Option<Post>,
    /// Receiver: the disks to write, comma-separated.
    pub targets: Vec<String>,
    /// Source: the volumes to send, comma-separated (default: every disk).
    pub volumes: Vec<String>,
    /// Source: `full`, `resume`, `incremental` or `verify`.
    pub pass: Option<String>,
    pub task: Option<String>,
    /// Console size when the terminal reports none (the TUI).
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

/// A `ferry.*` word that cannot be used, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootError(pub String);

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootError {}

fn bad(key: &str, value: &str, why: &str) -> BootError {
    BootError(format!("kernel argument ferry.{key}={value}: {why}"))
}

/// Split a kernel command line into words: whitespace separates them, and
/// double quotes keep spaces inside a value (`ferry.code="AB CD"`) and are
/// dropped, as the kernel does.
pub fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `ferry.*` arguments of `cmdline`; other words are the kernel's and
/// are ignored. A word given twice: the last one counts, as in the kernel.
pub fn parse(cmdline: &str) -> Result<BootArgs, BootError> {
    let mut a = BootArgs::default();
    for w in words(cmdline) {
        let Some(rest) = w.strip_prefix("ferry.") else {
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let v = value.to_string();
        let need = |what: &str| -> Result<(), BootError> {
            if value.is_empty() {
                Err(bad(key, value, &format!("needs {what}")))
            } else {
                Ok(())
            }
        };
        match key {
            "role" => {
                a.role = Some(match value {
                    "source" => Role::Source,
                    "receiver" => Role::Receiver,
                    _ => return Err(bad(key, value, "must be source or receiver")),
                })
            }
            "receiver" => {
                need("HOST[:PORT]")?;
                a.receiver = Some(v);
            }
            "fingerprint" => {
                parse_fingerprint(value).map_err(|e| bad(key, value, &e.to_string()))?;
                a.fingerprint = Some(v);
            }
            "code" => {
                need("the receiver's pairing code")?;
                a.code = Some(v);
            }
            "job" => {
                need("a path or an http:// URL")?;
                a.job = Some(v);
            }
            "auto" => {
                a.auto = match value {
                    "1" | "" => true,
                    "0" => false,
                    _ => return Err(bad(key, value, "must be 0 or 1")),
                }
            }
            "ip" => {
                need("dhcp or ADDR/PREFIX[,GW]")?;
                a.ip = Some(v);
            }
            // Read by /init (docs/boot-image.md); checked here too.
            "dns" => {
                for a in value.split(',') {
                    a.parse::<std::net::IpAddr>()
                        .map_err(|_| bad(key, value, "must be IP addresses, comma-separated"))?;
                }
            }
            "netwait" => {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s <= 600)
                    .ok_or_else(|| bad(key, value, "must be seconds from 0 to 600"))?;
            }
            "break" => {
                if !["0", "1", ""].contains(&value) {
                    return Err(bad(key, value, "must be 0 or 1"));
                }
            }
            "mtu" => {
                a.mtu = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|m| (576..=65536).contains(m))
                        .ok_or_else(|| bad(key, value, "must be a number from 576 to 65536"))?,
                )
            }
            "rate" => {
                a.rate =
                    Some(
                        value.parse().ok().filter(|r| *r <= 1000).ok_or_else(|| {
                            bad(key, value, "must be Mbit/s from 0 (none) to 1000")
                        })?,
                    )
            }
            "post" => {
                a.post = Some(match value {
                    "poweroff" => Post::Poweroff,
                    "reboot" => Post::Reboot,
                    "shell" => Post::Shell,
                    _ => return Err(bad(key, value, "must be poweroff, reboot or shell")),
                })
            }
            "target" => {
                need("DISK[,DISK...]")?;
                a.targets = list(value);
            }
            "volumes" => {
                need("VOLUME[,VOLUME...]")?;
                a.volumes = list(value);
            }
            "pass" => {
                if !["full", "resume", "incremental", "verify"].contains(&value) {
                    return Err(bad(
                        key,
                        value,
                        "must be full, resume, incremental or verify",
                    ));
                }
                a.pass = Some(v);
            }
            "task" => {
                need("a task name")?;
                a.task = Some(v);
            }
            "cols" | "rows" => {
                let n = value
                    .parse()
                    .ok()
                    .filter(|n| (20..=1000).contains(n))
                    .ok_or_else(|| bad(key, value, "must be a number from 20 to 1000"))?;
                if key == "cols" {
                    a.cols = Some(n);
                } else {
                    a.rows = Some(n);
                }
            }
            _ => {
                return Err(BootError(format!(
                    "unknown kernel argument ferry.{key} (known: role, receiver, fingerprint, code, job, \
                     auto, ip, mtu, dns, netwait, break, rate, post, target, volumes, pass, task, cols, rows)"
                )));
            }
        }
    }
    Ok(a)
}

/// The disks a source sends when no volume is named: every disk but
/// removable and read-only ones (the USB stick or CD ferry booted from)
/// and optical drives.
pub fn default_volumes(roots: &Roots) -> std::io::Result<Vec<String>> {
    Ok(sysfs::discover(roots)?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { return false };
            let at = sysfs::attrs(roots, &name);
            !name.starts_with("sr") && at.removable != Some(true) && at.read_only != Some(true)
        })
        .map(|p| p.display().to_string())
        .collect())
}

impl BootArgs {
    /// The ferry command line these arguments run (program name first).
    /// `job` is the local path of the job file, when one was given (an URL
    /// is fetched first, see [`fetch_job`]); `volumes` the default volumes
    /// of a source that names none.
    pub fn command(
        &self,
        job: Option<&Path>,
        volumes: &[String],
    ) -> Result<Vec<String>, BootError> {
        let mut c: Vec<String> = vec!["ferry".into()];
        let opt = |c: &mut Vec<String>, flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                c.push(flag.into());
                c.push(v.clone());
            }
        };
        match self.role {
            None => Err(BootError(
                "no ferry.role= on the kernel command line (source or receiver)".into(),
            )),
            Some(Role::Receiver) => {
                if self.targets.is_empty() {
                    return Err(BootError(
                        "ferry.role=receiver needs ferry.target=DISK[,DISK...]: the disks it may overwrite"
                            .into(),
                    ));
                }
                for (flag, what) in [
                    ("receiver", &self.receiver),
                    ("fingerprint", &self.fingerprint),
                    ("job", &self.job),
                    ("pass", &self.pass),
                    ("task", &self.task),
                ] {
                    if what.is_some() {
                        return Err(BootError(format!(
                            "ferry.{flag}= is for a source, not with ferry.role=receiver"
                        )));
                    }
                }
                c.push("receive".into());
                for t in &self.targets {
                    c.push("--target".into());
                    c.push(t.clone());
                }
                opt(&mut c, "--code", &self.code);
                Ok(c)
            }
            Some(Role::Source) => {
                if !self.targets.is_empty() {
                    return Err(BootError(
                        "ferry.target= is for a receiver; a source names ferry.volumes=".into(),
                    ));
                }
                c.push("send".into());
                if let Some(j) = job {
                    c.push("--job".into());
                    c.push(j.display().to_string());
                }
                opt(&mut c, "--receiver", &self.receiver);
                opt(&mut c, "--fingerprint", &self.fingerprint);
                opt(&mut c, "--code", &self.code);
                opt(&mut c, "--pass", &self.pass);
                opt(&mut c, "--task", &self.task);
                opt(&mut c, "--rate", &self.rate.map(|r| r.to_string()));
                // A job file names its volumes; otherwise every disk.
                let vols = if !self.volumes.is_empty() {
                    self.volumes.clone()
                } else if job.is_some() {
                    Vec::new()
                } else {
                    volumes.to_vec()
                };
                if vols.is_empty() && job.is_none() {
                    return Err(BootError(
                        "no disks to send: none found, and no ferry.volumes= or ferry.job=".into(),
                    ));
                }
                c.extend(vols);
                Ok(c)
            }
        }
    }
}

/// The job file named by `ferry.job`: a path is used as it is; an
/// `http://HOST[:PORT]/PATH` URL is fetched (a few tries: the network may
/// have just come up) into `dir`.
pub fn fetch_job(job: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let Some(rest) = job.strip_prefix("http://") else {
        if job.contains("://") {
            anyhow::bail!(
                "ferry.job={job}: only http:// URLs and paths in the image are supported \
                 (the image has no certificate store for https)"
            );
        }
        return Ok(PathBuf::from(job));
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let mut last = None;
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        match http_get(&hostport, &format!("/{path}")) {
            Ok(body) => {
                std::fs::create_dir_all(dir)?;
                let p = dir.join("job.toml");
                std::fs::write(&p, body)?;
                return Ok(p);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .expect("at least one attempt")
        .context(format!("fetching ferry.job={job}")))
}

/// Most bytes a job file may have.
const MAX_JOB: usize = 1 << 20;

fn http_get(hostport: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(10);
    let addr = hostport
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{hostport}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: ferry\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.take(MAX_JOB as u64 + 16384).read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        anyhow::bail!("the server answered {status:?}");
    }
    let body = raw[split + 4..].to_vec();
    if body.len() > MAX_JOB {
        anyhow::bail!("a job file of more than {MAX_JOB} bytes");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "3f2a9c0d1e4b5a6978877665544332211000ffeeddccbbaa9988776655443322";

    #[test]
    fn words_follow_the_kernels_quoting() {
        assert_eq!(
            words(r#"console=ttyS0  ferry.code="AB CD" quiet"#),
            vec!["console=ttyS0", "ferry.code=AB CD", "quiet"]
        );
        assert_eq!(words("  "), Vec::<String>::new());
        assert_eq!(words(r#"a="""#), vec!["a="]);
    }

    #[test]
    fn a_receiver_and_a_source_become_cli_commands() {
        let rx = parse("BOOT_IMAGE=/vmlinuz ferry.role=receiver ferry.target=/dev/vda,/dev/vdb ferry.code=ABCD-1234 ferry.auto=1 ferry.ip=dhcp").unwrap();
        assert!(rx.auto);
        assert_eq!(
            rx.command(None, &[]).unwrap(),
            [
                "ferry",
                "receive",
                "--target",
                "/dev/vda",
                "--target",
                "/dev/vdb",
                "--code",
                "ABCD-1234"
            ]
        );
        let tx = parse(&format!(
            "ferry.role=source ferry.receiver=10.0.0.5 ferry.fingerprint={FP} ferry.code=abcd-1234 ferry.rate=200 ferry.post=reboot"
        ))
        .unwrap();
        assert_eq!(tx.post, Some(Post::Reboot));
        let disks = vec!["/dev/sda".to_string(), "/dev/sdb".to_string()];
        assert_eq!(
            tx.command(None, &disks).unwrap(),
            [
                "ferry",
                "send",
                "--receiver",
                "10.0.0.5",
                "--fingerprint",
                FP,
                "--code",
                "abcd-1234",
                "--rate",
                "200",
                "/dev/sda",
                "/dev/sdb"
            ]
        );
        // Named volumes replace the default; a job file names its own.
        let named = parse("ferry.role=source ferry.volumes=/dev/sda:2,vg0/root").unwrap();
        assert_eq!(
            named.command(None, &disks).unwrap()[2..],
            ["/dev/sda:2", "vg0/root"]
        );
        let job = parse("ferry.role=source ferry.job=/etc/ferry/job.toml").unwrap();
        assert_eq!(
            job.command(Some(Path::new("/etc/ferry/job.toml")), &disks)
                .unwrap(),
            ["ferry", "send", "--job", "/etc/ferry/job.toml"]
        );
    }

    #[test]
    fn bad_words_are_errors_that_name_them() {
        let err = |s: &str| parse(s).unwrap_err().0;
        assert!(err("ferry.rol=source").contains("unknown kernel argument ferry.rol"));
        assert!(err("ferry.role=sender").contains("ferry.role=sender: must be source or receiver"));
        assert!(err("ferry.rate=1001").contains("ferry.rate=1001"));
        assert!(err("ferry.fingerprint=abc").contains("ferry.fingerprint=abc"));
        assert!(err("ferry.post=halt").contains("poweroff, reboot or shell"));
        assert!(err("ferry.receiver=").contains("needs HOST[:PORT]"));
        assert!(err("ferry.pass=fast").contains("ferry.pass=fast"));
        assert!(err("ferry.mtu=9").contains("ferry.mtu=9"));
        // Other words are the kernel's business; the last of a key counts.
        let a = parse("quiet ferry.rate=5 panic=-1 ferry.rate=7").unwrap();
        assert_eq!(a.rate, Some(7));
        // /init's own words pass when well formed.
        parse("ferry.ip=10.0.0.9/24,10.0.0.1,eth1 ferry.dns=10.0.0.1,1.1.1.1 ferry.netwait=20 ferry.break=1").unwrap();
        assert!(err("ferry.dns=example").contains("ferry.dns=example"));
        assert!(err("ferry.netwait=9999").contains("ferry.netwait=9999"));
    }

    #[test]
    fn roles_refuse_what_they_cannot_use() {
        let c = |s: &str| parse(s).unwrap().command(None, &[]).unwrap_err().0;
        assert!(c("ferry.auto=1").contains("no ferry.role="));
        assert!(c("ferry.role=receiver").contains("needs ferry.target="));
        assert!(
            c("ferry.role=receiver ferry.target=/dev/vda ferry.receiver=1.2.3.4")
                .contains("ferry.receiver= is for a source")
        );
        assert!(
            c("ferry.role=source ferry.target=/dev/vda")
                .contains("ferry.target= is for a receiver")
        );
        assert!(c("ferry.role=source").contains("no disks to send"));
    }

    #[test]
    fn default_volumes_skip_removable_read_only_and_optical_drives() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path().join("sys/block");
        for (name, removable, ro) in [
            ("sda", "0", "0"),
            ("sdb", "1", "0"),
            ("sr0", "0", "0"),
            ("vdc", "0", "1"),
        ] {
            let d = sys.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("size"), "2048\n").unwrap();
            std::fs::write(d.join("removable"), format!("{removable}\n")).unwrap();
            std::fs::write(d.join("ro"), format!("{ro}\n")).unwrap();
        }
        let roots = Roots {
            sys: t.path().join("sys"),
            proc: t.path().join("proc"),
        };
        assert_eq!(default_volumes(&roots).unwrap(), ["/dev/sda"]);
    }

    #[test]
    fn job_urls_other_than_http_are_refused_and_paths_pass_through() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            fetch_job("/etc/job.toml", d.path()).unwrap(),
            Path::new("/etc/job.toml")
        );
        let e = fetch_job("https://example.org/job.toml", d.path()).unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
    }

    #[test]
    fn a_job_is_fetched_over_http() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 256];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the request ended early");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&req).starts_with("GET /jobs/web01.toml HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n[receiver]\n")
                .unwrap();
        });
        let d = tempfile::tempdir().unwrap();
        let p = fetch_job(
            &format!("http://127.0.0.1:{port}/jobs/web01.toml"),
            d.path(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "[receiver]\n");
        server.join().unwrap();
    }
}
