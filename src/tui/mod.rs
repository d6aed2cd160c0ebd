//! `ferry tui` (and `ferry` with no arguments): the technician's console
//! app. [`app`] holds the state and what keys do, [`view`] draws it; this
//! module owns the terminal and runs the slow work (inventory, netcheck,
//! the transfer) on threads whose results come back over a channel, so the
//! screen never freezes. Logs go to a file, never onto the screen; the
//! terminal is restored on exit and on panic (ratatui's hook).

pub mod app;
pub mod big;
pub mod net;
mod term;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use anyhow::Context;
use ratatui::Viewport;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::layout::Rect;

use crate::inventory::InventoryConfig;
use crate::source::netcheck::{NetcheckConfig, Stage as NetStage, netcheck};
use crate::source::send::{SendConfig, send};
use app::{App, Effect, Msg};

/// How `ferry tui` starts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Disks or image files; empty: every disk of the machine.
    pub paths: Vec<PathBuf>,
    /// A job file whose choices are loaded (receiver, rate, plan).
    pub job: Option<PathBuf>,
    /// Force plain ASCII borders and bars (default: from TERM).
    pub ascii: Option<bool>,
    /// The screen size when the terminal cannot say (a serial console).
    pub size: Option<(u16, u16)>,
    /// Where the source keeps its events log and reports.
    pub state_dir: Option<PathBuf>,
    /// Where logs go.
    pub log_file: PathBuf,
    /// Choices made before the TUI starts (the `ferry.*` kernel arguments).
    pub preset: Preset,
}

/// What the kernel arguments (or a caller) already chose.
#[derive(Debug, Clone, Default)]
pub struct Preset {
    /// `Some(true)`: source; `Some(false)`: receiver; `None`: ask.
    pub source: Option<bool>,
    pub receiver: Option<String>,
    pub fingerprint: Option<String>,
    pub code: Option<String>,
    /// Receiver: the disks it may overwrite.
    pub targets: Vec<String>,
    pub rate: Option<u64>,
    pub task: Option<String>,
}

/// Run the TUI until the technician quits.
pub fn run(o: Options) -> anyhow::Result<i32> {
    let mut app = App::new(o.paths.clone());
    if let Some(j) = &o.job {
        let job = crate::job::Job::load(j).map_err(|e| anyhow::anyhow!("{e}"))?;
        app.load_job(&job);
    }
    app.preset(&o.preset);
    app.ascii = o.ascii.unwrap_or_else(ascii_terminal);
    app.state_dir = o.state_dir.clone();
    app.in_image = Path::new("/etc/ferry/extra-modules").exists();
    // Everything written to stderr (tracing, tools, notices) goes to the
    // log file: the screen belongs to the TUI.
    if let Some(d) = o.log_file.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.log_file)
        .with_context(|| format!("opening the log file {}", o.log_file.display()))?;
    nix::unistd::dup2_stderr(&log).context("sending stderr to the log file")?;
    app.log_line(format!("log file: {}", o.log_file.display()));
    let size = o
        .size
        .or_else(kernel_size)
        .or_else(|| match ratatui::crossterm::terminal::size() {
            Ok((0, _)) | Ok((_, 0)) | Err(_) => Some((80, 24)),
            Ok(_) => None,
        });
    let mut terminal = term::init(match size {
        Some((c, r)) => Viewport::Fixed(Rect::new(0, 0, c, r)),
        None => Viewport::Fullscreen,
    })
    .context("setting up the terminal")?;
    let res = event_loop(&mut terminal, &mut app, &o);
    ratatui::restore();
    res.map(|_| 0)
}

/// ASCII borders where Unicode box drawing is unlikely to show: serial
/// terminals (TERM=vt100, vt220, ...) and dumb ones; FERRY_ASCII=1 forces.
fn ascii_terminal() -> bool {
    if std::env::var("FERRY_ASCII").is_ok_and(|v| v == "1") {
        return true;
    }
    let term = std::env::var("TERM").unwrap_or_default();
    term.starts_with("vt") || term == "dumb" || term.is_empty()
}

/// `ferry.cols=` and `ferry.rows=` on the kernel command line.
fn kernel_size() -> Option<(u16, u16)> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    let get = |k: &str| {
        cmdline
            .split_whitespace()
            .find_map(|a| a.strip_prefix(k))
            .and_then(|v| v.parse::<u16>().ok())
    };
    match (get("ferry.cols="), get("ferry.rows=")) {
        (Some(c), Some(r)) => Some((c, r)),
        (Some(c), None) => Some((c, 24)),
        (None, Some(r)) => Some((80, r)),
        (None, None) => None,
    }
}

