//! MLflow's scoring protocol, as `mlflow models serve` answers it: `POST /invocations` with a
//! JSON body (`dataframe_split`, `dataframe_records`, `instances` or `inputs`) or a CSV with a
//! header row, answering `{"predictions": [y1, y2, ...]}`; `GET /ping` and `GET /health` (200
//! when a model is served, 404 as MLflow's server answers without one) and `GET /version`.
//! Named columns are matched to the model's features by name (extra ones are ignored, as
//! MLflow's schema enforcement does); `instances` and `inputs` rows are positional. Errors are
//! MLflow's `{"error_code": "...", "message": "..."}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::serve_status;
use super::rows::flat_rows;
use crate::model::Model;
use crate::serving::{Protocol, ServeError};
use crate::state::AppState;

const CONTENT_TYPE_JSON: &str = "application/json";
const CONTENT_TYPE_CSV: &str = "text/csv";
/// The probes' and `/version`'s bodies are not JSON, though MLflow's server labels them so;
/// they are labelled as what they are, which clients (that read only the status) do not mind.
const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf-8";
/// The JSON fields one of which a request has, as MLflow lists them.
const INPUT_FIELDS: &str = "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";

/// An error as MLflow's scoring server words it.
#[derive(Debug)]
pub struct MlflowError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl MlflowError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }
}

impl From<ServeError> for MlflowError {
    /// A model that cannot predict the rows is MLflow's 400; the rest keep their status.
    fn from(error: ServeError) -> Self {
        let status = match error {
            ServeError::Shape { .. } | ServeError::Predict(_) => StatusCode::BAD_REQUEST,
            ref other => serve_status(other),
        };
        let code = match status {
            StatusCode::BAD_REQUEST => "BAD_REQUEST",
            StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
            StatusCode::CONFLICT => "RESOURCE_CONFLICT",
            StatusCode::SERVICE_UNAVAILABLE => "TEMPORARILY_UNAVAILABLE",
            _ => "INTERNAL_ERROR",
        };
        Self { status, code, message: error.to_string() }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error_code": self.code, "message": self.message }))).into_response()
    }
}

/// `GET /ping`: whether a model is served, with MLflow's `"\n"` body.
#[utoipa::path(get, path = "/ping",
    responses((status = 200, description = "a model is served: a newline", body = String, content_type = "text/plain"), (status = 404, description = "no model is served", body = String, content_type = "text/plain")),
    tag = "mlflow")]
pub async fn ping(State(state): State<AppState>) -> Response {
    let status = match state.serving().active() {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::NOT_FOUND,
    };
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE_TEXT)], "\n").into_response()
}

/// `GET /health`: the same as `GET /ping`, under the other name MLflow's server answers to.
#[utoipa::path(get, path = "/health",
    responses((status = 200, description = "a model is served: a newline", body = String, content_type = "text/plain"), (status = 404, description = "no model is served", body = String, content_type = "text/plain")),
    tag = "mlflow")]
pub async fn health(state: State<AppState>) -> Response {
    ping(state).await
}

/// `GET /version`: the server's version, a bare string as MLflow's server answers its own.
#[utoipa::path(get, path = "/version", responses((status = 200, description = "regserve's version", body = String, content_type = "text/plain")), tag = "mlflow")]
pub async fn version() -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE_TEXT)], env!("CARGO_PKG_VERSION")).into_response()
}

/// `POST /invocations`: predictions by the served model.
#[utoipa::path(post, path = "/invocations",
    request_body(description = "dataframe_split, dataframe_records, instances or inputs; or a CSV with a header row",
        content((Object = "application/json"), (String = "text/csv"))),
    responses((status = 200, description = "`{\"predictions\": [y1, ...]}`", body = Object),
        (status = 400, description = "a malformed body, or a feature missing", body = Object),
        (status = 409, description = "nothing trained yet", body = Object),
        (status = 415, description = "neither JSON nor CSV", body = String),
        (status = 503, description = "the active version cannot be read", body = Object)),
    tag = "mlflow")]
pub async fn invocations(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let serving = state.serving();
    let rows = match essence.as_str() {
        CONTENT_TYPE_JSON => json_rows as fn(&[u8], &Model) -> Result<Vec<f64>, MlflowError>,
        CONTENT_TYPE_CSV => csv_rows,
        _ => return serving.refused(Protocol::Mlflow, unsupported(content_type)),
    };
    let predicted = serving
        .active()
        .map_err(MlflowError::from)
        .and_then(|model| Ok((rows(&body, &model)?, model)))
        .map_err(|error| serving.refused(Protocol::Mlflow, error))
        .and_then(|(rows, model)| Ok(serving.predict(Protocol::Mlflow, &model, &rows)?));
    match predicted {
        Ok(predicted) => Json(json!({ "predictions": predicted.values })).into_response(),
        Err(error) => error.into_response(),
    }
}

/// MLflow's 415, in its words, as text.
fn unsupported(content_type: &str) -> Response {
    let message = format!(
        "This predictor only supports the following content types: Types: ['{CONTENT_TYPE_CSV}', '{CONTENT_TYPE_JSON}']. Got '{content_type}'."
    );
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, [(header::CONTENT_TYPE, CONTENT_TYPE_TEXT)], message).into_response()
}

