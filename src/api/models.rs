//! Reading and choosing the served model: the original's training flag, `/v1/model` (with an
//! `ETag` so edge devices can poll cheaply), and the stored versions.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{AppError, AppPath};
use crate::model::Model;
use crate::state::AppState;
use crate::versions::VersionSummary;

/// `GET /training_flag`: `{"training_flag": 1}` once a model exists and no training runs.
pub async fn training_flag(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "training_flag": state.training_flag() }))
}

/// `GET /v1/model`: the served model; `304 Not Modified` when `If-None-Match` names its version.
#[tracing::instrument(skip_all)]
pub async fn current_model(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let model = state.model().ok_or_else(no_model)?;
    let etag = HeaderValue::from_str(&format!("\"v{}\"", model.version())).expect("an ETag is ASCII");
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        // If-None-Match compares weakly: W/"v3" matches "v3".
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let cache = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((cache, Json(model)).into_response())
}

/// `GET /v1/models`: the stored versions, newest first.
pub async fn list(State(state): State<AppState>) -> Json<Vec<VersionSummary>> {
    Json(state.models().list())
}

/// `GET /v1/models/{version}`: one stored version, as a model file.
pub async fn get(
    State(state): State<AppState>,
    AppPath(version): AppPath<u64>,
) -> Result<Json<Model>, AppError> {
    let model =
        tokio::task::spawn_blocking(move || state.models().get(version)).await.map_err(join_error)??;
    Ok(Json(model))
}

/// `POST /v1/models/{version}/activate`: serves a stored version from now on (rollback or
/// roll-forward), atomically and durably.
#[tracing::instrument(skip(state))]
pub async fn activate(
    State(state): State<AppState>,
    AppPath(version): AppPath<u64>,
) -> Result<Json<Arc<Model>>, AppError> {
    let model =
        tokio::task::spawn_blocking(move || state.models().activate(version)).await.map_err(join_error)??;
    tracing::info!(version, "model activated");
    Ok(Json(model))
}

/// The answer to any request that needs a model before one was trained.
pub fn no_model() -> AppError {
    AppError::new(StatusCode::CONFLICT, "no model has been trained yet: POST /train first")
}

pub fn join_error(error: tokio::task::JoinError) -> AppError {
    AppError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("background task failed: {error}"))
}
