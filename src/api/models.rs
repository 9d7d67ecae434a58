//! Reading and choosing the served model: the original's training flag, `/v1/model` (with an
//! `ETag` so edge devices can poll cheaply), and the stored versions. Models are shown with their
//! loss history sampled down unless `?history=full` (or `none`) asks otherwise.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::budget::{Budget, large_json};
use super::error::ErrorBody;
use super::{AppError, AppPath};
use crate::model::{HistoryDetail, Model, ModelView};
use crate::registry::{Reason, VersionListing};
use crate::state::AppState;

/// `?history=sampled|full|none` of the routes that show a loss history.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How much of the loss history to show (default `sampled`).
    #[serde(default)]
    #[param(inline)]
    pub history: HistoryDetail,
}

/// Bytes of JSON per epoch of a loss history, for reserving an answer's memory.
pub const BYTES_PER_EPOCH: usize = 24;

/// The original's training flag.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrainingFlag {
    /// 1 once a model exists and no training runs, else 0.
    #[schema(minimum = 0, maximum = 1)]
    training_flag: u8,
}

/// `GET /training_flag`: `{"training_flag": 1}` once a model exists and no training runs.
#[utoipa::path(get, path = "/training_flag", tag = "models",
    responses((status = 200, description = "The training flag", body = TrainingFlag)))]
pub async fn training_flag(State(state): State<AppState>) -> Json<TrainingFlag> {
    Json(TrainingFlag { training_flag: state.training_flag() })
}

/// `GET /v1/model`: the served model; `304 Not Modified` when `If-None-Match` names its version.
#[utoipa::path(get, path = "/v1/model", tag = "models", params(HistoryQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag (`\"v3\"`) of a version already held")),
    responses(
        (status = 200, description = "The served model", body = ModelView,
            headers(("ETag" = String, description = "`\"v<version>\"`"))),
        (status = 304, description = "The served model is the version `If-None-Match` names"),
        (status = 400, description = "An unknown query parameter or `history` value", body = ErrorBody),
        (status = 409, description = "No model is trained yet", body = ErrorBody),
        (status = 503, description = "The active version cannot be served, or the server is at a limit", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn current_model(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let model = state.serving().active()?;
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
    Ok((cache, model_answer(&budget, model, query.history).await?).into_response())
}

/// `GET /v1/models`: the stored versions, newest first (unreadable ones with their error).
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "The stored versions, newest first", body = Vec<VersionListing>)))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<VersionListing>> {
    Json(state.models().list())
}

/// `GET /v1/models/{version}`: one stored version, as a model file.
#[utoipa::path(get, path = "/v1/models/{version}", tag = "models",
    params(("version" = u64, Path, description = "The stored version", example = 1), HistoryQuery),
    responses(
        (status = 200, description = "The version", body = ModelView),
        (status = 400, description = "A version that is not a number, or a bad query", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 500, description = "The version's file cannot be read", body = ErrorBody),
        (status = 503, description = "The store does not answer, or the server is at a limit", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath(version): AppPath<u64>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let model = state.models().get(version).await?;
    model_answer(&budget, Arc::new(model), query.history).await
}

/// `POST /v1/models/{version}/activate`: serves a stored version from now on (rollback or
/// roll-forward), atomically and durably.
#[utoipa::path(post, path = "/v1/models/{version}/activate", tag = "models",
    params(("version" = u64, Path, description = "The stored version to serve", example = 1)),
    responses(
        (status = 200, description = "The version, now served", body = ModelView),
        (status = 400, description = "A version that is not a number", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Another activation changed the active version first", body = ErrorBody),
        (status = 500, description = "The version's file cannot be read", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
#[tracing::instrument(skip(state, budget))]
pub async fn activate(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath(version): AppPath<u64>,
) -> Result<Response, AppError> {
    let model = state.models().activate(version, Reason::Rollback.into()).await?;
    tracing::info!(version, "model activated");
    model_answer(&budget, model, HistoryDetail::Sampled).await
}

/// A model as an answer, its history shaped by `detail`; large ones are built off the workers.
pub async fn model_answer(
    budget: &Budget,
    model: Arc<Model>,
    detail: HistoryDetail,
) -> Result<Response, AppError> {
    large_json(budget, answer_bytes(&model, detail), ModelAnswer { model, detail }).await
}

/// About how many bytes of JSON a model's answer takes.
pub fn answer_bytes(model: &Model, detail: HistoryDetail) -> usize {
    let epochs = match detail {
        HistoryDetail::Full => model.history().len(),
        HistoryDetail::Sampled => model.history().len().min(crate::model::HISTORY_POINTS) * 2,
        HistoryDetail::None => 0,
    };
    2048 + epochs * BYTES_PER_EPOCH
}

/// A shared model, serialised as [`Model::view`] shows it.
pub struct ModelAnswer {
    pub model: Arc<Model>,
    pub detail: HistoryDetail,
}

impl serde::Serialize for ModelAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.model.view(self.detail).serialize(serializer)
    }
}
