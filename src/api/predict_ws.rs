//! `GET /v1/predict/ws`: predictions over a WebSocket, in the stream format of
//! [`crate::serving::stream`]. A text frame (JSON rows) is answered by a text frame, a binary
//! frame (little-endian f64 rows) by a binary frame of predictions, in order; a frame that
//! cannot be answered (malformed, no model yet) gets an error text frame and the stream goes on.
//! Each frame is answered by the model active when it is read.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Stopping;
use super::gate::StreamSlot;
use super::ws;
use crate::serving::Protocol;
use crate::serving::stream::{self, Answer};
use crate::state::AppState;

/// `GET /v1/predict/ws`.
#[utoipa::path(
    get,
    path = "/v1/predict/ws",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: text frames {\"id\": ANY, \"x\": [[...]]} or {\"id\": ANY, \"x_predict\": [...]} are answered {\"id\": ..., \"y\": [...], \"version\": V} (or {\"id\": ..., \"error\": \"...\"}); binary frames of little-endian f64 rows by little-endian f64 predictions"),
        (status = 400, description = "Not a WebSocket upgrade request", body = Object, example = json!({"error": "Connection header did not include 'upgrade'"})),
        (status = 401, description = "The read token is missing or wrong", body = Object),
        (status = 426, description = "The connection cannot be upgraded", body = Object),
        (status = 503, description = "The server holds its limit of streams (--max-streams)", body = Object),
    ),
    tag = "predict"
)]
pub async fn predict(
    State(state): State<AppState>,
    State(Stopping(stop)): State<Stopping>,
    slot: Option<Extension<StreamSlot>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let session_state = state.clone();
    let slot = slot.map(|Extension(slot)| slot);
    ws::upgrade(&state, upgrade, slot, move |socket| session(session_state, socket, stop))
}

/// Answers the frames of one socket in order until the client closes it or the server stops.
async fn session(state: AppState, socket: WebSocket, stop: CancellationToken) {
    let (mut outgoing, mut incoming) = socket.split();
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            message = incoming.next() => message,
        };
        let answer = match message {
            Some(Ok(Message::Text(text))) => Message::Text(
                stream::answer_json(state.serving(), Protocol::WebSocket, text.as_bytes()).into(),
            ),
            Some(Ok(Message::Binary(bytes))) => {
                match stream::answer_binary(state.serving(), Protocol::WebSocket, &bytes) {
                    Answer::Binary(predictions) => Message::Binary(predictions.into()),
                    Answer::Text(error) => Message::Text(error.into()),
                }
            }
            // Pings are answered by the socket itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
        };
        if !ws::send(&mut outgoing, answer).await {
            return;
        }
    }
    ws::finish(&mut outgoing, &stop).await;
}
