//! A guest's serial console: QEMU writes it to its stdout, a thread copies
//! every byte to a log file and into a shared buffer; the test waits for
//! markers in that buffer, in order, each with a deadline.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    text: String,
    /// The reader saw end of file: QEMU exited (or closed the console).
    closed: bool,
}

/// The console of one guest. Markers are searched from a cursor that each
/// successful [`Console::expect`] moves past the marker's line, so a
/// sequence of `expect`s asserts the order.
pub struct Console {
    name: String,
    log: PathBuf,
    shared: Arc<(Mutex<State>, Condvar)>,
    cursor: usize,
}

impl Console {
    /// Start copying `from` (QEMU's stdout) into `log` and the buffer.
    pub fn capture(name: &str, from: impl Read + Send + 'static, log: &Path) -> Console {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let mut file = File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let s2 = shared.clone();
        std::thread::spawn(move || {
            let mut from = from;
            let mut buf = [0u8; 8192];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = file.write_all(&buf[..n]);
                let _ = file.flush();
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                let (m, cv) = &*s2;
                m.lock().unwrap().text.push_str(&text);
                cv.notify_all();
            }
            let (m, cv) = &*s2;
            m.lock().unwrap().closed = true;
            cv.notify_all();
        });
        Console {
            name: name.to_string(),
            log: log.to_path_buf(),
            shared,
            cursor: 0,
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the guest printed so far.
    pub fn text(&self) -> String {
        self.shared.0.lock().unwrap().text.clone()
    }

    /// Whether the console was closed (QEMU exited).
    pub fn closed(&self) -> bool {
        self.shared.0.lock().unwrap().closed
    }

    /// Wait until a line after the cursor contains `marker`; return that
    /// whole line and move the cursor past it. `Err` says why not (the
    /// deadline passed, or the guest's console closed) with the last lines.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        loop {
            if let Some(i) = st.text[self.cursor..].find(marker) {
                let at = self.cursor + i;
                let start = st.text[..at].rfind('\n').map_or(0, |p| p + 1);
                // A marker is a whole line: wait for its end (or the close).
                match st.text[at..].find('\n') {
                    Some(e) => {
                        let line = st.text[start..at + e].to_string();
                        self.cursor = at + e + 1;
                        return Ok(line);
                    }
                    None if st.closed => {
                        let line = st.text[start..].to_string();
                        self.cursor = st.text.len();
                        return Ok(line);
                    }
                    None => {}
                }
            }
            let now = Instant::now();
            if st.closed || now >= deadline {
                let why = if st.closed {
                    "its console closed (QEMU exited)".to_string()
                } else {
                    format!("no such line within {} s", timeout.as_secs())
                };
                return Err(format!(
                    "{}: waiting for {marker:?}: {why}; last lines:\n{}",
                    self.name,
                    tail(&st.text, 25)
                ));
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
    }

    /// [`Console::wait_for`], panicking on failure.
    pub fn expect(&mut self, marker: &str, timeout: Duration) -> String {
        self.wait_for(marker, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The value after `prefix` on the next line that starts with it
    /// (`fingerprint: ` gives the hex).
    pub fn expect_value(&mut self, prefix: &str, timeout: Duration) -> String {
        let line = self.expect(prefix, timeout);
        let at = line.find(prefix).expect("the line holds the marker");
        line[at + prefix.len()..].trim().to_string()
    }

    /// Whether `marker` appears after the cursor (no waiting).
    pub fn seen(&self, marker: &str) -> bool {
        self.shared.0.lock().unwrap().text[self.cursor..].contains(marker)
    }

    /// Wait until the console closes (QEMU exited), up to `timeout`.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        while !st.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = cv.wait_timeout(st, deadline - now).unwrap().0;
        }
        true
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader fed through a pipe by the test.
    fn piped() -> (std::io::PipeWriter, std::io::PipeReader) {
        let (r, w) = std::io::pipe().unwrap();
        (w, r)
    }

    #[test]
    fn markers_are_found_in_order_with_whole_lines() {
        let dir = std::env::temp_dir().join(format!("qt-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut w, r) = piped();
        let mut c = Console::capture("g", r, &dir.join("a.log"));
        w.write_all(b"ferry: init\r\nferry: network up eth0 169.254.87.1/24\r\nferry: rea")
            .unwrap();
        assert_eq!(
            c.expect("network up", Duration::from_secs(5)),
            "ferry: network up eth0 169.254.87.1/24"
        );
        // "init" is before the cursor now: not found again.
        assert!(!c.seen("ferry: init"));
        // A marker is returned only when its line is complete.
        assert!(
            c.wait_for("ferry: rea", Duration::from_millis(100))
                .is_err()
        );
        w.write_all(b"dy\nfingerprint: ab12 \n").unwrap();
        assert_eq!(
            c.expect("ferry: ready", Duration::from_secs(5)),
            "ferry: ready"
        );
        assert_eq!(
            c.expect_value("fingerprint: ", Duration::from_secs(5)),
            "ab12"
        );
        drop(w);
        assert!(c.wait_closed(Duration::from_secs(5)));
        let e = c.wait_for("never", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("console closed"), "{e}");
        assert!(
            std::fs::read_to_string(dir.join("a.log"))
                .unwrap()
                .contains("ferry: ready")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_marker_fails_at_its_deadline_with_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("qt-console2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut w, r) = piped();
        let mut c = Console::capture("rx", r, &dir.join("b.log"));
        w.write_all(b"booting\n").unwrap();
        let t = Instant::now();
        let e = c
            .wait_for("ferry: ready", Duration::from_millis(300))
            .unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(
            e.contains("rx: waiting for \"ferry: ready\"") && e.contains("booting"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
