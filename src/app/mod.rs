//! The composition root: [`Application::build`] opens the data directory, loads the dataset and
//! the models, binds the listeners (keeping the real ports when asked for port 0) and builds the
//! services; [`Application::run_until_stopped`] serves until told to stop, then stops within the
//! shutdown timeout: every background task ([`tasks`]) signalled and waited for, connections
//! drained or dropped, the training thread joined.

pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use self::tasks::Tasks;

use crate::api::{Budget, Hosts, HttpOptions, Listener, router};
use crate::data::{DataDir, DataError, default_dataset};
use crate::server::{self, connection_limit_for, raise_open_file_limit};
use crate::settings::Settings;
use crate::state::AppState;
use crate::training::CancelReason;
use crate::versions::{ModelStore, VersionError};

/// How much longer than the shutdown timeout the tasks get to end, beyond the listeners' own
/// deadline for their connections.
const TASK_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("the stored dataset {path} cannot be loaded: {source}")]
    Dataset { path: String, source: DataError },
    #[error("the stored models cannot be loaded: {0}")]
    Models(#[from] VersionError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// Serves the state-changing routes, which the main listener then refuses.
    admin_listener: Option<TcpListener>,
    options: HttpOptions,
    connections: server::Settings,
    state: AppState,
}

impl Application {
    pub async fn build(config: Settings) -> Result<Self, StartupError> {
        let path = config.data_dir.display().to_string();
        let store = DataDir::open(&config.data_dir)
            .map_err(|source| StartupError::DataDir { path: path.clone(), source })?;
        let dataset = match store.load_dataset() {
            Ok(Some(dataset)) => dataset,
            Ok(None) => default_dataset(),
            Err(source) => {
                return Err(StartupError::Dataset {
                    path: store.dataset_path().display().to_string(),
                    source,
                });
            }
        };
        tracing::info!(data_dir = %path, rows = dataset.rows(), columns = ?dataset.column_names(), "dataset loaded");
        let models = ModelStore::open(store.clone(), config.keep_models)?;
        if let Some(model) = models.active() {
            tracing::info!(version = model.version(), features = ?model.features(), "model loaded");
        }
        let listener = bind(config.addr).await?;
        let admin_listener = match config.admin_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        warn_about_exposure(&config);
        let bound: Vec<SocketAddr> = [Some(&listener), admin_listener.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let hosts = Hosts::new(&bound, &config.allowed_hosts);
        let connections = connection_settings(&config);
        let options = HttpOptions { access: config.access, cors_origins: config.cors_origins, hosts };
        Ok(Self {
            listener,
            admin_listener,
            options,
            connections,
            state: AppState::new(config.limits, store, dataset, models),
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The admin listener's address, when there is one (the real port when port 0 was asked for).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .map(|listener| listener.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes; then cancels a running training (so that a waiting
    /// `/train?wait=true` is answered at once), lets the requests in flight finish and the
    /// training thread end, each for at most the shutdown timeout, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let admin_addr = self.admin_addr();
        match admin_addr {
            Some(admin_addr) => tracing::info!(addr = %self.local_addr(), %admin_addr, "listening"),
            None => tracing::info!(addr = %self.local_addr(), "listening"),
        }
        tracing::debug!(max_connections = self.connections.max_connections, "connection limit");
        let tasks = Tasks::new();
        let budget = Budget::new(self.state.limits().max_buffered_bytes);
        let main_listener = if admin_addr.is_some() { Listener::Public } else { Listener::Full };
        let listeners =
            [Some((self.listener, main_listener)), self.admin_listener.map(|l| (l, Listener::Full))];
        for (listener, which) in listeners.into_iter().flatten() {
            let router = router(self.state.clone(), &self.options, which, budget.clone());
            tasks.spawn(
                "http listener",
                server::serve(listener, router, self.connections.clone(), tasks.stop_signal()),
            );
        }
        shutdown.await;
        // At once, so that a `?wait=true` request in flight is answered rather than held.
        let trainer = self.state.trainer().clone();
        trainer.cancel_running(CancelReason::Shutdown);
        // The listeners drop what is left of their connections at the deadline themselves.
        tasks.stop(self.connections.shutdown_timeout + TASK_STOP_GRACE).await;
        let joined = tokio::task::spawn_blocking(move || trainer.stop());
        if tokio::time::timeout(self.connections.shutdown_timeout, joined).await.is_err() {
            tracing::warn!(
                "the training thread did not stop within the shutdown timeout; exiting without it"
            );
        }
        Ok(())
    }
}

/// The connection settings of the listeners: the configured ones, with a connection limit that
/// stays below the open-file limit (raised to its hard limit first).
fn connection_settings(config: &Settings) -> server::Settings {
    let open_files = raise_open_file_limit();
    let fits = connection_limit_for(open_files, config.limits.max_streams as u64);
    let max_connections = match config.connections.max_connections {
        Some(asked) if asked > fits => {
            tracing::warn!(
                asked,
                limit = fits,
                ?open_files,
                "--max-connections is above what the open-file limit allows; using the limit"
            );
            fits
        }
        Some(asked) => asked,
        None => fits,
    };
    let limits = config.connections;
    server::Settings {
        max_connections,
        header_timeout: limits.header_timeout,
        keep_alive_timeout: limits.keep_alive_timeout,
        write_timeout: limits.write_timeout,
        shutdown_timeout: limits.shutdown_timeout,
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })
}

/// Warns about settings that leave the state-changing routes open to more than this machine.
fn warn_about_exposure(config: &Settings) {
    let writes_reachable_from = config.admin_addr.unwrap_or(config.addr);
    if config.access.admin_token.is_none() && !writes_reachable_from.ip().is_loopback() {
        tracing::warn!(
            addr = %writes_reachable_from,
            "upload, train, cancel and activate are open to anyone who can reach this address: \
             set --admin-token, or bind --admin-addr to 127.0.0.1"
        );
    }
    if config.access.read_token.is_some() && config.access.admin_token.is_none() {
        tracing::warn!("only --read-token is set: the state-changing routes take the read token too");
    }
}
