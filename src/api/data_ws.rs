//! `GET /v1/data/ws`: appended rows over a WebSocket. Each text frame is a batch
//! `{"seq": n, "rows": [...]}` (optionally with `"batch_id"`), answered in order with
//! `{"ack": n, "rows": TOTAL}` once its rows are durable or `{"nack": n, "error": "..."}`; the
//! connection stays open either way, until the client closes it or the server stops. At most [`MAX_UNACKNOWLEDGED`] batches of a connection are
//! in flight: beyond that the server stops reading the socket until one is answered, so a fast
//! sender is slowed to the store's pace rather than buffered. A client that stops reading its
//! answers for [`ws::SEND_TIMEOUT`] is disconnected.

use std::future::Future;
use std::pin::Pin;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::Stopping;
use super::gate::StreamSlot;
use super::ws;
use crate::datasets::{AppendError, Source};
use crate::ingest::{self, decode};
use crate::state::AppState;

/// Batches of one connection that may wait for their commit at once.
pub const MAX_UNACKNOWLEDGED: usize = 16;

type Answer = Pin<Box<dyn Future<Output = String> + Send>>;

#[utoipa::path(get, path = "/v1/data/ws", tag = "data",
    responses(
        (status = 101, description = "The WebSocket: text frames `{\"seq\", \"rows\"}`, answered `{\"ack\", \"rows\"}` or `{\"nack\", \"error\"}`"),
        (status = 400, description = "Not a WebSocket upgrade", body = String),
        (status = 426, description = "Not a WebSocket upgrade", body = String),
    ))]
pub async fn feed(
    State(state): State<AppState>,
    State(Stopping(stop)): State<Stopping>,
    slot: Option<Extension<StreamSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let session_state = state.clone();
    ws::upgrade(&state, upgrade, slot.map(|Extension(slot)| slot), move |socket| {
        session(session_state, socket, stop)
    })
}

/// Answers the batches of one socket until the client closes it or the server stops (then the
/// batches in flight are answered first).
async fn session(state: AppState, socket: WebSocket, stop: CancellationToken) {
    let (mut outgoing, mut incoming) = socket.split();
    let mut in_flight: FuturesOrdered<Answer> = FuturesOrdered::new();
    let mut reading = true;
    while reading || !in_flight.is_empty() {
        tokio::select! {
            () = stop.cancelled(), if reading => reading = false,
            message = incoming.next(), if reading && in_flight.len() < MAX_UNACKNOWLEDGED => match message {
                Some(Ok(Message::Text(text))) => in_flight.push_back(Box::pin(answer(state.clone(), text.to_string()))),
                Some(Ok(Message::Binary(_))) => {
                    state.datasets().activity().rejected(Source::WebSocket, 1);
                    let refusal = nack(None, "frames are text: JSON {\"seq\": n, \"rows\": [...]}");
                    in_flight.push_back(Box::pin(std::future::ready(refusal)));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => reading = false,
            },
            Some(reply) = in_flight.next() => {
                if !ws::send(&mut outgoing, Message::Text(reply.into())).await {
                    return;
                }
            }
        }
    }
    ws::finish(&mut outgoing, &stop).await;
}

/// The answer to one frame.
async fn answer(state: AppState, text: String) -> String {
    let envelope = match decode::json(text.as_bytes()) {
        Ok(envelope) => envelope,
        Err(error) => {
            state.datasets().activity().rejected(Source::WebSocket, 1);
            return nack(seq_of(&text), &error);
        }
    };
    let refused = |seq, error: &str| {
        state.datasets().activity().rejected(Source::WebSocket, 1);
        nack(seq, error)
    };
    let Some(seq) = envelope.seq else {
        return refused(None, "the frame has no \"seq\": send {\"seq\": n, \"rows\": [...]}");
    };
    if envelope.rows.count() == 0 {
        return refused(Some(seq), "the batch has no rows");
    }
    let batch = ingest::batch(envelope.rows, Source::WebSocket, envelope.batch_id, None);
    match state.datasets().intake().append(batch).await {
        Ok(appended) => json!({"ack": seq, "rows": appended.rows}).to_string(),
        Err(error @ (AppendError::Invalid(_) | AppendError::TooLarge { .. })) => {
            refused(Some(seq), &error.to_string())
        }
        Err(error) => nack(Some(seq), &error.to_string()),
    }
}

fn nack(seq: Option<u64>, error: &str) -> String {
    json!({"nack": seq, "error": error}).to_string()
}

/// The `seq` of a frame that did not decode as a batch, if it has one.
fn seq_of(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text).ok()?.get("seq")?.as_u64()
}
