//! The message format of the prediction streams (the WebSocket `/v1/predict/ws` and the MQTT
//! predict topics): one fact, decoded and encoded here for both adapters.
//!
//! - JSON: `{"id": ANY, "x": [[...], ...]}` (rows of features) or `{"id": ANY, "x_predict": [...]}`
//!   (each element a number or a list, as the original `/predict` takes); `id` is optional and
//!   echoed as given. Answered `{"id": ..., "y": [...], "version": V}`, or
//!   `{"id": ..., "error": "..."}` (`id` when it could be read).
//! - Binary: little-endian f64 values, row after row, answered by one little-endian f64
//!   prediction per row, in order.
//!
//! Each message is answered with the model active when it is read, so a model activated
//! mid-stream answers the next message.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::error::Category;

use super::{Prediction, Protocol, Serving};
use crate::model::Model;

/// What a message is answered with: text (JSON) or binary predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(String),
    Binary(Vec<u8>),
}

/// Answers a JSON message.
pub fn answer_json(serving: &Serving, protocol: Protocol, message: &[u8]) -> String {
    let request = match decode_json(message) {
        Ok(request) => request,
        Err((id, error)) => {
            let error = serving.refused(protocol, error);
            return error_json(id.or_else(|| id_of(message)).as_ref(), &error);
        }
    };
    let (id, width, values) = (request.id, request.width, request.values);
    let predicted =
        predict_active(serving, protocol, |model| check_width(width, model.features()).map(|()| values));
    match predicted {
        Ok(prediction) => encode_json(id.as_ref(), &prediction.values, prediction.version),
        Err(error) => error_json(id.as_ref(), &error),
    }
}

/// Answers a binary message: binary predictions, or a JSON error.
pub fn answer_binary(serving: &Serving, protocol: Protocol, message: &[u8]) -> Answer {
    let predicted = predict_active(serving, protocol, |model| decode_binary(message, model.features().len()));
    match predicted {
        Ok(prediction) => Answer::Binary(encode_binary(&prediction.values)),
        Err(error) => Answer::Text(error_json(None, &error)),
    }
}

/// Predicts, with the model active now, the rows `rows` reads for it; a message refused before
/// it reaches the model counts as a failed call too.
fn predict_active(
    serving: &Serving,
    protocol: Protocol,
    rows: impl FnOnce(&Model) -> Result<Vec<f64>, String>,
) -> Result<Prediction, String> {
    let read =
        serving.active().map_err(|error| error.to_string()).and_then(|model| Ok((rows(&model)?, model)));
    match read {
        Ok((values, model)) => serving.predict(protocol, &model, &values).map_err(|error| error.to_string()),
        Err(error) => Err(serving.refused(protocol, error)),
    }
}

/// Answers a message whose kind its bytes tell (MQTT has no frame types): JSON when it is an
/// object (starts with `{` and ends with `}`, around whitespace), binary otherwise. No
/// realistic binary message is taken for JSON: its last byte would be the sign and exponent
/// of a value above 1e290.
pub fn answer_payload(serving: &Serving, protocol: Protocol, message: &[u8]) -> Answer {
    let trimmed = message.trim_ascii();
    match trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
        true => Answer::Text(answer_json(serving, protocol, message)),
        false => answer_binary(serving, protocol, message),
    }
}

/// A decoded JSON request: its id, its rows flat, and their common width.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRequest {
    pub id: Option<Value>,
    pub values: Vec<f64>,
    /// Values per row; `None` when there are no rows.
    pub width: Option<usize>,
}

/// Decodes `{"id": ..., "x": [[...]]}` or `{"id": ..., "x_predict": [...]}`; a refusal comes
/// with the id, when it was read before what is wrong.
pub fn decode_json(message: &[u8]) -> Result<JsonRequest, (Option<Value>, String)> {
    let mut json = serde_json::Deserializer::from_slice(message);
    let mut request = JsonRequest { id: None, values: Vec::new(), width: None };
    let decoded = json.deserialize_map(RequestVisitor(&mut request)).and_then(|()| json.end());
    match decoded {
        Ok(()) => Ok(request),
        Err(error) => Err((request.id, described(&error))),
    }
}

/// serde's message, said to be about the bytes when they are not JSON at all (a reader of
/// `expected value at line 1 column 1` should not have to guess that).
fn described(error: &serde_json::Error) -> String {
    match error.classify() {
        Category::Syntax | Category::Eof => format!("the message is not valid JSON: {error}"),
        Category::Data | Category::Io => error.to_string(),
    }
}

