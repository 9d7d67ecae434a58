//! MQTT source: owns the connection to one broker, the QoS 1 persistent-session subscription,
//! and the rule that a message's PUBACK goes out only once the intake answered that its rows are
//! durable. A message's idempotency key is its envelope's `batch_id`; a payload the intake
//! refuses is counted, sent to the dead-letter topic, and acknowledged.
//!
//! Each message is handled in its own task so the event loop keeps being polled. The tasks hand
//! their acknowledgements back to the event-loop side, which writes all that are due at once and
//! flushes them in one write (rumqttc's own path flushes every acknowledgement by itself). Every
//! lost connection starts a new *generation*: an acknowledgement is sent only in the generation
//! the message arrived in, because packet ids are reused by the broker after a reconnect.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, PubAck, PubRec, Publish,
    QoS, Request, SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pace::{Backoff, RateLimitedLog, Retry};
use super::settings::MqttSettings;
use crate::datasets::{Datasets, Source};

/// Room for the subscriptions, dead-letter publishes and the disconnect queued for the event loop
/// (acknowledgements go by their own channel).
const REQUEST_CAPACITY: usize = 256;
/// rumqttc refuses incoming packets above 10 KiB by default, and then drops the connection.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a stop waits for messages in flight to finish and be acknowledged.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Acknowledgements waiting to be written, and the most written in one go.
const ACK_CAPACITY: usize = 1024;
/// How long writing acknowledgements may take before the connection counts as stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the topic filters, the dead-letter topic (which must not loop back) and the client id.
pub fn check(settings: &MqttSettings) -> Result<(), String> {
    if settings.topics.is_empty() {
        return Err("--mqtt-url needs at least one --mqtt-topic to subscribe to".into());
    }
    if let Some(bad) = settings.topics.iter().find(|t| !rumqttc::valid_filter(t)) {
        return Err(format!("MQTT topic filter {bad:?} is not valid"));
    }
    if settings.client_id.is_empty() {
        return Err("the MQTT client id must not be empty: a persistent session needs one".into());
    }
    let Some(dead_letter) = &settings.dead_letter else { return Ok(()) };
    if dead_letter.is_empty() || !rumqttc::valid_topic(dead_letter) {
        return Err(format!("MQTT dead-letter topic {dead_letter:?} is not a valid topic name"));
    }
    if settings.topics.iter().any(|filter| rumqttc::matches(dead_letter, filter)) {
        return Err(format!(
            "MQTT dead-letter topic {dead_letter:?} matches a subscribed filter: rejects would loop"
        ));
    }
    Ok(())
}

fn options(settings: &MqttSettings) -> MqttOptions {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options
}

/// Consumes messages into `datasets` until `stop` is cancelled, then disconnects cleanly.
pub async fn run(settings: MqttSettings, datasets: Arc<Datasets>, stop: CancellationToken) {
    let (client, mut events) = AsyncClient::new(options(&settings), REQUEST_CAPACITY);
    let filters = settings.topics.iter().map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce)).collect();
    let (acks, durable) = mpsc::channel(ACK_CAPACITY);
    let shared = Arc::new(Shared {
        client,
        acks,
        datasets,
        dead_letter: settings.dead_letter,
        session: Mutex::default(),
        rejects_log: RateLimitedLog::default(),
        retry_log: RateLimitedLog::default(),
        stop: stop.clone(),
    });
    let mut listener = Listener { shared, filters, tasks: JoinSet::new(), connects: 0, durable };
    listener.listen(&mut events, &stop).await;
    listener.shutdown(&mut events).await;
}

/// What the message tasks share with the event loop.
struct Shared {
    client: AsyncClient,
    /// Where a message's task hands in its acknowledgement once the rows are durable.
    acks: mpsc::Sender<Ack>,
    datasets: Arc<Datasets>,
    dead_letter: Option<String>,
    session: Mutex<Session>,
    rejects_log: RateLimitedLog,
    retry_log: RateLimitedLog,
    stop: CancellationToken,
}

/// Connection generations, to decide whether a message may still be acknowledged or retried.
#[derive(Debug, Default)]
struct Session {
    /// Bumped whenever the connection is lost.
    generation: u64,
    /// Generation of the last connection on which the broker had kept our session.
    resumed_at: Option<u64>,
    /// Generation of the last connection on which the broker started a new session.
    renewed_at: u64,
}

impl Session {
    /// True when the broker will redeliver a message of `generation` itself: a later
    /// connection resumed the session, and no session was renewed (lost) in between.
    fn redelivers(&self, generation: u64) -> bool {
        self.resumed_at.is_some_and(|at| at > generation) && self.renewed_at <= generation
    }
}

