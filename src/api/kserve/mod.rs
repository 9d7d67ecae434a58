//! KServe's Open Inference Protocol v2 (REST), as KServe and Triton serve it and their clients
//! (`tritonclient[http]`) speak it: server and model metadata, liveness and readiness, and
//! inference with JSON or binary tensors (Triton's `binary_tensor_data` extension).
//!
//! The model is the prediction service's, by its `--model-name`, and each stored version of it
//! under `/versions/{version}`. Its one input `x` is `[-1, features]` (FP64, though any numeric
//! datatype is taken), its one output `y` is `[-1, 1]` of FP64. Errors are `{"error": "..."}`,
//! as the protocol has them, with its statuses: 400 for a request that is wrong, 404 for a
//! model or version that is not here, 503 while no model can be served.

mod infer;
mod tensor;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::budget::Budget;
use super::error::{ErrorBody, serve_status};
use super::predict::PARSE_INLINE_BYTES;
use super::{AppError, AppPath};
use crate::model::{Model, PredictError};
use crate::serving::{Protocol, ServeError};
use crate::state::AppState;
use infer::{INPUT, InferRequest, InferResponse, OUTPUT};

/// What the protocol calls the kind of model served.
const PLATFORM: &str = "regserve_linear_regression";

/// `GET /v2`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: Vec<&'static str>,
}

/// `GET /v2/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    live: bool,
}

/// `GET /v2/health/ready` and a model's `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
}

/// A model's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    name: String,
    /// The stored versions, which `/versions/{version}` can name.
    versions: Vec<String>,
    platform: &'static str,
    inputs: Vec<TensorMetadata>,
    outputs: Vec<TensorMetadata>,
}

/// A tensor of the model: `-1` is any number of rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    name: &'static str,
    datatype: &'static str,
    shape: [i64; 2],
}

#[utoipa::path(get, path = "/v2", tag = "kserve", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "regserve",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

#[utoipa::path(get, path = "/v2/health/live", tag = "kserve", responses((status = 200, body = Live)))]
pub async fn live() -> Json<Live> {
    Json(Live { live: true })
}

#[utoipa::path(get, path = "/v2/health/ready", tag = "kserve", responses(
    (status = 200, description = "A model is served", body = Readiness),
    (status = 503, description = "No model is served yet, or the active one cannot be read", body = ErrorBody),
))]
pub async fn server_ready(State(state): State<AppState>) -> Result<Json<Readiness>, AppError> {
    state.serving().active().map_err(protocol_error)?;
    Ok(Json(Readiness { ready: true }))
}

#[utoipa::path(get, path = "/v2/models/{name}", tag = "kserve",
    params(("name" = String, Path, description = "The model's name (--model-name)")),
    responses(
        (status = 200, body = ModelMetadata),
        (status = 404, description = "No model of this name", body = ErrorBody),
        (status = 503, description = "No model is served yet", body = ErrorBody),
    ))]
pub async fn model_metadata(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<ModelMetadata>, AppError> {
    metadata(&state, &name, None).await
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "kserve",
    params(
        ("name" = String, Path, description = "The model's name (--model-name)"),
        ("version" = String, Path, description = "A stored version"),
    ),
    responses(
        (status = 200, body = ModelMetadata),
        (status = 404, description = "No model of this name, or no such version", body = ErrorBody),
        (status = 500, description = "The version is stored but cannot be read", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub async fn version_metadata(
    State(state): State<AppState>,
    AppPath((name, version)): AppPath<(String, String)>,
) -> Result<Json<ModelMetadata>, AppError> {
    metadata(&state, &name, Some(&version)).await
}

#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "kserve",
    params(("name" = String, Path, description = "The model's name (--model-name)")),
    responses(
        (status = 200, body = Readiness),
        (status = 404, description = "No model of this name", body = ErrorBody),
        (status = 503, description = "No model is served yet", body = ErrorBody),
    ))]
pub async fn model_ready(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Readiness>, AppError> {
    named_model(&state, &name, None).await?;
    Ok(Json(Readiness { ready: true }))
}

#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "kserve",
    params(
        ("name" = String, Path, description = "The model's name (--model-name)"),
        ("version" = String, Path, description = "A stored version"),
    ),
    responses(
        (status = 200, body = Readiness),
        (status = 404, description = "No model of this name, or no such version", body = ErrorBody),
        (status = 500, description = "The version is stored but cannot be read", body = ErrorBody),
        (status = 503, description = "The store does not answer", body = ErrorBody),
    ))]
pub async fn version_ready(
    State(state): State<AppState>,
    AppPath((name, version)): AppPath<(String, String)>,
) -> Result<Json<Readiness>, AppError> {
    named_model(&state, &name, Some(&version)).await?;
    Ok(Json(Readiness { ready: true }))
}

#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "kserve",
    params(
        ("name" = String, Path, description = "The model's name (--model-name)"),
        ("Inference-Header-Content-Length" = Option<u64>, Header,
            description = "With binary tensors: the bytes of the body that are the JSON; the tensors' bytes follow"),
    ),
    request_body(content((InferRequest = "application/json"), ("application/octet-stream"))),
    responses(
        (status = 200, description = "The predictions: JSON, or with binary outputs the JSON header and their bytes",
            content((InferResponse = "application/json"), ("application/octet-stream"))),
        (status = 400, description = "The request is malformed, or its tensors do not fit the model", body = ErrorBody),
        (status = 404, description = "No model of this name", body = ErrorBody),
        (status = 413, description = "The body is over --max-body", body = ErrorBody),
        (status = 503, description = "No model is served yet, or the memory budget is used up", body = ErrorBody),
    ))]
