//! The fleet's behaviour under activations, a store outage, a killed trainer, racing trainers and
//! a lost node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Fleet, served};
use crate::helpers::model_file;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_activations_each_reach_all_three_predictors_within_a_second() {
    let Some(fleet) = Fleet::start(3).await else { return };
    let trainer = fleet.trainer();
    let mut waits = Vec::new();
    for round in 0..20u64 {
        let version = match round % 2 {
            0 => trainer.train(json!({ "epochs": 2, "seed": round })).await["version"].as_u64().unwrap(),
            _ => {
                let older = 1 + round / 2;
                let response = trainer
                    .client
                    .post(trainer.url(&format!("/v1/models/regserve/versions/{older}/activate")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                older
            }
        };
        waits.push(fleet.all_serve(version, Duration::from_secs(1)).await);
    }
    waits.sort();
    println!("activation to served by all three: median {:?}, slowest {:?}", waits[10], waits[19]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_for_ten_seconds_fails_no_prediction_through_the_balancer() {
    let Some(mut fleet) = Fleet::start(3).await else { return };
    let client = reqwest::Client::new();
    let expected = fleet.predict(&client, 4.0).await.unwrap();
    fleet.store.stop();
    let stopped = Instant::now();
    let mut answered = 0;
    while stopped.elapsed() < Duration::from_secs(10) {
        let answer = fleet.predict(&client, 4.0).await;
        assert_eq!(answer.as_ref(), Ok(&expected), "prediction {answered} during the outage");
        answered += 1;
    }
    for index in 0..3 {
        let health = fleet.predictor(index).json("/healthz").await;
        assert_eq!(
            (health["status"].clone(), health["store"]["reachable"].clone()),
            (json!("degraded"), json!(false)),
            "{health}"
        );
        let metrics = fleet.predictor(index).get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("regserve_store_up 0\n"));
    }
    let refused = fleet.trainer().post("/train?wait=true", &json!({ "solver": "least-squares" })).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let message = refused.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("the store {}", fleet.store_url())), "{message}");
    println!("{answered} predictions through nginx while the store was down, none failed");

    fleet.store.resume().await;
    let version = fleet.trainer().train(json!({ "epochs": 2, "seed": 8 })).await["version"].as_u64().unwrap();
    let caught_up = fleet.all_serve(version, Duration::from_secs(2)).await;
    println!("every predictor served v{version} {caught_up:?} after it was stored");
    for index in 0..3 {
        assert_eq!(fleet.predictor(index).json("/healthz").await["status"], "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_killed_while_storing_models_leaves_no_predictor_serving_a_bad_version() {
    let Some(mut fleet) = Fleet::start(3).await else { return };
    // What each predictor served, by version: a version served must be a stored, whole model.
    let mut seen: BTreeMap<u64, Value> = BTreeMap::new();
    for round in 0..5u64 {
        let (client, base) = (reqwest::Client::new(), fleet.trainer().base.clone());
        let storing = tokio::spawn(async move {
            loop {
                let request = client
                    .post(format!("{base}/train?wait=true"))
                    .json(&json!({ "solver": "least-squares" }));
                if request.send().await.is_err() {
                    return;
                }
            }
        });
        let until = Instant::now() + Duration::from_millis(200 + 150 * round);
        while Instant::now() < until {
            for index in 0..3 {
                let model = fleet.predictor(index).json("/v1/model").await;
                seen.entry(model["version"].as_u64().unwrap()).or_insert(model);
            }
        }
        fleet.trainer.server.take().unwrap().kill().await;
        storing.await.unwrap();
        fleet.restart_trainer().await;
        let active = fleet.trainer().json("/v1/model").await["version"].as_u64().unwrap();
        fleet.all_serve(active, Duration::from_secs(2)).await;
    }
    assert!(seen.len() > 1, "the predictors followed the trainings: {:?}", seen.keys());
    for (version, model) in &seen {
        let stored =
            model_file(fleet.trainer().json(&format!("/v1/models/regserve/versions/{version}")).await);
        assert_eq!(&stored, model, "v{version} as a predictor served it is the stored one");
    }
    println!("{} versions served over 5 kills, each one whole", seen.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trainers_racing_to_activate_end_with_one_winner_everywhere() {
    let Some(fleet) = Fleet::start(3).await else { return };
    let trainer = fleet.trainer();
    trainer.train(json!({ "epochs": 2, "seed": 1 })).await;
    trainer.train(json!({ "epochs": 2, "seed": 2 })).await;
    let mut second = super::Node::trainer_on(crate::helpers::free_port());
    fleet.restart(&mut second).await;
    let (a, b) = (fleet.trainer(), second.server.as_ref().unwrap());
    assert_eq!(served(b).await, Some(3), "the second trainer starts on the active version");
    let activate = |server: &crate::process::Server, version: u64| {
        server.client.post(server.url(&format!("/v1/models/regserve/versions/{version}/activate"))).send()
    };
    let (first, other) = tokio::join!(activate(a, 1), activate(b, 2));
    let (first, other) = (first.unwrap(), other.unwrap());
    let statuses = [first.status(), other.status()];
    assert!(statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    let (winner, loser) = if first.status() == StatusCode::OK { (1, other) } else { (2, first) };
    let message = loser.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(message.contains(&format!("it is now version {winner}")), "{message}");
    fleet.all_serve(winner, Duration::from_secs(1)).await;
    assert_eq!((served(a).await, served(b).await), (Some(winner), Some(winner)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_is_listed_and_a_killed_one_shows_as_lost() {
    let Some(mut fleet) = Fleet::start(3).await else { return };
    // A node's listing follows its heartbeats, which a loaded machine may delay past the first one.
    let all_up = |node: &Value| node["state"] == "up" && node["model_version"] == 1;
    let listed =
        nodes_until(&fleet, Duration::from_secs(10), |nodes| nodes.len() == 4 && nodes.iter().all(all_up))
            .await;
    let roles: Vec<&str> = listed.iter().map(|node| node["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|role| **role == "predictor").count(), 3, "{roles:?}");

    let killed = fleet.predictors[2].port;
    fleet.predictors[2].server.take().unwrap().kill().await;
    let started = Instant::now();
    let address = format!("http://127.0.0.1:{killed}");
    let lost = |node: &Value| node["address"] == address.as_str() && node["state"] == "lost";
    // Three missed heartbeats (1.5 s here) and the listing's reuse (1 s), with room for a loaded machine.
    nodes_until(&fleet, Duration::from_secs(20), |nodes| nodes.iter().any(lost)).await;
    println!("a killed predictor showed as lost after {:?}", started.elapsed());
}

/// The first listing of `/v1/nodes` (asked of the first predictor) that `done` accepts, within `limit`.
/// An answer other than a listing (the store slow to answer, say) counts as not yet.
async fn nodes_until(fleet: &Fleet, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let response = fleet.predictor(0).get("/v1/nodes").await;
        let status = response.status();
        let listed = response.json::<Value>().await.unwrap_or(Value::Null);
        if let Some(nodes) = listed["nodes"].as_array().filter(|nodes| done(nodes)) {
            return nodes.clone();
        }
        let waited = started.elapsed();
        assert!(waited < limit, "not as expected after {waited:?} ({status}): {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
