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
use serde_json::Value;

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

/// `GET /v1/models/{name}/versions`: the same list, under the model's name.
#[utoipa::path(get, path = "/v1/models/{name}/versions", params(("name" = String, Path, description = "the model's name")),
    responses((status = 200, description = "the stored versions, newest first", body = Vec<VersionListing>),
        (status = 404, description = "another model's name", body = ErrorBody)),
    tag = "models")]
pub async fn versions(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Vec<VersionListing>>, AppError> {
    state.serving().check_name(&name)?;
    Ok(list(State(state)).await)
}

/// `GET /v1/models/{name}/versions/{version}`: one stored version, as a model file, with
/// TensorFlow Serving's `model_version_status` beside it, since TF Serving answers its version
/// status on this same path: one object serves both kinds of client.
#[utoipa::path(get, path = "/v1/models/{name}/versions/{version}",
    params(("name" = String, Path, description = "the model's name"), ("version" = u64, Path, description = "a stored version"),
        ("history" = Option<String>, Query, description = "sampled (default), full or none")),
    responses((status = 200, description = "the model file and `model_version_status`", body = Object),
        (status = 400, description = "the version is not a number, or a bad query", body = ErrorBody),
        (status = 404, description = "another model's name, or no such version", body = ErrorBody),
        (status = 500, description = "the stored version is unreadable", body = ErrorBody),
        (status = 503, description = "the store did not answer", body = ErrorBody)),
    tag = "models")]
pub async fn get(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath((name, version)): AppPath<(String, u64)>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    state.serving().check_name(&name)?;
    let model = Arc::new(state.models().get(version).await?);
    let estimate = answer_bytes(&model, query.history) + 128;
    let status = super::tf_serving::version_status(version)["model_version_status"].take();
    let answer =
        VersionAnswer { model: ModelAnswer { model, detail: query.history }, model_version_status: status };
    large_json(&budget, estimate, answer).await
}

/// A stored version's model file with TF Serving's status of it.
#[derive(serde::Serialize)]
struct VersionAnswer {
    #[serde(flatten)]
    model: ModelAnswer,
    model_version_status: Value,
}

/// `POST /v1/models/{name}/versions/{version}/activate`: serves a stored version from now on
/// (rollback or roll-forward), atomically and durably.
#[utoipa::path(post, path = "/v1/models/{name}/versions/{version}/activate",
    params(("name" = String, Path, description = "the model's name"), ("version" = u64, Path, description = "a stored version")),
    responses((status = 200, description = "the model now served", body = Object),
        (status = 400, description = "the version is not a number", body = ErrorBody),
        (status = 404, description = "another model's name, or no such version", body = ErrorBody),
        (status = 409, description = "another change won", body = ErrorBody),
        (status = 500, description = "the stored version is unreadable", body = ErrorBody),
        (status = 503, description = "the store did not answer", body = ErrorBody)),
    tag = "models")]
#[tracing::instrument(skip(state, budget))]
pub async fn activate(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath((name, version)): AppPath<(String, u64)>,
) -> Result<Response, AppError> {
    state.serving().check_name(&name)?;
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
