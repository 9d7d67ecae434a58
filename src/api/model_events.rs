//! `GET /v1/models/events`: the activations of model versions as Server-Sent Events, first those
//! the client has not seen, then each as it happens, until the server stops.
//!
//! Each event is `id: <event id>`, `event: activation` and the [`ModelEvent`] as its data. A
//! client that sends `Last-Event-ID: N` (as `EventSource` does when it reconnects) gets the
//! retained events after N, preceded by `event: gap` with `{"after": N, "oldest": ...}` when some
//! of those were already dropped; one without it (or with an id the server never reached) gets
//! the newest [`HISTORY`] first.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::AppError;
use crate::registry::events::{Backlog, ModelEvent, Wakeup};
use crate::state::AppState;

/// How many of the retained events a new client gets first.
const HISTORY: usize = 100;

/// `GET /v1/models/events`.
#[utoipa::path(get, path = "/v1/models/events", tag = "models",
    responses((status = 200, description = "Server-Sent Events: the served model's changes", content_type = "text/event-stream", body = String)))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let last_seen = last_event_id(&headers)?;
    let log = state.models().events();
    // Subscribed before the backlog is read, so that no event falls between the two.
    let wakeup = log.subscribe();
    let mut cursor = Cursor { state: state.clone(), wakeup, pending: VecDeque::new(), through: 0 };
    cursor.take(log.replay(last_seen, HISTORY));
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next_event().await?;
        Some((Ok(event), cursor))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The `Last-Event-ID` header: absent or empty, or an event id.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, AppError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    let text = value.to_str().unwrap_or("?").trim();
    match text.is_empty() {
        true => Ok(None),
        false => text.parse().map(Some).map_err(|_| {
            AppError::new(StatusCode::BAD_REQUEST, format!("Last-Event-ID: {text:?} is not an event id"))
        }),
    }
}

/// Where one stream is in the event log.
struct Cursor {
    state: AppState,
    wakeup: Wakeup,
    /// Events due to be sent, in order.
    pending: VecDeque<Event>,
    /// The id up to which the client has been given everything.
    through: u64,
}

impl Cursor {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if !self.wakeup.recorded().await {
                return None;
            }
            let backlog = self.state.models().events().replay(Some(self.through), HISTORY);
            self.take(backlog);
        }
    }

    fn take(&mut self, backlog: Backlog) {
        let gap =
            backlog.gap.map(|gap| Event::default().event("gap").json_data(gap).expect("a gap serialises"));
        self.pending.extend(gap.into_iter().chain(backlog.events.iter().map(activation)));
        self.through = backlog.through;
    }
}

fn activation(event: &ModelEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event("activation")
        .json_data(event)
        .expect("an event serialises")
}
