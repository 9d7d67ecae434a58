//! The `regserve` binary: parse the command line, then serve (the default), or train or predict
//! offline.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use regserve::cli;
use regserve::config::{Cli, Command, Config};
use regserve::startup::Application;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().into_command() {
        Command::Serve(args) => serve(Config::from(args)).map(|()| ExitCode::SUCCESS),
        Command::Train(args) => Ok(cli::report(cli::train(&args))),
        Command::Predict(args) => Ok(cli::report(cli::predict(&args))),
    }
}

/// Runs the server until Ctrl-C or SIGTERM; only the server logs, and only it needs a runtime.
#[tokio::main]
async fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await.context("server failed")
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
