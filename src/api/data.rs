//! `POST /v1/data`: appends rows (JSON `{"rows": [...]}`, NDJSON or CSV, by `Content-Type`),
//! answered `200 {"appended", "rows", "seq"}` once they are durable; `DELETE /v1/data` empties
//! the dataset so that the next batch defines new columns. An `Idempotency-Key` header (or a
//! `"batch_id"`) makes a retried batch append once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppError;
use super::error::ErrorBody;
use crate::datasets::{AppendError, Appended, Source};
use crate::ingest::{self, decode};
use crate::state::AppState;

/// The most bytes of an idempotency key.
const MAX_KEY_BYTES: usize = 256;

#[utoipa::path(post, path = "/v1/data", tag = "data",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried batch append once")),
    request_body(description = "The rows: JSON `{\"rows\": [...]}` (with an optional `batch_id`), NDJSON (one row object a line) or CSV with a header line",
        content(
            (Object = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
    responses(
        (status = 200, description = "The rows are durable", body = Appended),
        (status = 400, description = "Malformed JSON, or a bad `Idempotency-Key`", body = ErrorBody),
        (status = 403, description = "This node does not take rows", body = ErrorBody),
        (status = 409, description = "The store refused the commit", body = ErrorBody),
        (status = 413, description = "The batch is larger than the dataset may grow", body = ErrorBody),
        (status = 415, description = "Not JSON, NDJSON or CSV", body = ErrorBody),
        (status = 422, description = "No rows, or rows that do not fit the dataset's columns", body = ErrorBody),
        (status = 503, description = "The store does not answer, or the server is shutting down", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn append(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let appended = receive(&state, &headers, body?).await.inspect_err(|error| {
        if error.status().is_client_error() {
            state.datasets().activity().rejected(Source::Http, 1);
        }
    })?;
    Ok(Json(appended).into_response())
}

async fn receive(state: &AppState, headers: &HeaderMap, body: Bytes) -> Result<Appended, AppError> {
    let envelope = decode_body(headers, &body)?;
    let key = idempotency_key(headers)?.or(envelope.batch_id);
    if envelope.rows.count() == 0 {
        return Err(AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "the batch has no rows"));
    }
    let batch = ingest::batch(envelope.rows, Source::Http, key, None);
    state.datasets().intake().append(batch).await.map_err(append_error)
}

/// What `DELETE /v1/data` answers: the dataset is empty, in its new generation.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Cleared {
    #[schema(minimum = 0, maximum = 0)]
    rows: usize,
    generation: u64,
}

/// `DELETE /v1/data`: the dataset becomes empty, a new generation whose columns the next
/// appended batch defines.
#[utoipa::path(delete, path = "/v1/data", tag = "data",
    responses(
        (status = 200, description = "The dataset is empty", body = Cleared),
        (status = 409, description = "The store refused the change", body = ErrorBody),
        (status = 500, description = "The dataset could not be written", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
pub async fn clear(State(state): State<AppState>) -> Result<Json<Cleared>, AppError> {
    state.datasets().clear().await?;
    let history = state.datasets().history();
    Ok(Json(Cleared { rows: 0, generation: history.generation }))
}

/// The HTTP error for a batch that was not appended.
pub fn append_error(error: AppendError) -> AppError {
    let status = match &error {
        AppendError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppendError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        AppendError::Store(store) => return AppError::Store(store.clone()),
        AppendError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        AppendError::NotHere => StatusCode::FORBIDDEN,
    };
    AppError::new(status, error.to_string())
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<decode::Envelope, AppError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let rows = |rows: decode::Rows| decode::Envelope { rows, ..decode::Envelope::default() };
    let decoded = match media.as_str() {
        "application/json" | "" => decode::json(body),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => decode::ndjson(body).map(rows),
        "text/csv" => decode::csv(body).map(rows),
        other => {
            return Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "rows are sent as application/json, application/x-ndjson or text/csv, not {:?}",
                    crate::data::excerpt(other)
                ),
            ));
        }
    };
    decoded.map_err(|message| {
        let status = match message.starts_with("not valid JSON") {
            true => StatusCode::BAD_REQUEST,
            false => StatusCode::UNPROCESSABLE_ENTITY,
        };
        AppError::new(status, message)
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_KEY_BYTES => Ok(Some(key.to_owned())),
        _ => Err(AppError::new(
            StatusCode::BAD_REQUEST,
            format!("Idempotency-Key: 1 to {MAX_KEY_BYTES} visible ASCII characters"),
        )),
    }
}
