//! `POST /upload`: what is accepted, what is rejected, and that a rejection changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{INCOME1, INCOME2, error_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn accepted_upload_becomes_the_training_data() {
    let app = spawn_app().await;
    app.upload_ok(INCOME2).await;
    assert_eq!(app.stored_dataset().await.unwrap(), INCOME2);
    let model = app.train(json!({ "epochs": 1, "features": ["Education", "Seniority"] })).await;
    assert_eq!(model["features"], json!(["Education", "Seniority"]));
    assert_eq!(model["rows"], 30);
}

#[tokio::test]
async fn default_columns_follow_the_original_or_take_the_last_column_as_target() {
    let app = spawn_app().await;
    app.upload_ok(INCOME2).await;
    let model = app.train(json!({ "epochs": 1 })).await;
    assert_eq!((model["features"].clone(), model["target"].clone()), (json!(["Education"]), json!("Income")));

    app.upload_ok("a,b,c\n1,2,3\n4,5,6\n7,8,10\n").await;
    let model = app.train(json!({ "epochs": 1 })).await;
    assert_eq!((model["features"].clone(), model["target"].clone()), (json!(["a", "b"]), json!("c")));
}

#[tokio::test]
async fn rejected_uploads_name_the_problem_and_leave_the_dataset_intact() {
    let app = spawn_app().await;
    app.upload_ok(INCOME1).await;
    let before = app.stored_dataset().await.unwrap();

    let cases: [(&[u8], &str); 9] = [
        (b"", "the file is empty"),
        (b"a,b\n1,2\n", "at least 2 are needed"),
        (b"a,b\n1,2\n3,x\n", "line 3, column 2 (\"b\"): \"x\" is not a number"),
        (b"a,b\n1,2\n3,4\n5,inf\n", "line 4, column 2 (\"b\"): \"inf\" is not a finite number"),
        (b"a,b\n1,2\n3\n", "line 3: expected 2 values like the header, found 1"),
        (b"a,b\n1,2\n\xff\xfe,4\n", "line 3 is not valid UTF-8"),
        (b"a,a\n1,2\n3,4\n", "column name \"a\" appears twice"),
        (b"1,2\n3,4\n5,6\n", "the header looks like data"),
        (
            b"\"\",Education,Income\n1,12,NA\n2,16,40\n",
            "line 2, column 3 (\"Income\"): \"NA\" is not a number",
        ),
    ];
    for (contents, expected) in cases {
        let message = error_of(app.upload(contents).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(message.contains(expected), "{message:?} does not contain {expected:?}");
        assert_eq!(
            app.stored_dataset().await.unwrap(),
            before,
            "a rejected upload changed the stored dataset"
        );
    }
    // The in-memory dataset is unchanged too: training still sees Income1's columns.
    let model = app.train(json!({ "epochs": 1 })).await;
    assert_eq!(model["features"], json!(["Education"]));
    crate::stores::assert_no_staging_files(app.data_dir.path());
}

#[tokio::test]
async fn multipart_without_a_file_field_or_boundary_is_a_bad_request() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().text("other", "x");
    let response = app.client.post(app.url("/upload")).multipart(form).send().await.unwrap();
    let message = error_of(response, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("`file`"), "{message}");

    let response = app
        .client
        .post(app.url("/upload"))
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::BAD_REQUEST).await;

    let response = app.client.post(app.url("/upload")).body("a,b\n1,2\n3,4\n").send().await.unwrap();
    let message = error_of(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(message.contains("multipart/form-data"), "{message}");
}

#[tokio::test]
async fn files_over_the_upload_limit_are_refused() {
    let app = spawn_app_with(|config| config.limits.max_upload_bytes = 1000).await;
    app.upload_ok(INCOME1.lines().take(20).collect::<Vec<_>>().join("\n")).await;
    let before = app.stored_dataset().await.unwrap();

    let big = crate::helpers::linear_csv(200);
    assert!(big.len() > 1000);
    let message = error_of(app.upload(big).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(message.contains("1000 bytes"), "{message}");
    assert_eq!(app.stored_dataset().await.unwrap(), before);
}

#[tokio::test]
async fn a_large_upload_streams_to_disk() {
    let app = spawn_app().await;
    let csv = crate::helpers::linear_csv(200_000);
    app.upload_ok(csv.clone()).await;
    assert_eq!(app.stored_dataset().await.unwrap().len(), csv.len());
    let model = app.train(json!({ "epochs": 1, "batch_size": 100000 })).await;
    assert_eq!(model["rows"], 200_000);
}
