//! `GET /openapi.json` on the real binary: served as a read (with the read token), and every
//! answer of every operation it describes matches it, as schemathesis (from the test venv,
//! `REGSERVE_TEST_PYTHON`) finds against a throwaway server with a trained model.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::served::Served;

/// The python with schemathesis, or None (and a note) when it is unset outside CI.
fn test_python() -> Option<String> {
    let Some(python) = std::env::var("REGSERVE_TEST_PYTHON").ok().filter(|value| !value.is_empty()) else {
        let why = "the schemathesis test needs REGSERVE_TEST_PYTHON (scripts/test.sh sets it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}, and under CI it must run");
        eprintln!("skipped: {why}");
        return None;
    };
    Some(python)
}

#[tokio::test]
async fn the_document_is_a_read_that_names_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &["--read-token", "reader-secret"]).await;
    let refused = server.client.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "the document needs the read token, as /v1 does");
    let answer =
        server.client.get(server.url("/openapi.json")).bearer_auth("reader-secret").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let document: Value = answer.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["title"], "regserve");
    assert!(document["paths"]["/openapi.json"]["get"].is_object(), "the document describes itself");
    let predict = &document["paths"]["/predict"]["post"];
    assert_eq!(predict["security"], json!([{"read_token": []}, {"admin_token": []}]));
    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_every_answer_as_documented() {
    let Some(python) = test_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), &[]).await;
    let trained = server.post_json("/train?wait=true", &json!({ "epochs": 50 })).await;
    assert_eq!(trained.status(), StatusCode::OK, "a model to predict with");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/schemathesis.sh");
    let base = server.base.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg(script).arg(&base).args(["--seed", "1"]).env("PYTHON", python).output()
    })
    .await
    .unwrap()
    .expect("bash runs the schemathesis script");
    let output = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "schemathesis found answers the document does not describe:\n{output}");
    // Of the operations it found, it selects all but the two event streams and the two
    // WebSocket upgrades the script leaves out, and every selected one must pass.
    let counts = output.split_once("Operations:").and_then(|(_, rest)| rest.split_once(" total"));
    let (selected, total) = counts
        .and_then(|(counts, _)| counts.split_once(" selected / "))
        .map(|(selected, total)| {
            (selected.trim().parse::<usize>().unwrap(), total.trim().parse::<usize>().unwrap())
        })
        .unwrap_or_else(|| panic!("no operation counts in:\n{output}"));
    assert!(total >= 50 && selected == total - 4, "{selected} of {total} operations selected:\n{output}");
    assert!(output.contains(&format!("{selected} passed")), "every selected operation passed:\n{output}");
    server.terminate();
}
