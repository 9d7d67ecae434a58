//! What a caller asks to train ([`TrainRequest`]) and the one reader of its JSON form, the body of
//! `/train` that a retraining trigger also stores as its training spec: `features`, `target`,
//! `rows`, `warm_start` and `gate` are about the job, every other field is a solver setting.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::datasets::RowChoice;
use crate::train::FitSettings;

/// Every field a training spec may hold.
const FIELDS: [&str; 16] = [
    "features",
    "rows",
    "target",
    "solver",
    "warm_start",
    "gate",
    "epochs",
    "batch_size",
    "learning_rate",
    "beta_1",
    "beta_2",
    "epsilon",
    "shuffle",
    "seed",
    "initial",
    "patience",
];

/// What a caller asks to train: columns (defaults from the dataset), solver settings, which
/// rows, whether to start from the current model's weights, and whether the quality gate decides
/// if the model goes into service.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    pub features: Option<Vec<String>>,
    pub target: Option<String>,
    pub settings: FitSettings,
    pub warm_start: bool,
    /// Which of the dataset's rows to train on.
    pub rows: RowChoice,
    /// Activate the model only if it passes the quality gate (see [`super::gate`]).
    pub gate: bool,
    /// Who asked.
    pub origin: Origin,
}

/// Who started a training.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `/train` or the page.
    #[default]
    Manual,
    /// A retraining trigger; a scheduled one says when it was due.
    Trigger {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        scheduled_for: Option<String>,
    },
}

impl TrainRequest {
    /// Reads a training spec; an empty object trains with the original's defaults. The error
    /// names the field.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(mut fields) = value else {
            return Err("the body must be a JSON object such as {\"epochs\": 1000}".into());
        };
        if let Some(unknown) = fields.keys().find(|name| !FIELDS.contains(&name.as_str())) {
            return Err(format!(
                "unknown field `{}`; the fields are {}",
                crate::data::excerpt(unknown),
                FIELDS.join(", ")
            ));
        }
        let features = take_field(&mut fields, "features")?;
        let target = take_field(&mut fields, "target")?;
        let warm_start = take_field(&mut fields, "warm_start")?.unwrap_or(false);
        let gate = take_field(&mut fields, "gate")?.unwrap_or(false);
        let rows = match fields.remove("rows") {
            None | Some(Value::Null) => RowChoice::All,
            Some(value) => row_choice(&value)?,
        };
        let settings: FitSettings =
            serde_path_to_error::deserialize(Value::Object(fields)).map_err(|error| error.to_string())?;
        Ok(Self { features, target, settings, warm_start, rows, gate, origin: Origin::Manual })
    }
}

fn take_field<T: serde::de::DeserializeOwned>(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<T>, String> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|error| format!("{name}: {error}")),
    }
}

/// `"all"`, `"new"`, `{"last": N}` or `{"since": "RFC 3339 time"}`.
fn row_choice(value: &Value) -> Result<RowChoice, String> {
    let expected = || r#"rows: "all", "new", {"last": N} or {"since": "2026-12-01T00:00:00Z"}"#.to_owned();
    match value {
        Value::String(text) if text == "all" => Ok(RowChoice::All),
        Value::String(text) if text == "new" => Ok(RowChoice::New),
        Value::Object(choice) if choice.len() == 1 => match choice.iter().next().expect("one entry") {
            (name, Value::Number(n)) if name == "last" => match n.as_u64() {
                Some(last) if last > 0 => Ok(RowChoice::Last(last)),
                _ => Err("rows.last: a whole number of rows, at least 1".into()),
            },
            (name, Value::String(time)) if name == "since" => {
                let time = crate::units::parse_rfc3339(time)
                    .map_err(|error| format!("rows.since: not an RFC 3339 time: {error}"))?;
                Ok(RowChoice::Since(crate::units::millis(time)))
            }
            _ => Err(expected()),
        },
        _ => Err(expected()),
    }
}
