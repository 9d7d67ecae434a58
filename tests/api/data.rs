//! Appending rows over HTTP and WebSocket: answers only once durable, all or nothing, retried
//! batches appended once, the rows a training uses, and the sufficient statistics that make the
//! exact solver independent of the number of rows.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, error_of, spawn_app, spawn_app_sharing_store, spawn_app_with};

impl TestApp {
    async fn append(&self, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        let request = self.client.post(self.url("/v1/data")).header("content-type", content_type);
        request.body(body).send().await.unwrap()
    }

    async fn append_ok(&self, rows: Value) -> Value {
        let response = self.append("application/json", json!({ "rows": rows }).to_string()).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn rows(&self) -> u64 {
        self.json("/v1/dataset").await["rows"].as_u64().unwrap()
    }
}

fn rows_of(pairs: &[(f64, f64)]) -> Value {
    pairs.iter().map(|(e, i)| json!({"Education": e, "Income": i})).collect()
}

#[tokio::test]
async fn rows_append_in_every_format_and_survive_a_restart() {
    let app = spawn_app().await;
    let builtin = app.rows().await;
    let answer = app.append_ok(rows_of(&[(10.0, 26.7), (12.0, 30.0)])).await;
    assert_eq!(answer, json!({"appended": 2, "rows": builtin + 2, "seq": builtin + 1}));
    let csv = app.append("text/csv", "Income,Education\n40,16\n").await;
    assert_eq!(csv.json::<Value>().await.unwrap()["rows"], builtin + 3);
    let ndjson = app
        .append(
            "application/x-ndjson",
            "{\"Education\": 1, \"Income\": 2}\n{\"Income\": 5, \"Education\": 3}\n",
        )
        .await;
    assert_eq!(ndjson.json::<Value>().await.unwrap()["appended"], 2);

    let summary = app.json("/v1/dataset").await;
    assert_eq!((summary["rows"].clone(), summary["segments"].clone()), (json!(builtin + 5), json!(3)));
    assert_eq!(summary["sources"]["http"]["rows"], 5);
    assert!(summary["newest_arrival"].is_string());
    let income =
        &summary["columns"].as_array().unwrap().iter().find(|c| c["name"] == "Income").unwrap().clone();
    assert_eq!(income["min"], 2.0, "the appended rows count in the ranges: {income}");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("regserve_ingested_rows_total{source=\"http\"} 5\n"), "{metrics}");
    assert!(metrics.contains("regserve_commit_latency_seconds_count 3\n"), "{metrics}");

    let restarted = spawn_app_sharing_store(&app).await;
    assert_eq!(restarted.rows().await, builtin + 5);
    let last = restarted.json("/v1/dataset/rows?limit=1000").await;
    assert_eq!(last["rows"][builtin as usize + 4], json!([3.0, 5.0]));
    let csv = restarted.get("/v1/dataset.csv").await.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        (lines.len(), lines[0], lines[1], lines[lines.len() - 1]),
        (builtin as usize + 6, "Education,Income", "10,26.6588387834389", "3,5")
    );
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_naming_the_row_and_column() {
    let app = spawn_app_with(|config| config.intake.max_batch_rows = 3).await;
    let before = app.rows().await;
    let cases = [
        (
            json!({"rows": [{"Education": 1, "Income": 2}, {"Education": "x", "Income": 2}]}),
            "row 2, column \"Education\": \"x\" is not a number",
        ),
        (
            json!({"rows": [{"Education": 1, "Income": 2}, {"Education": 1}]}),
            "row 2, column \"Income\": missing",
        ),
        (json!({"rows": [{"Education": 1, "Wage": 2}]}), "column \"Wage\": the dataset has no such column"),
        (json!({"rows": [{"Education": 1, "Income": null}]}), "null is not a number"),
        (json!({"rows": []}), "the batch has no rows"),
    ];
    for (body, expected) in cases {
        let response = app.append("application/json", body.to_string()).await;
        let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(error.contains(expected), "{error} should say {expected}");
    }
    let malformed = app.append("application/json", "{\"rows\": [").await;
    assert!(error_of(malformed, StatusCode::BAD_REQUEST).await.starts_with("not valid JSON"));
    let too_many = app.append_raw_rows(4).await;
    assert!(error_of(too_many, StatusCode::PAYLOAD_TOO_LARGE).await.contains("--max-batch-rows"));
    let infinite = app.append("text/csv", "Education,Income\n1,inf\n").await;
    assert!(
        error_of(infinite, StatusCode::UNPROCESSABLE_ENTITY).await.contains("\"inf\" is not a finite number")
    );
    let form = app.append("application/x-www-form-urlencoded", "a=1").await;
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.rows().await, before, "nothing was appended");
    assert_eq!(app.json("/v1/dataset").await["sources"]["http"]["rejected"], 9);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("regserve_rejected_batches_total{source=\"http\"} 9\n"), "{metrics}");
}

