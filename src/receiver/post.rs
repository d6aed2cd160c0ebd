//! A pass that follows a plan: the source's TargetPlan checked against the
//! targets before anything is written, the old tables wiped so that an
//! interrupted migration never looks like a disk that boots, and, once the
//! data is durable and read back, the tables written and the grow steps run
//! (`crate::plan::apply`).

use super::server::Receiver;
use super::session::{Refusal, refuse};
use crate::plan::apply::{self, StepReport, StepStatus};
use crate::plan::target::TargetPlan;
use crate::proto::message::ErrorCode;
use crate::report::events;

/// A target plan as received: its text (part of the layout's identity) and
/// its parsed form.
pub struct PostPlan {
    pub json: String,
    pub plan: TargetPlan,
}

impl PostPlan {
    /// Parse the JSON of a TargetPlan message.
    pub fn parse(json: String) -> Result<PostPlan, Refusal> {
        let plan: TargetPlan = serde_json::from_str(&json).map_err(|e| {
            refuse(
                ErrorCode::MalformedFrame,
                format!("the target plan is not valid: {e}"),
            )
        })?;
        Ok(PostPlan { json, plan })
    }

    /// The least size of each planned target, for the layout check.
    pub fn min_sizes(&self) -> Vec<(u32, u64)> {
        self.plan
            .disks
            .iter()
            .map(|d| (d.target, d.min_size))
            .collect()
    }
}

impl Receiver {
    fn plan_target(&self, t: u32) -> Result<&super::sink::Target, Refusal> {
        self.targets.get(t as usize).ok_or_else(|| {
            refuse(
                ErrorCode::TargetTooSmall,
                format!(
                    "the plan has a table for target {t}, but this receiver has {} target(s)",
                    self.targets.len()
                ),
            )
        })
    }

    /// After the layout check (image files have grown to their planned
    /// size): every disk of the plan names a distinct target and its table
    /// and steps fit that target.
    pub fn check_plan(&self, p: &PostPlan) -> Result<(), Refusal> {
        let mut seen = std::collections::BTreeSet::new();
        for d in &p.plan.disks {
            if !seen.insert(d.target) {
                return Err(refuse(
                    ErrorCode::MalformedFrame,
                    format!("the plan has two tables for target {}", d.target),
                ));
            }
            let target = self.plan_target(d.target)?;
            let size = target.size().map_err(|e| {
                refuse(
                    ErrorCode::Internal,
                    format!("{}: cannot read its size: {e}", target.path.display()),
                )
            })?;
            d.validate(size).map_err(|e| {
                refuse(
                    ErrorCode::TargetTooSmall,
                    format!("{} (from {}): {e}", target.path.display(), d.source),
                )
            })?;
        }
        Ok(())
    }

    /// Before data is written: wipe the targets' old partition tables.
    pub fn prepare_plan(&self, task: &str, p: &PostPlan) -> Result<(), Refusal> {
        let mut wiped = Vec::new();
        for d in &p.plan.disks {
            let target = self.plan_target(d.target)?;
            let done = apply::prepare(&target.path, d).map_err(|e| {
                refuse(
                    ErrorCode::Internal,
                    format!("{}: wiping its old tables: {e}", target.path.display()),
                )
            })?;
            wiped.extend(
                done.into_iter()
                    .map(|w| format!("{}: {w}", target.path.display())),
            );
        }
        events::log(
            &self.state_dir,
            task,
            "task-start",
            &format!(
                "plan: {} target disk(s); old partition tables wiped ({}); new ones are written after the data",
                p.plan.disks.len(),
                if wiped.is_empty() {
                    "none found".to_string()
                } else {
                    wiped.join(", ")
                }
            ),
        );
        Ok(())
    }

    /// After the data: write each target's table and run its steps, each
    /// logged as an event. The reports of the steps are returned for the
    /// task report; a failing step is a refusal naming it (the data stays).
    pub fn apply_plan(
        &self,
        task: &str,
        p: &PostPlan,
        reports: &mut Vec<serde_json::Value>,
    ) -> Result<(), Refusal> {
        let disks: Vec<(std::path::PathBuf, crate::plan::target::TargetDisk)> = p
            .plan
            .disks
            .iter()
            .map(|d| Ok((self.plan_target(d.target)?.path.clone(), d.clone())))
            .collect::<Result<_, Refusal>>()?;
        let mut log = |r: &StepReport| {
            let status = match r.status {
                StepStatus::Ok => "done",
                StepStatus::Skipped => "skipped",
                StepStatus::Failed => "FAILED",
            };
            events::log(
                &self.state_dir,
                task,
                "task-post",
                &format!("{status}: {} ({:.1} s)", r.step, r.seconds),
            );
            reports.push(serde_json::to_value(r).unwrap_or_default());
        };
        apply::apply_all(&disks, &mut log).map_err(|e| {
            refuse(
                ErrorCode::PostStep,
                format!("after the data: {e}; the data is in place, the task is in error"),
            )
        })?;
        Ok(())
    }
}
