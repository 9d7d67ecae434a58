//! Load for the prediction WebSocket `/v1/predict/ws`: binary frames of 65,536 one-feature rows,
//! then JSON frames of 1,000 rows, each kind sent for SECONDS with IN_FLIGHT frames in flight
//! (the next is sent as soon as an answer arrives). Prints one JSON line with the predictions
//! per second of each kind.
//!
//! ```text
//! predict_ws ws://127.0.0.1:5000/v1/predict/ws SECONDS [IN_FLIGHT (default 4)]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const BINARY_ROWS: usize = 65_536;
const JSON_ROWS: usize = 1_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(seconds)) = (args.first(), args.get(1).and_then(|s| s.parse::<f64>().ok())) else {
        eprintln!("usage: predict_ws URL SECONDS [IN_FLIGHT]");
        std::process::exit(2);
    };
    let in_flight = args.get(2).map_or(4, |k| k.parse().expect("a number of frames"));
    let duration = Duration::from_secs_f64(seconds);
    let binary = measure(url, binary_frame(), BINARY_ROWS, duration, in_flight).await;
    let json = measure(url, json_frame(), JSON_ROWS, duration, in_flight).await;
    println!(
        "{{\"in_flight\": {in_flight}, \"binary_rows_per_frame\": {BINARY_ROWS}, \"binary_predictions_per_second\": {binary:.0}, \
         \"json_rows_per_frame\": {JSON_ROWS}, \"json_predictions_per_second\": {json:.0}}}"
    );
}

/// Little-endian f64 values, one per row.
fn binary_frame() -> Message {
    let bytes: Vec<u8> = (0..BINARY_ROWS).flat_map(|row| (row as f64 / 1000.0).to_le_bytes()).collect();
    Message::Binary(bytes.into())
}

fn json_frame() -> Message {
    let rows: Vec<String> = (0..JSON_ROWS).map(|row| format!("[{}]", row as f64 / 10.0)).collect();
    Message::Text(format!("{{\"id\": 1, \"x\": [{}]}}", rows.join(",")).into())
}

/// Predictions per second answered to `frame` (of `rows` rows) sent for `duration`, with
/// `in_flight` frames outstanding.
async fn measure(url: &str, frame: Message, rows: usize, duration: Duration, in_flight: usize) -> f64 {
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), true).await.expect("connects");
    let (mut outgoing, mut incoming) = socket.split();
    let room = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let writer_room = room.clone();
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while started.elapsed() < duration {
            writer_room.acquire().await.expect("open").forget();
            outgoing.send(frame.clone()).await.expect("sent");
            sent += 1;
        }
        (sent, outgoing)
    });
    let mut answered = 0u64;
    loop {
        match incoming.next().await.expect("the socket stays open").expect("an answer") {
            Message::Binary(bytes) => assert_eq!(bytes.len(), rows * 8, "one prediction per row"),
            Message::Text(text) => assert!(text.contains("\"y\":["), "an error answer: {text}"),
            _ => continue,
        }
        answered += 1;
        room.add_permits(1);
        if writer.is_finished() {
            break;
        }
    }
    let (sent, mut outgoing) = writer.await.expect("the writer ends");
    while answered < sent {
        if let Some(Ok(Message::Binary(_) | Message::Text(_))) = incoming.next().await {
            answered += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = outgoing.close().await;
    (answered as usize * rows) as f64 / elapsed
}
