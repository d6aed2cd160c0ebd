//! The role screen (network interfaces, a shell) and the receiver's
//! target disks: what keys do there.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::{App, Effect, InputFor, Modal, Screen};

impl App {
    /// The disks a receiver could write: every disk read.
    pub fn target_candidates(&self) -> Vec<&crate::inventory::Disk> {
        self.inv.iter().flat_map(|i| &i.disks).collect()
    }

    pub(super) fn targets_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let n = self.target_candidates().len();
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.target_cursor = self.target_cursor.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.target_cursor = (self.target_cursor + 1).min(n.saturating_sub(1))
            }
            KeyCode::Char(' ') => {
                if let Some(d) = self.target_candidates().get(self.target_cursor) {
                    let p = d.path.clone();
                    if let Some(i) = self.chosen.iter().position(|c| *c == p) {
                        self.chosen.remove(i);
                    } else {
                        self.chosen.push(p);
                    }
                }
            }
            KeyCode::Char('r') => return vec![Effect::Inventory],
            KeyCode::Enter => {
                if self.chosen.is_empty() {
                    self.status = "choose the target disks first (Space)".into();
                } else {
                    let mut lines = vec![
                        "These disks are OVERWRITTEN by what a source sends, in this order (target 0, 1, ...):".to_string(),
                    ];
                    for (i, c) in self.chosen.iter().enumerate() {
                        let d = self.target_candidates().into_iter().find(|d| d.path == *c);
                        lines.push(match d {
                            Some(d) => format!(
                                "  target {i}: {} model {}, serial {}, {}{}",
                                d.path,
                                d.model.as_deref().unwrap_or("-"),
                                d.serial.as_deref().unwrap_or("-"),
                                crate::units::human(d.size),
                                disk_state(d)
                            ),
                            None => format!("  target {i}: {c}"),
                        });
                    }
                    self.modal = Some(Modal::ConfirmReceive(lines));
                }
            }
            KeyCode::Esc => self.screen = Screen::Role,
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn role_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let iface = self.ifaces.get(self.iface_cursor).map(|i| i.name.clone());
        match k.code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.iface_cursor = self.iface_cursor.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.iface_cursor = (self.iface_cursor + 1).min(self.ifaces.len().saturating_sub(1))
            }
            KeyCode::Char('d') => match iface {
                Some(i) => {
                    self.status = format!("DHCP on {i}...");
                    return vec![Effect::Dhcp(i)];
                }
                None => self.status = "no network interface".into(),
            },
            KeyCode::Char('i') => match iface {
                Some(i) => self.input(
                    InputFor::StaticIp(i.clone()),
                    format!("static address for {i}: ADDR/PREFIX[,GATEWAY]"),
                    String::new(),
                ),
                None => self.status = "no network interface".into(),
            },
            KeyCode::Char('!') => return vec![Effect::Shell],
            KeyCode::Char('s' | 'S') | KeyCode::Enter => {
                self.screen = Screen::Disks;
                if self.inv.is_none() {
                    return vec![Effect::Inventory];
                }
            }
            KeyCode::Char('r' | 'R') => {
                self.screen = Screen::Targets;
                if self.inv.is_none() {
                    return vec![Effect::Inventory];
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

/// "empty", "in use: ..." or what the disk holds, for target choices.
pub fn disk_state(d: &crate::inventory::Disk) -> String {
    if !d.in_use.is_empty() {
        return format!(", IN USE: {}", d.in_use.join("; "));
    }
    match (&d.table, &d.content) {
        (None, None) => ", empty".into(),
        (Some(crate::inventory::Table::Gpt { .. }), _) => {
            format!(", holds a GPT with {} partition(s)", d.partitions.len())
        }
        (Some(crate::inventory::Table::Mbr { .. }), _) => {
            format!(", holds an MBR with {} partition(s)", d.partitions.len())
        }
        (None, Some(c)) if c.fs == "unknown" => ", no partition table or filesystem found".into(),
        (None, Some(c)) => format!(", holds {}", c.fs),
    }
}
