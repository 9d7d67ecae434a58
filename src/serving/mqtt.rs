//! The MQTT prediction adapter: owns its own connection to the broker of `--mqtt-url` (client id
//! `<intake id>-predict`, clean session), a QoS 1 subscription to the `--mqtt-predict-topic`
//! filters, and the rule that each message is answered (QoS 1) on its topic with the last level
//! replaced by `y`: `devices/42/x` is answered on `devices/42/y`. A message is JSON or binary
//! as [`super::stream`] has it; one that cannot be answered gets an error answer there.
//!
//! One task reads the messages and publishes their answers in the order they arrived, so the
//! answers of a topic keep its order. A filter that would match its own answer topics is refused
//! at start: its answers would be read back as questions.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter, SubscribeReasonCode,
};
use tokio_util::sync::CancellationToken;

use super::stream::{self, Answer};
use super::{Protocol, Serving};
use crate::ingest::mqtt::sent_disconnect;
use crate::ingest::pace::{Backoff, RateLimitedLog};
use crate::settings::MqttPredictSettings;

/// Room for the answers and subscriptions queued for the event loop.
const REQUEST_CAPACITY: usize = 1024;
/// rumqttc refuses packets above 10 KiB by default; a binary message of many rows is larger.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a stop waits for the DISCONNECT to go out.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// The last level of every answer topic.
const ANSWER_LEVEL: &str = "y";

/// Checks the filters (valid, and none matching its own answer topics) and the client id.
pub fn check(settings: &MqttPredictSettings) -> Result<(), String> {
    if let Some(bad) = settings.filters.iter().find(|filter| !rumqttc::valid_filter(filter)) {
        return Err(format!("MQTT predict topic filter {bad:?} is not valid"));
    }
    if let Some(looping) = settings.filters.iter().find(|filter| answers_loop(filter)) {
        return Err(format!(
            "MQTT predict topic filter {looping:?} matches its own answer topics (the topic with its last level \
             replaced by {ANSWER_LEVEL:?}), so answers would be read back as questions: end the filter with a \
             fixed level other than {ANSWER_LEVEL:?}, e.g. devices/+/x"
        ));
    }
    match settings.client_id.is_empty() {
        true => Err("the MQTT client id must not be empty".into()),
        false => Ok(()),
    }
}

/// Whether some topic the filter matches has an answer topic it matches too: exactly when its
/// last level is `#` (the answer's last level falls under it), `+`, or the answer level itself.
fn answers_loop(filter: &str) -> bool {
    let last = filter.rsplit('/').next().unwrap_or(filter);
    matches!(last, "#" | "+" | ANSWER_LEVEL)
}

/// The topic a message on `topic` is answered on.
pub fn answer_topic(topic: &str) -> String {
    match topic.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{ANSWER_LEVEL}"),
        None => ANSWER_LEVEL.to_owned(),
    }
}

fn options(settings: &MqttPredictSettings) -> MqttOptions {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_clean_session(true)
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options
}

/// Answers the messages on the filters until `stop` is cancelled, reconnecting with backoff
/// whenever the connection is lost; then disconnects.
pub async fn run(settings: MqttPredictSettings, serving: Serving, stop: CancellationToken) {
    let (client, mut events) = AsyncClient::new(options(&settings), REQUEST_CAPACITY);
    // An answer follows the acknowledgement of its question at once: Nagle's algorithm would
    // hold it back until the broker's delayed ACK (some 40 ms a round trip).
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    let filters =
        settings.filters.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)).collect();
    let mut adapter = Adapter { client, serving, filters, answers: VecDeque::new(), subscribe_due: false };
    adapter.answer(&mut events, &stop).await;
    if adapter.client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(STOP_GRACE, sent_disconnect(&mut events)).await;
    }
}

/// The connection's side of the adapter: the answers waiting to be handed to the event loop.
struct Adapter {
    client: AsyncClient,
    serving: Serving,
    filters: Vec<SubscribeFilter>,
    /// Answer topics and payloads, in the order their messages arrived.
    answers: VecDeque<(String, Bytes)>,
    /// Whether the subscription is still to be queued on this connection (a clean session
    /// forgets it with every reconnection).
    subscribe_due: bool,
}

