//! The TUI's state and what keys do to it. Pure: no terminal and no I/O
//! beyond re-planning (which reads 440 bytes of boot code per disk); work
//! that takes time is returned as an [`Effect`] for the runner to start,
//! and its results come back as a [`Msg`]. Behaviour tests drive this
//! directly with key events.
//!
//! This file holds the types, the state and the dispatch of keys and
//! results; the screens' key handlers are split by role: `source` (the
//! source's steps, disks to report), `receiver` (the role screen and the
//! receiver's target disks) and `job` (job files and kernel-argument
//! presets).

mod job;
mod receiver;
mod source;

use std::path::PathBuf;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::inventory::Inventory;
use crate::plan::PlanSpec;
use crate::plan::layout::Planned;
use crate::plan::spec::{Grow, Size, parse_size};
use crate::proto::message::Pass;
use crate::source::netcheck::NetReport;
use crate::source::rate::RateLimit;
use crate::source::schedule::Schedule;
use crate::source::send::SendReport;
use crate::source::watch::{Snapshot, Stage, Watch};

pub use receiver::disk_state;
pub use source::{plan_rows, tree_rows};

/// The screens, in the order a source migration walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Role,
    Disks,
    Plan,
    Receiver,
    Preflight,
    Transfer,
    Report,
    /// The receiver role, first: which disks it may overwrite.
    Targets,
    /// The receiver role: addresses, fingerprint, code, targets, sessions.
    Receiving,
}

impl Screen {
    /// The source's steps, for the header.
    pub const STEPS: [Screen; 6] = [
        Screen::Disks,
        Screen::Plan,
        Screen::Receiver,
        Screen::Preflight,
        Screen::Transfer,
        Screen::Report,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Role => "Role",
            Screen::Disks => "Disks",
            Screen::Plan => "Selection and resize",
            Screen::Receiver => "Receiver",
            Screen::Preflight => "Preflight",
            Screen::Transfer => "Transfer",
            Screen::Report => "Report",
            Screen::Targets => "Target disks",
            Screen::Receiving => "Receiver",
        }
    }
}

/// What an input line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputFor {
    /// Grow this volume: a size or `max`.
    Grow(String),
    /// The target size of this source disk.
    TargetSize(String),
    /// The live rate limit (Mbit/s).
    Rate,
    /// The rate schedule, compact form.
    Schedule,
    /// Save the choices as a job file here.
    SaveJob,
    /// A static address on this interface: `ADDR/PREFIX[,GW]`.
    StaticIp(String),
}

/// A dialog over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Help,
    ConfirmQuit,
    /// Start writing the receiver's targets: restates what goes where.
    ConfirmStart(Vec<String>),
    ConfirmStop,
    /// Start receiving: restates each target's model, serial and size.
    ConfirmReceive(Vec<String>),
    Input {
        purpose: InputFor,
        prompt: String,
        text: String,
    },
}

/// Work for the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Inventory the disks (again).
    Inventory,
    /// A netcheck: `full` measures the disks and compression too.
    Netcheck {
        full: bool,
    },
    /// Start a pass.
    Send(Pass),
    /// Start receiving into these targets.
    Receive(Vec<PathBuf>),
    SaveJob(PathBuf),
    /// Power off or reboot (the boot image only).
    Power(&'static str),
    /// DHCP, or a static address, on an interface.
    Dhcp(String),
    StaticIp(String, String),
    /// A shell; the TUI comes back when it exits.
    Shell,
    Quit,
}

/// Results of work.
#[derive(Debug)]
pub enum Msg {
    Inventory(Result<Inventory, String>),
    NetStage(String),
    Net(Result<NetReport, String>),
    Sent(Result<SendReport, String>),
    Receiving(Result<RxView, String>),
    /// A network setting applied (or why not).
    NetConfig(Result<String, String>),
    Log(String),
}

/// A receiver started from the TUI.
#[derive(Clone)]
pub struct RxView {
    pub data: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
    pub fingerprint: [u8; 32],
    pub code: String,
    pub token: String,
    /// Its sessions and tasks, read each tick.
    pub handle: Option<std::sync::Arc<crate::receiver::Receiver>>,
}

