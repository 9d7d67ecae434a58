//! The composition root: [`Application::build`] reads the TLS files, opens the store, loads the
//! dataset and the models, binds the listeners (keeping the real ports when asked for port 0) and
//! builds the services; [`Application::run_until_stopped`] serves until told to stop, then stops
//! within the shutdown timeout: every background task ([`tasks`]) signalled and waited for,
//! connections drained or dropped, the training thread joined.

mod announcements;
pub mod follow;
pub mod tasks;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use std::sync::Arc;

use self::announcements::Announcements;
use self::follow::Follower;
use self::tasks::Tasks;

use crate::api::server::{self, connection_limit_for, raise_open_file_limit};
use crate::api::{Budget, Hosts, HttpOptions, Listener, TrainerLink, router};
use crate::datasets::{DatasetError, Datasets};
use crate::ingest;
use crate::nodes::{Beater, Identity, default_id};
use crate::registry::{ModelCache, Registry, RegistryError};
use crate::retrain::{Retrainer, TriggerSet};
use crate::settings::{MqttPredictSettings, RetrainSettings, Role, Settings, SourceSettings};
use crate::state::AppState;
use crate::storage::health::StoreHealth;
use crate::storage::{Storage, StoreError};
use crate::training::{CancelReason, GateSettings};