fn event_loop(
    terminal: &mut ratatui::Terminal<term::Term>,
    app: &mut App,
    o: &Options,
) -> anyhow::Result<()> {
    let (tx, rx): (Sender<Msg>, Receiver<Msg>) = channel();
    let mut effects = Vec::new();
    if app.screen == app::Screen::Role && !o.paths.is_empty() && o.preset.source.is_none() {
        // Disks named: this is a source.
        app.screen = app::Screen::Disks;
    }
    if app.screen != app::Screen::Role {
        effects.push(Effect::Inventory);
    }
    let mut shown = None;
    let mut dirty = true;
    loop {
        for e in effects.drain(..) {
            start(app, e, &tx);
        }
        if app.quit {
            return Ok(());
        }
        if std::mem::take(&mut app.shell) {
            shell(terminal)?;
            shown = None;
        }
        // A new screen or dialog is drawn whole (not as a difference from
        // the last one): on a serial console, each screen's text then
        // arrives in one piece, readable in a log.
        let now = (app.screen, app.modal.as_ref().map(std::mem::discriminant));
        if shown != Some(now) || std::mem::take(&mut app.redraw) {
            terminal.clear()?;
            shown = Some(now);
            dirty = true;
        }
        // Frames only when something may have changed: a serial console
        // is slow, and its log is read.
        if dirty || app.running() || app.rx.is_some() || app.net_stage.is_some() {
            terminal.draw(|f| view::draw(f, app))?;
        }
        dirty = false;
        if event::poll(Duration::from_millis(200))? {
            // Any event (a key, a resize) redraws.
            dirty = true;
            if let Event::Key(k) = event::read()?
                && k.kind == KeyEventKind::Press
            {
                effects.extend(app.on_key(k));
            }
        }
        while let Ok(m) = rx.try_recv() {
            effects.extend(app.on_msg(m));
            dirty = true;
        }
        app.tick();
    }
}

/// A shell on this terminal; the TUI comes back when it exits.
fn shell(terminal: &mut ratatui::Terminal<term::Term>) -> anyhow::Result<()> {
    ratatui::restore();
    println!("ferry: a shell; type 'exit' to come back to ferry.");
    let sh = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    if let Err(e) = std::process::Command::new(&sh).arg("-l").status() {
        eprintln!("ferry: {sh}: {e}");
    }
    term::resume()?;
    terminal.clear()?;
    Ok(())
}

/// Start one piece of work.
fn start(app: &mut App, e: Effect, tx: &Sender<Msg>) {
    match e {
        Effect::Quit => app.quit = true,
        Effect::Inventory => {
            let tx = tx.clone();
            let cfg = InventoryConfig {
                paths: app.paths.clone(),
                with_ranges: true,
                ..Default::default()
            };
            app.status = "reading the disks...".into();
            std::thread::spawn(move || {
                let r = crate::inventory::inventory(&cfg).map_err(|e| format!("{e:#}"));
                let _ = tx.send(Msg::Inventory(r));
            });
        }
        Effect::Netcheck { full } => {
            let Ok(fp) = crate::proto::tls::parse_fingerprint(&app.fields[1]) else {
                app.status = "the fingerprint is not 64 hex digits".into();
                return;
            };
            let volumes = if full { net_volumes(app) } else { Vec::new() };
            let mut cfg =
                NetcheckConfig::new(app.fields[0].trim(), fp, app.fields[2].trim(), volumes);
            cfg.rate_mbit = app.schedule.mbit;
            if !full {
                cfg.probes = 20;
                cfg.bandwidth_secs = 1.0;
            }
            app.net_stage = Some("connecting".into());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let tx2 = tx.clone();
                let r = netcheck(&cfg, move |s| {
                    let _ = tx2.send(Msg::NetStage(net_stage(&s)));
                })
                .map_err(|e| format!("{e:#}"));
                let _ = tx.send(Msg::Net(r));
            });
        }
        Effect::Send(pass) => {
            let Ok(fp) = crate::proto::tls::parse_fingerprint(&app.fields[1]) else {
                app.status = "the fingerprint is not 64 hex digits".into();
                return;
            };
            let mut cfg = SendConfig::new(
                app.fields[0].trim(),
                fp,
                app.fields[2].trim(),
                &app.task,
                Vec::new(),
            );
            cfg.plan = Some(app.spec.clone());
            cfg.pass = pass;
            cfg.rate = app.rate.clone();
            cfg.watch = app.watch.clone();
            cfg.state_dir = app.state_dir.clone();
            let schedule = app.schedule.clone();
            app.log_line(format!(
                "{} pass of task {} started",
                app::pass_name(pass),
                app.task
            ));
            let tx = tx.clone();
            std::thread::spawn(move || {
                // The schedule moves the limit while the pass runs; a limit
                // set live overrides it until the schedule's next change.
                let _follower = (!schedule.windows.is_empty())
                    .then(|| crate::source::schedule::follow(schedule, cfg.rate.clone()));
                let r = send(&cfg).map_err(|e| format!("{e:#}"));
                let _ = tx.send(Msg::Sent(r));
            });
        }
        Effect::Receive(targets) => {
            app.addresses = local_addresses();
            let cfg = crate::receiver::ReceiveConfig {
                targets,
                state_dir: app
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/var/lib/ferry")),
                code: None,
                name: crate::source::link::host_name("receiver"),
                force: false,
                max_sessions: 8,
                roots: crate::disk::sysfs::Roots::system(),
            };
            let (listen, data_port, api_port) = o_ports(app);
            let tx = tx.clone();
            app.status = "starting the receiver...".into();
            std::thread::spawn(move || {
                let run = || -> anyhow::Result<()> {
                    let rx = crate::receiver::Receiver::new(&cfg)?;
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let (listener, at) =
                            crate::receiver::listen::bind(&rx, listen, data_port, api_port).await?;
                        let _ = tx.send(Msg::Receiving(Ok(app::RxView {
                            data: at.data,
                            api: at.api,
                            fingerprint: rx.fingerprint,
                            code: rx.code.clone(),
                            token: crate::proto::pairing::api_token(&rx.code, &rx.fingerprint),
                            handle: Some(rx.clone()),
                        })));
                        rx.serve(listener, std::future::pending()).await;
                        anyhow::Ok(())
                    })
                };
                if let Err(e) = run() {
                    let _ = tx.send(Msg::Receiving(Err(format!("{e:#}"))));
                }
            });
        }
        Effect::SaveJob(path) => {
            let text = app.to_job().to_toml();
            app.status = match std::fs::write(&path, text) {
                Ok(()) => format!("saved the job file {}", path.display()),
                Err(e) => format!("saving {}: {e}", path.display()),
            };
        }
        Effect::Dhcp(iface) => {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let r = net::dhcp(&iface);
                let _ = tx.send(Msg::NetConfig(r));
            });
        }
        Effect::StaticIp(iface, spec) => {
            let r = net::set_static(&iface, &spec);
            let _ = tx.send(Msg::NetConfig(r));
        }
        Effect::Shell => app.shell = true,
        Effect::Power(cmd) => {
            ratatui::restore();
            let _ = std::process::Command::new(cmd).status();
        }
    }
}

