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
    /// What a full-screen program shows, and how much text it has seen.
    screen: Screen,
    fed: usize,
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
            screen: Screen::default(),
            fed: 0,
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

    /// Wait until `marker` is on the screen a full-screen program (the
    /// TUI) draws: the console's output is played into an 80x24 screen
    /// ([`Screen`]; cursor moves, clears, text), and a row must contain the
    /// marker. Such programs skip unchanged cells, so their output has no
    /// lines to match.
    pub fn wait_text(&mut self, marker: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap();
        loop {
            self.screen.feed(&st.text[self.fed..]);
            self.fed = st.text.len();
            if self.screen.rows().iter().any(|r| r.contains(marker)) {
                return Ok(());
            }
            let now = Instant::now();
            if st.closed || now >= deadline {
                let why = if st.closed {
                    "its console closed (QEMU exited)".to_string()
                } else {
                    format!("not shown within {} s", timeout.as_secs())
                };
                return Err(format!(
                    "{}: waiting for {marker:?} on the screen: {why}; the screen:\n{}",
                    self.name,
                    self.screen.rows().join("\n")
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

/// An 80x24 character screen that console output is played into: enough
/// of a VT100 for what crossterm emits (CSI H cursor moves, CSI J and K
/// clears, SGR and mode changes ignored, CR, LF, text).
#[derive(Debug, Clone)]
pub struct Screen {
    cells: Vec<Vec<char>>,
    row: usize,
    col: usize,
    /// An escape sequence cut by a read boundary.
    pending: String,
}

const COLS: usize = 80;
const ROWS: usize = 24;

impl Default for Screen {
    fn default() -> Self {
        Screen {
            cells: vec![vec![' '; COLS]; ROWS],
            row: 0,
            col: 0,
            pending: String::new(),
        }
    }
}

impl Screen {
    pub fn rows(&self) -> Vec<String> {
        self.cells
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_string())
            .collect()
    }

    fn clear(&mut self) {
        self.cells = vec![vec![' '; COLS]; ROWS];
    }

    fn newline(&mut self) {
        if self.row + 1 < ROWS {
            self.row += 1;
        } else {
            self.cells.remove(0);
            self.cells.push(vec![' '; COLS]);
        }
    }

    pub fn feed(&mut self, text: &str) {
        let data = std::mem::take(&mut self.pending) + text;
        let mut it = data.char_indices().peekable();
        while let Some((at, c)) = it.next() {
            match c {
                '\x1b' => {
                    // ESC [ params final, or a lone ESC x.
                    let rest = &data[at + 1..];
                    if rest.is_empty() {
                        self.pending = data[at..].to_string();
                        return;
                    }
                    if !rest.starts_with('[') {
                        it.next();
                        continue;
                    }
                    let body = &rest[1..];
                    let Some(end) = body.find(|ch: char| ch.is_ascii_alphabetic() || ch == '~')
                    else {
                        self.pending = data[at..].to_string();
                        return;
                    };
                    let params = &body[..end];
                    let fin = body.as_bytes()[end] as char;
                    // Skip the sequence's characters.
                    for _ in 0..end + 2 {
                        it.next();
                    }
                    let nums: Vec<usize> = params
                        .trim_start_matches('?')
                        .split(';')
                        .map(|n| n.parse().unwrap_or(0))
                        .collect();
                    match fin {
                        'H' | 'f' => {
                            self.row = nums.first().copied().unwrap_or(1).clamp(1, ROWS) - 1;
                            self.col = nums.get(1).copied().unwrap_or(1).clamp(1, COLS) - 1;
                        }
                        'J' if nums.first().copied().unwrap_or(0) >= 2 => self.clear(),
                        'J' => {
                            for c in self.col..COLS {
                                self.cells[self.row][c] = ' ';
                            }
                            for r in self.row + 1..ROWS {
                                self.cells[r] = vec![' '; COLS];
                            }
                        }
                        'K' => {
                            for c in self.col..COLS {
                                self.cells[self.row][c] = ' ';
                            }
                        }
                        // Leaving or entering the alternate screen.
                        'h' | 'l' if params == "?1049" => self.clear(),
                        _ => {}
                    }
                }
                '\r' => self.col = 0,
                '\n' => self.newline(),
                c if c.is_control() => {}
                c => {
                    if self.col >= COLS {
                        self.col = 0;
                        self.newline();
                    }
                    self.cells[self.row][self.col] = c;
                    self.col += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod screen_tests {
    use super::Screen;

    #[test]
    fn cursor_moves_and_skipped_cells_make_one_row() {
        let mut s = Screen::default();
        s.feed("boot\r\n\x1b[?1049h\x1b[2J\x1b[4;4Hpart\x1b[4;9H6\x1b[1m\x1b[4;17H61.0");
        s.feed("\x1b[4;2");
        s.feed("2HMiB");
        assert_eq!(s.rows()[3], "   part 6       61.0 MiB");
        assert_eq!(s.rows()[0], "");
    }
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
