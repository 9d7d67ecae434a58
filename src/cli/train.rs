//! `regserve train`: fits a model on a CSV file with the server's training code ([`Model::train`],
//! the very code path of the server's jobs, so a seeded run gives the model the server would),
//! shows its progress, prints a summary (or the model file) and writes the model file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::progress::{Progress, format_loss, format_took};
use super::{OutputFailed, print_stdout, write_atomically};
use crate::data::{DataError, parse_csv};
use crate::model::{Model, TrainSpec, file};
use crate::train::{FitParams, FitSettings, Solver, TrainError};

/// Flags of `regserve train`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The CSV file: a header row naming the columns, then one row of numbers per sample.
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    /// Feature columns, comma-separated or repeated [default: Education when the file has
    /// Education and Income, else every column but the target].
    #[arg(long, value_name = "COLUMN,..", value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Target column [default: Income when the file has Education and Income, else the last column].
    #[arg(long, value_name = "COLUMN")]
    pub target: Option<String>,
    /// How the weights are found: Adam as the original Keras model trains, Adam on standardized
    /// columns (converges), or the exact least-squares solution [default: adam].
    #[arg(long, value_name = "SOLVER", value_parser = solver_parser())]
    pub solver: Option<Solver>,
    /// Epochs to train [default: 500 for adam, at most 10000 for adam-standardized].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Rows per optimiser step [default: 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate [default: 0.001 for adam, 0.01 for adam-standardized].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Seed of the initial weights and the shuffling; the summary prints the one drawn when none is given.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Visit the rows in file order every epoch instead of a fresh permutation.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Epochs without improvement before the learning rate halves (and, after repeated halvings,
    /// the fit stops) [default: none for adam, 20 for adam-standardized].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Write the model to this file: the JSON the server's GET /v1/models/{name}/versions/{version} returns, which
    /// `regserve predict --model` reads. Replaced atomically.
    #[arg(long, short, value_name = "FILE.json")]
    pub output: Option<PathBuf>,
    /// Print the model JSON to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Trains a model on `args.file` with the same code as the server's training jobs, showing
/// progress on stderr, then prints the summary (or the model JSON) and writes the model file.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("could not open {}", args.file.display()))?;
    let dataset = parse_csv(file).map_err(|error| anyhow!("{}: {error}", args.file.display()))?;
    let selection =
        dataset.select(args.features.clone(), args.target.clone()).map_err(name_flag_of_data_error)?;
    let params = args.settings().validate(selection.features.len()).map_err(name_flag_of_train_error)?;

    let mut progress = Progress::new(params.epochs());
    let started = Instant::now();
    let trained =
        Model::train(&dataset, TrainSpec { selection, params, warm_start: None, job: 0 }, &mut progress);
    let took = started.elapsed();
    progress.finish();
    let model = trained.map_err(name_flag_of_train_error)?;

    let mut json = file::to_json(&model, true)?;
    json.push(b'\n');
    if let Some(path) = &args.output {
        write_atomically(path, &json)
            .with_context(|| OutputFailed(format!("could not write the model to {}", path.display())))?;
    }
    let text = match args.json {
        true => String::from_utf8(json).expect("JSON is UTF-8"),
        false => summary(&model, args, dataset.rows(), took),
    };
    print_stdout(&text)
}

impl TrainArgs {
    /// The requested settings; what is not given is left to the solver's defaults, exactly as an
    /// HTTP training request that omits the field.
    pub fn settings(&self) -> FitSettings {
        FitSettings {
            solver: self.solver,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            // Only an explicit --no-shuffle is a setting: least-squares rejects any shuffle value.
            shuffle: self.no_shuffle.then_some(false),
            seed: self.seed,
            patience: self.patience,
            ..FitSettings::default()
        }
    }
}

/// Accepts the solver names the HTTP API uses, and lists them in `--help`.
fn solver_parser() -> impl TypedValueParser<Value = Solver> {
    PossibleValuesParser::new(Solver::NAMES).map(|name| solver_named(&name))
}

fn solver_named(name: &str) -> Solver {
    serde_json::from_value(serde_json::Value::from(name)).expect("Solver::NAMES are the solvers' names")
}

/// The flag a library error's field comes from, so that `batch_size: must be at least 1` reads
/// `--batch-size: must be at least 1` on the command line.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "features" => "--features",
        "target" => "--target",
        "solver" => "--solver",
        "epochs" => "--epochs",
        "batch_size" => "--batch-size",
        "learning_rate" => "--learning-rate",
        "seed" => "--seed",
        "shuffle" => "--no-shuffle",
        "patience" => "--patience",
        _ => return None,
    })
}