/// A message done with, to acknowledge on the connection (generation) it arrived on.
struct Ack {
    generation: u64,
    qos: QoS,
    pkid: u16,
}

/// What the event loop does next.
enum Next {
    Stop,
    Acknowledge,
    Event(Result<Event, ConnectionError>),
}

/// The event-loop side: reacts to connection events, spawns one task per message, and writes
/// the acknowledgements the tasks hand back.
struct Listener {
    shared: Arc<Shared>,
    filters: Vec<SubscribeFilter>,
    tasks: JoinSet<()>,
    connects: u64,
    durable: mpsc::Receiver<Ack>,
}

impl Listener {
    async fn listen(&mut self, events: &mut EventLoop, stop: &CancellationToken) {
        let mut backoff = Backoff::new();
        let mut acks = Vec::with_capacity(ACK_CAPACITY);
        loop {
            // Not while connecting: that would be interrupted, and old acknowledgements are void.
            let connected = events.network.is_some();
            let next = tokio::select! {
                () = stop.cancelled() => Next::Stop,
                _ = self.durable.recv_many(&mut acks, ACK_CAPACITY), if connected => Next::Acknowledge,
                event = events.poll() => Next::Event(event),
            };
            let event = match next {
                Next::Stop => return,
                Next::Acknowledge => {
                    self.acknowledge(events, &mut acks).await;
                    continue;
                }
                Next::Event(event) => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    self.on_connected(ack.session_present);
                }
                Ok(event) => self.on_event(event),
                Err(error) => {
                    self.on_lost(events, &error);
                    if !backoff.wait(stop).await {
                        return;
                    }
                }
            }
            while self.tasks.try_join_next().is_some() {}
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::Publish(publish)) => {
                let generation = self.shared.lock_session().generation;
                self.tasks.spawn(Arc::clone(&self.shared).handle(publish, generation));
            }
            Event::Incoming(Packet::SubAck(ack))
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::error!(source = "mqtt", codes = ?ack.return_codes, "broker refused a subscription");
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, session_present: bool) {
        let first = self.connects == 0;
        self.connects += 1;
        let generation = {
            let mut session = self.shared.lock_session();
            if session_present {
                session.resumed_at = Some(session.generation);
            } else {
                session.renewed_at = session.generation;
            }
            session.generation
        };
        tracing::info!(source = "mqtt", generation, session_present, "connected");
        if first || !session_present {
            let (client, filters) = (self.shared.client.clone(), self.filters.clone());
            self.tasks.spawn(async move {
                if let Err(error) = client.subscribe_many(filters).await {
                    tracing::error!(source = "mqtt", %error, "could not queue the subscription");
                }
            });
        }
    }

    /// A new generation begins; acks queued for the old connection are dropped by `clean`
    /// (rumqttc already cleaned once inside `poll`, this catches acks queued since).
    fn on_lost(&mut self, events: &mut EventLoop, error: &ConnectionError) {
        let generation = {
            let mut session = self.shared.lock_session();
            session.generation += 1;
            session.generation
        };
        events.clean();
        tracing::warn!(source = "mqtt", generation, %error, "connection lost, reconnecting");
    }

    /// Writes the acknowledgements still due on this connection, then flushes them at once.
    /// A write that fails leaves them to the broker's redelivery; `poll` then sees the loss.
    async fn acknowledge(&self, events: &mut EventLoop, acks: &mut Vec<Ack>) {
        let generation = self.shared.lock_session().generation;
        let packets: Vec<Packet> = acks
            .drain(..)
            .filter(|ack| ack.generation == generation)
            .filter_map(|ack| match ack.qos {
                QoS::AtMostOnce => None,
                QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(ack.pkid))),
                QoS::ExactlyOnce => {
                    events.state.handle_outgoing_packet(Request::PubRec(PubRec::new(ack.pkid))).ok()?
                }
            })
            .collect();
        let Some(network) = events.network.as_mut().filter(|_| !packets.is_empty()) else { return };
        let written = async {
            for packet in packets {
                network.write(packet).await?;
            }
            network.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(source = "mqtt", %error, "acknowledgements not written"),
            Err(_) => {
                tracing::warn!(source = "mqtt", "acknowledgements not written within {WRITE_TIMEOUT:?}")
            }
        }
    }

    /// Lets messages in flight finish and acknowledge for a short grace, then disconnects.
    async fn shutdown(&mut self, events: &mut EventLoop) {
        let grace = tokio::time::sleep(STOP_GRACE);
        tokio::pin!(grace);
        let mut acks = Vec::with_capacity(ACK_CAPACITY);
        loop {
            let next = tokio::select! {
                () = &mut grace => Next::Stop,
                done = self.tasks.join_next() => if done.is_none() { Next::Stop } else { continue },
                _ = self.durable.recv_many(&mut acks, ACK_CAPACITY) => Next::Acknowledge,
                event = events.poll() => Next::Event(event),
            };
            match next {
                Next::Stop | Next::Event(Err(_)) => break,
                Next::Acknowledge => self.acknowledge(events, &mut acks).await,
                Next::Event(Ok(_)) => {}
            }
        }
        while let Ok(ack) = self.durable.try_recv() {
            acks.push(ack);
        }
        self.acknowledge(events, &mut acks).await;
        self.tasks.abort_all();
        if self.shared.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(STOP_GRACE, sent_disconnect(events)).await;
        }
    }
}

