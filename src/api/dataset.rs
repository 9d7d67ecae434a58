//! The dataset: a summary (`/v1/dataset`), some rows (`/v1/dataset/rows`) and the whole of it
//! as CSV (`/v1/dataset.csv`).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::AppError;
use super::error::ErrorBody;
use crate::data::DEFAULT_DATASET_CSV;
use crate::data::RowSample;
use crate::datasets::{Chunk, Summary};
use crate::state::AppState;

/// `GET /v1/dataset`: columns with their types and ranges, rows, SHA-256, default selection.
#[utoipa::path(get, path = "/v1/dataset", tag = "dataset",
    responses((status = 200, description = "The dataset's summary", body = Summary)))]
pub async fn summary(State(state): State<AppState>) -> Response {
    let history = state.datasets().history();
    Json(history.summary(state.datasets().activity().view())).into_response()
}

/// The most rows one `GET /v1/dataset/rows` returns.
const MAX_SAMPLE_ROWS: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RowsQuery {
    /// How many rows (default 20, at most 10,000).
    limit: Option<usize>,
    /// `true`: spread the rows evenly over the dataset (for plots); `false`: the first rows.
    #[serde(default)]
    spread: bool,
}

/// `GET /v1/dataset/rows?limit=N&spread=true`: a preview or an even sample of the rows.
#[utoipa::path(get, path = "/v1/dataset/rows", tag = "dataset", params(RowsQuery),
    responses(
        (status = 200, description = "The rows", body = RowSample),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 422, description = "`limit` above 10,000", body = ErrorBody),
    ))]
pub async fn rows(
    State(state): State<AppState>,
    query: Result<Query<RowsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(20);
    if limit > MAX_SAMPLE_ROWS {
        let message = format!("limit: at most {MAX_SAMPLE_ROWS} rows per request");
        return Err(AppError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, message));
    }
    let history = state.datasets().history();
    Ok(Json(history.sample_rows(limit, query.spread)).into_response())
}

/// `GET /v1/dataset.csv`: the uploaded file as stored, or the built-in dataset, while nothing
/// was appended; the rows written out as CSV otherwise.
#[utoipa::path(get, path = "/v1/dataset.csv", tag = "dataset",
    responses(
        (status = 200, description = "The dataset as CSV", content_type = "text/csv; charset=utf-8", body = String),
        (status = 409, description = "The store refused the read", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
pub async fn download(State(state): State<AppState>) -> Result<Response, AppError> {
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"dataset.csv\""),
    ];
    let history = state.datasets().history();
    let only_base = matches!(history.chunks.as_slice(), [Chunk::Base(_)]);
    let body = match (only_base, state.datasets().stored_file().await?) {
        (true, Some(file)) => Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(file))),
        (true, None) => Body::from(DEFAULT_DATASET_CSV),
        (false, _) => {
            let blocks = history.csv_blocks().map(Ok::<_, std::convert::Infallible>);
            Body::from_stream(futures_util::stream::iter(blocks))
        }
    };
    Ok((headers, body).into_response())
}
