//! Property tests: whatever bytes arrive, the CSV parser and the predict endpoint answer with a
//! value or an error, never a panic; and valid generated tables parse back exactly.

#[path = "support/trained_state.rs"]
mod trained_state;
use trained_state::trained_state;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use regserve::api::app;
use regserve::data::parse_csv;
use regserve::state::AppState;
use tower::ServiceExt;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_or_give_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_csv(&bytes[..]);
    }

    #[test]
    fn csv_like_text_parses_or_gives_an_error(text in "[a-c0-9,.\"\\-eE \r\n]{0,200}") {
        let _ = parse_csv(text.as_bytes());
    }

    #[test]
    fn generated_tables_parse_back_exactly(
        rows in proptest::collection::vec(proptest::collection::vec(-1e12f64..1e12, 3), 2..40),
        crlf in any::<bool>(),
        quoted in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let cell = |v: f64| if quoted { format!("\"{v}\"") } else { v.to_string() };
        let mut csv = format!("\"\",a,b,c{end}");
        for (i, row) in rows.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| cell(*v)).collect();
            csv.push_str(&format!("{},{}{end}", i + 1, cells.join(",")));
        }
        let data = parse_csv(csv.as_bytes()).unwrap();
        prop_assert_eq!(data.rows(), rows.len());
        for (j, name) in ["a", "b", "c"].iter().enumerate() {
            let values = data.column(name).unwrap().values().unwrap();
            let expected: Vec<f64> = rows.iter().map(|row| row[j]).collect();
            prop_assert_eq!(values.to_vec(), expected);
        }
    }
}

/// Sends `body` to `POST /predict` and returns the status and whether the answer was JSON.
fn predict(runtime: &tokio::runtime::Runtime, state: &AppState, body: Vec<u8>) -> (StatusCode, bool) {
    let request =
        Request::post("/predict").header("content-type", "application/json").body(Body::from(body)).unwrap();
    let response = runtime.block_on(app(state.clone()).oneshot(request)).unwrap();
    let json =
        response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    (response.status(), json)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// JSON-ish fragments that make the predict request parser work hard.
fn predict_body() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(|v| format!("{v}")),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("NaN".to_owned()),
        Just("1e400".to_owned()),
        Just("null".to_owned()),
        Just("\"10\"".to_owned()),
        Just("true".to_owned()),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            inner.prop_map(|v| format!("{{\"x_predict\":{v}}}")),
        ]
    });
    value.prop_map(|v| format!("{{\"x_predict\":{v}}}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn predict_answers_any_body_with_json_and_never_a_server_error(
        body in prop_oneof![predict_body(), "[\\x00-\\x7f]{0,64}"],
    ) {
        let runtime = runtime();
        let state = trained_state(&runtime, 5);
        let (status, json) = predict(&runtime, &state, body.clone().into_bytes());
        prop_assert!(status == StatusCode::OK || status.is_client_error(), "{body}: {status}");
        prop_assert!(json, "{body}: the answer is not JSON");
    }

    #[test]
    fn predict_answers_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let runtime = runtime();
        let state = trained_state(&runtime, 5);
        let (status, json) = predict(&runtime, &state, bytes);
        prop_assert!(status == StatusCode::OK || status.is_client_error());
        prop_assert!(json);
    }
}
