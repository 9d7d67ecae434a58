//! What the WebSocket routes share: the upgrade (with the frame size limits, its refusals as
//! the service's JSON errors, and the stream slot held for as long as the socket is open),
//! sending with a deadline for clients that stop reading, and the end of every socket when
//! the server stops.

use std::future::Future;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio_util::sync::CancellationToken;

use super::AppError;
use super::gate::StreamSlot;
use crate::state::AppState;

/// How long an answer may wait for the client to read it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half of a socket.
pub type Outgoing = SplitSink<WebSocket, Message>;

/// Upgrades to a WebSocket whose messages may be as large as a request body (`--max-body`) and
/// runs `session` on it, holding the request's stream slot until it ends; a request that is not
/// an upgrade is refused as JSON.
pub fn upgrade<F, S>(
    state: &AppState,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    slot: Option<StreamSlot>,
    session: S,
) -> Response
where
    S: FnOnce(WebSocket) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return AppError::new(rejection.status(), rejection.body_text()).into_response(),
    };
    let limit = state.limits().max_body_bytes;
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| async move {
        session(socket).await;
        drop(slot);
    })
}

/// Sends `message`; false when the session should end: the client is gone, or it did not read
/// for [`SEND_TIMEOUT`] (then it is told why and disconnected).
pub async fn send(outgoing: &mut Outgoing, message: Message) -> bool {
    match tokio::time::timeout(SEND_TIMEOUT, outgoing.send(message)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::info!("a WebSocket client stopped reading its answers; disconnected");
            close(outgoing, close_code::POLICY, "answers were not read").await;
            false
        }
    }
}

/// Ends the session with a close frame (`code`, `reason`), sent within [`SEND_TIMEOUT`].
pub async fn close(outgoing: &mut Outgoing, code: u16, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(SEND_TIMEOUT, outgoing.send(Message::Close(Some(frame)))).await;
}

/// Ends the session once the client has closed, or with "going away" if the server is stopping.
pub async fn finish(outgoing: &mut Outgoing, stop: &CancellationToken) {
    match stop.is_cancelled() {
        true => close(outgoing, close_code::AWAY, "the server is stopping").await,
        false => {
            let _ = tokio::time::timeout(SEND_TIMEOUT, outgoing.close()).await;
        }
    }
}
