//! The server's settings as plain values with their defaults: listeners (and their TLS files),
//! storage, limits, access.
//! The command line ([`crate::cli`]) fills them in; nothing here knows about flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::ingest::settings::{KafkaSettings, MqttSettings, SourceSettings};
pub use crate::storage::Location;

pub use crate::training::TrainingPriority;

/// A bearer token. Its `Debug` output hides it, so a logged configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token of visible ASCII characters (what an `Authorization` header can carry).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a token must not be empty".into());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token may only hold visible ASCII characters (no spaces)".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

/// Who may do what: without tokens everything is open.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Required by the state-changing routes; also grants the reads.
    pub admin_token: Option<Token>,
    /// Required by predictions and the `/v1` reads.
    pub read_token: Option<Token>,
}

/// What a node does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Trains and predicts: a single node, or one of several sharing a store.
    #[default]
    All,
    /// The one node that trains, in a cluster; it predicts too.
    Trainer,
    /// Predicts only, following the model the trainer activates.
    Predictor,
}

impl Role {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(Self::All),
            "trainer" => Ok(Self::Trainer),
            "predictor" => Ok(Self::Predictor),
            _ => Err(format!("{text:?} is not a role: use all, trainer or predictor")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Trainer => "trainer",
            Self::Predictor => "predictor",
        }
    }

    /// Whether the node trains and changes the state.
    pub fn trains(self) -> bool {
        self != Self::Predictor
    }
}

/// How a node takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub role: Role,
    /// Where a predictor sends the reads only the trainer answers (`http://HOST:PORT`).
    pub trainer_url: Option<String>,
    /// Where a predictor keeps the last good model, to serve it after a restart without the store.
    pub cache_dir: Option<PathBuf>,
    /// How often a predictor looks at the active-model pointer.
    pub follow_interval: Duration,
    /// The node's name in `GET /v1/nodes` (default: host name and port).
    pub node_id: Option<String>,
    /// The address the node gives in its heartbeat (default: `http://` and the bound address).
    pub advertise_url: Option<String>,
    /// How often the node writes its heartbeat.
    pub heartbeat_interval: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            role: Role::All,
            trainer_url: None,
            cache_dir: None,
            follow_interval: Duration::from_millis(200),
            node_id: None,
            advertise_url: None,
            heartbeat_interval: Duration::from_secs(5),
        }
    }
}

/// How appended rows are committed and how long they are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeSettings {
    /// How long a commit waits for more batches to write with the first (group commit).
    pub commit_interval: Duration,
    /// The most rows one commit writes.
    pub commit_rows: usize,
    /// The most rows one batch may hold.
    pub max_batch_rows: usize,
    /// Keep at least this many of the newest rows, and drop older segments.
    pub retain_rows: Option<u64>,
    /// Drop segments whose rows all arrived longer ago than this.
    pub retain_for: Option<Duration>,
    /// A column that holds each row's time (seconds since 1970), which `rows: {"since": ...}`
    /// then goes by instead of the arrival time.
    pub time_column: Option<String>,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            commit_interval: Duration::from_millis(2),
            commit_rows: 500_000,
            max_batch_rows: 100_000,
            retain_rows: None,
            retain_for: None,
            time_column: None,
        }
    }
}

/// Retraining: the triggers the flags name, and the quality gate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrainSettings {
    /// Train when this many rows have arrived since the last training.
    pub after_rows: Option<u64>,
    /// Train at this interval.
    pub every: Option<Duration>,
    /// Train on this cron schedule (UTC).
    pub cron: Option<String>,
    /// The training spec of those triggers, as `/train`'s JSON body (defaults without).
    pub spec: Option<String>,
    /// The share of each training's rows held back to score models on (0: none, no gate).
    pub holdout: f64,
    /// How much worse than the served model a gated one may score and still be activated.
    pub gate_margin: f64,
}

/// The model's name unless `--model-name` gives one.
pub const DEFAULT_MODEL_NAME: &str = "regserve";

/// Whether `name` can name the model in a URL path: letters, digits, `-`, `_` and `.`, as the
/// standard protocols' model names are (a `:` would be read as TensorFlow Serving's verb).
pub fn check_model_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match !name.is_empty() && name.len() <= 128 && name.chars().all(allowed) {
        true => Ok(()),
        false => Err(format!("{name:?} is not a model name: use 1 to 128 letters, digits, '-', '_' or '.'")),
    }
}

