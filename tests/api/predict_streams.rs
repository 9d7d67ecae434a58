//! Predictions streamed over the WebSocket `/v1/predict/ws` and over MQTT (mosquitto at
//! `REGSERVE_TEST_MQTT`, skipped without it outside CI as the broker tests are): both request
//! forms, binary frames, errors that leave the stream open, the model changing mid-stream, the
//! stream slot a socket holds, its end on shutdown, and the MQTT loop filter refused at start.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use regserve::app::Application;
use regserve::settings::{Location, MqttPredictSettings, Settings};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::brokers::{broker, unique};
use crate::helpers::{TestApp, binary_command, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(20);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(addr: std::net::SocketAddr) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/predict/ws")).await.unwrap();
    socket
}

/// The next data frame (pings and pongs skipped).
async fn next_frame(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("an answer in time");
        match message.expect("the stream is open").unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            message => return message,
        }
    }
}

/// Sends `request` as a text frame; returns the text answer as JSON.
async fn ask(socket: &mut Socket, request: &str) -> Value {
    socket.send(Message::Text(request.into())).await.unwrap();
    match next_frame(socket).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("a text answer, not {other:?}"),
    }
}

/// Sends `values` as a binary frame; returns the binary answer's predictions.
async fn ask_binary(socket: &mut Socket, values: &[f64]) -> Vec<f64> {
    let bytes: Vec<u8> = values.iter().flat_map(|value| value.to_le_bytes()).collect();
    socket.send(Message::Binary(bytes.into())).await.unwrap();
    match next_frame(socket).await {
        Message::Binary(bytes) => {
            assert_eq!(bytes.len() % 8, 0);
            bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
        }
        other => panic!("a binary answer, not {other:?}"),
    }
}

