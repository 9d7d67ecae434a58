//! The parsed dataset and the choice of feature and target columns within it.

use ndarray::{Array1, Array2};
use serde::Serialize;

use super::DataError;

/// A dataset held in memory as one vector of numbers per column.
#[derive(Debug, Clone)]
pub struct Dataset {
    columns: Vec<Column>,
    rows: usize,
    default_selection: Selection,
    /// SHA-256 of the CSV file, hex: which data a model was trained on.
    sha256: String,
}

/// One named column; `values` is `Err` with the first non-numeric value for a text column.
#[derive(Debug, Clone)]
pub struct Column {
    name: String,
    /// 1-based position of the column in the file, as error messages count columns.
    position: usize,
    values: Result<Array1<f64>, BadValue>,
    stats: Option<ColumnStats>,
}

/// Range and mean of a numeric column.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ColumnStats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

/// Some rows of a dataset (0-based row numbers, values in column order).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowSample<'a> {
    pub columns: Vec<&'a str>,
    pub row_numbers: Vec<usize>,
    pub rows: Vec<Vec<Option<f64>>>,
}

/// What `GET /v1/dataset` shows of the active dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary<'a> {
    pub rows: usize,
    pub sha256: &'a str,
    pub default_features: &'a [String],
    pub default_target: &'a str,
    pub columns: Vec<ColumnSummary<'a>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ColumnSummary<'a> {
    pub name: &'a str,
    /// 1-based position in the file.
    pub position: usize,
    /// `number`, or `text` for a column that cannot be trained on.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub stats: Option<ColumnStats>,
}

/// A value that is not a finite number, and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column} ({name:?}): {value:?} {reason}")]
pub struct BadValue {
    pub line: u64,
    pub column: usize,
    pub name: String,
    pub value: String,
    pub reason: &'static str,
}

/// Which columns a model is trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub features: Vec<String>,
    pub target: String,
}

impl BadValue {
    pub fn new(line: u64, column: usize, name: &str, field: &str, reason: &'static str) -> Self {
        Self { line, column, name: super::excerpt(name), value: super::excerpt(field), reason }
    }
}

impl Column {
    pub fn new(name: String, position: usize, values: Result<Array1<f64>, BadValue>) -> Self {
        let stats = values.as_ref().ok().and_then(|values| {
            Some(ColumnStats {
                min: values.iter().copied().reduce(f64::min)?,
                // A plain sum of values near f64::MAX would overflow; the mean cannot.
                mean: crate::train::scaled::mean(values.view())?,
                max: values.iter().copied().reduce(f64::max)?,
            })
        });
        Self { name, position, values, stats }
    }

    pub fn stats(&self) -> Option<ColumnStats> {
        self.stats
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn values(&self) -> Result<&Array1<f64>, &BadValue> {
        self.values.as_ref()
    }
}

impl Selection {
    /// The original service's choice: `Education` -> `Income` when both exist; otherwise the
    /// last column is the target and all the others are features.
    pub fn default_for(names: &[String]) -> Self {
        let has = |wanted: &str| names.iter().any(|name| name == wanted);
        if has("Education") && has("Income") {
            return Self { features: vec!["Education".into()], target: "Income".into() };
        }
        let (target, features) = names.split_last().expect("a header names at least two columns");
        Self { features: features.to_vec(), target: target.clone() }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.target == name || self.features.iter().any(|feature| feature == name)
    }
}

impl Dataset {
    pub fn new(columns: Vec<Column>, rows: usize, default_selection: Selection, sha256: String) -> Self {
        Self { columns, rows, default_selection, sha256 }
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(Column::name).collect()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|column| column.name == name)
    }

    pub fn default_selection(&self) -> &Selection {
        &self.default_selection
    }

    pub fn summary(&self) -> DatasetSummary<'_> {
        DatasetSummary {
            rows: self.rows,
            sha256: &self.sha256,
            default_features: &self.default_selection.features,
            default_target: &self.default_selection.target,
            columns: self
                .columns
                .iter()
                .map(|column| ColumnSummary {
                    name: &column.name,
                    position: column.position,
                    kind: if column.values.is_ok() { "number" } else { "text" },
                    stats: column.stats,
                })
                .collect(),
        }
    }

    /// Resolves a requested selection against this dataset's columns.
    ///
    /// Without `features`, the default features are used when the target is the default one, and
    /// every other numeric column otherwise; without `target`, the default target is used.
    pub fn select(
        &self,
        features: Option<Vec<String>>,
        target: Option<String>,
    ) -> Result<Selection, DataError> {
        let target = match target {
            Some(name) => self.numeric_column("target", &name)?.name.clone(),
            None => self.default_selection.target.clone(),
        };
        let features = match features {
            Some(features) => features,
            None if target == self.default_selection.target => self.default_selection.features.clone(),
            None => self
                .columns
                .iter()
                .filter(|column| column.name != target && column.values.is_ok())
                .map(|column| column.name.clone())
                .collect(),
        };
        if features.is_empty() {
            return Err(DataError::InvalidSelection {
                field: "features",
                reason: "name at least one column".into(),
            });
        }
        for (index, name) in features.iter().enumerate() {
            self.numeric_column("features", name)?;
            if features[..index].contains(name) {
                return Err(DataError::InvalidSelection {
                    field: "features",
                    reason: format!("{name:?} is listed twice"),
                });
            }
            if *name == target {
                return Err(DataError::InvalidSelection {
                    field: "features",
                    reason: format!("{name:?} is the target; a column cannot be both"),
                });
            }
        }
        Ok(Selection { features, target })
    }

    fn numeric_column(&self, field: &'static str, name: &str) -> Result<&Column, DataError> {
        let column = self.column(name).ok_or_else(|| DataError::UnknownColumn {
            field,
            name: super::excerpt(name),
            available: listed(&self.column_names()),
        })?;
        match &column.values {
            Ok(_) => Ok(column),
            Err(bad) => {
                Err(DataError::NotNumeric { field, name: name.to_owned(), bad: Box::new(bad.clone()) })
            }
        }
    }

    /// Up to `limit` rows, the first ones or (`spread`) evenly spaced over the whole dataset,
    /// for previews and scatter plots; text columns read `None`.
    pub fn sample_rows(&self, limit: usize, spread: bool) -> RowSample<'_> {
        let count = limit.min(self.rows);
        let step = if spread && count > 0 { self.rows as f64 / count as f64 } else { 1.0 };
        let row_numbers: Vec<usize> = (0..count).map(|i| (i as f64 * step) as usize).collect();
        let rows = row_numbers
            .iter()
            .map(|&row| {
                self.columns.iter().map(|column| column.values.as_ref().ok().map(|v| v[row])).collect()
            })
            .collect();
        RowSample { columns: self.column_names(), row_numbers, rows }
    }

    /// The row-major feature matrix and the target vector of a selection made by [`Self::select`].
    pub fn design(&self, selection: &Selection) -> (Array2<f64>, Array1<f64>) {
        let numbers = |name: &str| {
            self.column(name)
                .and_then(|column| column.values.as_ref().ok())
                .expect("selection was validated against this dataset")
        };
        let features: Vec<&Array1<f64>> = selection.features.iter().map(|name| numbers(name)).collect();
        let x = Array2::from_shape_fn((self.rows, features.len()), |(i, j)| features[j][i]);
        (x, numbers(&selection.target).clone())
    }
}