/// What the loop does next.
enum Next {
    Stop,
    Queued,
    Event(Result<Event, rumqttc::ConnectionError>),
}

impl Adapter {
    async fn answer(&mut self, events: &mut EventLoop, stop: &CancellationToken) {
        let mut backoff = Backoff::new();
        let lost_log = RateLimitedLog::default();
        loop {
            // Queueing waits while the event loop's queue is full; polling empties it.
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => Next::Stop,
                queued = self.client.subscribe_many(self.filters.clone()), if self.subscribe_due => {
                    self.subscribe_due = queued.is_err();
                    Next::Queued
                }
                queued = self.queue_next_answer(), if !self.answers.is_empty() => {
                    if queued.is_ok() {
                        self.answers.pop_front();
                    }
                    Next::Queued
                }
                event = events.poll() => Next::Event(event),
            };
            match next {
                Next::Stop => return,
                Next::Queued => {}
                Next::Event(Ok(event)) => self.on_event(event, &mut backoff),
                Next::Event(Err(error)) => {
                    lost_log.warn("mqtt predictions", || format!("connection lost, reconnecting: {error}"));
                    if !backoff.wait(stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Hands the oldest answer to the event loop (QoS 1, not retained).
    async fn queue_next_answer(&self) -> Result<(), rumqttc::ClientError> {
        let (topic, payload) = self.answers.front().expect("called with answers waiting");
        self.client.publish_bytes(topic.as_str(), QoS::AtLeastOnce, false, payload.clone()).await
    }

    fn on_event(&mut self, event: Event, backoff: &mut Backoff) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                backoff.reset();
                self.subscribe_due = true;
                tracing::info!(source = "mqtt predictions", "connected");
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let answer = match stream::answer_payload(&self.serving, Protocol::Mqtt, &publish.payload) {
                    Answer::Text(text) => Bytes::from(text),
                    Answer::Binary(bytes) => Bytes::from(bytes),
                };
                self.answers.push_back((answer_topic(&publish.topic), answer));
            }
            Event::Incoming(Packet::SubAck(ack))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::error!(source = "mqtt predictions", codes = ?ack.return_codes, "broker refused a subscription");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(filters: &[&str]) -> MqttPredictSettings {
        MqttPredictSettings {
            host: "h".into(),
            port: 1883,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            client_id: "c-predict".into(),
        }
    }

    #[test]
    fn answers_on_the_topic_with_its_last_level_replaced() {
        assert_eq!(answer_topic("devices/42/x"), "devices/42/y");
        assert_eq!(answer_topic("x"), "y");
        assert_eq!(answer_topic("a/"), "a/y");
    }

    #[test]
    fn refuses_filters_that_match_their_own_answers() {
        assert_eq!(check(&settings(&["devices/+/x", "x", "a/b/in"])), Ok(()));
        for looping in ["devices/#", "#", "+/+/y", "devices/+", "y"] {
            let error = check(&settings(&["ok/x", looping])).unwrap_err();
            assert!(error.contains(&format!("{looping:?} matches its own answer topics")), "{error}");
        }
        assert!(check(&settings(&["a/#/x"])).unwrap_err().contains("not valid"));
        let mut anonymous = settings(&["a/x"]);
        anonymous.client_id.clear();
        assert!(check(&anonymous).unwrap_err().contains("client id"));
    }

    #[test]
    fn the_loop_rule_agrees_with_topic_matching() {
        let topics = ["a/x", "a/b/x", "a/y", "a/b/y", "x", "y", "a/b/c/x"];
        for filter in ["a/+", "a/x", "a/#", "+/b/x", "+/+/y", "#", "a/b/+", "x", "+"] {
            let loops = topics.iter().any(|topic| {
                rumqttc::matches(topic, filter) && rumqttc::matches(&answer_topic(topic), filter)
            });
            assert_eq!(answers_loop(filter), loops, "{filter}");
        }
    }
}
