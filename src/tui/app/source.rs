//! The source's screens: what keys do on the disk tree, the selection and
//! resize list, the receiver fields, the preflight, the transfer and the
//! report; and the rows those screens list.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Effect, FIELDS, InputFor, Modal, PlanRow, Screen, TreeKind, TreeRow, pass_name};
use crate::inventory::Inventory;
use crate::proto::message::Pass;
use crate::source::rate::RateLimit;
use crate::source::watch::Watch;

impl App {
    /// Recompute the plan from the inventory and the spec.
    pub fn replan(&mut self) {
        let Some(inv) = &self.inv else { return };
        self.planned = crate::plan::compute(inv, &self.spec, &mut |d| {
            use crate::disk::ReadAt;
            let disk = crate::disk::SourceDisk::open(std::path::Path::new(&d.path))
                .map_err(|e| e.to_string())?;
            let mut code = vec![0u8; crate::plan::target::BOOT_CODE_LEN];
            disk.read_exact_at(&mut code, 0)
                .map_err(|e| e.to_string())?;
            Ok(code)
        })
        .map_err(|e| e.to_string());
        self.plan_rows = plan_rows(inv);
        self.plan_cursor = self.plan_cursor.min(self.plan_rows.len().saturating_sub(1));
    }

    /// Tab, and j/k while the second pane has the keys: true when taken.
    fn pane_key(&mut self, k: &KeyEvent) -> bool {
        match k.code {
            KeyCode::Tab | KeyCode::BackTab => {
                self.second_pane = !self.second_pane;
                self.pane_scroll = 0;
                true
            }
            KeyCode::Up | KeyCode::Char('k') if self.second_pane => {
                self.pane_scroll = self.pane_scroll.saturating_sub(1);
                true
            }
            KeyCode::Down | KeyCode::Char('j') if self.second_pane => {
                self.pane_scroll = self.pane_scroll.saturating_add(1).min(200);
                true
            }
            _ => false,
        }
    }

