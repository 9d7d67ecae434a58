//! The offline command line: `regserve train` fits a model on a CSV file and `regserve predict`
//! answers from a saved model file, both without a server (for scripts, and for an edge device
//! that is offline).
//!
//! This module owns the flags of those two subcommands, turning them into [`FitSettings`], the
//! progress reporter shown while a fit runs, the summary printed after it, reading and
//! atomically writing model files, and the exit status of a failed command. The training itself
//! is [`Model::train`], the very code path the server's training jobs run, so a model trained
//! here is the model the server would have trained with the same settings and seed.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::{DataError, parse_csv};
use crate::model::{Model, PredictError, TrainSpec, file};
use crate::train::{FitParams, FitSettings, Observer, Solver, TrainError};

/// How often the plain progress lines (stderr not a terminal) may appear, besides the first and
/// the last epoch: often enough to show life in a log, rarely enough not to flood it.
const LINE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the progress bar is updated; the fit runs much faster than anyone can read, and
/// formatting the loss every epoch would slow a fit of tiny epochs.
const BAR_INTERVAL: Duration = Duration::from_millis(50);

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
    /// Write the model to this file: the JSON the server's GET /v1/models/{version} returns, which
    /// `regserve predict --model` reads. Replaced atomically.
    #[arg(long, short, value_name = "FILE.json")]
    pub output: Option<PathBuf>,
    /// Print the model JSON to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `regserve predict`.
#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The model file: written by `regserve train --output`, or saved from the server's
    /// GET /v1/model or GET /v1/models/{version}.
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

/// A failure to write the command's output (stdout or the model file). Marks an error whose
/// exit status is 1, not 2: the input was fine, the machine was not.
#[derive(Debug)]
struct OutputFailed(String);

impl std::fmt::Display for OutputFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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

/// Prints a failed command's error as `error: ...` and picks its exit status: 1 when writing the
/// output failed, 2 when the flags, the data or the model file are at fault (as for a usage
/// error), so a script can tell "fix your input" from "try again".
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<OutputFailed>().is_some() { ExitCode::FAILURE } else { ExitCode::from(2) }
        }
    }
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

fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context(OutputFailed("could not write to stdout".into()))
}

/// Writes `contents` to `path` so that a reader (or a crash) sees the old file or the new one,
/// never a part: a temporary file in the same directory, flushed to disk, then renamed.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new().prefix(".regserve-").suffix(".tmp").tempfile_in(directory)?;
    file.write_all(contents)?;
    // A temporary file is private (0600); a model file is meant to be copied around and read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    #[cfg(unix)]
    std::fs::File::open(directory)?.sync_all()?;
    Ok(())
}

/// Reports a fit's progress on stderr: a progress bar (epoch, loss, ETA) on a terminal, and plain
/// lines otherwise (about one a second, plus the first and the last epoch), so a log or a CI run
/// shows the fit is alive without control characters or a line per epoch.
pub struct Progress {
    epochs: usize,
    started: Instant,
    /// When the display was last updated; `None` before the first epoch.
    shown_at: Option<Instant>,
    /// The latest epoch and its loss, and whether the display shows it.
    latest: Option<(usize, f64)>,
    latest_shown: bool,
    display: Display,
}

enum Display {
    Bar(ProgressBar),
    Lines(Box<dyn Write>),
    Nothing,
}

impl Progress {
    /// A reporter for a fit of at most `epochs` epochs (0 for the exact solver, which shows nothing).
    pub fn new(epochs: usize) -> Self {
        let display = if epochs == 0 {
            Display::Nothing
        } else if io::stderr().is_terminal() {
            Display::Bar(progress_bar(epochs))
        } else {
            Display::Lines(Box::new(io::stderr()))
        };
        Self::with_display(epochs, display)
    }

    fn with_display(epochs: usize, display: Display) -> Self {
        Self { epochs, started: Instant::now(), shown_at: None, latest: None, latest_shown: false, display }
    }

