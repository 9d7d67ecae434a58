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

use super::{AppError, AppPath};
use crate::retrain::{RetrainError, Retrainer, TriggerSet, training_spec};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(retrainer(&state)?.view()))
}

pub async fn replace(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, AppError> {
    let retrainer = retrainer(&state)?;
    let set = TriggerSet::from_json(json_body(&body)?.unwrap_or(Value::Null)).map_err(unprocessable)?;
    retrainer.replace(set).await.map_err(retrain_error)?;
    Ok(Json(retrainer.view()))
}

pub async fn webhook(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    fire(&state, None, &body).await
}

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
