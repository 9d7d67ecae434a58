//! TensorFlow Serving's REST API: the model's version status (`GET /v1/models/{name}`), its
//! metadata with the one `serving_default` signature (input `x`, DT_DOUBLE `[-1, features]`,
//! output `y`, `[-1, 1]`), and `:predict` in the row (`instances` -> `predictions`) and columnar
//! (`inputs` -> `outputs`) formats, for the served version or a named one. Errors are
//! `{"error": "..."}`, TF Serving's own shape.
//!
//! axum cannot match text after a parameter in one path segment, so `regserve:predict` and
//! `3:predict` arrive whole and are split at their last `:` here (model names have none).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::rows::{flat_rows, push_row};
use super::{AppError, AppPath};
use crate::model::Model;
use crate::serving::{Protocol, Serving};
use crate::state::AppState;

/// The model's one input and output, as its signature names them.
const INPUT: &str = "x";
const OUTPUT: &str = "y";
const SIGNATURE: &str = "serving_default";

/// `GET /v1/models/{name}`: the served version's status.
#[utoipa::path(get, path = "/v1/models/{name}", params(("name" = String, Path, description = "the model's name")),
    responses((status = 200, description = "TF Serving's version status", body = Object),
        (status = 404, description = "another model's name, or a version number on the old path", body = Object),
        (status = 409, description = "nothing trained yet", body = Object),
        (status = 503, description = "the active version cannot be read", body = Object)),
    tag = "tensorflow-serving")]
pub async fn status(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Value>, AppError> {
    let serving = state.serving();
    check_name(serving, &name)?;
    Ok(Json(version_status(serving.active()?.version())))
}

/// TF Serving's status of a version that can be predicted with.
pub fn version_status(version: u64) -> Value {
    json!({ "model_version_status": [{
        "version": version.to_string(),
        "state": "AVAILABLE",
        "status": { "error_code": "OK", "error_message": "" },
    }] })
}

/// The model's name, or a 404; a version number where the name goes (the path regserve's
/// versions had before they moved under `/versions`) is told where they are now.
fn check_name(serving: &Serving, name: &str) -> Result<(), AppError> {
    match serving.check_name(name) {
        Err(_) if name.parse::<u64>().is_ok() => Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no model is named {name:?}; stored versions are at /v1/models/{served}/versions/{name}",
                served = serving.name()
            ),
        )),
        checked => Ok(checked?),
    }
}

/// `GET /v1/models/{name}/metadata`: the served version's signature.
#[utoipa::path(get, path = "/v1/models/{name}/metadata", params(("name" = String, Path, description = "the model's name")),
    responses((status = 200, description = "TF Serving's metadata", body = Object),
        (status = 404, description = "another model's name", body = Object),
        (status = 409, description = "nothing trained yet", body = Object),
        (status = 503, description = "the active version cannot be read", body = Object)),
    tag = "tensorflow-serving")]
pub async fn metadata(
    State(state): State<AppState>,
    AppPath(name): AppPath<String>,
) -> Result<Json<Value>, AppError> {
    metadata_of(state.serving(), &name, None).await
}

/// `GET /v1/models/{name}/versions/{version}/metadata`: a stored version's signature.
#[utoipa::path(get, path = "/v1/models/{name}/versions/{version}/metadata",
    params(("name" = String, Path, description = "the model's name"), ("version" = u64, Path, description = "a stored version")),
    responses((status = 200, description = "TF Serving's metadata", body = Object),
        (status = 400, description = "the version is not a number", body = Object),
        (status = 404, description = "another model's name, or no such version", body = Object)),
    tag = "tensorflow-serving")]
pub async fn version_metadata(
    State(state): State<AppState>,
    AppPath((name, version)): AppPath<(String, u64)>,
) -> Result<Json<Value>, AppError> {
    metadata_of(state.serving(), &name, Some(version)).await
}

