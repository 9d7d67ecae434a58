//! A predictor's ear on the trainer: it follows the trainer's model event stream
//! (`GET /v1/models/events` at `--trainer-url`) and wakes the follower at each activation, so a
//! new version is served at once rather than at the next look. The pointer stays the one source
//! of truth: an event only says "look now", so a missed or repeated one changes nothing, and the
//! follower's looks every `--follow-interval` go on whether the stream is up or not. A lost
//! stream is opened again after a second, resuming after the last event it saw.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long to wait before opening a lost stream again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The trainer's model event stream.
pub struct Announcements {
    events: Uri,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The id of the last event seen, sent as `Last-Event-ID` when the stream is opened again.
    last_id: Option<String>,
}

impl Announcements {
    /// The stream of the trainer at `trainer_url` (`http://HOST:PORT`, checked at start-up).
    pub fn new(trainer_url: &str) -> Option<Self> {
        let events = format!("{}/v1/models/events", trainer_url.trim_end_matches('/')).parse().ok()?;
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Some(Self { events, client, last_id: None })
    }

    /// Wakes `follower` at every event until `stop`.
    pub async fn run(mut self, follower: Arc<Notify>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                ended = self.listen(&follower) => {
                    tracing::debug!(reason = %ended, "the trainer's model event stream ended; it is opened again");
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REOPEN_AFTER) => {}
            }
        }
    }

    /// Reads one connection's events; returns why it ended.
    async fn listen(&mut self, follower: &Notify) -> String {
        let mut request = Request::get(self.events.clone()).header(header::ACCEPT, "text/event-stream");
        if let Some(id) = &self.last_id {
            request = request.header("last-event-id", id.as_str());
        }
        let request = request.body(Empty::new()).expect("a valid request");
        let mut body = match self.client.request(request).await {
            Ok(response) if response.status().is_success() => response.into_body(),
            Ok(response) => return format!("the trainer answered {}", response.status()),
            Err(error) => return error.to_string(),
        };
        let mut pending = String::new();
        loop {
            let bytes = match body.frame().await {
                Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
                Some(Err(error)) => return error.to_string(),
                None => return "the trainer closed it".into(),
            };
            pending.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = pending.find("\n\n") {
                let block: String = pending.drain(..end + 2).collect();
                if self.take(&block) {
                    follower.notify_one();
                }
            }
        }
    }

    /// Notes the id of one event block; whether it is an event (not a keep-alive comment).
    fn take(&mut self, block: &str) -> bool {
        let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
        if let Some(id) = field("id:") {
            self.last_id = Some(id.to_owned());
        }
        field("data:").is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wake_the_follower_and_their_ids_are_kept_but_comments_do_nothing() {
        let mut feed = Announcements::new("http://127.0.0.1:1").unwrap();
        assert!(!feed.take(":\n\n"), "a keep-alive comment");
        assert!(feed.take("id: 7\nevent: activation\ndata: {\"version\": 3}\n\n"));
        assert_eq!(feed.last_id.as_deref(), Some("7"));
        assert!(feed.take("event: gap\ndata: {\"after\": 1, \"oldest\": 5}\n\n"));
        assert_eq!(feed.last_id.as_deref(), Some("7"), "a gap has no id");
    }
}