impl std::fmt::Debug for RxView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxView")
            .field("data", &self.data)
            .field("api", &self.api)
            .field("code", &self.code)
            .finish()
    }
}

/// The receiver fields of the Receiver screen.
pub const FIELDS: [&str; 3] = ["address", "fingerprint", "pairing code"];

/// One line of the disk tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeRow {
    pub depth: usize,
    /// The volume name (`disk`, `disk:N`, `VG/LV`) or VG name.
    pub name: String,
    pub kind: TreeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    Disk,
    Partition,
    Vg,
    Lv,
}

/// One line of the selection list: a volume that can be toggled or grown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub volume: String,
    /// The source disk it is on (for the target size), or the VG.
    pub disk: Option<String>,
    pub lv: bool,
}

pub struct App {
    pub screen: Screen,
    pub modal: Option<Modal>,
    /// The disks named on the command line (empty: every disk).
    pub paths: Vec<PathBuf>,
    pub inv: Option<Inventory>,
    pub inv_error: Option<String>,
    pub tree: Vec<TreeRow>,
    pub tree_cursor: usize,
    /// Tab moved the keys to the second pane (Disks: details; Select: the
    /// before/after preview), which j/k then scroll.
    pub second_pane: bool,
    pub pane_scroll: u16,
    pub spec: PlanSpec,
    pub planned: Result<Planned, String>,
    pub plan_rows: Vec<PlanRow>,
    pub plan_cursor: usize,
    /// Receiver address, fingerprint, code.
    pub fields: [String; 3],
    pub field: usize,
    pub task: String,
    pub net_stage: Option<String>,
    pub net: Option<Result<NetReport, String>>,
    /// The connection test's result (a netcheck without disks).
    pub conn_test: Option<Result<String, String>>,
    pub schedule: Schedule,
    /// Shared with the running pass: changed live.
    pub rate: RateLimit,
    pub pass: Pass,
    pub watch: Option<Watch>,
    pub sent: Option<Result<SendReport, String>>,
    /// Bytes per second, sampled each tick of a transfer (for the sparkline).
    pub speed: Vec<u64>,
    last_sample: Option<(Instant, u64)>,
    pub log: Vec<String>,
    pub show_log: bool,
    /// One line at the bottom: the last error or notice.
    pub status: String,
    /// Plain ASCII borders and bars (serial consoles, TERM=vt100).
    pub ascii: bool,
    /// Where the source keeps its reports.
    pub state_dir: Option<PathBuf>,
    /// Running from the boot image: power off and reboot are offered.
    pub in_image: bool,
    /// Receiver role: the disks chosen as targets, the cursor, the running
    /// receiver, its tasks and this machine's addresses.
    pub chosen: Vec<String>,
    pub target_cursor: usize,
    pub rx: Option<RxView>,
    pub rx_tasks: Vec<crate::report::task::TaskStatus>,
    /// Per ended task: when its status was updated, and one line from its
    /// report file (result, duration, post-steps).
    pub rx_reports: std::collections::HashMap<String, (String, String)>,
    pub addresses: Vec<String>,
    /// Draw the next frame whole (a result arrived): see the runner.
    pub redraw: bool,
    /// The Role screen's interfaces and the highlighted one.
    pub ifaces: Vec<super::net::Iface>,
    pub iface_cursor: usize,
    ifaces_at: Option<Instant>,
    /// The runner opens a shell (it owns the terminal).
    pub shell: bool,
    pub quit: bool,
}