async fn metadata_of(serving: &Serving, name: &str, version: Option<u64>) -> Result<Json<Value>, AppError> {
    check_name(serving, name)?;
    let model = serving.model(version).await?;
    let tensor = |width: usize, tensor: &str| {
        json!({
            "dtype": "DT_DOUBLE",
            "tensor_shape": { "dim": [{ "size": "-1", "name": "" }, { "size": width.to_string(), "name": "" }], "unknown_rank": false },
            "name": format!("{tensor}:0"),
        })
    };
    Ok(Json(json!({
        "model_spec": { "name": name, "signature_name": "", "version": model.version().to_string() },
        "metadata": { "signature_def": { "signature_def": { SIGNATURE: {
            "inputs": { INPUT: tensor(model.features().len(), INPUT) },
            "outputs": { OUTPUT: tensor(1, OUTPUT) },
            "method_name": "tensorflow/serving/predict",
        } } } },
    })))
}

/// A `:predict` body: rows (`instances`) or columns (`inputs`), of the default signature.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TfPredictRequest {
    #[serde(default)]
    signature_name: Option<String>,
    /// Rows: numbers (one-feature models), lists of numbers, or `{"x": ...}` objects.
    #[schema(value_type = Option<Vec<Object>>)]
    instances: Option<Value>,
    /// Columns: a list of rows, or `{"x": [rows]}`.
    #[schema(value_type = Option<Object>)]
    inputs: Option<Value>,
}

/// `POST /v1/models/{name}:predict`: predictions by the served version.
#[utoipa::path(post, path = "/v1/models/{name}:predict", params(("name" = String, Path, description = "the model's name")),
    request_body = TfPredictRequest,
    responses((status = 200, description = "`predictions` (rows) or `outputs` (columns), one `[y]` per row", body = Object),
        (status = 400, description = "a malformed body, an unsupported verb or signature", body = Object),
        (status = 404, description = "another model's name, or an unknown verb", body = Object),
        (status = 409, description = "nothing trained yet", body = Object),
        (status = 422, description = "a row cannot be predicted", body = Object)),
    tag = "tensorflow-serving")]
pub async fn predict(
    State(state): State<AppState>,
    AppPath(target): AppPath<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let serving = state.serving();
    let asked = match predict_target(&target) {
        Ok(name) => read_request(serving, name, None, &body).await,
        Err(error) => Err(error),
    };
    answer(serving, asked)
}

/// `POST /v1/models/{name}/versions/{version}:predict`: predictions by a stored version.
#[utoipa::path(post, path = "/v1/models/{name}/versions/{version}:predict",
    params(("name" = String, Path, description = "the model's name"), ("version" = u64, Path, description = "a stored version")),
    request_body = TfPredictRequest,
    responses((status = 200, description = "`predictions` (rows) or `outputs` (columns), one `[y]` per row", body = Object),
        (status = 400, description = "a malformed body or version, an unsupported verb or signature", body = Object),
        (status = 404, description = "another model's name, no such version, or an unknown verb", body = Object),
        (status = 422, description = "a row cannot be predicted", body = Object)),
    tag = "tensorflow-serving")]
pub async fn predict_version(
    State(state): State<AppState>,
    AppPath((name, target)): AppPath<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let serving = state.serving();
    let asked = match predict_target(&target).and_then(parse_version) {
        Ok(version) => read_request(serving, &name, Some(version), &body).await,
        Err(error) => Err(error),
    };
    answer(serving, asked)
}

fn parse_version(version: &str) -> Result<u64, AppError> {
    version
        .parse()
        .map_err(|_| AppError::new(StatusCode::BAD_REQUEST, format!("version {version:?} is not a number")))
}