/// The most column names an error message lists.
const LISTED_NAMES: usize = 20;

/// `a, b, c`, or the first [`LISTED_NAMES`] names and how many more there are.
fn listed(names: &[&str]) -> String {
    match names.len() > LISTED_NAMES {
        true => format!("{}, ... ({} in all)", names[..LISTED_NAMES].join(", "), names.len()),
        false => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use crate::data::parse_csv;

    fn income2_with_names() -> crate::data::Dataset {
        parse_csv(&b"Name,Education,Seniority,Income\na,10,100,30\nb,12,120,40\nc,16,80,50\n"[..]).unwrap()
    }

    #[test]
    fn default_selection_follows_the_original() {
        let data = income2_with_names();
        let selection = data.select(None, None).unwrap();
        assert_eq!(
            (selection.features, selection.target),
            (vec!["Education".to_owned()], "Income".to_owned())
        );
    }

    #[test]
    fn another_target_takes_every_other_numeric_column() {
        let data = income2_with_names();
        let selection = data.select(None, Some("Seniority".into())).unwrap();
        assert_eq!(selection.features, ["Education", "Income"]);
    }

    #[test]
    fn bad_selections_name_the_field_and_the_problem() {
        let data = income2_with_names();
        let message = |features: Vec<&str>, target: Option<&str>| {
            data.select(Some(features.into_iter().map(String::from).collect()), target.map(String::from))
                .unwrap_err()
                .to_string()
        };
        assert!(message(vec!["Age"], None).starts_with("features: no column named \"Age\""));
        assert!(
            message(vec!["Name"], None)
                .starts_with("features: column \"Name\" is not numeric: line 2, column 1")
        );
        assert!(message(vec!["Education", "Education"], None).contains("listed twice"));
        assert!(message(vec!["Income"], None).contains("is the target"));
        assert!(message(vec![], None).starts_with("features:"));
        let error = data.select(None, Some("Name".into())).unwrap_err().to_string();
        assert!(error.starts_with("target: column \"Name\" is not numeric"), "{error}");
    }

    #[test]
    fn summary_gives_types_and_ranges() {
        let data = income2_with_names();
        let summary = serde_json::to_value(data.summary()).unwrap();
        assert_eq!(summary["rows"], 3);
        assert_eq!(
            summary["columns"][0],
            serde_json::json!({ "name": "Name", "position": 1, "type": "text" })
        );
        assert_eq!(
            summary["columns"][2],
            serde_json::json!({ "name": "Seniority", "position": 3, "type": "number", "min": 80.0, "mean": 100.0, "max": 120.0 })
        );
    }

    #[test]
    fn samples_take_the_first_rows_or_spread_over_all() {
        let data = income2_with_names();
        let head = data.sample_rows(2, false);
        assert_eq!(head.row_numbers, [0, 1]);
        assert_eq!(head.rows[1], [None, Some(12.0), Some(120.0), Some(40.0)]);
        let spread = data.sample_rows(2, true);
        assert_eq!(spread.row_numbers, [0, 1]);
        let csv: String =
            std::iter::once("x,y\n".to_owned()).chain((0..100).map(|i| format!("{i},{i}\n"))).collect();
        let big = crate::data::parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(big.sample_rows(4, true).row_numbers, [0, 25, 50, 75]);
        assert_eq!(big.sample_rows(500, true).rows.len(), 100);
    }

    #[test]
    fn design_matrix_is_row_major_in_selection_order() {
        let data = income2_with_names();
        let selection = data.select(Some(vec!["Seniority".into(), "Education".into()]), None).unwrap();
        let (x, y) = data.design(&selection);
        assert_eq!(x.row(1).to_vec(), [120.0, 12.0]);
        assert_eq!(y.to_vec(), [30.0, 40.0, 50.0]);
    }
}
