//! The intake's promise: every acknowledged row (an HTTP 200, a WebSocket ack) survives a
//! SIGKILL of the server at any moment and a restart, exactly once. Feeders append numbered rows
//! from every source while the server is killed again and again at random moments; each retries
//! what was not acknowledged under the same idempotency key, and at the end every row of the
//! dataset is counted and summed, per source.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::helpers::free_port;
use crate::process::Server;

/// Rows of one batch.
const BATCH_ROWS: u64 = 50;
/// A row's `Education` is `source tag x TAG_SCALE + row id`: which source sent it, and which row.
const TAG_SCALE: f64 = 1e12;
const HTTP_TAG: u64 = 1;
const WEBSOCKET_TAG: u64 = 2;

/// The rows each source has had acknowledged.
#[derive(Default)]
struct Ledger {
    acknowledged: Mutex<BTreeMap<u64, Vec<u64>>>,
}

impl Ledger {
    fn record(&self, tag: u64, batch: u64) {
        let ids = (batch * BATCH_ROWS..(batch + 1) * BATCH_ROWS).collect::<Vec<_>>();
        self.acknowledged.lock().unwrap().entry(tag).or_default().extend(ids);
    }
}

fn rows(tag: u64, batch: u64) -> Value {
    let row = |id: u64| json!({"Education": (tag as f64) * TAG_SCALE + id as f64, "Income": id});
    (batch * BATCH_ROWS..(batch + 1) * BATCH_ROWS).map(row).collect()
}

/// Appends batch after batch over HTTP, each retried under its key until acknowledged.
async fn feed_http(base: String, ledger: Arc<Ledger>, stop: CancellationToken) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    for batch in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let body = json!({"rows": rows(HTTP_TAG, batch), "batch_id": format!("http-{batch}")});
        loop {
            let sent = client.post(format!("{base}/v1/data")).json(&body).send().await;
            if sent.is_ok_and(|response| response.status().is_success()) {
                ledger.record(HTTP_TAG, batch);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Appends over a WebSocket with several batches in flight; after a lost connection, sends the
/// unacknowledged ones again on a new one.
async fn feed_websocket(base: String, ledger: Arc<Ledger>, stop: CancellationToken) {
    let url = format!("{}/v1/data/ws", base.replace("http://", "ws://"));
    let mut unacknowledged: VecDeque<(u64, String)> = VecDeque::new();
    let mut next = 0;
    while !stop.is_cancelled() || !unacknowledged.is_empty() {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let mut resent = true;
        for (_, frame) in &unacknowledged {
            resent &= socket.send(Message::text(frame.clone())).await.is_ok();
        }
        while resent && (!stop.is_cancelled() || !unacknowledged.is_empty()) {
            if unacknowledged.len() < 8 && !stop.is_cancelled() {
                let frame =
                    json!({"seq": next, "rows": rows(WEBSOCKET_TAG, next), "batch_id": format!("ws-{next}")});
                unacknowledged.push_back((next, frame.to_string()));
                next += 1;
                if socket.send(Message::text(unacknowledged.back().unwrap().1.clone())).await.is_err() {
                    break;
                }
                continue;
            }
            let answer = tokio::time::timeout(Duration::from_secs(2), socket.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = answer else { break };
            let answer: Value = serde_json::from_str(&text).unwrap();
            let Some(acked) = answer["ack"].as_u64() else { break };
            let (expected, _) = unacknowledged.pop_front().expect("an ack answers a sent batch");
            assert_eq!(acked, expected, "acks come in order");
            ledger.record(WEBSOCKET_TAG, acked);
        }
    }
}

async fn start(data: &Path, port: u16) -> Server {
    Server::start_with(data, |command| {
        command.env("REGSERVE_ADDR", format!("127.0.0.1:{port}"));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_row_survives_sigkill_at_any_moment_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(data.path(), port).await;
    let base = server.base.clone();
    let (ledger, stop) = (Arc::new(Ledger::default()), CancellationToken::new());
    let feeders = [
        tokio::spawn(feed_http(base.clone(), ledger.clone(), stop.clone())),
        tokio::spawn(feed_websocket(base.clone(), ledger.clone(), stop.clone())),
    ];
    for _ in 0..6 {
        let pause = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill().await;
        server = start(data.path(), port).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    for feeder in feeders {
        tokio::time::timeout(Duration::from_secs(60), feeder).await.expect("the feeders finish").unwrap();
    }

    let csv = server.get("/v1/dataset.csv").await.text().await.unwrap();
    let mut stored: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let education: f64 = line.split(',').next().unwrap().parse().unwrap();
        let tag = (education / TAG_SCALE).floor() as u64;
        if tag > 0 {
            stored.entry(tag).or_default().push((education - tag as f64 * TAG_SCALE) as u64);
        }
    }
    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    for tag in [HTTP_TAG, WEBSOCKET_TAG] {
        let (mut acked, mut there) =
            (acknowledged[&tag].clone(), stored.get(&tag).cloned().unwrap_or_default());
        acked.sort_unstable();
        there.sort_unstable();
        assert!(acked.len() as u64 > 10 * BATCH_ROWS, "source {tag}: too few rows were sent to tell");
        assert_eq!(
            (there.len(), there.iter().sum::<u64>()),
            (acked.len(), acked.iter().sum::<u64>()),
            "source {tag}: every acknowledged row once, and nothing else (count and checksum)"
        );
        assert_eq!(there, acked);
    }
}
