//! The retrainer's state between wake-ups: the set in force, each trigger's status, and the
//! bookkeeping of a firing (what is due now, what a trigger shows, the outcome of its job).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::decide::{self, Firing, Queue};
use super::stored::{Mark, Status};
use super::{State, Trigger, TriggerSet, When, firing_of};
use crate::training::JobState;
use crate::units::{from_millis, millis, rfc3339};

/// The outcome of a trigger whose training runs.
pub(super) const RUNNING: &str = "running";

impl State {
    pub(super) fn new(
        set: TriggerSet,
        status: BTreeMap<String, Status>,
        mark: Mark,
        now: OffsetDateTime,
    ) -> Self {
        let mut status = status;
        for status in status.values_mut().filter(|status| status.outcome.as_deref() == Some(RUNNING)) {
            status.outcome = Some("interrupted: the server stopped before the training ended".into());
        }
        let mut state = Self {
            set: TriggerSet::default(),
            status,
            mark,
            queue: Queue::default(),
            started: Vec::new(),
            dirty: true,
        };
        state.replace(set, now);
        state
    }

    /// Puts `set` in force: a trigger that keeps its name and condition keeps its status, the
    /// others start afresh at `now`.
    pub(super) fn replace(&mut self, set: TriggerSet, now: OffsetDateTime) {
        let kept = |trigger: &Trigger| {
            let before = self.set.get(&trigger.name).map(|old| &old.when);
            before.is_none_or(|when| *when == trigger.when) && self.status.contains_key(&trigger.name)
        };
        let status = set
            .triggers
            .iter()
            .map(|trigger| {
                let status = match kept(trigger) {
                    true => self.status[&trigger.name].clone(),
                    false => Status::new(now),
                };
                (trigger.name.clone(), status)
            })
            .collect();
        self.status = status;
        self.set = set;
        self.dirty = true;
    }

    /// The firings due at `now`: schedules whose time has come (missed times merged into one),
    /// and rows conditions that `arrived` rows meet.
    pub(super) fn due(&mut self, now: OffsetDateTime, arrived: u64) -> Vec<Firing> {
        let mut firings = Vec::new();
        for trigger in &self.set.triggers {
            match &trigger.when {
                When::Rows(threshold) if decide::rows_to_go(*threshold, arrived) == 0 => {
                    firings.push(firing_of(trigger, None));
                }
                When::Every(_) | When::Cron(_) => {
                    let Some(due) = decide::due(&trigger.when, self.anchor(trigger), now) else { continue };
                    let mut firing = firing_of(trigger, Some(due.scheduled_for));
                    firing.merged = due.missed;
                    if due.missed > 0 {
                        tracing::info!(
                            trigger = trigger.name,
                            missed = due.missed,
                            "scheduled runs missed while down or busy are merged into one"
                        );
                    }
                    firings.push(firing);
                }
                _ => {}
            }
        }
        firings
    }

    /// Records that `firing` fired at `now`.
    pub(super) fn fired(&mut self, firing: &Firing, now: OffsetDateTime) {
        let status = self.status_mut(&firing.trigger);
        status.fired += 1;
        status.last_fired_ms = Some(millis(now));
        if let Some(scheduled_for) = firing.scheduled_for {
            status.anchor_ms = millis(scheduled_for);
            status.last_scheduled_for_ms = Some(millis(scheduled_for));
        }
        status.merged += firing.merged;
        self.dirty = true;
    }

    pub(super) fn status_mut(&mut self, trigger: &str) -> &mut Status {
        self.dirty = true;
        self.status.entry(trigger.to_owned()).or_insert_with(|| Status::new(OffsetDateTime::now_utc()))
    }

    /// The time a trigger's schedule counts from.
    pub(super) fn anchor(&self, trigger: &Trigger) -> OffsetDateTime {
        self.status.get(&trigger.name).map_or_else(OffsetDateTime::now_utc, Status::anchor)
    }

    /// Records the outcome of each started job that has ended.
    pub(super) fn record_outcomes(&mut self) {
        let (ended, running): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.started).into_iter().partition(|(_, job)| job.state().is_finished());
        self.started = running;
        for (trigger, job) in ended {
            let view = job.view(crate::model::HistoryDetail::None);
            let outcome = match (job.state(), job.outcome()) {
                (JobState::Succeeded, Some(Ok(model))) => match view.activated {
                    Some(false) => {
                        format!("version {} stored, not activated: {}", model.version(), view.gate_reason())
                    }
                    _ => format!("version {} activated", model.version()),
                },
                (_, Some(Err(error))) => error.to_string(),
                _ => "ended".to_owned(),
            };
            let status = self.status_mut(&trigger);
            if status.job == Some(job.id()) {
                status.outcome = Some(outcome);
            }
        }
    }

    /// What `GET /v1/triggers` shows of `trigger` at `now`.
    pub(super) fn view_of(&self, trigger: &Trigger, now: OffsetDateTime, arrived: u64) -> Value {
        let status = self.status.get(&trigger.name).cloned().unwrap_or_else(|| Status::new(now));
        let mut view = trigger.written.clone();
        let next = decide::next_time(&trigger.when, status.anchor()).map(|next| next.max(now));
        let rows_to_go = match trigger.when {
            When::Rows(threshold) => Some(decide::rows_to_go(threshold, arrived)),
            _ => None,
        };
        view["state"] = json!({
            "next_fire": next.map(rfc3339),
            "rows_to_go": rows_to_go,
            "last_fired": status.last_fired_ms.map(|ms| rfc3339(from_millis(ms))),
            "last_scheduled_for": status.last_scheduled_for_ms.map(|ms| rfc3339(from_millis(ms))),
            "job": status.job,
            "outcome": status.outcome,
            "fired": status.fired,
            "merged": status.merged,
        });
        view
    }
}
