//! Memory that clients could make the server hold: answers nobody reads, long loss histories,
//! uploads that are one huge line or arrive together. Each stays within its stated bound.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{linear_csv, spawn_app};
use crate::process::Server;

const MIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_clients_that_never_read_large_predictions_hold_at_most_the_memory_budget() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    server.train(json!({ "solver": "least-squares" })).await;
    let body = json!({ "x_predict": vec![1.25; 3_000_000] }).to_string();
    assert!(body.len() > 14_000_000 && body.len() < 16 << 20, "{}", body.len());
    let addr = server.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let senders: Vec<_> = (0..30)
        .map(|_| {
            let (addr, request) = (addr.clone(), format!("{head}{body}"));
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                let _ = stream.write_all(request.as_bytes());
                stream // never read
            })
        })
        .collect();
    let (mut peak, mut slowest) = (0, Duration::ZERO);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        peak = peak.max(server.rss_kib());
        let asked = Instant::now();
        assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held: Vec<TcpStream> = senders.into_iter().map(|sender| sender.join().unwrap()).collect();
    println!("peak RSS {} MiB, slowest /healthz {slowest:?}", peak / MIB);
    assert!(peak < 1536 * MIB, "peak RSS {} MiB", peak / MIB);
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?}");
    drop(held);
}

#[tokio::test]
async fn long_loss_histories_are_sampled_unless_asked_for_whole() {
    let app = spawn_app().await;
    let answer = app.post_json("/train?wait=true", &json!({ "epochs": 20_000, "seed": 1 })).await;
    let answer: Value = answer.json().await.unwrap();
    let id = answer["job"]["id"].as_u64().unwrap();
    let sampled = |history: &Value| {
        let epochs: Vec<u64> =
            history["epochs"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap()).collect();
        (
            history["loss"].as_array().unwrap().len(),
            epochs.len(),
            epochs[0],
            *epochs.last().unwrap(),
            history["length"].clone(),
        )
    };
    let expected = (10_000, 10_000, 1, 20_000, json!(20_000));
    assert_eq!(sampled(&answer["model"]["history"]), expected);
    assert_eq!(sampled(&app.json(&format!("/v1/jobs/{id}")).await["history"]), expected);
    assert_eq!(sampled(&app.json("/v1/model").await["history"]), expected);
    assert_eq!(sampled(&app.json("/v1/models/regserve/versions/1").await["history"]), expected);

    let full = app.json(&format!("/v1/jobs/{id}?history=full")).await;
    assert_eq!(full["history"]["loss"].as_array().unwrap().len(), 20_000);
    assert!(full["history"].get("epochs").is_none());
    let model = app.json("/v1/model?history=full").await;
    assert_eq!(model["history"]["loss"], full["history"]["loss"]);
    assert!(app.json("/v1/model?history=none").await.get("history").is_none());
    let bad = app.get("/v1/model?history=most").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // The event stream of the finished job carries every epoch, in events of at most 10,000.
    let events = app.job_events(id).await;
    let progress: Vec<&Value> =
        events.iter().filter(|(name, _)| name == "progress").map(|(_, data)| data).collect();
    assert!(progress.iter().all(|event| event["losses"].as_array().unwrap().len() <= 10_000));
    let losses: Vec<Value> =
        progress.iter().flat_map(|event| event["losses"].as_array().unwrap().clone()).collect();
    assert_eq!(losses, *full["history"]["loss"].as_array().unwrap());
    assert_eq!(events.last().unwrap().0, "done");
}

/// Uploads `body` (the whole multipart part streamed from `chunks`) on a connection of its own.
async fn upload_stream(
    server: &Server,
    chunks: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> (StatusCode, String) {
    let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.csv");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = reqwest::Client::new().post(server.url("/upload")).multipart(form).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_one_huge_line_is_refused_at_once_and_costs_little_memory() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let before = server.rss_kib();
    let started = Instant::now();
    let line = std::iter::repeat_n(vec![b'7'; 1 << 20], 200);
    let (status, message) = upload_stream(&server, line).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert!(message.contains("a value longer than 65536 bytes"), "{message}");
    assert!(message.len() < 300, "the error quotes {} bytes", message.len());
    let peak = server.peak_rss_kib();
    println!("refused in {:?}; peak RSS {} MiB (from {} MiB)", started.elapsed(), peak / MIB, before / MIB);
    assert!(peak < before + 64 * MIB, "peak RSS {} MiB from {} MiB", peak / MIB, before / MIB);
    assert_eq!(server.json("/v1/dataset").await["rows"], 30, "the built-in dataset stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_arrive_together_are_parsed_one_at_a_time() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), |command| {
        command.env("REGSERVE_MAX_UPLOADS", "8");
    })
    .await;
    let csv = linear_csv(1_500_000);
    let rows = 1_500_000u64;
    let numbers_kib = rows * 2 * 8 / 1024;
    let before = server.rss_kib();
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            let (url, csv) = (server.url("/upload"), csv.clone());
            tokio::spawn(async move {
                let part = reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("d.csv");
                let form = reqwest::multipart::Form::new().part("file", part);
                reqwest::Client::new().post(url).multipart(form).send().await.unwrap().status()
            })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), StatusCode::OK);
    }
    let peak = server.peak_rss_kib();
    println!(
        "8 uploads of {} MiB of numbers: peak RSS {} MiB from {} MiB",
        numbers_kib / MIB,
        peak / MIB,
        before / MIB
    );
    // At most the active dataset and the one being parsed, plus the parser's 64 MiB.
    assert!(peak < before + 2 * numbers_kib + 64 * MIB, "peak RSS {} MiB", peak / MIB);
    assert_eq!(server.json("/v1/dataset").await["rows"], rows);
}
