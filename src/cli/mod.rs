//! The command line: every clap type of the `regserve` binary lives here, below it nothing knows
//! about flags. `regserve` (or `regserve serve`) runs the server with the flags of [`serve`];
//! `regserve train` ([`train`]) and `regserve predict` ([`predict`]) work offline. This module also
//! owns what the offline commands share: writing their output, atomically writing model files,
//! and the exit status of a failed command.

mod predict;
mod progress;
mod serve;
mod train;

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

pub use predict::{PredictArgs, predict};
pub use serve::{LogFormat, ServeArgs};
pub use train::{TrainArgs, train};

/// The command line of the `regserve` binary.
///
/// Without a subcommand `regserve` serves, taking the server's flags at the top level, so every
/// existing way of starting the server keeps working; the server's flags and a subcommand cannot
/// be mixed, so `regserve --addr .. train` is an error rather than a silently ignored flag.
#[derive(Debug, Parser)]
#[command(
    name = "regserve",
    version,
    about = "Trains and serves a linear-regression model over HTTP, or trains and predicts offline",
    long_about = None,
    after_help = "Examples:\n  \
        regserve                                      serve on 127.0.0.1:5000\n  \
        regserve train data.csv --output model.json   train offline and save the model\n  \
        regserve predict --model model.json 10 15.5   predict from the saved model",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What the binary does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (what `regserve` does without a subcommand).
    Serve(Box<ServeArgs>),
    /// Train a model on a CSV file offline, with the server's training code, and print it.
    Train(TrainArgs),
    /// Predict from a saved model file, without a server.
    Predict(PredictArgs),
}

