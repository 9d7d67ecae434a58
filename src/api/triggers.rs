//! The retraining triggers over HTTP: `GET /v1/triggers` (each trigger with its state),
//! `PUT /v1/triggers` (replace the set, checked whole: a 422 names the field and the old set
//! stays), `POST /v1/triggers/webhook` (an upstream job is done; the body may carry a training
//! spec) and `POST /v1/triggers/{name}/fire` (an operator fires one now).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ErrorBody;
use super::{AppError, AppPath};
use crate::retrain::{Fired, RetrainError, Retrainer, TriggerSet, training_spec};
use crate::state::AppState;

/// The trigger routes' answer when this node has no retrainer.
const NO_RETRAINER: &str = "This node does not train";

#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses(
        (status = 200, description = "Each trigger (as written, with its `state`), the firing `waiting`, the `running_job`", body = Object),
        (status = 404, description = NO_RETRAINER, body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(retrainer(&state)?.view()))
}

#[utoipa::path(put, path = "/v1/triggers", tag = "triggers",
    request_body(description = "The whole set: `{\"triggers\": [...]}`", content_type = "application/json", content = Object),
    responses(
        (status = 200, description = "The new set, as `GET` shows it", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = NO_RETRAINER, body = ErrorBody),
        (status = 422, description = "A set that is not valid (the old set stays)", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub async fn replace(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, AppError> {
    let retrainer = retrainer(&state)?;
    let set = TriggerSet::from_json(json_body(&body)?.unwrap_or(Value::Null)).map_err(unprocessable)?;
    retrainer.replace(set).await.map_err(retrain_error)?;
    Ok(Json(retrainer.view()))
}

#[utoipa::path(post, path = "/v1/triggers/webhook", tag = "triggers",
    request_body(description = "Optional: a training spec for this firing", content_type = "application/json", content = Object),
    responses(
        (status = 202, description = "What became of the firing", body = Fired),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No webhook trigger, or this node does not train", body = ErrorBody),
        (status = 422, description = "A training spec that is not valid", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub async fn webhook(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    fire(&state, None, &body).await
}

#[utoipa::path(post, path = "/v1/triggers/{name}/fire", tag = "triggers",
    params(("name" = String, Path, description = "The trigger's name")),
    request_body(description = "Optional: a training spec for this firing", content_type = "application/json", content = Object),
    responses(
        (status = 202, description = "What became of the firing", body = Fired),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "No such trigger, or this node does not train", body = ErrorBody),
        (status = 422, description = "A training spec that is not valid", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub async fn fire_one(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    fire(&state, Some(&name), &body).await
}

/// Fires a trigger, with the body's training spec if it has one: 202 with what became of it.
async fn fire(state: &AppState, name: Option<&str>, body: &[u8]) -> Result<Response, AppError> {
    let spec = json_body(body)?.map(training_spec).transpose().map_err(unprocessable)?;
    let fired = retrainer(state)?.fire(name, spec).await.map_err(retrain_error)?;
    Ok((StatusCode::ACCEPTED, Json(fired)).into_response())
}

fn retrainer(state: &AppState) -> Result<&Retrainer, AppError> {
    state
        .retrainer()
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, "this node does not train; use the trainer"))
}

/// The JSON body, `None` when it is empty.
fn json_body(body: &[u8]) -> Result<Option<Value>, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|error| {
        AppError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {error}"))
    })
}

fn retrain_error(error: RetrainError) -> AppError {
    let status = match error {
        RetrainError::NoSuchTrigger(_) | RetrainError::NoWebhook => StatusCode::NOT_FOUND,
        RetrainError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    AppError::new(status, error.to_string())
}

fn unprocessable(message: String) -> AppError {
    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}
