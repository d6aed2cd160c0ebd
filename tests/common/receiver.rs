//! `ferry receive` as a child process, for tests that need real processes
//! (kill, restart, the control API over the wire).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running receiver and what it announced; killed when dropped.
pub struct ReceiverProc {
    pub child: Child,
    pub port: u16,
    pub api: SocketAddr,
    pub fingerprint: String,
    pub token: String,
    /// Its stderr, collected in the background.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ReceiverProc {
    /// `ferry send` to this receiver with `code`; add the volumes and any
    /// other flags.
    #[allow(dead_code)]
    pub fn sender(&self, code: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.arg("send")
            .args(["--receiver", &format!("127.0.0.1:{}", self.port)])
            .args(["--fingerprint", &self.fingerprint, "--code", code]);
        c
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ReceiverProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `ferry receive` on `targets` with state in `dir/state`, free ports
/// on 127.0.0.1 and pairing code `code`. `Err` carries its stderr when it
/// refuses to start.
pub fn spawn_receiver(dir: &Path, targets: &[&Path], code: &str) -> Result<ReceiverProc, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["receive", "--listen", "127.0.0.1", "--data-port", "0"])
        .args(["--api-port", "0", "--code", code])
        .arg("--state-dir")
        .arg(dir.join("state"));
    for t in targets {
        cmd.arg("--target").arg(t);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let mut g = log2.lock().unwrap();
            g.push_str(&l);
            g.push('\n');
        }
    });
    let (mut port, mut api, mut fp, mut token) = (None, None, None, None);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(a) = l.strip_prefix("listening: ") {
            port = a.rsplit(':').next().and_then(|p| p.parse().ok());
        } else if let Some(a) = l.strip_prefix("api: https://") {
            api = a.parse().ok();
        } else if let Some(f) = l.strip_prefix("fingerprint: ") {
            fp = Some(f.to_string());
        } else if let Some(t) = l.strip_prefix("api token: ") {
            token = Some(t.to_string());
        } else if l.starts_with("targets: ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    match (port, api, fp, token) {
        (Some(port), Some(api), Some(fingerprint), Some(token)) => Ok(ReceiverProc {
            child,
            port,
            api,
            fingerprint,
            token,
            log,
        }),
        _ => {
            let _ = child.wait();
            // Give the stderr reader a moment to finish.
            std::thread::sleep(std::time::Duration::from_millis(100));
            Err(log.lock().unwrap().clone())
        }
    }
}