/// The MQTT prediction adapter's broker, the filters it answers on, and its client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttPredictSettings {
    pub host: String,
    pub port: u16,
    /// Topic filters; each message is answered on its topic with the last level replaced by `y`.
    pub filters: Vec<String>,
    pub client_id: String,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    /// Where the dataset and the model versions are kept.
    pub store: Location,
    pub cluster: ClusterSettings,
    pub intake: IntakeSettings,
    pub retrain: RetrainSettings,
    /// The message brokers subscribed to (on a node that trains).
    pub sources: SourceSettings,
    /// The MQTT topics predictions are asked on (on any node).
    pub mqtt_predict: Option<MqttPredictSettings>,
    pub limits: Limits,
    /// Model versions kept in the store.
    pub keep_models: usize,
    /// The name the standard protocols address the model by.
    pub model_name: String,
    /// A second listener that alone serves the state-changing routes.
    pub admin_addr: Option<SocketAddr>,
    pub access: Access,
    /// Origins allowed to make cross-origin requests (none: CORS is off); they may also make
    /// state-changing requests.
    pub cors_origins: Vec<String>,
    /// Host names answered to besides the listening addresses and localhost.
    pub allowed_hosts: Vec<String>,
    /// Connection limits and timeouts; `None` for the connection limit picks one from the
    /// open-file limit.
    pub connections: ConnectionLimits,
    /// The files every listener serves HTTPS with (none: plain HTTP).
    pub tls: TlsFiles,
}

/// The PEM files of the listeners' TLS: all `None` serves plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain, its own certificate first.
    pub cert: Option<PathBuf>,
    /// The private key of that certificate.
    pub key: Option<PathBuf>,
    /// CA certificates one of which must have signed every client's certificate.
    pub client_ca: Option<PathBuf>,
}

/// Limits and timeouts of the connections of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            header_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// Request size and time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_body_bytes: usize,
    /// How long a request body may send nothing before the request is answered 408, and the
    /// window over which it must keep `min_body_rate`.
    pub body_idle_timeout: Duration,
    /// Least bytes per second a request body must keep.
    pub min_body_rate: u64,
    /// Longest time to answer an ordinary request (not uploads, `/train` or event streams).
    pub request_timeout: Duration,
    /// Most requests being handled at once on a listener before new ones are answered 503.
    pub max_concurrent: usize,
    /// Most event streams and downloads open at once on a listener.
    pub max_streams: usize,
    /// Most uploads in progress at once.
    pub max_uploads: usize,
    /// Most bytes of request bodies and answers held in memory at once.
    pub max_buffered_bytes: u64,
    /// How a fit shares the processor with request handling.
    pub training_priority: TrainingPriority,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 1536 << 20,
            max_body_bytes: 16 << 20,
            body_idle_timeout: Duration::from_secs(10),
            min_body_rate: 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent: 512,
            max_streams: 128,
            max_uploads: 4,
            max_buffered_bytes: 256 << 20,
            training_priority: TrainingPriority::Adaptive,
        }
    }
}

impl Settings {
    /// A configuration listening on `addr` and keeping its state in `store`, with default limits.
    pub fn new(addr: SocketAddr, store: Location) -> Self {
        Self {
            addr,
            store,
            cluster: ClusterSettings::default(),
            intake: IntakeSettings::default(),
            retrain: RetrainSettings::default(),
            sources: SourceSettings::default(),
            mqtt_predict: None,
            limits: Limits::default(),
            keep_models: 20,
            model_name: DEFAULT_MODEL_NAME.to_owned(),
            admin_addr: None,
            access: Access::default(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            connections: ConnectionLimits::default(),
            tls: TlsFiles::default(),
        }
    }
}

/// The per-user data directory, so the service keeps its state wherever it is started from.
pub fn default_data_dir() -> PathBuf {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map(|base| base.join("regserve"))
        .unwrap_or_else(|| PathBuf::from("regserve-data"))
}

/// Checks a host name as a Host header carries it (without a port), lower-cased.
pub fn parse_host_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    match valid {
        true => Ok(name),
        false => Err(format!("{text:?} is not a host name like api.example.com (no scheme, no port)")),
    }
}

/// Checks an origin as browsers send it: `scheme://host[:port]`, without a path.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty() && !host.contains('/') && text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!("{text:?} is not an origin like https://app.example.com (no path, no trailing /)")),
    }
}
