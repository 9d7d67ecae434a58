//! `regserve predict`: answers from a saved model file, without a server (for scripts, and for
//! a device that is offline).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use super::print_stdout;
use crate::model::{Model, PredictError, file};

/// Flags of `regserve predict`.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The model file: written by `regserve train --output`, or saved from the server's
    /// GET /v1/model or GET /v1/models/{name}/versions/{version}.
    #[arg(long, short, value_name = "FILE")]
    pub model: PathBuf,
    /// Print {"y_predict":[[y],..]} like the server's POST /predict instead of one value per line.
    #[arg(long)]
    pub json: bool,
    /// One row per argument: a number for a one-feature model, comma-separated values (12,50) for
    /// several, in the model's feature order. Put rows like -3,5 after `--`, which ends the flags.
    #[arg(value_name = "X", required = true, allow_negative_numbers = true)]
    pub rows: Vec<String>,
}

/// Predicts one value per row in `args.rows` from the model file `args.model`.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    let model = read_model(&args.model)?;
    let rows = args
        .rows
        .iter()
        .enumerate()
        .map(|(index, text)| parse_row(index, text))
        .collect::<Result<Vec<_>, _>>()?;
    let predictions = model.predict(rows.iter().map(Vec::as_slice)).map_err(|error| {
        let (row, problem) = match error {
            PredictError::WrongWidth { row, found, expected, features } => (
                row,
                format!(
                    "has {found} value{}; the model expects {expected} ({features}), comma-separated",
                    if found == 1 { "" } else { "s" }
                ),
            ),
            PredictError::NotFinite { row } => {
                (row, "the prediction is not a finite number (the input is too large)".to_owned())
            }
        };
        anyhow!("row {} ({:?}) {problem}", row + 1, args.rows[row])
    })?;
    let text = if args.json {
        let y_predict: Vec<[f64; 1]> = predictions.iter().map(|&y| [y]).collect();
        format!("{}\n", serde_json::json!({ "y_predict": y_predict }))
    } else {
        predictions.iter().map(|y| format!("{y}\n")).collect()
    };
    print_stdout(&text)
}

/// Reads a model file, telling a missing file from one that is not a model.
fn read_model(path: &Path) -> anyhow::Result<Model> {
    let bytes =
        std::fs::read(path).with_context(|| format!("could not read the model file {}", path.display()))?;
    file::from_json(&bytes).map_err(|error| anyhow!("{}: {error}", path.display()))
}

/// Parses one command-line row: a number, or comma-separated numbers; `index` is 0-based.
fn parse_row(index: usize, text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|value| {
            let value = value.trim();
            value.parse::<f64>().ok().filter(|number| number.is_finite()).ok_or_else(|| {
                anyhow!(
                    "row {} ({text:?}): {value:?} is not a number; give numbers like 12 or 12,50",
                    index + 1
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbers_or_comma_separated_numbers() {
        assert_eq!(parse_row(0, "12").unwrap(), [12.0]);
        assert_eq!(parse_row(0, "12, -50.5").unwrap(), [12.0, -50.5]);
        let error = parse_row(1, "12,abc").unwrap_err().to_string();
        assert!(error.starts_with("row 2 (\"12,abc\"): \"abc\" is not a number"), "{error}");
        assert!(parse_row(0, "").is_err());
        assert!(parse_row(0, "12,").is_err());
        assert!(parse_row(0, "inf").is_err() && parse_row(0, "NaN").is_err());
    }
}