pub async fn model_infer(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath(name): AppPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    infer_with(&state, &budget, &name, None, &headers, body?).await
}

#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "kserve",
    params(
        ("name" = String, Path, description = "The model's name (--model-name)"),
        ("version" = String, Path, description = "A stored version"),
        ("Inference-Header-Content-Length" = Option<u64>, Header,
            description = "With binary tensors: the bytes of the body that are the JSON; the tensors' bytes follow"),
    ),
    request_body(content((InferRequest = "application/json"), ("application/octet-stream"))),
    responses(
        (status = 200, description = "The predictions: JSON, or with binary outputs the JSON header and their bytes",
            content((InferResponse = "application/json"), ("application/octet-stream"))),
        (status = 400, description = "The request is malformed, or its tensors do not fit the model", body = ErrorBody),
        (status = 404, description = "No model of this name, or no such version", body = ErrorBody),
        (status = 413, description = "The body is over --max-body", body = ErrorBody),
        (status = 500, description = "The version is stored but cannot be read", body = ErrorBody),
        (status = 503, description = "The store does not answer, or the memory budget is used up", body = ErrorBody),
    ))]
pub async fn version_infer(
    State(state): State<AppState>,
    State(budget): State<Budget>,
    AppPath((name, version)): AppPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    infer_with(&state, &budget, &name, Some(&version), &headers, body?).await
}

/// The metadata of the model a route names.
async fn metadata(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<ModelMetadata>, AppError> {
    let model = named_model(state, name, version).await?;
    let mut versions: BTreeSet<u64> = state.models().list().iter().map(|listing| listing.version()).collect();
    versions.insert(model.version());
    let features = i64::try_from(model.features().len()).expect("a model's features fit an i64");
    let tensor = |name, width| TensorMetadata { name, datatype: "FP64", shape: [-1, width] };
    Ok(Json(ModelMetadata {
        name: name.to_owned(),
        versions: versions.iter().map(u64::to_string).collect(),
        platform: PLATFORM,
        inputs: vec![tensor(INPUT, features)],
        outputs: vec![tensor(OUTPUT, 1)],
    }))
}

/// Answers an inference request for the model a route names; large bodies are decoded and
/// predicted on a blocking thread.
async fn infer_with(
    state: &AppState,
    budget: &Budget,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let serving = state.serving().clone();
    let refused = |error| serving.refused(Protocol::KServe, error);
    let model = named_model(state, name, version).await.map_err(refused)?;
    let header_length = infer::header_length(headers).map_err(refused)?;
    let inline = body.len() <= PARSE_INLINE_BYTES;
    let work = {
        let (serving, budget) = (serving.clone(), budget.clone());
        move || infer::infer(&serving, &model, &budget, &body, header_length)
    };
    match inline {
        true => work(),
        false => budget.offload(work).await.map_err(refused)?,
    }
}

/// The model a route names: this service's, of `version` or the one served.
async fn named_model(state: &AppState, name: &str, version: Option<&str>) -> Result<Arc<Model>, AppError> {
    let serving = state.serving();
    serving.check_name(name).map_err(protocol_error)?;
    let version = match version {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            AppError::new(
                StatusCode::NOT_FOUND,
                format!("model {name:?} has no version {text:?}: versions are numbers"),
            )
        })?),
    };
    serving.model(version).await.map_err(protocol_error)
}

/// A refusal of the prediction service with the protocol's status: 503 while no model can be
/// served, 400 for inputs the model cannot take (named as this protocol names them).
fn protocol_error(error: ServeError) -> AppError {
    if let ServeError::Predict(PredictError::NotFinite { row }) = error {
        let message = format!(
            "row {row} of input {INPUT:?}: the prediction is not a finite number (the input is too large or not finite)"
        );
        return AppError::new(StatusCode::BAD_REQUEST, message);
    }
    let status = match &error {
        ServeError::NotTrained | ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServeError::Shape { .. } | ServeError::Predict(_) => StatusCode::BAD_REQUEST,
        ServeError::UnknownModel { .. } | ServeError::Version(_) => serve_status(&error),
    };
    AppError::new(status, error.to_string())
}