impl Cli {
    /// The command to run: serving with the top-level flags when no subcommand was given.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(Box::new(self.serve)))
    }
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::settings::{Location, Settings, TrainingPriority};

    #[test]
    fn training_priority_defaults_to_adaptive() {
        let cli = Cli::try_parse_from(["regserve"]).unwrap();
        assert_eq!(cli.serve.training_priority, TrainingPriority::Adaptive);
        let cli = Cli::try_parse_from(["regserve", "--training-priority", "idle"]).unwrap();
        assert_eq!(cli.serve.training_priority, TrainingPriority::Idle);
        assert!(Cli::try_parse_from(["regserve", "--training-priority", "20"]).is_err());
    }

    #[test]
    fn intake_flags_default_to_the_settings_defaults_and_parse() {
        let config = Settings::from(Cli::try_parse_from(["regserve"]).unwrap().serve);
        assert_eq!(config.intake, crate::settings::IntakeSettings::default());
        let cli = Cli::try_parse_from([
            "regserve",
            "--retain-for",
            "7d",
            "--retain-rows",
            "1000",
            "--commit-interval",
            "10ms",
        ]);
        let config = Settings::from(cli.unwrap().serve);
        assert_eq!(config.intake.retain_for, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            (config.intake.retain_rows, config.intake.commit_interval),
            (Some(1000), Duration::from_millis(10))
        );
    }

    #[test]
    fn connection_flags_parse_and_host_names_are_checked() {
        let cli = Cli::try_parse_from([
            "regserve",
            "--allowed-host",
            "API.example.com,localhost",
            "--header-timeout",
            "5s",
            "--max-connections",
            "100",
            "--min-body-rate",
            "2K",
        ])
        .unwrap();
        let config = Settings::from(cli.serve);
        assert_eq!(config.allowed_hosts, ["api.example.com", "localhost"]);
        assert_eq!(config.connections.header_timeout, Duration::from_secs(5));
        assert_eq!(config.connections.max_connections, Some(100));
        assert_eq!(config.limits.min_body_rate, 2048);
        for bad in ["http://a.example", "a.example:80", "a b"] {
            assert!(Cli::try_parse_from(["regserve", "--allowed-host", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_listen_where_flask_did() {
        let cli = Cli::try_parse_from(["regserve"]).unwrap();
        assert_eq!(cli.serve.addr.to_string(), "127.0.0.1:5000");
        let config = Settings::from(cli.serve);
        assert_eq!(config.limits.max_upload_bytes, 1536 << 20);
        assert_eq!(config.limits.body_idle_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.request_timeout, Duration::from_secs(30));
        assert_eq!(config.limits.max_concurrent, 512);
        assert!(config.access.admin_token.is_none() && config.access.read_token.is_none());
        assert!(config.admin_addr.is_none() && config.cors_origins.is_empty());
    }

    #[test]
    fn security_flags_parse_and_tokens_stay_hidden() {
        let cli = Cli::try_parse_from([
            "regserve",
            "--admin-token",
            "s3cret-admin",
            "--read-token",
            "s3cret-read",
            "--admin-addr",
            "127.0.0.1:5001",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "http://b.example:8080,https://c.example",
            "--max-concurrent",
            "8",
            "--request-timeout",
            "2s",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.serve.log_format, LogFormat::Json);
        let config = Settings::from(cli.serve);
        assert_eq!(config.access.admin_token.as_ref().unwrap().as_str(), "s3cret-admin");
        assert_eq!(config.admin_addr.unwrap().port(), 5001);
        assert_eq!(config.cors_origins, ["https://a.example", "http://b.example:8080", "https://c.example"]);
        assert_eq!(
            (config.limits.max_concurrent, config.limits.request_timeout),
            (8, Duration::from_secs(2))
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        for bad in [
            &["--admin-token", ""][..],
            &["--read-token", "two words"],
            &["--cors-origin", "https://a.example/"],
            &["--cors-origin", "a.example"],
            &["--max-concurrent", "0"],
            &["--log-format", "xml"],
        ] {
            assert!(Cli::try_parse_from(["regserve"].iter().chain(bad)).is_err(), "{bad:?}");
        }
        let Location::Local(data_dir) = &config.store else { panic!("the default store is a directory") };
        assert!(data_dir.ends_with("regserve") || data_dir.ends_with("regserve-data"));
        let stored = |args: &[&str]| {
            let cli = Cli::try_parse_from(["regserve"].iter().chain(args)).map_err(|e| e.kind())?;
            Ok::<_, clap::error::ErrorKind>(Settings::from(cli.serve).store)
        };
        assert_eq!(stored(&["--store", "memory://"]), Ok(Location::Memory));
        assert_eq!(stored(&["--data-dir", "/srv/d"]), Ok(Location::Local("/srv/d".into())));
        assert!(stored(&["--store", "/a", "--data-dir", "/b"]).is_err());
        assert!(stored(&["--store", "ftp://x"]).is_err());
    }

    #[test]
    fn command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn subcommands_parse_and_no_subcommand_serves() {
        let parse =
            |args: &[&str]| Cli::try_parse_from(["regserve"].iter().chain(args)).map(Cli::into_command);
        match parse(&["--addr", "127.0.0.1:0"]).unwrap() {
            Command::Serve(serve) => assert_eq!(serve.addr.to_string(), "127.0.0.1:0"),
            other => panic!("expected serve, got {other:?}"),
        }
        match parse(&["serve", "--addr", "127.0.0.1:7", "--keep-models", "3"]).unwrap() {
            Command::Serve(serve) => assert_eq!((serve.addr.port(), serve.keep_models), (7, 3)),
            other => panic!("expected serve, got {other:?}"),
        }
        let train = ["train", "d.csv", "--features", "a,b", "--features", "c", "--solver", "least-squares"];
        match parse(&train).unwrap() {
            Command::Train(train) => {
                assert_eq!(train.file, PathBuf::from("d.csv"));
                assert_eq!(train.features.unwrap(), ["a", "b", "c"]);
                assert_eq!(train.solver, Some(crate::train::Solver::LeastSquares));
                assert_eq!((train.epochs, train.no_shuffle, train.json), (None, false, false));
            }
            other => panic!("expected train, got {other:?}"),
        }
        match parse(&["predict", "--model", "m.json", "10", "-2.5", "12,50", "--json"]).unwrap() {
            Command::Predict(predict) => {
                assert_eq!(predict.model, PathBuf::from("m.json"));
                assert_eq!(predict.rows, ["10", "-2.5", "12,50"]);
                assert!(predict.json);
            }
            other => panic!("expected predict, got {other:?}"),
        }
        assert!(parse(&["train", "d.csv", "--solver", "sgd"]).is_err());
        assert!(parse(&["predict", "--model", "m.json"]).is_err(), "at least one row");
        assert!(parse(&["--addr", "127.0.0.1:0", "train", "d.csv"]).is_err(), "server flags need serve");
    }
}