/// Decodes little-endian f64 values that make whole rows of `width`.
pub fn decode_binary(message: &[u8], width: usize) -> Result<Vec<f64>, String> {
    let row_bytes = width * size_of::<f64>();
    if row_bytes == 0 || !message.len().is_multiple_of(row_bytes) {
        return Err(format!(
            "a binary message is rows of {width} little-endian f64 values ({row_bytes} bytes a row); {} bytes are not whole rows",
            message.len()
        ));
    }
    let values = message.chunks_exact(size_of::<f64>());
    Ok(values.map(|bytes| f64::from_le_bytes(bytes.try_into().expect("chunks of 8 bytes"))).collect())
}

/// Predictions as little-endian f64 values, written into one buffer.
pub fn encode_binary(values: &[f64]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size_of_val(values));
    for value in values {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// `{"id": ..., "y": [...], "version": V}`, without `id` when the request had none.
pub fn encode_json(id: Option<&Value>, values: &[f64], version: u64) -> String {
    let mut text = Vec::with_capacity(values.len() * 20 + 64);
    text.push(b'{');
    if let Some(id) = id {
        text.extend_from_slice(b"\"id\":");
        serde_json::to_writer(&mut text, id).expect("writing to a Vec succeeds");
        text.push(b',');
    }
    text.extend_from_slice(b"\"y\":[");
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, value).expect("writing to a Vec succeeds");
    }
    text.extend_from_slice(format!("],\"version\":{version}}}").as_bytes());
    String::from_utf8(text).expect("serde_json writes UTF-8")
}

/// `{"id": ..., "error": "..."}`, without `id` when it is unknown.
pub fn error_json(id: Option<&Value>, error: &str) -> String {
    match id {
        Some(id) => serde_json::json!({"id": id, "error": error}),
        None => serde_json::json!({"error": error}),
    }
    .to_string()
}

/// The `id` of a message that did not decode as a request, if it has one.
fn id_of(message: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(message).ok()?.get_mut("id").map(Value::take)
}

/// Refuses rows whose width is not the model's (flat values alone could divide evenly).
fn check_width(width: Option<usize>, features: &[String]) -> Result<(), String> {
    match width {
        Some(width) if width != features.len() => Err(format!(
            "rows have {width} values; the model takes {} feature(s) ({})",
            features.len(),
            features.join(", ")
        )),
        _ => Ok(()),
    }
}

/// The request object, read into a request: `id`, and exactly one of `x` (lists) and
/// `x_predict` (numbers or lists).
struct RequestVisitor<'a>(&'a mut JsonRequest);

impl<'de> Visitor<'de> for RequestVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"id\": ..., \"x\": [[...], ...]} or {\"id\": ..., \"x_predict\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let request = self.0;
        let mut rows_read: Option<&'static str> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let lists_only = match &*key {
                "id" => {
                    request.id = Some(map.next_value()?);
                    continue;
                }
                "x" => true,
                "x_predict" => false,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(first) = rows_read {
                return Err(de::Error::custom(format!(
                    "give the rows once, as \"x\" or \"x_predict\", not as {first} and {key}"
                )));
            }
            rows_read = Some(if lists_only { "x" } else { "x_predict" });
            map.next_value_seed(Rows { request: &mut *request, lists_only })?;
        }
        match rows_read {
            Some(_) => Ok(()),
            None => Err(de::Error::custom(
                "the message has no rows: send {\"x\": [[...], ...]} or {\"x_predict\": [...]}",
            )),
        }
    }
}

/// A list of rows, appended flat to the request; every row as wide as the first.
struct Rows<'a> {
    request: &'a mut JsonRequest,
    /// Whether each row must be a list (`x`), or may be a bare number (`x_predict`).
    lists_only: bool,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = 0;
        loop {
            let before = self.request.values.len();
            let seed = Row { values: &mut self.request.values, lists_only: self.lists_only };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            let width = self.request.values.len() - before;
            match self.request.width {
                None => self.request.width = Some(width),
                Some(first) if first != width => {
                    return Err(de::Error::custom(format!(
                        "row {row} has {width} values; row 0 has {first}"
                    )));
                }
                Some(_) => {}
            }
            row += 1;
        }
    }
}

/// One row, appended to `values`: a list of numbers, or a bare number unless `lists_only`. The
/// one reader of a JSON row, for the stream messages and the original's `/predict` alike.
pub struct Row<'a> {
    pub values: &'a mut Vec<f64>,
    pub lists_only: bool,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.lists_only {
            true => deserializer.deserialize_seq(self),
            false => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.lists_only {
            true => f.write_str("a row: a list of numbers"),
            false => f.write_str("a number or a list of numbers"),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        if self.lists_only {
            return Err(de::Error::invalid_type(de::Unexpected::Float(value), &self));
        }
        self.values.push(value);
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.visit_f64(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.visit_f64(value as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<f64>()? {
            self.values.push(value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