/// The rows of a JSON request, laid flat in the model's feature order.
fn json_rows(body: &[u8], model: &Model) -> Result<Vec<f64>, MlflowError> {
    let invalid =
        || MlflowError::bad_request("Invalid input. Ensure that input is a valid JSON formatted string.");
    let Value::Object(mut request) = serde_json::from_slice(body).map_err(|_| invalid())? else {
        return Err(invalid());
    };
    request.remove("params");
    let fields: Vec<&String> = request.keys().collect();
    let (field, input) = match request.iter().next() {
        Some((field, input)) if fields.len() == 1 => (field.as_str(), input),
        _ => {
            return Err(MlflowError::bad_request(format!(
                "Invalid input. The input must be a JSON dictionary with exactly one of the input fields {INPUT_FIELDS}. Received dictionary with input fields: {fields:?}."
            )));
        }
    };
    match field {
        "dataframe_split" => split_rows(input, model),
        "dataframe_records" => record_rows(input, model),
        "instances" | "inputs" => flat_rows(input, model.features()).map_err(MlflowError::bad_request),
        _ => Err(MlflowError::bad_request(format!(
            "Invalid input. The input must be a JSON dictionary with exactly one of the input fields {INPUT_FIELDS}. Received dictionary with input fields: {fields:?}."
        ))),
    }
}

/// `{"columns": [...], "data": [[...]]}`: columns matched by name, or positional without them.
fn split_rows(split: &Value, model: &Model) -> Result<Vec<f64>, MlflowError> {
    let data =
        split.get("data").ok_or_else(|| MlflowError::bad_request("dataframe_split has no \"data\""))?;
    let Some(columns) = split.get("columns") else {
        return flat_rows(data, model.features()).map_err(MlflowError::bad_request);
    };
    let columns: Vec<&str> =
        columns.as_array().and_then(|names| names.iter().map(Value::as_str).collect()).ok_or_else(|| {
            MlflowError::bad_request("dataframe_split's \"columns\" must be a list of names")
        })?;
    let positions = feature_positions(&columns, model)?;
    let rows = data
        .as_array()
        .ok_or_else(|| MlflowError::bad_request("dataframe_split's \"data\" must be a list of rows"))?;
    let mut flat = Vec::with_capacity(rows.len() * positions.len());
    for (index, row) in rows.iter().enumerate() {
        let row = row.as_array().filter(|row| row.len() == columns.len()).ok_or_else(|| {
            MlflowError::bad_request(format!("row {index} is not a list of {} values", columns.len()))
        })?;
        for &position in &positions {
            flat.push(cell(&row[position], index, columns[position])?);
        }
    }
    Ok(flat)
}

/// `[{"col": v}, ...]`: every record names every feature.
fn record_rows(records: &Value, model: &Model) -> Result<Vec<f64>, MlflowError> {
    let records =
        records.as_array().ok_or_else(|| MlflowError::bad_request("dataframe_records must be a list"))?;
    let mut flat = Vec::with_capacity(records.len() * model.features().len());
    for (index, record) in records.iter().enumerate() {
        let record: &Map<String, Value> = record
            .as_object()
            .ok_or_else(|| MlflowError::bad_request(format!("record {index} is not an object")))?;
        let names: Vec<&str> = record.keys().map(String::as_str).collect();
        feature_positions(&names, model)?;
        for feature in model.features() {
            flat.push(cell(&record[feature], index, feature)?);
        }
    }
    Ok(flat)
}

/// A CSV with a header row, as pandas writes it; a column without a name (pandas's index) or
/// not among the features is ignored.
fn csv_rows(body: &[u8], model: &Model) -> Result<Vec<f64>, MlflowError> {
    let bad_csv =
        |error: csv::Error| MlflowError::bad_request(format!("Failed to parse input as a CSV: {error}"));
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(body);
    let columns: Vec<String> = reader.headers().map_err(bad_csv)?.iter().map(str::to_owned).collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let positions = feature_positions(&names, model)?;
    let mut flat = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(bad_csv)?;
        for &position in &positions {
            let text = &record[position];
            let value = text.parse().map_err(|_| {
                MlflowError::bad_request(format!(
                    "row {index}, column {:?}: {text:?} is not a number",
                    names[position]
                ))
            })?;
            flat.push(value);
        }
    }
    Ok(flat)
}

/// Where each of the model's features is among `columns`; a missing one is named, as MLflow's
/// schema enforcement names it.
fn feature_positions(columns: &[&str], model: &Model) -> Result<Vec<usize>, MlflowError> {
    let position = |feature: &String| columns.iter().position(|column| column == feature);
    let missing: Vec<&String> =
        model.features().iter().filter(|feature| position(feature).is_none()).collect();
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(|name| format!("'{name}'")).collect();
        return Err(MlflowError::bad_request(format!(
            "Failed to enforce schema of data: Model is missing inputs [{}].",
            missing.join(", ")
        )));
    }
    Ok(model.features().iter().filter_map(position).collect())
}

/// One value of a named column.
fn cell(value: &Value, row: usize, column: &str) -> Result<f64, MlflowError> {
    value.as_f64().ok_or_else(|| {
        MlflowError::bad_request(format!("row {row}, column {column:?}: {value} is not a number"))
    })
}