    pub(super) fn disks_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let n = self.tree.len();
        if self.pane_key(&k) {
            return Vec::new();
        }
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.tree_cursor = self.tree_cursor.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.tree_cursor = (self.tree_cursor + 1).min(n.saturating_sub(1))
            }
            KeyCode::Char('r') => return vec![Effect::Inventory],
            KeyCode::Enter | KeyCode::Char('n') => {
                if self.inv.is_some() {
                    self.screen = Screen::Plan;
                } else {
                    self.status = "no disks read yet (r reads them again)".into();
                }
            }
            KeyCode::Esc => self.screen = Screen::Role,
            _ => {}
        }
        Vec::new()
    }

    pub fn current_plan_row(&self) -> Option<&PlanRow> {
        self.plan_rows.get(self.plan_cursor)
    }

    pub(super) fn plan_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let n = self.plan_rows.len();
        if self.pane_key(&k) {
            return Vec::new();
        }
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.plan_cursor = self.plan_cursor.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.plan_cursor = (self.plan_cursor + 1).min(n.saturating_sub(1))
            }
            KeyCode::Char(' ') => self.toggle(),
            KeyCode::Char('a') => {
                let all = !self.spec.all_vgs();
                self.spec.all_vgs = Some(all);
                self.replan();
                self.status = if all {
                    "migrate all volume groups: on".into()
                } else {
                    "migrate all volume groups: off (only LVs selected one by one)".into()
                };
            }
            KeyCode::Char('g') => {
                if let Some(r) = self.current_plan_row().cloned() {
                    let cur = self
                        .spec
                        .grow
                        .get(&r.volume)
                        .map(|g| g.to_string())
                        .unwrap_or_default();
                    self.input(
                        InputFor::Grow(r.volume.clone()),
                        format!(
                            "grow {} to (size such as 20GiB, or max; empty: no growth)",
                            r.volume
                        ),
                        cur,
                    );
                }
            }
            KeyCode::Char('t') => {
                let disk = self.current_plan_row().and_then(|r| r.disk.clone());
                match disk {
                    Some(d) => {
                        let cur = self
                            .spec
                            .target_size
                            .get(&d)
                            .map(|s| crate::plan::spec::format_size(s.0))
                            .unwrap_or_default();
                        self.input(
                            InputFor::TargetSize(d.clone()),
                            format!("target disk size for {d} (empty: the source's size)"),
                            cur,
                        );
                    }
                    None => self.status = "an LV's room comes from its PVs: grow a PV partition or set its disk's target size".into(),
                }
            }
            KeyCode::Char('w') => self.input(
                InputFor::SaveJob,
                "save these choices as a job file (path)".into(),
                "ferry-job.toml".into(),
            ),
            KeyCode::Enter | KeyCode::Char('n') => match &self.planned {
                Ok(_) => self.screen = Screen::Receiver,
                Err(e) => self.status = format!("the plan cannot be made: {e}"),
            },
            KeyCode::Esc => self.screen = Screen::Disks,
            _ => {}
        }
        Vec::new()
    }

    /// Space on a row: select or deselect it.
    fn toggle(&mut self) {
        let Some(r) = self.current_plan_row().cloned() else {
            return;
        };
        let selected = self.is_selected(&r.volume);
        let before = (self.spec.select.clone(), self.spec.deselect.clone());
        self.spec.select.retain(|v| v != &r.volume);
        self.spec.deselect.retain(|v| v != &r.volume);
        if selected {
            self.spec.deselect.push(r.volume.clone());
        } else {
            self.spec.select.push(r.volume.clone());
        }
        self.replan();
        if let Err(e) = &self.planned {
            self.status = format!("refused: {e}");
            (self.spec.select, self.spec.deselect) = before;
            self.replan();
        } else {
            self.status = format!(
                "{}: {}",
                r.volume,
                if selected {
                    "not migrated (its space stays empty)"
                } else {
                    "migrated"
                }
            );
        }
    }

    /// Whether the current plan reads this volume.
    pub fn is_selected(&self, volume: &str) -> bool {
        let Ok(p) = &self.planned else { return false };
        p.disks
            .iter()
            .flat_map(|d| &d.rows)
            .any(|r| r.volume == volume && r.selected)
            || p.vgs
                .iter()
                .flat_map(|g| &g.lvs)
                .any(|l| l.volume == volume && l.selected)
    }

    pub(super) fn receiver_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Tab | KeyCode::Down => self.field = (self.field + 1) % FIELDS.len(),
            KeyCode::BackTab | KeyCode::Up => {
                self.field = (self.field + FIELDS.len() - 1) % FIELDS.len()
            }
            KeyCode::Backspace => {
                self.fields[self.field].pop();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.fields[self.field].push(c)
            }
            KeyCode::F(5) => match self.receiver_ok() {
                Ok(()) => {
                    self.conn_test = None;
                    return vec![Effect::Netcheck { full: false }];
                }
                Err(e) => self.status = e,
            },
            KeyCode::Enter => match self.receiver_ok() {
                Ok(()) => {
                    self.screen = Screen::Preflight;
                    if self.net.is_none() {
                        return vec![Effect::Netcheck { full: true }];
                    }
                }
                Err(e) => self.status = e,
            },
            KeyCode::Esc => self.screen = Screen::Plan,
            _ => {}
        }
        Vec::new()
    }

    /// The receiver fields are complete and well formed.
    pub fn receiver_ok(&self) -> Result<(), String> {
        let [addr, fp, code] = &self.fields;
        if addr.trim().is_empty() {
            return Err("the receiver's address is empty (IP or IP:PORT)".into());
        }
        crate::job::check_address(addr.trim()).map_err(|e| format!("address: {e}"))?;
        crate::proto::tls::parse_fingerprint(fp).map_err(|e| {
            format!("fingerprint: {e:#} (64 hex digits as the receiver shows them)")
        })?;
        if code.trim().is_empty() {
            return Err("the pairing code is empty (the receiver shows it)".into());
        }
        Ok(())
    }

    pub(super) fn preflight_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::F(5) | KeyCode::Char('c') => {
                self.net = None;
                return vec![Effect::Netcheck { full: true }];
            }
            KeyCode::Char('r') => self.input(
                InputFor::Rate,
                "rate limit in Mbit/s, 0..1000 (0 = none)".into(),
                self.schedule.mbit.to_string(),
            ),
            KeyCode::Char('s') => self.input(
                InputFor::Schedule,
                "rate schedule: [DAYS] HH:MM-HH:MM=MBIT, ..., *=MBIT".into(),
                self.schedule.to_string(),
            ),
            KeyCode::Char('i') => {
                self.pass = match self.pass {
                    Pass::Full => Pass::Incremental,
                    Pass::Incremental => Pass::Verify,
                    _ => Pass::Full,
                };
                self.status = format!("pass: {}", pass_name(self.pass));
            }
            KeyCode::Enter => {
                self.modal = Some(Modal::ConfirmStart(self.start_summary()));
            }
            KeyCode::Esc => self.screen = Screen::Receiver,
            _ => {}
        }
        Vec::new()
    }

    /// What a start writes, for the confirmation: per target, the source
    /// disk's model, serial and size and the planned target size.
    pub fn start_summary(&self) -> Vec<String> {
        let mut v = vec![format!(
            "{} pass of task {:?} to the receiver at {}:",
            pass_name(self.pass),
            self.task,
            self.fields[0].trim()
        )];
        if let (Ok(p), Some(inv)) = (&self.planned, &self.inv) {
            for d in &p.disks {
                let src = inv.disks.iter().find(|x| x.path == d.source);
                let (model, serial) = src
                    .map(|s| {
                        (
                            s.model.clone().unwrap_or_else(|| "-".into()),
                            s.serial.clone().unwrap_or_else(|| "-".into()),
                        )
                    })
                    .unwrap_or_default();
                v.push(format!(
                    "  receiver target {} is OVERWRITTEN with {} (model {model}, serial {serial}, {}), planned size {}",
                    d.target,
                    d.source,
                    crate::units::human(d.source_size),
                    crate::units::human(d.target_size)
                ));
            }
        }
        v
    }

    pub(super) fn start_pass(&mut self, pass: Pass) -> Vec<Effect> {
        self.pass = pass;
        self.sent = None;
        self.speed.clear();
        self.last_sample = None;
        self.rate = RateLimit::new(self.schedule.mbit);
        self.watch = Some(Watch::new());
        self.screen = Screen::Transfer;
        self.status = format!("{} pass started", pass_name(pass));
        vec![Effect::Send(pass)]
    }

    pub(super) fn transfer_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let running = self.sent.is_none();
        match k.code {
            KeyCode::Char('s') | KeyCode::Char('p') if running => {
                self.modal = Some(Modal::ConfirmStop)
            }
            KeyCode::Char('r') => self.input(
                InputFor::Rate,
                "rate limit in Mbit/s now, 0..1000 (0 = none)".into(),
                self.rate.get().to_string(),
            ),
            KeyCode::Char('l') => self.show_log = !self.show_log,
            KeyCode::Enter if !running => self.screen = Screen::Report,
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn report_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Char('i') => {
                self.pass = Pass::Incremental;
                self.modal = Some(Modal::ConfirmStart(self.start_summary()));
            }
            KeyCode::Char('v') => {
                self.pass = Pass::Verify;
                self.modal = Some(Modal::ConfirmStart(self.start_summary()));
            }
            KeyCode::Char('b') | KeyCode::Esc => self.screen = Screen::Disks,
            KeyCode::Char('l') => self.show_log = !self.show_log,
            KeyCode::Char('P') if self.in_image => return vec![Effect::Power("poweroff")],
            KeyCode::Char('R') if self.in_image => return vec![Effect::Power("reboot")],
            _ => {}
        }
        Vec::new()
    }
}