impl App {
    pub fn new(paths: Vec<PathBuf>) -> App {
        App {
            screen: Screen::Role,
            modal: None,
            paths,
            inv: None,
            inv_error: None,
            tree: Vec::new(),
            tree_cursor: 0,
            second_pane: false,
            pane_scroll: 0,
            spec: PlanSpec::default(),
            planned: Err("no disks read yet".into()),
            plan_rows: Vec::new(),
            plan_cursor: 0,
            fields: Default::default(),
            field: 0,
            task: crate::job::DEFAULT_TASK.to_string(),
            net_stage: None,
            net: None,
            conn_test: None,
            schedule: Schedule::constant(0),
            rate: RateLimit::new(0),
            pass: Pass::Full,
            watch: None,
            sent: None,
            speed: Vec::new(),
            last_sample: None,
            log: Vec::new(),
            show_log: false,
            status: String::new(),
            ascii: false,
            state_dir: None,
            in_image: false,
            chosen: Vec::new(),
            target_cursor: 0,
            rx: None,
            rx_tasks: Vec::new(),
            rx_reports: Default::default(),
            addresses: Vec::new(),
            redraw: false,
            ifaces: Vec::new(),
            iface_cursor: 0,
            ifaces_at: None,
            shell: false,
            quit: false,
        }
    }

    pub fn log_line(&mut self, s: impl Into<String>) {
        self.log.push(s.into());
        if self.log.len() > 500 {
            self.log.drain(..100);
        }
    }

    /// A result of work.
    pub fn on_msg(&mut self, m: Msg) -> Vec<Effect> {
        if !matches!(m, Msg::NetStage(_) | Msg::Log(_)) {
            self.redraw = true;
        }
        match m {
            Msg::Inventory(Ok(inv)) => {
                self.inv_error = None;
                self.status = match inv.errors.len() {
                    0 => String::new(),
                    n => format!("{n} problem(s) reading the disks: {}", inv.errors[0]),
                };
                if self.spec.disks.is_empty() {
                    self.spec.disks = self.paths.iter().map(|p| p.display().to_string()).collect();
                }
                self.tree = tree_rows(&inv);
                self.tree_cursor = self.tree_cursor.min(self.tree.len().saturating_sub(1));
                self.log_line(format!(
                    "inventory: {} disk(s), {} volume group(s), {} problem(s)",
                    inv.disks.len(),
                    inv.volume_groups.len(),
                    inv.errors.len()
                ));
                self.inv = Some(inv);
                self.replan();
            }
            Msg::Inventory(Err(e)) => {
                self.status = format!("reading the disks: {e}");
                self.inv_error = Some(e);
            }
            Msg::NetStage(s) => self.net_stage = Some(s),
            Msg::Net(r) => {
                self.net_stage = None;
                match (&r, self.screen) {
                    (Ok(n), Screen::Receiver) => {
                        self.conn_test = Some(Ok(format!(
                            "connected to {} ({}): latency {}, loss {:.1}%, {:.0} Mbit/s",
                            n.receiver,
                            n.receiver_name,
                            n.latency_avg_ms
                                .map_or("-".into(), |l| format!("{l:.1} ms")),
                            n.loss_percent,
                            n.bandwidth_mbit_s
                        )))
                    }
                    (Err(e), Screen::Receiver) => self.conn_test = Some(Err(e.clone())),
                    _ => {}
                }
                if let Err(e) = &r {
                    self.status = format!("netcheck: {e}");
                    self.log_line(format!("netcheck failed: {e}"));
                }
                if self.screen != Screen::Receiver {
                    self.net = Some(r);
                }
            }
            Msg::Sent(r) => {
                match &r {
                    Ok(rep) => {
                        self.status = format!(
                            "the {} pass finished; the receiver's report has its checks and post-steps",
                            pass_name(self.pass)
                        );
                        self.log_line(format!(
                            "pass done: {} chunks sent, {} bytes, {:.1} s",
                            rep.chunks_sent, rep.bytes, rep.seconds
                        ))
                    }
                    Err(e) => {
                        self.status = format!("the pass ended: {e}");
                        self.log_line(format!("pass failed: {e}"));
                    }
                }
                self.sent = Some(r);
                self.screen = Screen::Report;
            }
            Msg::Receiving(Ok(v)) => {
                self.status = format!(
                    "receiving on {} (control API {}); give the source the address, fingerprint and code",
                    v.data, v.api
                );
                self.log_line(format!("receiver listening on {}", v.data));
                self.rx = Some(v);
                self.screen = Screen::Receiving;
            }
            Msg::Receiving(Err(e)) => {
                self.status = format!("the receiver did not start: {e}");
                self.log_line(format!("receiver failed: {e}"));
                self.screen = Screen::Targets;
            }
            Msg::NetConfig(r) => {
                self.status = match r {
                    Ok(s) => s,
                    Err(e) => format!("network: {e}"),
                };
                self.ifaces = super::net::interfaces();
            }
            Msg::Log(s) => self.log_line(s),
        }
        Vec::new()
    }

