//! The retraining decisions, as pure functions of the triggers' state and a given time, so that
//! they are tested without waiting: when a condition is due (and how many scheduled times a
//! downtime merged into one run), how many rows are still to come, and what a firing does while
//! a training runs (start, queue behind it, or merge into the one queued).

use time::OffsetDateTime;

use super::triggers::When;
use crate::training::TrainRequest;

/// The most scheduled times counted when a long downtime is merged into one run.
const MISSED_COUNTED: u64 = 100_000;

/// A scheduled run that is due: the latest time it was scheduled for, and how many earlier
/// scheduled times (missed while the server was down or busy) it stands for besides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub scheduled_for: OffsetDateTime,
    pub missed: u64,
}

/// The next scheduled time of a time condition after `last` (the time it last ran for, or
/// when the trigger was set); `None` for the other conditions.
pub fn next_time(when: &When, last: OffsetDateTime) -> Option<OffsetDateTime> {
    match when {
        When::Every(every) => Some(last + *every),
        When::Cron(cron) => cron.next_after(last),
        When::Rows(_) | When::Webhook => None,
    }
}

/// The run due at `now`, if the next scheduled time after `last` has come: every scheduled
/// time up to `now` is merged into one run, for the latest of them.
pub fn due(when: &When, last: OffsetDateTime, now: OffsetDateTime) -> Option<Due> {
    let first = next_time(when, last).filter(|first| *first <= now)?;
    let due = match when {
        When::Every(every) => {
            let periods = ((now - first).as_seconds_f64() / every.as_secs_f64()).floor() as u64;
            let mut scheduled_for = first + *every * u32::try_from(periods).unwrap_or(u32::MAX);
            // Rounding of the division must never put the run after `now`.
            while scheduled_for > now {
                scheduled_for -= *every;
            }
            Due { scheduled_for, missed: periods.min(MISSED_COUNTED) }
        }
        _ => {
            let (mut scheduled_for, mut missed) = (first, 0);
            while let Some(next) = next_time(when, scheduled_for).filter(|next| *next <= now) {
                if missed == MISSED_COUNTED {
                    break;
                }
                (scheduled_for, missed) = (next, missed + 1);
            }
            Due { scheduled_for, missed }
        }
    };
    Some(due)
}

/// Rows still to come before a rows condition of `threshold` fires, `arrived` having arrived
/// since the last training.
pub fn rows_to_go(threshold: u64, arrived: u64) -> u64 {
    threshold.saturating_sub(arrived)
}

/// A trigger's request for a training.
#[derive(Debug, Clone)]
pub struct Firing {
    pub trigger: String,
    pub request: TrainRequest,
    /// For a scheduled run, the time it was due.
    pub scheduled_for: Option<OffsetDateTime>,
    /// Firings merged into this one while it waited.
    pub merged: u64,
}

/// What became of a firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Nothing runs: start it now.
    Start,
    /// A training runs: it waits behind it.
    Queued,
    /// A firing waits already: this one was merged into it (of the trigger named).
    Merged { into: String },
}

/// The one firing that may wait behind the running training.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: Option<Firing>,
}

impl Queue {
    /// Takes `firing` while a training runs (`busy`) or not; a firing that can start now is
    /// handed back.
    pub fn offer(&mut self, firing: Firing, busy: bool) -> (Admitted, Option<Firing>) {
        match (&mut self.waiting, busy) {
            (Some(waiting), _) => {
                waiting.merged += 1 + firing.merged;
                (Admitted::Merged { into: waiting.trigger.clone() }, None)
            }
            (None, true) => {
                self.waiting = Some(firing);
                (Admitted::Queued, None)
            }
            (None, false) => (Admitted::Start, Some(firing)),
        }
    }

    /// The firing to start once the training ends.
    pub fn take(&mut self) -> Option<Firing> {
        self.waiting.take()
    }

    pub fn waiting(&self) -> Option<&Firing> {
        self.waiting.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;

    fn firing(trigger: &str) -> Firing {
        Firing { trigger: trigger.into(), request: TrainRequest::default(), scheduled_for: None, merged: 0 }
    }

    #[test]
    fn an_interval_is_due_once_per_period_and_merges_a_downtime() {
        let every = When::Every(Duration::from_secs(60));
        let set = datetime!(2026-12-01 10:00:00 UTC);
        assert_eq!(due(&every, set, datetime!(2026-12-01 10:00:59 UTC)), None);
        let once = Due { scheduled_for: datetime!(2026-12-01 10:01:00 UTC), missed: 0 };
        assert_eq!(due(&every, set, datetime!(2026-12-01 10:01:30 UTC)), Some(once));
        // Down from 10:00:30 to 10:10:30: ten scheduled times, one run for the latest.
        let merged = Due { scheduled_for: datetime!(2026-12-01 10:10:00 UTC), missed: 9 };
        assert_eq!(due(&every, set, datetime!(2026-12-01 10:10:30 UTC)), Some(merged));
        assert_eq!(next_time(&every, merged.scheduled_for), Some(datetime!(2026-12-01 10:11:00 UTC)));
    }

    #[test]
    fn a_cron_schedule_merges_missed_times_into_the_latest() {
        let nightly = When::Cron("0 3 * * *".parse().unwrap());
        let last = datetime!(2026-12-01 03:00:00 UTC);
        assert_eq!(due(&nightly, last, datetime!(2026-12-02 02:59:00 UTC)), None);
        let three_nights = Due { scheduled_for: datetime!(2026-12-04 03:00:00 UTC), missed: 2 };
        assert_eq!(due(&nightly, last, datetime!(2026-12-04 09:00:00 UTC)), Some(three_nights));
    }

    #[test]
    fn rows_and_webhooks_are_never_due_by_time() {
        let now = datetime!(2026-12-01 10:00:00 UTC);
        assert_eq!(due(&When::Rows(10), now - Duration::from_secs(86_400), now), None);
        assert_eq!(due(&When::Webhook, now - Duration::from_secs(86_400), now), None);
        assert_eq!(rows_to_go(10, 3), 7);
        assert_eq!(rows_to_go(10, 12), 0);
    }

    #[test]
    fn one_firing_waits_behind_a_training_and_the_rest_merge_into_it() {
        let mut queue = Queue::default();
        let (admitted, start) = queue.offer(firing("rows"), false);
        assert_eq!((admitted, start.map(|f| f.trigger)), (Admitted::Start, Some("rows".into())));
        assert_eq!(queue.offer(firing("hourly"), true).0, Admitted::Queued);
        assert_eq!(queue.offer(firing("rows"), true).0, Admitted::Merged { into: "hourly".into() });
        assert_eq!(queue.offer(firing("etl"), false).0, Admitted::Merged { into: "hourly".into() });
        let next = queue.take().unwrap();
        assert_eq!((next.trigger.as_str(), next.merged), ("hourly", 2));
        assert!(queue.take().is_none());
    }
}
