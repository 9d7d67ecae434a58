//! The model file: the one reader and writer of the JSON in which a stored version, a model
//! written by `regserve train --output` and the version routes hold a model. Both directions check
//! it: a model with a number JSON cannot hold (an infinity becomes `null`) is never written, and a
//! file that is not a consistent, finite model is never read as one.

use super::Model;

/// Why bytes are not a model file, or a model cannot be written as one.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("not a model file: {0}")]
    Malformed(String),
    #[error("not a consistent model file: {0}")]
    Inconsistent(String),
    #[error("{0} is not a finite number, which a model file cannot hold")]
    NotFinite(&'static str),
}

/// The model as file contents: compact, or indented for people.
pub fn to_json(model: &Model, pretty: bool) -> Result<Vec<u8>, ModelFileError> {
    if let Some(quantity) = model.non_finite() {
        return Err(ModelFileError::NotFinite(quantity));
    }
    let json = match pretty {
        true => serde_json::to_vec_pretty(model),
        false => serde_json::to_vec(model),
    };
    Ok(json.expect("a model serialises"))
}

/// Reads and checks file contents: the JSON of a model (the field at fault named where serde
/// can), one weight per feature, and finite numbers throughout.
pub fn from_json(bytes: &[u8]) -> Result<Model, ModelFileError> {
    let model: Model = serde_json::from_slice(bytes).map_err(|error| malformed(bytes, error))?;
    let (weights, features) = (model.weights().kernel().len(), model.features().len());
    if weights != features {
        let message = format!("{weights} kernel weights for {features} features");
        return Err(ModelFileError::Inconsistent(message));
    }
    match model.non_finite() {
        Some(quantity) => Err(ModelFileError::NotFinite(quantity)),
        None => Ok(model),
    }
}

/// The reason a file is not a model, with the path of the field at fault. A model's fields are
/// flattened around its history, which hides paths from serde, so the parts are read again
/// alone to find it.
fn malformed(bytes: &[u8], error: serde_json::Error) -> ModelFileError {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct HistoryAlone {
        history: super::History,
    }
    let with_path = |found: Result<(), serde_path_to_error::Error<serde_json::Error>>| found.err();
    let fit = with_path(
        serde_path_to_error::deserialize::<_, super::Fit>(&mut serde_json::Deserializer::from_slice(bytes))
            .map(drop),
    );
    let history = || {
        with_path(
            serde_path_to_error::deserialize::<_, HistoryAlone>(&mut serde_json::Deserializer::from_slice(
                bytes,
            ))
            .map(drop),
        )
    };
    let reason = fit.or_else(history).map_or_else(|| error.to_string(), |located| located.to_string());
    ModelFileError::Malformed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::default_dataset;
    use crate::model::TrainSpec;
    use crate::train::{FitSettings, Solver};

    fn model() -> Model {
        let dataset = default_dataset();
        let selection = dataset.default_selection().clone();
        let settings = FitSettings { solver: Some(Solver::LeastSquares), ..Default::default() };
        let params = settings.validate(1).unwrap();
        let spec = TrainSpec { selection, params, warm_start: None, job: 1 };
        Model::train(&dataset, spec, &mut |_, _| std::ops::ControlFlow::Continue(())).unwrap()
    }

    #[test]
    fn a_model_round_trips_through_its_file() {
        let model = model().with_version(3);
        let json = to_json(&model, false).unwrap();
        let back = from_json(&json).unwrap();
        assert_eq!(to_json(&back, false).unwrap(), json);
        assert_eq!(from_json(&to_json(&model, true).unwrap()).unwrap().version(), 3);
    }

    #[test]
    fn files_that_are_not_finite_consistent_models_are_refused_with_the_reason() {
        let json: serde_json::Value = serde_json::from_slice(&to_json(&model(), false).unwrap()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut json = json.clone();
            json[field] = value;
            from_json(json.to_string().as_bytes()).unwrap_err().to_string()
        };
        // The weights are flattened into the model, so serde names no path for them.
        let message = with("kernel", serde_json::json!([null]));
        assert!(message.starts_with("not a model file: invalid type: null, expected f64"), "{message}");
        let message = with("features", serde_json::json!("x"));
        assert!(message.starts_with("not a model file: features: invalid type"), "{message}");
        let message = with("history", serde_json::json!({ "loss": [1, "x"] }));
        assert!(message.starts_with("not a model file: history.loss[1]: invalid type"), "{message}");
        assert_eq!(
            with("kernel", serde_json::json!([1.0, 2.0])),
            "not a consistent model file: 2 kernel weights for 1 features"
        );
        assert!(from_json(b"{\"version\": 1").unwrap_err().to_string().starts_with("not a model file"));
        // 1e999 is read as infinity by a JSON parser that accepts it; either way it is refused.
        let huge = json.to_string().replacen("\"mse\":", "\"mse\":1e999,\"_\":", 1);
        assert!(from_json(huge.as_bytes()).is_err());
    }
}