fn floats(answer: &Value) -> Vec<f64> {
    answer["y"]
        .as_array()
        .unwrap_or_else(|| panic!("predictions: {answer}"))
        .iter()
        .map(|y| y.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn text_frames_of_both_forms_and_binary_frames_answer_as_predict_does() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 10 })).await;
    let expected = app.predict_ok(json!([10, 15.5, 21])).await;
    let mut socket = socket(app.addr).await;

    let rows = ask(&mut socket, r#"{"id": "first", "x": [[10], [15.5], [21]]}"#).await;
    assert_eq!((rows["id"].clone(), rows["version"].clone()), (json!("first"), json!(1)), "{rows}");
    assert_eq!(floats(&rows), expected);
    let original = ask(&mut socket, r#"{"x_predict": [10, [15.5], 21.0]}"#).await;
    assert_eq!(original.get("id"), None, "no id asked, none echoed: {original}");
    assert_eq!(floats(&original), expected);
    let structured = ask(&mut socket, r#"{"id": {"n": [1, 2]}, "x_predict": []}"#).await;
    assert_eq!(structured, json!({"id": {"n": [1, 2]}, "y": [], "version": 1}));

    assert_eq!(ask_binary(&mut socket, &[10.0, 15.5, 21.0]).await, expected);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"predicted_rows_total{protocol="websocket"} 9"#), "{metrics}");
}

#[tokio::test]
async fn a_bad_frame_is_answered_with_an_error_and_the_stream_goes_on() {
    let app = spawn_app().await;
    let mut socket = socket(app.addr).await;
    let untrained = ask(&mut socket, r#"{"id": 1, "x": [[10]]}"#).await;
    assert!(untrained["error"].as_str().unwrap().contains("POST /train"), "{untrained}");
    assert_eq!(untrained["id"], 1);
    app.train(json!({ "epochs": 10 })).await;

    let refusals = [
        (r#"{"id": 2, "x": [[10, 11]]}"#, Some(json!(2)), "rows have 2 values; the model takes 1 feature"),
        (r#"{"id": 3, "x": [10]}"#, Some(json!(3)), "a row: a list of numbers"),
        (r#"{"id": 4, "x": ["#, Some(json!(4)), "EOF"),
        (r#"{"id": "five"}"#, Some(json!("five")), "no rows"),
        (r#"{"id": 6, "x_predict": [1e400]}"#, Some(json!(6)), "number out of range"),
    ];
    for (request, id, expected) in refusals {
        let answer = ask(&mut socket, request).await;
        assert_eq!(answer.get("id").cloned(), id, "{request}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(expected), "{request}: {answer}");
        assert_eq!(answer.get("y"), None);
    }
    socket.send(Message::Binary(vec![0u8; 12].into())).await.unwrap();
    let Message::Text(text) = next_frame(&mut socket).await else { panic!("an error text frame") };
    let error: Value = serde_json::from_str(&text).unwrap();
    assert!(error["error"].as_str().unwrap().contains("12 bytes are not whole rows"), "{error}");

    let good = ask(&mut socket, r#"{"id": 7, "x": [[10]]}"#).await;
    assert_eq!(floats(&good), app.predict_ok(json!([10])).await);
    assert_eq!(ask_binary(&mut socket, &[10.0]).await, floats(&good));
}

#[tokio::test]
async fn the_next_frame_after_a_new_version_is_answered_by_it() {
    let app = spawn_app().await;
    app.train(json!({ "epochs": 2, "seed": 1 })).await;
    let mut socket = socket(app.addr).await;
    let first = ask(&mut socket, r#"{"x": [[10]]}"#).await;
    assert_eq!(first["version"], 1);
    app.train(json!({ "epochs": 40, "seed": 2 })).await;
    let second = ask(&mut socket, r#"{"x": [[10]]}"#).await;
    assert_eq!(second["version"], 2, "{second}");
    assert_eq!(floats(&second), app.predict_ok(json!([10])).await);
    assert_ne!(floats(&first), floats(&second), "another model answers");
}

#[tokio::test]
async fn a_binary_frame_of_65536_rows_is_answered_whole_and_in_order() {
    let app = spawn_app().await;
    let model = app.train(json!({ "epochs": 10 })).await;
    let (w, b) = (model["kernel"][0].as_f64().unwrap(), model["bias"].as_f64().unwrap());
    let mut socket = socket(app.addr).await;
    let x: Vec<f64> = (0..65_536).map(|row| row as f64 / 1000.0).collect();
    let y = ask_binary(&mut socket, &x).await;
    assert_eq!(y.len(), 65_536);
    for (x, y) in x.iter().zip(&y).step_by(997) {
        assert!((y - (w * x + b)).abs() < 1e-9 * y.abs().max(1.0), "{x}: {y}");
    }
    assert_eq!(y[..3], app.predict_ok(json!(x[..3])).await[..]);
}

#[tokio::test]
async fn an_open_socket_holds_its_stream_slot_until_it_closes() {
    let app = spawn_app_with(|config| config.limits.max_streams = 1).await;
    let mut open = socket(app.addr).await;
    assert!(ask(&mut open, r#"{"x": [1]}"#).await["error"].is_string());
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/v1/predict/ws", app.addr)).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("the second socket is refused while the first is open")
    };
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    open.close(None).await.unwrap();
    drop(open);
    let started = std::time::Instant::now();
    while tokio_tungstenite::connect_async(format!("ws://{}/v1/predict/ws", app.addr)).await.is_err() {
        assert!(started.elapsed() < WAIT, "the slot came free once the socket closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_that_is_not_an_upgrade_gets_a_json_error() {
    let app = spawn_app().await;
    let response = app.get("/v1/predict/ws").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("upgrade"), "{body}");
}

#[tokio::test]
async fn the_socket_is_closed_going_away_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = Settings::new("127.0.0.1:0".parse().unwrap(), Location::Local(dir.path().into()));
    let app = Application::build(config).await.unwrap();
    let (addr, stop) = (app.local_addr(), CancellationToken::new());
    let stopped = stop.clone();
    let server = tokio::spawn(app.run_until_stopped(async move { stopped.cancelled().await }));
    let mut socket = socket(addr).await;
    assert!(ask(&mut socket, r#"{"x": [1]}"#).await["error"].is_string());
    stop.cancel();
    let Message::Close(Some(frame)) = next_frame(&mut socket).await else { panic!("a close frame") };
    assert_eq!(frame.code, CloseCode::Away);
    tokio::time::timeout(WAIT, server).await.expect("stopped in time").unwrap().unwrap();
}

/// An MQTT client subscribed to the answer topics of `prefix`.
struct Asker {
    client: AsyncClient,
    answers: tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes)>,
}

impl Asker {
    async fn connect((host, port): &(String, u16), prefix: &str) -> Self {
        let mut options = MqttOptions::new(unique("asker"), host, *port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut events) = AsyncClient::new(options, 64);
        client.subscribe(format!("{prefix}/+/y"), QoS::AtLeastOnce).await.unwrap();
        let (sender, answers) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(publish)) = event {
                    let _ = sender.send((publish.topic, publish.payload));
                }
            }
        });
        Self { client, answers }
    }

    async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    async fn answer(&mut self, wait: Duration) -> Option<(String, bytes::Bytes)> {
        tokio::time::timeout(wait, self.answers.recv()).await.ok().flatten()
    }

    async fn json_answer(&mut self) -> (String, Value) {
        let (topic, payload) = self.answer(WAIT).await.expect("an answer in time");
        (topic, serde_json::from_slice(&payload).unwrap())
    }

    /// Asks on `topic` until the server has subscribed and answers.
    async fn until_answered(&mut self, topic: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            self.publish(topic, json!({"id": "probe", "x": [[1]]}).to_string()).await;
            if let Some((_, payload)) = self.answer(Duration::from_millis(200)).await {
                return serde_json::from_slice(&payload).unwrap();
            }
            assert!(started.elapsed() < WAIT, "the server answers on {topic}");
        }
    }
}

async fn mqtt_app(broker: &(String, u16), prefix: &str) -> TestApp {
    let settings = MqttPredictSettings {
        host: broker.0.clone(),
        port: broker.1,
        filters: vec![format!("{prefix}/+/x")],
        client_id: unique("regserve-predict"),
    };
    spawn_app_with(|config| config.mqtt_predict = Some(settings)).await
}

#[tokio::test]
async fn mqtt_messages_are_answered_on_the_y_topic_in_order_with_errors_and_the_new_version() {
    let Some(broker) = broker("REGSERVE_TEST_MQTT") else { return };
    let prefix = unique("predict");
    let app = mqtt_app(&broker, &prefix).await;
    let mut asker = Asker::connect(&broker, &prefix).await;
    let untrained = asker.until_answered(&format!("{prefix}/1/x")).await;
    assert!(untrained["error"].as_str().unwrap().contains("POST /train"), "{untrained}");
    while asker.answer(Duration::from_millis(300)).await.is_some() {}
    app.train(json!({ "epochs": 2, "seed": 1 })).await;
    let expected = app.predict_ok(json!([10, 15.5])).await;

    let topic = format!("{prefix}/42/x");
    for id in 0..20 {
        asker.publish(&topic, json!({"id": id, "x": [[10], [15.5]]}).to_string()).await;
    }
    for id in 0..20 {
        let (answer_topic, answer) = asker.json_answer().await;
        assert_eq!(answer_topic, format!("{prefix}/42/y"));
        assert_eq!(answer, json!({"id": id, "y": expected, "version": 1}), "answers come in order");
    }
    let binary: Vec<u8> = [10.0f64, 15.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    asker.publish(&topic, binary).await;
    let (_, payload) = asker.answer(WAIT).await.unwrap();
    let values: Vec<f64> =
        payload.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(values, expected);

    asker.publish(&topic, "not features").await;
    let (answer_topic, bad) = asker.json_answer().await;
    assert_eq!(answer_topic, format!("{prefix}/42/y"));
    assert!(bad["error"].as_str().unwrap().contains("12 bytes are not whole rows"), "{bad}");
    asker.publish(&topic, r#"{"id": "w", "x": [[1, 2]]}"#).await;
    let (_, wide) = asker.json_answer().await;
    assert_eq!(wide["id"], "w");
    assert!(wide["error"].as_str().unwrap().contains("rows have 2 values"), "{wide}");

    app.train(json!({ "epochs": 40, "seed": 2 })).await;
    asker.publish(&topic, r#"{"x_predict": [10]}"#).await;
    let (_, newer) = asker.json_answer().await;
    assert_eq!(newer["version"], 2, "{newer}");
    assert_eq!(floats(&newer), app.predict_ok(json!([10])).await);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"predictions_total{protocol="mqtt",outcome="error"}"#), "{metrics}");
}

#[test]
fn a_predict_filter_that_would_match_its_own_answers_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary_command(dir.path())
        .args(["--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-predict-topic", "sensors/x,devices/#"])
        .env("REGSERVE_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"devices/#\" matches its own answer topics"), "{stderr}");

    let output = binary_command(dir.path()).args(["--mqtt-url", "mqtt://127.0.0.1:1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "clap refuses a broker with nothing to do on it");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--mqtt-topic") || stderr.contains("--mqtt-predict-topic"), "{stderr}");
}
