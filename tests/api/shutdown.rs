//! Stopping, with the real binary: SIGTERM lets in-flight requests finish, cancels a running
//! training and exits 0; an upload refused before its end leaves the connection usable or says
//! it closes.

use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::faults::{slow_csv_contents, start_slow_upload};
use crate::helpers::linear_csv;
use crate::process::Server;
use crate::stores::{assert_no_staging_files, model_objects, stored_dataset, wait_for_staging_file};

/// A `/predict` body sent in pieces over about `pieces * pause`.
fn slow_predict_body(pieces: usize, pause: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0, move |sent| async move {
        let piece = match sent {
            0 => "{\"x_predict\": [1.5".to_owned(),
            n if n < pieces => {
                tokio::time::sleep(pause).await;
                ", 2.5".to_owned()
            }
            n if n == pieces => {
                tokio::time::sleep(pause).await;
                "]}".to_owned()
            }
            _ => return None,
        };
        Some((Ok::<_, std::io::Error>(piece), sent + 1))
    });
    reqwest::Body::wrap_stream(stream)
}

/// Reads a job's event stream to its end; returns the last event's name and data.
async fn last_event(response: Response) -> (String, Value) {
    let text = response.text().await.unwrap();
    let block = text.trim_end().rsplit("\n\n").next().unwrap().to_owned();
    let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let data = field("data:").unwrap_or_else(|| panic!("no data in the last event: {text}"));
    (field("event:").unwrap_or("").to_owned(), serde_json::from_str(data).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_uploads_and_predictions_cancels_training_and_exits_0() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let mut server = Server::start(dir).await;
    server.upload_ok(linear_csv(200)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let expected = server.predict_ok(json!([1.5, 2.5])).await;

    // A long training somebody waits for, an upload and a prediction still sending their bodies.
    let training = {
        let request =
            server.client.post(server.url("/train?wait=true")).json(&json!({ "epochs": 1_000_000 }));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    let chunks = 60;
    let upload = start_slow_upload(&server, chunks, Duration::from_millis(40));
    let prediction = {
        let request = server
            .client
            .post(server.url("/predict"))
            .header("content-type", "application/json")
            .body(slow_predict_body(40, Duration::from_millis(50)));
        tokio::spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    match crate::stores::is_local() {
        true => wait_for_staging_file(dir, 16 * 1024).await,
        false => tokio::time::sleep(Duration::from_millis(300)).await,
    }
    while server.flag().await != 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let job = server.json("/v1/jobs").await[0]["id"].as_u64().unwrap();
    let events = {
        let response = server.get(&format!("/v1/jobs/{job}/events")).await;
        assert_eq!(response.status(), StatusCode::OK);
        tokio::spawn(last_event(response))
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!upload.is_finished() && !prediction.is_finished(), "the requests are still in flight");

    let signalled = Instant::now();
    server.send_sigterm();
    let (status, body) = training.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("cancelled because the server is shutting down"), "{body}");
    let (name, data) = events.await.unwrap();
    assert_eq!((name.as_str(), &data["state"]), ("done", &json!("cancelled")), "{data}");
    let (status, body) = upload.await.unwrap().expect("the upload is answered, not cut off");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "success"));
    let (status, body) = prediction.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let y: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(y["y_predict"].as_array().unwrap().len(), 40);
    assert_eq!(y["y_predict"][0][0].as_f64().unwrap(), expected[0]);
    assert_eq!(y["y_predict"][39][0].as_f64().unwrap(), expected[1]);
    let status = server.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(10), "shutdown took {:?}", signalled.elapsed());
    assert_no_staging_files(dir);

    let server = Server::start(dir).await;
    let uploaded = slow_csv_contents(chunks);
    assert_eq!(stored_dataset(dir).await.unwrap(), uploaded, "the upload was installed");
    assert_eq!(server.json("/v1/dataset").await["rows"], 800 * chunks);
    assert_eq!(server.json("/v1/model").await, model, "the cancelled training stored nothing");
    assert_eq!(server.json("/v1/models").await.as_array().unwrap().len(), 1);
    assert_eq!(model_objects(dir).await, ["active", "v000001.json"]);
}

#[tokio::test]
async fn an_upload_refused_before_its_end_says_the_connection_closes_or_keeps_it_usable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = crate::helpers::spawn_app_with(|config| config.limits.max_upload_bytes = 64 * 1024).await;
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Chunked: with no Content-Length the server finds the file too large only while reading it.
    let boundary = "XBOUNDARY";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        linear_csv(10_000)
    );
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.as_bytes().chunks(16 * 1024) {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            writer.write_all(chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(writer)
    });
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("}") {
        let read = reader.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the connection closed before the answer: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buffer[..read]);
    }
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 413"), "{response}");
    if response.contains("\r\nconnection: close\r\n") {
        return;
    }
    // Not announced as closing, so the connection must take another request.
    let Ok(Ok(mut writer)) = sending.await else {
        panic!("the connection was cut while the upload was sent")
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let read = reader.read(&mut buffer).await;
    assert!(
        sent.is_ok() && read.as_ref().is_ok_and(|read| *read > 0),
        "after a 413 without `Connection: close` the server closed the connection: {sent:?} {read:?}"
    );
    assert!(String::from_utf8_lossy(&buffer).starts_with("HTTP/1.1 200"));
}
