//! Watching and steering training jobs: `/v1/jobs`, `/v1/jobs/{id}`, its Server-Sent Events
//! stream, and `DELETE` to cancel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::time::Instant;

use super::{AppError, AppPath};
use crate::jobs::{CancelReason, Job, JobView};
use crate::state::AppState;

/// The least time between two progress events of one stream (at most 20 a second).
const EVENT_INTERVAL: Duration = Duration::from_millis(50);
/// How long `DELETE` waits for the fit to notice the cancellation.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// `GET /v1/jobs`: recent jobs, newest first, without their loss histories.
pub async fn list(State(state): State<AppState>) -> Json<Vec<JobView>> {
    let jobs = state.jobs().list();
    Json(jobs.iter().map(|job| job.view(false)).collect())
}

/// `GET /v1/jobs/{id}`: one job with its loss history so far.
pub async fn get(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> Result<Json<JobView>, AppError> {
    Ok(Json(find(&state, id)?.view(true)))
}

/// `DELETE /v1/jobs/{id}`: cancels a running job; the served model stays as it was.
#[tracing::instrument(skip(state))]
pub async fn cancel(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> Result<Json<JobView>, AppError> {
    let job = find(&state, id)?;
    if job.state().is_finished() {
        let message = format!("training job {id} has already finished ({:?})", job.state()).to_lowercase();
        return Err(AppError::new(StatusCode::CONFLICT, message));
    }
    job.cancel(CancelReason::Request);
    // The fit notices between batches; wait for it so the answer shows the final state.
    let _ = tokio::time::timeout(CANCEL_WAIT, job.finished()).await;
    Ok(Json(job.view(false)))
}

/// `GET /v1/jobs/{id}/events`: `progress` events (new losses since the last event, epoch, ETA)
/// at most every 50 ms while the job runs, the last of them holding the final epochs, then one
/// `done` event with the whole job.
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
        if let Some(last) = self.last_sent {
            tokio::time::sleep_until(last + EVENT_INTERVAL).await;
        }
        loop {
            changes.borrow_and_update();
            let progress = self.job.progress_since(self.sent_epochs);
            let finished = progress.state.is_finished();
            if finished && progress.losses.is_empty() {
                self.done = true;
                return Some(json_event("done", &self.job.view(false)));
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
        .job(id)
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, format!("there is no training job {id}")))
}
