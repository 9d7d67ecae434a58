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
use serde_json::Value;

use super::AppError;
use super::budget::{Budget, large_json};
use super::error::ErrorBody;
use super::models::{ModelAnswer, answer_bytes};
use crate::model::{HistoryDetail, ModelView};
use crate::state::AppState;
use crate::training::{JobView, TrainRequest};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrainQuery {
    /// Answer once the job has finished, with its model.
    #[serde(default)]
    wait: bool,
    /// How much of the model's loss history a `?wait=true` answer shows.
    #[serde(default)]
    #[param(inline)]
    history: HistoryDetail,
}

/// The answer to `POST /train?wait=true`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrainResult {
    job: JobView,
    #[schema(value_type = ModelView)]
    model: ModelAnswer,
}

#[utoipa::path(post, path = "/train", tag = "training", params(TrainQuery),
    request_body(description = "The training spec (all optional: features, target, solver, epochs, ...; see the README); an empty body trains with the original's defaults",
        content_type = "application/json", content = Object),
    responses(
        (status = 200, description = "`?wait=true`: the job has finished", body = TrainResult),
        (status = 202, description = "The job started", body = JobView,
            headers(("Location" = String, description = "`/v1/jobs/<id>`"))),
        (status = 400, description = "Malformed JSON or a bad query", body = ErrorBody),
        (status = 409, description = "A training runs already, or it was cancelled", body = ErrorBody),
        (status = 415, description = "A body that is not JSON", body = ErrorBody),
        (status = 422, description = "A spec or data the fit cannot use", body = ErrorBody),
        (status = 500, description = "The training crashed", body = ErrorBody),
        (status = 503, description = "The server shut down during the fit, or the store does not answer", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody),
    ))]
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

/// Reads the optional JSON body (see [`TrainRequest::from_json`]).
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
    TrainRequest::from_json(value).map_err(|message| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, message))
}
