//! Faults, with the real binary: SIGKILL in the middle of an upload, a training, an activation
//! and the storing of models leaves the previous dataset and model whole and served after a
//! restart, with no stray staging files.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{linear_csv, model_file};
pub(crate) use crate::process::Server;
use crate::stores::{
    active_pointer, assert_no_staging_files, model_objects, stored_dataset, wait_for_staging_file,
};

/// Checks that `response` is a JSON error with a server-error status and returns the status
/// and the message.
pub(crate) async fn server_error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(status.is_server_error(), "expected a 5xx, got {status}: {text}");
    assert!(content_type.starts_with("application/json"), "the error is {content_type:?}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no `error` string in {text}"));
    (status, message.to_owned())
}

/// A CSV (header `x,y`) sent in `chunks` chunks of 800 rows (about 10 KiB), `pause` apart.
pub(crate) fn slow_csv_body(chunks: usize, pause: Duration) -> reqwest::Body {
    let rows: String = linear_csv(800).lines().skip(1).map(|line| format!("{line}\n")).collect();
    let stream = futures_util::stream::unfold(0, move |sent| {
        let rows = rows.clone();
        async move {
            if sent == chunks {
                return None;
            }
            let chunk = if sent == 0 {
                format!("x,y\n{rows}")
            } else {
                tokio::time::sleep(pause).await;
                rows
            };
            Some((Ok::<_, std::io::Error>(chunk), sent + 1))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// What [`slow_csv_body`] sends in all.
pub(crate) fn slow_csv_contents(chunks: usize) -> String {
    let rows: String = linear_csv(800).lines().skip(1).map(|line| format!("{line}\n")).collect();
    format!("x,y\n{}", rows.repeat(chunks))
}

/// Starts a multipart upload of [`slow_csv_body`] in the background.
pub(crate) fn start_slow_upload(
    server: &Server,
    chunks: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<reqwest::Result<(StatusCode, String)>> {
    let part = reqwest::multipart::Part::stream(slow_csv_body(chunks, pause)).file_name("big.csv");
    let request = server
        .client
        .post(server.url("/upload"))
        .multipart(reqwest::multipart::Form::new().part("file", part));
    tokio::spawn(async move {
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    })
}

/// A small pseudo-random generator (xorshift) for the kill delays, which vary from run to run;
/// the seed is printed with the test's output.
struct Jitter(u64);

impl Jitter {
    fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let seed = (nanos as u64) | 1;
        println!("jitter seed {seed}");
        Self(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_upload_leaves_the_previous_dataset_and_model_served() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(300)).await;
    let model = server.train(json!({ "epochs": 3, "seed": 1 })).await;
    let dataset = server.json("/v1/dataset").await;
    let bytes = stored_dataset(dir).await.unwrap();

    // An upload that keeps sending for minutes: the kill surely lands while it streams to disk.
    let upload = start_slow_upload(&server, 10_000, Duration::from_millis(20));
    match crate::stores::is_local() {
        true => wait_for_staging_file(dir, 64 * 1024).await,
        false => tokio::time::sleep(Duration::from_millis(300)).await,
    }
    server.kill().await;
    assert!(upload.await.unwrap().is_err(), "the killed server answered the upload");
    assert_eq!(stored_dataset(dir).await.unwrap(), bytes);

    let server = Server::start(dir).await;
    assert_no_staging_files(dir);
    assert_eq!(stored_dataset(dir).await.unwrap(), bytes, "the stored dataset changed");
    assert_eq!(server.json("/v1/dataset").await, dataset);
    let served = server.get("/v1/dataset.csv").await.bytes().await.unwrap();
    assert_eq!(served, bytes);
    assert_eq!(server.json("/v1/model").await, model);
    assert_eq!(server.flag().await, 1);
    server.predict_ok(json!([1.0, 2.0])).await;
    // Nothing is wedged: the next upload goes through.
    server.upload_ok(linear_csv(400)).await;
    assert_eq!(server.json("/v1/dataset").await["rows"], 400);
    assert_no_staging_files(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_training_leaves_the_active_model_served() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(2_000)).await;
    let first = server.train(json!({ "epochs": 2, "seed": 1 })).await;
    server.train(json!({ "epochs": 2, "seed": 2 })).await;
    // The active version is not the newest, so a restart that served the newest would show.
    let response =
        server.client.post(server.url("/v1/models/regserve/versions/1/activate")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let versions = server.json("/v1/models").await;
    let files = model_objects(dir).await;
    assert_eq!(files, ["active", "v000001.json", "v000002.json"]);

    let id = server.start_training(json!({ "epochs": 1_000_000, "batch_size": 1, "seed": 3 })).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = server.json(&format!("/v1/jobs/{id}")).await;
        if job["state"] == "running" && job["epoch"].as_u64().unwrap() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the training did not get going: {job}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.flag().await, 0, "the training is still running");
    server.kill().await;

    let server = Server::start(dir).await;
    assert_no_staging_files(dir);
    let served = server.json("/v1/model").await;
    assert_eq!(served["version"], 1);
    assert_eq!(served["kernel"], first["kernel"]);
    assert_eq!(served, first);
    assert_eq!(server.flag().await, 1, "a model is served and no training runs");
    assert_eq!(server.json("/v1/models").await, versions);
    assert_eq!(model_objects(dir).await, files);
    assert_eq!(active_pointer(dir).await, 1);
    let x = first["kernel"][0].as_f64().unwrap() * 5.0 + first["bias"].as_f64().unwrap();
    assert_eq!(server.predict_ok(json!([5.0])).await, [x]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_activations_serves_the_last_acknowledged_or_the_interrupted_version() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(200)).await;
    let mut models = Vec::new();
    for seed in 1..=3 {
        models.push(server.train(json!({ "epochs": 2, "seed": seed })).await);
    }
    server.kill().await;

    let mut jitter = Jitter::from_clock();
    let mut active = 3;
    let acknowledged_in_all = Arc::new(AtomicU64::new(0));
    // Activations rotate 1 -> 2 -> 3 -> 1, so after a kill the served version must be the last
    // one acknowledged or the one that was being activated, never the third.
    let next = |v: u64| v % 3 + 1;
    for round in 0..8 {
        let server = Server::start(dir).await;
        assert_no_staging_files(dir);
        let served = server.json("/v1/model").await;
        let version = served["version"].as_u64().unwrap();
        assert_eq!(served, models[version as usize - 1], "round {round}: the served model is a stored one");
        assert_eq!(
            active_pointer(dir).await,
            version,
            "round {round}: the active-model pointer names the served version"
        );
        assert_eq!(model_objects(dir).await, ["active", "v000001.json", "v000002.json", "v000003.json"]);
        assert!(
            version == active || version == next(active),
            "round {round}: serving v{version}, but the last acknowledged activation was v{active}"
        );

        let acknowledged = Arc::new(AtomicU64::new(version));
        let (client, base) = (server.client.clone(), server.base.clone());
        let (last, count) = (acknowledged.clone(), acknowledged_in_all.clone());
        let firing = tokio::spawn(async move {
            let mut version = version;
            loop {
                version = next(version);
                match client
                    .post(format!("{base}/v1/models/regserve/versions/{version}/activate"))
                    .send()
                    .await
                {
                    Ok(response) if response.status() == StatusCode::OK => {
                        last.store(version, Ordering::SeqCst);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => panic!("activation answered {}", response.status()),
                    Err(_) => return,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(5 + jitter.below(60))).await;
        server.kill().await;
        firing.await.unwrap();
        active = acknowledged.load(Ordering::SeqCst);
    }
    let acknowledged_in_all = acknowledged_in_all.load(Ordering::SeqCst);
    println!("{acknowledged_in_all} activations acknowledged over 8 kills");
    assert!(acknowledged_in_all > 0, "no activation was ever acknowledged before a kill");

    let server = Server::start(dir).await;
    assert_no_staging_files(dir);
    let version = server.json("/v1/model").await["version"].as_u64().unwrap();
    assert!(version == active || version == next(active), "serving v{version} after v{active}");
    assert_eq!(active_pointer(dir).await, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_trainings_store_their_models_keeps_every_acknowledged_version() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let server = Server::start(dir).await;
    server.upload_ok(linear_csv(100)).await;
    server.train(json!({ "solver": "least-squares" })).await;
    server.kill().await;

    let mut jitter = Jitter::from_clock();
    let mut acknowledged = 1;
    let mut stored_in_all = 0;
    for round in 0..6 {
        let server = Server::start(dir).await;
        assert_no_staging_files(dir);
        let served = server.json("/v1/model").await;
        let version = served["version"].as_u64().unwrap();
        // The newest acknowledged version, or a newer one stored just before the kill.
        assert!(version >= acknowledged, "round {round}: serving v{version}, but v{acknowledged} was stored");
        assert_eq!(active_pointer(dir).await, version, "round {round}");
        assert_eq!(model_file(server.json(&format!("/v1/models/regserve/versions/{version}")).await), served);
        let listed = server.json("/v1/models").await;
        let listed = listed.as_array().unwrap();
        assert!(
            listed.iter().any(|v| v["version"] == acknowledged),
            "round {round}: v{acknowledged} is kept"
        );
        let actives: Vec<&Value> = listed.iter().filter(|v| v["active"] == true).collect();
        assert_eq!(actives.len(), 1, "round {round}: one active version in {listed:?}");
        assert_eq!(actives[0]["version"], version);

        let (client, base) = (server.client.clone(), server.base.clone());
        let latest = Arc::new(AtomicU64::new(version));
        let seen = latest.clone();
        let firing = tokio::spawn(async move {
            loop {
                let request = client
                    .post(format!("{base}/train?wait=true"))
                    .json(&json!({ "solver": "least-squares" }));
                let Ok(response) = request.send().await else { return };
                assert_eq!(response.status(), StatusCode::OK);
                let Ok(body) = response.json::<Value>().await else { return };
                seen.store(body["model"]["version"].as_u64().unwrap(), Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(10 + jitter.below(80))).await;
        server.kill().await;
        firing.await.unwrap();
        acknowledged = latest.load(Ordering::SeqCst);
        stored_in_all += acknowledged - version;
    }
    println!("{stored_in_all} trainings acknowledged over 6 kills");
    let server = Server::start(dir).await;
    assert_no_staging_files(dir);
    let version = server.json("/v1/model").await["version"].as_u64().unwrap();
    assert!(version >= acknowledged);
    assert!(stored_in_all > 0, "no training was acknowledged between the kills");
    // A kill between storing a version and pruning may leave one too many; the next training
    // prunes down to the 20 kept.
    // Versions stored but never activated (a kill between the two) count too.
    let stored = server.json("/v1/models").await[0]["version"].as_u64().unwrap();
    assert!(stored >= version);
    let newest = server.train(json!({ "solver": "least-squares" })).await;
    assert_eq!(newest["version"], stored + 1);
    let listed = server.json("/v1/models").await;
    assert_eq!(listed.as_array().unwrap().len(), (newest["version"].as_u64().unwrap() as usize).min(20));
    assert_eq!(
        model_objects(dir).await.len(),
        listed.as_array().unwrap().len() + 1,
        "the stored objects match the list"
    );
}