/// How much longer than the shutdown timeout the tasks get to end, beyond the listeners' own
/// deadline for their connections.
const TASK_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use the store {location}: {source}")]
    Store { location: String, source: StoreError },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("the stored models cannot be loaded: {0}")]
    Models(#[from] RegistryError),
    #[error("cannot use the cache directory: {0}")]
    Cache(StoreError),
    #[error("{0}")]
    TrainerUrl(String),
    #[error("{0}")]
    Sources(String),
    #[error("the retraining triggers: {0}")]
    Triggers(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(#[from] server::tls::TlsError),
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// Serves the state-changing routes, which the main listener then refuses.
    admin_listener: Option<TcpListener>,
    options: HttpOptions,
    connections: server::Settings,
    state: AppState,
    /// A predictor's follower of the active model, started with the server.
    follower: Option<Follower>,
    /// On a predictor with a trainer URL: the trainer's activations, which wake the follower.
    announcements: Option<Announcements>,
    /// Who this node is in its heartbeat.
    identity: Identity,
    /// The message brokers to subscribe to (none on a predictor).
    sources: SourceSettings,
    /// The MQTT topics to answer predictions on (always `None` without the `mqtt` feature, whose
    /// build refuses `--mqtt-url`).
    #[cfg_attr(not(feature = "mqtt"), allow(dead_code))]
    mqtt_predict: Option<MqttPredictSettings>,
}

impl Application {
    pub async fn build(config: Settings) -> Result<Self, StartupError> {
        let location = config.store.to_string();
        let store = config.store.open().map_err(|source| StartupError::Store { location, source })?;
        Self::build_on(config, store).await
    }

    /// As [`Application::build`], on a store already opened (so that the servers of one test
    /// process can share a store in memory).
    pub async fn build_on(config: Settings, store: Arc<dyn Storage>) -> Result<Self, StartupError> {
        let role = config.cluster.role;
        let connections = connection_settings(&config);
        // The TLS files are read now, once: a file that cannot be used stops the start.
        #[cfg(feature = "tls")]
        let connections = server::Settings { tls: server::tls::server_config(&config.tls)?, ..connections };
        ingest::check(&config.sources).map_err(StartupError::Sources)?;
        #[cfg(feature = "mqtt")]
        config
            .mqtt_predict
            .as_ref()
            .map_or(Ok(()), crate::serving::mqtt::check)
            .map_err(StartupError::Sources)?;
        if !role.trains() && config.sources != SourceSettings::default() {
            tracing::warn!("a predictor does not subscribe to message brokers; run them on the trainer");
        }
        let datasets = match role.trains() {
            true => Datasets::open(store.clone(), config.intake.clone()).await?,
            false => Datasets::builtin(store.clone()),
        };
        let history = datasets.history();
        let columns = history.schema.as_ref().map(|schema| schema.column_names().join(", "));
        tracing::info!(
            store = store.name(),
            role = role.as_str(),
            rows = history.rows,
            segments = history.chunks.len(),
            ?columns,
            "dataset loaded"
        );
        let health = Arc::new(StoreHealth::new());
        let cache = match (&config.cluster.cache_dir, role) {
            (Some(dir), Role::Predictor) => Some(ModelCache::open(dir).map_err(StartupError::Cache)?),
            _ => None,
        };
        let models = Arc::new(open_models(&config, store, &health, cache.as_ref()).await?);
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
        let trainer = match (&config.cluster.trainer_url, role) {
            (Some(url), Role::Predictor) => Some(TrainerLink::new(url).map_err(StartupError::TrainerUrl)?),
            _ => None,
        };
        let identity = identity(
            &config,
            listener.local_addr().map_err(|source| StartupError::Bind { addr: config.addr, source })?,
        );
        let options = HttpOptions {
            access: config.access,
            cors_origins: config.cors_origins,
            hosts,
            trainer,
            node_id: identity.id.clone(),
            // The tasks' stop signal, once they run.
            stop: Default::default(),
        };
        let follower = (role == Role::Predictor).then(|| Follower {
            registry: models.clone(),
            health: health.clone(),
            cache,
            interval: config.cluster.follow_interval,
            announced: Arc::new(Notify::new()),
        });
        let announcements = match (&follower, &config.cluster.trainer_url) {
            (Some(_), Some(url)) => Announcements::new(url),
            _ => None,
        };
        let gate = GateSettings { holdout: config.retrain.holdout, margin: config.retrain.gate_margin };
        let mut state = AppState::for_node(config.limits, gate, datasets, models, role, health)
            .with_model_name(&config.model_name);
        if role.trains() {
            let retrainer = retrainer(&state, &config.retrain).await?;
            state = state.with_retrainer(retrainer);
        }
        Ok(Self {
            listener,
            admin_listener,
            options,
            connections,
            state,
            follower,
            announcements,
            identity,
            mqtt_predict: config.mqtt_predict,
            sources: if role.trains() { config.sources } else { SourceSettings::default() },
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
        if let Some(committer) = self.state.datasets().committer() {
            tasks.spawn("committer", committer.run(tasks.stop_signal()));
        }
        for (name, subscriber) in
            ingest::subscribers(&self.sources, self.state.datasets(), &tasks.stop_signal())
        {
            tasks.spawn(name, subscriber);
        }
        #[cfg(feature = "mqtt")]
        if let Some(settings) = self.mqtt_predict {
            let serving = self.state.serving().clone();
            tasks
                .spawn("mqtt predictions", crate::serving::mqtt::run(settings, serving, tasks.stop_signal()));
        }
        if let Some(retrainer) = self.state.retrainer() {
            tasks.spawn("retrainer", retrainer.clone().run(tasks.stop_signal()));
        }
        if let Some(follower) = self.follower {
            if let Some(announcements) = self.announcements {
                let announced = follower.announced.clone();
                tasks.spawn("model announcements", announcements.run(announced, tasks.stop_signal()));
            }
            tasks.spawn("model follower", follower.run(tasks.stop_signal()));
        }
        let beater = Beater { state: self.state.clone(), identity: self.identity };
        tasks.spawn("heartbeat", beater.run(tasks.stop_signal()));
        let budget = Budget::new(self.state.limits().max_buffered_bytes);
        let main_listener = if admin_addr.is_some() { Listener::Public } else { Listener::Full };
        let listeners =
            [Some((self.listener, main_listener)), self.admin_listener.map(|l| (l, Listener::Full))];
        for (listener, which) in listeners.into_iter().flatten() {
            let options = HttpOptions { stop: tasks.stop_signal(), ..self.options.clone() };
            let router = router(self.state.clone(), &options, which, budget.clone());
            tasks.spawn(
                "http listener",
                server::serve(listener, router, self.connections.clone(), tasks.stop_signal()),
            );
        }
        shutdown.await;
        // The model event streams never end by themselves: they end now, so their connections close.
        self.state.models().events().close();
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

/// The retraining triggers: those the flags name, or the stored set.
async fn retrainer(state: &AppState, settings: &RetrainSettings) -> Result<Retrainer, StartupError> {
    let flags = TriggerSet::from_flags(settings).map_err(StartupError::Triggers)?;
    let metrics = state.metrics().retrain.clone();
    Retrainer::open(state.trainer().clone(), state.datasets().clone(), metrics, flags)
        .await
        .map_err(StartupError::Triggers)
}

/// Who this node says it is: `--node-id` and `--advertise-url`, or its host name, port and
/// bound address.
fn identity(config: &Settings, bound: SocketAddr) -> Identity {
    let cluster = &config.cluster;
    Identity {
        id: cluster.node_id.clone().unwrap_or_else(|| default_id(bound.port())),
        address: cluster.advertise_url.clone().unwrap_or_else(|| format!("http://{bound}")),
        interval: cluster.heartbeat_interval,
    }
}

/// The stored versions and the active one. A predictor that cannot read the store starts
/// anyway, serving the model it cached (or nothing, not ready, if it has none) until the store
/// answers; every other node needs the store to start.
async fn open_models(
    config: &Settings,
    store: Arc<dyn Storage>,
    health: &StoreHealth,
    cache: Option<&ModelCache>,
) -> Result<Registry, StartupError> {
    match Registry::open(store.clone(), config.keep_models).await {
        Ok(registry) => {
            if let (Some(cache), Some(model)) = (cache, registry.active()) {
                cache.save(&model).await;
            }
            Ok(registry)
        }
        Err(RegistryError::Store(error)) if config.cluster.role == Role::Predictor => {
            let cached = match cache {
                Some(cache) => cache.load().await,
                None => None,
            };
            let version = cached.as_ref().map(|model| model.version());
            tracing::warn!(%error, cached = ?version, "the store cannot be read at start; serving the cached model until it answers");
            health.failed(error.to_string());
            Ok(Registry::unread(store, config.keep_models, cached))
        }
        Err(error) => Err(error.into()),
    }
}

/// The connection settings of the listeners: the configured ones, with a connection limit that
/// stays below the open-file limit (raised to its hard limit first), and plain HTTP.
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
        #[cfg(feature = "tls")]
        tls: None,
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