    /// A timer tick: the receiver's tasks; a transfer's throughput.
    pub fn tick(&mut self) {
        if self.screen == Screen::Role && self.ifaces_at.is_none_or(|t| t.elapsed().as_secs() >= 2)
        {
            let now = super::net::interfaces();
            if now != self.ifaces {
                self.ifaces = now;
                self.redraw = true;
            }
            self.ifaces_at = Some(Instant::now());
        }
        if let Some(h) = self.rx.as_ref().and_then(|r| r.handle.as_ref()) {
            self.rx_tasks = h.tasks.list();
            for t in self.rx_tasks.iter().filter(|t| !t.running) {
                if self
                    .rx_reports
                    .get(&t.task)
                    .is_some_and(|(u, _)| *u == t.updated)
                {
                    continue;
                }
                if let Some(line) = self
                    .state_dir
                    .as_deref()
                    .and_then(|d| report_line(d, &t.task))
                {
                    self.rx_reports
                        .insert(t.task.clone(), (t.updated.clone(), line));
                    self.redraw = true;
                }
            }
        }
        let Some(w) = &self.watch else { return };
        let snap = w.snapshot();
        let now = Instant::now();
        if let Some((t, b)) = self.last_sample {
            let dt = now.duration_since(t).as_secs_f64();
            if dt >= 0.5 {
                let rate = (snap.bytes_sent.saturating_sub(b)) as f64 / dt;
                self.speed.push(rate as u64);
                if self.speed.len() > 240 {
                    self.speed.remove(0);
                }
                self.last_sample = Some((now, snap.bytes_sent));
            }
        } else {
            self.last_sample = Some((now, snap.bytes_sent));
        }
    }

    pub fn snapshot(&self) -> Option<Snapshot> {
        self.watch.as_ref().map(Watch::snapshot)
    }