impl TestApp {
    async fn append_raw_rows(&self, count: usize) -> reqwest::Response {
        let rows: Vec<(f64, f64)> = (0..count).map(|i| (i as f64, 2.0 * i as f64)).collect();
        self.append("application/json", json!({ "rows": rows_of(&rows) }).to_string()).await
    }
}

#[tokio::test]
async fn a_retried_batch_is_appended_once() {
    let app = spawn_app().await;
    let before = app.rows().await;
    let send = |key: &'static str| {
        let request = app.client.post(app.url("/v1/data")).header("idempotency-key", key);
        request.json(&json!({"rows": rows_of(&[(1.0, 2.0), (3.0, 4.0)])})).send()
    };
    let first: Value = send("batch-1").await.unwrap().json().await.unwrap();
    let retried: Value = send("batch-1").await.unwrap().json().await.unwrap();
    assert_eq!((retried["seq"].clone(), retried["duplicate"].clone()), (first["seq"].clone(), json!(true)));
    let by_id = json!({"rows": rows_of(&[(5.0, 6.0)]), "batch_id": "batch-2"});
    for _ in 0..2 {
        app.post_json("/v1/data", &by_id).await;
    }
    assert_eq!(app.rows().await, before + 3);
    let restarted = spawn_app_sharing_store(&app).await;
    let after_restart: Value = restarted.post_json("/v1/data", &by_id).await.json().await.unwrap();
    assert_eq!((after_restart["duplicate"].clone(), restarted.rows().await), (json!(true), before + 3));
}

