//! Watching and steering training jobs: `/v1/jobs`, `/v1/jobs/{id}` (its loss history sampled
//! down unless `?history=full`), its Server-Sent Events stream, and `DELETE` to cancel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::time::Instant;

use super::budget::{Budget, large_json};
use super::error::ErrorBody;
use super::models::{BYTES_PER_EPOCH, HistoryQuery};
use super::{AppError, AppPath};
use crate::model::{HISTORY_POINTS, HistoryDetail};
use crate::state::AppState;
use crate::training::{CancelOutcome, CancelReason, Job, JobView};

/// The least time between two progress events of one stream (at most 20 a second).
const EVENT_INTERVAL: Duration = Duration::from_millis(50);
/// The most losses one progress event carries; a longer history comes in several events.
const EVENT_LOSSES: usize = 10_000;
/// How long `DELETE` waits for the fit to notice the cancellation.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// `GET /v1/jobs`: recent jobs, newest first, without their loss histories.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    responses((status = 200, description = "Recent jobs, newest first", body = Vec<JobView>)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<JobView>> {
    let jobs = state.trainer().recent();
    Json(jobs.iter().map(|job| job.view(HistoryDetail::None)).collect())
}

/// `GET /v1/jobs/{id}`: one job with its loss history so far.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "The job's id", example = 1), HistoryQuery),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "An id that is not a number, or a bad query", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath(id): AppPath<u64>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let job = find(&state, id)?;
    let epochs = match query.history {
        HistoryDetail::Full => job.epochs_done(),
        HistoryDetail::Sampled => job.epochs_done().min(HISTORY_POINTS) * 2,
        HistoryDetail::None => 0,
    };
    let estimate = 2048 + epochs * BYTES_PER_EPOCH;
    // The view is built under the job's lock, off the workers when it is large.
    let view = match estimate > super::budget::SMALL {
        true => budget.offload(move || job.view(query.history)).await?,
        false => job.view(query.history),
    };
    large_json(&budget, estimate, view).await
}

/// `DELETE /v1/jobs/{id}`: cancels a running job; the served model stays as it was. 409 if the
/// job has finished, or had finished its fit and was storing its model (too late to cancel).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "The job's id", example = 1)),
    responses(
        (status = 200, description = "The job, cancelled", body = JobView),
        (status = 400, description = "An id that is not a number", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has finished, or is storing its model", body = ErrorBody),
    ))]
#[tracing::instrument(skip(state))]
pub async fn cancel(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> Result<Json<JobView>, AppError> {
    let job = find(&state, id)?;
    let finished =
        |job: &Job| format!("training job {id} has already finished ({:?})", job.state()).to_lowercase();
    if job.state().is_finished() {
        return Err(AppError::new(StatusCode::CONFLICT, finished(&job)));
    }
    if job.cancel(CancelReason::Request) == CancelOutcome::TooLate {
        let _ = tokio::time::timeout(CANCEL_WAIT, job.finished()).await;
        let message = format!("{}: its fit had ended and its model was being stored", finished(&job));
        return Err(AppError::new(StatusCode::CONFLICT, message));
    }
    // The fit notices at its next checkpoint; wait for it so the answer shows the final state.
    let _ = tokio::time::timeout(CANCEL_WAIT, job.finished()).await;
    Ok(Json(job.view(HistoryDetail::None)))
}

/// `GET /v1/jobs/{id}/events`: `progress` events (new losses since the last event, epoch, ETA)
/// at most every 50 ms while the job runs, the last of them holding the final epochs, then one
/// `done` event with the whole job. A history longer than [`EVENT_LOSSES`] comes in several
/// events, sent back to back.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", params(("id" = u64, Path, description = "The job's id", example = 1)),
    responses(
        (status = 200, description = "Server-Sent Events: `progress`, then `done`", content_type = "text/event-stream", body = String),
        (status = 400, description = "An id that is not a number", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let cursor = EventCursor { job: find(&state, id)?, sent_epochs: 0, last_sent: None, done: false };
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next_event().await?;
        Some((Ok(event), cursor))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where one event stream is in its job's history.
struct EventCursor {
    job: Arc<Job>,
    sent_epochs: usize,
    last_sent: Option<Instant>,
    done: bool,
}

impl EventCursor {
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut changes = self.job.subscribe();
        let backlog = self.job.epochs_done() > self.sent_epochs + EVENT_LOSSES;
        if let (Some(last), false) = (self.last_sent, backlog) {
            tokio::time::sleep_until(last + EVENT_INTERVAL).await;
        }
        loop {
            changes.borrow_and_update();
            let progress = self.job.progress_since(self.sent_epochs, EVENT_LOSSES);
            let finished = progress.state.is_finished();
            if finished && progress.losses.is_empty() {
                self.done = true;
                return Some(json_event("done", &self.job.view(HistoryDetail::None)));
            }
            // A finished job first gets its last losses out, so the stream holds every epoch.
            if finished || self.last_sent.is_none() || !progress.losses.is_empty() {
                self.sent_epochs = progress.epoch;
                self.last_sent = Some(Instant::now());
                return Some(json_event("progress", &progress));
            }
            // The job outlives this stream's reference, so its sender cannot close under us.
            let _ = changes.changed().await;
        }
    }
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Event {
    Event::default().event(name).json_data(data).expect("job views serialise")
}

fn find(state: &AppState, id: u64) -> Result<Arc<Job>, AppError> {
    state
        .trainer()
        .job(id)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("there is no training job {id}")))
}
