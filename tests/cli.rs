//! The offline command line, run as a user would: `regserve train` on the bundled datasets and
//! `regserve predict` on the model files it writes, each in its own temporary directory.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regserve::data::parse_csv;
use regserve::model::{Model, TrainSpec};
use regserve::train::FitSettings;
use serde_json::Value;

/// Closed-form least squares on Income1 (see the convergence tests).
const SLOPE: f64 = 5.599482874119919;
const INTERCEPT: f64 = -39.44625667909617;

fn dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dataset").join(name)
}

/// Runs the binary in `dir` (stdout and stderr are pipes, so stderr is not a terminal).
fn regserve(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regserve")).current_dir(dir).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

/// Asserts a usage or data error: exit status 2, `error: ...` on stderr, nothing on stdout.
fn assert_input_error(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(output));
    let message = stderr(output);
    assert!(message.starts_with("error: "), "{message}");
    message
}

/// The value of a `label  value` line of the training summary.
fn summary_value<'a>(summary: &'a str, label: &str) -> Vec<&'a str> {
    summary
        .lines()
        .filter_map(|line| line.strip_prefix(label))
        .filter(|rest| rest.starts_with(' '))
        .map(str::trim)
        .collect()
}

fn predictions(output: &Output) -> Vec<f64> {
    stdout(output).lines().map(|line| line.parse().unwrap()).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn least_squares_model(dir: &Path) -> Output {
    let income1 = dataset("Income1.csv");
    regserve(
        dir,
        &["train", income1.to_str().unwrap(), "--solver", "least-squares", "--output", "model.json"],
    )
}

#[test]
fn least_squares_training_prints_the_closed_form_and_predict_reads_the_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let trained = least_squares_model(dir.path());
    assert_success(&trained);
    let summary = stdout(&trained);
    for expected in ["5.5994828", "-39.446256", "29.828816"] {
        assert!(summary.contains(expected), "{expected} missing from:\n{summary}");
    }
    assert_eq!(summary_value(&summary, "features"), ["Education"]);
    assert_eq!(summary_value(&summary, "target"), ["Income"]);
    assert_eq!(summary_value(&summary, "solver"), ["least-squares"]);
    assert_eq!(summary_value(&summary, "model file"), ["model.json"]);
    let kernel = summary_value(&summary, "kernel");
    assert_eq!(kernel.len(), 1);
    let slope: f64 = kernel[0].strip_prefix("Education = ").unwrap().parse().unwrap();
    assert!((slope - SLOPE).abs() < 1e-9, "{slope}");
    let mse: f64 = summary_value(&summary, "mse")[0].parse().unwrap();
    assert!((mse - 29.82881619900623).abs() < 1e-9, "{mse}");
    let gap: f64 = summary_value(&summary, "gap")[0].split(' ').next().unwrap().parse().unwrap();
    assert!(gap.abs() < 1e-9, "the exact solver is the optimum: {gap}");

    let model = read_json(&dir.path().join("model.json"));
    assert_eq!(model["features"], serde_json::json!(["Education"]));
    assert_eq!(model["params"]["solver"], "least-squares");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["model.json"], "no temporary file is left behind");

    let predicted = regserve(dir.path(), &["predict", "--model", "model.json", "10", "15.5", "21"]);
    assert_success(&predicted);
    let got = predictions(&predicted);
    assert_eq!(got.len(), 3, "{}", stdout(&predicted));
    for (y, x) in got.iter().zip([10.0, 15.5, 21.0]) {
        let expected = SLOPE * x + INTERCEPT;
        assert!((y - expected).abs() < 1e-9, "predict({x}) = {y}, expected {expected}");
    }
}

#[test]
fn two_feature_training_is_the_library_fit_and_predicts_comma_separated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let income2 = dataset("Income2.csv");
    let args = ["--features", "Education,Seniority", "--epochs", "50", "--seed", "3", "--output", "m2.json"];
    let trained = regserve(dir.path(), &[&["train", income2.to_str().unwrap()][..], &args].concat());
    assert_success(&trained);
    let summary = stdout(&trained);
    assert_eq!(summary_value(&summary, "features"), ["Education, Seniority"]);
    assert_eq!(summary_value(&summary, "epochs"), ["50 of 50"]);
    assert_eq!(summary_value(&summary, "seed"), ["3"]);
    assert_eq!(summary_value(&summary, "kernel").len(), 2, "{summary}");

    // The command line runs the same training code as the server: the same settings and seed
    // give exactly the library's weights.
    let file = read_json(&dir.path().join("m2.json"));
    let dataset = parse_csv(std::fs::File::open(&income2).unwrap()).unwrap();
    let selection = dataset.select(Some(vec!["Education".into(), "Seniority".into()]), None).unwrap();
    let params = FitSettings { epochs: Some(50), seed: Some(3), ..Default::default() }.validate(2).unwrap();
    let spec = TrainSpec { selection, params, warm_start: None, job: 0 };
    let library = Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap();
    let kernel: Vec<f64> = serde_json::from_value(file["kernel"].clone()).unwrap();
    assert_eq!(kernel, library.weights().kernel().to_vec());
    assert_eq!(file["bias"].as_f64().unwrap(), library.weights().bias());
    assert_eq!(file["history"]["loss"].as_array().unwrap().len(), 50);

    let predicted = regserve(dir.path(), &["predict", "--model", "m2.json", "12,50", "20,150"]);
    assert_success(&predicted);
    let expected = library.predict([&[12.0, 50.0][..], &[20.0, 150.0][..]]).unwrap();
    let got = predictions(&predicted);
    assert_eq!(got.len(), 2);
    for (y, want) in got.iter().zip(&expected) {
        assert!((y - want).abs() < 1e-9, "{y} != {want}");
    }
}

