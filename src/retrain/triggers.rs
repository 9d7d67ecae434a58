//! The trigger set as operators write it (`PUT /v1/triggers`, the `--retrain-*` flags) and as it
//! is stored: each trigger has a name, one condition (`rows`, `every`, `cron` or `webhook`) and a
//! training spec, the body `/train` takes. Reading a set checks all of it and names the field of
//! the first problem, so a bad set is refused whole.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cron::Cron;
use crate::settings::RetrainSettings;
use crate::training::TrainRequest;

/// The most triggers a set holds.
const MAX_TRIGGERS: usize = 32;

/// When a trigger fires.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// When this many rows have arrived since the last training.
    Rows(u64),
    /// At this interval.
    Every(Duration),
    /// On this schedule (UTC).
    Cron(Cron),
    /// When `POST /v1/triggers/webhook` is called (an upstream job has finished).
    Webhook,
}

/// One trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub when: When,
    /// The trigger as written, to show and store.
    pub written: Value,
    /// The spec read: the gate is on unless the spec turns it off.
    pub request: TrainRequest,
}

/// The triggers in force.
#[derive(Debug, Clone, Default)]
pub struct TriggerSet {
    pub triggers: Vec<Trigger>,
}

impl TriggerSet {
    /// Reads `{"triggers": [...]}`.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(mut fields) = value else {
            return Err(r#"the body must be a JSON object: {"triggers": [...]}"#.into());
        };
        if let Some(unknown) = fields.keys().find(|name| *name != "triggers") {
            return Err(format!(
                "unknown field `{}`; the only field is triggers",
                crate::data::excerpt(unknown)
            ));
        }
        let Some(Value::Array(items)) = fields.remove("triggers") else {
            return Err("triggers: a list of triggers is required".into());
        };
        if items.len() > MAX_TRIGGERS {
            return Err(format!("triggers: {} triggers; at most {MAX_TRIGGERS} are allowed", items.len()));
        }
        let mut triggers: Vec<Trigger> = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let trigger = Trigger::from_json(item).map_err(|error| format!("triggers[{index}].{error}"))?;
            if triggers.iter().any(|other| other.name == trigger.name) {
                return Err(format!(
                    "triggers[{index}].name: {:?} is the name of an earlier trigger",
                    trigger.name
                ));
            }
            triggers.push(trigger);
        }
        Ok(Self { triggers })
    }

    pub fn to_json(&self) -> Value {
        json!({ "triggers": self.triggers.iter().map(Trigger::to_json).collect::<Vec<_>>() })
    }

    /// The triggers the `--retrain-*` flags name, with the webhook; `None` without such flags.
    pub fn from_flags(flags: &RetrainSettings) -> Result<Option<Self>, String> {
        let train: Value = match &flags.spec {
            Some(spec) => {
                serde_json::from_str(spec).map_err(|error| format!("--retrain-spec is not JSON: {error}"))?
            }
            None => json!({}),
        };
        let conditions = [
            flags.after_rows.map(|rows| ("rows", json!(rows))),
            flags.every.map(|every| ("every", json!(crate::units::short_duration(every)))),
            flags.cron.as_ref().map(|cron| ("cron", json!(cron))),
        ];
        let mut triggers: Vec<Value> = conditions
            .into_iter()
            .flatten()
            .map(|(name, condition)| json!({"name": name, name: condition, "train": train}))
            .collect();
        if triggers.is_empty() {
            return Ok(None);
        }
        triggers.push(json!({"name": "webhook", "webhook": true, "train": train}));
        Self::from_json(json!({ "triggers": triggers }))
            .map(Some)
            .map_err(|error| format!("--retrain-*: {error}"))
    }

    /// The set of a server started without one: the webhook alone, named `webhook`.
    pub fn webhook_only() -> Self {
        Self::from_json(json!({"triggers": [{"name": "webhook", "webhook": true}]})).expect("a valid set")
    }

    pub fn get(&self, name: &str) -> Option<&Trigger> {
        self.triggers.iter().find(|trigger| trigger.name == name)
    }
}

