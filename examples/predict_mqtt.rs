//! MQTT round trips: a client publishes one small question and waits for its answer, for
//! SECONDS, first with one in flight and then with IN_FLIGHT; against regserve (questions on
//! `PREFIX/1/x`, answered on `PREFIX/1/y` by a server run with `--mqtt-predict-topic PREFIX/+/x`)
//! and, as the baseline, against the broker alone (the client publishes to a topic it subscribes
//! to itself). Every message is QoS 1. Prints one JSON line with the four rates.
//!
//! ```text
//! predict_mqtt HOST:PORT PREFIX SECONDS [IN_FLIGHT (default 16)]
//! ```

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const QUESTION: &str = r#"{"id": 1, "x": [[15.5]]}"#;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: predict_mqtt HOST:PORT PREFIX SECONDS [IN_FLIGHT]");
        std::process::exit(2)
    };
    let (Some(broker), Some(prefix)) = (args.first(), args.get(1)) else { usage() };
    let Some(seconds) = args.get(2).and_then(|s| s.parse::<f64>().ok()) else { usage() };
    let in_flight: usize = args.get(3).map_or(16, |k| k.parse().expect("a number of messages"));
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let duration = Duration::from_secs_f64(seconds);
    let port = port.parse().expect("a port");
    let mut served = Asker::connect(host, port, &format!("{prefix}/1/y")).await;
    served.until_answered(&format!("{prefix}/1/x")).await;
    let echo_topic = format!("{prefix}-echo/{}/y", std::process::id());
    let mut echo = Asker::connect(host, port, &echo_topic).await;
    echo.until_answered(&echo_topic).await;
    let regserve_1 = served.round_trips(&format!("{prefix}/1/x"), duration, 1).await;
    let broker_1 = echo.round_trips(&echo_topic, duration, 1).await;
    let regserve_k = served.round_trips(&format!("{prefix}/1/x"), duration, in_flight).await;
    let broker_k = echo.round_trips(&echo_topic, duration, in_flight).await;
    println!(
        "{{\"in_flight\": {in_flight}, \"regserve_round_trips_per_second\": {regserve_1:.0}, \
         \"broker_round_trips_per_second\": {broker_1:.0}, \"regserve_round_trips_per_second_in_flight\": {regserve_k:.0}, \
         \"broker_round_trips_per_second_in_flight\": {broker_k:.0}}}"
    );
}

/// A client subscribed to where its answers arrive.
struct Asker {
    client: AsyncClient,
    answers: mpsc::UnboundedReceiver<()>,
}

impl Asker {
    async fn connect(host: &str, port: u16, answers_on: &str) -> Self {
        let id = format!("predict-mqtt-{}-{answers_on}", std::process::id()).replace('/', "-");
        let (client, mut events) = AsyncClient::new(MqttOptions::new(id, host, port), 1024);
        // As regserve's adapter does: without it each round trip waits for a delayed ACK.
        let mut network = events.network_options();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        client.subscribe(answers_on, QoS::AtLeastOnce).await.expect("subscribes");
        let (answered, answers) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = event {
                    let _ = answered.send(());
                }
            }
        });
        Self { client, answers }
    }

    async fn ask(&self, topic: &str) {
        self.client.publish(topic, QoS::AtLeastOnce, false, QUESTION).await.expect("queued");
    }

    /// Asks until the first answer comes (the subscriptions are in place), then drains.
    async fn until_answered(&self, topic: &str) {
        let started = Instant::now();
        loop {
            self.ask(topic).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !self.answers.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no answer on {topic}: is regserve subscribed?"
            );
        }
    }

    /// Answers per second with `in_flight` questions outstanding, for `duration`.
    async fn round_trips(&mut self, topic: &str, duration: Duration, in_flight: usize) -> f64 {
        while self.answers.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_millis(300)).await;
        while self.answers.try_recv().is_ok() {}
        let started = Instant::now();
        let (mut sent, mut answered) = (0u64, 0u64);
        for _ in 0..in_flight {
            self.ask(topic).await;
            sent += 1;
        }
        while answered < sent {
            tokio::time::timeout(Duration::from_secs(10), self.answers.recv())
                .await
                .expect("an answer")
                .expect("open");
            answered += 1;
            if started.elapsed() < duration {
                self.ask(topic).await;
                sent += 1;
            }
        }
        answered as f64 / started.elapsed().as_secs_f64()
    }
}
