//! Building and running the server: open the data directory, load the dataset, bind the
//! listener (keeping the real port when asked for port 0), serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api::app;
use crate::config::Config;
use crate::data::{DataDir, DataError, default_dataset};
use crate::jobs::CancelReason;
use crate::state::AppState;
use crate::versions::{ModelStore, VersionError};

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
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
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
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartupError::Bind { addr: config.addr, source })?;
        Ok(Self { listener, state: AppState::new(config.limits, store, dataset, models) })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, and stops any training.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr(), "listening");
        let state = self.state.clone();
        // Cancel training as soon as shutdown starts, so a `?wait=true` request still in flight
        // is answered at once instead of holding the shutdown until its fit ends.
        let shutdown = async move {
            shutdown.await;
            state.cancel_training(CancelReason::Shutdown);
        };
        axum::serve(self.listener, app(self.state)).with_graceful_shutdown(shutdown).await
    }
}