impl Trigger {
    /// Reads one trigger; the error starts with the field's name.
    fn from_json(value: Value) -> Result<Self, String> {
        let written = value.clone();
        let Value::Object(mut fields) = value else {
            return Err(r#"name: each trigger is an object such as {"name": "hourly", "every": "1h"}"#.into());
        };
        let name = match fields.remove("name") {
            Some(Value::String(name)) => check_name(name)?,
            _ => return Err("name: a name is required".into()),
        };
        let train = match fields.remove("train") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(train)) => train,
            Some(_) => return Err("train: a training spec is a JSON object, the body /train takes".into()),
        };
        let request = training_spec(Value::Object(train)).map_err(|error| format!("train: {error}"))?;
        let conditions: Vec<(String, Value)> = fields.into_iter().collect();
        let when = match conditions.as_slice() {
            [(field, value)] => condition(field, value)?,
            [] => return Err("when: one of rows, every, cron or webhook is required".into()),
            [_, (field, _), ..] => {
                return Err(format!("{field}: a trigger has one condition (rows, every, cron or webhook)"));
            }
        };
        Ok(Self { name, when, written, request })
    }

    fn to_json(&self) -> Value {
        self.written.clone()
    }
}

/// A trigger's training spec: the body `/train` takes, with the gate on unless it says
/// `"gate": false`.
pub fn training_spec(spec: Value) -> Result<TrainRequest, String> {
    let explicit = spec.get("gate").and_then(Value::as_bool);
    let mut request = TrainRequest::from_json(spec)?;
    request.gate = explicit.unwrap_or(true);
    Ok(request)
}

fn check_name(name: String) -> Result<String, String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fine) {
        return Err(format!(
            "name: {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
            crate::data::excerpt(&name)
        ));
    }
    Ok(name)
}

/// The trigger's one condition.
fn condition(field: &str, value: &Value) -> Result<When, String> {
    match (field, value) {
        ("rows", Value::Number(rows)) => match rows.as_u64() {
            Some(rows) if rows > 0 => Ok(When::Rows(rows)),
            _ => Err("rows: a whole number of rows, at least 1".into()),
        },
        ("rows", _) => Err("rows: a whole number of rows, at least 1".into()),
        ("every", Value::String(text)) => {
            crate::units::parse_duration(text).map(When::Every).map_err(|e| format!("every: {e}"))
        }
        ("every", _) => Err(r#"every: a duration such as "30s" or "1h""#.into()),
        ("cron", Value::String(text)) => text.parse().map(When::Cron).map_err(|e| format!("cron: {e}")),
        ("cron", _) => Err(r#"cron: a cron expression such as "0 3 * * *" (UTC)"#.into()),
        ("webhook", Value::Bool(true)) => Ok(When::Webhook),
        ("webhook", _) => Err("webhook: true".into()),
        (other, _) => Err(format!(
            "{}: unknown field; a trigger has name, train and one of rows, every, cron or webhook",
            crate::data::excerpt(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(value: Value) -> String {
        TriggerSet::from_json(value).expect_err("refused")
    }

    #[test]
    fn a_set_reads_back_as_written() {
        let written = json!({"triggers": [
            {"name": "enough", "rows": 500, "train": {"solver": "least-squares", "rows": "new"}},
            {"name": "hourly", "every": "1h", "train": {}},
            {"name": "nightly", "cron": "0 3 * * *", "train": {"gate": false}},
            {"name": "etl", "webhook": true, "train": {}},
        ]});
        let set = TriggerSet::from_json(written.clone()).unwrap();
        assert_eq!(set.to_json(), written);
        assert_eq!(set.get("enough").unwrap().when, When::Rows(500));
        assert_eq!(set.get("hourly").unwrap().when, When::Every(Duration::from_secs(3600)));
        assert!(set.get("etl").unwrap().request.gate, "a trigger's training is gated by default");
        assert!(!set.get("nightly").unwrap().request.gate);
    }

    #[test]
    fn a_bad_set_is_refused_naming_the_field() {
        let one = |trigger: Value| refused(json!({"triggers": [{"name": "ok", "rows": 1}, trigger]}));
        assert!(one(json!({"name": "z", "rows": 0})).starts_with("triggers[1].rows:"));
        assert!(one(json!({"name": "z", "cron": "0 25 * * *"})).starts_with("triggers[1].cron:"));
        assert!(one(json!({"name": "z", "every": "0s"})).starts_with("triggers[1].every:"));
        assert!(one(json!({"name": "ok", "rows": 3})).contains("earlier trigger"));
        assert!(one(json!({"name": "z"})).starts_with("triggers[1].when:"));
        assert!(one(json!({"name": "z", "rows": 1, "every": "1h"})).contains("one condition"));
        assert!(
            one(json!({"name": "z", "rows": 1, "train": {"epochs": "x"}})).starts_with("triggers[1].train:")
        );
        assert!(one(json!({"name": "a b", "rows": 1})).starts_with("triggers[1].name:"));
        assert!(refused(json!({"trigger": []})).contains("unknown field"));
    }
}
