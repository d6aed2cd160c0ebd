//! The choices made outside the TUI: kernel-argument presets and job
//! files, read in and written out.

use super::{App, Screen};
use crate::job::{Fingerprint, Job, ReceiverSection, TransferSection};
use crate::proto::message::Pass;
use crate::source::schedule::Schedule;

impl App {
    /// Take choices made before the TUI started (kernel arguments).
    pub fn preset(&mut self, p: &crate::tui::Preset) {
        match p.source {
            Some(true) => self.screen = Screen::Disks,
            Some(false) => self.screen = Screen::Targets,
            None => {}
        }
        for (i, v) in [&p.receiver, &p.fingerprint, &p.code]
            .into_iter()
            .enumerate()
        {
            if let Some(v) = v {
                self.fields[i] = v.clone();
            }
        }
        self.chosen = p.targets.clone();
        if let Some(r) = p.rate {
            self.schedule = Schedule::constant(r);
            self.rate.set(r);
        }
        if let Some(t) = &p.task {
            self.task = t.clone();
        }
    }

    /// Take a job file's choices: receiver, task, rate schedule, plan.
    pub fn load_job(&mut self, job: &Job) {
        let r = &job.receiver;
        if let Some(a) = &r.address {
            self.fields[0] = a.clone();
        }
        if let Some(f) = r.fingerprint {
            self.fields[1] = String::from(f);
        }
        if let Some(c) = &r.code {
            self.fields[2] = c.clone();
        }
        if let Some(t) = &job.transfer.task {
            self.task = t.clone();
        }
        if let Some(p) = job.transfer.pass {
            self.pass = match p {
                crate::job::PassKind::Incremental => Pass::Incremental,
                crate::job::PassKind::Verify => Pass::Verify,
                _ => Pass::Full,
            };
        }
        if let Some(s) = &job.rate {
            self.schedule = s.clone();
        }
        if let Some(p) = &job.plan {
            self.spec = p.clone();
        }
    }

    /// The current choices as a job file (a migration template).
    pub fn to_job(&self) -> Job {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Job {
            receiver: ReceiverSection {
                address: opt(&self.fields[0]),
                fingerprint: crate::proto::tls::parse_fingerprint(&self.fields[1])
                    .ok()
                    .map(Fingerprint),
                code: opt(&self.fields[2]),
            },
            transfer: TransferSection {
                task: Some(self.task.clone()),
                pass: Some(match self.pass {
                    Pass::Incremental => crate::job::PassKind::Incremental,
                    Pass::Verify => crate::job::PassKind::Verify,
                    _ => crate::job::PassKind::Full,
                }),
                ..Default::default()
            },
            rate: (self.schedule != Schedule::constant(0)).then(|| self.schedule.clone()),
            plan: Some(self.spec.clone()),
        }
    }
}
