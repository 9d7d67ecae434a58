//! The inference request and its answer: the JSON header (and, with Triton's binary tensor
//! extension, the raw tensor bytes after it, `Inference-Header-Content-Length` saying where the
//! header ends) decoded into the flat rows the prediction service takes, every size checked
//! against the shape and datatype; and the predictions encoded as a JSON or a binary output.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tensor::{Datatype, Elements};
use crate::api::AppError;
use crate::api::budget::{Budget, Reservation};
use crate::model::Model;
use crate::serving::{Prediction, Protocol, Serving};

/// The name of the model's one input tensor, `[-1, features]`.
pub const INPUT: &str = "x";
/// The name of the model's one output tensor, `[-1, 1]` of FP64.
pub const OUTPUT: &str = "y";
/// The header that says how many bytes of the body are the JSON header.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// An inference request's JSON (header).
#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    /// Echoed in the answer.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: RequestParameters,
    inputs: Vec<InputTensor>,
    /// The outputs asked for; none means every output.
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RequestParameters {
    /// Whether outputs not listed in `outputs` are answered as binary data.
    #[serde(default)]
    binary_data_output: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InputTensor {
    name: String,
    /// `[rows, features]`, or `[rows]` for a model of one feature.
    shape: Vec<i64>,
    /// FP64, FP32, INT8..INT64 or UINT8..UINT64.
    datatype: String,
    #[serde(default)]
    parameters: InputParameters,
    /// The elements, flat or nested as the shape; absent when they are binary.
    #[schema(value_type = Option<Vec<f64>>)]
    data: Option<Elements>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InputParameters {
    /// The bytes of the tensor in the binary part of the body.
    binary_data_size: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: OutputParameters,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OutputParameters {
    /// Whether the output is answered as binary data.
    binary_data: Option<bool>,
}

/// The answer's JSON (header).
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    model_name: String,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<OutputTensor>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor {
    name: &'static str,
    datatype: &'static str,
    shape: [usize; 2],
    /// `binary_data_size` when the predictions follow the header as little-endian FP64.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BinaryParameters {
    binary_data_size: usize,
}

/// A decoded request: its rows, flat, and how the answer is wanted.
struct Inference {
    id: Option<String>,
    rows: Vec<f64>,
    binary_output: bool,
    /// The memory the rows and the answer hold.
    reservation: Reservation,
}

/// The length of the JSON header a binary body declares, if it declares one.
pub fn header_length(headers: &HeaderMap) -> Result<Option<usize>, AppError> {
    let Some(value) = headers.get(HEADER_LENGTH) else { return Ok(None) };
    let length = value.to_str().ok().and_then(|text| text.trim().parse().ok());
    length.map(Some).ok_or_else(|| {
        bad(format!("Inference-Header-Content-Length must be a number of bytes, not {:?}", value))
    })
}

/// Answers the inference request `body` with `model`, `header_length` bytes of it the JSON.
pub fn infer(
    serving: &Serving,
    model: &Model,
    budget: &Budget,
    body: &[u8],
    header_length: Option<usize>,
) -> Result<Response, AppError> {
    let inference = decode(body, header_length, model.features().len(), budget)
        .map_err(|error| serving.refused(Protocol::KServe, error))?;
    let prediction =
        serving.predict(Protocol::KServe, model, &inference.rows).map_err(super::protocol_error)?;
    let answer = encode(serving.name(), inference.id, inference.binary_output, prediction);
    Ok(inference.reservation.hold_until_sent(answer))
}

/// The rows of `body` for a model of `width` features.
fn decode(
    body: &[u8],
    header_length: Option<usize>,
    width: usize,
    budget: &Budget,
) -> Result<Inference, AppError> {
    let (header, binary) = split(body, header_length)?;
    let request = parse(header)?;
    let binary_output = binary_output(&request)?;
    let input = only_input(&request.inputs)?;
    let datatype =
        Datatype::parse(&input.datatype).map_err(|error| bad(format!("input {INPUT:?}: {error}")))?;
    let elements = element_count(&input.shape, width)?;
    let source = source(input, datatype, elements, binary)?;
    let reservation = budget.reserve(elements.saturating_mul(2 * size_of::<f64>()))?;
    let rows = match source {
        Source::Json(data) => {
            let values = data.numbers.iter().map(|number| datatype.value(*number));
            values.collect::<Result<_, _>>().map_err(|error| bad(format!("input {INPUT:?}: {error}")))?
        }
        Source::Binary(bytes) => datatype.decode(bytes),
    };
    Ok(Inference { id: request.id, rows, binary_output, reservation })
}

/// The JSON header and the binary part after it.
fn split(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), AppError> {
    match header_length {
        None => Ok((body, &[])),
        Some(length) if length > body.len() => Err(bad(format!(
            "Inference-Header-Content-Length is {length}, but the whole body is {} bytes",
            body.len()
        ))),
        Some(length) => Ok(body.split_at(length)),
    }
}

fn parse(header: &[u8]) -> Result<InferRequest, AppError> {
    let mut json = serde_json::Deserializer::from_slice(header);
    let request: InferRequest = serde_path_to_error::deserialize(&mut json)
        .map_err(|error| bad(format!("the inference request is not valid: {error}")))?;
    json.end().map_err(|error| bad(format!("the inference request is not valid: {error}")))?;
    Ok(request)
}

/// Whether the output is to be binary, as the one requested output or the request says.
fn binary_output(request: &InferRequest) -> Result<bool, AppError> {
    if let Some(unknown) = request.outputs.iter().find(|output| output.name != OUTPUT) {
        return Err(bad(format!("unknown output {:?}: the model's output is {OUTPUT:?}", unknown.name)));
    }
    Ok(match request.outputs.first() {
        Some(output) => output.parameters.binary_data.unwrap_or(false),
        None => request.parameters.binary_data_output,
    })
}

fn only_input(inputs: &[InputTensor]) -> Result<&InputTensor, AppError> {
    match inputs {
        [input] if input.name == INPUT => Ok(input),
        [input] => Err(bad(format!("unknown input {:?}: the model's input is {INPUT:?}", input.name))),
        _ => Err(bad(format!("the model takes one input, {INPUT:?}; the request has {}", inputs.len()))),
    }
}

/// The elements of a shape of rows of `width` features: `[rows, width]`, or `[rows]` for one.
fn element_count(shape: &[i64], width: usize) -> Result<usize, AppError> {
    let wanted = || match width {
        1 => "[rows, 1] or [rows]".to_owned(),
        width => format!("[rows, {width}]"),
    };
    let dims: Vec<usize> = match shape.iter().map(|&dim| usize::try_from(dim)).collect() {
        Ok(dims) => dims,
        Err(_) => {
            return Err(bad(format!("input {INPUT:?} has shape {shape:?}: dimensions cannot be negative")));
        }
    };
    let rows = match dims[..] {
        [rows, features] if features == width => rows,
        [rows] if width == 1 => rows,
        _ => return Err(bad(format!("input {INPUT:?} has shape {shape:?}; the model takes {}", wanted()))),
    };
    rows.checked_mul(width).ok_or_else(|| bad(format!("input {INPUT:?} has shape {shape:?}, too large")))
}

/// Where an input's elements are.
enum Source<'a> {
    Json(&'a Elements),
    Binary(&'a [u8]),
}

/// The input's elements, once their count and size are found to fit its shape and datatype and
/// the binary part of the body.
fn source<'a>(
    input: &'a InputTensor,
    datatype: Datatype,
    elements: usize,
    binary: &'a [u8],
) -> Result<Source<'a>, AppError> {
    let shape = &input.shape;
    match (&input.data, input.parameters.binary_data_size) {
        (Some(_), Some(_)) => Err(bad(format!("input {INPUT:?} has both `data` and `binary_data_size`"))),
        (None, None) => Err(bad(format!(
            "input {INPUT:?} has no data: give `data`, or `parameters.binary_data_size` with the bytes after the header"
        ))),
        (Some(_), None) if !binary.is_empty() => Err(bad(format!(
            "{} bytes follow the JSON header, but no input declares binary data",
            binary.len()
        ))),
        (Some(Elements { not_a_number: Some(element), .. }), None) => {
            Err(bad(format!("input {INPUT:?}: {element} is not a number, as {} needs", datatype.name())))
        }
        (Some(data), None) if data.numbers.len() != elements => Err(bad(format!(
            "input {INPUT:?} has {} elements of data, but its shape {shape:?} has {elements}",
            data.numbers.len()
        ))),
        (Some(data), None) => Ok(Source::Json(data)),
        (None, Some(declared)) => {
            let needed = elements.checked_mul(datatype.size()).and_then(|bytes| u64::try_from(bytes).ok());
            if needed != Some(declared) {
                let needed = needed.map_or("more than can be".to_owned(), |bytes| format!("{bytes}"));
                let datatype = datatype.name();
                return Err(bad(format!(
                    "input {INPUT:?} declares binary_data_size {declared}, \
                     but its shape {shape:?} of {datatype} is {needed} bytes"
                )));
            }
            match declared == binary.len() as u64 {
                true => Ok(Source::Binary(binary)),
                false => Err(bad(format!(
                    "input {INPUT:?} declares {declared} bytes of binary data, but {} bytes follow the JSON header \
                     (Inference-Header-Content-Length says where it ends)",
                    binary.len()
                ))),
            }
        }
    }
}

/// The answer: one FP64 output `[rows, 1]`, as JSON `data` or as bytes after the JSON.
fn encode(model_name: &str, id: Option<String>, binary: bool, prediction: Prediction) -> Response {
    let rows = prediction.values.len();
    let (parameters, data, bytes) = match binary {
        true => {
            let bytes: Vec<u8> = prediction.values.iter().flat_map(|value| value.to_le_bytes()).collect();
            (Some(BinaryParameters { binary_data_size: bytes.len() }), None, bytes)
        }
        false => (None, Some(prediction.values), Vec::new()),
    };
    let output = OutputTensor { name: OUTPUT, datatype: "FP64", shape: [rows, 1], parameters, data };
    let answer = InferResponse {
        model_name: model_name.to_owned(),
        model_version: prediction.version.to_string(),
        id,
        outputs: vec![output],
    };
    let mut body = serde_json::to_vec(&answer).expect("an answer serializes");
    if !binary {
        return ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
            .into_response();
    }
    let header_length = HeaderValue::from(body.len());
    body.extend_from_slice(&bytes);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
        (header::HeaderName::from_static(HEADER_LENGTH), header_length),
    ];
    (headers, body).into_response()
}

/// A request the protocol calls bad: 400.
fn bad(message: String) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, message)
}
