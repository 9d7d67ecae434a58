//! `POST /train`: starts a training job (202 with the job), or with `?wait=true` answers when
//! it has finished (200 with the job and the model). The body is optional JSON; an empty body
//! trains with the original's defaults, as the original's page and scripts expect.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::AppError;
use super::budget::{Budget, large_json};
use super::models::{ModelAnswer, answer_bytes};
use crate::datasets::RowChoice;
use crate::model::HistoryDetail;
use crate::state::AppState;
use crate::train::FitSettings;
use crate::training::{JobView, TrainRequest};

/// Every field the body may hold.
const FIELDS: [&str; 15] = [
    "features",
    "rows",
    "target",
    "solver",
    "warm_start",
    "epochs",
    "batch_size",
    "learning_rate",
    "beta_1",
    "beta_2",
    "epsilon",
    "shuffle",
    "seed",
    "initial",
    "patience",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainQuery {
    #[serde(default)]
    wait: bool,
    /// How much of the model's loss history a `?wait=true` answer shows.
    #[serde(default)]
    history: HistoryDetail,
}

/// The answer to `POST /train?wait=true`.
#[derive(Serialize)]
pub struct TrainResult {
    job: JobView,
    model: ModelAnswer,
}

#[tracing::instrument(skip_all)]
pub async fn train(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    query: Result<Query<TrainQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let request = parse_body(&headers, &body?)?;
    let job = state.start_training(request)?;
    if !query.wait {
        let location = [(header::LOCATION, format!("/v1/jobs/{}", job.id()))];
        return Ok((StatusCode::ACCEPTED, location, Json(job.view(HistoryDetail::None))).into_response());
    }
    let model: Arc<_> = job.finished().await.map_err(AppError::JobFailed)?;
    let estimate = answer_bytes(&model, query.history);
    let result = TrainResult {
        job: job.view(HistoryDetail::None),
        model: ModelAnswer { model, detail: query.history },
    };
    large_json(&budget, estimate, result).await
}

/// Reads the optional JSON body: `features`, `target` and `warm_start` are about the job, every
/// other field is a solver setting. Unknown fields are rejected by name.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<TrainRequest, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TrainRequest::default());
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.is_empty() && !content_type.starts_with("application/json") {
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON (Content-Type: application/json), not {content_type:?}"),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        AppError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {error}"))
    })?;
    let Value::Object(mut fields) = value else {
        return Err(unprocessable("the body must be a JSON object such as {\"epochs\": 1000}"));
    };
    if let Some(unknown) = fields.keys().find(|name| !FIELDS.contains(&name.as_str())) {
        return Err(unprocessable(format!(
            "unknown field `{}`; the fields are {}",
            crate::data::excerpt(unknown),
            FIELDS.join(", ")
        )));
    }
    let features = take_field(&mut fields, "features")?;
    let target = take_field(&mut fields, "target")?;
    let warm_start = take_field(&mut fields, "warm_start")?.unwrap_or(false);
    let rows = match fields.remove("rows") {
        None | Some(Value::Null) => RowChoice::All,
        Some(value) => row_choice(&value)?,
    };
    let settings: FitSettings = serde_path_to_error::deserialize(Value::Object(fields))
        .map_err(|error| unprocessable(error.to_string()))?;
    Ok(TrainRequest { features, target, settings, warm_start, rows })
}

fn take_field<T: serde::de::DeserializeOwned>(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<T>, AppError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            serde_json::from_value(value).map(Some).map_err(|error| unprocessable(format!("{name}: {error}")))
        }
    }
}

/// `"all"`, `"new"`, `{"last": N}` or `{"since": "RFC 3339 time"}`.
fn row_choice(value: &Value) -> Result<RowChoice, AppError> {
    let expected =
        || unprocessable(r#"rows: "all", "new", {"last": N} or {"since": "2026-12-01T00:00:00Z"}"#);
    match value {
        Value::String(text) if text == "all" => Ok(RowChoice::All),
        Value::String(text) if text == "new" => Ok(RowChoice::New),
        Value::Object(choice) if choice.len() == 1 => match choice.iter().next().expect("one entry") {
            (name, Value::Number(n)) if name == "last" => match n.as_u64() {
                Some(last) if last > 0 => Ok(RowChoice::Last(last)),
                _ => Err(unprocessable("rows.last: a whole number of rows, at least 1")),
            },
            (name, Value::String(time)) if name == "since" => {
                let time = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                    .map_err(|error| unprocessable(format!("rows.since: not an RFC 3339 time: {error}")))?;
                let ms = time.unix_timestamp_nanos() / 1_000_000;
                Ok(RowChoice::Since(i64::try_from(ms).unwrap_or(i64::MAX)))
            }
            _ => Err(expected()),
        },
        _ => Err(expected()),
    }
}

fn unprocessable(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}