    /// A key press.
    pub fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if let Some(m) = self.modal.clone() {
            return self.modal_key(m, k);
        }
        let editing = self.screen == Screen::Receiver;
        match k.code {
            KeyCode::F(1) => {
                self.modal = Some(Modal::Help);
                return Vec::new();
            }
            KeyCode::Char('?') if !editing => {
                self.modal = Some(Modal::Help);
                return Vec::new();
            }
            KeyCode::Char('q') if !editing => {
                self.modal = Some(Modal::ConfirmQuit);
                return Vec::new();
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.modal = Some(Modal::ConfirmQuit);
                return Vec::new();
            }
            _ => {}
        }
        match self.screen {
            Screen::Role => self.role_key(k),
            Screen::Disks => self.disks_key(k),
            Screen::Plan => self.plan_key(k),
            Screen::Receiver => self.receiver_key(k),
            Screen::Preflight => self.preflight_key(k),
            Screen::Transfer => self.transfer_key(k),
            Screen::Report => self.report_key(k),
            Screen::Targets => self.targets_key(k),
            Screen::Receiving => Vec::new(),
        }
    }

    fn modal_key(&mut self, m: Modal, k: KeyEvent) -> Vec<Effect> {
        match m {
            Modal::Help => {
                if matches!(
                    k.code,
                    KeyCode::Esc | KeyCode::Enter | KeyCode::F(1) | KeyCode::Char('?' | 'q')
                ) {
                    self.modal = None;
                }
                Vec::new()
            }
            Modal::ConfirmQuit => match k.code {
                KeyCode::Char('y' | 'Y') => {
                    self.modal = None;
                    self.quit = true;
                    if let Some(w) = &self.watch {
                        w.stop();
                    }
                    vec![Effect::Quit]
                }
                _ => {
                    self.modal = None;
                    Vec::new()
                }
            },
            Modal::ConfirmStart(_) => match k.code {
                KeyCode::Char('y' | 'Y') => {
                    self.modal = None;
                    self.start_pass(self.pass)
                }
                _ => {
                    self.modal = None;
                    self.status = "not started".into();
                    Vec::new()
                }
            },
            Modal::ConfirmReceive(_) => match k.code {
                KeyCode::Char('y' | 'Y') => {
                    self.modal = None;
                    vec![Effect::Receive(
                        self.chosen.iter().map(PathBuf::from).collect(),
                    )]
                }
                _ => {
                    self.modal = None;
                    self.status = "not started".into();
                    Vec::new()
                }
            },
            Modal::ConfirmStop => match k.code {
                KeyCode::Char('y' | 'Y') => {
                    self.modal = None;
                    if let Some(w) = &self.watch {
                        w.stop();
                    }
                    self.status =
                        "stopping after the next checkpoint; the same task resumes".into();
                    Vec::new()
                }
                _ => {
                    self.modal = None;
                    Vec::new()
                }
            },
            Modal::Input {
                purpose,
                prompt,
                mut text,
            } => match k.code {
                KeyCode::Esc => {
                    self.modal = None;
                    Vec::new()
                }
                KeyCode::Enter => {
                    self.modal = None;
                    self.input_done(purpose, text.trim().to_string())
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.modal = Some(Modal::Input {
                        purpose,
                        prompt,
                        text,
                    });
                    Vec::new()
                }
                KeyCode::Char(c) => {
                    if k.modifiers.contains(KeyModifiers::CONTROL) {
                        // Ctrl-U clears the line; other control keys do nothing.
                        if c == 'u' {
                            text.clear();
                        }
                    } else {
                        text.push(c);
                    }
                    self.modal = Some(Modal::Input {
                        purpose,
                        prompt,
                        text,
                    });
                    Vec::new()
                }
                _ => Vec::new(),
            },
        }
    }

    fn input(&mut self, purpose: InputFor, prompt: String, text: String) {
        self.modal = Some(Modal::Input {
            purpose,
            prompt,
            text,
        });
    }

    fn input_done(&mut self, purpose: InputFor, text: String) -> Vec<Effect> {
        match purpose {
            InputFor::Grow(vol) => {
                let before = self.spec.grow.clone();
                if text.is_empty() {
                    self.spec.grow.remove(&vol);
                } else {
                    match text.parse::<Grow>() {
                        Ok(g) => {
                            self.spec.grow.insert(vol.clone(), g);
                        }
                        Err(e) => {
                            self.status = format!("grow {vol}: {e}");
                            return Vec::new();
                        }
                    }
                }
                self.replan();
                if let Err(e) = &self.planned {
                    // The planner's rules, enforced live: keep the last
                    // plan that worked and say why.
                    self.status = format!("refused: {e}");
                    self.spec.grow = before;
                    self.replan();
                } else {
                    self.status = format!("{vol}: grow set to {text}");
                }
            }
            InputFor::TargetSize(disk) => {
                let before = self.spec.target_size.clone();
                if text.is_empty() {
                    self.spec.target_size.remove(&disk);
                } else {
                    match parse_size(&text) {
                        Ok(n) => {
                            self.spec.target_size.insert(disk.clone(), Size(n));
                        }
                        Err(e) => {
                            self.status = format!("target size of {disk}: {e}");
                            return Vec::new();
                        }
                    }
                }
                self.replan();
                if let Err(e) = &self.planned {
                    self.status = format!("refused: {e}");
                    self.spec.target_size = before;
                    self.replan();
                } else {
                    self.status = format!("target of {disk}: {text}");
                }
            }
            InputFor::Rate => match text.parse::<u64>() {
                Ok(n) if n <= crate::source::schedule::MAX_MBIT => {
                    self.rate.set(n);
                    self.schedule = Schedule::constant(n);
                    self.status = if n == 0 {
                        "rate limit: none".into()
                    } else {
                        format!("rate limit: {n} Mbit/s")
                    };
                }
                _ => self.status = format!("rate {text:?}: a number of Mbit/s, 0..1000 (0 = none)"),
            },
            InputFor::Schedule => match text.parse::<Schedule>() {
                Ok(s) => {
                    self.status = format!("rate schedule: {s}");
                    self.schedule = s;
                }
                Err(e) => self.status = format!("rate schedule: {e}"),
            },
            InputFor::StaticIp(iface) => {
                if text.is_empty() {
                    self.status = "no address given".into();
                } else {
                    return vec![Effect::StaticIp(iface, text)];
                }
            }
            InputFor::SaveJob => {
                if text.is_empty() {
                    self.status = "not saved: no file name".into();
                } else {
                    return vec![Effect::SaveJob(PathBuf::from(text))];
                }
            }
        }
        Vec::new()
    }

    /// The keys of the current screen, for the footer.
    pub fn keys(&self) -> &'static str {
        match (&self.modal, self.screen) {
            (Some(Modal::Input { .. }), _) => "type, Enter accept, Esc cancel",
            (Some(Modal::Help), _) => "Esc close",
            (Some(_), _) => "y yes, any other key no",
            (None, Screen::Role) => {
                "s source, r receiver, j/k interface, d DHCP, i static, ! shell, ? help, q quit"
            }
            (None, Screen::Disks) => {
                "j/k move, Tab pane, Enter next, r rescan, Esc back, ? help, q quit"
            }
            (None, Screen::Plan) => {
                "Space select, g grow, t target, a VGs, w save, Tab pane, Enter next, Esc back"
            }
            (None, Screen::Receiver) => "type, Tab field, F5 test, Enter next, Esc back, F1 help",
            (None, Screen::Preflight) => {
                "r rate, s schedule, i pass, c recheck, Enter start, Esc back"
            }
            (None, Screen::Transfer) => "s stop, r rate, l log, ? help",
            (None, Screen::Report) => {
                if self.in_image {
                    "i incremental, v verify, b back, l log, P power off, R reboot, q quit"
                } else {
                    "i incremental, v verify, b back, l log, q quit"
                }
            }
            (None, Screen::Targets) => {
                "j/k move, Space choose, Enter start receiving, r rescan, Esc back"
            }
            (None, Screen::Receiving) => "q quit (stops receiving)",
        }
    }

    /// Whether a transfer is running.
    pub fn running(&self) -> bool {
        self.watch.is_some() && self.sent.is_none()
    }

    /// The stage of the running pass.
    pub fn stage(&self) -> Option<Stage> {
        self.snapshot().map(|s| s.stage)
    }
}

