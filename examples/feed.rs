//! A load generator for the intake: appends batches of numbered rows to a running server over
//! HTTP (`POST /v1/data`) or a WebSocket (`/v1/data/ws`) for a while, and prints one JSON line:
//! rows acknowledged per second and the latency of a batch (sent to acknowledged).
//!
//! `cargo run --release --example feed -- http|ws BASE_URL SECONDS CLIENTS ROWS_PER_BATCH [TOTAL_ROWS]`
//!
//! With `TOTAL_ROWS`, the clients stop once they have sent that many rows between them (or at
//! `SECONDS`, whichever comes first). The rows lie near `Income = 3 Education + 2`.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Batches a WebSocket client keeps in flight (the server takes 16).
const WEBSOCKET_WINDOW: usize = 16;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, base, seconds, clients, rows, total) = match args.as_slice() {
        [mode, base, seconds, clients, rows] => (mode, base, seconds, clients, rows, None),
        [mode, base, seconds, clients, rows, total] => (mode, base, seconds, clients, rows, Some(total)),
        _ => {
            eprintln!("usage: feed http|ws BASE_URL SECONDS CLIENTS ROWS_PER_BATCH [TOTAL_ROWS]");
            std::process::exit(2);
        }
    };
    let duration = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let rows: usize = rows.parse().expect("ROWS_PER_BATCH");
    let clients: usize = clients.parse().expect("CLIENTS");
    let total: Option<usize> = total.map(|total| total.parse().expect("TOTAL_ROWS"));
    // Each client's share of the total, in batches.
    let batches = total.map_or(usize::MAX, |total| total.div_ceil(clients * rows));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (mode, base) = (mode.clone(), base.clone());
            tokio::spawn(async move {
                match mode.as_str() {
                    "http" => feed_http(&base, client, rows, Budget { duration, batches }).await,
                    "ws" => feed_websocket(&base, rows, Budget { duration, batches }).await,
                    other => panic!("{other}: the mode is http or ws"),
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a feeder does not panic"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
    };
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "{{\"mode\": \"{mode}\", \"batches\": {}, \"rows\": {}, \"seconds\": {elapsed:.3}, \"rows_per_second\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}",
        latencies.len(),
        latencies.len() * rows,
        (latencies.len() * rows) as f64 / elapsed,
        ms(quantile(0.5)),
        ms(quantile(0.99)),
    );
}

/// How long a client sends, and how many batches at most.
#[derive(Clone, Copy)]
struct Budget {
    duration: Duration,
    batches: usize,
}

/// The value of row `row` of a batch: near `3x + 2`, with a little noise.
fn point(seed: usize, row: usize) -> (f64, f64) {
    let x = ((seed * 31 + row) % 1000) as f64 / 50.0;
    (x, 3.0 * x + 2.0 + ((seed + row) * 7919 % 13) as f64 / 10.0 - 0.6)
}

/// A CSV batch of `rows` one-feature rows.
fn csv_batch(client: usize, batch: usize, rows: usize) -> String {
    let mut text = String::with_capacity(rows * 24);
    text.push_str("Education,Income\n");
    for row in 0..rows {
        let (x, y) = point(client * 7919 + batch, row);
        text.push_str(&format!("{x},{y}\n"));
    }
    text
}

/// A WebSocket frame of `rows` one-feature rows.
fn json_frame(seq: usize, rows: usize) -> String {
    let mut text = String::with_capacity(rows * 40);
    text.push_str(&format!("{{\"seq\":{seq},\"rows\":["));
    for row in 0..rows {
        let (x, y) = point(seq, row);
        if row > 0 {
            text.push(',');
        }
        text.push_str(&format!("{{\"Education\":{x},\"Income\":{y}}}"));
    }
    text.push_str("]}");
    text
}

async fn feed_http(base: &str, client: usize, rows: usize, budget: Budget) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let bodies: Vec<String> = (0..8).map(|batch| csv_batch(client, batch, rows)).collect();
    let (started, mut latencies) = (Instant::now(), Vec::new());
    while started.elapsed() < budget.duration && latencies.len() < budget.batches {
        let body = bodies[latencies.len() % bodies.len()].clone();
        let sent = Instant::now();
        let response =
            http.post(format!("{base}/v1/data")).header("content-type", "text/csv").body(body).send().await;
        let response = response.expect("the server answers");
        assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
        latencies.push(sent.elapsed());
    }
    latencies
}

async fn feed_websocket(base: &str, rows: usize, budget: Budget) -> Vec<Duration> {
    let url = format!("{}/v1/data/ws", base.replace("http://", "ws://"));
    let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("the server takes the WebSocket");
    let (mut outgoing, mut incoming) = socket.split();
    let frames: Vec<String> = (0..8).map(|seq| json_frame(seq, rows)).collect();
    let (started, mut latencies) = (Instant::now(), Vec::new());
    let mut sent_at = std::collections::VecDeque::new();
    let mut next = 0;
    loop {
        let sending = started.elapsed() < budget.duration && next < budget.batches;
        if sending && sent_at.len() < WEBSOCKET_WINDOW {
            let frame = frames[next % frames.len()].replacen(
                &format!("\"seq\":{}", next % frames.len()),
                &format!("\"seq\":{next}"),
                1,
            );
            outgoing.send(Message::text(frame)).await.expect("the frame is sent");
            sent_at.push_back(Instant::now());
            next += 1;
            continue;
        }
        if sent_at.is_empty() {
            return latencies;
        }
        let answer = incoming.next().await.expect("an answer").expect("a frame");
        let text = answer.into_text().expect("a text answer");
        assert!(text.contains("\"ack\""), "{text}");
        latencies.push(sent_at.pop_front().expect("an answered frame was sent").elapsed());
    }
}
