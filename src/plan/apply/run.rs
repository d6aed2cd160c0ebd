//! Running the tools of a step and keeping what they said.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where tools are looked for besides `$PATH` (a receiver started with a
/// short PATH still finds /usr/sbin).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The full path of `tool`, if the system has it.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The commands of one step and their output.
#[derive(Default)]
pub struct Run {
    pub commands: Vec<String>,
    pub output: String,
}

impl Run {
    /// Run `tool args`, feeding `stdin`; an exit status outside `ok` is an
    /// error naming the tool, its status and its last words.
    pub fn cmd(
        &mut self,
        tool: &str,
        args: &[String],
        ok: &[i32],
        stdin: Option<&str>,
    ) -> Result<i32, String> {
        let line = std::iter::once(tool.to_string())
            .chain(args.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        self.commands.push(line.clone());
        self.output.push_str(&format!("$ {line}\n"));
        let exe = which(tool).ok_or_else(|| {
            let m = format!("{tool} is not installed");
            self.output.push_str(&m);
            self.output.push('\n');
            m
        })?;
        let mut child = Command::new(exe)
            .args(args)
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{tool}: cannot start: {e}"))?;
        if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
            // A tool that does not read its input is not an error.
            let _ = w.write_all(text.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{tool}: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.output.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.output.push('\n');
        }
        let code = out.status.code().unwrap_or(-1);
        if ok.contains(&code) {
            Ok(code)
        } else {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            Err(format!("{tool} exited with status {code}: {last}"))
        }
    }

    /// A line of ferry's own in the output.
    pub fn note(&mut self, s: &str) {
        self.output.push_str(s);
        self.output.push('\n');
    }
}

fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}
