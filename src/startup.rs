//! Building and running the server: open the data directory, load the dataset, bind the
//! listeners (keeping the real ports when asked for port 0), serve until told to stop.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api::{HttpOptions, Listener, router};
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
    /// Serves the state-changing routes, which the main listener then refuses.
    admin_listener: Option<TcpListener>,
    options: HttpOptions,
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
        let listener = bind(config.addr).await?;
        let admin_listener = match config.admin_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        warn_about_exposure(&config);
        let options = HttpOptions { access: config.access, cors_origins: config.cors_origins };
        Ok(Self {
            listener,
            admin_listener,
            options,
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

    /// Serves until `shutdown` completes, lets in-flight requests finish, and stops any training.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let admin_addr = self.admin_addr();
        match admin_addr {
            Some(admin_addr) => tracing::info!(addr = %self.local_addr(), %admin_addr, "listening"),
            None => tracing::info!(addr = %self.local_addr(), "listening"),
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let state = self.state.clone();
        // Cancel training as soon as shutdown starts, so a `?wait=true` request still in flight
        // is answered at once instead of holding the shutdown until its fit ends.
        tokio::spawn(async move {
            shutdown.await;
            state.cancel_training(CancelReason::Shutdown);
            let _ = stop.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            }
        };
        let main_listener = if admin_addr.is_some() { Listener::Public } else { Listener::Full };
        let main = axum::serve(self.listener, router(self.state.clone(), &self.options, main_listener))
            .with_graceful_shutdown(until_stopped());
        let Some(admin_listener) = self.admin_listener else {
            return main.await;
        };
        let admin = axum::serve(admin_listener, router(self.state, &self.options, Listener::Full))
            .with_graceful_shutdown(until_stopped());
        let (main, admin) = tokio::join!(main.into_future(), admin.into_future());
        main.and(admin)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).await.map_err(|source| StartupError::Bind { addr, source })
}

/// Warns about settings that leave the state-changing routes open to more than this machine.
fn warn_about_exposure(config: &Config) {
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