/// One line from a receiver's task report: result, duration, bytes,
/// post-steps.
pub fn report_line(state_dir: &std::path::Path, task: &str) -> Option<String> {
    let p = state_dir
        .join("reports")
        .join(format!("{task}_report.json"));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    let mut line = format!(
        "result: {} {} pass in {}, {} volume(s), {} written",
        r["state"].as_str().unwrap_or("?"),
        r["pass"].as_str().unwrap_or("?"),
        crate::tui::view::duration(r["seconds"].as_f64().unwrap_or(0.0)),
        r["volumes"].as_array().map_or(0, |v| v.len()),
        crate::units::human(r["bytes_written"].as_u64().unwrap_or(0))
    );
    if let Some(steps) = r["post_steps"].as_array().filter(|s| !s.is_empty()) {
        let ok = steps.iter().filter(|s| s["status"] == "ok").count();
        line.push_str(&format!("; post-steps {ok}/{} ok", steps.len()));
        if let Some(f) = steps.iter().find(|s| s["status"] == "failed") {
            line.push_str(&format!(", FAILED: {}", f["step"].as_str().unwrap_or("?")));
        }
    }
    Some(line)
}

pub fn pass_name(p: Pass) -> &'static str {
    match p {
        Pass::Full => "full",
        Pass::Incremental => "incremental",
        Pass::Verify => "verify",
        _ => "resume",
    }
}