fn with_flag(field: &str, message: String) -> anyhow::Error {
    match (flag_of(field), message.strip_prefix(field)) {
        (Some(flag), Some(rest)) if rest.starts_with(':') => anyhow!("{flag}{rest}"),
        _ => anyhow!(message),
    }
}

fn name_flag_of_data_error(error: DataError) -> anyhow::Error {
    match &error {
        DataError::UnknownColumn { field, .. }
        | DataError::NotNumeric { field, .. }
        | DataError::InvalidSelection { field, .. } => with_flag(field, error.to_string()),
        _ => error.into(),
    }
}

fn name_flag_of_train_error(error: TrainError) -> anyhow::Error {
    match &error {
        TrainError::InvalidParameter { field, .. } => with_flag(field, error.to_string()),
        _ => error.into(),
    }
}

/// The human summary of a trained model: one `label  value` line per fact, stable for scripts.
fn summary(model: &Model, args: &TrainArgs, rows: usize, took: Duration) -> String {
    let metrics = model.metrics();
    let params = model.params();
    let mut text = String::new();
    let mut line = |label: &str, value: String| {
        writeln!(text, "{label:<12} {value}").expect("writing to a String succeeds");
    };
    line("data", format!("{} ({rows} rows)", args.file.display()));
    line("features", model.features().join(", "));
    line("target", model.target().to_owned());
    line("solver", solver_name(params.solver()).to_owned());
    let epochs_run = model.history().len();
    line(
        "epochs",
        match params {
            FitParams::LeastSquares => "none (closed form)".to_owned(),
            _ if epochs_run < params.epochs() => {
                format!(
                    "{epochs_run} of at most {} (stopped early: the loss stopped improving)",
                    params.epochs()
                )
            }
            _ => format!("{epochs_run} of {}", params.epochs()),
        },
    );
    for (name, weight) in model.features().iter().zip(model.weights().kernel()) {
        line("kernel", format!("{name} = {}", number(*weight)));
    }
    line("bias", number(model.weights().bias()));
    line("mse", number(metrics.mse));
    line("r2", metrics.r2.map_or_else(|| "undefined (the target is constant)".to_owned(), number));
    line(
        "optimum mse",
        format!("{} (exact least squares: the lowest any line can reach)", number(metrics.optimum_mse)),
    );
    let relative = if metrics.optimum_mse > 0.0 {
        format!(" ({}% above the optimum)", format_loss(100.0 * metrics.gap / metrics.optimum_mse))
    } else {
        String::new()
    };
    line("gap", format!("{}{relative}", number(metrics.gap)));
    line(
        "seed",
        match params {
            FitParams::Adam(adam) | FitParams::AdamStandardized(adam) => adam.seed.to_string(),
            FitParams::LeastSquares => "none (the exact solver draws nothing)".to_owned(),
        },
    );
    line("time", format_took(took));
    if let Some(path) = &args.output {
        line("model file", path.display().to_string());
    }
    text
}

/// Every digit needed to read the value back exactly (for copying into code), in scientific
/// notation where plain notation would bury it in zeros.
fn number(value: f64) -> String {
    if value == 0.0 || (1e-4..1e15).contains(&value.abs()) { value.to_string() } else { format!("{value:e}") }
}

fn solver_name(solver: Solver) -> &'static str {
    Solver::NAMES.into_iter().find(|name| solver_named(name) == solver).expect("every solver has a name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_solver_name_parses_and_prints_back() {
        for name in Solver::NAMES {
            assert_eq!(solver_name(solver_named(name)), name);
        }
    }

    #[test]
    fn library_fields_become_flags() {
        let error = TrainError::InvalidParameter { field: "batch_size", reason: "must be at least 1".into() };
        assert_eq!(name_flag_of_train_error(error).to_string(), "--batch-size: must be at least 1");
        let error = TrainError::InvalidParameter { field: "initial.bias", reason: "x".into() };
        assert_eq!(name_flag_of_train_error(error).to_string(), "initial.bias: x");
    }

    #[test]
    fn summary_numbers_are_exact_and_readable() {
        assert_eq!(number(5.599482874119919), "5.599482874119919");
        assert_eq!(number(-39.44625667909617), "-39.44625667909617");
        assert_eq!(number(6.811083963498277e-8), "6.811083963498277e-8");
        assert_eq!(number(1.3300949352481181e20), "1.3300949352481181e20");
        assert_eq!(number(0.0), "0");
    }
}