#[test]
fn predict_reads_a_model_as_the_server_serves_it_and_answers_in_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let settings = FitSettings { epochs: Some(5), seed: Some(9), ..Default::default() };
    let dataset = regserve::data::default_dataset();
    let selection = dataset.default_selection().clone();
    let spec = TrainSpec { selection, params: settings.validate(1).unwrap(), warm_start: None, job: 4 };
    let model = Model::train(&dataset, spec, &mut |_, _| ControlFlow::Continue(())).unwrap().with_version(7);
    // What GET /v1/models/regserve/versions/7 returns (less its model_version_status).
    std::fs::write(dir.path().join("v7.json"), serde_json::to_vec(&model).unwrap()).unwrap();

    let predicted = regserve(dir.path(), &["predict", "--json", "--model", "v7.json", "10", "-2.5"]);
    assert_success(&predicted);
    let answer: Value = serde_json::from_str(&stdout(&predicted)).unwrap();
    let expected = model.predict([&[10.0][..], &[-2.5][..]]).unwrap();
    assert_eq!(answer, serde_json::json!({ "y_predict": [[expected[0]], [expected[1]]] }));
}

#[test]
fn json_output_is_the_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let income1 = dataset("Income1.csv");
    let output = regserve(dir.path(), &["train", income1.to_str().unwrap(), "--epochs", "20", "--json"]);
    assert_success(&output);
    let model: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(model["kernel"].as_array().unwrap().len(), 1);
    assert!(model["kernel"][0].is_f64());
    assert_eq!(model["history"]["loss"].as_array().unwrap().len(), 20);
    assert_eq!(model["params"]["epochs"], 20);
    assert!(model["params"]["seed"].is_u64(), "the drawn seed is recorded");
    assert!(model["optimum_mse"].is_f64());
}

#[test]
fn progress_is_plain_lines_on_stderr_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let income1 = dataset("Income1.csv");
    let output =
        regserve(dir.path(), &["train", income1.to_str().unwrap(), "--epochs", "300", "--seed", "1"]);
    assert_success(&output);
    let progress = stderr(&output);
    assert!(!progress.contains('\x1b') && !progress.contains('\r'), "no terminal control: {progress:?}");
    let lines: Vec<&str> = progress.lines().collect();
    assert!(lines.len() >= 2, "{progress}");
    assert!(lines[0].starts_with("epoch 1/300 loss "), "{progress}");
    assert!(lines.last().unwrap().starts_with("epoch 300/300 loss "), "{progress}");
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!((fields.len(), fields[0], fields[2], fields[4]), (6, "epoch", "loss", "eta"), "{line}");
        assert!(fields[3].parse::<f64>().unwrap() > 0.0, "{line}");
    }
    // A line per second at most, besides the first and last: nowhere near one per epoch.
    assert!(lines.len() < 20, "{progress}");
    assert_eq!(summary_value(&stdout(&output), "epochs"), ["300 of 300"], "the summary is on stdout");
}

#[test]
fn a_bad_csv_names_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.csv"), "Education,Income\n10,26.6\n12,oops\n14,40.1\n").unwrap();
    let message = assert_input_error(&regserve(dir.path(), &["train", "bad.csv", "--epochs", "2"]));
    assert!(message.contains("bad.csv: line 3, column 2"), "{message}");
    assert!(message.contains("\"oops\""), "{message}");
}

#[test]
fn an_unknown_feature_is_named_with_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let income2 = dataset("Income2.csv");
    let output = regserve(dir.path(), &["train", income2.to_str().unwrap(), "--features", "Age"]);
    let message = assert_input_error(&output);
    assert!(message.starts_with("error: --features: no column named \"Age\""), "{message}");
    assert!(message.contains("Education, Seniority, Income"), "lists the columns: {message}");
}

#[test]
fn an_invalid_parameter_is_named_with_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let income1 = dataset("Income1.csv");
    let message =
        assert_input_error(&regserve(dir.path(), &["train", income1.to_str().unwrap(), "--batch-size", "0"]));
    assert!(message.starts_with("error: --batch-size: must be at least 1"), "{message}");
    let args = ["train", income1.to_str().unwrap(), "--solver", "least-squares", "--epochs", "5"];
    let message = assert_input_error(&regserve(dir.path(), &args));
    assert!(message.starts_with("error: --epochs: is not used by the least-squares solver"), "{message}");
}

#[test]
fn predict_rejects_rows_of_the_wrong_width_and_non_numbers() {
    let dir = tempfile::tempdir().unwrap();
    assert_success(&least_squares_model(dir.path()));
    let message =
        assert_input_error(&regserve(dir.path(), &["predict", "--model", "model.json", "10", "1,2"]));
    assert!(message.contains("row 2 (\"1,2\") has 2 values; the model expects 1 (Education)"), "{message}");
    let message = assert_input_error(&regserve(dir.path(), &["predict", "--model", "model.json", "ten"]));
    assert!(message.contains("\"ten\" is not a number"), "{message}");
    let message = assert_input_error(&regserve(dir.path(), &["predict", "--model", "missing.json", "10"]));
    assert!(message.contains("missing.json"), "{message}");
}

#[test]
fn a_model_file_that_cannot_be_written_fails_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let income1 = dataset("Income1.csv");
    let args =
        ["train", income1.to_str().unwrap(), "--solver", "least-squares", "--output", "no/such/dir/m.json"];
    let output = regserve(dir.path(), &args);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("error: could not write the model to no/such/dir/m.json"));
}