/// Polls until the DISCONNECT packet went out or the connection ended.
pub(crate) async fn sent_disconnect(events: &mut EventLoop) {
    while let Ok(event) = events.poll().await {
        if event == Event::Outgoing(Outgoing::Disconnect) {
            return;
        }
    }
}

impl Shared {
    fn lock_session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one message's rows, dead-letters it if it is refused, then acknowledges it;
    /// without an acknowledgement when stopped, or when the broker will redeliver it anyway.
    async fn handle(self: Arc<Self>, publish: Publish, generation: u64) {
        let appended = match super::decode::payload(&publish.payload) {
            Ok(envelope) => self.append(&publish, envelope, generation).await,
            Err(why) => Some(Err(why)),
        };
        match appended {
            None => return,
            Some(Ok(())) => {}
            Some(Err(why)) => self.reject(&publish, &why).await,
        }
        self.ack(&publish, generation).await;
    }

    /// Retries while the intake cannot take the rows now; `Some(Err)` when it refuses them.
    async fn append(
        &self,
        publish: &Publish,
        envelope: super::decode::Envelope,
        generation: u64,
    ) -> Option<Result<(), String>> {
        let batch = super::batch(envelope.rows, Source::Mqtt, envelope.batch_id, None);
        let retry = Retry { source: "mqtt", stop: &self.stop, log: &self.retry_log };
        let what = || format!("the rows of a message on {}", publish.topic);
        let appended =
            retry.append(self.datasets.intake(), batch, what, || self.lock_session().redelivers(generation));
        Some(appended.await?.map_err(|refused| refused.to_string()))
    }

    /// Counts a refused message and sends its payload to the dead-letter topic.
    async fn reject(&self, publish: &Publish, why: &str) {
        self.datasets.activity().rejected(Source::Mqtt, 1);
        self.rejects_log.warn("mqtt", || format!("rejected a message on {}: {why}", publish.topic));
        let Some(topic) = &self.dead_letter else { return };
        let sent = self.client.publish_bytes(topic, QoS::AtLeastOnce, false, publish.payload.clone()).await;
        if let Err(error) = sent {
            tracing::error!(source = "mqtt", %error, "could not queue a dead letter");
        }
    }

    /// Hands the acknowledgement to the event loop, which writes it if the connection it
    /// belongs to is still up.
    async fn ack(&self, publish: &Publish, generation: u64) {
        let ack = Ack { generation, qos: publish.qos, pkid: publish.pkid };
        let _ = self.acks.send(ack).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MqttSettings {
        MqttSettings {
            host: "h".into(),
            port: 1883,
            topics: vec!["a/+/b".into()],
            dead_letter: Some("dead/letters".into()),
            client_id: "c1".into(),
        }
    }

    #[test]
    fn checks_topics_dead_letter_and_client_id() {
        assert_eq!(check(&settings()), Ok(()));
        let mut looping = settings();
        looping.dead_letter = Some("a/x/b".into());
        assert!(check(&looping).unwrap_err().contains("would loop"));
        let mut bad = settings();
        bad.topics = vec!["a/#/b".into()];
        assert!(check(&bad).unwrap_err().contains("not valid"));
        bad.topics.clear();
        assert!(check(&bad).unwrap_err().contains("--mqtt-topic"));
        let mut anonymous = settings();
        anonymous.client_id.clear();
        assert!(check(&anonymous).unwrap_err().contains("client id"));
    }

    #[test]
    fn broker_redelivers_only_on_a_resumed_session() {
        let mut session = Session::default();
        assert!(!session.redelivers(0));
        session.generation = 1;
        session.resumed_at = Some(1);
        assert!(session.redelivers(0));
        session.generation = 2;
        session.renewed_at = 2;
        assert!(!session.redelivers(0));
        assert!(!session.redelivers(2));
    }
}