/// The disk tree: disks, their partitions, then VGs and their LVs.
pub fn tree_rows(inv: &Inventory) -> Vec<TreeRow> {
    let mut v = Vec::new();
    for d in &inv.disks {
        v.push(TreeRow {
            depth: 0,
            name: d.path.clone(),
            kind: TreeKind::Disk,
        });
        for p in &d.partitions {
            v.push(TreeRow {
                depth: 1,
                name: p.volume.clone(),
                kind: TreeKind::Partition,
            });
        }
    }
    for g in &inv.volume_groups {
        v.push(TreeRow {
            depth: 0,
            name: g.name.clone(),
            kind: TreeKind::Vg,
        });
        for l in &g.lvs {
            if l.visible {
                v.push(TreeRow {
                    depth: 1,
                    name: l.volume.clone(),
                    kind: TreeKind::Lv,
                });
            }
        }
    }
    v
}

/// The selection list: partitions (and table-less disks) of the planned
/// disks, then LVs.
pub fn plan_rows(inv: &Inventory) -> Vec<PlanRow> {
    let mut v = Vec::new();
    for d in &inv.disks {
        if d.partitions.is_empty() && d.content.is_some() {
            v.push(PlanRow {
                volume: d.path.clone(),
                disk: Some(d.path.clone()),
                lv: false,
            });
        }
        for p in &d.partitions {
            if p.mbr_kind == Some(crate::layout::mbr::MbrKind::Extended) {
                continue;
            }
            v.push(PlanRow {
                volume: p.volume.clone(),
                disk: Some(d.path.clone()),
                lv: false,
            });
        }
    }
    for g in &inv.volume_groups {
        for l in g.lvs.iter().filter(|l| l.visible) {
            v.push(PlanRow {
                volume: l.volume.clone(),
                disk: None,
                lv: true,
            });
        }
    }
    v
}