/// What comes before `:predict`; other verbs are refused.
fn predict_target(target: &str) -> Result<&str, AppError> {
    match target.rsplit_once(':') {
        Some((head, "predict")) => Ok(head),
        Some((_, verb @ ("classify" | "regress"))) => Err(AppError::new(
            StatusCode::BAD_REQUEST,
            format!("the model has no {verb} signature; its one signature, {SIGNATURE}, answers :predict"),
        )),
        Some((_, verb)) => Err(AppError::new(
            StatusCode::NOT_FOUND,
            format!("unknown verb :{verb}; the model answers :predict"),
        )),
        None => Err(AppError::new(StatusCode::NOT_FOUND, format!("POST to {target}:predict to predict"))),
    }
}

/// A predict request read up to the model: the answer's field, the model, and the rows.
struct Asked {
    field: &'static str,
    model: Arc<Model>,
    rows: Vec<f64>,
}

/// The predictions of a request read as far as the model, or why it was refused (counted as a
/// failed call of the protocol).
fn answer(serving: &Serving, asked: Result<Asked, AppError>) -> Result<Json<Value>, AppError> {
    let Asked { field, model, rows } = asked.map_err(|error| serving.refused(Protocol::TfServing, error))?;
    let predicted = serving.predict(Protocol::TfServing, &model, &rows)?;
    let values: Vec<[f64; 1]> = predicted.values.into_iter().map(|value| [value]).collect();
    Ok(Json(json!({ field: values })))
}

async fn read_request(
    serving: &Serving,
    name: &str,
    version: Option<u64>,
    body: &[u8],
) -> Result<Asked, AppError> {
    check_name(serving, name)?;
    let bad = |message: String| AppError::new(StatusCode::BAD_REQUEST, message);
    let request: TfPredictRequest = serde_json::from_slice(body)
        .map_err(|error| bad(format!("the body is not a predict request: {error}")))?;
    if let Some(signature) = request.signature_name.as_deref().filter(|name| *name != SIGNATURE) {
        return Err(bad(format!("Serving signature name: {signature:?} not found in signature def")));
    }
    let model = serving.model(version).await?;
    let (field, rows) = match (request.instances, request.inputs) {
        (Some(instances), None) => ("predictions", instance_rows(&instances, &model)),
        (None, Some(inputs)) => ("outputs", input_rows(&inputs, &model)),
        _ => return Err(bad("the body needs exactly one of \"instances\" and \"inputs\"".into())),
    };
    Ok(Asked { field, rows: rows.map_err(bad)?, model })
}

/// The row format: each instance a row, or an object naming the input.
fn instance_rows(instances: &Value, model: &Model) -> Result<Vec<f64>, String> {
    let Value::Array(instances) = instances else {
        return Err(format!("\"instances\" must be a list, not {instances}"));
    };
    let mut flat = Vec::with_capacity(instances.len() * model.features().len());
    for (index, instance) in instances.iter().enumerate() {
        let row = match instance {
            Value::Object(named) => named_input(named)?,
            row => row,
        };
        push_row(&mut flat, row, model.features(), index)?;
    }
    Ok(flat)
}

/// The columnar format: the rows, or an object naming the input.
fn input_rows(inputs: &Value, model: &Model) -> Result<Vec<f64>, String> {
    let rows = match inputs {
        Value::Object(named) => named_input(named)?,
        rows => rows,
    };
    flat_rows(rows, model.features())
}

/// The value of the one input, `x`, in an object that names it.
fn named_input(named: &serde_json::Map<String, Value>) -> Result<&Value, String> {
    match (named.get(INPUT), named.len()) {
        (Some(value), 1) => Ok(value),
        _ => Err(format!("the model's one input is {INPUT:?}; got {:?}", named.keys().collect::<Vec<_>>())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_predict_is_a_verb() {
        assert_eq!(predict_target("regserve:predict").unwrap(), "regserve");
        assert_eq!(predict_target("3:predict").unwrap(), "3");
        assert_eq!(predict_target("regserve:classify").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert_eq!(predict_target("regserve:explain").unwrap_err().status(), StatusCode::NOT_FOUND);
        assert_eq!(predict_target("regserve").unwrap_err().status(), StatusCode::NOT_FOUND);
    }
}