#[tokio::test]
async fn a_new_dataset_takes_the_columns_of_its_first_batch() {
    let app = spawn_app().await;
    let cleared = app.client.delete(app.url("/v1/data")).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::OK);
    assert_eq!(app.rows().await, 0);
    let untrainable = app.post_json("/train?wait=true", &json!({})).await;
    assert!(error_of(untrainable, StatusCode::UNPROCESSABLE_ENTITY).await.contains("the dataset is empty"));
    // Written out, so that the columns come in this order (a JSON map would sort them).
    let readings: Vec<String> =
        (0..50).map(|i| format!(r#"{{"temp": {i}, "load": {}}}"#, 3 * i + 1)).collect();
    let body = format!(r#"{{"rows": [{}]}}"#, readings.join(","));
    assert_eq!(app.append("application/json", body).await.status(), StatusCode::OK);
    let summary = app.json("/v1/dataset").await;
    assert_eq!(
        (summary["default_features"].clone(), summary["default_target"].clone()),
        (json!(["temp"]), json!("load"))
    );
    let model = app.train(json!({"solver": "least-squares"})).await;
    assert!((model["kernel"][0].as_f64().unwrap() - 3.0).abs() < 1e-9, "{model}");
    let restarted = spawn_app_sharing_store(&app).await;
    assert_eq!(restarted.json("/v1/dataset").await["default_target"], "load");
}

#[tokio::test]
async fn trainings_take_all_the_last_or_only_the_new_rows() {
    let app = spawn_app().await;
    let builtin = app.rows().await;
    app.append_ok(rows_of(&[(1.0, 2.0), (2.0, 4.0), (3.0, 6.5)])).await;
    let all = app.train(json!({"solver": "least-squares"})).await;
    assert_eq!(all["rows"], builtin + 3);
    assert_eq!(
        all["trained_rows"],
        json!({"generation": 0, "first_seq": 0, "last_seq": builtin + 2, "choice": "all"})
    );
    let none_new = app.post_json("/train?wait=true", &json!({"rows": "new"})).await;
    assert!(error_of(none_new, StatusCode::UNPROCESSABLE_ENTITY).await.contains("only 0 rows arrived after"));
    app.append_ok(rows_of(&[(4.0, 8.0), (5.0, 10.0)])).await;
    let new = app.train(json!({"rows": "new", "solver": "least-squares"})).await;
    assert_eq!(
        (new["rows"].clone(), new["trained_rows"]["first_seq"].clone()),
        (json!(2), json!(builtin + 3))
    );
    assert!((new["kernel"][0].as_f64().unwrap() - 2.0).abs() < 1e-9);
    let last = app.train(json!({"rows": {"last": 4}, "epochs": 3})).await;
    assert_eq!((last["rows"].clone(), last["trained_rows"]["choice"].clone()), (json!(4), json!("last 4")));
    let since =
        app.train(json!({"rows": {"since": "2000-01-01T00:00:00Z"}, "solver": "least-squares"})).await;
    assert!(since["rows"].as_u64().unwrap() >= 5);
    let bad = app.post_json("/train", &json!({"rows": {"last": 0}})).await;
    assert!(error_of(bad, StatusCode::UNPROCESSABLE_ENTITY).await.starts_with("rows.last"));
}

#[tokio::test]
async fn the_exact_solver_on_segment_statistics_matches_a_pass_over_the_rows() {
    let app = spawn_app().await;
    for batch in 0..8 {
        let rows: Vec<(f64, f64)> = (0..250)
            .map(|i| {
                let x = 8.0 + ((batch * 250 + i) as f64 * 0.731).sin() * 6.0;
                (x, 20.0 + 4.5 * x + ((batch * 250 + i) as f64 * 1.37).cos() * 3.0)
            })
            .collect();
        app.append_ok(rows_of(&rows)).await;
    }
    let from_statistics = app.train(json!({"solver": "least-squares"})).await;
    let over_rows = app.train(json!({"solver": "adam-standardized", "epochs": 1})).await;
    let (exact, optimum) =
        (from_statistics["mse"].as_f64().unwrap(), over_rows["optimum_mse"].as_f64().unwrap());
    assert!((exact - optimum).abs() <= 1e-9 * optimum, "{exact} vs {optimum}");
}

#[tokio::test]
async fn websocket_batches_are_acknowledged_in_order_once_durable() {
    let app = spawn_app().await;
    let before = app.rows().await;
    let url = format!("ws://{}/v1/data/ws", app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let frames = 40u64;
    for seq in 0..frames {
        let frame = json!({"seq": seq, "rows": rows_of(&[(seq as f64, 2.0 * seq as f64)])});
        socket.send(Message::text(frame.to_string())).await.unwrap();
    }
    socket.send(Message::text(r#"{"seq": 99, "rows": [{"Education": true}]}"#)).await.unwrap();
    socket.send(Message::text("not json")).await.unwrap();
    socket
        .send(Message::text(json!({"seq": 100, "rows": rows_of(&[(1.0, 1.0)])}).to_string()))
        .await
        .unwrap();
    let mut answers = Vec::new();
    while answers.len() < frames as usize + 3 {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(text) => answers.push(serde_json::from_str::<Value>(&text).unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let acked: Vec<u64> = answers[..frames as usize].iter().map(|a| a["ack"].as_u64().unwrap()).collect();
    assert_eq!(acked, (0..frames).collect::<Vec<_>>());
    assert_eq!(answers[frames as usize]["nack"], 99);
    assert!(answers[frames as usize]["error"].as_str().unwrap().contains("true is not a number"));
    assert!(answers[frames as usize + 1]["nack"].is_null());
    assert_eq!(answers[frames as usize + 2], json!({"ack": 100, "rows": before + frames + 1}));
    assert_eq!(app.rows().await, before + frames + 1);
    assert_eq!(app.json("/v1/dataset").await["sources"]["websocket"]["rows"], frames + 1);
}

#[tokio::test]
async fn a_flood_of_tiny_batches_is_group_committed_and_every_one_answered() {
    let app = spawn_app().await;
    let before = app.rows().await;
    let (clients, each) = (50u64, 20u64);
    let sends = (0..clients).map(|client| {
        let app = &app;
        async move {
            for i in 0..each {
                let row = json!({"rows": [{"Education": client, "Income": i}]});
                let response = app.post_json("/v1/data", &row).await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }
    });
    futures_util::future::join_all(sends).await;
    let summary = app.json("/v1/dataset").await;
    assert_eq!(summary["rows"], before + clients * each);
    let segments = summary["segments"].as_u64().unwrap();
    assert!(
        segments < clients * each / 2,
        "{segments} segments for {} batches: batches are written together",
        clients * each
    );
}

#[tokio::test]
async fn a_websocket_client_that_reads_nothing_is_paced_and_others_go_on() {
    let app = spawn_app_with(|config| config.intake.max_batch_rows = 2).await;
    let before = app.rows().await;
    let url = format!("ws://{}/v1/data/ws", app.addr);
    let (mut flood, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let frames = 2_000u64;
    let sender = async {
        for seq in 0..frames {
            let frame = json!({"seq": seq, "rows": rows_of(&[(seq as f64, 1.0)])});
            flood.send(Message::text(frame.to_string())).await.unwrap();
        }
        flood
    };
    let other = async {
        let answer = app.append_ok(rows_of(&[(1.0, 2.0)])).await;
        assert_eq!(answer["appended"], 1);
    };
    let (mut flood, ()) = tokio::join!(sender, other);
    let too_big = json!({"seq": frames, "rows": rows_of(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)])});
    flood.send(Message::text(too_big.to_string())).await.unwrap();
    for seq in 0..frames {
        let answer: Value =
            serde_json::from_str(&flood.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
        assert_eq!(answer["ack"], seq, "{answer}");
    }
    let refused: Value =
        serde_json::from_str(&flood.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
    assert_eq!(refused["nack"], frames);
    assert!(refused["error"].as_str().unwrap().contains("--max-batch-rows"), "{refused}");
    assert_eq!(app.rows().await, before + frames + 1);
}

#[tokio::test]
async fn since_goes_by_the_time_column_when_there_is_one() {
    let app = spawn_app_with(|config| config.intake.time_column = Some("t".into())).await;
    app.client.delete(app.url("/v1/data")).send().await.unwrap();
    // The times are out of order: rows are picked by their value, not by where they are.
    let csv = "t,x,y\n100,1,10\n5000,2,20\n200,3,30\n6000,4,41\n7000,6,60\n";
    assert_eq!(app.append("text/csv", csv).await.status(), StatusCode::OK);
    let since = app.train(json!({"rows": {"since": "1970-01-01T01:00:00Z"}, "features": ["x"], "target": "y", "solver": "least-squares"})).await;
    assert_eq!(
        (since["rows"].clone(), since["trained_rows"]["choice"].clone()),
        (json!(3), json!("since 3600 s by the time column"))
    );
    let later = app
        .post_json(
            "/train?wait=true",
            &json!({"rows": {"since": "1970-01-01T01:50:00Z"}, "features": ["x"], "target": "y"}),
        )
        .await;
    assert!(error_of(later, StatusCode::UNPROCESSABLE_ENTITY).await.contains("the rows chosen are 1"));
}
