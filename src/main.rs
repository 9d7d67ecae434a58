//! The `regserve` binary: parse the command line, then serve (the default), or train or predict
//! offline.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use regserve::app::Application;
use regserve::cli::{self, Cli, Command, LogFormat, ServeArgs};
use regserve::settings::Settings;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().into_command() {
        Command::Serve(args) => serve(*args).map(|()| ExitCode::SUCCESS),
        Command::Train(args) => Ok(cli::report(cli::train(&args))),
        Command::Predict(args) => Ok(cli::report(cli::predict(&args))),
    }
}

/// How long the runtime waits, after the server has stopped, for blocking work still running
/// (a parse of an upload that was cut off) before the process exits without it.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(500);

/// Runs the server until Ctrl-C or SIGTERM; only the server logs, and only it needs a runtime.
fn serve(args: ServeArgs) -> anyhow::Result<()> {
    return_large_frees_to_the_system();
    init_logging(args.log_format);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("no async runtime")?;
    let served = runtime.block_on(async {
        let app = Application::build(Settings::from(args)).await?;
        app.run_until_stopped(shutdown_signal()).await.context("server failed")
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    served
}

/// Makes glibc's allocator give large blocks back to the system when they are freed. By default
/// it raises its threshold for serving blocks from the heap as large ones are freed (up to 32 MiB),
/// and keeps an arena per thread, so the buffers of each parse and each large answer stay in the
/// process after use, and many uploads or answers one after another add up. With a fixed
/// threshold, every block over it is its own mapping, returned on free.
fn return_large_frees_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Logs to standard output at `RUST_LOG` (default `info`): text for people, or one JSON object
/// per line, with the event's fields under `fields` and its spans (a request's: method, path,
/// route, id) under `span` and `spans`.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal, so that files and log collectors get plain text.
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
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
