//! `ferry boot [--cmdline FILE] [--print] [--yes]`: what the boot image's
//! /init runs. It reads the `ferry.*` kernel arguments (src/boot.rs) and
//! runs the `ferry receive` or `ferry send` command they make, after a
//! confirmation unless `ferry.auto=1` (or `--yes`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use crate::boot::{self, Role};
use crate::disk::sysfs::{self, Roots};
use crate::units::human;

/// Exit status for bad kernel arguments.
const BAD_INPUT: i32 = 2;

#[derive(Debug, Args)]
pub struct BootArgs {
    /// The kernel command line to read.
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// Print the ferry command the arguments make, and exit.
    #[arg(long)]
    pub print: bool,
    /// Start without asking, as ferry.auto=1 does.
    #[arg(long)]
    pub yes: bool,
    /// The state dir of the command run (default: its own, /var/lib/ferry).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where a job file given as an http:// URL is saved.
    #[arg(long, value_name = "DIR", default_value = "/run/ferry")]
    pub run_dir: PathBuf,
}

const HELP: &str = "kernel arguments: ferry.role=source|receiver ferry.receiver=HOST[:PORT] \
ferry.fingerprint=SHA256 ferry.code=CODE ferry.job=PATH|http://URL ferry.auto=1 \
ferry.ip=dhcp|ADDR/PREFIX[,GW] ferry.mtu=N ferry.rate=MBIT ferry.post=poweroff|reboot|shell \
ferry.target=DISK[,DISK] (receiver) ferry.volumes=VOLUME[,VOLUME] ferry.pass=full|resume|incremental|verify \
ferry.task=NAME (source); see docs/operator-guide.md";

pub fn run(a: BootArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&a.cmdline)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.cmdline.display()))?;
    let args = match boot::parse(&text) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ferry: {e}\n{HELP}");
            return Ok(BAD_INPUT);
        }
    };
    let job = match &args.job {
        Some(j) => Some(boot::fetch_job(j, &a.run_dir)?),
        None => None,
    };
    // At a console without ferry.auto=1: the TUI, with what the kernel
    // arguments chose already filled in. (What they say is printed first:
    // it stays in the serial log.)
    let interactive = !(args.auto || a.yes || a.print)
        && std::io::stdin().is_terminal()
        && std::env::var_os("FERRY_NO_TUI").is_none();
    if interactive {
        let disks = if args.role == Some(Role::Source) && args.volumes.is_empty() && job.is_none() {
            boot::default_volumes(&Roots::system()).unwrap_or_default()
        } else {
            Vec::new()
        };
        match args.command(job.as_deref(), &disks) {
            Ok(argv) => println!("ferry: from the kernel arguments: {}", shown(&argv)),
            Err(e) => eprintln!("ferry: {e}"),
        }
        return tui(&args, job, a.state_dir.clone());
    }
    let roots = Roots::system();
    let disks = if args.role == Some(Role::Source) && args.volumes.is_empty() && job.is_none() {
        boot::default_volumes(&roots)?
    } else {
        Vec::new()
    };
    let argv = match args.command(job.as_deref(), &disks) {
        Ok(mut argv) => {
            if let Some(d) = &a.state_dir {
                argv.insert(2, "--state-dir".into());
                argv.insert(3, d.display().to_string());
            }
            argv
        }
        Err(e) => {
            eprintln!("ferry: {e}\n{HELP}");
            return Ok(BAD_INPUT);
        }
    };
    if a.print {
        println!("{}", shown(&argv));
        return Ok(0);
    }
    println!("ferry: from the kernel arguments: {}", shown(&argv));
    if args.role == Some(Role::Receiver) {
        for t in &args.targets {
            println!("ferry: will overwrite {}", describe(&roots, Path::new(t)));
        }
    }
    if !(args.auto || a.yes || confirm()?) {
        return Ok(1);
    }
    let cli = match super::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("ferry: the kernel arguments make an invalid command:\n{e}");
            return Ok(BAD_INPUT);
        }
    };
    super::run(cli)
}

/// The TUI with the kernel arguments' choices.
fn tui(
    args: &boot::BootArgs,
    job: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let state_dir = state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/ferry"));
    let _ = std::fs::create_dir_all(&state_dir);
    crate::tui::run(crate::tui::Options {
        paths: Vec::new(),
        job,
        ascii: None,
        size: match (args.cols, args.rows) {
            (None, None) => None,
            (c, r) => Some((c.unwrap_or(80), r.unwrap_or(24))),
        },
        log_file: state_dir.join("tui.log"),
        state_dir: Some(state_dir),
        preset: crate::tui::Preset {
            source: args.role.map(|r| r == Role::Source),
            receiver: args.receiver.clone(),
            fingerprint: args.fingerprint.clone(),
            code: args.code.clone(),
            targets: args.targets.clone(),
            rate: args.rate,
            task: args.task.clone(),
        },
    })
}

/// The command as printed: the pairing code is not repeated on screen.
fn shown(argv: &[String]) -> String {
    let mut out = Vec::with_capacity(argv.len());
    let mut hide = false;
    for w in argv {
        out.push(if hide { "****".to_string() } else { w.clone() });
        hide = w == "--code";
    }
    out.join(" ")
}

/// A target as a technician identifies it: path, model, serial, size.
fn describe(roots: &Roots, path: &Path) -> String {
    let Some(name) = sysfs::kernel_name(path) else {
        return format!("{} (not found)", path.display());
    };
    let at = sysfs::attrs(roots, &name);
    let size = std::fs::read_to_string(roots.sys.join("class/block").join(&name).join("size"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or("size unknown".to_string(), |s| human(s * 512));
    format!(
        "{} ({}, serial {}, {size})",
        path.display(),
        at.model.as_deref().unwrap_or("model unknown"),
        at.serial.as_deref().unwrap_or("unknown"),
    )
}

/// Ask on the terminal; with none to ask, refuse to start.
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "ferry: not started: ferry.auto=1 is not set and there is no terminal to ask; \
             set ferry.auto=1 to run unattended"
        );
        return Ok(false);
    }
    print!("Start? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