    /// Shows the last epoch the fit ran (a fit may stop early or fail), and leaves the bar on
    /// screen with the time taken in place of the ETA.
    pub fn finish(&mut self) {
        if !self.latest_shown {
            self.show(Instant::now());
        }
        if let Display::Bar(bar) = &self.display {
            bar.set_style(bar_style("[{bar:30}] epoch {pos}/{len}  loss {msg}  took {elapsed}"));
            bar.abandon();
        }
    }

    fn show(&mut self, now: Instant) {
        let Some((epoch, loss)) = self.latest else { return };
        self.shown_at = Some(now);
        self.latest_shown = true;
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_message(format_loss(loss));
                bar.set_position(epoch as u64);
            }
            Display::Lines(out) => {
                let elapsed = now.duration_since(self.started);
                let remaining = elapsed.mul_f64((self.epochs - epoch) as f64 / epoch as f64);
                let eta = format_duration(remaining);
                // A progress line that cannot be written is not worth stopping the fit for.
                let _ = writeln!(out, "epoch {epoch}/{} loss {} eta {eta}", self.epochs, format_loss(loss));
            }
            Display::Nothing => {}
        }
    }
}

impl Observer for Progress {
    fn epoch_end(&mut self, epoch: usize, loss: f64) -> ControlFlow<()> {
        self.latest = Some((epoch, loss));
        self.latest_shown = false;
        let interval = match self.display {
            Display::Bar(_) => BAR_INTERVAL,
            Display::Lines(_) => LINE_INTERVAL,
            Display::Nothing => return ControlFlow::Continue(()),
        };
        let now = Instant::now();
        let due = self.shown_at.is_none_or(|shown| now.duration_since(shown) >= interval);
        if due || epoch == self.epochs {
            self.show(now);
        }
        ControlFlow::Continue(())
    }
}

fn progress_bar(epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    bar.set_style(bar_style("[{bar:30}] epoch {pos}/{len}  loss {msg}  eta {eta}"));
    bar
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("the progress templates are valid").progress_chars("=> ")
}

/// A loss (or a percentage) with enough digits to watch it fall, in plain notation where that
/// stays readable.
fn format_loss(loss: f64) -> String {
    if loss == 0.0 || (1e-3..1e9).contains(&loss.abs()) {
        format!("{loss:.4}")
    } else {
        format!("{loss:.4e}")
    }
}

/// `0.42ms` for a fit too quick for [`format_duration`]'s tenths of a second.
fn format_took(took: Duration) -> String {
    if took < Duration::from_secs(1) {
        format!("{:.2}ms", took.as_secs_f64() * 1e3)
    } else {
        format_duration(took)
    }
}

/// `0.8s`, `42.0s`, `3m07s`, `2h05m`.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    let whole = duration.as_secs();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, whole % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn every_solver_name_parses_and_prints_back() {
        for name in Solver::NAMES {
            assert_eq!(solver_name(solver_named(name)), name);
        }
    }

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

    #[test]
    fn loss_and_durations_stay_readable() {
        assert_eq!(format_loss(1234.56789), "1234.5679");
        assert_eq!(format_loss(1.5e-7), "1.5000e-7");
        assert_eq!(format_duration(Duration::from_millis(800)), "0.8s");
        assert_eq!(format_duration(Duration::from_secs(187)), "3m07s");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h05m");
    }

    /// A writer whose output a test can read after handing it to the reporter.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_progress_shows_the_first_and_last_epoch_and_throttles_the_rest() {
        let out = Shared::default();
        let mut progress = Progress::with_display(1000, Display::Lines(Box::new(out.clone())));
        for epoch in 1..=1000 {
            let _ = progress.epoch_end(epoch, 1000.0 / epoch as f64);
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("epoch 1/1000 loss 1000.0000 eta "), "{text}");
        assert_eq!(lines[1], "epoch 1000/1000 loss 1.0000 eta 0.0s");
    }

    #[test]
    fn plain_progress_shows_where_an_early_stop_ended() {
        let out = Shared::default();
        let mut progress = Progress::with_display(1000, Display::Lines(Box::new(out.clone())));
        for epoch in 1..=40 {
            let _ = progress.epoch_end(epoch, 2.0);
        }
        progress.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.lines().last().unwrap().starts_with("epoch 40/1000 loss 2.0000 eta "), "{text}");
    }
}