/// The receiver role's ports: the defaults (8703, 8080 on every address)
/// unless `FERRY_TUI_PORTS=ADDR:DATA:API` says otherwise (tests).
fn o_ports(_app: &App) -> (std::net::IpAddr, u16, u16) {
    if let Ok(v) = std::env::var("FERRY_TUI_PORTS") {
        let parts: Vec<&str> = v.rsplitn(3, ':').collect();
        if let [api, data, addr] = parts[..]
            && let (Ok(a), Ok(d), Ok(p)) = (addr.parse(), data.parse(), api.parse())
        {
            return (a, d, p);
        }
    }
    (
        std::net::IpAddr::from([0, 0, 0, 0]),
        crate::source::send::DATA_PORT,
        crate::receiver::api::API_PORT,
    )
}

/// This machine's IPv4 addresses, loopback left out.
fn local_addresses() -> Vec<String> {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut v: Vec<String> = ifs
        .filter_map(|i| {
            let a = i.address?.as_sockaddr_in()?.ip();
            (!a.is_loopback()).then(|| format!("{a} ({})", i.interface_name))
        })
        .collect();
    v.dedup();
    v
}

/// The volumes a netcheck estimates: the plan's partitions and whole
/// disks (LVs travel inside their PVs).
fn net_volumes(app: &App) -> Vec<String> {
    match &app.planned {
        Ok(p) => p
            .volumes()
            .filter(|v| v.partition.is_some())
            .map(|v| v.name.clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn net_stage(s: &NetStage) -> String {
    match s {
        NetStage::OpeningVolumes => "opening the volumes".into(),
        NetStage::Connecting { receiver } => format!("connecting to {receiver}"),
        NetStage::Probing {
            sent,
            received,
            total,
        } => format!("latency probes {sent}/{total} ({received} answered)"),
        NetStage::Bandwidth {
            bytes,
            secs,
            total_secs,
        } => format!(
            "bandwidth {:.1}/{:.0} s, {}",
            secs,
            total_secs,
            crate::units::human(*bytes)
        ),
        NetStage::DiskRead { bytes, total } => format!(
            "reading the disks {} of {}",
            crate::units::human(*bytes),
            crate::units::human(*total)
        ),
        NetStage::Compression { bytes } => {
            format!("compressing {}", crate::units::human(*bytes))
        }
        NetStage::Done => "done".into(),
    }
}

#[cfg(test)]
mod tests;
