//! Rows of features read from JSON values, the decoding TensorFlow Serving's and MLflow's
//! requests share: a row is a bare number (one-feature models) or a list of one number per
//! feature, and rows are laid flat, row after row, as the prediction service takes them.

use serde_json::Value;

/// Appends row `index`, `value`, to `flat`: a number when the model has one feature, or a list
/// of `features.len()` numbers. The error says which row and why.
pub fn push_row(flat: &mut Vec<f64>, value: &Value, features: &[String], index: usize) -> Result<(), String> {
    let width = features.len();
    match value {
        Value::Array(values) if values.len() == width => {
            for value in values {
                flat.push(value.as_f64().ok_or_else(|| format!("row {index}: {value} is not a number"))?);
            }
            Ok(())
        }
        Value::Array(values) => Err(format!(
            "row {index} has {} values; the model takes {width} ({})",
            values.len(),
            features.join(", ")
        )),
        value if width == 1 => {
            flat.push(value.as_f64().ok_or_else(|| format!("row {index}: {value} is not a number"))?);
            Ok(())
        }
        value => {
            Err(format!("row {index} is {value}, not a list of {width} numbers ({})", features.join(", ")))
        }
    }
}

/// Every row of a JSON list, laid flat.
pub fn flat_rows(rows: &Value, features: &[String]) -> Result<Vec<f64>, String> {
    let Value::Array(rows) = rows else { return Err(format!("expected a list of rows, got {rows}")) };
    let mut flat = Vec::with_capacity(rows.len() * features.len());
    for (index, row) in rows.iter().enumerate() {
        push_row(&mut flat, row, features, index)?;
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn features(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn rows_are_numbers_or_lists_of_the_model_width() {
        let one = features(&["x"]);
        assert_eq!(flat_rows(&json!([1, [2.5]]), &one), Ok(vec![1.0, 2.5]));
        let two = features(&["a", "b"]);
        assert_eq!(flat_rows(&json!([[1, 2], [3, 4]]), &two), Ok(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(
            flat_rows(&json!([[1, 2], [3]]), &two),
            Err("row 1 has 1 values; the model takes 2 (a, b)".into())
        );
        assert_eq!(flat_rows(&json!([5]), &two), Err("row 0 is 5, not a list of 2 numbers (a, b)".into()));
        assert_eq!(flat_rows(&json!([["1"]]), &one), Err("row 0: \"1\" is not a number".into()));
        assert_eq!(flat_rows(&json!({"x": 1}), &one), Err("expected a list of rows, got {\"x\":1}".into()));
    }
}
